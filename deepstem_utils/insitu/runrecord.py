"""The record of a series run (``run.json``): which inputs an output folder's results were made from.

A series run writes its record before any result, so an interrupted run has one
too. A new run into the same folder compares itself with it: frames whose input
(and every setting: probe, pixel size, weights, material, intensities, package
version) is unchanged keep their results and the run resumes; results made from
other inputs are never reused quietly. They are refused, or, when the caller
allows overwriting, removed and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.version import __version__
from ..network.weights import WEIGHTS, sha256
from ..physics.probe import Probe

__all__ = ["RUN_RECORD", "FORMAT", "fingerprint", "frame_files", "frame_names", "run_settings", "RunRecord",
           "reconcile", "read_record"]

#: The record's file name in the output folder.
RUN_RECORD = "run.json"
#: Version of the record's layout (records without it come from an older deepstem and cannot be checked).
FORMAT = 2
#: Output files of a run before records were kept (``frame_NNNNN_*``), recognised so they are not reused.
LEGACY_PATTERNS = ("frame_[0-9]*_object.npy", "frame_[0-9]*_atoms.csv", "frame_[0-9]*_step.json")


def fingerprint(frame) -> str:
    """Identity of a frame's values: SHA-256 of its float64 values and shape (the same numbers in any file
    format or dtype give the same fingerprint).

    Examples
    --------
    >>> fingerprint(np.ones((2, 3))) == fingerprint(np.ones((2, 3), np.float32))
    True
    """
    array = np.ascontiguousarray(frame, dtype=np.float64)
    digest = hashlib.sha256(repr(array.shape).encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def frame_files(out: str | os.PathLike, name: str) -> dict[str, Path]:
    """Output files of the frame called ``name``: ``object`` (.hspy), ``atoms`` (.csv), its ``sidecar`` (.json)
    and ``step`` (its registration on the previous frame, an intermediate)."""
    out = Path(out)
    return {"object": out / f"{name}_object.hspy", "atoms": out / f"{name}_atoms.csv",
            "sidecar": out / f"{name}_atoms.json", "step": out / f"{name}_step.json"}


@dataclass
class RunRecord:
    """What a run was made from.

    Attributes
    ----------
    settings : dict
        Everything every frame is processed with (probe, sampling [Å], material, intensities, weights and their
        SHA-256, package version).
    frames : list of dict
        Per frame: ``name`` (of its output files), ``source`` (file, frame of a stack) and ``fingerprint``
        (:func:`fingerprint` of its values, or None when it was not taken).
    status : str
        ``"running"`` until the run finished, then ``"complete"``.
    """

    settings: dict
    frames: list = field(default_factory=list)
    status: str = "running"

    @property
    def names(self) -> list[str]:
        return [f["name"] for f in self.frames]

    def write(self, out: str | os.PathLike):
        """Write the record to ``out/run.json`` (atomically)."""
        path = Path(out) / RUN_RECORD
        tmp = path.with_name(f".{path.name}.tmp")
        record = {"format": FORMAT, "status": self.status, **self.settings, "frames": self.frames}
        tmp.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)


def read_record(out: str | os.PathLike) -> RunRecord | None:
    """The record in ``out``, or None when there is none or it comes from an older deepstem (no ``format``)."""
    path = Path(out) / RUN_RECORD
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return None
    frames = record.pop("frames")
    record.pop("format")
    status = record.pop("status", "running")
    return RunRecord(record, frames, status)


def frame_names(frames, names, n: int) -> list[str]:
    """Output names of ``n`` frames: ``names`` if given, else ``frames.names()`` when the sequence has it, else
    ``frame_NNNNN``; checked to be distinct file-name stems."""
    if names is None:
        names = frames.names() if hasattr(frames, "names") else [f"frame_{i:05d}" for i in range(n)]
    names = [str(name) for name in names]
    if len(names) != n:
        raise ValueError(f"names must give one name per frame ({n}), got {len(names)}")
    if len(set(names)) != n:
        raise ValueError("names must be distinct: two frames would write the same files")
    bad = [name for name in names if not name or name != Path(name).name or name.startswith(".")]
    if bad:
        raise ValueError(f"names must be plain file-name stems, got {bad[0]!r}")
    return names


def run_settings(probe: Probe, sampling: float, weights, material, intensities: str) -> dict:
    """What every frame of a run is processed with, as the record keeps and compares it: the probe, pixel size
    [Å], material, intensities, the weights' SHA-256 (wherever the file lies) and the package version."""
    if not isinstance(probe, Probe):
        raise TypeError(f"probe must be a deepstem_utils.Probe, got {type(probe).__name__}")
    path = WEIGHTS if weights is None else Path(weights)
    if not Path(path).is_file():
        raise FileNotFoundError(f"weights file {path} not found")
    # a JSON round trip, so that a record read back compares equal
    return json.loads(json.dumps({"deepstem_utils": __version__, "probe": probe.to_dict(), "sampling": float(sampling),
                                  "material": material, "intensities": intensities,
                                  "weights_sha256": sha256(path)}))


