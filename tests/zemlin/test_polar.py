"""The polar power spectrum: binning, the statistics of the log power, background removal, ring contrast."""

from __future__ import annotations

import numpy as np
import pytest

from deepstem_utils.zemlin import polar


def test_every_pixel_of_the_annulus_lands_in_one_bin():
    image = np.random.default_rng(0).normal(size=(128, 160))
    spec = polar.polar_spectrum(image, 0.2, n_sectors=36)
    ky = np.fft.fftfreq(128, 0.2)[:, None]
    kx = np.fft.rfftfreq(160, 0.2)[None, :]
    k = np.hypot(kx, ky)
    inside = (k >= spec.k_edges[0]) & (k < spec.k_edges[-1]) & (kx > 1.5 / (160 * 0.2)) & (np.abs(ky) > 1.5 / (128 * 0.2))
    assert spec.count.sum() == inside.sum()
    # bin centroids lie inside their bins
    k_centroid = np.sqrt(spec.u[spec.count > 0])
    assert k_centroid.min() >= spec.k_edges[0] and k_centroid.max() <= spec.k_edges[-1]
    assert np.all((spec.phi >= 0) & (spec.phi < np.pi))


def test_log_power_is_unbiased_with_its_stated_variance():
    """White noise: the periodogram is exponential; the corrected log of each bin's mean is log(S) on average,
    and its spread over the bins matches the weights (1 / trigamma(n))."""
    rng = np.random.default_rng(1)
    image = rng.normal(size=(512, 512))
    spec = polar.polar_spectrum(image, 0.2)
    log_p, w = polar.log_power(spec)
    use = w > 0
    level = np.log(np.sum(spec.power * spec.count) / spec.count.sum())  # white: one level everywhere
    z = (log_p[use] - level) * np.sqrt(w[use])
    assert abs(z.mean()) < 0.05  # unbiased to a few percent of one bin's spread
    assert z.std() == pytest.approx(1.0, abs=0.1)


def test_background_is_removed_and_rings_kept():
    """A steep, smooth background times rings of known phase: d follows the ring template, whatever the decay."""
    spec = polar.polar_spectrum(np.random.default_rng(2).normal(size=(512, 512)), 0.2)
    lam, defocus = 0.0418, 400.0
    phase = 2 * np.pi * lam * defocus * spec.u
    m = 0.6
    spec.power = np.exp(-30 * spec.u) * (1 - m * np.cos(phase)) * np.where(spec.count > 0, 1.0, 0.0)
    spec.log_power = None
    spec.count = np.where(spec.count > 0, 1000, 0)  # (almost) noiseless bins
    period = np.full(spec.u.shape, 1 / (lam * defocus))
    d = polar.normalised(spec, period)
    expected = np.log1p(-m * np.cos(phase)) - np.log(0.5 * (1 + np.sqrt(1 - m**2)))
    inner = (spec.u > 0.1) & (spec.u < 1.0) & (spec.count > 0)
    error = d[inner] - expected[inner]
    assert np.sqrt(np.mean(error**2)) < 0.07  # the ring survives (its own spread is 0.45)
    assert np.sqrt(np.mean(expected[inner] ** 2)) > 0.4
    # no quadrature part of the ring leaks in (which would shift the fitted rings)
    quadrature = np.sum(error * np.sin(phase[inner])) / np.sum(np.sin(phase[inner]) ** 2)
    assert abs(quadrature) < 0.01
    contrast = polar.contrast(spec, d, period)
    assert np.median(contrast[inner]) == pytest.approx(m, abs=0.05)


def test_tiles_average_independent_periodograms():
    image = np.random.default_rng(3).normal(size=(256, 256))
    whole = polar.polar_spectrum(image, 0.2)
    tiled = polar.polar_spectrum(image, 0.2, tile=128)
    assert whole.looks == 1 and tiled.looks == 4
    assert tiled.k_step == pytest.approx(2 * whole.k_step)
