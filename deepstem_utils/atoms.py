"""``find_atoms()``: columns, lattice and species from an object function.

1. **Columns**: local maxima of the lightly smoothed object
   (:func:`skimage.feature.peak_local_max`), refined to sub-pixel precision by
   an intensity-weighted centroid, each with its integrated intensity.
2. **Lattice** (``material="MoS2"``): the bright columns are Mo candidates. A
   candidate with at least two others at the lattice spacing ``a`` is a lattice
   Mo; a bright column without is a Mo adatom. Around every lattice Mo the
   three S sites lie at ``a/√3`` along one of two triads of directions (the
   other triad points at hollow sites); the triad is chosen locally from the
   intensity it holds, so rotations, strain, grain and mirror-twin boundaries
   do not break the model. S sites shared by neighbouring Mo are merged.
3. **Species**: the integrated intensity of every S site is modelled as a
   mixture of three Gaussians for 0, 1 and 2 S atoms with means ``b``,
   ``b + 2αu`` and ``b + 2u`` (``b``: background, ``u``: one S atom, ``α``: where a
   single S sits between empty and full, 1/2 for a linear image, fitted for a
   reconstruction) and variances growing with the number of atoms, fitted by
   expectation-maximisation. Each site gets the class under which its intensity
   is most likely (classes weighed equally, as by the ideal observer; see
   ``class_prior``) and that normalised likelihood as its confidence. No fixed
   thresholds.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree

__all__ = ["find_atoms", "find_columns", "MOS2_A"]

MOS2_A = 3.16  # [Å]
_S_CLASSES = ("vacancy", "S1", "S2")


def _as_object(obj, sampling):
    if hasattr(obj, "axes_manager") and hasattr(obj, "data"):
        if sampling is None:
            from .io import sampling_of

            sampling = sampling_of(obj)
        obj = obj.data.compute() if hasattr(obj.data, "compute") else obj.data
    array = np.asarray(obj)
    if array.ndim != 2:
        raise ValueError(f"the object function must be 2-D (ny, nx), got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or array.dtype == bool or np.iscomplexobj(array):
        raise TypeError(f"the object function must hold real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError("the object function contains NaN or inf; replace the bad pixels first")
    if min(array.shape) < 8:
        raise ValueError(f"the object function is only {array.shape[0]}x{array.shape[1]} px")
    if sampling is None:
        raise ValueError("sampling is required for an array: pass sampling=<Å per pixel>")
    sampling = float(sampling)
    if not np.isfinite(sampling) or sampling <= 0:
        raise ValueError(f"sampling must be a positive pixel size in Å, got {sampling!r}")
    return array, sampling


def _integrate(image, x, y, sampling, radius):
    from .metrics import integrated_intensity

    return integrated_intensity(image, x, y, sampling, radius)


def find_columns(obj: np.ndarray, sampling: float, min_distance: float = 1.0, smooth: float = 0.2,
                 radius: float = 0.7, threshold: float | None = None) -> pd.DataFrame:
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
        Minimum smoothed peak value; default: the background plus 4 robust
        standard deviations of the smoothed object.

    Returns
    -------
    DataFrame
        Columns ``x``, ``y`` [Å] and ``intensity`` (integrated over the disk, background removed).
    """
    from skimage.feature import peak_local_max

    smoothed = ndimage.gaussian_filter(obj, smooth / sampling, mode="reflect")
    background = float(np.percentile(smoothed, 20))
    if threshold is None:
        spread = 1.4826 * float(np.median(np.abs(smoothed - np.median(smoothed))))
        threshold = background + max(4 * spread, 0.05 * (smoothed.max() - background))
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
    intensity = _integrate(obj - raw_background, x, y, sampling, radius)
    return pd.DataFrame({"x": x, "y": y, "intensity": intensity})


