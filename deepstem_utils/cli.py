"""The ``deepstem`` command (also ``python -m deepstem_utils``): a thin layer over the package."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import io
from .atoms.find import find_atoms
from .core.signals import sampling_of
from .core.version import __version__
from .insitu.pipeline import process_series
from .network.reconstruction import reconstruct
from .network.train import main as train_main
from .network.weights import load_model
from .physics.probe import Probe
from .zemlin.solve import measure_aberrations

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepstem",
        description="DeepSTEM: HAADF-STEM object-function reconstruction (independent reimplementation of "
        "Lee et al., ACS Omega 2021). Lengths in Å, angles in mrad, energy in eV, dose in e-/Å².",
    )
    parser.add_argument("--version", action="version", version=f"deepstem {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("reconstruct", help="reconstruct the object function of HAADF frames")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="input frames (.dm3 .dm4 .emd .hspy .tif .npy), or "
                   "directories of them")
    p.add_argument("--probe", required=True, help="probe JSON (energy [eV], semiangle [mrad], aberrations, source_size [Å])")
    p.add_argument("--sampling", type=float, help="pixel size [Å]; needed for .npy and uncalibrated files")
    p.add_argument("--weights", help="model weights file; default: the weights shipped with the package")
    p.add_argument("--out", required=True, help="output directory (DIR/<stem>_object.hspy)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = sub.add_parser("atoms", help="find atomic columns and their species in object functions",
                       description="Locate columns in object functions (from `deepstem reconstruct`) and label them. "
                       "Writes DIR/<stem>_atoms.csv with x, y [Å], species, confidence (0-1), intensity.")
    p.add_argument("objects", nargs="+", metavar="OBJECT", help="object functions (.hspy from reconstruct, or any "
                   "image format; .npy needs --sampling)")
    p.add_argument("--material", default="MoS2", choices=["MoS2", "none"],
                   help="lattice model: MoS2 (Mo, S2, S1, vacancy, Mo_adatom) or none (every bright column)")
    p.add_argument("--sampling", type=float, help="pixel size [Å]; needed for .npy and uncalibrated files")
    p.add_argument("--out", required=True, help="output directory (DIR/<stem>_atoms.csv)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
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
    sub.add_parser("train", help="train the encoder (self-supervised, simulated frames); "
                   "see `deepstem train --help`", add_help=False)
    p = sub.add_parser("series", help="process an in situ time series (drift registration, reconstruct, atoms) "
                       "on dask.distributed", description="Register drift between consecutive frames, reconstruct "
                       "every frame and find its atoms, as dask.distributed tasks. Writes DIR/frame_NNNNN_object.npy, "
                       "DIR/frame_NNNNN_atoms.csv, DIR/drift.csv and DIR/summary.csv. An interrupted run resumes: "
                       "finished frames are not redone.")
    p.add_argument("frames", nargs="+", metavar="FRAMES", help="frame files in time order (each may be a stack), or "
                   "a directory of them (sorted by name)")
    p.add_argument("--probe", required=True, help="probe JSON (energy [eV], semiangle [mrad], aberrations, source_size [Å])")
    p.add_argument("--sampling", type=float, help="pixel size [Å]; needed for .npy and uncalibrated files")
    p.add_argument("--weights", help="model weights file; default: the weights shipped with the package")
    p.add_argument("--material", default="MoS2", choices=["MoS2", "none"], help="lattice model for the atoms")
    p.add_argument("--intensities", default="counts", choices=["counts", "object"],
                   help="how column intensities (and so S-site species) are measured: 'counts' fits the linear "
                        "image model to each frame at the columns its object locates (default); 'object' "
                        "integrates the reconstructed object")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--scheduler", help="address of an existing dask.distributed scheduler (default: a LocalCluster)")
    p.add_argument("--workers", type=int, default=2, help="workers of the LocalCluster (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:
        return train_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return _COMMANDS[args.command](args)
    except (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, ValueError, TypeError,
            OSError) as err:
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
    out = _check_output(Path(args.out), args.overwrite)
    unc_path = _check_output(out.with_name(out.stem + "_uncertainties.json"), args.overwrite)
    signal = io.load(args.tableau, sampling=args.sampling)
    sampling = sampling_of(signal)
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


def _expand_inputs(paths) -> list[Path]:
    """Input files: a directory stands for the image files in it (sorted; other files are skipped, with a note)."""
    files = []
    for name in paths:
        path = Path(name)
        if not path.is_dir():
            files.append(path)
            continue
        found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in io.SUPPORTED)
        skipped = sorted(p.name for p in path.iterdir() if p.is_file() and p.suffix.lower() not in io.SUPPORTED)
        if not found:
            raise FileNotFoundError(f"directory {path} holds no image file ({' '.join(io.SUPPORTED)})")
        if skipped:
            print(f"note: skipped {len(skipped)} file(s) in {path} that are not images: {', '.join(skipped[:5])}"
                  + (" ..." if len(skipped) > 5 else ""), file=sys.stderr)
        files.extend(found)
    return files


def _check_out_dir(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"--out {path} is a file, not a directory")
    path.mkdir(parents=True, exist_ok=True)
    if not os.access(path, os.W_OK):
        raise PermissionError(f"output directory {path} is not writable")
    return path


def _reconstruct(args) -> int:
    probe = Probe.from_json(args.probe)
    if args.weights is not None:
        load_model(args.weights)  # a bad weights file fails before any work
    out_dir = _check_out_dir(Path(args.out))
    targets = [(image, out_dir / f"{image.stem}_object.hspy") for image in _expand_inputs(args.images)]
    for _, target in targets:  # refuse before doing anything
        _check_output(target, args.overwrite)
    if len({t for _, t in targets}) != len(targets):
        raise ValueError("two inputs share a file stem, so their outputs would collide; rename one")
    for image, target in tqdm(targets, desc="reconstruct", unit="frame", disable=args.quiet or len(targets) < 2):
        signal = io.load(image, sampling=args.sampling)
        if signal.axes_manager.navigation_dimension:
            raise ValueError(f"{image.name} is a stack of {signal.axes_manager.navigation_size} frames; "
                             "use `deepstem series` or split it")
        obj = reconstruct(signal, probe, weights=args.weights)
        obj.save(target, overwrite=True)
        print(f"wrote {target}")
    return 0


def _atoms(args) -> int:
    out_dir = _check_out_dir(Path(args.out))
    targets = []
    for obj in _expand_inputs(args.objects):
        stem = obj.stem
        stem = stem[: -len("_object")] if stem.endswith("_object") else stem
        targets.append((Path(obj), out_dir / f"{stem}_atoms.csv"))
    for _, target in targets:
        _check_output(target, args.overwrite)
    if len({t for _, t in targets}) != len(targets):
        raise ValueError("two inputs share a file stem, so their outputs would collide; rename one")
    material = None if args.material == "none" else args.material
    for obj, target in tqdm(targets, desc="atoms", unit="frame", disable=args.quiet or len(targets) < 2):
        signal = io.load(obj, sampling=args.sampling)
        if signal.axes_manager.navigation_dimension:
            raise ValueError(f"{obj.name} is a stack; give one object function per file")
        table = find_atoms(signal, material=material)
        table.to_csv(target, index=False, float_format="%.4f")
        counts = ", ".join(f"{n} {sp}" for sp, n in table["species"].value_counts().items())
        print(f"wrote {target} ({counts or 'no columns'})")
    return 0


def _series(args) -> int:
    probe = Probe.from_json(args.probe)
    if args.weights is not None:
        load_model(args.weights)
    out = _check_out_dir(Path(args.out))
    frames = io.FileFrames(_expand_inputs(args.frames), sampling=args.sampling)
    summary = process_series(frames, probe, frames.sampling, out, weights=args.weights,
                             material=None if args.material == "none" else args.material, scheduler=args.scheduler,
                             n_workers=args.workers, progress=not args.quiet, intensities=args.intensities)
    print(f"{len(summary)} frames processed; results in {out} (summary.csv, drift.csv, frame_*_atoms.csv)")
    return 0


_COMMANDS = {"zemlin": _zemlin, "reconstruct": _reconstruct, "atoms": _atoms, "series": _series}
