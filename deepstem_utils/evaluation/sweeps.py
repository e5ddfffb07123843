"""The dose evaluation: every method on the same frames, scored against ground truth.

Each method turns a frame into an object estimate with the same probe; the
same :func:`find_atoms` turns every estimate into sites; :func:`.metrics.score_sites`
scores them. The ideal observer and the Cramér-Rao bound (:mod:`.limits`) give
the physical limit on the same frames.

A method is a name (:data:`METHODS`, :data:`PEERS`) or any callable
``method(frame, psf)`` that returns an object estimate (an array, located and
labelled by :func:`find_atoms`) or a table of sites (``x``, ``y`` [Å],
``species``), so a peer is added without editing the package.
"""

from __future__ import annotations

import importlib.util
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
from .multislice import S_SPECIES, oracle_rows, site_counts

__all__ = ["METHODS", "PEERS", "OPTIONAL", "RL_ITERATIONS", "method_name", "estimate", "atomap_peer",
           "evaluate_frame", "dose_sweep", "multislice_sweep", "pooled_accuracy", "dose_for_accuracy"]

#: Methods compared, in the order of the tables. A ``+fit`` method locates the columns in the object of the
#: method before the ``+`` and fits their intensities to the counts (``find_atoms(..., counts=, psf=)``).
METHODS = ("raw", "gaussian", "wiener", "richardson_lucy", "bm3d", "supervised_unet", "deepstem",
           "gaussian+fit", "deepstem+fit")
#: Named peers that are not in the default table: ``"atomap"`` (:func:`atomap_peer`).
PEERS = ("atomap",)
#: Methods that need an optional package: ``pip install 'deepstem_utils[baselines]'``.
OPTIONAL = {"bm3d": "bm3d", "atomap": "atomap"}


def method_name(method) -> str:
    """The name a method has in the tables: the string itself, or a callable's ``__name__``."""
    if isinstance(method, str):
        return method
    return str(getattr(method, "__name__", None) or type(method).__name__)


def _check_methods(methods) -> list:
    """Every method known or callable, every optional package present, names distinct: checked before any work."""
    methods = list(methods)
    known = set(METHODS) | set(PEERS)
    for method in methods:
        if isinstance(method, str):
            if method not in known:
                raise ValueError(f"unknown method {method!r}; choose from {METHODS + PEERS} or pass a callable "
                                 "method(frame, psf) -> object estimate or sites table")
            package = OPTIONAL.get(method.removesuffix("+fit"))
            if package is not None and importlib.util.find_spec(package) is None:
                raise ModuleNotFoundError(f"method {method!r} needs the optional package {package}: "
                                          "pip install 'deepstem_utils[baselines]' (or leave the method out)")
        elif not callable(method):
            raise TypeError(f"a method is a name from {METHODS + PEERS} or a callable, got {type(method).__name__}")
    names = [method_name(m) for m in methods]
    if len(set(names)) != len(names):
        raise ValueError(f"two methods share a name in {names}: give each callable its own __name__")
    return methods


def atomap_peer(frame, psf: np.ndarray) -> pd.DataFrame:
    """Atomap's 2-D Gaussian refinement as a peer (``"atomap"``): columns located on the Gaussian-filtered
    frame by :func:`find_atoms`, refined by a 2-D Gaussian each on the frame's counts and labelled from their
    Gaussian volumes (:func:`.baselines.atomap_sites`). Needs ``atomap`` (the ``[baselines]`` extra); a frame
    with fewer than 10 columns found gives no sites."""
    start = find_atoms(estimate("gaussian", frame, psf), frame.sampling, one_atom_fraction=0.5, quiet=True)
    if len(start) < 10:
        return pd.DataFrame({"x": [], "y": [], "species": [], "confidence": [], "intensity": []})
    return baselines.atomap_sites(frame.counts, start, frame.sampling)


