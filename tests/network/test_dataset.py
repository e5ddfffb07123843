"""Simulated frames with ground truth, and the distribution of probes they are drawn from."""

from __future__ import annotations

import numpy as np
import pytest

from deepstem_utils.network import dataset
from deepstem_utils.physics import imaging


def test_frame_is_reproducible_and_carries_its_truth():
    a = dataset.simulate_frame((96, 80), sampling=0.16, dose=1e4, rng=3)
    b = dataset.simulate_frame((96, 80), sampling=0.16, dose=1e4, rng=3)
    assert np.array_equal(a.counts, b.counts) and a.probe == b.probe
    assert a.counts.shape == a.obj.shape == (96, 80)
    assert a.electrons_per_pixel == pytest.approx(1e4 * 0.16**2)
    inside = (a.sites.x > 0) & (a.sites.x < 80 * 0.16) & (a.sites.y > 0) & (a.sites.y < 96 * 0.16)
    assert np.sum(inside & (a.sites.species == "Mo")) > 10


def test_counts_follow_the_linear_model_on_average():
    f = dataset.simulate_frame((128, 128), sampling=0.16, dose=1e6, rng=0)
    # the detected fraction is the object convolved with a PSF that sums to one: the means agree
    expected = f.obj.mean() * f.electrons_per_pixel
    assert f.counts.mean() == pytest.approx(expected, rel=0.02)


def test_random_draws_stay_in_their_ranges():
    rng = np.random.default_rng(1)
    for _ in range(20):
        p = dataset.random_probe(rng)
        assert 20 <= p.semiangle <= 35 and p.energy in (60e3, 80e3, 200e3, 300e3)
        assert abs(p.aberrations["C10"]) <= 40 and abs(p.aberrations["C30"]) <= 2e4
        f = dataset.simulate_frame((64, 64), rng=rng)
        assert dataset.SAMPLING_RANGE[0] <= f.sampling <= dataset.SAMPLING_RANGE[1]
        assert dataset.DOSE_RANGE[0] <= f.dose <= dataset.DOSE_RANGE[1]


def test_acquisition_settings_are_used():
    f = dataset.simulate_frame((64, 64), sampling=0.16, dose=1e4, rng=2,
                               acquisition=imaging.Acquisition(gain=10.0, offset=100.0))
    assert f.counts.min() >= 100.0 and np.allclose((f.counts - 100.0) % 10.0, 0)
