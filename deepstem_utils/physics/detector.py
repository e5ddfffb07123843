"""The detector's response, estimated from a frame itself: gain and dark offset.

A HAADF detector reports ``gain × electrons + offset (+ read noise)``. For
Poisson electrons the noise variance then grows linearly with the signal,

.. math:: \\operatorname{var} = g\\,(\\bar x - o) + \\sigma_r^2 ,

so a straight line through (local mean, local noise variance) pairs gives
the gain ``g`` (slope) and the offset ``o`` (where the variance would vanish),
the *photon-transfer* method. The noise variance is estimated from differences
of neighbouring pixels, which for an atomic-resolution frame (the probe spans
several pixels) are dominated by noise.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["estimate_gain_offset", "offset_cannot_exceed", "to_electrons"]

#: The estimated offset never exceeds this percentile of the frame (the darkest pixels bound it).
DARK_PERCENTILE = 0.1


def _block_mean(a: np.ndarray, window: int) -> np.ndarray:
    """Means of the non-overlapping ``window`` × ``window`` blocks of ``a`` (a partial last block dropped)."""
    ny, nx = a.shape[0] // window, a.shape[1] // window
    return a[:ny * window, :nx * window].reshape(ny, window, nx, window).mean((1, 3))


def estimate_gain_offset(image: np.ndarray, window: int = 16) -> dict:
    """Gain [counts/e⁻] and dark offset [counts] of a frame, by photon transfer.

    Parameters
    ----------
    image : (ny, nx) ndarray
        Raw detector output.
    window : int
        Side of the windows in which local mean and noise variance are taken [px].

    Returns
    -------
    dict
        ``gain``, ``offset``, ``read_noise`` (the variance left at the offset, as a
        standard deviation [counts], 0 when not resolvable), ``electrons_per_pixel``
        (mean electrons detected per pixel after the correction) and ``r2`` (quality of the line).

    Notes
    -----
    Pixel differences along the slow scan direction (rows) are used, so
    line-to-line jitter inflates the estimate a little; along the fast direction
    neighbouring pixels can share detector afterglow. The result is an estimate:
    report it as such.
    """
    x = np.asarray(image, dtype=np.float64)
    # noise variance from second differences: for white noise var(x[i-1] - 2x[i] + x[i+1]) = 6 var
    d2 = x[:-2, :] - 2 * x[1:-1, :] + x[2:, :]
    noise_var = _block_mean(d2**2, window) / 6.0
    mean = _block_mean(x[1:-1, :], window)
    if mean.size < 4:  # a frame smaller than a few windows: overlapping windows instead
        noise_var = ndimage.uniform_filter(d2**2, window)[::window, ::window] / 6.0
        mean = ndimage.uniform_filter(x[1:-1, :], window)[::window, ::window]
    mean, noise_var = mean.ravel(), noise_var.ravel()
    # the signal curvature adds to d2 where the image changes fastest: drop the top tail
    keep = noise_var <= np.percentile(noise_var, 90)
    mean, noise_var = mean[keep], noise_var[keep]
    if len(mean) < 4 or np.ptp(mean) <= 0:
        gain = float(noise_var.mean() / max(mean.mean(), 1e-12))
        return {"gain": gain, "offset": 0.0, "read_noise": 0.0, "electrons_per_pixel": float(x.mean() / gain),
                "r2": 0.0}
    slope, intercept = np.polyfit(mean, noise_var, 1)
    fit = slope * mean + intercept
    r2 = 1 - np.sum((noise_var - fit) ** 2) / max(np.sum((noise_var - noise_var.mean()) ** 2), 1e-300)
    if slope <= 0:
        # no visible shot-noise growth: treat the frame as counts
        return {"gain": 1.0, "offset": 0.0, "read_noise": float(np.sqrt(max(noise_var.mean(), 0))),
                "electrons_per_pixel": float(x.mean()), "r2": float(r2)}
    # the line reaches the read-noise floor at the offset; with unknown read noise take variance 0 there
    offset = float(-intercept / slope)
    offset = min(offset, float(np.percentile(x, DARK_PERCENTILE)))
    return {"gain": float(slope), "offset": offset, "read_noise": 0.0,
            "electrons_per_pixel": float((x.mean() - offset) / slope), "r2": float(r2)}


def offset_cannot_exceed(image: np.ndarray, level: float) -> bool:
    """Whether :func:`estimate_gain_offset` is bound to give an offset ≤ ``level`` [counts], without running it.

    True when enough pixels lie at or below ``level`` that the frame's
    :data:`DARK_PERCENTILE` percentile does (the estimate never exceeds it): a
    counted frame, whose dark pixels rule out a pedestal. A cheap count of pixels.
    """
    image = np.asarray(image)
    return bool(np.count_nonzero(image <= level) >= DARK_PERCENTILE / 100 * (image.size - 1) + 2)


def to_electrons(image: np.ndarray, gain: float, offset: float) -> np.ndarray:
    """``(image - offset) / gain``, clipped at 0: the frame in detected electrons."""
    return np.clip((np.asarray(image, dtype=np.float64) - offset) / gain, 0, None)
