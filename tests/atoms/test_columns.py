"""Bright columns of any image: peaks, sub-pixel centroids and integrated intensities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from deepstem_utils.atoms.columns import find_columns, integrated_intensity, smoothed_noise


def _gaussians(positions, amplitudes, shape=(80, 80), sampling=0.1, sigma=0.25):
    y, x = np.indices(shape) * sampling
    image = np.zeros(shape)
    for (px, py), a in zip(positions, amplitudes):
        image += a * np.exp(-0.5 * ((x - px) ** 2 + (y - py) ** 2) / sigma**2) / (2 * np.pi * sigma**2) * sampling**2
    return image


def test_integrated_intensity_holds_a_column_wherever_it_sits():
    for offset in (0.0, 0.03, 0.05, 0.07):  # sub-pixel positions: the disk weights move smoothly
        image = _gaussians([(4.0 + offset, 4.0 - offset)], [2.0], sigma=0.15)
        value = integrated_intensity(image, [4.0 + offset], [4.0 - offset], 0.1, radius=0.7)[0]
        assert value == pytest.approx(2.0, rel=0.01)


def test_integrated_intensity_ignores_what_lies_outside_the_frame():
    image = np.ones((10, 10))
    assert integrated_intensity(image, [0.0], [0.0], 1.0, radius=1.2)[0] < integrated_intensity(
        image, [5.0], [5.0], 1.0, radius=1.2)[0]


def test_columns_found_with_sub_pixel_positions():
    truth = [(2.03, 2.51), (5.47, 3.18), (3.9, 6.02)]
    image = _gaussians(truth, [3.0, 1.0, 2.0])
    found = find_columns(image, 0.1)
    assert len(found) == 3
    for x, y in truth:
        d = np.hypot(found.x - x, found.y - y).min()
        assert d < 0.03
    order = np.argsort(found.intensity.to_numpy())
    assert found.x.to_numpy()[order[-1]] == pytest.approx(2.03, abs=0.05)  # the brightest is the brightest


def test_nothing_but_a_flat_image_finds_nothing():
    assert find_columns(np.ones((40, 40)), 0.1).empty



@pytest.mark.parametrize("smooth", [0.0, 0.25])
def test_every_mo_column_of_a_multislice_frame_is_found(smooth):
    """A HAADF image is dense (every pixel within a probe's reach of a column), so the spread of its values is
    structure, not noise: a threshold of four times that spread hid most Mo columns of the committed multislice
    frames (14-60 % found in a Gaussian-filtered frame at 6·10⁴ e⁻/Å², 39-97 % at 10⁴). The noise is estimated
    from the finest wavelet details instead: at least 90 % of the Mo in every frame, raw or filtered."""
    from deepstem_utils.evaluation.multislice import load_multislice_set

    evaluation_set = load_multislice_set(Path(__file__).resolve().parents[2] / "data" / "multislice_eval.npz")
    for i in range(len(evaluation_set)):
        for dose in (1e4, 6e4):
            frame = evaluation_set.frame(i, dose, seed=0)
            s, sites = frame.sampling, frame.sites
            image = ndimage.gaussian_filter(frame.counts, smooth / s) if smooth else frame.counts
            found = find_columns(image, s)
            side = image.shape[0] * s
            mo = ((sites.x > 1) & (sites.x < side - 1) & (sites.y > 1) & (sites.y < side - 1)
                  & (np.asarray(sites.species).astype(str) == "Mo"))
            d = np.hypot(found.x.to_numpy()[:, None] - np.asarray(sites.x)[mo],
                         found.y.to_numpy()[:, None] - np.asarray(sites.y)[mo]).min(0)
            assert np.mean(d < 0.5) >= 0.9, (i, dose)


def test_the_noise_after_smoothing_is_that_of_white_noise():
    rng = np.random.default_rng(1)
    for sigma in (1.0, 2.5):
        noise = rng.normal(0, 3.0, (256, 256))
        assert smoothed_noise(noise, sigma) == pytest.approx(ndimage.gaussian_filter(noise, sigma).std(), rel=0.1)
