"""The generalised least-squares solve, and the design matrix against an independent implementation (abTEM)."""

from __future__ import annotations

import numpy as np
import pytest

from deepstem_utils.physics.optics import wavelength
from deepstem_utils.zemlin import lsq, tableau

TILTS = tableau.tableau_tilts((10.0, 20.0), 6)
TRUTH = {"C10": -380.0, "C12": 60.0, "phi12": 0.5, "C21": 1200.0, "phi21": -0.8, "C23": 900.0, "phi23": 1.0,
         "C30": 2e4}


def _noisy(seed, sigma=(0.3, 0.4, 0.5), extra=0.0):
    rng = np.random.default_rng(seed)
    apparent = lsq.apparent_aberrations(TRUTH, TILTS)
    covs = np.array([np.diag(np.square(sigma))] * len(TILTS))
    noise = rng.normal(size=apparent.shape) * np.array(sigma) + rng.normal(size=apparent.shape) * extra
    return apparent + noise, covs


def test_gls_uncertainties_match_the_scatter_of_the_solutions():
    """Images with known covariances: over many noise draws the solution scatters as its covariance says."""
    A, names = lsq.apparent_design_matrix(TILTS, 3)
    x_true = lsq.to_cartesian(TRUTH, names)
    z = []
    for seed in range(200):
        apparent, covs = _noisy(seed)
        sol = lsq.solve_linear(apparent, TILTS, 3, covariances=covs)
        z.append((sol.x - x_true) / np.sqrt(np.diag(sol.cov)))
    z = np.array(z)
    assert np.all(np.abs(z.mean(0)) < 0.25)
    # (the covariance is raised when chi² > dof by chance, so the spread is at most 1)
    assert np.all((0.8 < z.std(0)) & (z.std(0) < 1.1)), z.std(0)


def test_extra_scatter_is_found_and_covered():
    """Images that scatter 1 Å more than their fits say: the solve adds that variance and stays honest."""
    A, names = lsq.apparent_design_matrix(TILTS, 3)
    x_true = lsq.to_cartesian(TRUTH, names)
    z, floors = [], []
    for seed in range(100):
        apparent, covs = _noisy(seed, extra=1.0)
        sol = lsq.solve_linear(apparent, TILTS, 3, covariances=covs)
        floors.append(sol.floor)
        z.append((sol.x - x_true) / np.sqrt(np.diag(sol.cov)))
    assert np.median(floors) == pytest.approx(1.0, rel=0.4)
    assert np.mean(np.abs(np.array(z)) < 3) > 0.97


def test_no_redundancy_uses_the_fits_covariance_and_never_nan():
    apparent = lsq.apparent_aberrations({"C10": -300.0, "C12": 20.0, "phi12": 0.3}, [[0.0, 0.0]])
    ab, unc = lsq.solve_aberrations(apparent, [[0.0, 0.0]], order=1, covariances=[np.eye(3) * 0.04])
    assert ab["C10"] == pytest.approx(-300.0) and unc["C10"] == pytest.approx(0.2)
    assert all(np.isfinite(v) for v in unc.values())
    with pytest.raises(ValueError, match="no redundancy"):
        lsq.solve_aberrations(apparent, [[0.0, 0.0]], order=1)


def test_design_matrix_agrees_with_abtem():
    """abTEM's CTF, applied to a tilted wave, against the apparent (C1', a, b) of the design matrix.

    abTEM evaluates χ at the wave's own frequencies; the even part of its phase around the tilt,
    χ(τ + λq) + χ(τ - λq) - 2χ(τ), must equal 2πλq²(C1' + a cos 2φ + b sin 2φ) + πλ³C30 q⁴ with the
    package's apparent values, for every tilt: signs, angles, the x axis (abTEM's first array axis is the
    package's x, the image columns), the direction of the tilt and the units all enter.
    """
    abtem = pytest.importorskip("abtem")
    n, sampling, energy = 96, 0.25, 80e3
    lam = wavelength(energy)
    step = lam / (n * sampling)  # the tilt moves the spectrum by whole pixels [rad]
    delta = np.zeros((n, n), complex)
    delta[0, 0] = 1.0
    ctf = abtem.CTF(aberration_coefficients=TRUTH, energy=energy)
    wave = abtem.Waves(delta, energy=energy, sampling=sampling).apply_ctf(ctf)
    kernel = np.fft.fft2(np.asarray(wave.compute().array))  # exp(-iχ) on abTEM's (kx, ky) grid, kx along axis 0
    q = np.fft.fftfreq(n, sampling)
    i, j = np.meshgrid(np.arange(-6, 7), np.arange(-6, 7), indexing="ij")
    qx, qy = q[i % n], q[j % n]

    def mismatch(mx, my, model_tilt_mrad, transpose=False):
        """Largest |exp(-i 2Δe) abTEM - exp(-i 2Δe) package| around the tilt (mx, my) [spectrum pixels]."""
        c1, a, b = lsq.apparent_aberrations(TRUTH, model_tilt_mrad)[0]
        plus = kernel[(mx + i) % n, (my + j) % n]
        minus = kernel[(mx - i) % n, (my - j) % n]
        even = plus * minus / kernel[mx % n, my % n] ** 2
        x, y = (qy, qx) if transpose else (qx, qy)
        phi = np.arctan2(y, x)
        u = x**2 + y**2
        two_delta = (2 * np.pi * lam * u * (c1 + a * np.cos(2 * phi) + b * np.sin(2 * phi))
                     + np.pi * lam**3 * TRUTH["C30"] * u**2)
        return np.abs(even - np.exp(-1j * two_delta)).max()

    for mx, my in [(0, 0), (24, 0), (0, -24), (17, 17), (-21, 12)]:
        assert mismatch(mx, my, np.array([[mx, my]]) * step * 1e3) < 2e-3, (mx, my)
    # the check can fail: the tilt reversed, or x and y swapped, do not match
    assert mismatch(-21, 12, np.array([[21, -12]]) * step * 1e3) > 0.1
    assert mismatch(-21, 12, np.array([[-21, 12]]) * step * 1e3, transpose=True) > 0.1
