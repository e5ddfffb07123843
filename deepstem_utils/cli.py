"""The ``deepstem`` command (also ``python -m deepstem_utils``): a thin layer over the package."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from . import __version__

__all__ = ["main", "build_parser"]

_PENDING = {
    "reconstruct": "the physics-informed autoencoder issue",
    "atoms": "the atom identification issue",
    "series": "the in situ case study issue",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepstem",
        description="DeepSTEM: HAADF-STEM object-function reconstruction (independent reimplementation of "
        "Lee et al., ACS Omega 2021). Lengths in Å, angles in mrad, energy in eV, dose in e-/Å².",
    )
    parser.add_argument("--version", action="version", version=f"deepstem {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("reconstruct", help="reconstruct the object function of HAADF frames")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="input frames (.dm3 .dm4 .emd .hspy .tif .npy)")
    p.add_argument("--probe", required=True, help="probe JSON (energy [eV], semiangle [mrad], aberrations, source_size [Å])")
    p.add_argument("--sampling", type=float, help="pixel size [Å]; needed for .npy and uncalibrated files")
    p.add_argument("--weights", help="model weights file; default: the weights shipped with the package")
    p.add_argument("--out", required=True, help="output directory (DIR/<stem>_object.hspy)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p = sub.add_parser("atoms", help="find atomic columns and their species in object functions")
    p.add_argument("objects", nargs="+", metavar="OBJECT")
    p.add_argument("--material", default="MoS2", choices=["MoS2", "none"], help="lattice model (default MoS2)")
    p.add_argument("--sampling", type=float, help="pixel size [Å]")
    p.add_argument("--out", required=True, help="output directory (DIR/<stem>_atoms.csv)")
    p.add_argument("--overwrite", action="store_true")
    p = sub.add_parser(
        "zemlin",
        help="measure aberrations from a Zemlin tableau and write the probe",
        description="Fit the Thon rings of every tableau image, solve for C10, C12, C21, C23, C30, C32, C34 "
        "(abTEM polar names, Å and rad) and write the probe JSON. Uncertainties go to <out>_uncertainties.json.",
    )
    p.add_argument("tableau", help="stack of tableau images, one per tilt (.dm3 .dm4 .emd .hspy .tif .npy)")
    p.add_argument("--tilts", required=True, help="CSV of beam tilts: two columns tx, ty [mrad], one row per image")
    p.add_argument("--energy", type=float, required=True, help="beam energy [eV]")
    p.add_argument("--out", required=True, help="probe JSON to write")
    p.add_argument("--sampling", type=float, help="pixel size [Å]; needed for .npy and uncalibrated files")
    p.add_argument("--semiangle", type=float, default=30.0,
                   help="STEM convergence semiangle of the probe [mrad] (the tableau cannot measure it; default 30)")
    p.add_argument("--source-size", type=float, default=0.0, help="effective source size, FWHM [Å] (default 0)")
    p.add_argument("--order", type=int, default=3, choices=[1, 2, 3], help="highest aberration order solved (3)")
    p.add_argument("--defocus-offset", type=float, default=0.0,
                   help="defocus deliberately added for the tableau, as a C10 [Å]; subtracted from the result")
    p.add_argument("--defocus-sign", default="-1", choices=["-1", "1", "amplitude"],
                   help="sign of C10 while recording (-1: underfocus, the usual practice) or 'amplitude'")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p = sub.add_parser("series", help="process an in situ time series")
    p.add_argument("frames", nargs="+", metavar="FRAMES")
    p.add_argument("--probe", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--scheduler", help="address of an existing dask.distributed scheduler")
    p.add_argument("--overwrite", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command in _PENDING:
        print(f"deepstem {args.command}: not yet available (lands with {_PENDING[args.command]})", file=sys.stderr)
        return 3
    try:
        return _COMMANDS[args.command](args)
    except (FileNotFoundError, FileExistsError, IsADirectoryError, ValueError, TypeError, OSError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"deepstem {args.command}: error: {message}", file=sys.stderr)
        return 2


def _check_output(path: Path, overwrite: bool) -> Path:
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise PermissionError(f"output folder {parent} is not writable")
    return path


def read_tilts(path: str | Path) -> np.ndarray:
    """Read a tilts CSV: two numeric columns tx, ty [mrad], optional header line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tilts file {path} not found")
    rows = []
    for i, line in enumerate(path.read_text().splitlines()):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p for p in line.replace(";", ",").replace("\t", ",").split(",") if p.strip()]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            if not rows and i == 0:
                continue  # header
            raise ValueError(f"{path.name} line {i + 1}: expected two numbers tx, ty [mrad], got {line!r}") from None
        if len(values) != 2:
            raise ValueError(f"{path.name} line {i + 1}: expected two numbers tx, ty [mrad], got {line!r}")
        rows.append(values)
    if not rows:
        raise ValueError(f"{path.name} holds no tilts")
    return np.array(rows)


def _zemlin(args) -> int:
    from . import io
    from .optics import Probe
    from .zemlin import measure_aberrations

    out = _check_output(Path(args.out), args.overwrite)
    unc_path = _check_output(out.with_name(out.stem + "_uncertainties.json"), args.overwrite)
    signal = io.load(args.tableau, sampling=args.sampling)
    sampling = io.sampling_of(signal)
    data = np.asarray(signal.data, dtype=float)
    tilts = read_tilts(args.tilts)
    sign = "amplitude" if args.defocus_sign == "amplitude" else int(args.defocus_sign)
    aberrations, uncertainties = measure_aberrations(
        data, tilts, energy=args.energy, sampling=sampling, order=args.order,
        defocus_offset=args.defocus_offset, defocus_sign=sign,
    )  # fmt: skip
    probe = Probe(args.energy, args.semiangle, aberrations, args.source_size)
    probe.to_json(out, overwrite=args.overwrite)
    unc_path.write_text(json.dumps(uncertainties, indent=2) + "\n")
    for key, value in aberrations.items():
        unit = "rad" if key.startswith("phi") else "Å"
        print(f"{key:>6} = {value:12.3f} ± {uncertainties[key]:.3f} {unit}")
    print(f"wrote {out} and {unc_path}")
    return 0


_COMMANDS = {"zemlin": _zemlin}
