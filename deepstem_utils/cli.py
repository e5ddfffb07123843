"""The ``deepstem`` command (also ``python -m deepstem_utils``): a thin layer over the package."""

from __future__ import annotations

import argparse
import sys

from . import __version__

__all__ = ["main", "build_parser"]

_PENDING = {
    "reconstruct": "the physics-informed autoencoder issue",
    "atoms": "the atom identification issue",
    "zemlin": "the Zemlin tableau issue",
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
    p = sub.add_parser("zemlin", help="measure aberrations from a Zemlin tableau and write the probe")
    p.add_argument("tableau")
    p.add_argument("--tilts", required=True, help="CSV of beam tilts (tx, ty) [mrad], one row per image")
    p.add_argument("--energy", type=float, required=True, help="beam energy [eV]")
    p.add_argument("--out", required=True, help="probe JSON to write")
    p.add_argument("--overwrite", action="store_true")
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
    return 0
