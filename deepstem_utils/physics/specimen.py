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
from scipy import ndimage, special
from scipy.spatial import cKDTree

from ..core.constants import GRAPHENE_A, MOS2_A, Z
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
    "SPECIES",
    "random_mos2",
    "contamination",
]

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


# ----------------------------------------------------------------- defects
#: Species that :func:`random_mos2` can put in a frame's ground truth.
SPECIES = ("Mo", "S2", "S1", "vacancy", "Mo_adatom", "C")


def _mirror(sites: Sites, point, direction) -> Sites:
    """Reflect columns across the line through ``point`` along unit vector ``direction``."""
    p = np.stack([sites.x - point[0], sites.y - point[1]], axis=1)
    d = np.asarray(direction, float)
    along = p @ d
    reflected = 2 * along[:, None] * d[None, :] - p
    return Sites(reflected[:, 0] + point[0], reflected[:, 1] + point[1], sites.species.copy(),
                 {e: c.copy() for e, c in sites.counts.items()})


def _side(sites: Sites, point, normal) -> np.ndarray:
    return (sites.x - point[0]) * normal[0] + (sites.y - point[1]) * normal[1]


def _too_close(x, y, others_x, others_y, distance: float) -> np.ndarray:
    if len(others_x) == 0 or len(x) == 0:
        return np.zeros(len(x), bool)
    d, _ = cKDTree(np.stack([others_x, others_y], 1)).query(np.stack([x, y], 1))
    return d < distance


def _convex_flake(centre, radius: float, rng: np.random.Generator, corners: int = 6):
    """Half-planes (point, outward normal) of a random convex polygon around ``centre``."""
    angles = np.sort(rng.uniform(0, 2 * math.pi, corners))
    return [(np.asarray(centre) + radius * rng.uniform(0.8, 1.2) * np.array([math.cos(t), math.sin(t)]),
             np.array([math.cos(t), math.sin(t)])) for t in angles]


def _inside(sites: Sites, planes) -> np.ndarray:
    keep = np.ones(len(sites), bool)
    for point, normal in planes:
        keep &= _side(sites, point, normal) <= 0
    return keep


def _set_species(sites: Sites, index: np.ndarray, species: str, element: str, count: float):
    sites.species[index] = species
    sites.counts[element][index] = count


