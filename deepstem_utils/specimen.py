"""Specimens in projection and their HAADF object functions.

A monolayer of 2H-MoS₂ seen along [001] is a honeycomb of Mo columns and S₂
columns (two S atoms on top of each other). The object function is a sum of
narrow per-atom peaks whose integrated weight is the atom's HAADF
cross-section, scaled as :math:`Z^{\\gamma}` (an assumption; see
:func:`haadf_cross_section`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import special

from .optics import wavelength

__all__ = [
    "MOS2_A",
    "GRAPHENE_A",
    "Z",
    "Sites",
    "mos2_lattice",
    "graphene_lattice",
    "haadf_cross_section",
    "object_function",
]

#: Lattice parameter of 2H-MoS₂ [Å].
MOS2_A = 3.16
#: Lattice parameter of graphene [Å].
GRAPHENE_A = 2.46
#: Atomic numbers used here.
Z = {"C": 6, "S": 16, "Se": 34, "Mo": 42}


@dataclass
class Sites:
    """Atomic columns in projection: ground truth for a frame.

    Attributes
    ----------
    x, y : (n,) ndarray
        Column positions [Å] (contract convention: x along columns, y along rows).
    species : (n,) ndarray of str
        Column label, e.g. ``"Mo"``, ``"S2"``, ``"S1"``, ``"C"``.
    counts : dict[str, (n,) ndarray]
        Number of atoms of each element in every column (e.g. ``counts["S"]``).
    """

    x: np.ndarray
    y: np.ndarray
    species: np.ndarray
    counts: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.x)

    def __add__(self, other: "Sites") -> "Sites":
        elements = set(self.counts) | set(other.counts)
        counts = {
            e: np.concatenate([self.counts.get(e, np.zeros(len(self))), other.counts.get(e, np.zeros(len(other)))])
            for e in elements
        }
        return Sites(
            np.concatenate([self.x, other.x]),
            np.concatenate([self.y, other.y]),
            np.concatenate([self.species, other.species]),
            counts,
        )

    def select(self, mask: np.ndarray) -> "Sites":
        """The subset of columns where ``mask`` is True."""
        return Sites(self.x[mask], self.y[mask], self.species[mask], {e: c[mask] for e, c in self.counts.items()})


def _honeycomb(extent, a: float, rotation: float, origin, margin: float):
    """Two sublattices of a honeycomb covering ``extent`` = (width, height) [Å] plus a margin."""
    width, height = extent
    a1 = np.array([a, 0.0])
    a2 = np.array([a / 2, a * math.sqrt(3) / 2])
    basis = [np.array([0.0, 0.0]), (a1 + a2) / 3]
    c, s = math.cos(rotation), math.sin(rotation)
    rot = np.array([[c, -s], [s, c]])
    centre = np.array([width / 2, height / 2])
    reach = math.hypot(width, height) / 2 + margin
    n = int(math.ceil(reach / a * 2 / math.sqrt(3))) + 2
    i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    cells = i.ravel()[:, None] * a1 + j.ravel()[:, None] * a2
    out = []
    for b in basis:
        p = (cells + b + np.asarray(origin, float)) @ rot.T + centre
        keep = (p[:, 0] > -margin) & (p[:, 0] < width + margin) & (p[:, 1] > -margin) & (p[:, 1] < height + margin)
        out.append(p[keep])
    return out


def mos2_lattice(
    extent: tuple[float, float],
    a: float = MOS2_A,
    rotation: float = 0.0,
    origin: tuple[float, float] = (0.0, 0.0),
    margin: float = 2.0,
) -> Sites:
    """A perfect monolayer of 2H-MoS₂ in projection.

    Parameters
    ----------
    extent : (float, float)
        Field of view ``(width, height)`` [Å].
    a : float
        Lattice parameter [Å].
    rotation : float
        In-plane rotation [rad].
    origin : (float, float)
        Shift of the lattice before rotation [Å].
    margin : float
        Columns are kept up to this far outside the field of view [Å], so that
        the image of the edge pixels is complete.

    Returns
    -------
    Sites
        Mo columns (``counts["Mo"] = 1``) and S₂ columns (``counts["S"] = 2``).
    """
    mo, s = _honeycomb(extent, a, rotation, origin, margin)
    n_mo, n_s = len(mo), len(s)
    return Sites(
        np.concatenate([mo[:, 0], s[:, 0]]),
        np.concatenate([mo[:, 1], s[:, 1]]),
        np.array(["Mo"] * n_mo + ["S2"] * n_s, dtype=object),
        {"Mo": np.r_[np.ones(n_mo), np.zeros(n_s)], "S": np.r_[np.zeros(n_mo), 2 * np.ones(n_s)]},
    )


def graphene_lattice(
    extent: tuple[float, float], rotation: float = 0.0, origin=(0.0, 0.0), margin: float = 2.0
) -> Sites:
    """A graphene support sheet in projection (one C per column)."""
    a, b = _honeycomb(extent, GRAPHENE_A, rotation, origin, margin)
    p = np.concatenate([a, b])
    n = len(p)
    return Sites(p[:, 0], p[:, 1], np.array(["C"] * n, dtype=object), {"C": np.ones(n)})


def haadf_cross_section(
    Z: float | np.ndarray,
    energy: float = 80e3,
    inner: float = 60.0,
    outer: float = 200.0,
    gamma: float | None = 1.7,
) -> np.ndarray:
    """HAADF cross-section of one atom [Å²].

    Parameters
    ----------
    Z : float or ndarray
        Atomic number.
    energy : float
        Beam energy [eV].
    inner, outer : float
        Detector inner and outer angles [mrad].
    gamma : float or None
        Z-exponent. With a number (default 1.7, an assumption; Krivanek et al.
        2010 found about 1.64 for a medium-angle detector) the cross-section is
        the screened-Rutherford value of Mo scaled by :math:`(Z/42)^\\gamma`.
        With None, the screened-Rutherford value for ``Z`` itself.

    Notes
    -----
    Screened (Wentzel) Rutherford scattering, :math:`d\\sigma/d\\Omega =
    4 Z^2 / [a_0^2 (q^2 + R^{-2})^2]` with the relativistic Bohr radius
    :math:`a_0` and the screening radius :math:`R = 0.885\\,a_B Z^{-1/3}`,
    integrated over the detector. It is an order-of-magnitude estimate: it
    sets the absolute number of counts, while the relative contrast comes from
    the Z-exponent.
    """
    def wentzel(z):
        lam = wavelength(energy)
        k = 2 * math.pi / lam  # [1/Å]
        gamma_rel = 1 + energy / 510998.95
        a0 = 0.529177 / gamma_rel
        inv_r2 = (np.asarray(z, float) ** (1 / 3) / (0.885 * 0.529177)) ** 2
        t1, t2 = inner * 1e-3, outer * 1e-3
        return 4 * np.asarray(z, float) ** 2 / a0**2 * math.pi / k**2 * (
            1 / (k**2 * t1**2 + inv_r2) - 1 / (k**2 * t2**2 + inv_r2)
        )

    if gamma is None:
        return wentzel(Z)
    return wentzel(42) * (np.asarray(Z, float) / 42.0) ** gamma


def _pixel_weights(coord: np.ndarray, sampling: float, width: float, half: int):
    """Fraction of a 1-D Gaussian (sigma ``width``) in each of 2*half+1 pixels around ``coord``."""
    centre = np.round(coord / sampling).astype(int)
    offsets = np.arange(-half, half + 1)
    pixels = centre[:, None] + offsets[None, :]
    edges_lo = (pixels - 0.5) * sampling - coord[:, None]
    edges_hi = edges_lo + sampling
    scale = math.sqrt(2) * width
    w = 0.5 * (special.erf(edges_hi / scale) - special.erf(edges_lo / scale))
    return pixels, w


def object_function(
    sites: Sites,
    shape: tuple[int, int],
    sampling: float,
    energy: float = 80e3,
    gamma: float = 1.7,
    width: float = 0.12,
    background: float = 0.0,
) -> np.ndarray:
    """Render the HAADF object function of a set of columns.

    Parameters
    ----------
    sites : Sites
        Columns with their element counts.
    shape : (int, int)
        ``(ny, nx)``.
    sampling : float
        Pixel size [Å].
    energy : float
        Beam energy [eV] (sets the absolute cross-sections).
    gamma : float
        Z-exponent of the cross-section (assumption, default 1.7).
    width : float
        Standard deviation of each atom's peak [Å]: thermal vibration and the
        spatial extent of high-angle scattering (assumption, default 0.12 Å).
    background : float
        Uniform background (amorphous contamination, thickness) added per pixel.

    Returns
    -------
    (ny, nx) ndarray
        Dimensionless scattering probability per pixel; each atom integrates
        to its cross-section [Å²] divided by the pixel area [Å²].
    """
    ny, nx = shape
    obj = np.full((ny, nx), float(background))
    half = max(2, int(math.ceil(5 * width / sampling)))
    for element, count in sites.counts.items():
        keep = count > 0
        if not np.any(keep):
            continue
        weight = count[keep] * haadf_cross_section(Z[element], energy, gamma=gamma) / sampling**2
        rows, wy = _pixel_weights(sites.y[keep], sampling, width, half)
        cols, wx = _pixel_weights(sites.x[keep], sampling, width, half)
        patch = weight[:, None, None] * wy[:, :, None] * wx[:, None, :]
        rr = np.broadcast_to(rows[:, :, None], patch.shape)
        cc = np.broadcast_to(cols[:, None, :], patch.shape)
        inside = (rr >= 0) & (rr < ny) & (cc >= 0) & (cc < nx)
        np.add.at(obj, (rr[inside], cc[inside]), patch[inside])
    return obj
