"""Electron optics: wavelength, the aberration phase χ (conventions against textbook values)."""

from __future__ import annotations

import numpy as np
import pytest

import deepstem_utils as ds
from deepstem_utils.physics import optics


def test_wavelength_known_values():
    # Kirkland, Advanced Computing in Electron Microscopy, table 2.2 (relativistic)
    assert optics.wavelength(100e3) == pytest.approx(0.03701, abs=2e-5)
    assert optics.wavelength(200e3) == pytest.approx(0.02508, abs=2e-5)
    assert optics.wavelength(300e3) == pytest.approx(0.01969, abs=2e-5)


@pytest.mark.parametrize("bad", [0, -80e3, float("nan")])
def test_wavelength_rejects_bad_energy(bad):
    with pytest.raises(ValueError, match="energy"):
        optics.wavelength(bad)


def test_pure_defocus_is_textbook_phase():
    lam = optics.wavelength(80e3)
    k = np.linspace(0, 1.0, 11)
    chi = optics.aberration_phase(k * lam, np.zeros_like(k), lam, {"C10": -250.0})
    # chi = pi * lambda * C10 * k^2 (small-angle expansion of the defocus term)
    np.testing.assert_allclose(chi, np.pi * lam * (-250.0) * k**2, rtol=1e-12)


def test_spherical_aberration_phase():
    lam = optics.wavelength(200e3)
    k = 0.8
    chi = optics.aberration_phase(np.array(k * lam), np.array(0.3), lam, {"C30": 1e7})
    assert chi == pytest.approx(0.5 * np.pi * 1e7 * lam**3 * k**4)


@pytest.mark.parametrize(
    "symbol,m", [("C12", 2), ("C21", 1), ("C23", 3), ("C32", 2), ("C34", 4), ("C41", 1), ("C45", 5), ("C56", 6)]
)
def test_chi_m_fold_symmetry(symbol, m):
    """An aberration of azimuthal order m is unchanged by a rotation of 2 pi / m and
    changes sign under a rotation of pi / m."""
    lam = optics.wavelength(80e3)
    rng = np.random.default_rng(0)
    alpha = rng.uniform(0, 0.03, 50)
    phi = rng.uniform(-np.pi, np.pi, 50)
    ab = {symbol: 123.0, "phi" + symbol[1:]: 0.4}
    chi = optics.aberration_phase(alpha, phi, lam, ab)
    np.testing.assert_allclose(optics.aberration_phase(alpha, phi + 2 * np.pi / m, lam, ab), chi, atol=1e-9)
    np.testing.assert_allclose(optics.aberration_phase(alpha, phi + np.pi / m, lam, ab), -chi, atol=1e-9)


def test_round_aberrations_are_rotationally_symmetric():
    lam = optics.wavelength(80e3)
    alpha = np.full(7, 0.02)
    phi = np.linspace(-np.pi, np.pi, 7)
    chi = optics.aberration_phase(alpha, phi, lam, {"C10": 50.0, "C30": -1e4, "C50": 1e6})
    np.testing.assert_allclose(chi, chi[0])


def test_angle_rotates_the_pattern():
    lam = optics.wavelength(80e3)
    alpha, phi = np.array([0.02]), np.array([0.7])
    a = optics.aberration_phase(alpha, phi, lam, {"C23": 500.0, "phi23": 0.2})
    b = optics.aberration_phase(alpha, phi - 0.2, lam, {"C23": 500.0})
    assert a == pytest.approx(b)


def test_unknown_aberration_name_is_an_error():
    with pytest.raises(ValueError, match="unknown aberration"):
        ds.Probe(80e3, 30.0, {"Cs": 1e4})
