"""Zemlin tableau: conventions, the least-squares solve, the full measurement, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

import deepstem_utils as ds
from deepstem_utils import zemlin

TILTS = zemlin.tableau_tilts((10.0, 20.0), 6)


# ------------------------------------------------------------------ hand-derived rows
def test_design_matrix_hand_derived_rows():
    t = 0.015  # rad
    A, names = zemlin.apparent_design_matrix([[t * 1e3, 0.0]], order=3)
    col = {f"{s}_{p}": i for i, (s, n, m, p) in enumerate(names)}
    # defocus: C1' = C10
    np.testing.assert_allclose(A[:, col["C10_cos"]], [1, 0, 0])
    # two-fold astigmatism: a = C12 cos 2phi, b = C12 sin 2phi
    np.testing.assert_allclose(A[:, col["C12_cos"]], [0, 1, 0])
    np.testing.assert_allclose(A[:, col["C12_sin"]], [0, 0, 1])
    # coma along the tilt, chi/(2pi/lambda) = C21 (x^2 + y^2) x / 3: C1' = 4/3 C21 t, a = 2/3 C21 t
    np.testing.assert_allclose(A[:, col["C21_cos"]], [4 / 3 * t, 2 / 3 * t, 0], atol=1e-15)
    # coma perpendicular to the tilt, C21 (x^2 + y^2) y / 3 at (t, 0): fxy = 2 t / 3
    np.testing.assert_allclose(A[:, col["C21_sin"]], [0, 0, 2 / 3 * t], atol=1e-15)
    # three-fold astigmatism, C23 (x^3 - 3 x y^2) / 3: fxx = 2x, fyy = -2x -> C1' = 0, a = 2 t
    np.testing.assert_allclose(A[:, col["C23_cos"]], [0, 2 * t, 0], atol=1e-15)
    # spherical aberration: C1' = 2 C30 t^2, a = C30 t^2 (along the tilt)
    np.testing.assert_allclose(A[:, col["C30_cos"]], [2 * t**2, t**2, 0], atol=1e-15)


def test_design_matrix_matches_numerical_hessian():
    """The analytic Hessian equals finite differences of optics.aberration_phase."""
    rng = np.random.default_rng(0)
    lam = ds.wavelength(80e3)
    ab = {"C10": -50.0, "C12": 30.0, "phi12": 0.4, "C21": 900.0, "phi21": -0.7, "C23": 600.0, "phi23": 1.1,
          "C30": 2e4, "C32": 8e3, "phi32": 0.3, "C34": 5e3, "phi34": -0.2}
    for tau in rng.uniform(-0.02, 0.02, (5, 2)):
        h = 1e-4
        def chi(x, y):
            return float(ds.optics.aberration_phase(np.hypot(x, y), np.arctan2(y, x), lam, ab)) / (2 * np.pi / lam)
        x, y = tau
        fxx = (chi(x + h, y) - 2 * chi(x, y) + chi(x - h, y)) / h**2
        fyy = (chi(x, y + h) - 2 * chi(x, y) + chi(x, y - h)) / h**2
        fxy = (chi(x + h, y + h) - chi(x + h, y - h) - chi(x - h, y + h) + chi(x - h, y - h)) / (4 * h**2)
        expected = [(fxx + fyy) / 2, (fxx - fyy) / 2, fxy]
        np.testing.assert_allclose(zemlin.apparent_aberrations(ab, [tau * 1e3])[0], expected, rtol=1e-4, atol=1e-3)


def test_solve_recovers_aberrations_from_exact_apparent_values():
    ab = {"C10": -40.0, "C12": 25.0, "phi12": 0.9, "C21": 1500.0, "phi21": -2.0, "C23": 1200.0, "phi23": 0.5,
          "C30": -3e4, "C32": 0.0, "C34": 0.0}
    apparent = zemlin.apparent_aberrations(ab, TILTS)
    rec, unc = zemlin.solve_aberrations(apparent, TILTS, order=3)
    for key in ("C10", "C12", "C21", "C23", "C30"):
        assert rec[key] == pytest.approx(ab[key], abs=1e-6 * max(1, abs(ab[key])))
    for key in ("phi12", "phi21", "phi23"):
        m = int(key[-1])
        d = (rec[key] - ab[key]) * m
        assert math.remainder(d, 2 * math.pi) == pytest.approx(0, abs=1e-8)


def test_too_few_tilts_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot determine"):
        zemlin.solve_aberrations(np.zeros((1, 3)), [[0.0, 0.0]], order=2)
    one_ring = zemlin.tableau_tilts((15.0,), 2)
    with pytest.raises(ValueError, match="cannot determine"):
        zemlin.solve_aberrations(np.zeros((3, 3)), one_ring, order=3)


def test_sign_search_finds_consistent_signs():
    ab = {"C10": -300.0, "C21": 2000.0, "phi21": 0.3, "C30": 5e4}
    apparent = zemlin.apparent_aberrations(ab, TILTS)
    A, _ = zemlin.apparent_design_matrix(TILTS, 3)
    flips = np.where(np.random.default_rng(1).random(len(TILTS)) > 0.5, -1.0, 1.0)
    flips[0] = 1.0
    signs = zemlin._best_signs(apparent * flips[:, None], A, np.ones(len(TILTS)))
    np.testing.assert_array_equal(signs, flips)


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
    measured = {k: v for k, v in rec.items() if k in ds.optics.POLAR_SYMBOLS}
    psf = ds.Probe(80e3, 30.0, measured).intensity((128, 128), 0.1)
    l1 = np.abs(psf - true_psf).sum() / true_psf.sum()
    assert l1 < 0.03, f"normalised L1 {l1:.4f}"


def test_dense_rings_are_refitted_on_a_finer_spectrum():
    """Strong underfocus with astigmatism and C30: on the default spectrum (0.01 1/Å steps) the outer rings
    alias into a moiré and the fit locks onto it; the fit notices and redoes itself with finer steps."""
    ab = {"C10": -566.5, "C12": 191.6, "phi12": 0.4, "C30": -39393.0}
    image = zemlin.simulate_tableau(ab, np.zeros((1, 2)), shape=(1024, 1024), sampling=0.2, dose=1e4,
                                    focal_spread=50.0, angular_spread=0.1, rng=5)[0]
    true = zemlin.apparent_aberrations(ab, np.zeros((1, 2)))[0]
    coarse = zemlin.fit_diffractogram(image, 80e3, 0.2, tile=512)  # the finer spectrum forbidden
    fine = zemlin.fit_diffractogram(image, 80e3, 0.2)
    assert abs(coarse.C1 - true[0]) > 100.0  # the failure the refit exists for
    assert np.allclose([fine.C1, fine.a, fine.b], true, atol=10.0)


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
