"""Stage drift of a time series: frame-to-frame registration and the cumulative drift.

A crystal lattice makes the cross-correlation of two frames periodic, so the
shift between frames is found in two steps (:func:`register_drift`): coarse,
on frames smoothed until the lattice is gone, then fine, where the lattice pins
the sub-pixel remainder. Stage drift is smooth, so a step far from the typical
step is a failed registration and is replaced (:func:`drift_table`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.filters import window
from skimage.registration import phase_cross_correlation

__all__ = ["register_drift", "drift_table"]


def register_drift(previous: np.ndarray, current: np.ndarray, upsample: int = 20, smooth: float = 2.0,
                   coarse: float = 4.0, return_quality: bool = False):
    """Shift (dy, dx) [px] that registers ``current`` onto ``previous`` (sub-pixel cross-correlation).

    A crystal lattice (the graphene support, MoS₂) makes the cross-correlation
    periodic, with a peak at every lattice vector. So the shift is found in two
    steps: first on frames smoothed by ``coarse`` [px], where the lattice is gone
    and only the non-periodic content (grain shapes, contamination) is left, then,
    after moving ``current`` by that shift, on frames smoothed only by ``smooth``
    [px] (against shot noise), where the lattice pins the sub-pixel remainder. A
    Hann window tapers both frames (the frame edges do not move with the
    specimen and would pull the estimate towards zero).

    With ``return_quality`` the result is ``(dy, dx, z)``: ``z`` is the height of
    the coarse correlation peak above the median of the correlation map, in
    standard deviations of the map (kept in ``drift.csv`` as a diagnostic; it
    depends on the frame size and the smoothing, so :func:`process_series` judges
    a step by its consistency with the others instead). A frame with too little
    contrast (bare graphene at low dose) cannot be registered.
    """
    previous, current = np.asarray(previous, float), np.asarray(current, float)
    taper = window("hann", previous.shape)

    def prepare(a, sigma):
        a = ndimage.gaussian_filter(a, sigma) if sigma > 0 else a
        return (a - a.mean()) * taper  # without its mean, the taper itself does not correlate

    def correlate(a, b, sigma, factor):
        return phase_cross_correlation(prepare(a, sigma), prepare(b, sigma), upsample_factor=factor,
                                       normalization=None)[0]

    first = correlate(previous, current, coarse, 4) if coarse > 0 else np.zeros(2)
    moved = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(current), first)).real
    rest = correlate(previous, moved, smooth, upsample)
    if coarse > 0 and np.hypot(*rest) > coarse / 2:  # the fine step jumped to another lattice peak
        rest = np.zeros(2)
    shift = first + rest
    if not return_quality:
        return float(shift[0]), float(shift[1])
    a, b = prepare(previous, coarse), prepare(current, coarse)
    cc = np.fft.ifft2(np.fft.fft2(a) * np.conj(np.fft.fft2(b))).real
    z = (cc.max() - np.median(cc)) / (cc.std() + 1e-30)
    return float(shift[0]), float(shift[1]), float(z)


def drift_table(steps: np.ndarray, sampling: float, max_jump: float) -> pd.DataFrame:
    """Cumulative drift from frame-to-frame steps ``(n, 3)`` (dy, dx [px], quality), failed steps replaced.

    Stage drift is smooth: a step far from the typical step is a failed registration (a frame with too
    little contrast, bare graphene at low dose, gives a random answer) and is replaced by the median step.
    """
    n = len(steps)
    reliable = np.ones(n, bool)
    if n > 3:
        typical = np.median(steps[1:, :2], axis=0)
        deviation = np.hypot(*(steps[1:, :2] - typical).T)
        spread = 1.4826 * np.median(deviation)
        reliable[1:] = deviation <= max_jump + 4 * spread
        used = np.where(reliable[:, None], steps[:, :2], typical)
    else:
        used = steps[:, :2].copy()
    used[0] = 0.0
    shifts = np.cumsum(used, axis=0)
    drift = pd.DataFrame({"frame": np.arange(n), "dy_px": shifts[:, 0], "dx_px": shifts[:, 1],
                          "step_dy": steps[:, 0], "step_dx": steps[:, 1], "quality": steps[:, 2],
                          "reliable": reliable})
    drift["dy_A"], drift["dx_A"] = drift.dy_px * sampling, drift.dx_px * sampling
    return drift
