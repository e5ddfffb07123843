"""The twin's frames as recorded: ground truth, reproducibility, drift."""

from __future__ import annotations

import numpy as np
import pytest

import deepstem_utils as ds
from deepstem_utils import insitu
from deepstem_utils.insitu.drift import register_drift


def test_acquisition_truth_and_registration(twin):
    probe = ds.Probe(80e3, 30.0, {"C30": 2000.0}, source_size=0.5)
    acq = insitu.SeriesAcquisition(twin, probe, shape=(192, 192), sampling=0.16, dose=5e4, frame_time=1.0,
                                   drift=(0.6, -0.4), seed=1)
    a = acq[20]
    assert a.shape == (192, 192) and np.array_equal(a, acq[20])  # rendered on demand, reproducibly
    for i in (12, 26):  # grains on graphene: a periodic lattice that must not fool the registration
        dy, dx = register_drift(acq[i - 1], acq[i])
        true = (acq.offsets[i] - acq.offsets[i - 1]) / 0.16
        assert dx == pytest.approx(true[0], abs=0.2) and dy == pytest.approx(true[1], abs=0.2)  # sub-pixel
    truth = acq.truth(20)
    assert np.all((truth.x >= 0) & (truth.x <= 192 * 0.16))
    with pytest.raises(IndexError):
        acq[len(acq)]
    with pytest.raises(ValueError, match="do not fit"):
        insitu.SeriesAcquisition(twin, probe, shape=(600, 600), sampling=0.16)


def test_one_dose_drives_the_twin_and_its_frames():
    from deepstem_utils.insitu import acquisition

    probe = ds.Probe(80e3, 30.0, {"C30": 2000.0}, source_size=0.5)
    kw = dict(shape=(96, 96), frame_time=2.0, extent=(40.0, 40.0), film_units=120, seed=2, twin_seed=5)
    series = acquisition.record_series(4, probe, dose=3e4, **kw)
    assert series.dose == 3e4 and {f.dose for f in series.frames} == {3e4}
    assert np.allclose([f.scan[:2] for f in series.frames], series.offsets)  # the beam scanned what was recorded
    frames = series.frames
    again = insitu.SeriesAcquisition(frames, probe, shape=(96, 96), frame_time=2.0, seed=2)  # the twin's dose
    assert again.dose == 3e4 and np.array_equal(again[2], series[2])
    with pytest.raises(ValueError, match="one dose drives both"):
        insitu.SeriesAcquisition(frames, probe, shape=(96, 96), dose=1e4, frame_time=2.0, seed=2)
    with pytest.raises(ValueError, match="other fields"):
        insitu.SeriesAcquisition(frames, probe, shape=(96, 96), frame_time=2.0, seed=3)  # another drift
    with pytest.raises(ValueError, match="cross_section"):
        acquisition.record_series(4, ds.Probe(60e3, 30.0, {}), dose=3e4, **kw)
