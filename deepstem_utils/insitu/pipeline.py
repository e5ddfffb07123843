"""Processing an in situ time series frame by frame, on dask.distributed.

Every frame is registered against the previous one (phase correlation,
:func:`skimage.registration.phase_cross_correlation`) so that drift
accumulates into a per-frame shift, then reconstructed (:func:`reconstruct`) and
its atoms found (:func:`find_atoms`); the drift steps are measured by :mod:`.drift`. Frames run as independent tasks on a
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..atoms.find import find_atoms
from ..atoms.mixture import mo_level
from ..network.reconstruction import reconstruct
from ..network.weights import weights_calibration
from ..physics.probe import Probe, psf_grid
from .drift import drift_table, register_drift

__all__ = ["process_series", "SeriesTask", "frame_outputs", "load_atoms", "physical_sites", "with_drift"]


def frame_outputs(out: str | os.PathLike, index: int) -> dict[str, Path]:
    """Output files of frame ``index`` (``step``: its registration on the previous frame, written by its task)."""
    out = Path(out)
    return {"object": out / f"frame_{index:05d}_object.npy", "atoms": out / f"frame_{index:05d}_atoms.csv",
            "step": out / f"frame_{index:05d}_step.json"}


@dataclass(frozen=True)
class SeriesTask:
    """What every frame of one run is processed with (sent once with each frame's task).

    Attributes
    ----------
    probe : Probe
        The probe.
    sampling : float
        Pixel size [Å].
    out : str
        Output directory.
    weights : str or None
        Network weights (None: shipped).
    material : {"MoS2", None}
        Passed to :func:`find_atoms`.
    intensities : {"counts", "object"}
        How the columns' intensities are measured (see :func:`process_series`).
    """

    probe: Probe
    sampling: float
    out: str
    weights: str | None = None
    material: str | None = "MoS2"
    intensities: str = "counts"

    def atoms(self, obj: np.ndarray, frame: np.ndarray) -> pd.DataFrame:
        """The sites of one frame from its object (and, with ``intensities="counts"``, its counts)."""
        if self.intensities == "counts":  # the object locates the columns, the frame's counts quantify them
            size = psf_grid(self.sampling)
            return find_atoms(obj, self.sampling, self.material, counts=frame, quiet=True,
                              psf=self.probe.intensity((size, size), self.sampling))
        level = weights_calibration(self.weights).get("one_atom_fraction")  # the network's one-S level
        return find_atoms(obj, self.sampling, self.material, one_atom_fraction=level, quiet=True)


def _process_one(task: SeriesTask, index: int, frame: np.ndarray, previous: np.ndarray | None,
                 register: bool) -> dict:
    """One frame: register it on the previous frame (if asked), reconstruct, find atoms, write the outputs
    atomically. Runs on a worker, so registration scales with the workers instead of the client."""
    torch.set_num_threads(1)  # one core per worker: scale with workers, not threads
    paths = frame_outputs(task.out, index)
    step = None
    if register:
        step = [0.0, 0.0, math.inf] if previous is None else \
            [float(v) for v in register_drift(previous, frame, return_quality=True)]
        _write_atomically(paths["step"], json.dumps({"frame": index, "step_dy": step[0], "step_dx": step[1],
                                                     "quality": step[2]}))
    obj = reconstruct(frame, task.probe, sampling=task.sampling, weights=task.weights)
    atoms = task.atoms(obj, frame)
    atoms.insert(0, "frame", index)
    tmp = paths["object"].with_suffix(".tmp.npy")
    np.save(tmp, obj.astype(np.float32))
    os.replace(tmp, paths["object"])
    _write_atomically(paths["atoms"], atoms.to_csv(index=False, float_format="%.4f"))  # last: marks it done
    return {**_counts(index, atoms), "step": step}


def _write_atomically(path: Path, text: str):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _counts(index: int, atoms: pd.DataFrame) -> dict:
    return {"frame": index, "sites": len(atoms), **atoms["species"].value_counts().to_dict()}


def _resume(out: Path, n: int) -> tuple[np.ndarray, set, set]:
    """What an earlier run left: the drift steps known ``(n, 3)`` (NaN where not), the frames still to do, and
    the frames whose registration is unknown. Registrations of a finished run are in ``drift.csv``; those of an
    interrupted one in the tasks' step files."""
    drift_path = out / "drift.csv"
    old = pd.read_csv(drift_path) if drift_path.exists() else pd.DataFrame()
    known = min(len(old), n) if "quality" in old else 0
    steps = np.full((n, 3), np.nan)
    if known:
        steps[:known] = old[["step_dy", "step_dx", "quality"]].to_numpy(float)[:known]
    for i in range(known, n):
        path = frame_outputs(out, i)["step"]
        if path.exists():
            record = json.loads(path.read_text())
            steps[i] = (record["step_dy"], record["step_dx"], record["quality"])
    todo = {i for i in range(n) if not frame_outputs(out, i)["atoms"].exists()}
    unknown = {i for i in range(n) if np.isnan(steps[i, 0])}
    return steps, todo, unknown


def _client(scheduler: str | None, n_workers: int):
    """A dask client on the scheduler at ``scheduler``, or on a new LocalCluster (returned too, to close)."""
    import dask  # noqa: PLC0415  (heavy, and only needed here)
    from dask.distributed import Client, LocalCluster  # noqa: PLC0415

    if scheduler is not None:
        return Client(scheduler), None
    # no dashboard, so no statistical profiler: its history (one call tree per second, kept for an hour) made a
    # worker's memory grow with the length of the run
    with dask.config.set({"distributed.worker.profile.enabled": False}):
        # the scheduler's small HTTP server (health checks) on a free local port, so a cluster already holding the
        # default port 8787 causes no warning
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    return Client(cluster), cluster


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
    from dask.distributed import as_completed  # noqa: PLC0415  (heavy, and only needed here)

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output {out} is a file, not a directory")
    out.mkdir(parents=True, exist_ok=True)
    n = len(frames)
    if n == 0:
        raise ValueError("the series holds no frames")
    steps, todo, unknown = _resume(out, n)
    here = unknown - todo  # finished frames whose registration was lost: registered here, in the client

    def needed(i):  # frame i is read only when it is processed or registered (by its task or here)
        after = i + 1 < n and (i + 1) in unknown
        return i in todo or i in here or after

    client, own_cluster = _client(scheduler, n_workers)
    task = SeriesTask(probe, float(sampling), str(out), None if weights is None else str(weights), material,
                      intensities)
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
                pending.add(client.submit(_process_one, task, i, current, previous if i > 0 else None,
                                          i in unknown, pure=False))
            previous = current
        for future in pending:
            collect(future)
    finally:
        bar.close()
        client.close()
        if own_cluster is not None:
            own_cluster.close()
    drift = drift_table(steps, sampling, max_jump)
    _write_atomically(out / "drift.csv", drift.to_csv(index=False))
    rows = [counts[i] if i in counts else _counts(i, pd.read_csv(frame_outputs(out, i)["atoms"]))
            for i in range(n)]
    summary = pd.DataFrame(rows).fillna(0).merge(drift[["frame", "dy_A", "dx_A"]], on="frame")
    summary.to_csv(out / "summary.csv", index=False)
    (out / "run.json").write_text(json.dumps({"frames": n, "probe": probe.to_dict(), "sampling": sampling,
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
    if not 0 < min_mo_fraction < 1:
        raise ValueError(f"min_mo_fraction must be between 0 and 1, got {min_mo_fraction}")
    mo = atoms.intensity[atoms.species == "Mo"].to_numpy(float)
    if len(mo) == 0:
        return atoms
    level = mo_level(mo)
    floor = min_mo_fraction * level
    frame_mo = atoms[atoms.species == "Mo"].groupby("frame").intensity.median()
    light_frames = set(frame_mo.index[frame_mo < floor])
    keep = ~atoms.frame.isin(light_frames) & ~((atoms.species == "Mo_adatom") & (atoms.intensity < floor))
    return atoms[keep]
