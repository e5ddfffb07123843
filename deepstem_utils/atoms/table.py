"""Atom tables on disk: a CSV that any tool reads, and a JSON sidecar that says what its numbers mean.

``<stem>_atoms.csv`` holds one row per site (``x``, ``y`` [Å], ``species``,
``confidence``, ``intensity``, ...); ``<stem>_atoms.json`` beside it holds the
table's ``attrs`` from :func:`find_atoms`: the units of every column, the pixel
size and origin the positions refer to, the source image and the S-site mixture.
:func:`read_atoms` joins the two again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.version import __version__

__all__ = ["sidecar_path", "save_atoms", "read_atoms"]


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar of an atoms CSV: the same name with ``.json``."""
    return Path(path).with_suffix(".json")


def _plain(value):
    """``value`` as JSON can hold it (NumPy scalars and arrays to Python numbers and lists)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def save_atoms(table: pd.DataFrame, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write ``table`` as CSV and its ``attrs`` (plus ``extra``) as the JSON sidecar, each atomically.

    The sidecar is written first and the CSV last, so an existing CSV always has its sidecar (a series run
    takes the CSV as the mark that a frame is done).

    Parameters
    ----------
    table : DataFrame
        Sites from :func:`find_atoms` (positions [Å]).
    path : str or Path
        The CSV to write (its sidecar: :func:`sidecar_path`).
    extra : dict, optional
        More provenance for the sidecar (e.g. the frame index of a series).

    Returns
    -------
    Path
        The CSV written.
    """
    path = Path(path)
    attrs = dict(table.attrs)
    units = attrs.pop("units", {"x": "Å", "y": "Å"})
    record = {"table": path.name, "columns": {name: units.get(name, "") for name in table.columns},
              "deepstem_utils": __version__, **attrs, **(extra or {})}
    _write_atomically(sidecar_path(path), json.dumps(_plain(record), indent=1, ensure_ascii=False) + "\n")
    _write_atomically(path, table.to_csv(index=False, float_format="%.4f"))
    return path


def read_atoms(path: str | os.PathLike) -> pd.DataFrame:
    """An atoms CSV with its sidecar's record as ``attrs`` (``units`` per column and the rest as written)."""
    path = Path(path)
    table = pd.read_csv(path)
    side = sidecar_path(path)
    if side.exists():
        record = json.loads(side.read_text())
        record["units"] = record.pop("columns", {})
        table.attrs = record
    return table


def _write_atomically(path: Path, text: str):
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
