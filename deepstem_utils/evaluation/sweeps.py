"""The dose evaluation: every method on the same frames, scored against ground truth.

Each method turns a frame into an object estimate with the same probe; the
same :func:`find_atoms` turns every estimate into sites; :func:`.metrics.score_sites`
scores them. The ideal observer and the Cramér-Rao bound (:mod:`.limits`) give
the physical limit on the same frames.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..atoms.find import find_atoms
from ..network.dataset import simulate_frame
from ..network.reconstruction import reconstruct
from ..network.weights import SUPERVISED_WEIGHTS
from ..physics.probe import psf_grid
from . import baselines, limits, metrics
from .calibration import one_atom_fraction

__all__ = ["METHODS", "estimate", "evaluate_frame", "dose_sweep", "dose_for_accuracy"]

#: Methods compared, in the order of the tables. A ``+fit`` method locates the columns in the object of the
#: method before the ``+`` and fits their intensities to the counts (``find_atoms(..., counts=, psf=)``).
METHODS = ("raw", "gaussian", "wiener", "richardson_lucy", "bm3d", "supervised_unet", "deepstem",
           "gaussian+fit", "deepstem+fit")


def estimate(method: str, frame, psf: np.ndarray, rl_max: int = 100) -> np.ndarray:
    """Object estimate of ``frame`` by ``method`` (counts units; RL at its best iteration by PSNR).

    ``"supervised_unet"`` is the AtomAI-style alternative: DeepSTEM's encoder
    trained on the same simulated frames, but against their ground-truth object
    (``deepstem train --config deepstem_utils/weights/supervised_config.json``).
    """
    if method.endswith("+fit"):  # the object locates; the counts quantify (in find_atoms)
        return estimate(method[:-4], frame, psf, rl_max)
    if method == "raw":
        return frame.counts
    if method == "gaussian":
        return baselines.gaussian(frame.counts, 0.25 / frame.sampling)
    if method == "wiener":
        return baselines.wiener(frame.counts, psf)
    if method == "bm3d":
        return baselines.bm3d(frame.counts)
    if method == "richardson_lucy":
        best, best_psnr = None, -np.inf
        for est in baselines.richardson_lucy_path(frame.counts, psf, rl_max):
            p = metrics.psnr(frame.obj, est / frame.electrons_per_pixel)
            if p > best_psnr:
                best, best_psnr = est.copy(), p
        return best
    if method == "deepstem":
        return reconstruct(frame.counts, frame.probe, sampling=frame.sampling)
    if method == "supervised_unet":  # same network, same frames, trained against the ground truth
        return reconstruct(frame.counts, frame.probe, sampling=frame.sampling, weights=SUPERVISED_WEIGHTS)
    raise ValueError(f"unknown method {method!r}; choose from {METHODS}")


def evaluate_frame(frame, methods=METHODS, rl_max: int = 100) -> list[dict]:
    """Score every method (and the ideal observer) on one frame.

    Returns one record per method: dose, balanced S-site accuracy, Mo position
    RMSE [pm], F1 of Mo, S2, S1; the ideal observer's record has the S-site
    accuracy and the Cramér-Rao bound on the Mo position (median over columns) [pm].
    """
    size = psf_grid(frame.sampling)
    psf = frame.probe.intensity((size, size), frame.sampling)
    ny, nx = frame.counts.shape
    extent = (nx * frame.sampling, ny * frame.sampling)
    rows, estimates = [], {}
    for method in methods:
        base = method.removesuffix("+fit")  # a "+fit" method reuses its base method's object
        if base not in estimates:
            estimates[base] = estimate(base, frame, psf, rl_max)
        est = estimates[base]
        # a method that finds no MoS2 at a low dose gets an empty table (quietly): every site scores as missed
        fit = {"counts": frame.counts, "psf": psf} if method.endswith("+fit") else {}
        found = find_atoms(est, frame.sampling, one_atom_fraction=one_atom_fraction(method), quiet=True, **fit)
        score = metrics.score_sites(found, frame.sites, extent, missed_as_wrong=True)  # comparable with the ideal observer
        per = score["per_species"]
        rows.append({"method": method, "dose": frame.dose, "s_accuracy": score["s_site_accuracy"],
                     "mo_rmse": score["mo_rmse"], "F1_Mo": per.loc["Mo", "F1"], "F1_S2": per.loc["S2", "F1"],
                     "F1_S1": per.loc["S1", "F1"]})
    io = limits.ideal_observer(frame, psf)
    sp = np.asarray(frame.sites.species).astype(str)
    margin = 0.5
    inside = ((frame.sites.x > margin) & (frame.sites.x < extent[0] - margin) & (frame.sites.y > margin)
              & (frame.sites.y < extent[1] - margin))
    recalls = [float(np.mean(io[inside & (sp == c)] == c)) for c in ("S2", "S1", "vacancy")
               if np.any(inside & (sp == c))]
    crb = limits.cramer_rao(frame, "Mo", psf)
    rows.append({"method": "ideal observer", "dose": frame.dose, "s_accuracy": float(np.mean(recalls)),
                 "mo_rmse": float(np.nanmedian(crb)) if np.any(np.isfinite(crb)) else float("nan"),
                 "F1_Mo": float("nan"), "F1_S2": float("nan"), "F1_S1": float("nan")})
    return rows


def dose_sweep(doses, n_frames: int, shape=(192, 192), probe=None, sampling: float = 0.16, seed: int = 5,
               methods=METHODS, rl_max: int = 100, progress: bool = True, **specimen_options) -> pd.DataFrame:
    """Evaluate every method over doses [e⁻/Å²], ``n_frames`` held-out frames per dose.

    Frame ``i`` at every dose shows the same specimen (seeded by ``(seed, i)``), so
    the doses differ only in the counts.
    """
    rows = []
    bar = tqdm(total=len(doses) * n_frames, desc="dose sweep", unit="frame", disable=not progress)
    for i in range(n_frames):
        for dose in doses:
            rng = np.random.default_rng([seed, i])
            frame = simulate_frame(shape, sampling=sampling, dose=float(dose), probe=probe, rng=rng,
                                   **specimen_options)
            for row in evaluate_frame(frame, methods, rl_max):
                rows.append({**row, "frame": i})
            bar.update()
    bar.close()
    return pd.DataFrame(rows)


def dose_for_accuracy(table: pd.DataFrame, target: float = 0.9, column: str = "s_accuracy") -> pd.Series:
    """Lowest dose at which each method's mean ``column`` reaches ``target`` [e⁻/Å²].

    Interpolated linearly in log(dose) between the two doses that bracket the
    target; NaN when the method never reaches it (and the lowest dose when it
    is already above at the lowest).
    """
    out = {}
    for method, group in table.groupby("method", sort=False):
        curve = group.groupby("dose")[column].mean().sort_index()
        d, a = np.log(curve.index.to_numpy(float)), curve.to_numpy()
        value = float("nan")
        for k in range(len(a)):
            if a[k] >= target:
                if k == 0:
                    value = math.exp(d[0])
                else:
                    t = (target - a[k - 1]) / (a[k] - a[k - 1])
                    value = math.exp(d[k - 1] + t * (d[k] - d[k - 1]))
                break
        out[method] = value
    return pd.Series(out, name=f"dose for {column} ≥ {target} [e⁻/Å²]")
