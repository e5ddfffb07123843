"""Processing an in situ time series frame by frame, on dask.distributed.

Every frame is registered against the previous one (phase correlation,
:func:`skimage.registration.phase_cross_correlation`) so that drift
accumulates into a per-frame shift, then reconstructed (:func:`reconstruct`) and
its atoms found (:func:`find_atoms`). Frames run as independent tasks on a
``dask.distributed`` cluster: a :class:`~distributed.LocalCluster` by default,
or an existing scheduler given by its address, unchanged.

The run streams: at most ``max_in_flight`` frames are in memory or on the
cluster at a time, so memory does not grow with the length of the series.
Each frame's results are written as soon as they arrive (atomically), and a
frame whose outputs already exist is not redone, so an interrupted run resumes
where it stopped and loses nothing.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["process_series", "register_drift", "frame_outputs", "frame_atoms", "FileFrames", "load_atoms",
           "physical_sites", "with_drift"]


class FileFrames:
    """The frames of one or more files as a lazy sequence (each file a frame or a stack).

    Files are opened lazily (HyperSpy), so a long series is read one frame at a time.
    """

    def __init__(self, paths, sampling: float | None = None):
        from .io import load, sampling_of

        self._items = []
        self.sampling = None
        for path in paths:
            signal = load(path, sampling=sampling, lazy=True)
            s = sampling_of(signal)
            if self.sampling is None:
                self.sampling = s
            elif abs(s - self.sampling) > 1e-6 * self.sampling:
                raise ValueError(f"{Path(path).name} has pixel size {s:.4g} Å, the first file {self.sampling:.4g} Å: "
                                 "a series needs one pixel size")
            data = signal.data
            if data.ndim == 2:
                self._items.append((data, None))
            else:
                flat = data.reshape((-1,) + data.shape[-2:])
                self._items.extend((flat, k) for k in range(flat.shape[0]))

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i: int) -> np.ndarray:
        data, k = self._items[i]
        frame = data if k is None else data[k]
        return np.asarray(frame.compute() if hasattr(frame, "compute") else frame)


def register_drift(previous: np.ndarray, current: np.ndarray, upsample: int = 20, smooth: float = 2.0,
                   coarse: float = 4.0, return_quality: bool = False):
    """Shift (dy, dx) [px] that registers ``current`` onto ``previous`` (sub-pixel cross-correlation).

    A crystal lattice (the graphene support, MoS₂) makes the cross-correlation
    periodic, with a peak at every lattice vector. So the shift is found in two
    steps: first on frames smoothed by ``coarse`` [px], where the lattice is gone
    and only the non-periodic content (grain shapes, contamination) is left, then,
    after moving ``current`` by that shift, on frames smoothed only by ``smooth``
    [px] (against shot noise), where the lattice pins the sub-pixel remainder. A
    Hann window tapers both frames (the frame edges do not move with the
    specimen and would pull the estimate towards zero).

    With ``return_quality`` the result is ``(dy, dx, z)``: ``z`` is the height of
    the coarse correlation peak above the median of the correlation map, in
    standard deviations of the map (kept in ``drift.csv`` as a diagnostic; it
    depends on the frame size and the smoothing, so :func:`process_series` judges
    a step by its consistency with the others instead). A frame with too little
    contrast (bare graphene at low dose) cannot be registered.
    """
    from scipy import ndimage
    from skimage.filters import window
    from skimage.registration import phase_cross_correlation

    previous, current = np.asarray(previous, float), np.asarray(current, float)
    taper = window("hann", previous.shape)

    def prepare(a, sigma):
        a = ndimage.gaussian_filter(a, sigma) if sigma > 0 else a
        return (a - a.mean()) * taper  # without its mean, the taper itself does not correlate

    def correlate(a, b, sigma, factor):
        return phase_cross_correlation(prepare(a, sigma), prepare(b, sigma), upsample_factor=factor,
                                       normalization=None)[0]

    first = correlate(previous, current, coarse, 4) if coarse > 0 else np.zeros(2)
    moved = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(current), first)).real
    rest = correlate(previous, moved, smooth, upsample)
    if coarse > 0 and np.hypot(*rest) > coarse / 2:  # the fine step jumped to another lattice peak
        rest = np.zeros(2)
    shift = first + rest
    if not return_quality:
        return float(shift[0]), float(shift[1])
    a, b = prepare(previous, coarse), prepare(current, coarse)
    cc = np.fft.ifft2(np.fft.fft2(a) * np.conj(np.fft.fft2(b))).real
    z = (cc.max() - np.median(cc)) / (cc.std() + 1e-30)
    return float(shift[0]), float(shift[1]), float(z)


def frame_outputs(out: str | os.PathLike, index: int) -> dict[str, Path]:
    """Output files of frame ``index`` (``step``: its registration on the previous frame, written by its task)."""
    out = Path(out)
    return {"object": out / f"frame_{index:05d}_object.npy", "atoms": out / f"frame_{index:05d}_atoms.csv",
            "step": out / f"frame_{index:05d}_step.json"}


def frame_atoms(obj: np.ndarray, sampling: float, material: str | None = "MoS2",
                one_atom_fraction: float | None = None, **options) -> pd.DataFrame:
    """:func:`find_atoms` for one frame of a series, quietly: a frame with nothing to find yet (bare
    support early in a growth series) gives an empty table without a warning.

    ``one_atom_fraction`` and further keywords (``counts``, ``psf``) are passed on (for a network's
    object: the value stored with its weights, :func:`model.weights_calibration`)."""
    import warnings

    from .atoms import find_atoms

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="fewer than 3 bright columns")
        return find_atoms(obj, sampling=sampling, material=material, one_atom_fraction=one_atom_fraction,
                          **options)


def _process_one(index: int, frame: np.ndarray, previous: np.ndarray | None, register: bool, probe_dict: dict,
                 sampling: float, weights, out: str, material, intensities: str = "counts") -> dict:
    """One frame: register it on the previous frame (if asked), reconstruct, find atoms, write the outputs
    atomically. Runs on a worker, so registration scales with the workers instead of the client."""
    import torch

    from .model import psf_grid, weights_calibration
    from .optics import Probe
    from .reconstruction import reconstruct

    torch.set_num_threads(1)  # one core per worker: scale with workers, not threads
    paths = frame_outputs(Path(out), index)
    step = None
    if register:
        step = [0.0, 0.0, math.inf] if previous is None else \
            [float(v) for v in register_drift(previous, frame, return_quality=True)]
        tmp = paths["step"].with_suffix(".tmp")
        tmp.write_text(json.dumps({"frame": index, "step_dy": step[0], "step_dx": step[1], "quality": step[2]}))
        os.replace(tmp, paths["step"])
    probe = Probe.from_dict(probe_dict)
    obj = reconstruct(frame, probe, sampling=sampling, weights=weights)
    if intensities == "counts":  # the object locates the columns, the frame's counts quantify them
        size = psf_grid(sampling)
        atoms = frame_atoms(obj, sampling, material, counts=frame, psf=probe.intensity((size, size), sampling))
    else:
        level = weights_calibration(weights).get("one_atom_fraction")  # the network's one-S level, if measured
        atoms = frame_atoms(obj, sampling, material, one_atom_fraction=level)
    atoms.insert(0, "frame", index)
    tmp = paths["object"].with_suffix(".tmp.npy")
    np.save(tmp, obj.astype(np.float32))
    os.replace(tmp, paths["object"])
    tmp = paths["atoms"].with_suffix(".tmp")
    atoms.to_csv(tmp, index=False, float_format="%.4f")
    os.replace(tmp, paths["atoms"])  # the atoms file is written last: its presence marks the frame done
    return {**_counts(index, atoms), "step": step}


def _counts(index: int, atoms: pd.DataFrame) -> dict:
    return {"frame": index, "sites": len(atoms), **atoms["species"].value_counts().to_dict()}


def _drift_table(steps: np.ndarray, sampling: float, max_jump: float) -> pd.DataFrame:
    """Cumulative drift from frame-to-frame steps ``(n, 3)`` (dy, dx [px], quality), failed steps replaced.

    Stage drift is smooth: a step far from the typical step is a failed registration (a frame with too
    little contrast, bare graphene at low dose, gives a random answer) and is replaced by the median step.
    """
    n = len(steps)
    reliable = np.ones(n, bool)
    if n > 3:
        typical = np.median(steps[1:, :2], axis=0)
        deviation = np.hypot(*(steps[1:, :2] - typical).T)
        spread = 1.4826 * np.median(deviation)
        reliable[1:] = deviation <= max_jump + 4 * spread
        used = np.where(reliable[:, None], steps[:, :2], typical)
    else:
        used = steps[:, :2].copy()
    used[0] = 0.0
    shifts = np.cumsum(used, axis=0)
    drift = pd.DataFrame({"frame": np.arange(n), "dy_px": shifts[:, 0], "dx_px": shifts[:, 1],
                          "step_dy": steps[:, 0], "step_dx": steps[:, 1], "quality": steps[:, 2],
                          "reliable": reliable})
    drift["dy_A"], drift["dx_A"] = drift.dy_px * sampling, drift.dx_px * sampling
    return drift


def process_series(frames, probe, sampling: float, out: str | os.PathLike, *, weights=None,
                   material: str | None = "MoS2", scheduler: str | None = None, n_workers: int = 2,
                   max_in_flight: int = 4, progress: bool = True, max_jump: float = 1.0,
                   intensities: str = "counts") -> pd.DataFrame:
    """Run the DeepSTEM pipeline on every frame of a series.

    Each frame is read once, by the client, and sent to a task with the frame
    before it: the task registers the pair, reconstructs and finds the atoms, so
    every step of the work scales with the workers (the client only reads). The
    steps are summed into the drift at the end.

    Parameters
    ----------
    frames : sequence of (ny, nx) arrays, or a (n, ny, nx) array (lazy arrays are read one frame at a time)
        The series, in time order.
    probe : Probe
        The probe.
    sampling : float
        Pixel size [Å].
    out : str or Path
        Output directory: ``frame_NNNNN_object.npy``, ``frame_NNNNN_atoms.csv`` (positions in
        each frame's own coordinates), ``drift.csv`` (cumulative shift of each frame [px] and [Å],
        the measured frame-to-frame steps and their quality) and ``summary.csv``.
        :func:`load_atoms` joins the two into drift-corrected positions.
    weights : str or Path, optional
        Network weights (default: shipped).
    material : {"MoS2", None}
        Passed to :func:`find_atoms`.
    scheduler : str, optional
        Address of a running dask.distributed scheduler; default: a LocalCluster.
    n_workers : int
        Workers of the LocalCluster (one thread each).
    max_in_flight : int
        Frames submitted but not yet written, at most.
    progress : bool
        Show a progress bar (frames done).
    max_jump : float
        Stage drift is assumed smooth: a frame-to-frame shift farther than ``max_jump``
        [px] (plus four robust standard deviations of the steps) from the median step is
        taken as a failed registration and replaced by the median step (``reliable``
        column of ``drift.csv``). Frames with too little contrast, such as bare
        graphene at low dose, cannot be registered.
    intensities : {"counts", "object"}
        How the columns' intensities, and so the S-site species, are measured:
        ``"counts"`` fits the linear image model to the frame at the columns the
        object locates (``find_atoms(..., counts=, psf=)``, linear in the atoms);
        ``"object"`` integrates the network's object (starting from the one-S
        level stored with the weights).

    Returns
    -------
    DataFrame
        One row per frame: frame index, number of sites per species, cumulative drift [Å].
    """
    if intensities not in ("counts", "object"):
        raise ValueError(f"intensities must be 'counts' or 'object', got {intensities!r}")
    from dask.distributed import Client, LocalCluster, as_completed
    from tqdm.auto import tqdm

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output {out} is a file, not a directory")
    out.mkdir(parents=True, exist_ok=True)
    n = len(frames)
    if n == 0:
        raise ValueError("the series holds no frames")
    # registrations of an earlier, finished run are reused (drift.csv); frames already written are not redone
    drift_path = out / "drift.csv"
    old = pd.read_csv(drift_path) if drift_path.exists() else pd.DataFrame()
    known = min(len(old), n) if "quality" in old else 0
    steps = np.full((n, 3), np.nan)
    if known:
        steps[:known] = old[["step_dy", "step_dx", "quality"]].to_numpy(float)[:known]
    for i in range(known, n):  # steps the tasks of an interrupted run wrote
        path = frame_outputs(out, i)["step"]
        if path.exists():
            record = json.loads(path.read_text())
            steps[i] = (record["step_dy"], record["step_dx"], record["quality"])
    todo = {i for i in range(n) if not frame_outputs(out, i)["atoms"].exists()}
    unknown = {i for i in range(n) if np.isnan(steps[i, 0])}
    here = unknown - todo  # finished frames whose registration was lost: registered here, in the client

    def needed(i):  # frame i is read only when it is processed or registered (by its task or here)
        after = i + 1 < n and (i + 1) in unknown
        return i in todo or i in here or after

    own_cluster = None
    if scheduler is None:
        import dask

        # no dashboard, so no statistical profiler: its history (one call tree per second, kept for an hour)
        # made a worker's memory grow with the length of the run
        with dask.config.set({"distributed.worker.profile.enabled": False}):
            # no dashboard; the scheduler's small HTTP server (health checks) on a free local port, so a cluster
            # already holding the default port 8787 causes no warning
            own_cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
        client = Client(own_cluster)
    else:
        client = Client(scheduler)
    probe_dict = probe.to_dict()
    counts = {}
    bar = tqdm(total=n, initial=n - len(todo), desc="series", unit="frame", disable=not progress)

    def collect(future):
        record = future.result()  # raise a worker's error here
        future.release()
        step = record.pop("step")
        if step is not None:
            steps[record["frame"]] = step
        counts[record["frame"]] = record
        bar.update()

    try:
        pending = as_completed()
        previous = None
        for i in range(n):
            current = None
            if needed(i):
                current = np.asarray(frames[i], float)
                if current.ndim != 2:
                    raise ValueError(f"frame {i} is not 2-D (shape {current.shape})")
            if i in here:  # a finished frame without its registration: done here, in time order
                steps[i] = (0.0, 0.0, np.inf) if i == 0 else register_drift(previous, current, return_quality=True)
            if i in todo:
                while pending.count() >= max_in_flight:
                    collect(next(pending))
                pending.add(client.submit(_process_one, i, current, previous if i > 0 else None, i in unknown,
                                          probe_dict, sampling, weights, str(out), material, intensities,
                                          pure=False))
            previous = current
        for future in pending:
            collect(future)
    finally:
        bar.close()
        client.close()
        if own_cluster is not None:
            own_cluster.close()
    drift = _drift_table(steps, sampling, max_jump)
    tmp = drift_path.with_suffix(".tmp")
    drift.to_csv(tmp, index=False)
    os.replace(tmp, drift_path)
    rows = [counts[i] if i in counts else _counts(i, pd.read_csv(frame_outputs(out, i)["atoms"]))
            for i in range(n)]
    summary = pd.DataFrame(rows).fillna(0).merge(drift[["frame", "dy_A", "dx_A"]], on="frame")
    summary.to_csv(out / "summary.csv", index=False)
    (out / "run.json").write_text(json.dumps({"frames": n, "probe": probe_dict, "sampling": sampling,
                                              "material": material, "weights": str(weights),
                                              "intensities": intensities}, indent=2) + "\n")
    return summary


def load_atoms(out: str | os.PathLike, min_mo_fraction: float | None = 0.5) -> pd.DataFrame:
    """All frames' sites of a finished (or partial) :func:`process_series` run, in frame order.

    When the run has written ``drift.csv``, the table also has ``x_registered`` and
    ``y_registered`` [Å]: positions in the frame of the first image (drift removed).

    When the run fitted the intensities to the counts (``intensities="counts"``, the
    default), they are on one scale for the whole series (same dose per frame), and
    a column of a monolayer that holds one Mo atom scatters the same in every frame.
    Rows that cannot be Mo are then dropped (:func:`physical_sites`): a ``Mo_adatom``
    scattering less than ``min_mo_fraction`` of the series' Mo level, and every site
    of a frame whose lattice Mo do (graphene read as a lattice on bare frames). ``None``
    keeps every row.
    """
    import json

    out = Path(out)
    files = sorted(out.glob("frame_*_atoms.csv"))
    if not files:
        raise FileNotFoundError(f"no frame_*_atoms.csv in {out}: run process_series (or `deepstem series`) first")
    table = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    drift_path = out / "drift.csv"
    if drift_path.exists():
        table = with_drift(table, pd.read_csv(drift_path))
    run = out / "run.json"
    counted = run.exists() and json.loads(run.read_text()).get("intensities") == "counts"
    if counted and min_mo_fraction is not None:
        table = physical_sites(table, min_mo_fraction)
    return table


def with_drift(atoms: pd.DataFrame, drift: pd.DataFrame) -> pd.DataFrame:
    """Sites of a series (``frame``, ``x``, ``y`` [Å] in each frame) with ``x_registered`` and ``y_registered``:
    positions in the frame of the first image, from ``drift.csv``'s ``frame``, ``dx_A``, ``dy_A``."""
    shift = drift.set_index("frame")
    return atoms.assign(x_registered=atoms.x + atoms.frame.map(shift.dx_A),
                        y_registered=atoms.y + atoms.frame.map(shift.dy_A))