def _mo_threshold(values: np.ndarray) -> float:
    """Intensity above which a column is Mo-like.

    Z-contrast fixes the ratios: an S₂ column scatters 0.31-0.42 of a Mo column
    for Z-exponents 1.6-2.0, an S₁ column half that, a C column a few per cent.
    The threshold sits at the geometric mean of the S₂ and Mo levels, 0.62 of the
    Mo level, which is found iteratively from the brightest columns.
    """
    level = float(np.percentile(values, 95))
    for _ in range(5):
        above = values[values >= 0.62 * level]
        if len(above) == 0:
            break
        level = float(np.median(above))
    return 0.62 * level


def _fit_s_mixture(values: np.ndarray, unit0: float, empty: np.ndarray, iterations: int = 200,
                   dopant_ratio: tuple[float, float] | None = None, alpha0: float = 0.5, fit_alpha: bool = True,
                   class_prior: str = "equal"):
    """EM for the intensities of S sites: 0, 1 or 2 S atoms.

    Class ``k`` has mean ``b + c_k u`` with ``c = (0, 2α, 2)`` and variance
    ``s0² + c_k v``. The spread ``s0`` of an empty site is measured at the hollow
    sites of the same image (``empty``), which hold no atom in MoS₂, and anchors
    the level ``b``; ``b``, ``u`` (one S atom), ``v`` and the class weights are
    fitted, with ``u`` kept within the band Z-contrast allows and ``b`` within
    ``[-0.5 u, +0.6 u]`` of the hollow level. ``α`` places the one-atom class
    between the other two: 1/2 for an image linear in the number of atoms; a
    regularised reconstruction need not be linear (a prior learned mostly from
    full S₂ columns pulls a lone S towards S₂), so ``α`` is fitted too, within
    0.3-0.8, once at least three sites belong to that class. It starts at
    ``alpha0``, and stays there when fewer sites hold one atom or when
    ``fit_alpha`` is False (intensities known to be linear in the atoms).

    With ``dopant_ratio = (lo, hi)`` a fourth class holds one S and one dopant atom,
    mean ``b + (1 + r) u``, where the dopant scatters ``r`` times one S, fitted within
    ``[lo, hi]`` (the band the Z-exponent allows).

    The class fractions are fitted with the levels, but with ``class_prior="equal"``
    (the default) the returned probabilities weigh the classes equally: a site is
    labelled by its own intensity, as the ideal observer labels it, and not by how
    common its class is in this image. A frame holding few S₁ sites would otherwise
    fit a tiny S₁ fraction and read every one of them as S₂ or empty (the fitted
    fraction collapses when a class has a handful of members). ``"fitted"`` uses the
    fitted fractions (the most probable class, given the image's mixture).

    Returns the probabilities (n, 3 or 4) and the fitted parameters.
    """
    if class_prior not in ("equal", "fitted"):
        raise ValueError(f"class_prior must be 'equal' or 'fitted', got {class_prior!r}")
    b = b_hollow = float(np.median(empty))
    mad = 1.4826 * float(np.median(np.abs(empty - b))) if len(empty) > 4 else 0.0
    u = max(unit0, 1e-12)
    s0 = s0_floor = max(mad, 0.05 * u)
    v = (0.2 * u) ** 2
    alpha = float(np.clip(alpha0, 0.3, 0.8))
    ratio = float(np.sqrt(dopant_ratio[0] * dopant_ratio[1])) if dopant_ratio else None
    weights = np.array([0.05, 0.1, 0.85] + ([0.02] if dopant_ratio else []))
    weights /= weights.sum()
    cap = 3.0 if dopant_ratio is None else 2.0 + dopant_ratio[1]

    def steps(a):
        return np.array([0.0, 2 * a, 2.0] + ([1.0 + ratio] if dopant_ratio else []))

    def posterior(x, prior=None):
        c = steps(alpha)
        mean, var = b + c * u, s0**2 + c * v
        logp = -0.5 * (x[:, None] - mean) ** 2 / var - 0.5 * np.log(2 * np.pi * var) + np.log(
            weights if prior is None else prior)
        p = np.exp(logp - logp.max(1, keepdims=True))
        return p / p.sum(1, keepdims=True)

    for _ in range(iterations):
        x = np.minimum(values, b + cap * u)  # winsorised: Mo-bright outliers must not inflate the fit
        post = posterior(x)
        c = steps(alpha)
        # weighted least squares for the level b and the step u of the classes
        w = post / (s0**2 + c * v)
        A = np.array([[w.sum(), (w * c).sum()], [(w * c).sum(), (w * c * c).sum()]])
        rhs = np.array([(w * x[:, None]).sum(), (w * c * x[:, None]).sum()])
        try:
            b_new, u_new = np.linalg.solve(A, rhs)
        except np.linalg.LinAlgError:
            b_new, u_new = b, u
        # one S atom scatters 0.13-0.27 of a Mo atom for Z-exponents 1.4-2.1: keep u in that band; an empty
        # site reads a little above a hollow site in a reconstruction (its Mo neighbours are closer), never
        # as high as one S atom
        u_new = float(np.clip(u_new, 0.65 * unit0, 1.35 * unit0))
        b = float(np.clip(b_new, b_hollow - 0.5 * u_new, b_hollow + 0.6 * u_new))
        n_k = post.sum(0) + 1e-9
        if fit_alpha and n_k[1] >= 3:
            level = float((post[:, 1] * x).sum() / n_k[1])
            alpha = float(np.clip((level - b) / (2 * u_new), 0.3, 0.8))
        if dopant_ratio and n_k[3] >= 3:
            level = float((post[:, 3] * x).sum() / n_k[3])
            ratio = float(np.clip((level - b) / u_new - 1.0, *dopant_ratio))
        c = steps(alpha)
        resid2 = (x[:, None] - (b + c * u_new)) ** 2
        var_k = (post * resid2).sum(0) / n_k
        if n_k[0] >= 2:  # empty sites seen: their own spread (never below the hollow sites')
            s0 = math.sqrt(max(float(var_k[0]), s0_floor**2))
        v_new = max(float(((var_k[1:] - s0**2) * n_k[1:]).sum() / (c[1:] * n_k[1:]).sum()), (0.03 * u_new) ** 2)
        weights = np.clip(n_k / n_k.sum(), 0.005, None)
        weights /= weights.sum()
        converged = abs(u_new - u) < 1e-7 * u and abs(v_new - v) < 1e-7 * v
        u, v = u_new, v_new
        if converged:
            break
    final = np.full(len(weights), 1 / len(weights)) if class_prior == "equal" else weights
    params = {"background": b, "per_atom": u, "sigma0": s0, "var_per_atom": v, "weights": weights,
              "one_atom_fraction": alpha, "dopant_ratio": ratio}
    return posterior(values, final), params


