"""The least-squares solve: the design matrix against hand-derived and numerical Hessians, signs."""

from __future__ import annotations

import math

import numpy as np
import pytest

import deepstem_utils as ds
from deepstem_utils import zemlin
from deepstem_utils.physics import optics

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
            return float(optics.aberration_phase(np.hypot(x, y), np.arctan2(y, x), lam, ab)) / (2 * np.pi / lam)
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
    signs = zemlin.consistent_signs(apparent * flips[:, None], A, np.ones(len(TILTS)))
    np.testing.assert_array_equal(signs, flips)