def _results(out: Path, name: str) -> list[Path]:
    """The results of frame ``name`` that exist (object, atoms and its sidecar; not the step, an intermediate)."""
    files = frame_files(out, name)
    return [files[k] for k in ("object", "atoms", "sidecar") if files[k].exists()]


def _legacy_results(out: Path) -> list[Path]:
    return sorted({p for pattern in LEGACY_PATTERNS for p in out.glob(pattern)})


def reconcile(out: str | os.PathLike, new: RunRecord, overwrite: bool = False) -> None:
    """Compare ``new`` with the record in ``out``; remove what no longer holds; write ``new`` (status running).

    The results in ``out`` named after an earlier run's frame ``j`` still hold when the new run's frame ``j`` has
    the same name, the same fingerprint (when both runs took one) and the settings are the same. Every other
    result of the earlier run is stale: refused unless ``overwrite``, deleted with it (only files this package
    writes, by name). A registration step holds when its frame and the one before it hold; stale steps,
    ``drift.csv`` and ``summary.csv`` (intermediates) are removed. A folder with results but no record this
    version can check is wholly stale.

    Raises
    ------
    FileExistsError
        Stale results and ``overwrite`` is False: the message says which and how to proceed.
    """
    out = Path(out)
    old = read_record(out)
    new_names = new.names
    if old is None:
        results = _legacy_results(out) + sorted(p for name in new_names for p in _results(out, name))
        if results and not overwrite:
            raise FileExistsError(f"{out} holds results ({results[0].name}, ...) without a run record this version "
                                  "can check, so they may come from other inputs; choose another --out, or pass "
                                  "--overwrite to recompute every frame")
        for path in results + [frame_files(out, name)["step"] for name in new_names]:
            path.unlink(missing_ok=True)
        for path in (out / "drift.csv", out / "summary.csv"):
            path.unlink(missing_ok=True)
        new.write(out)
        return
    same_settings = old.settings == new.settings
    valid, reasons = [], []
    if not same_settings:
        keys = sorted(k for k in set(old.settings) | set(new.settings) if old.settings.get(k) != new.settings.get(k))
        reasons.append(f"the settings differ ({', '.join(keys)})")
    for j, before in enumerate(old.frames):
        holds = same_settings and j < len(new.frames) and before["name"] == new_names[j]
        if holds and before.get("fingerprint") is not None and new.frames[j].get("fingerprint") is not None:
            holds = before["fingerprint"] == new.frames[j]["fingerprint"]
        valid.append(holds)
        if not holds and same_settings and len(reasons) < 3:
            now = f"is {new.frames[j]['source']}" if j < len(new.frames) else "is not in this run"
            reasons.append(f"frame {j} was {before.get('source', before['name'])}, now {now}")
    stale = [p for j, before in enumerate(old.frames) if not valid[j] for p in _results(out, before["name"])]
    if stale and not overwrite:
        raise FileExistsError(f"{out} holds results of a run with other inputs ({'; '.join(reasons)}); choose "
                              "another --out, or pass --overwrite to recompute them (unchanged frames are kept)")
    for path in stale:
        path.unlink(missing_ok=True)
    holds = valid + [False] * max(0, len(new.frames) - len(valid))
    for j, name in enumerate(new_names):  # a step relates frame j to frame j - 1
        if not holds[j] or (j > 0 and not holds[j - 1]):
            frame_files(out, name)["step"].unlink(missing_ok=True)
    for j, before in enumerate(old.frames):
        if not valid[j]:
            frame_files(out, before["name"])["step"].unlink(missing_ok=True)
    if not all(valid[:len(new.frames)]) or len(old.frames) > len(new.frames):
        for path in (out / "drift.csv", out / "summary.csv"):
            path.unlink(missing_ok=True)
    new.write(out)
