"""Weights files of the encoder: where the shipped ones live, how files are written, checked and read.

A weights file holds a format tag, the training configuration and the state
dict; a ``.json`` beside it records the configuration, the SHA-256 of the file
and, for the shipped networks, their calibration (:func:`weights_calibration`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from .model import UNet

__all__ = ["WEIGHTS", "SUPERVISED_WEIGHTS", "WEIGHTS_FORMAT", "sha256", "save_model", "load_model",
           "weights_calibration"]

#: Where the shipped weights live (made by ``deepstem train``; see ``weights/deepstem.json``).
WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "deepstem.pt"
#: The supervised baseline (same network and frames, trained against the ground truth; chapter 6).
SUPERVISED_WEIGHTS = WEIGHTS.with_name("supervised_unet.pt")
#: Tag stored in every weights file, checked on load.
WEIGHTS_FORMAT = "deepstem-weights-v1"


def sha256(path: Path) -> str:
    """SHA-256 of a file (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_model(net: UNet, path: str | os.PathLike, config: dict, overwrite: bool = False) -> dict:
    """Write weights (and a ``.json`` beside them with the config and SHA-256).

    Returns the record written to the ``.json``.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (or --overwrite) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"format": WEIGHTS_FORMAT, "config": dict(config), "state_dict": net.state_dict()}, tmp)
    os.replace(tmp, path)
    record = {"file": path.name, "sha256": sha256(path), "bytes": path.stat().st_size, "config": dict(config)}
    path.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def load_model(path: str | os.PathLike | None = None) -> tuple[UNet, dict]:
    """Load weights written by :func:`save_model` (``None``: the shipped weights).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file is corrupt or not a DeepSTEM weights file.
    """
    path = WEIGHTS if path is None else Path(path)
    if not path.is_file():
        hint = " (the shipped weights are missing: run `deepstem train --config deepstem_utils/weights/" \
               "train_config.json --out deepstem_utils/weights`)" if path == WEIGHTS else ""
        raise FileNotFoundError(f"weights file not found: {path}{hint}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt zips / pickles
        raise ValueError(f"{path} is not a readable weights file ({type(exc).__name__}); "
                         "pass a file written by `deepstem train`, or weights=None for the shipped ones") from None
    if not isinstance(data, dict) or data.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{path} is not a DeepSTEM weights file (format tag {WEIGHTS_FORMAT!r} missing); "
                         "pass a file written by `deepstem train`, or weights=None for the shipped ones")
    config = data.get("config", {})
    net = UNet(base=int(config.get("base", 16)), depth=int(config.get("depth", 3)), stem=int(config.get("stem", 1)))
    try:
        net.load_state_dict(data["state_dict"])
    except (RuntimeError, KeyError) as exc:
        raise ValueError(f"{path}: the weights do not fit the network they describe ({exc})") from None
    net.eval()
    return net, config


def weights_calibration(path: str | os.PathLike | None = None) -> dict:
    """The calibration stored beside a weights file (its ``.json``, key ``"calibration"``), or ``{}``.

    ``one_atom_fraction``: where the object of a column holding one S atom lies
    between an empty S site (0) and an S₂ column (1), measured on simulated frames
    by ``tools/calibrate_weights.py``; 1/2 for an image linear in the atoms.
    :func:`find_atoms` starts its mixture model there.
    """
    path = WEIGHTS if path is None else Path(path)
    record = path.with_suffix(".json")
    try:
        return dict(json.loads(record.read_text()).get("calibration", {}))
    except (OSError, ValueError, AttributeError):
        return {}
