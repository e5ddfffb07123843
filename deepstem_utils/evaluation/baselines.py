"""Classical reconstructions to compare DeepSTEM with, using the same probe.

Each takes a frame of counts and the probe intensity on the frame's pixel
grid and returns an object estimate in the units of :func:`reconstruct`
(``linear_image(obj, psf) ≈ image``), so every method is scored the same way.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import torch
from scipy import ndimage
from scipy.spatial import cKDTree

from ..atoms.mixture import ONE_S_PER_MO, S_CLASSES, fit_s_mixture, mixture_summary
from ..atoms.quantify import column_intensities, gaussian_kernel
from ..core.signals import real_array
from ..network.model import wiener as wiener_channel
from ..physics.imaging import linear_image

__all__ = ["GAUSSIAN_SIGMA", "gaussian", "wiener", "richardson_lucy", "richardson_lucy_path", "bm3d", "atomap_sites"]


#: Width (1σ) of the Gaussian filter the evaluation uses as a baseline and to locate columns in a frame [Å].
GAUSSIAN_SIGMA = 0.25


def gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-filtered frame (no deconvolution); ``sigma`` in pixels."""
    return ndimage.gaussian_filter(real_array(image), sigma, mode="reflect")


def wiener(image: np.ndarray, psf: np.ndarray, balance: float = 0.03) -> np.ndarray:
    """Wiener deconvolution with regularisation ``balance`` (relative to |OTF(0)|² = 1), clipped at 0."""
    image = real_array(image)
    scale = image.mean()
    out = wiener_channel(torch.from_numpy(image / scale)[None, None], torch.from_numpy(np.asarray(psf, float)), balance)
    return np.clip(out[0, 0].numpy(), 0, None) * scale


def richardson_lucy_path(image: np.ndarray, psf: np.ndarray, iterations: int):
    """Yield the Richardson-Lucy estimate after each of ``iterations`` iterations.

    The forward model is :func:`imaging.linear_image` (reflecting boundaries) and
    its adjoint is the correlation with the PSF; the start is the uniform mean.
    """
    image = real_array(image)
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
    import bm3d as _bm3d  # noqa: PLC0415  (an optional extra)

    counts = np.clip(real_array(image), 0, None)
    stabilised = 2.0 * np.sqrt(counts + 3.0 / 8.0)
    d = np.maximum(np.asarray(_bm3d.bm3d(stabilised, sigma_psd=1.0), float), 0.8)
    inverse = 0.25 * d**2 + 0.25 * np.sqrt(1.5) / d - 11.0 / 8.0 / d**2 + 5.0 / 8.0 * np.sqrt(1.5) / d**3 - 0.125
    return np.clip(inverse, 0.0, None)