#: Richardson-Lucy iterations on a frame without a ground-truth object (no PSNR to pick the best count by).
RL_ITERATIONS = 30


def estimate(method: str, frame, psf: np.ndarray, rl_max: int = 100) -> np.ndarray:
    """Object estimate of ``frame`` by ``method`` (counts units; RL at its best iteration by PSNR, or
    :data:`RL_ITERATIONS` on a frame with no ground-truth object, such as a multislice frame).

    ``"supervised_unet"`` is the AtomAI-style alternative: DeepSTEM's encoder
    trained on the same simulated frames, but against their ground-truth object
    (``deepstem train --config deepstem_utils/weights/supervised_config.json``).
    """
    if method.endswith("+fit"):  # the object locates; the counts quantify (in find_atoms)
        return estimate(method[:-4], frame, psf, rl_max)
    if method == "raw":
        return frame.counts
    if method == "gaussian":
        return baselines.gaussian(frame.counts, baselines.GAUSSIAN_SIGMA / frame.sampling)
    if method == "wiener":
        return baselines.wiener(frame.counts, psf)
    if method == "bm3d":
        return baselines.bm3d(frame.counts)
    if method == "richardson_lucy":
        if frame.obj is None:
            return baselines.richardson_lucy(frame.counts, psf, RL_ITERATIONS)
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


def evaluate_frame(frame, methods=METHODS, rl_max: int = 100, oracles: bool = False) -> list[dict]:
    """Score every method (and the ideal observer) on one frame.

    Parameters
    ----------
    frame : SimulatedFrame
        A frame with ground truth (:func:`simulate_frame`).
    methods : sequence of str or callable
        Names from :data:`METHODS` and :data:`PEERS`, or callables ``method(frame, psf)``
        returning an object estimate (located and labelled by :func:`find_atoms`,
        starting from the one-S level of a linear image, 1/2, unless the callable has
        an attribute ``one_atom_fraction``) or a sites table (``x``, ``y`` [Å], ``species``).
    rl_max : int
        Most Richardson-Lucy iterations.
    oracles : bool
        Also the oracles of :func:`.multislice.oracle_rows` (positions and class levels known; class levels
        known and positions found), as on a multislice frame (where they always replace the ideal observer).

    Returns
    -------
    list of dict
        One record per method (named by :func:`method_name`): dose [e⁻/Å²], balanced
        S-site accuracy, Mo position RMSE [pm], F1 of Mo, S2, S1; the ideal observer's
        record has the S-site accuracy and the Cramér-Rao bound on the Mo position
        (median over columns) [pm].
    """
    methods = _check_methods(methods)
    size = psf_grid(frame.sampling)
    psf = frame.probe.intensity((size, size), frame.sampling)
    ny, nx = frame.counts.shape
    extent = (nx * frame.sampling, ny * frame.sampling)
    rows, estimates = [], {}
    for method in methods:
        found = _sites(method, frame, psf, rl_max, estimates)
        score = metrics.score_sites(found, frame.sites, extent, missed_as_wrong=True)  # comparable with the ideal observer
        per, confusion = score["per_species"], score["confusion"]
        counts = {}
        for c in S_SPECIES:
            counts[f"{c}_sites"] = int(confusion.loc[c].sum())
            counts[f"{c}_right"] = int(confusion.loc[c, c])
        rows.append({"method": method_name(method), "dose": frame.dose, "s_accuracy": score["s_site_accuracy"],
                     **counts, "mo_rmse": score["mo_rmse"], "F1_Mo": per.loc["Mo", "F1"], "F1_S2": per.loc["S2", "F1"],
                     "F1_S1": per.loc["S1", "F1"]})
    if frame.obj is None:  # no forward model behind the frame (multislice): the oracles of :mod:`.multislice`
        return rows + oracle_rows(frame, psf, extent)
    io = limits.ideal_observer(frame, psf)
    sp = np.asarray(frame.sites.species).astype(str)
    margin = 0.5
    inside = ((frame.sites.x > margin) & (frame.sites.x < extent[0] - margin) & (frame.sites.y > margin)
              & (frame.sites.y < extent[1] - margin))
    crb = limits.cramer_rao(frame, "Mo", psf)
    rows.append({"method": "ideal observer", "dose": frame.dose, **site_counts(io, sp, inside),
                 "mo_rmse": float(np.nanmedian(crb)) if np.any(np.isfinite(crb)) else float("nan"),
                 "F1_Mo": float("nan"), "F1_S2": float("nan"), "F1_S1": float("nan")})
    return rows + (oracle_rows(frame, psf, extent) if oracles else [])