def _mixture_summary(params: dict, dopant: str | None = None) -> dict:
    """What the S-site mixture says about the image as a whole (``find_atoms(...).attrs["mixture"]``).

    ``fractions``: the fitted share of S sites in each class (the composition the
    mixture estimates, which does not depend on the labelling rule);
    ``separation``: the distance between the S₁ and S₂ levels in units of their
    pooled standard deviation (d′). Below about 2 the two classes overlap so much
    that a label weighing them equally calls many S₂ sites S₁ (at d′ = 1.5 about
    a fifth of them): trust the fractions, not the count of labels.
    """
    b, u, s0, v, alpha = (params[k] for k in ("background", "per_atom", "sigma0", "var_per_atom",
                                              "one_atom_fraction"))
    var1, var2 = s0**2 + 2 * alpha * v, s0**2 + 2 * v
    names = list(_S_CLASSES) + ([dopant] if dopant and len(params["weights"]) > 3 else [])
    return {"fractions": {name: float(w) for name, w in zip(names, params["weights"])},
            "separation": float(2 * (1 - alpha) * u / math.sqrt(0.5 * (var1 + var2))),
            "background": float(b), "per_atom": float(u), "one_atom_fraction": float(alpha)}


@lru_cache(maxsize=1)
def _shipped_one_atom_fraction() -> float:
    """The one-S level of the shipped network's object (its calibration), the start for an object of unknown
    origin: on held-out frames this start gains DeepSTEM's object 0.04 balanced S accuracy over 1/2 and costs
    linear images (which the EM refits from there) under 0.005."""
    from .model import weights_calibration

    return float(weights_calibration(None).get("one_atom_fraction", 0.5))