def atomap_sites(image: np.ndarray, sites, sampling: float, one_atom_fraction: float = 0.5):
    """Atomap's 2-D Gaussian refinement at given sites, then the species from the columns' Gaussian volumes.

    The classical column-by-column analysis (Atomap, Nord et al. 2017): every
    column is fitted by a 2-D Gaussian on the frame itself (no reconstruction),
    which refines its position. Atomap fits each Gaussian after subtracting the
    lowest values around it, so its amplitudes are not linear in the atoms: a
    Gaussian fitted where there is no atom picks up its neighbours' flanks (on
    chapter 8's real frame the hollow sites read 0.85 of an S site). The volumes are
    therefore measured as model-based quantification does (StatSTEM): Gaussians of
    the median width Atomap fitted, at the refined positions, fitted jointly with
    one constant background to the whole frame (:func:`quantify.column_intensities`).
    Mo sites stay Mo; S sites are labelled S2 / S1 / vacancy by the same mixture
    model as :func:`find_atoms`, whose empty level comes from Gaussians at the
    hollow sites of the honeycomb (no atom there in MoS₂).

    Parameters
    ----------
    image : (ny, nx) ndarray
        The frame (counts).
    sites : DataFrame
        Starting sites: ``x``, ``y`` [Å] and ``species`` (``Mo``, ``Mo_adatom`` or an S-site class),
        e.g. from :func:`find_atoms` on another estimate of the same frame.
    sampling : float
        Pixel size [Å].
    one_atom_fraction : float
        Level of one S atom between an empty site and S₂ (1/2: the frame is linear in the atoms).

    Returns
    -------
    DataFrame
        ``x``, ``y`` [Å] (refined), ``species``, ``confidence``, ``intensity`` (Gaussian volume [counts]).
    """
    image = real_array(image)
    if len(sites) == 0:
        return pd.DataFrame({"x": [], "y": [], "species": [], "confidence": [], "intensity": []})
    with warnings.catch_warnings():  # atomap and its hyperspy imports warn about deprecations on import
        warnings.simplefilter("ignore")
        import atomap.api as am  # noqa: PLC0415  (an optional extra, slow to import)

    positions = np.column_stack([np.asarray(sites.x, float), np.asarray(sites.y, float)]) / sampling
    if len(positions) < 10:
        raise ValueError(f"Atomap's refinement needs at least 10 columns (it fits each among its nearest "
                         f"neighbours), got {len(positions)}")
    species = np.asarray(sites.species).astype(object).copy()
    hollows = _hollow_sites(positions, species.astype(str), image.shape)
    log = logging.getLogger("hyperspy")
    level = log.level
    log.setLevel(logging.ERROR)  # a Gaussian on an empty (hollow) site often ends its fit unconverged: expected
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lattice = am.Sublattice(np.vstack([positions, hollows]), image=image)
            lattice.find_nearest_neighbors()
            lattice.refine_atom_positions_using_2d_gaussian(show_progressbar=False)
    finally:
        log.setLevel(level)
    n = len(positions)
    x = np.array(lattice.x_position, float)[:n] * sampling
    y = np.array(lattice.y_position, float)[:n] * sampling
    lost = ~(np.isfinite(x) & np.isfinite(y))  # a fit that diverged (low dose): keep the starting position
    x[lost], y[lost] = positions[lost, 0] * sampling, positions[lost, 1] * sampling
    # one width for every column (the median Atomap fitted), volumes fitted jointly with one background; the
    # hollow sites stay where they were put (a Gaussian there drifts onto a neighbour)
    width = np.sqrt(np.abs(np.array(lattice.sigma_x, float)[:n] * np.array(lattice.sigma_y, float)[:n]))
    width = width[np.isfinite(width) & (width > 0.3) & ~lost]
    sigma = float(np.median(width)) if len(width) else 0.3 / sampling
    fitted, _ = column_intensities(image, np.concatenate([x / sampling, hollows[:, 0]]),
                                   np.concatenate([y / sampling, hollows[:, 1]]), gaussian_kernel(sigma), 1.0)
    volume, empty = fitted[:n], fitted[n:]
    confidence = np.ones(len(species))
    is_s = ~np.isin(species.astype(str), ["Mo", "Mo_adatom"])
    mo = volume[species == "Mo"]
    mixture = {}
    if is_s.any() and len(mo):
        post, params = fit_s_mixture(volume[is_s], unit0=ONE_S_PER_MO * float(np.median(mo)),
                                      empty=empty if len(empty) else np.zeros(1), alpha0=one_atom_fraction)
        species[is_s] = np.array(S_CLASSES, dtype=object)[post.argmax(1)]
        confidence[is_s] = post.max(1)
        mixture = mixture_summary(params)
    out = pd.DataFrame({"x": x, "y": y, "species": species.astype(str), "confidence": confidence,
                        "intensity": volume})
    out.attrs["mixture"] = mixture   # as find_atoms: the fitted class fractions and the S1-S2 separation
    return out


def _hollow_sites(positions: np.ndarray, species: np.ndarray, shape) -> np.ndarray:
    """Hollow sites of the MoS₂ honeycomb [px]: each S site mirrored through its Mo neighbours, kept where
    no column is near and inside the frame."""
    mo = positions[species == "Mo"]
    s = positions[~np.isin(species, ["Mo", "Mo_adatom"])]
    if len(mo) < 2 or len(s) < 2:
        return np.empty((0, 2))
    bond = float(np.median(cKDTree(mo).query(s)[0]))  # Mo-S distance in projection [px]
    pairs = cKDTree(s).query_ball_point(mo, 1.2 * bond)
    candidates = np.array([2 * m - s[j] for m, near in zip(mo, pairs) for j in near]).reshape(-1, 2)
    if not len(candidates):
        return candidates
    keep = cKDTree(positions).query(candidates)[0] > 0.6 * bond
    candidates = candidates[keep]
    margin = bond
    inside = ((candidates > margin) & (candidates < np.array(shape[::-1]) - 1 - margin)).all(1)
    candidates = candidates[inside]
    unique = []  # one point per hollow (each is reached from three Mo)
    for c in candidates:
        if all(np.hypot(*(c - u)) > 0.5 * bond for u in unique):
            unique.append(c)
    return np.array(unique).reshape(-1, 2)
