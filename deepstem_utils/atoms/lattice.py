"""The MoS₂ lattice in an image: which columns are Mo, where the S sites and the hollow sites lie.

The bright columns are Mo candidates (:func:`honeycomb_mo`). A candidate with
at least two others at the lattice spacing ``a`` is a lattice Mo; a bright
column without is a Mo adatom. Around every lattice Mo the three S sites lie at
``a/√3`` along one of two triads of directions (the other triad points at
hollow sites); the triad is chosen locally from the intensity it holds, so
rotations, strain, grain and mirror-twin boundaries do not break the model. S
sites shared by neighbouring Mo are merged (:func:`mos2_sites`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ..core.constants import MOS2_A, MOS2_BOND_FRACTION
from .mixture import MO_LIKE, mo_level

__all__ = ["GHOST_REACH", "NoLattice", "MoS2Sites", "S_LIKE", "honeycomb_mo", "mos2_sites", "s_bonds", "within", "cluster"]

#: Lattice sites predicted up to this far beyond the frame's edge [Å] are fitted with the counts (not reported):
#: the probe's tails (d50 about 1 Å) reach that far into the frame.
GHOST_REACH = 1.5
#: Sites closer than this to the frame's edge [Å] are not reported (half a Mo-S bond: their disk is cut).
EDGE_MARGIN = 0.5
#: Predicted sites closer than this fraction of the Mo-S bond are one site (merged).
MERGE = 0.45
#: A predicted site within this fraction of the Mo-S bond of a bright column is that column, not a free site.
OCCUPIED = 0.6
#: A predicted S site is moved onto a detected dim column within this fraction of the Mo-S bond.
SNAP = 0.35


def _bond_shell(xy: np.ndarray, centres: np.ndarray, bond: float) -> list:
    """For each column ``centres`` (indices into ``xy``), the other columns within 1.2 Mo-S bonds and their
    distances [Å]: ``[(indices, distances), ...]``."""
    tree = cKDTree(xy)
    shells = []
    for i, near in zip(centres, tree.query_ball_point(xy[centres], 1.2 * bond)):
        near = np.array([j for j in near if j != i], int)
        shells.append((near, np.hypot(*(xy[near] - xy[i]).T)))
    return shells


def honeycomb_mo(columns: pd.DataFrame, a: float) -> np.ndarray:
    """Which columns are Mo: in the honeycomb, each Mo is brighter than its S neighbours.

    Columns at the Mo-S distance ``a/√3`` (±20 %) are neighbours. In MoS₂ every Mo
    has three S₂ neighbours and every S₂ three Mo, so a column brighter than the
    median of its neighbours is Mo. This uses the structure, not a fixed intensity
    ratio, so it holds whatever the Z-contrast of the detector and the scale of the
    object. Columns with no neighbour are Mo-like only if as bright as the Mo found
    elsewhere (adatoms on the support).
    """
    intensity = columns["intensity"].to_numpy()
    xy = columns[["x", "y"]].to_numpy()
    level = mo_level(intensity)
    keep = np.flatnonzero(intensity >= 0.2 * level)  # drop support (C) and noise peaks
    is_mo = np.zeros(len(columns), bool)
    if len(keep) < 3:
        return intensity >= MO_LIKE * level
    bond = a / math.sqrt(3)
    lonely = []
    for i, (near, d) in zip(keep, _bond_shell(xy[keep], np.arange(len(keep)), bond)):
        near = near[d > 0.8 * bond]
        if not len(near):
            lonely.append(i)
            continue
        is_mo[i] = intensity[i] > np.median(intensity[keep[near]])
    # the Mo level of the columns judged by their neighbours, when there are enough of them; in an image that
    # resolves no S column (a blurred or filtered frame) only a few bright ones have neighbours: the robust level
    found = float(np.median(intensity[is_mo])) if is_mo.sum() >= 5 else level
    lonely = np.array(lonely, int)
    is_mo[lonely[intensity[lonely] >= MO_LIKE * found]] = True
    return is_mo


class NoLattice(ValueError):
    """No MoS₂ lattice in the image (fewer than 3 bright columns)."""


@dataclass
class MoS2Sites:
    """Where the sites of the MoS₂ lattice lie in one image (positions [Å], ``(n, 2)`` arrays ``(x, y)``).

    Attributes
    ----------
    mo : DataFrame
        The Mo-like columns (``x``, ``y``, ``intensity``).
    on_lattice : (n_mo,) ndarray of bool
        Which of them have at least two Mo neighbours at the lattice spacing (the others are adatoms).
    s_sites : (n_s, 2) ndarray
        S sites inside the frame (reported).
    support : (n_s,) ndarray of int
        How many lattice Mo predict each S site (1 at an edge, 3 in the bulk).
    a : float
        The lattice parameter used [Å].
    hollows : (n_h, 2) ndarray
        Hollow sites inside the frame: no atom in MoS₂, so they measure "empty" in this very image.
    ghosts : (n_g, 2) ndarray
        Sites predicted at or just beyond the frame's edge (not reported; fitted with the counts).
    s_bonds : (n_mo,) ndarray of int
        How many S-like columns lie at the Mo-S distance of each Mo-like column with no other bright column
        that close (:func:`s_bonds`): a Mo of the layer, even where its Mo neighbours lie beyond the frame.
    """

    mo: pd.DataFrame
    on_lattice: np.ndarray
    s_sites: np.ndarray
    support: np.ndarray
    a: float
    hollows: np.ndarray
    ghosts: np.ndarray
    s_bonds: np.ndarray

    def in_layer(self, bonded: np.ndarray) -> np.ndarray:
        """Which Mo-like columns are Mo of the layer: ``bonded`` to a grain (``find.lattice_members``), or holding
        two S columns or more (a grain Mo at the frame's edge, its Mo neighbours beyond it)."""
        return bonded | (self.s_bonds >= 2)


def within(points: np.ndarray, extent: tuple[float, float], grow: float) -> np.ndarray:
    """Which ``(n, 2)`` points [Å] lie inside the frame ``[0, extent[0]] × [0, extent[1]]`` grown by ``grow`` [Å]
    on every side (shrunk when negative)."""
    points = np.asarray(points, float).reshape(-1, 2)
    return ((points[:, 0] > -grow) & (points[:, 1] > -grow) & (points[:, 0] < extent[0] + grow)
            & (points[:, 1] < extent[1] + grow))


def mos2_sites(columns: pd.DataFrame, obj: np.ndarray, sampling: float, a: float | None = None) -> MoS2Sites:
    """The MoS₂ lattice of an object function from its bright columns (:func:`find_columns`).

    Parameters
    ----------
    columns : DataFrame
        ``x``, ``y`` [Å] and ``intensity`` of every column found.
    obj : (ny, nx) ndarray
        The object function (the triad holding the S sites is chosen by its values).
    sampling : float
        Pixel size [Å].
    a : float, optional
        Lattice parameter [Å]; measured from the Mo-Mo distances when not given.

    Raises
    ------
    NoLattice
        Fewer than 3 Mo-like columns.
    """
    ny, nx = obj.shape
    bright = honeycomb_mo(columns, MOS2_A if a is None else a)
    mo = columns[bright].reset_index(drop=True)
    xy = mo[["x", "y"]].to_numpy()
    if len(mo) < 3:
        raise NoLattice("fewer than 3 bright columns: no MoS₂ found, so no sites are returned "
                        "(for another material use material=None)")
    tree = cKDTree(xy)
    a = _lattice_parameter(tree, xy) if a is None else a
    on_lattice, theta = _lattice_orientation(tree, xy, a)
    bond = a * MOS2_BOND_FRACTION
    candidates, hollows = _triads(obj, sampling, xy, on_lattice, theta, bond)
    s_sites, support = _merge(candidates, bond)
    s_sites = _snap(s_sites, columns[~bright][["x", "y"]].to_numpy(), bond)
    if len(s_sites):  # a predicted S site on top of a bright column (an adatom, a boundary Mo) is not an S site
        free = tree.query(s_sites)[0] > OCCUPIED * bond
        s_sites, support = s_sites[free], support[free]
    extent = ((nx - 1) * sampling, (ny - 1) * sampling)
    inside = within(s_sites, extent, -EDGE_MARGIN)
    ghosts = _ghosts(s_sites[~inside], xy, on_lattice, theta, a, extent, tree, bond)
    s_sites, support = s_sites[inside], support[inside]
    hollows = _free_hollows(hollows, tree, s_sites, bond, extent)
    return MoS2Sites(mo, on_lattice, s_sites, support, a, hollows, ghosts, s_bonds(columns, bright, a))


#: A column is S-like between these fractions of the Mo level (one S atom scatters about 0.19 of a Mo column,
#: two about 0.38: :data:`mixture.ONE_S_PER_MO`; below, noise and support).
S_LIKE = (0.1, MO_LIKE)


def s_bonds(columns: pd.DataFrame, bright: np.ndarray, a: float) -> np.ndarray:
    """For every bright (Mo-like) column, the S-like columns at the Mo-S distance ``a/√3`` (±20 %); 0 for a
    column with another bright column that close (a Mo on top of the layer, at a hollow or S site, has Mo
    there too).

    A Mo of the layer holds its S: even at the frame's edge, where its Mo neighbours (at ``a``) lie beyond the
    frame and it has no bond to a grain, two or three of its S columns are in view. A Mo adatom on the bare
    support has none.

    Examples
    --------
    >>> cols = pd.DataFrame({"x": [0.0, 1.82, -0.91, 10.0], "y": [0.0, 0.0, 1.58, 10.0],
    ...                      "intensity": [1.0, 0.4, 0.38, 1.0]})
    >>> s_bonds(cols, np.array([True, False, False, True]), 3.16).tolist()
    [2, 0]
    """
    xy = columns[["x", "y"]].to_numpy()
    intensity = columns["intensity"].to_numpy()
    bright = np.asarray(bright, bool)
    out = np.zeros(int(bright.sum()), int)
    if len(xy) < 2 or not bright.any():
        return out
    level = mo_level(intensity[bright])
    s_like = ~bright & (intensity >= S_LIKE[0] * level) & (intensity < S_LIKE[1] * level)
    bond = a / math.sqrt(3)
    for n, (near, d) in enumerate(_bond_shell(xy, np.flatnonzero(bright), bond)):
        if not np.any(bright[near]):
            out[n] = int(np.sum(s_like[near] & (d > 0.8 * bond)))
    return out


def _lattice_parameter(tree: cKDTree, xy: np.ndarray) -> float:
    """The median Mo-Mo distance between 2.5 and 4 Å (the nearest-neighbour shell), or :data:`MOS2_A`."""
    d, _ = tree.query(xy, k=min(7, len(xy)))
    near = d[:, 1:].ravel()
    near = near[(near > 2.5) & (near < 4.0)]
    return float(np.median(near)) if len(near) >= 3 else MOS2_A


def _lattice_orientation(tree: cKDTree, xy: np.ndarray, a: float) -> tuple[np.ndarray, np.ndarray]:
    """Which Mo have at least two neighbours at ``a`` (±12 %), and each one's local orientation [rad]
    from its Mo-Mo bonds (angles mod 60°)."""
    pairs = tree.query_pairs(1.12 * a, output_type="ndarray")
    dist = np.hypot(*(xy[pairs[:, 0]] - xy[pairs[:, 1]]).T) if len(pairs) else np.array([])
    good = pairs[dist > 0.88 * a] if len(pairs) else pairs
    n_lattice = np.bincount(good.ravel(), minlength=len(xy)) if len(good) else np.zeros(len(xy), int)
    angle6 = np.zeros(len(xy), complex)
    for i, j in good:
        vec = xy[j] - xy[i]
        z = np.exp(6j * math.atan2(vec[1], vec[0]))
        angle6[i] += z
        angle6[j] += z
    return n_lattice >= 2, np.angle(angle6) / 6


def _triads(obj, sampling, xy, on_lattice, theta, bond) -> tuple[np.ndarray, np.ndarray]:
    """Around every lattice Mo, the triad of directions holding more intensity gives S sites, the other
    hollow sites."""
    smoothed = ndimage.gaussian_filter(obj, 0.2 / sampling, mode="reflect")
    candidates, hollows = [], []
    for i in np.flatnonzero(on_lattice):
        triads = []
        for offset in (math.pi / 6, math.pi / 6 + math.pi / 3):  # the two triads (S or hollow)
            angles = theta[i] + offset + np.arange(3) * 2 * math.pi / 3
            triads.append(xy[i] + bond * np.stack([np.cos(angles), np.sin(angles)], 1))
        values = [ndimage.map_coordinates(smoothed, [p[:, 1] / sampling, p[:, 0] / sampling], order=1,
                                          mode="nearest").sum() for p in triads]
        chosen = int(np.argmax(values))
        candidates.extend(triads[chosen])
        hollows.extend(triads[1 - chosen])
    return np.array(candidates).reshape(-1, 2), np.array(hollows).reshape(-1, 2)


def _merge(candidates: np.ndarray, bond: float) -> tuple[np.ndarray, np.ndarray]:
    """One site per group of predictions (each bulk S site is predicted by three Mo), and its support."""
    s_sites, support = [], []
    if len(candidates):
        for members in cluster(candidates, MERGE * bond):
            s_sites.append(candidates[members].mean(0))
            support.append(len(members))
    return np.array(s_sites).reshape(-1, 2), np.array(support)


def _snap(s_sites: np.ndarray, dim: np.ndarray, bond: float) -> np.ndarray:
    """Predicted S sites moved onto the detected dim columns near them."""
    if len(dim) and len(s_sites):
        d, j = cKDTree(dim).query(s_sites)
        snap = d < SNAP * bond
        s_sites[snap] = dim[j[snap]]
    return s_sites


def _ghosts(edge_s, xy, on_lattice, theta, a, extent, tree, bond) -> np.ndarray:
    """Sites the lattice predicts at or just beyond the frame's edge: not reported, but their tails reach into
    the frame, so a fit of the counts must hold them (else their counts go to the edge sites next to them)."""
    mo_next = [xy[i] + a * np.stack([np.cos(t), np.sin(t)], 1)  # the six Mo neighbours of every lattice Mo
               for i in np.flatnonzero(on_lattice) for t in [theta[i] + np.arange(6) * math.pi / 3]]
    mo_next = np.vstack(mo_next) if mo_next else np.zeros((0, 2))
    beyond = ~within(mo_next, extent, 0.0)
    ghosts = np.vstack([edge_s[within(edge_s, extent, GHOST_REACH)],
                        mo_next[beyond & within(mo_next, extent, GHOST_REACH)]])
    if len(ghosts):
        ghosts = np.array([ghosts[m].mean(0) for m in cluster(ghosts, MERGE * bond)])
        ghosts = ghosts[tree.query(ghosts)[0] > OCCUPIED * bond]
    return ghosts


def _free_hollows(hollows, tree, s_sites, bond, extent) -> np.ndarray:
    """Hollow sites (the other triad), merged, away from every column and inside the frame."""
    if len(hollows):
        hollows = np.array([hollows[m].mean(0) for m in cluster(hollows, MERGE * bond)])
        free = tree.query(hollows)[0] > OCCUPIED * bond
        if len(s_sites):
            free &= cKDTree(s_sites).query(hollows)[0] > OCCUPIED * bond
        hollows = hollows[free]
        hollows = hollows[within(hollows, extent, -EDGE_MARGIN)]
    return hollows


def cluster(points: np.ndarray, distance: float) -> list[np.ndarray]:
    """Groups of ``(n, 2)`` points linked by distances below ``distance`` [Å] (indices per group)."""
    pairs = cKDTree(points).query_pairs(distance, output_type="ndarray")
    n = len(points)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n)) if len(pairs) else \
        coo_matrix((n, n))
    _, labels = connected_components(graph, directed=False)
    return [np.flatnonzero(labels == k) for k in range(labels.max() + 1)]


#: With ``counts``: an off-lattice bright column (a candidate Mo adatom) is reported only if its fitted counts
#: exceed this many standard errors.