def random_mos2(
    extent: tuple[float, float],
    rng: np.random.Generator | int | None = None,
    *,
    s_vacancy: float = 0.06,
    s_divacancy: float = 0.02,
    mo_vacancy: float = 0.01,
    adatoms: float = 0.004,
    strain: float = 0.01,
    twin: float = 0.3,
    edge: float = 0.3,
    graphene: bool = True,
    a: float = MOS2_A,
) -> Sites:
    """A random defective MoS₂ monolayer on graphene, with its ground truth.

    Parameters
    ----------
    extent : (float, float)
        Field of view ``(width, height)`` [Å].
    rng : Generator or int, optional
        Random generator or seed.
    s_vacancy, s_divacancy : float
        Fraction of S₂ sites that lose one S (become ``"S1"``) or both
        (``"vacancy"``, kept as a site with no atom so it can be scored).
    mo_vacancy : float
        Fraction of Mo sites left empty (dropped: a missing Mo is not a site type of the contract).
    adatoms : float
        Mo adatoms per Å² of field of view (``"Mo_adatom"``), on hollow sites of
        MoS₂ or anywhere on the graphene.
    strain : float
        Maximum uniform in-plane strain (fraction).
    twin : float
        Probability of a mirror-twin boundary: the far side of a line along a
        zigzag direction is the mirror image of the near side, which swaps the
        S sublattice as in a 60° twin. (A simplified model: the 4|4P and 4|4E
        boundary cores are not modelled.)
    edge : float
        Probability that the MoS₂ is a flake (a random convex polygon) with
        edges and bare graphene around it, rather than covering the field.
    graphene : bool
        Add the graphene support (``"C"`` columns).
    a : float
        Lattice parameter [Å].

    Returns
    -------
    Sites
        Columns with ``species`` in :data:`SPECIES` and element ``counts``.

    Examples
    --------
    >>> sites = random_mos2((40.0, 40.0), rng=1)
    >>> sorted(set(sites.species)) <= sorted(SPECIES)
    True
    """
    rng = np.random.default_rng(rng)
    width, height = extent
    centre = np.array([width / 2, height / 2])
    rotation = rng.uniform(0, 2 * math.pi / 6)
    lattice = mos2_lattice(extent, a=a, rotation=rotation, origin=tuple(rng.uniform(0, a, 2)), margin=a * 2)
    # uniform strain about the centre
    e = rng.uniform(-strain, strain, 3) if strain > 0 else np.zeros(3)
    tensor = np.array([[1 + e[0], e[2]], [e[2], 1 + e[1]]])
    p = (np.stack([lattice.x, lattice.y], 1) - centre) @ tensor.T + centre
    lattice.x, lattice.y = p[:, 0], p[:, 1]

    if rng.random() < twin:
        direction = np.array([math.cos(rotation), math.sin(rotation)])  # a zigzag direction (along a1)
        mo = np.flatnonzero(lattice.species == "Mo")
        # the mirror line passes through the Mo column nearest a random point
        target = centre + rng.uniform(-0.3, 0.3, 2) * np.array([width, height])
        pivot = mo[np.argmin(np.hypot(lattice.x[mo] - target[0], lattice.y[mo] - target[1]))]
        point = np.array([lattice.x[pivot], lattice.y[pivot]])
        normal = np.array([-direction[1], direction[0]])
        near = lattice.select(_side(lattice, point, normal) >= -0.3)
        far = _mirror(near, point, direction)
        far = far.select(_side(far, point, normal) < -0.3)
        far = far.select(~_too_close(far.x, far.y, near.x, near.y, 0.9))
        lattice = near + far

    if rng.random() < edge:
        radius = rng.uniform(0.3, 0.5) * min(width, height)
        lattice = lattice.select(_inside(lattice, _convex_flake(centre + rng.uniform(-0.15, 0.15, 2) * width,
                                                              radius, rng)))

    lattice.species = lattice.species.astype(object)
    s_sites = np.flatnonzero(lattice.species == "S2")
    draw = rng.random(len(s_sites))
    _set_species(lattice, s_sites[draw < s_vacancy], "S1", "S", 1.0)
    _set_species(lattice, s_sites[(draw >= s_vacancy) & (draw < s_vacancy + s_divacancy)], "vacancy", "S", 0.0)
    mo_sites = np.flatnonzero(lattice.species == "Mo")
    lattice = lattice.select(~np.isin(np.arange(len(lattice)), mo_sites[rng.random(len(mo_sites)) < mo_vacancy]))

    n_ad = rng.poisson(adatoms * width * height)
    ax, ay = [], []
    for _ in range(50 * n_ad):
        if len(ax) >= n_ad:
            break
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        near = _too_close(np.array([x]), np.array([y]), np.r_[lattice.x, ax], np.r_[lattice.y, ay], 1.6)
        if not near[0]:
            ax.append(x)
            ay.append(y)
    n = len(ax)
    if n:
        lattice = lattice + Sites(np.array(ax), np.array(ay), np.array(["Mo_adatom"] * n, dtype=object),
                                  {"Mo": np.ones(n), "S": np.zeros(n)})
    if graphene:
        lattice = lattice + graphene_lattice(extent, rotation=rng.uniform(0, math.pi / 3),
                                             origin=tuple(rng.uniform(0, GRAPHENE_A, 2)))
    inside = (lattice.x > -a) & (lattice.x < width + a) & (lattice.y > -a) & (lattice.y < height + a)
    return lattice.select(inside)


def contamination(shape: tuple[int, int], sampling: float, rng: np.random.Generator | int | None = None,
                  level: float = 0.0, correlation: float = 4.0) -> np.ndarray:
    """A smooth, non-negative background (amorphous contamination, thickness) per pixel.

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)``.
    sampling : float
        Pixel size [Å].
    rng : Generator or int, optional
        Random generator or seed.
    level : float
        Mean added object value per Å² (scaled to per pixel here).
    correlation : float
        Correlation length of the patches [Å].
    """
    rng = np.random.default_rng(rng)
    if level <= 0:
        return np.zeros(shape)
    field = ndimage.gaussian_filter(rng.normal(size=shape), correlation / sampling, mode="wrap")
    field = np.clip(1 + field / (field.std() + 1e-12) * 0.7, 0, None)
    return level * sampling**2 * field / max(field.mean(), 1e-12)
