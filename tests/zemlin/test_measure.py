"""measure_aberrations end to end on simulated tableaux (known answers, noise, bad input)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import deepstem_utils as ds
from deepstem_utils import zemlin
from deepstem_utils.physics import optics

TILTS = zemlin.tableau_tilts((10.0, 20.0), 6)


# -------------------------------------------------------------------- full pipeline
OFFSET = -300.0  # the tableau is recorded 30 nm underfocus, as usual


def _measure(ab, seed=0, shape=(512, 512), dose=2e4, iterations=2, **kwargs):
    recorded = dict(ab)
    recorded["C10"] = ab.get("C10", 0.0) + OFFSET
    tableau = zemlin.simulate_tableau(recorded, TILTS, shape=shape, sampling=0.2, dose=dose, rng=seed,
                                      quadrature=(3, 1), angular_spread=0.0)
    return zemlin.measure_aberrations(tableau, TILTS, energy=80e3, sampling=0.2, defocus_offset=OFFSET,
                                      iterations=iterations, **kwargs)


@pytest.fixture(scope="module")
def no_aberrations():
    return _measure({})


def test_no_aberrations_gives_zeros(no_aberrations):
    rec, unc = no_aberrations
    assert abs(rec["C10"]) < 5.0
    assert rec["C12"] < 5.0
    assert rec["C21"] < 50.0
    assert rec["C23"] < 50.0
    assert abs(rec["C30"]) < 3000.0


@pytest.mark.parametrize(
    "ab,tol",
    [
        ({"C21": 1500.0, "phi21": 2.2}, {"C21": 50.0}),
        ({"C23": 1500.0, "phi23": -0.5}, {"C23": 60.0}),
        ({"C30": 4e4}, {"C30": 3000.0}),
    ],
)
def test_one_aberration_at_a_time(ab, tol):
    rec, _ = _measure(ab, seed=3)
    for key, t in tol.items():
        assert rec[key] == pytest.approx(ab[key], abs=t), f"{key}: {rec[key]} vs {ab[key]}"
        angle = "phi" + key[1:]
        if angle in ab:
            m = int(key[2])
            assert abs(math.remainder((rec[angle] - ab[angle]) * m, 2 * math.pi)) < 0.1, (rec[angle], ab[angle])


def test_probe_from_measured_aberrations_matches_true_probe():
    """All aberrations at once (C10 and C12 with their signs and angles included)."""
    ab = {"C10": -80.0, "C12": 60.0, "phi12": 1.0, "C21": 1000.0, "phi21": -1.0, "C23": 800.0, "phi23": 0.3,
          "C30": 2e4}
    rec, _ = _measure(ab, seed=5)
    assert rec["C10"] == pytest.approx(-80.0, abs=5.0)
    assert rec["C12"] == pytest.approx(60.0, abs=5.0)
    assert abs(math.remainder(2 * (rec["phi12"] - 1.0), 2 * math.pi)) < 0.1
    true_psf = ds.Probe(80e3, 30.0, ab).intensity((128, 128), 0.1)
    measured = {k: v for k, v in rec.items() if k in optics.POLAR_SYMBOLS}
    psf = ds.Probe(80e3, 30.0, measured).intensity((128, 128), 0.1)
    l1 = np.abs(psf - true_psf).sum() / true_psf.sum()
    assert l1 < 0.03, f"normalised L1 {l1:.4f}"


def test_noise_robustness():
    ab = {"C21": 1200.0, "phi21": 0.4, "C30": 2e4}
    rec, _ = _measure(ab, seed=7, dose=3e3)
    assert rec["C21"] == pytest.approx(1200.0, abs=150.0)


# ------------------------------------------------------------------------ bad input
def test_bad_input():
    stack = np.random.default_rng(0).random((3, 128, 128))
    tilts = zemlin.tableau_tilts((15.0,), 2)
    with pytest.raises(ValueError, match="one tilt per image"):
        zemlin.measure_aberrations(stack, tilts[:2], 80e3, 0.2, order=1)
    with pytest.raises(ValueError, match="stack of 2-D images"):
        zemlin.measure_aberrations(stack[0], tilts, 80e3, 0.2)
    bad = stack.copy()
    bad[1, 4, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        zemlin.measure_aberrations(bad, tilts, 80e3, 0.2, order=1)
    with pytest.raises(ValueError, match="cannot determine"):
        zemlin.measure_aberrations(stack, tilts, 80e3, 0.2, order=3)
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        zemlin.measure_aberrations(stack, np.zeros(3), 80e3, 0.2, order=1)
    with pytest.raises(ValueError, match="sampling"):
        zemlin.measure_aberrations(stack, tilts, 80e3, None, order=1)