def _sites(method, frame, psf: np.ndarray, rl_max: int, estimates: dict) -> pd.DataFrame:
    """The sites ``method`` finds on ``frame`` (``estimates`` caches the named methods' objects)."""
    if callable(method) and not isinstance(method, str):
        result = method(frame, psf)
        if isinstance(result, pd.DataFrame):
            return result
        level = float(getattr(method, "one_atom_fraction", 0.5))
        return find_atoms(np.asarray(result, float), frame.sampling, one_atom_fraction=level, quiet=True)
    if method == "atomap":
        return atomap_peer(frame, psf)
    base = method.removesuffix("+fit")  # a "+fit" method reuses its base method's object
    if base not in estimates:
        estimates[base] = estimate(base, frame, psf, rl_max)
    # a method that finds no MoS2 at a low dose gets an empty table (quietly): every site scores as missed
    fit = {"counts": frame.counts, "psf": psf} if method.endswith("+fit") else {}
    return find_atoms(estimates[base], frame.sampling, one_atom_fraction=one_atom_fraction(method), quiet=True, **fit)


def dose_sweep(doses, n_frames: int, shape=(192, 192), probe=None, sampling: float = 0.16, seed: int = 5,
               methods=METHODS, rl_max: int = 100, progress: bool = True, oracles: bool = False,
               **specimen_options) -> pd.DataFrame:
    """Evaluate every method over doses [e⁻/Å²], ``n_frames`` held-out frames per dose.

    Frame ``i`` at every dose shows the same specimen (seeded by ``(seed, i)``), so
    the doses differ only in the counts. ``methods`` as in :func:`evaluate_frame`
    (names or callables); an unknown name or a missing optional package (``bm3d``,
    ``atomap``: ``pip install 'deepstem_utils[baselines]'``) fails before any work.
    """
    methods = _check_methods(methods)
    rows = []
    bar = tqdm(total=len(doses) * n_frames, desc="dose sweep", unit="frame", disable=not progress)
    for i in range(n_frames):
        for dose in doses:
            rng = np.random.default_rng([seed, i])
            frame = simulate_frame(shape, sampling=sampling, dose=float(dose), probe=probe, rng=rng,
                                   **specimen_options)
            for row in evaluate_frame(frame, methods, rl_max, oracles):
                rows.append({**row, "frame": i})
            bar.update()
    bar.close()
    return pd.DataFrame(rows)


