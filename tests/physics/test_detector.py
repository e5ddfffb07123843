"""The detector's gain and offset estimated from a frame (photon transfer)."""

from __future__ import annotations

import pytest

import deepstem_utils as ds
from deepstem_utils.network import dataset

PROBE = ds.Probe(energy=80e3, semiangle=30.0, aberrations={"C30": -1e4})


def test_gain_offset_estimate():
    from deepstem_utils.physics import detector, imaging

    f = dataset.simulate_frame((384, 384), sampling=0.16, dose=1e5, probe=PROBE, rng=1,
                               acquisition=imaging.Acquisition(gain=50.0, offset=3000.0))
    est = detector.estimate_gain_offset(f.counts)
    assert est["offset"] == pytest.approx(3000.0, abs=150)
    assert est["gain"] == pytest.approx(50.0, rel=0.35)
