"""Classical reconstructions to compare DeepSTEM with, using the same probe.

Each takes a frame of counts and the probe intensity on the frame's pixel
grid and returns an object estimate in the units of :func:`reconstruct`
(``linear_image(obj, psf) ≈ image``), so every method is scored the same way.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .imaging import _as_image, linear_image

__all__ = ["gaussian", "wiener", "richardson_lucy", "richardson_lucy_path"]


def gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-filtered frame (no deconvolution); ``sigma`` in pixels."""
    return ndimage.gaussian_filter(_as_image(image), sigma, mode="reflect")


def wiener(image: np.ndarray, psf: np.ndarray, balance: float = 0.03) -> np.ndarray:
    """Wiener deconvolution with regularisation ``balance`` (relative to |OTF(0)|² = 1), clipped at 0."""
    from .model import wiener as _wiener
    import torch

    image = _as_image(image)
    scale = image.mean()
    out = _wiener(torch.from_numpy(image / scale)[None, None], torch.from_numpy(np.asarray(psf, float)), balance)
    return np.clip(out[0, 0].numpy(), 0, None) * scale


def richardson_lucy_path(image: np.ndarray, psf: np.ndarray, iterations: int):
    """Yield the Richardson-Lucy estimate after each of ``iterations`` iterations.

    The forward model is :func:`imaging.linear_image` (reflecting boundaries) and
    its adjoint is the correlation with the PSF; the start is the uniform mean.
    """
    image = _as_image(image)
    if image.min() < 0:
        raise ValueError("Richardson-Lucy needs non-negative counts")
    psf = np.asarray(psf, float)
    flipped = psf[::-1, ::-1]
    # flipping moves the centre from (py//2, px//2) to (py-1-py//2, ...): re-centre on odd grids
    if psf.shape[0] % 2 == 0 or psf.shape[1] % 2 == 0:
        flipped = np.roll(flipped, (1 - psf.shape[0] % 2, 1 - psf.shape[1] % 2), axis=(0, 1))
    estimate = np.full_like(image, image.mean())
    for _ in range(iterations):
        blurred = linear_image(estimate, psf)
        ratio = image / np.maximum(blurred, 1e-12)
        estimate = estimate * linear_image(ratio, flipped)
        yield estimate


def richardson_lucy(image: np.ndarray, psf: np.ndarray, iterations: int = 30) -> np.ndarray:
    """Richardson-Lucy deconvolution (Poisson maximum likelihood) after ``iterations`` iterations."""
    estimate = None
    for estimate in richardson_lucy_path(image, psf, iterations):
        pass
    return estimate