def _honeycomb_mo(columns: pd.DataFrame, a: float) -> np.ndarray:
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
    level = _mo_threshold(intensity) / 0.62
    keep = np.flatnonzero(intensity >= 0.2 * level)  # drop support (C) and noise peaks
    is_mo = np.zeros(len(columns), bool)
    if len(keep) < 3:
        return intensity >= 0.62 * level
    bond = a / math.sqrt(3)
    tree = cKDTree(xy[keep])
    lonely = []
    for n, i in enumerate(keep):
        near = [j for j in tree.query_ball_point(xy[i], 1.2 * bond) if j != n]
        near = [j for j in near if np.hypot(*(xy[keep[j]] - xy[i])) > 0.8 * bond]
        if not near:
            lonely.append(i)
            continue
        is_mo[i] = intensity[i] > np.median(intensity[keep[near]])
    mo_level = np.median(intensity[is_mo]) if is_mo.any() else level
    lonely = np.array(lonely, int)
    is_mo[lonely[intensity[lonely] >= 0.62 * mo_level]] = True
    return is_mo


class _NoLattice(ValueError):
    """No Mo column in the image."""


def _within(points: np.ndarray, extent: tuple[float, float], grow: float) -> np.ndarray:
    """Which ``(n, 2)`` points [Å] lie inside the frame ``[0, extent[0]] × [0, extent[1]]`` grown by ``grow`` [Å]
    on every side (shrunk when negative)."""
    points = np.asarray(points, float).reshape(-1, 2)
    return ((points[:, 0] > -grow) & (points[:, 1] > -grow) & (points[:, 0] < extent[0] + grow)
            & (points[:, 1] < extent[1] + grow))


