"""Classical reconstructions to compare DeepSTEM with, using the same probe.

Each takes a frame of counts and the probe intensity on the frame's pixel
grid and returns an object estimate in the units of :func:`reconstruct`
(``linear_image(obj, psf) ≈ image``), so every method is scored the same way.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .imaging import _as_image, linear_image

__all__ = ["gaussian", "wiener", "richardson_lucy", "richardson_lucy_path", "bm3d"]


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


def bm3d(image: np.ndarray) -> np.ndarray:
    """BM3D denoising of a frame of Poisson counts (no deconvolution).

    The counts are made Gaussian with unit variance by the Anscombe transform
    ``2 sqrt(x + 3/8)``, denoised by BM3D (the ``bm3d`` package, Mäkitalo and Foi's
    implementation) and brought back with the closed-form approximation of the
    exact unbiased inverse (Mäkitalo & Foi, IEEE TIP 20, 2011), clipped at 0.
    Below about one count per pixel the Anscombe transform is not accurate:
    there BM3D is a rough baseline.

    Parameters
    ----------
    image : (ny, nx) ndarray
        Detector counts (electrons).

    Returns
    -------
    (ny, nx) ndarray
        Denoised counts.
    """
    import bm3d as _bm3d

    counts = np.clip(_as_image(image), 0, None)
    stabilised = 2.0 * np.sqrt(counts + 3.0 / 8.0)
    d = np.maximum(np.asarray(_bm3d.bm3d(stabilised, sigma_psd=1.0), float), 0.8)
    inverse = 0.25 * d**2 + 0.25 * np.sqrt(1.5) / d - 11.0 / 8.0 / d**2 + 5.0 / 8.0 * np.sqrt(1.5) / d**3 - 0.125
    return np.clip(inverse, 0.0, None)
