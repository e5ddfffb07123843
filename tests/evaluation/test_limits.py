"""The ideal observer and the Cramér-Rao bound."""

from __future__ import annotations

import numpy as np
import pytest

import deepstem_utils as ds
from deepstem_utils.evaluation import limits
from deepstem_utils.network import dataset

PROBE = ds.Probe(80e3, 30.0, {"C10": 10.0, "C12": 15.0, "C30": -5e3}, source_size=0.5)


def _inside(frame, margin=0.5):
    ny, nx = frame.counts.shape
    s = frame.sampling
    x, y = frame.sites.x, frame.sites.y
    return (x > margin) & (x < nx * s - margin) & (y > margin) & (y < ny * s - margin)


def test_ideal_observer_improves_with_dose_and_is_near_perfect_at_high_dose():
    accuracy = []
    for dose in (3e2, 1e5):
        f = dataset.simulate_frame((128, 128), sampling=0.16, dose=dose, probe=PROBE, rng=1, s_vacancy=0.15)
        io = limits.ideal_observer(f)
        sp = np.asarray(f.sites.species).astype(str)
        m = _inside(f) & np.isin(sp, ["S2", "S1", "vacancy"])
        accuracy.append(np.mean(io[m] == sp[m]))
    assert accuracy[1] > 0.99
    assert accuracy[0] < accuracy[1]


def test_cramer_rao_scales_as_one_over_sqrt_dose():
    f1 = dataset.simulate_frame((96, 96), sampling=0.16, dose=1e4, probe=PROBE, rng=2)
    f4 = dataset.simulate_frame((96, 96), sampling=0.16, dose=4e4, probe=PROBE, rng=2)
    b1, b4 = np.nanmedian(limits.cramer_rao(f1)), np.nanmedian(limits.cramer_rao(f4))
    assert b1 / b4 == pytest.approx(2.0, rel=0.05)
    assert 0.5 < b1 < 50  # pm: a sane order of magnitude at 1e4 e-/Å²


def test_cramer_rao_against_a_direct_fisher_sum():
    # an isolated Mo atom on a flat background: compare with the analytic-derivative Fisher information
    from deepstem_utils.physics import specimen
    from deepstem_utils.physics.imaging import electrons_per_pixel, linear_image

    sites = specimen.Sites(np.array([8.0]), np.array([8.0]), np.array(["Mo"], object), {"Mo": np.ones(1)})
    s = 0.16
    obj = specimen.object_function(sites, (100, 100), s) + 1e-4
    frame = dataset.Frame(counts=np.zeros((100, 100)), obj=obj, sites=sites, probe=PROBE, sampling=s, dose=1e4)
    psf = PROBE.intensity((64, 64), s)
    bound = limits.cramer_rao(frame, "Mo", psf)[0]
    epp = electrons_per_pixel(1e4, s)
    lam = linear_image(obj, psf) * epp
    # derivatives of the whole image under a shift of the atom (global, no window), by central differences
    h = 0.01
    grads = []
    for dx, dy in ((h, 0.0), (0.0, h)):
        plus = specimen.Sites(np.array([8.0 + dx]), np.array([8.0 + dy]), np.array(["Mo"], object), {"Mo": np.ones(1)})
        minus = specimen.Sites(np.array([8.0 - dx]), np.array([8.0 - dy]), np.array(["Mo"], object), {"Mo": np.ones(1)})
        diff = specimen.object_function(plus, (100, 100), s) - specimen.object_function(minus, (100, 100), s)
        grads.append(linear_image(diff, psf) * epp / (2 * h))
    gx, gy = grads
    fisher = np.array([[np.sum(gx * gx / lam), np.sum(gx * gy / lam)], [np.sum(gx * gy / lam), np.sum(gy * gy / lam)]])
    direct = np.sqrt(np.trace(np.linalg.inv(fisher))) * 100
    assert bound == pytest.approx(direct, rel=0.05)