def multislice_sweep(evaluation_set, doses, methods=METHODS, probes: dict | None = None, frames=None, seed: int = 0,
                     progress: bool = True) -> pd.DataFrame:
    """Every method on the frames of a multislice evaluation set (:class:`.multislice.MultisliceSet`), over dose.

    Parameters
    ----------
    evaluation_set : MultisliceSet
        Noiseless multislice scans with their truth.
    doses : sequence of float
        Doses [e⁻/Å²]; frame ``i`` at every dose is the same scan with other Poisson counts.
    methods : sequence of str or callable
        As in :func:`evaluate_frame`.
    probes : dict, optional
        The probe the methods are given, by beam energy [eV] (e.g. measured from a Zemlin tableau: the full
        chain); the true probe of the simulation for an energy not in it.
    frames : sequence of int, optional
        Which frames (default: all).

    Returns
    -------
    DataFrame
        One row per method, frame and dose (as :func:`dose_sweep`), with ``condition`` (e.g. "80 kV, bare") and
        the two oracles of :func:`.multislice.oracle_rows` in place of the ideal observer.
    """
    methods = _check_methods(methods)
    probes = dict(probes or {})
    frames = range(len(evaluation_set)) if frames is None else list(frames)
    rows = []
    bar = tqdm(total=len(frames) * len(doses), desc="multislice sweep", unit="frame", disable=not progress)
    for i in frames:
        probe = probes.get(float(evaluation_set.energies[i]))
        for dose in doses:
            frame = evaluation_set.frame(i, float(dose), seed=seed, probe=probe)
            for row in evaluate_frame(frame, methods):
                rows.append({**row, "frame": i, "condition": frame.condition})
            bar.update()
    bar.close()
    return pd.DataFrame(rows)


def pooled_accuracy(table: pd.DataFrame, resamples: int = 400, seed: int = 0) -> pd.DataFrame:
    """Balanced S-site accuracy of each method at each dose, **pooled over frames**, with a bootstrap interval.

    Each class's recall is taken over all its sites in all frames of a dose, and the three recalls are averaged.
    A mean of per-frame accuracies would let a frame with one vacancy move the curve by a third of that frame's
    share; pooled, every site weighs the same. The interval (16th-84th percentile, about ±1 standard error)
    comes from resampling the frames with replacement (``resamples`` times, seeded).

    Parameters
    ----------
    table : DataFrame
        Rows of :func:`evaluate_frame` (with the ``<class>_sites`` and ``<class>_right`` counts).

    Returns
    -------
    DataFrame
        Indexed by ``method`` and ``dose``: ``s_accuracy``, ``low``, ``high`` and ``sites`` (S sites pooled).
    """
    sites = [f"{c}_sites" for c in S_SPECIES]
    right = [f"{c}_right" for c in S_SPECIES]
    missing = [c for c in sites + right if c not in table]
    if missing:
        raise ValueError(f"the table has no site counts ({missing[0]} missing): make it with evaluate_frame, "
                         "dose_sweep or multislice_sweep of this version")
    rng = np.random.default_rng(seed)

    def balanced(n: np.ndarray, k: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.nanmean(np.where(n > 0, k / n, np.nan), axis=-1)

    rows = []
    for (method, dose), group in table.groupby(["method", "dose"], sort=False):
        n, k = group[sites].to_numpy(float), group[right].to_numpy(float)
        pick = rng.integers(0, len(group), (resamples, len(group)))
        boot = balanced(n[pick].sum(1), k[pick].sum(1))
        rows.append({"method": method, "dose": dose, "s_accuracy": float(balanced(n.sum(0), k.sum(0))),
                     "low": float(np.nanpercentile(boot, 16)), "high": float(np.nanpercentile(boot, 84)),
                     "sites": int(n.sum())})
    return pd.DataFrame(rows).set_index(["method", "dose"])


def dose_for_accuracy(table: pd.DataFrame, target: float = 0.9, column: str = "s_accuracy") -> pd.Series:
    """Lowest dose at which each method's ``column`` reaches ``target`` [e⁻/Å²]: for ``"s_accuracy"`` in a table
    with site counts, the accuracy pooled over frames (:func:`pooled_accuracy`), else the mean over frames.

    Interpolated linearly in log(dose) between the two doses that bracket the
    target; NaN when the method never reaches it (and the lowest dose when it
    is already above at the lowest).
    """
    out = {}
    pooled = column == "s_accuracy" and "S2_sites" in table
    curves = pooled_accuracy(table, resamples=1)["s_accuracy"] if pooled else None
    for method, group in table.groupby("method", sort=False):
        curve = curves.loc[method].sort_index() if pooled else group.groupby("dose")[column].mean().sort_index()
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