def _mos2_sites(columns: pd.DataFrame, obj, sampling, shape, a: float | None):
    ny, nx = shape
    bright = _honeycomb_mo(columns, MOS2_A if a is None else a)
    mo = columns[bright].reset_index(drop=True)
    xy = mo[["x", "y"]].to_numpy()
    if len(mo) < 3:
        raise _NoLattice("fewer than 3 bright columns: no MoS₂ found, so no sites are returned "
                         "(for another material use material=None)")
    tree = cKDTree(xy)
    if a is None:
        d, _ = tree.query(xy, k=min(7, len(xy)))
        near = d[:, 1:].ravel()
        near = near[(near > 2.5) & (near < 4.0)]
        a = float(np.median(near)) if len(near) >= 3 else MOS2_A
    pairs = tree.query_pairs(1.12 * a, output_type="ndarray")
    dist = np.hypot(*(xy[pairs[:, 0]] - xy[pairs[:, 1]]).T) if len(pairs) else np.array([])
    good = pairs[dist > 0.88 * a] if len(pairs) else pairs
    n_lattice = np.bincount(good.ravel(), minlength=len(xy)) if len(good) else np.zeros(len(xy), int)
    on_lattice = n_lattice >= 2
    # local orientation of each lattice Mo from its Mo-Mo bonds (angles mod 60°)
    angle6 = np.zeros(len(xy), complex)
    for i, j in good:
        vec = xy[j] - xy[i]
        z = np.exp(6j * math.atan2(vec[1], vec[0]))
        angle6[i] += z
        angle6[j] += z
    theta = np.angle(angle6) / 6
    bond = a / math.sqrt(3)
    smoothed = ndimage.gaussian_filter(obj, 0.2 / sampling, mode="reflect")
    candidates, hollows = [], []
    for i in np.flatnonzero(on_lattice):
        triads = []
        for offset in (math.pi / 6, math.pi / 6 + math.pi / 3):  # the two triads (S or hollow)
            angles = theta[i] + offset + np.arange(3) * 2 * math.pi / 3
            pts = xy[i] + bond * np.stack([np.cos(angles), np.sin(angles)], 1)
            triads.append(pts)
        values = [ndimage.map_coordinates(smoothed, [p[:, 1] / sampling, p[:, 0] / sampling], order=1,
                                          mode="nearest").sum() for p in triads]
        chosen = int(np.argmax(values))
        candidates.extend(triads[chosen])
        hollows.extend(triads[1 - chosen])
    candidates = np.array(candidates).reshape(-1, 2)
    # merge the S sites shared by neighbouring Mo (each bulk S site has three)
    s_sites, support = [], []
    if len(candidates):
        groups = _cluster(candidates, 0.45 * bond)
        for members in groups:
            s_sites.append(candidates[members].mean(0))
            support.append(len(members))
    s_sites = np.array(s_sites).reshape(-1, 2)
    support = np.array(support)
    # snap predicted S sites onto detected dim columns nearby
    dim = columns[~bright][["x", "y"]].to_numpy()
    if len(dim) and len(s_sites):
        d, j = cKDTree(dim).query(s_sites)
        snap = d < 0.35 * bond
        s_sites[snap] = dim[j[snap]]
    # a predicted S site on top of a bright column (an adatom, a boundary Mo) is not an S site
    if len(s_sites):
        d, _ = tree.query(s_sites)
        free = d > 0.6 * bond
        s_sites, support = s_sites[free], support[free]
    margin = 0.5
    extent = ((nx - 1) * sampling, (ny - 1) * sampling)
    inside = _within(s_sites, extent, -margin)
    # sites the lattice predicts at or just beyond the frame's edge: not reported, but their tails reach into the
    # frame, so a fit of the counts must hold them (else their counts go to the edge sites next to them)
    edge_s = s_sites[~inside]
    mo_next = [xy[i] + a * np.stack([np.cos(t), np.sin(t)], 1)  # the six Mo neighbours of every lattice Mo
               for i in np.flatnonzero(on_lattice) for t in [theta[i] + np.arange(6) * math.pi / 3]]
    mo_next = np.vstack(mo_next) if mo_next else np.zeros((0, 2))
    beyond = ~_within(mo_next, extent, 0.0)
    ghosts = np.vstack([edge_s[_within(edge_s, extent, GHOST_REACH)],
                        mo_next[beyond & _within(mo_next, extent, GHOST_REACH)]])
    if len(ghosts):
        ghosts = np.array([ghosts[m].mean(0) for m in _cluster(ghosts, 0.45 * bond)])
        ghosts = ghosts[tree.query(ghosts)[0] > 0.6 * bond]
    s_sites, support = s_sites[inside], support[inside]
    # hollow sites (the other triad): empty in MoS₂, so they measure "no atom" in this very image
    hollows = np.array(hollows).reshape(-1, 2)
    if len(hollows):
        hollows = np.array([hollows[m].mean(0) for m in _cluster(hollows, 0.45 * bond)])
        free = tree.query(hollows)[0] > 0.6 * bond
        if len(s_sites):
            free &= cKDTree(s_sites).query(hollows)[0] > 0.6 * bond
        hollows = hollows[free]
        hollows = hollows[_within(hollows, extent, -margin)]
    return mo, on_lattice, s_sites, support, a, hollows, ghosts


def _fitted_intensities(counts, psf, shape, sampling, mo, s_sites, hollows, refine: bool = True,
                        ghosts: np.ndarray | None = None):
    """Intensities of the Mo columns, S sites and hollow sites fitted jointly to the counts.

    With ``refine`` the Mo and S positions are first refined against the counts
    (:func:`quantify.refine_positions`; hollow sites stay where the lattice puts them).
    ``ghosts``: sites predicted just beyond the frame's edge, fitted with the others (in place) and not returned.
    Returns the intensities, the Mo standard errors, and the (refined) Mo and S positions.
    """
    from .quantify import column_intensities, refine_positions

    frame = np.asarray(getattr(counts, "data", counts), dtype=float)
    if frame.shape != tuple(shape):
        raise ValueError(f"counts must have the object's shape {tuple(shape)}, got {frame.shape}")
    kernel = np.asarray(psf, dtype=float)
    extra = np.zeros((0, 2)) if ghosts is None else np.asarray(ghosts, float).reshape(-1, 2)
    xy = np.vstack([mo[["x", "y"]].to_numpy(), s_sites.reshape(-1, 2), hollows.reshape(-1, 2), extra])
    n_mo, n_s, n_h = len(mo), len(s_sites), len(hollows)
    if refine and len(xy):
        movable = np.arange(len(xy)) < n_mo + n_s
        x, y, _ = refine_positions(frame, xy[:, 0], xy[:, 1], kernel, sampling, movable=movable)
        xy = np.c_[x, y]
    fitted, _, errors = column_intensities(frame, xy[:, 0], xy[:, 1], kernel, sampling, return_errors=True)
    return (fitted[:n_mo], fitted[n_mo:n_mo + n_s], fitted[n_mo + n_s:n_mo + n_s + n_h], errors[:n_mo], xy[:n_mo],
            xy[n_mo:n_mo + n_s])


