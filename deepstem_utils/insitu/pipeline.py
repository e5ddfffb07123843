"""Processing an in situ time series frame by frame, on dask.distributed.

Every frame is registered against the previous one (phase correlation,
:func:`skimage.registration.phase_cross_correlation`) so that drift
accumulates into a per-frame shift, then reconstructed (:func:`reconstruct`) and
its atoms found (:func:`find_atoms`); the drift steps are measured by :mod:`.drift`. Frames run as independent tasks on a
``dask.distributed`` cluster: a :class:`~distributed.LocalCluster` by default,
or an existing scheduler given by its address, unchanged.

The run streams: at most ``max_in_flight`` frames are in memory or on the
cluster at a time, so memory does not grow with the length of the series.
Each frame's results are written as soon as they arrive (atomically): its object
as a calibrated ``.hspy`` (axes in Å, ``metadata.DeepSTEM`` with the provenance)
and its sites as CSV with a JSON sidecar of units (:mod:`..atoms.table`). A frame
whose results already exist is not redone, so an interrupted run resumes where it
stopped and loses nothing; the run record (:mod:`.runrecord`) makes sure those
results were made from the same inputs and settings.
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
from ..atoms.table import read_atoms, save_atoms
from ..core.memory import keep_freed_memory
from ..core.signals import counts_array
from ..network.reconstruction import MIN_SIDE, reconstruct
from ..network.weights import weights_calibration
from ..physics.probe import Probe, psf_grid
from .drift import drift_table, register_drift
from .runrecord import (
    RUN_RECORD,
    RunRecord,
    fingerprint,
    frame_files,
    frame_names,
    read_record,
    reconcile,
    run_settings,
)

__all__ = ["process_series", "SeriesTask", "frame_outputs", "load_atoms", "load_object", "physical_sites",
           "with_drift"]


def frame_outputs(out: str | os.PathLike, index: int, name: str | None = None) -> dict[str, Path]:
    """Output files of frame ``index``: ``object`` (``.hspy``), ``atoms`` (``.csv``), ``sidecar`` (the atoms'
    ``.json``) and ``step`` (its registration on the previous frame, written by its task).

    ``name`` defaults to the frame's name in the run record of ``out`` (``deepstem series`` names frames after
    their files), else ``frame_NNNNN``.
    """
    if name is None:
        record = read_record(out)
        names = record.names if record is not None else []
        name = names[index] if index < len(names) else f"frame_{index:05d}"
    return frame_files(out, name)


def load_object(out: str | os.PathLike, index: int):
    """The object function of frame ``index`` of a run, as the calibrated Signal2D it was written as."""
    import hyperspy.api as hs  # noqa: PLC0415  (heavy)

    path = frame_outputs(out, index)["object"]
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: frame {index} has not been processed")
    return hs.load(path)


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

    def atoms(self, obj, frame: np.ndarray) -> pd.DataFrame:
        """The sites of one frame from its object (ndarray or calibrated Signal2D) and, with
        ``intensities="counts"``, its counts."""
        sampling = None if hasattr(obj, "axes_manager") else self.sampling
        if self.intensities == "counts":  # the object locates the columns, the frame's counts quantify them
            size = psf_grid(self.sampling)
            return find_atoms(obj, sampling, self.material, counts=frame, quiet=True,
                              psf=self.probe.intensity((size, size), self.sampling))
        level = weights_calibration(self.weights).get("one_atom_fraction")  # the network's one-S level
        return find_atoms(obj, sampling, self.material, one_atom_fraction=level, quiet=True)


def _calibrated(frame: np.ndarray, sampling: float, name: str, source: str):
    """The frame as a Signal2D with both axes in Å (so reconstruct's object carries the calibration)."""
    import hyperspy.api as hs  # noqa: PLC0415  (heavy; imported once per worker)

    signal = hs.signals.Signal2D(frame)
    for axis, label in zip(signal.axes_manager.signal_axes, ("x", "y")):
        axis.name, axis.scale, axis.units, axis.offset = label, float(sampling), "Å", 0.0
    signal.metadata.General.title = name
    signal.metadata.General.original_filename = source
    return signal


def _process_one(task: SeriesTask, index: int, name: str, source: str, frame: np.ndarray,
                 previous: np.ndarray | None, register: bool) -> dict:
    """One frame: register it on the previous frame (if asked), reconstruct, find atoms, write the outputs
    atomically. Runs on a worker, so registration scales with the workers instead of the client. An error
    names the frame's source."""
    try:
        return _process(task, index, name, source, frame, previous, register)
    except (ValueError, TypeError) as err:
        raise type(err)(f"{source}: {err}") from None
    except Exception as err:
        raise RuntimeError(f"{source}: {type(err).__name__}: {err}") from err


def _process(task: SeriesTask, index: int, name: str, source: str, frame: np.ndarray, previous: np.ndarray | None,
             register: bool) -> dict:
    torch.set_num_threads(1)  # one core per worker: scale with workers, not threads
    keep_freed_memory()       # reuse the large buffers of every frame (about twice as fast on a long series)
    paths = frame_files(task.out, name)
    step = None
    if register:
        step = [0.0, 0.0, math.inf] if previous is None else \
            [float(v) for v in register_drift(previous, frame, return_quality=True)]
        _write_atomically(paths["step"], json.dumps({"frame": index, "step_dy": step[0], "step_dx": step[1],
                                                     "quality": step[2]}))
    obj = reconstruct(_calibrated(frame, task.sampling, name, source), task.probe, weights=task.weights)
    if not np.all(np.isfinite(obj.data)):
        raise RuntimeError("reconstruct returned non-finite values for this frame; nothing was written for it")
    obj.metadata.set_item("DeepSTEM.series", {"frame": index, "source": source, "run": os.fspath(task.out)})
    atoms = task.atoms(obj, frame)
    atoms.insert(0, "frame", index)
    obj.change_dtype("float32")
    tmp = paths["object"].with_name(f".{paths['object'].stem}.tmp.hspy")
    obj.save(tmp, overwrite=True)
    os.replace(tmp, paths["object"])
    save_atoms(atoms, paths["atoms"], extra={"frame": index, "object": paths["object"].name})  # last: marks it done
    return {**_counts(index, atoms), "step": step}


def _write_atomically(path: Path, text: str):
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _counts(index: int, atoms: pd.DataFrame) -> dict:
    return {"frame": index, "sites": len(atoms), **atoms["species"].value_counts().to_dict()}


def _resume(out: Path, names: list[str]) -> tuple[np.ndarray, set, set]:
    """What an earlier run left: the drift steps known ``(n, 3)`` (NaN where not), the frames still to do, and
    the frames whose registration is unknown. Registrations of a finished run are in ``drift.csv``; those of an
    interrupted one in the tasks' step files."""
    n = len(names)
    drift_path = out / "drift.csv"
    old = pd.read_csv(drift_path) if drift_path.exists() else pd.DataFrame()
    known = min(len(old), n) if "quality" in old else 0
    steps = np.full((n, 3), np.nan)
    if known:
        steps[:known] = old[["step_dy", "step_dx", "quality"]].to_numpy(float)[:known]
    for i in range(known, n):
        path = frame_files(out, names[i])["step"]
        if path.exists():
            record = json.loads(path.read_text())
            steps[i] = (record["step_dy"], record["step_dx"], record["quality"])
    todo = {i for i in range(n) if not frame_files(out, names[i])["atoms"].exists()}
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
                   intensities: str = "counts", names=None, fingerprints=None,
                   overwrite: bool = False) -> pd.DataFrame:
    """Run the DeepSTEM pipeline on every frame of a series.

    Each frame is read once, by the client, checked, and sent to a task with the
    frame before it: the task registers the pair, reconstructs and finds the atoms,
    so every step of the work scales with the workers (the client only reads). The
    steps are summed into the drift at the end.

    Parameters
    ----------
    frames : sequence of (ny, nx) arrays, or a (n, ny, nx) array (lazy arrays are read one frame at a time)
        The series, in time order (e.g. :class:`deepstem_utils.io.FileFrames`).
    probe : Probe
        The probe.
    sampling : float
        Pixel size [Å].
    out : str or Path
        Output directory, per frame ``<name>_object.hspy`` (the object function,
        axes in Å, ``metadata.DeepSTEM`` with the probe, weights, package version
        and the frame's source), ``<name>_atoms.csv`` (positions [Å] in each frame's
        own coordinates) with its sidecar ``<name>_atoms.json`` (units, sampling,
        source); then ``drift.csv`` (cumulative shift of each frame [px] and [Å],
        the measured frame-to-frame steps and their quality), ``summary.csv`` and
        ``run.json`` (the run record). :func:`load_atoms` joins the sites and the
        drift into drift-corrected positions.
    weights : str or Path, optional
        Network weights (default: shipped).
    material : {"MoS2", None}
        Passed to :func:`find_atoms`.
    scheduler : str, optional
        Address of a running dask.distributed scheduler; default: a LocalCluster.
    n_workers : int
        Workers of the LocalCluster (one thread each), at least 1.
    max_in_flight : int
        Frames submitted but not yet written, at most (at least 1).
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
    names : sequence of str, optional
        One name per frame for its output files; default ``frames.names()`` when the
        sequence has it (files: their stems), else ``frame_NNNNN``.
    fingerprints : sequence of str, optional
        One identity per frame (:func:`.runrecord.fingerprint` of its values), kept in
        the run record so that a rerun into ``out`` with other frames is caught.
        Default: taken here for frames held in memory (an ndarray or a list of them);
        a lazy sequence is not read twice for it, so without ``fingerprints`` only
        its names and the settings are compared.
    overwrite : bool
        Results in ``out`` made from other inputs or settings (see
        :func:`.runrecord.reconcile`) are replaced; without it they are refused
        (``FileExistsError``). Results of unchanged frames are always kept (resume).

    Returns
    -------
    DataFrame
        One row per frame: frame index, number of sites per species, cumulative drift [Å].

    Raises
    ------
    ValueError
        A bad parameter or frame (not 2-D, another shape than the first, NaN, negative,
        constant, too small), naming the frame's source.
    FileExistsError
        ``out`` holds results of other inputs and ``overwrite`` is False.
    RuntimeError
        A frame failed on a worker (the message names its source).
    """
    if intensities not in ("counts", "object"):
        raise ValueError(f"intensities must be 'counts' or 'object', got {intensities!r}")
    for label, value in (("n_workers", n_workers), ("max_in_flight", max_in_flight)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{label} must be a whole number of at least 1, got {value!r}")
    from dask.distributed import as_completed  # noqa: PLC0415  (heavy, and only needed here)

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output {out} is a file, not a directory")
    n = len(frames)
    if n == 0:
        raise ValueError("the series holds no frames")
    sources = [frames.source(i) if hasattr(frames, "source") else f"frame {i}" for i in range(n)]
    names = frame_names(frames, names, n)
    in_memory = isinstance(frames, np.ndarray) or (isinstance(frames, (list, tuple))
                                                   and all(isinstance(f, np.ndarray) for f in frames))
    shape = None
    if in_memory:  # every frame checked (and fingerprinted) before anything is written
        taken = []
        for i in range(n):
            checked = _check_frame(frames[i], sources[i], shape)
            shape = checked.shape
            taken.append(fingerprint(checked))
        fingerprints = taken if fingerprints is None else fingerprints
    if fingerprints is not None and len(fingerprints) != n:
        raise ValueError(f"fingerprints must give one identity per frame ({n}), got {len(fingerprints)}")
    record = RunRecord(run_settings(probe, sampling, weights, material, intensities),
                       [{"name": names[i], "source": sources[i],
                         "fingerprint": None if fingerprints is None else fingerprints[i]} for i in range(n)])
    out.mkdir(parents=True, exist_ok=True)
    reconcile(out, record, overwrite)
    steps, todo, unknown = _resume(out, names)
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
        try:
            record = future.result()  # a worker's error, with the frame's source, is raised here
        except (ValueError, TypeError, RuntimeError):
            raise
        except Exception as err:  # the cluster lost the task (a worker died, ...)
            raise RuntimeError(f"{sources[submitted[future.key]]}: {type(err).__name__}: {err}") from err
        future.release()
        step = record.pop("step")
        if step is not None:
            steps[record["frame"]] = step
        counts[record["frame"]] = record
        bar.update()

    submitted = {}
    try:
        pending = as_completed()
        previous = None
        for i in range(n):
            current = None
            if needed(i):
                current = _check_frame(frames[i], sources[i], shape)
                shape = current.shape
            if i in here:  # a finished frame without its registration: done here, in time order
                steps[i] = (0.0, 0.0, np.inf) if i == 0 else register_drift(previous, current, return_quality=True)
            if i in todo:
                while pending.count() >= max_in_flight:
                    collect(next(pending))
                future = client.submit(_process_one, task, i, names[i], sources[i], current,
                                       previous if i > 0 else None, i in unknown, pure=False)
                submitted[future.key] = i
                pending.add(future)
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
    rows = [counts[i] if i in counts else _counts(i, pd.read_csv(frame_files(out, names[i])["atoms"]))
            for i in range(n)]
    summary = pd.DataFrame(rows).fillna(0).merge(drift[["frame", "dy_A", "dx_A"]], on="frame")
    summary.to_csv(out / "summary.csv", index=False)
    record.status = "complete"
    record.write(out)
    return summary


def _check_frame(frame, source: str, shape) -> np.ndarray:
    """A frame as float64, checked before it is sent anywhere: 2-D, the series' shape, finite counts."""
    array = counts_array(frame, source, min_side=MIN_SIDE)
    if shape is not None and array.shape != tuple(shape):
        raise ValueError(f"{source} is {array.shape[0]}x{array.shape[1]} px, the series' frames "
                         f"{shape[0]}x{shape[1]} px: a series needs one frame shape")
    return array


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
    record = read_record(out)
    if record is not None:
        files = [frame_files(out, name)["atoms"] for name in record.names]
        files = [f for f in files if f.exists()]
    else:  # a run of an older deepstem
        files = sorted(out.glob("frame_*_atoms.csv"))
    if not files:
        raise FileNotFoundError(f"no frame atoms (*_atoms.csv) in {out}: run process_series (or `deepstem series`) "
                                "first")
    table = pd.concat([read_atoms(f) for f in files], ignore_index=True)
    drift_path = out / "drift.csv"
    if drift_path.exists():
        table = with_drift(table, pd.read_csv(drift_path))
    run = out / RUN_RECORD
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
    and so is every other site of a frame whose ``Mo`` median is below it: its "lattice" is
    something lighter, such as the graphene support read as a honeycomb. The adatoms of such a
    frame that do scatter as Mo are kept: Mo atoms on that bare support.

    Examples
    --------
    >>> t = pd.DataFrame({"frame": [0, 0, 0, 1, 1, 1], "species": ["Mo", "S2", "Mo_adatom", "Mo", "Mo_adatom",
    ...                   "Mo_adatom"], "intensity": [30.0, 12.0, 590.0, 600.0, 580.0, 40.0]})
    >>> physical_sites(t).index.tolist()
    [2, 3, 4]
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
    adatom = atoms.species == "Mo_adatom"
    keep = (~atoms.frame.isin(light_frames) | adatom) & ~(adatom & (atoms.intensity < floor))
    return atoms[keep]