def physical_sites(atoms: pd.DataFrame, min_mo_fraction: float = 0.5) -> pd.DataFrame:
    """Drop the sites of a series that cannot be Mo by their scattering.

    ``intensity`` must be on one scale for every frame (fitted to the counts at a
    constant dose). The series' Mo level is the median intensity of the bright
    ``Mo`` columns over all frames (the mode of Mo-like values, as in
    :func:`find_atoms`). A ``Mo_adatom`` below ``min_mo_fraction`` of it is dropped,
    and so is every site of a frame whose ``Mo`` median is below it: its "lattice" is
    something lighter, such as the graphene support read as a honeycomb.

    Examples
    --------
    >>> t = pd.DataFrame({"frame": [0, 0, 1, 1, 1], "species": ["Mo", "S2", "Mo", "Mo_adatom", "Mo_adatom"],
    ...                   "intensity": [30.0, 12.0, 600.0, 580.0, 40.0]})
    >>> physical_sites(t).index.tolist()
    [2, 3]
    """
    from .atoms import _mo_threshold

    if not 0 < min_mo_fraction < 1:
        raise ValueError(f"min_mo_fraction must be between 0 and 1, got {min_mo_fraction}")
    mo = atoms.intensity[atoms.species == "Mo"].to_numpy(float)
    if len(mo) == 0:
        return atoms
    level = _mo_threshold(mo) / 0.62
    floor = min_mo_fraction * level
    frame_mo = atoms[atoms.species == "Mo"].groupby("frame").intensity.median()
    light_frames = set(frame_mo.index[frame_mo < floor])
    keep = ~atoms.frame.isin(light_frames) & ~((atoms.species == "Mo_adatom") & (atoms.intensity < floor))
    return atoms[keep]