def _cluster(points: np.ndarray, distance: float) -> list[np.ndarray]:
    from scipy.sparse.csgraph import connected_components
    from scipy.sparse import coo_matrix

    pairs = cKDTree(points).query_pairs(distance, output_type="ndarray")
    n = len(points)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n)) if len(pairs) else \
        coo_matrix((n, n))
    _, labels = connected_components(graph, directed=False)
    return [np.flatnonzero(labels == k) for k in range(labels.max() + 1)]


#: With ``counts``: an off-lattice bright column (a candidate Mo adatom) is reported only if its fitted counts
#: exceed this many standard errors.
SIGNIFICANCE = 5.0
#: Lattice sites predicted up to this far beyond the frame's edge [Å] are fitted with the counts (not reported).
GHOST_REACH = 1.5


def find_atoms(obj, sampling: float | None = None, material: str | None = "MoS2", *,
               lattice_constant: float | None = None, radius: float = 0.7, dopant: str | None = None,
               one_atom_fraction: float | None = None, counts=None, psf: np.ndarray | None = None,
               class_prior: str = "equal", refine: bool = True) -> pd.DataFrame:
    """Locate atomic columns and identify their species.

    Parameters
    ----------
    obj : (ny, nx) ndarray or Signal2D
        Object function (from :func:`reconstruct`), any scale.
    sampling : float, optional
        Pixel size [Å]; taken from a Signal2D's calibration if not given.
    material : {"MoS2", None}
        ``"MoS2"``: fit the 2H-MoS₂ lattice and label every site ``Mo``, ``S2``,
        ``S1``, ``vacancy`` or ``Mo_adatom``. ``None``: every bright column, species ``"column"``.
    lattice_constant : float, optional
        MoS₂ lattice parameter [Å]; measured from the Mo-Mo distances if not given.
    radius : float
        Radius of the disk over which a column's intensity is integrated [Å].
    dopant : str, optional
        An element substituted on S sites (e.g. ``"Se"``): S sites holding one S and
        one dopant atom become their own species, named after the element. Its
        scattering relative to S is fitted within the band that Z-exponents
        1.4-2.1 allow.
    one_atom_fraction : float, optional
        Where one S atom lies between an empty S site (0) and S₂ (1) in this kind
        of object: 1/2 for an image linear in the atoms (raw or deconvolved
        frames); a network's object is not linear, and its value, measured on
        simulated frames, is stored with its weights. The mixture model starts
        there and refits it when enough sites hold one atom. Default: the value
        in a Signal2D's ``metadata.DeepSTEM.one_atom_fraction`` (written by
        :func:`reconstruct`), else that of the shipped weights (an ndarray is taken
        to be :func:`reconstruct`'s object); always 1/2 with ``counts``. Pass 1/2 for
        a raw or deconvolved frame.
    counts : (ny, nx) ndarray or Signal2D, optional
        The frame ``obj`` was made from [counts]. With ``psf``, every column's
        intensity is fitted to these counts by the linear image model at the
        positions found in ``obj`` (:func:`quantify.column_intensities`), instead of
        integrating ``obj``: the object map locates, the counts quantify, and the
        intensities are linear in the atoms whatever made ``obj``. The sites the
        lattice predicts at and just beyond the frame's edge (:data:`GHOST_REACH`)
        are fitted too, and not reported. A candidate Mo
        adatom whose fitted counts are below :data:`SIGNIFICANCE` standard errors is
        a peak of noise (bare support at low dose) and is not reported.
    psf : (k, k) ndarray, optional
        Probe intensity on the frame's pixel grid (:meth:`Probe.intensity`), centred
        on pixel ``k // 2``; needed with ``counts``.
    class_prior : {"equal", "fitted"}
        How an S site's label weighs the classes (S₂, S₁, empty). ``"equal"``: by
        the likelihood of its own intensity alone, as the ideal observer does, so
        the label does not depend on how many other defects the image holds.
        ``"fitted"``: weighted by the class fractions fitted to this image (the most
        probable class when the image is typical of the specimen; rare classes in a
        small image are then under-called).
    refine : bool
        With ``counts``: refine the Mo and S positions against the counts by the
        linear image model before measuring the intensities
        (:func:`quantify.refine_positions`). The object map gives the start; the
        counts pin each column as closely as the dose allows.

    Returns
    -------
    pandas.DataFrame
        One row per site: ``x``, ``y`` [Å] (contract convention), ``species``,
        ``confidence`` (0-1, the probability of the species given the site's
        intensity, with the class weights of ``class_prior``), and
        ``intensity`` (integrated object over the disk, or with ``counts`` the
        fitted counts of the column). ``attrs["mixture"]`` summarises the S-site
        mixture: the fitted class ``fractions`` (the composition it estimates) and
        the ``separation`` d′ of the S₁ and S₂ levels in pooled standard deviations;
        below about 2 the labels of a rare class are mostly guesses, and the
        fractions are the better estimate of how many there are.

    Examples
    --------
    >>> from deepstem_utils import specimen
    >>> sites = specimen.mos2_lattice((30.0, 30.0))
    >>> obj = specimen.object_function(sites, (200, 200), 0.15)
    >>> atoms = find_atoms(obj, sampling=0.15)
    >>> sorted(set(atoms.species))
    ['Mo', 'S2']
    """
    if class_prior not in ("equal", "fitted"):
        raise ValueError(f"class_prior must be 'equal' (label by the site's own intensity) or 'fitted', "
                         f"got {class_prior!r}")
    if (counts is None) != (psf is None):
        raise ValueError("counts and psf go together: give both (the frame and its probe intensity) or neither")
    if one_atom_fraction is None and counts is not None:
        one_atom_fraction = 0.5  # fitted by the linear model: one S atom is half of S2
    if one_atom_fraction is None:
        metadata = getattr(obj, "metadata", None)
        stored = metadata.get_item("DeepSTEM.one_atom_fraction", None) if metadata is not None else None
        one_atom_fraction = _shipped_one_atom_fraction() if stored is None else stored
    one_atom_fraction = float(one_atom_fraction)
    if not 0.3 <= one_atom_fraction <= 0.8:
        raise ValueError(f"one_atom_fraction must be between 0.3 and 0.8 (1/2 for a linear image), "
                         f"got {one_atom_fraction}")
    array, sampling = _as_object(obj, sampling)
    if material not in ("MoS2", None, "none"):
        raise ValueError(f"material must be 'MoS2' or None, got {material!r}")
    columns = find_columns(array, sampling, radius=radius)
    empty = pd.DataFrame({"x": [], "y": [], "species": [], "confidence": [], "intensity": []})
    if material in (None, "none"):
        if columns.empty:
            return empty
        out = columns.assign(species="column")
        spread = out["intensity"].std() if len(out) > 1 else 1.0
        out["confidence"] = 1 / (1 + np.exp(-(out["intensity"] / max(spread, 1e-12))))
        return out[["x", "y", "species", "confidence", "intensity"]].reset_index(drop=True)
    try:
        if len(columns) < 3:
            raise _NoLattice("fewer than 3 bright columns: no MoS₂ found, so no sites are returned "
                             "(for another material use material=None)")
        mo, on_lattice, s_sites, support, a, hollows, ghosts = _mos2_sites(columns, array, sampling, array.shape,
                                                                            lattice_constant)
    except _NoLattice as message:  # bare support or noise: no site, and say why
        import warnings

        warnings.warn(str(message), stacklevel=2)
        return empty
    if counts is not None:
        mo_int, s_int, hollow_int, mo_err, mo_xy, s_sites = _fitted_intensities(
            counts, psf, array.shape, sampling, mo, s_sites, hollows, refine=refine, ghosts=ghosts)
        mo = mo.assign(x=mo_xy[:, 0], y=mo_xy[:, 1])
        # an off-lattice bright column whose counts are not significantly above zero is a peak of noise (bare
        # support); lattice Mo are vouched for by their neighbours (and a low dose must not lose them)
        real = on_lattice | (mo_int >= SIGNIFICANCE * mo_err)
    else:
        background = float(np.percentile(array, 20))
        s_int = _integrate(array - background, s_sites[:, 0], s_sites[:, 1], sampling, radius) if len(s_sites) \
            else np.array([])
        hollow_int = _integrate(array - background, hollows[:, 0], hollows[:, 1], sampling, radius) \
            if len(hollows) else np.array([0.0])
        mo_int = mo["intensity"].to_numpy()
        real = np.ones(len(mo), bool)
    rows = []
    # Mo: confidence that the column is Mo rather than an S2 column (two-Gaussian posterior on intensity)
    lattice_mo = mo_int[on_lattice]
    if len(s_int):
        empty = hollow_int if len(hollow_int) else np.array([0.0])
        ratio = None
        if dopant is not None:
            from .specimen import Z

            if dopant not in Z or dopant in ("Mo", "S"):
                raise ValueError(f"dopant must be an element symbol other than Mo and S from {sorted(Z)}, "
                                 f"got {dopant!r}")
            ratio = tuple(sorted(((Z[dopant] / Z["S"]) ** 1.4, (Z[dopant] / Z["S"]) ** 2.1)))
        post, params = _fit_s_mixture(s_int, unit0=0.19 * float(np.median(lattice_mo)), empty=empty,
                                      dopant_ratio=ratio, alpha0=one_atom_fraction, fit_alpha=counts is None,
                                      class_prior=class_prior)
        cls = post.argmax(1)
        conf = post.max(1)
        # an edge site held by a single Mo and empty is more likely beyond the edge than a vacancy
        keep = ~((cls == 0) & (support < 2))
        s2_mean = params["background"] + 2 * params["per_atom"]
        s2_sd = math.sqrt(params["sigma0"] ** 2 + 2 * params["var_per_atom"])
        mixture = _mixture_summary(params, dopant)
    else:
        cls, conf, keep = np.array([], int), np.array([]), np.array([], bool)
        s2_mean, s2_sd = 0.0, 1.0
        mixture = {}
    mo_mean = float(np.median(lattice_mo)) if len(lattice_mo) else float(np.median(mo_int))
    mo_sd = 1.4826 * float(np.median(np.abs(lattice_mo - mo_mean))) if len(lattice_mo) > 2 else 0.1 * mo_mean
    mo_sd = max(mo_sd, 0.02 * mo_mean)

    def p_mo(values):
        lm = -0.5 * ((values - mo_mean) / mo_sd) ** 2 - math.log(mo_sd)
        ls = -0.5 * ((values - s2_mean) / s2_sd) ** 2 - math.log(s2_sd)
        return 1 / (1 + np.exp(np.clip(ls - lm, -50, 50)))

    for (x, y), value, lattice, p, r in zip(mo[["x", "y"]].to_numpy(), mo_int, on_lattice, p_mo(mo_int), real):
        if r:
            rows.append((x, y, "Mo" if lattice else "Mo_adatom", float(p), value))
    for (x, y), value, c, p, k in zip(s_sites, s_int, cls, conf, keep):
        if k:
            rows.append((x, y, _S_CLASSES[c] if c < 3 else dopant, float(p), value))
    out = pd.DataFrame(rows, columns=["x", "y", "species", "confidence", "intensity"])
    out.attrs["mixture"] = mixture
    out.attrs["class_prior"] = class_prior
    return out
