"""Bright columns of an image: peaks, sub-pixel centroids and integrated intensities.

The first step of :func:`find_atoms`, and the one that holds for any material:
local maxima of the lightly smoothed image, refined by an intensity-weighted
centroid, each with the intensity integrated over a disk.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.restoration import estimate_sigma

__all__ = ["DISK_RADIUS", "find_columns", "integrated_intensity", "smoothed_noise"]

#: Radius of the disk a column's intensity is integrated over [Å] (inside half the Mo-S projected distance).
DISK_RADIUS = 0.7


def integrated_intensity(image: np.ndarray, x, y, sampling: float, radius: float = DISK_RADIUS) -> np.ndarray:
    """Sum of ``image`` within ``radius`` [Å] of each position ``(x, y)`` [Å].

    Pixels are weighted by the fraction of their area inside the disk
    (sub-sampled 4×4), so the sum does not jump as a column moves across pixels.
    """
    image = np.asarray(image, float)
    x, y = np.atleast_1d(np.asarray(x, float)), np.atleast_1d(np.asarray(y, float))
    r = radius / sampling
    half = int(np.ceil(r)) + 1
    sub = (np.arange(4) + 0.5) / 4 - 0.5
    out = np.zeros(len(x))
    for n, (cx, cy) in enumerate(zip(x / sampling, y / sampling)):
        i0, j0 = int(round(cy)), int(round(cx))
        rows = np.arange(i0 - half, i0 + half + 1)
        cols = np.arange(j0 - half, j0 + half + 1)
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        dy = rr[..., None, None] + sub[:, None] - cy
        dx = cc[..., None, None] + sub[None, :] - cx
        weight = np.mean(dy**2 + dx**2 <= r**2, axis=(-2, -1))
        inside = (rr >= 0) & (rr < image.shape[0]) & (cc >= 0) & (cc < image.shape[1])
        out[n] = np.sum(weight[inside] * image[rr[inside], cc[inside]])
    return out


def smoothed_noise(image: np.ndarray, sigma: float) -> float:
    """Standard deviation of the noise of ``image`` after a Gaussian filter of ``sigma`` [px].

    The noise of the image itself is estimated from its finest wavelet details
    (Donoho's median absolute deviation, :func:`skimage.restoration.estimate_sigma`),
    which atomic columns a few pixels wide barely reach; a Gaussian filter divides
    white noise by :math:`2\\sqrt{\\pi}\\,\\sigma` (for ``sigma`` ≳ 0.5 px).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> round(float(smoothed_noise(rng.normal(0, 1, (256, 256)), 2.0) * 4 * np.sqrt(np.pi)), 1)
    1.0
    """
    raw = float(estimate_sigma(np.asarray(image, float)))
    return float(raw / (2 * np.sqrt(np.pi) * max(float(sigma), 0.5)))


def find_columns(obj: np.ndarray, sampling: float, min_distance: float = 1.0, smooth: float = 0.2,
                 radius: float = DISK_RADIUS, threshold: float | None = None) -> pd.DataFrame:
    """Bright columns of an object function, with sub-pixel positions and integrated intensities.

    Parameters
    ----------
    obj : (ny, nx) ndarray
        Object function.
    sampling : float
        Pixel size [Å].
    min_distance : float
        Smallest distance between two columns [Å].
    smooth : float
        Gaussian smoothing before peak finding, standard deviation [Å].
    radius : float
        Radius of the disk for the integrated intensity and the centroid [Å].
    threshold : float, optional
        Minimum smoothed peak value; default: the background (20th percentile)
        plus four times the noise left after smoothing (:func:`smoothed_noise`),
        and at least 5 % of the range. For a sparse object function the spread of
        its values bounds the noise instead, whichever is lower: an image is
        never sparse (every pixel lies within a probe's reach of a column), so
        the spread of its values is structure, not noise.

    Returns
    -------
    DataFrame
        Columns ``x``, ``y`` [Å] and ``intensity`` (integrated over the disk, background removed).
    """
    smoothed = ndimage.gaussian_filter(obj, smooth / sampling, mode="reflect")
    background = float(np.percentile(smoothed, 20))
    if threshold is None:
        spread = 1.4826 * float(np.median(np.abs(smoothed - np.median(smoothed))))
        floor = 0.05 * (smoothed.max() - background)
        # the wavelet estimate (about 9 ms at 512²) only matters where the spread would raise the threshold
        noise = spread if 4 * spread <= floor else min(spread, smoothed_noise(obj, smooth / sampling))
        threshold = background + max(4 * noise, floor)
    peaks = peak_local_max(smoothed, min_distance=max(1, int(round(min_distance / sampling))),
                           threshold_abs=threshold, exclude_border=False)
    if len(peaks) == 0:
        return pd.DataFrame({"x": [], "y": [], "intensity": []})
    # sub-pixel: intensity-weighted centroid over a disk of radius/2 (background removed)
    r = max(1, int(round(0.5 * radius / sampling)))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disk = (yy**2 + xx**2) <= r * r
    padded = np.pad(np.clip(smoothed - background, 0, None), r, mode="constant")
    xs, ys = [], []
    for i, j in peaks:
        patch = padded[i:i + 2 * r + 1, j:j + 2 * r + 1] * disk
        total = patch.sum()
        dy = float((patch * yy).sum() / total) if total > 0 else 0.0
        dx = float((patch * xx).sum() / total) if total > 0 else 0.0
        ys.append((i + dy) * sampling)
        xs.append((j + dx) * sampling)
    x, y = np.array(xs), np.array(ys)
    raw_background = float(np.percentile(obj, 20))
    intensity = integrated_intensity(obj - raw_background, x, y, sampling, radius)
    return pd.DataFrame({"x": x, "y": y, "intensity": intensity})
