"""Scoring reconstructions against ground truth.

Object-function fidelity (PSNR), how well two classes of columns separate by
intensity, and found sites matched to true ones (per frame and over a simulated series).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from skimage.metrics import peak_signal_noise_ratio

from ..core.constants import MOS2_A
from ..physics.probe import psf_grid
from .baselines import richardson_lucy_path

__all__ = ["MATCH_RADIUS", "SERIES_RADIUS", "psnr", "separation", "richardson_lucy_psnr", "match_sites", "score_sites", "score_series", "f1_score",
           "series_f1", "adatom_errors", "ADATOM_CAUSES"]


def psnr(truth: np.ndarray, estimate: np.ndarray) -> float:
    """Peak signal-to-noise ratio [dB] of ``estimate`` against ``truth`` (data range: the truth's maximum).

    Both must be in the same units (e.g. the object per pixel, dimensionless).
    """
    truth = np.asarray(truth, float)
    return float(peak_signal_noise_ratio(truth, np.asarray(estimate, float), data_range=float(truth.max())))


def separation(low: np.ndarray, high: np.ndarray) -> dict:
    """How well two classes separate by a single threshold on a scalar.

    Returns the best threshold (minimising the balanced error), the balanced
    error there (the *overlap*: 0 is perfectly separable, 0.5 is chance) and the
    separation ``d' = (mean_high - mean_low) / sqrt((var_low + var_high) / 2)``.
    """
    low, high = np.asarray(low, float), np.asarray(high, float)
    values = np.sort(np.concatenate([low, high]))
    candidates = np.concatenate([[values[0] - 1], (values[1:] + values[:-1]) / 2, [values[-1] + 1]])
    errors = [0.5 * (np.mean(low > t) + np.mean(high <= t)) for t in candidates]
    best = int(np.argmin(errors))
    pooled = np.sqrt((low.var() + high.var()) / 2)
    return {"threshold": float(candidates[best]), "overlap": float(errors[best]),
            "d_prime": float((high.mean() - low.mean()) / pooled) if pooled > 0 else float("inf")}


def richardson_lucy_psnr(frames, max_iterations: int = 150) -> np.ndarray:
    """PSNR [dB] of Richardson-Lucy after 1..``max_iterations`` iterations, per frame.

    Parameters
    ----------
    frames : sequence of dataset.Frame
        Simulated frames with their ground truth; each is deconvolved with its own probe.

    Returns
    -------
    (n_frames, max_iterations) ndarray
        Row ``i``, column ``k``: PSNR of frame ``i`` after ``k + 1`` iterations, scored
        like :func:`psnr` on the object per pixel. ``argmax`` of the column mean is the
        best *single* iteration count for the set (what a user would fix).
    """
    out = np.zeros((len(frames), max_iterations))
    for i, f in enumerate(frames):
        size = psf_grid(f.sampling)
        psf = f.probe.intensity((size, size), f.sampling)
        for k, estimate in enumerate(richardson_lucy_path(f.counts, psf, max_iterations)):
            out[i, k] = psnr(f.obj, estimate / f.electrons_per_pixel)
    return out


#: A detected site within this distance of a true site can be matched to it [Å] (about a fifth of the
#: Mo-S projected distance, 1.84 Å).
MATCH_RADIUS = 0.6
#: The match radius of a series' scores [Å]: wider than :data:`MATCH_RADIUS`, for sites that drift within a frame.
SERIES_RADIUS = 0.7


def match_sites(detected, truth_x, truth_y, radius: float = MATCH_RADIUS):
    """Optimal one-to-one matching of detected sites to true sites within ``radius`` [Å].

    Parameters
    ----------
    detected : DataFrame
        With columns ``x``, ``y`` [Å] (e.g. from :func:`find_atoms`).
    truth_x, truth_y : (n,) array_like
        True positions [Å].
    radius : float
        Largest distance of a match [Å].

    Returns
    -------
    det_index, truth_index : ndarray
        Matched pairs (Hungarian assignment, :func:`scipy.optimize.linear_sum_assignment`).
    """
    det = np.stack([np.asarray(detected["x"], float), np.asarray(detected["y"], float)], 1).reshape(-1, 2)
    ref = np.stack([np.asarray(truth_x, float), np.asarray(truth_y, float)], 1).reshape(-1, 2)
    if len(det) == 0 or len(ref) == 0:
        return np.array([], int), np.array([], int)
    # only pairs within the radius can match: the assignment splits into the connected groups of such pairs,
    # each solved on its own (the same optimum as one assignment over all pairs, in a fraction of the time)
    pairs = cKDTree(det).sparse_distance_matrix(cKDTree(ref), radius, output_type="coo_matrix")
    if pairs.nnz == 0:
        return np.array([], int), np.array([], int)
    n_det = len(det)
    graph = sparse.coo_matrix((np.ones(pairs.nnz), (pairs.row, n_det + pairs.col)),
                              shape=(n_det + len(ref),) * 2)
    _, group = connected_components(graph, directed=False)
    big = 1e6
    # a group of one pair (the usual case: one report near one true site) is its own answer
    single = np.bincount(group[pairs.row], minlength=group.max() + 1)[group[pairs.row]] == 1
    det_out, ref_out = [pairs.row[single]], [pairs.col[single]]
    order = np.argsort(group[pairs.row[~single]], kind="stable")
    rows, cols, dist = pairs.row[~single][order], pairs.col[~single][order], pairs.data[~single][order]
    bounds = np.flatnonzero(np.diff(group[rows])) + 1
    groups = zip(np.split(rows, bounds), np.split(cols, bounds), np.split(dist, bounds)) if len(rows) else ()
    for r, c, d in groups:
        ur, ri = np.unique(r, return_inverse=True)
        uc, ci = np.unique(c, return_inverse=True)
        cost = np.full((len(ur), len(uc)), big)
        cost[ri, ci] = np.maximum(d, 1e-12)   # an exact coincidence is still a pair (a zero is not "no pair")
        i, j = linear_sum_assignment(cost)
        ok = cost[i, j] < big
        det_out.append(ur[i[ok]])
        ref_out.append(uc[j[ok]])
    det_idx, ref_idx = np.concatenate(det_out), np.concatenate(ref_out)
    order = np.argsort(det_idx)
    return det_idx[order], ref_idx[order]


def score_sites(detected, sites, extent: tuple[float, float] | None = None, radius: float = MATCH_RADIUS,
                margin: float = 0.5, species=("Mo", "S2", "S1", "vacancy", "Mo_adatom"),
                missed_as_wrong: bool = False) -> dict:
    """Score detected sites against ground truth.

    Parameters
    ----------
    detected : DataFrame
        ``x``, ``y`` [Å], ``species``.
    sites : specimen.Sites
        Ground truth (species not in ``species``, e.g. graphene C, are ignored).
    extent : (float, float), optional
        Field of view ``(width, height)`` [Å]; true sites closer than ``margin`` to its edge are ignored.
    radius : float
        Match radius [Å].
    missed_as_wrong : bool
        Count true S sites that no detection matched as misidentified in the S-site
        accuracy (default: the accuracy is over the matched sites only). Needed to
        compare with the ideal observer, which labels every site: scored on the sites
        it finds, a method that misses the hard ones looks better than it is.

    Returns
    -------
    dict
        ``per_species`` (DataFrame of precision, recall, F1 and support),
        ``s_site_accuracy`` (balanced accuracy over S₂/S₁/vacancy among matched S sites, or all
        true S sites with ``missed_as_wrong``),
        ``mo_rmse`` (position RMSE of matched Mo [pm]), ``confusion`` (DataFrame, truth × detected).
    """
    keep = np.isin(sites.species, species)
    if extent is not None:
        keep &= (sites.x > margin) & (sites.x < extent[0] - margin) & (sites.y > margin) & (sites.y < extent[1] - margin)
    tx, ty, ts = sites.x[keep], sites.y[keep], np.asarray(sites.species[keep]).astype(str)
    det = detected
    if extent is not None and len(det):
        inside = ((det["x"] > margin) & (det["x"] < extent[0] - margin) & (det["y"] > margin)
                  & (det["y"] < extent[1] - margin))
        det = det[inside]
    det = det.reset_index(drop=True)
    ds_ = np.asarray(det["species"]).astype(str) if len(det) else np.array([], str)
    i, j = match_sites(det, tx, ty, radius)
    matched_det = np.full(len(det), "", dtype=object)
    matched_det[i] = ts[j]
    rows = {}
    for sp in species:
        tp = int(np.sum((ts[j] == sp) & (ds_[i] == sp)))
        n_det = int(np.sum(ds_ == sp))
        n_true = int(np.sum(ts == sp))
        precision = tp / n_det if n_det else float("nan")
        recall = tp / n_true if n_true else float("nan")
        f1 = 2 * precision * recall / (precision + recall) if n_det and n_true and (precision + recall) else float("nan")
        rows[sp] = {"precision": precision, "recall": recall, "F1": f1, "support": n_true}
    s_classes = ("S2", "S1", "vacancy")
    recalls = []
    for sp in s_classes:
        m = ts[j] == sp
        n_true = int(np.sum(ts == sp)) if missed_as_wrong else int(np.sum(m))
        if n_true:
            recalls.append(float(np.sum(ds_[i][m] == sp)) / n_true)
    mo = (ts[j] == "Mo") & (ds_[i] == "Mo")
    d2 = (np.asarray(det["x"])[i][mo] - tx[j][mo]) ** 2 + (np.asarray(det["y"])[i][mo] - ty[j][mo]) ** 2
    labels = list(species) + ["missed"]
    table = np.zeros((len(species), len(labels)), int)   # counted in NumPy: a cell-by-cell pandas update is slow
    row = {sp: k for k, sp in enumerate(species)}
    col = {sp: k for k, sp in enumerate(labels)}
    pairs = [(row[a], col[b]) for a, b in zip(ts[j], ds_[i]) if b in col]
    if pairs:
        np.add.at(table, tuple(np.array(pairs).T), 1)
    for sp in species:
        table[row[sp], col["missed"]] = int(np.sum(ts == sp)) - int(np.sum(ts[j] == sp))
    confusion = pd.DataFrame(table, index=list(species), columns=labels)
    return {"per_species": pd.DataFrame(rows).T, "s_site_accuracy": float(np.mean(recalls)) if recalls else float("nan"),
            "mo_rmse": float(np.sqrt(d2.mean()) * 100) if np.any(mo) else float("nan"), "confusion": confusion}


def f1_score(tp, fp, fn):
    """F1 = 2 TP / (2 TP + FP + FN) [dimensionless]: 0 when nothing true was found, NaN only when there was
    nothing to find and nothing was reported (works elementwise on arrays).

    Examples
    --------
    >>> f1_score(3, 1, 0), f1_score(0, 2, 0), f1_score(0, 0, 4)
    (0.8571428571428571, 0.0, 0.0)
    """
    tp, fp, fn = (np.asarray(v, float) for v in (tp, fp, fn))
    total = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(total > 0, 2 * tp / np.where(total > 0, total, 1.0), np.nan)
    return float(out) if out.ndim == 0 else out


def _inside(table, extent, margin: float) -> np.ndarray:
    """Which rows (``x``, ``y`` [Å]) lie inside the field ``extent`` shrunk by ``margin`` [Å]."""
    x, y = np.asarray(table["x"], float), np.asarray(table["y"], float)
    return (x > margin) & (x < extent[0] - margin) & (y > margin) & (y < extent[1] - margin)


def score_series(acquisition, atoms: pd.DataFrame, radius: float = SERIES_RADIUS, margin: float = 0.5,
                 frames=None) -> pd.DataFrame:
    """Score the sites found in every frame against the twin's ground truth.

    Parameters
    ----------
    acquisition : insitu.SeriesAcquisition
        The simulated series, with its ground truth.
    atoms : DataFrame
        Sites of all frames (``frame``, ``x``, ``y`` in frame coordinates [Å], ``species``), e.g.
        :func:`series.load_atoms`.
    radius : float
        Match radius [Å].
    margin : float
        Sites closer than this to the frame's edge are not scored [Å].
    frames : iterable of int, optional
        The frames to score (default: all); a frame left out is not read at all.

    Returns
    -------
    DataFrame
        Per frame scored: ``s_accuracy`` (balanced over S₂/S₁/vacancy), ``mo_rmse`` [pm], F1 of ``Mo``,
        ``S2``, ``S1`` and ``Mo_adatom``, the adatoms' ``adatom_tp``, ``adatom_fp`` and ``adatom_fn`` (a
        true adatom matched by a reported one, a reported one that matches none, a true one not reported),
        and the true numbers of Mo, S₁, vacancies and adatoms in the field. ``F1_adatom`` is
        :func:`f1_score` of the frame's counts (0 for a frame whose adatoms were all missed or all false;
        NaN only without any); :func:`series_f1` pools the counts over the series.
    """
    rows = []
    for i in range(len(acquisition)) if frames is None else frames:
        truth = acquisition.truth(i)
        found = atoms[atoms["frame"] == i]
        result = score_sites(found, truth, extent=acquisition.field, radius=radius, margin=margin)
        f1 = result["per_species"]["F1"]
        tp = int(result["confusion"].loc["Mo_adatom", "Mo_adatom"])
        reported = int(np.sum(_inside(found, acquisition.field, margin) & (found["species"] == "Mo_adatom"))) \
            if len(found) else 0
        true = int(result["per_species"].loc["Mo_adatom", "support"])
        rows.append({"frame": i, "time_s": acquisition.frames[i].time, "s_accuracy": result["s_site_accuracy"],
                     "mo_rmse": result["mo_rmse"], "F1_Mo": f1["Mo"], "F1_S2": f1["S2"], "F1_S1": f1["S1"],
                     "F1_adatom": f1_score(tp, reported - tp, true - tp), "adatom_tp": tp,
                     "adatom_fp": reported - tp, "adatom_fn": true - tp, "true_Mo": int(np.sum(truth.species == "Mo")),
                     "true_S1": int(np.sum(truth.species == "S1")),
                     "true_vacancy": int(np.sum(truth.species == "vacancy")),
                     "true_adatoms": int(np.sum(truth.species == "Mo_adatom"))})
    return pd.DataFrame(rows)


def series_f1(scores: pd.DataFrame, name: str = "adatom") -> float:
    """F1 of a whole series from the per-frame counts of :func:`score_series` (``<name>_tp``, ``_fp``, ``_fn``
    summed over the frames): every adatom weighs the same, whatever the frame it is in [dimensionless]."""
    return f1_score(scores[f"{name}_tp"].sum(), scores[f"{name}_fp"].sum(), scores[f"{name}_fn"].sum())


#: The causes :func:`adatom_errors` tells apart, in the order of its tables.
ADATOM_CAUSES = ("grain Mo at the frame's edge", "grain Mo inside the frame", "no atom there",
                 "adatom read as a grain Mo", "adatom not found", "adatom at the frame's edge")


def adatom_errors(acquisition, atoms: pd.DataFrame, radius: float = SERIES_RADIUS, margin: float = 0.5,
                  lattice_constant: float = MOS2_A) -> pd.DataFrame:
    """Every adatom error of a series, where it is and what is there: the diagnosis of the adatom F1.

    Sites are matched as in :func:`score_series`. A *false* adatom is a reported ``Mo_adatom`` not matched
    to a true one; a *missed* adatom a true one not matched by a reported one.

    Parameters
    ----------
    acquisition : insitu.SeriesAcquisition
        The simulated series, with its ground truth.
    atoms : DataFrame
        Sites of all frames (``frame``, ``x``, ``y`` [Å] in frame coordinates, ``species``, ``intensity``).
    radius, margin : float
        Match radius and the frame's border left out [Å].
    lattice_constant : float
        Mo-Mo distance [Å]: "at the frame's edge" means closer than this to it.

    Returns
    -------
    DataFrame
        One row per error: ``frame``, ``error`` (``"false"`` or ``"missed"``), ``x``, ``y`` [Å],
        ``intensity`` (of the reported column; of the column found there for a missed one, 0 if none)
        [counts], ``there`` (the true species at a false adatom or the label given at a missed one,
        ``"nothing"`` if none within ``radius``), ``mo_neighbours`` (true grain Mo within 1.12 lattice
        constants), ``edge_distance`` [Å] and ``cause`` (one of :data:`ADATOM_CAUSES`).
    """
    rows = []
    for i in range(len(acquisition)):
        truth = acquisition.truth(i)
        keep = np.isin(truth.species, ("Mo", "S2", "S1", "vacancy", "Mo_adatom"))
        keep &= _inside({"x": truth.x, "y": truth.y}, acquisition.field, margin)
        tx, ty, ts = truth.x[keep], truth.y[keep], np.asarray(truth.species[keep]).astype(str)
        found = atoms[atoms["frame"] == i]
        found = found[_inside(found, acquisition.field, margin)].reset_index(drop=True) if len(found) else found
        fs = np.asarray(found["species"]).astype(str) if len(found) else np.array([], str)
        det, tru = match_sites(found, tx, ty, radius)
        of_truth, of_found = dict(zip(tru, det)), dict(zip(det, tru))
        grain_mo = np.c_[tx[ts == "Mo"], ty[ts == "Mo"]]
        value = np.asarray(found["intensity"], float) if len(found) else np.array([])

        def describe(x, y, error, there, intensity):
            d = np.hypot(*(grain_mo - [x, y]).T) if len(grain_mo) else np.array([])
            neighbours = int(np.sum((d > radius) & (d < 1.12 * lattice_constant)))  # not the atom itself
            edge = float(min(x, y, acquisition.field[0] - x, acquisition.field[1] - y))
            at_edge = edge < lattice_constant
            if error == "false":
                cause = ("no atom there" if there == "nothing" else
                         "grain Mo at the frame's edge" if at_edge else "grain Mo inside the frame")
            else:
                cause = ("adatom at the frame's edge" if at_edge else
                         "adatom read as a grain Mo" if there == "Mo" else "adatom not found")
            rows.append({"frame": i, "error": error, "x": float(x), "y": float(y), "intensity": float(intensity),
                         "there": there, "mo_neighbours": neighbours, "edge_distance": edge, "cause": cause})

        for k in np.flatnonzero(fs == "Mo_adatom"):
            j = of_found.get(k)
            if j is None or ts[j] != "Mo_adatom":
                describe(found["x"].iloc[k], found["y"].iloc[k], "false", "nothing" if j is None else ts[j], value[k])
        for j in np.flatnonzero(ts == "Mo_adatom"):
            k = of_truth.get(j)
            if k is None or fs[k] != "Mo_adatom":
                describe(tx[j], ty[j], "missed", "nothing" if k is None else fs[k], 0.0 if k is None else value[k])
    return pd.DataFrame(rows, columns=["frame", "error", "x", "y", "intensity", "there", "mo_neighbours",
                                       "edge_distance", "cause"])
