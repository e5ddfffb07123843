"""Scoring reconstructions against ground truth.

Object-function fidelity (PSNR), how well two classes of columns separate by
intensity, and found sites matched to true ones (per frame and over a simulated series).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from skimage.metrics import peak_signal_noise_ratio

from ..physics.probe import psf_grid
from .baselines import richardson_lucy_path

__all__ = ["psnr", "separation", "richardson_lucy_psnr", "match_sites", "score_sites", "score_series"]


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


def match_sites(detected, truth_x, truth_y, radius: float = 0.6):
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
    cost = cdist(det, ref)
    big = 1e6
    cost[cost > radius] = big
    i, j = linear_sum_assignment(cost)
    ok = cost[i, j] < big
    return i[ok], j[ok]


def score_sites(detected, sites, extent: tuple[float, float] | None = None, radius: float = 0.6,
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
    confusion = pd.DataFrame(0, index=list(species), columns=labels)
    for a, b in zip(ts[j], ds_[i]):
        if b in labels:
            confusion.loc[a, b] += 1
    for sp in species:
        confusion.loc[sp, "missed"] = int(np.sum(ts == sp)) - int(np.sum(ts[j] == sp))
    return {"per_species": pd.DataFrame(rows).T, "s_site_accuracy": float(np.mean(recalls)) if recalls else float("nan"),
            "mo_rmse": float(np.sqrt(d2.mean()) * 100) if np.any(mo) else float("nan"), "confusion": confusion}


def score_series(acquisition, atoms: pd.DataFrame, radius: float = 0.7) -> pd.DataFrame:
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

    Returns
    -------
    DataFrame
        Per frame: ``s_accuracy`` (balanced over S₂/S₁/vacancy), ``mo_rmse`` [pm], F1 of ``Mo``,
        ``S2``, ``S1`` and ``Mo_adatom``, and the true numbers of Mo, S₁ and vacancies in the field.
    """
    rows = []
    for i in range(len(acquisition)):
        truth = acquisition.truth(i)
        result = score_sites(atoms[atoms["frame"] == i], truth, extent=acquisition.field, radius=radius)
        f1 = result["per_species"]["F1"]
        rows.append({"frame": i, "time_s": acquisition.frames[i].time, "s_accuracy": result["s_site_accuracy"],
                     "mo_rmse": result["mo_rmse"], "F1_Mo": f1["Mo"], "F1_S2": f1["S2"], "F1_S1": f1["S1"],
                     "F1_adatom": f1["Mo_adatom"], "true_Mo": int(np.sum(truth.species == "Mo")),
                     "true_S1": int(np.sum(truth.species == "S1")),
                     "true_vacancy": int(np.sum(truth.species == "vacancy")),
                     "true_adatoms": int(np.sum(truth.species == "Mo_adatom"))})
    return pd.DataFrame(rows)
