"""The physical limit: the ideal observer and the Cramér-Rao bound.

Both know everything a real method does not: every site's position, the
probe, the dose and the exact forward model (object function, linear image,
Poisson counts). They bound what any reconstruction can reach at a given dose.

* :func:`ideal_observer` classifies each S site as 0, 1 or 2 S atoms by the
  Poisson likelihood of the frame's counts under each hypothesis, with all
  other columns held at their true values.
* :func:`cramer_rao` gives the smallest possible RMS error of an unbiased
  estimate of a column position from the Fisher information of the counts.
"""

from __future__ import annotations

import math

import numpy as np

from ..physics import specimen
from ..physics.imaging import electrons_per_pixel, linear_image

__all__ = ["ideal_observer", "cramer_rao"]

_PATCH = 2.6  # half-width of the local window [Å]: holds the probe and the column's neighbours' overlap


def _corner(x: float, y: float, sampling: float, half: int) -> tuple[int, int]:
    return int(round(y / sampling)) - half, int(round(x / sampling)) - half


def _template(x: float, y: float, element: str, count: float, psf: np.ndarray, sampling: float, energy: float,
              half: int, corner: tuple[int, int] | None = None):
    """Expected image (per incident electron) of ``count`` atoms at (x, y), on the local window at ``corner``."""
    if corner is None:
        corner = _corner(x, y, sampling, half)
    lx, ly = x - corner[1] * sampling, y - corner[0] * sampling
    site = specimen.Sites(np.array([lx]), np.array([ly]), np.array(["t"], object), {element: np.array([count])})
    obj = specimen.object_function(site, (2 * half + 1, 2 * half + 1), sampling, energy=energy)
    return linear_image(obj, psf, boundary="constant"), corner


def _window(image: np.ndarray, corner, size: int):
    """The (size, size) window of ``image`` at ``corner`` with a mask of pixels inside the image."""
    r0, c0 = corner
    rows = np.arange(r0, r0 + size)
    cols = np.arange(c0, c0 + size)
    inside = ((rows >= 0) & (rows < image.shape[0]))[:, None] & ((cols >= 0) & (cols < image.shape[1]))[None, :]
    rr = np.clip(rows, 0, image.shape[0] - 1)
    cc = np.clip(cols, 0, image.shape[1] - 1)
    return image[np.ix_(rr, cc)], inside


def _setup(frame, psf):
    """PSF, electrons per pixel, expected counts and the local window's half-width and size."""
    if psf is None:
        psf = frame.probe.intensity((64, 64), frame.sampling)
    epp = electrons_per_pixel(frame.dose, frame.sampling)
    half = int(math.ceil(_PATCH / frame.sampling))
    return psf, epp, linear_image(frame.obj, psf) * epp, half, 2 * half + 1


def ideal_observer(frame, psf: np.ndarray | None = None) -> np.ndarray:
    """Species of every S site (S2 / S1 / vacancy) by maximum Poisson likelihood.

    Parameters
    ----------
    frame : dataset.Frame
        Counts with their ground truth (sites, object, probe, dose, sampling).
    psf : (py, px) ndarray, optional
        Probe intensity on the frame's grid (default: from ``frame.probe``).

    Returns
    -------
    (n_sites,) ndarray of str
        For S sites (ground truth ``S2``, ``S1`` or ``vacancy``) the most likely
        class; ``""`` for other sites.
    """
    s = frame.sampling
    psf, epp, expected, half, size = _setup(frame, psf)
    out = np.full(len(frame.sites), "", dtype=object)
    n_true = frame.sites.counts.get("S", np.zeros(len(frame.sites)))
    for n, sp in enumerate(frame.sites.species):
        if sp not in ("S2", "S1", "vacancy"):
            continue
        tpl, corner = _template(frame.sites.x[n], frame.sites.y[n], "S", 1.0, psf, s, frame.probe.energy, half)
        lam, inside = _window(expected, corner, size)
        counts, _ = _window(frame.counts, corner, size)
        if not inside.any():
            continue
        ll = []
        for k in (0, 1, 2):
            mu = np.clip(lam + (k - n_true[n]) * tpl * epp, 1e-12, None)
            ll.append(np.sum((counts * np.log(mu) - mu)[inside]))
        out[n] = ("vacancy", "S1", "S2")[int(np.argmax(ll))]
    return out


def cramer_rao(frame, species: str = "Mo", psf: np.ndarray | None = None, step: float = 0.005) -> np.ndarray:
    """Cramér-Rao bound on the RMS position error of each column of ``species`` [pm].

    The Fisher information of the Poisson counts for the column's (x, y), all
    else known: :math:`F_{ab} = \\sum_r \\partial_a\\lambda\\,\\partial_b\\lambda / \\lambda`.
    The bound on the radial RMS error is :math:`\\sqrt{\\operatorname{tr} F^{-1}}`.

    Parameters
    ----------
    frame : dataset.Frame
        Frame with ground truth.
    species : str
        Which columns (e.g. ``"Mo"``).
    psf : ndarray, optional
        Probe intensity on the frame's grid.
    step : float
        Finite-difference step for the derivatives [Å].

    Returns
    -------
    (n,) ndarray
        One bound per column of that species [pm] (NaN for columns at the edge).
    """
    s = frame.sampling
    psf, epp, expected, half, size = _setup(frame, psf)
    sites = frame.sites
    index = np.flatnonzero(sites.species == species)
    bounds = np.full(len(index), np.nan)
    for m, n in enumerate(index):
        x, y = sites.x[n], sites.y[n]
        elements = {e: c[n] for e, c in sites.counts.items() if c[n] > 0}
        corner = _corner(x, y, s, half)
        grads = []
        for dx, dy in ((step, 0.0), (0.0, step)):
            total_p = total_m = 0.0
            for element, count in elements.items():
                tp, _ = _template(x + dx, y + dy, element, count, psf, s, frame.probe.energy, half, corner)
                tm, _ = _template(x - dx, y - dy, element, count, psf, s, frame.probe.energy, half, corner)
                total_p, total_m = total_p + tp, total_m + tm
            grads.append((total_p - total_m) / (2 * step) * epp)
        lam, inside = _window(expected, corner, size)
        if inside.mean() < 0.99:
            continue
        lam = np.clip(lam, 1e-12, None)
        fisher = np.array([[np.sum(ga * gb / lam) for gb in grads] for ga in grads])
        try:
            bounds[m] = math.sqrt(np.trace(np.linalg.inv(fisher))) * 100
        except np.linalg.LinAlgError:
            pass
    return bounds
