"""The ring fit on synthetic polar spectra with a known answer: accuracy, honest covariance, search, dense rings."""

from __future__ import annotations

import numpy as np
import pytest

from deepstem_utils.physics.optics import wavelength
from deepstem_utils.zemlin import polar, rings

LAM = wavelength(80e3)


def _synthetic(theta, shape=(512, 512), m=0.7, decay=8.0, psi=0.07, seed=0):
    """A polar spectrum whose bins hold B (1 - m cos Φ) times the noise of a mean of n exponential pixels."""
    rng = np.random.default_rng(seed)
    spec = polar.polar_spectrum(rng.normal(size=shape), 0.2)
    c1, a, b, c30 = theta
    delta = np.pi * LAM * spec.u * (c1 + a * spec.cos2 + b * spec.sin2) + 0.5 * np.pi * LAM**3 * c30 * spec.u**2
    contrast = m * np.exp(-decay * spec.u**2)  # rings fade at high frequency, as with a focal spread
    mean = np.exp(-3 * spec.u) * (1 - contrast * np.cos(2 * delta - 2 * psi))
    n = np.maximum(spec.count, 1)
    spec.power = np.where(spec.count > 0, mean * rng.gamma(n, 1 / n), 0.0)
    spec.log_power = None
    return spec


def test_fit_recovers_the_rings_with_an_honest_covariance():
    theta = np.array([-420.0, 60.0, -35.0, 2e4])
    z = []
    for seed in range(12):
        fit = rings.fit_rings(_synthetic(theta, m=0.9, decay=3.0, seed=seed), LAM, c30=2e4)
        assert fit.snr > 15
        err = fit.theta[:3] - theta[:3]
        z.append(err / np.sqrt(np.diag(fit.covariance)[:3]))
    z = np.array(z)
    assert np.abs(z).max() < 4.5, z
    # the covariance is not too small (within a factor 2: the tableau's solve adds the scatter between images
    # that the single fits do not see, see test_lsq)
    assert np.sqrt(np.mean(z**2)) < 2.0, np.sqrt(np.mean(z**2, axis=0))


def test_search_finds_astigmatism_larger_than_the_defocus():
    """C(φ) = C1 + A cos 2(φ - φA) changes sign over the sectors: each sector sees only |C|."""
    theta = np.array([-150.0, 250.0 * np.cos(1.0), 250.0 * np.sin(1.0), 0.0])
    spec = _synthetic(theta, seed=3)
    starts, score = rings.search_rings(spec, LAM)
    assert score > 10
    best = np.array(starts[0])
    assert np.abs(best - theta[:3]).max() < 40.0, (best, theta)
    fit = rings.fit_rings(spec, LAM)
    assert np.all(np.abs(fit.theta[:3] - theta[:3]) < 4 * np.sqrt(np.diag(fit.covariance)[:3])), fit.theta


def test_rings_finer_than_the_spectrum_are_left_out():
    """At 100 nm underfocus the rings of a 512 px image at 0.2 Å/px have fewer than 2.5 spectrum pixels per
    period beyond 0.49 1/Å; those bins are not fitted, and the fit finds the defocus from the resolved ones."""
    theta = np.array([-1000.0, 40.0, 0.0, 0.0])
    spec = _synthetic(theta, decay=0.0, seed=4)
    ok = rings.resolved(spec, LAM, theta)
    k = np.sqrt(spec.u)
    k_limit = 1 / (rings.MIN_PIXELS_PER_RING * 2 * LAM * 1040.0 * spec.k_step)  # the densest azimuth
    assert ok[k < 0.9 * k_limit].all() and not ok[k > 1.1 * k_limit / (1000 / 1040)].any()
    fit = rings.fit_rings(spec, LAM)
    assert np.all(np.abs(fit.theta[:3] - theta[:3]) < 4 * np.sqrt(np.diag(fit.covariance)[:3])), fit.theta


def test_no_rings_no_detection():
    """Noise alone: the matched filter stays near its chance level."""
    rng = np.random.default_rng(5)
    spec = polar.polar_spectrum(rng.poisson(400, (512, 512)).astype(float), 0.2)
    fit = rings.fit_rings(spec, LAM)
    assert fit.snr < 6.0


@pytest.mark.parametrize("m", [0.2, 0.6, 0.9])
def test_ring_template_derivative(m):
    phase = np.linspace(0, 2 * np.pi, 2001)
    t, slope = rings.ring_template(m, phase)
    numeric = np.gradient(t, phase)
    assert np.allclose(slope[1:-1], numeric[1:-1], atol=1e-3)
    assert abs(np.mean(rings.ring_template(m, np.linspace(0, 2 * np.pi, 400, endpoint=False))[0])) < 1e-3
