"""The ``deepstem`` command (also ``python -m deepstem_utils``): a thin layer over the package.

Conventions of every subcommand: exit status 0 on success, 2 for a usage error or bad input (one line on stderr
naming the problem), 1 for a failure at run time. Every input is read and checked before any output is written;
a batch writes its outputs only when every item succeeded (so a failed run leaves no half batch and no new empty
``--out``), and an existing output is replaced only with ``--overwrite``. ``--quiet``: no progress bar and no
report on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import cli_train, io
from .atoms.find import find_atoms
from .atoms.table import save_atoms, sidecar_path
from .core.signals import counts_array, real_array, sampling_of
from .core.version import __version__
from .insitu.pipeline import process_series
from .insitu.runrecord import fingerprint
from .network.reconstruction import MIN_SIDE, reconstruct
from .network.weights import load_model
from .physics.probe import Probe, psf_grid
from .zemlin.solve import measure_aberrations

__all__ = ["main", "build_parser", "read_tilts", "BAD_INPUT"]

#: Errors that mean bad input or usage (exit status 2); any other error is a failure at run time (1).
BAD_INPUT = cli_train.BAD_INPUT


class _UsageError(Exception):
    """A command line argparse cannot parse (reported by :func:`main` as one line, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line on stderr and exit status 2 (returned by :func:`main`)."""

    def error(self, message):
        raise _UsageError(f"{self.prog}: error: {message}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="deepstem",
        description="DeepSTEM: HAADF-STEM object-function reconstruction (independent reimplementation of "
        "Lee et al., ACS Omega 2021). Lengths in Å, angles in mrad, energy in eV, dose in e-/Å². "
        "Exit status: 0 success, 2 bad input or usage, 1 failure at run time.",
    )
    parser.add_argument("--version", action="version", version=f"deepstem {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    quiet = {"action": "store_true", "help": "no progress bar and no report on stdout (errors still on stderr)"}
    p = sub.add_parser("reconstruct", help="reconstruct the object function of HAADF frames",
                       description="Reconstruct every frame; writes DIR/<stem>_object.hspy (axes in Å, "
                       "metadata.DeepSTEM with the probe, weights and package version). Every input is checked "
                       "before any is reconstructed, and the outputs are written only when all succeeded.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="input frames (.dm3 .dm4 .emd .hspy .tif .npy), or "
                   "directories of them")
    p.add_argument("--probe", required=True, help="probe JSON (energy [eV], semiangle [mrad], aberrations, source_size [Å])")
    p.add_argument("--sampling", type=float, help="pixel size [Å]; needed for .npy and uncalibrated files")
    p.add_argument("--weights", help="model weights file; default: the weights shipped with the package")
    p.add_argument("--out", required=True, help="output directory (DIR/<stem>_object.hspy)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", **quiet)
    p = sub.add_parser("atoms", help="find atomic columns and their species in object functions",
                       description="Locate columns in object functions (from `deepstem reconstruct`) and label them. "
                       "Writes DIR/<stem>_atoms.csv with x, y [Å, in the object's own coordinates], species, "
                       "confidence (0-1), intensity, and DIR/<stem>_atoms.json with the units, pixel size, origin "
                       "and source. With --frame and --probe (recommended) the object locates the columns and "
                       "their intensities are fitted to the frame's counts.")
    p.add_argument("objects", nargs="+", metavar="OBJECT", help="object functions (.hspy from reconstruct, or any "
                   "image format; .npy needs --sampling), or directories of them")
    p.add_argument("--material", default="MoS2", choices=["MoS2", "none"],
                   help="lattice model: MoS2 (Mo, S2, S1, vacancy, Mo_adatom) or none (every bright column)")
    p.add_argument("--sampling", type=float, help="pixel size [Å]; needed for .npy and uncalibrated files")
    p.add_argument("--frame", nargs="+", metavar="FRAME", help="the frame (detector counts) each object was "
                   "reconstructed from, one per OBJECT in the same order (or a directory); needs --probe")
    p.add_argument("--probe", help="probe JSON of the frames (with --frame)")
    p.add_argument("--out", required=True, help="output directory (DIR/<stem>_atoms.csv and .json)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", **quiet)
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
    p.add_argument("--quiet", **quiet)
    sub.add_parser("train", help="train the encoder, self-supervised: on your own frames (--frames FILE... "
                   "--probe probe.json --out DIR) or on simulated frames (--config); see `deepstem train --help`",
                   add_help=False)
    p = sub.add_parser("series", help="process an in situ time series (drift registration, reconstruct, atoms) "
                       "on dask.distributed", description="Register drift between consecutive frames, reconstruct "
                       "every frame and find its atoms (intensities fitted to the counts by default), as "
                       "dask.distributed tasks. Writes per frame DIR/<stem>_object.hspy (axes in Å, provenance in "
                       "metadata.DeepSTEM) and DIR/<stem>_atoms.csv with its DIR/<stem>_atoms.json (units, pixel "
                       "size, source), then DIR/drift.csv, DIR/summary.csv and DIR/run.json (the run record). Every "
                       "frame is read and checked first. An interrupted run resumes: finished frames are not redone "
                       "when their inputs and settings are those of the run record; results made from other inputs "
                       "are refused (or recomputed with --overwrite).")
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
    p.add_argument("--out", required=True, help="output directory (not the folder the frames are read from)")
    p.add_argument("--overwrite", action="store_true", help="recompute results in --out that were made from other "
                   "frames or settings (unchanged frames are kept)")
    p.add_argument("--scheduler", help="address of an existing dask.distributed scheduler (default: a LocalCluster)")
    p.add_argument("--workers", type=_positive_int, default=2, help="workers of the LocalCluster (default 2)")
    p.add_argument("--quiet", **quiet)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:
        return cli_train.main(argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as err:
        print(err, file=sys.stderr)
        return 2
    if args.command is None:
        parser.print_help()
        return 2
    return cli_train.run_command(args.command, _COMMANDS[args.command], args)


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
    if not np.all(np.isfinite(list(aberrations.values()) + list(uncertainties.values()))):
        raise ValueError("the tableau gave non-finite aberrations or uncertainties; nothing was written")
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
        skipped = sorted(p.name for p in path.iterdir() if p.is_file() and p.suffix.lower() not in io.SUPPORTED
                         and not p.name.endswith("_atoms.json"))
        if not found:
            raise FileNotFoundError(f"directory {path} holds no image file ({' '.join(io.SUPPORTED)})")
        if skipped:
            print(f"note: skipped {len(skipped)} file(s) in {path} that are not images: {', '.join(skipped[:5])}"
                  + (" ..." if len(skipped) > 5 else ""), file=sys.stderr)
        files.extend(found)
    return files


def _not_reading_outputs(given, files: list[Path], out_dir: Path, suffix: str):
    """Refuse an ``--out`` that the inputs are read from, where a rerun would take its own outputs as inputs."""
    out = out_dir.resolve()
    for name in given:
        if Path(name).is_dir() and Path(name).resolve() == out:
            raise ValueError(f"--out {out_dir} is the folder the inputs are read from: a rerun would read its own "
                             "outputs as inputs; choose another --out")
    for path in files:
        if path.name.endswith(suffix) and path.parent.resolve() == out:
            raise ValueError(f"{path} is an output of this command in --out {out_dir}; choose another --out or "
                             "leave it out of the inputs")


def _out_dir(path: Path) -> Path:
    """``--out`` checked (not a file, its parent writable); it is created only when there is something to write."""
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"--out {path} is a file, not a directory")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not os.access(existing, os.W_OK):
        raise PermissionError(f"output directory {path} is not writable")
    return path


def _stems(files: list[Path], strip: str = "") -> list[str]:
    """The inputs' file stems (without the ending ``strip``), which must be distinct: they name the outputs."""
    stems = [path.stem.removesuffix(strip) if strip else path.stem for path in files]
    if len(set(stems)) != len(stems):
        raise ValueError("two inputs share a file stem, so their outputs would collide; rename one")
    return stems


class _Batch:
    """The outputs of a batch: staged in a hidden folder inside ``--out`` and moved into place only when every
    item succeeded. On failure the staged files are removed, and so is ``--out`` if this run created it empty."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.created = not out_dir.exists()
        self.stage = out_dir / f".deepstem-partial-{os.getpid()}"

    def __enter__(self):
        self.stage.mkdir(parents=True, exist_ok=False)
        return self

    def path(self, name: str) -> Path:
        return self.stage / name

    def __exit__(self, kind, value, traceback):
        if kind is None:
            for staged in sorted(self.stage.iterdir()):
                os.replace(staged, self.out_dir / staged.name)
        shutil.rmtree(self.stage, ignore_errors=True)
        if kind is not None and self.created and self.out_dir.is_dir() and not any(self.out_dir.iterdir()):
            self.out_dir.rmdir()
        return False


def _single(signal, path: Path):
    if signal.axes_manager.navigation_dimension:
        raise ValueError(f"{path.name} is a stack of {signal.axes_manager.navigation_size} frames; give one image per "
                         "file (for a time series use `deepstem series`)")
    return signal


def _reconstruct(args) -> int:
    probe = Probe.from_json(args.probe)
    if args.weights is not None:
        load_model(args.weights)  # a bad weights file fails before any work
    out_dir = _out_dir(Path(args.out))
    images = _expand_inputs(args.images)
    _not_reading_outputs(args.images, images, out_dir, "_object.hspy")
    names = [f"{stem}_object.hspy" for stem in _stems(images)]
    for name in names if out_dir.exists() else ():  # refuse before doing anything
        _check_output(out_dir / name, args.overwrite)
    for image in tqdm(images, desc="checking", unit="file", disable=args.quiet or len(images) < 2, leave=False):
        signal = _single(io.load(image, sampling=args.sampling), image)
        counts_array(signal.data, image.name, min_side=MIN_SIDE)
    with _Batch(out_dir) as batch:
        for image, name in tqdm(list(zip(images, names)), desc="reconstruct", unit="frame",
                                disable=args.quiet or len(images) < 2):
            obj = reconstruct(io.load(image, sampling=args.sampling), probe, weights=args.weights)
            if not np.all(np.isfinite(obj.data)):
                raise RuntimeError(f"{image.name}: reconstruct returned non-finite values; nothing was written")
            obj.save(batch.path(name), overwrite=True)
    for name in names:
        print(f"wrote {out_dir / name}")
    return 0


def _check_object(signal, path: Path) -> np.ndarray:
    data = real_array(signal.data, path.name)
    with np.errstate(over="ignore"):
        if not np.isfinite(np.sum(np.abs(data))):
            raise ValueError(f"{path.name} has values too large to compute with (max {np.abs(data).max():.3g}; "
                             "their sum overflows float64): rescale it")
    return data


def _atoms(args) -> int:
    if (args.frame is None) != (args.probe is None):
        raise ValueError("--frame and --probe go together: the frames' counts are fitted with the probe's "
                         "intensity (give both, or neither to integrate the object)")
    probe = Probe.from_json(args.probe) if args.probe is not None else None
    out_dir = _out_dir(Path(args.out))
    objects = _expand_inputs(args.objects)
    frames = _expand_inputs(args.frame) if args.frame is not None else None
    if frames is not None and len(frames) != len(objects):
        raise ValueError(f"--frame gives {len(frames)} frame(s) for {len(objects)} object(s): give one frame per "
                         "object, in the same order")
    names = [f"{stem}_atoms.csv" for stem in _stems(objects, "_object")]
    for name in names if out_dir.exists() else ():
        _check_output(out_dir / name, args.overwrite)
        _check_output(sidecar_path(out_dir / name), args.overwrite)
    for i, obj in enumerate(tqdm(objects, desc="checking", unit="file", disable=args.quiet or len(objects) < 2,
                                 leave=False)):
        signal = _single(io.load(obj, sampling=args.sampling), obj)
        data = _check_object(signal, obj)
        if frames is not None:
            _frame_for(signal, data.shape, frames[i], args.sampling)
    material = None if args.material == "none" else args.material
    with _Batch(out_dir) as batch:
        for i, (obj, name) in enumerate(tqdm(list(zip(objects, names)), desc="atoms", unit="frame",
                                             disable=args.quiet or len(objects) < 2)):
            signal = io.load(obj, sampling=args.sampling)
            fit = {}
            if frames is not None:
                sampling = sampling_of(signal)
                size = psf_grid(sampling)
                fit = {"counts": _frame_for(signal, signal.data.shape, frames[i], args.sampling),
                       "psf": probe.intensity((size, size), sampling)}
            table = find_atoms(signal, material=material, **fit)
            extra = {"frame": frames[i].name, "probe": probe.to_dict()} if frames is not None else {}
            save_atoms(table, batch.path(name), extra={"object": obj.name, **extra})
            counts = ", ".join(f"{n} {sp}" for sp, n in table["species"].value_counts().items())
            print(f"{out_dir / name}: {counts or 'no columns'}")
    return 0


def _frame_for(signal, shape, path: Path, sampling: float | None) -> np.ndarray:
    """The counts of the frame an object was made from, checked against the object (shape, pixel size)."""
    frame = _single(io.load(path, sampling=sampling), path)
    counts = counts_array(frame.data, path.name, constant_ok=True)
    if counts.shape != tuple(shape):
        raise ValueError(f"{path.name} is {counts.shape[0]}x{counts.shape[1]} px, its object {shape[0]}x{shape[1]} "
                         "px: --frame must be the frame each object was reconstructed from")
    a, b = sampling_of(frame), sampling_of(signal)
    if abs(a - b) > 1e-3 * b:
        raise ValueError(f"{path.name} has pixel size {a:.4g} Å, its object {b:.4g} Å: --frame must be the frame each "
                         "object was reconstructed from")
    return counts


def _series(args) -> int:
    probe = Probe.from_json(args.probe)
    if args.weights is not None:
        load_model(args.weights)
    out_dir = _out_dir(Path(args.out))
    files = _expand_inputs(args.frames)
    _not_reading_outputs(args.frames, files, out_dir, "_object.hspy")
    frames = io.FileFrames(files, sampling=args.sampling)  # calibration and shapes, from the headers
    names = frames.names()
    fingerprints = [fingerprint(counts_array(frames[i], frames.source(i), min_side=MIN_SIDE))
                    for i in tqdm(range(len(frames)), desc="checking", unit="frame", disable=args.quiet, leave=False)]
    created = not out_dir.exists()
    try:
        summary = process_series(frames, probe, frames.sampling, out_dir, weights=args.weights,
                                 material=None if args.material == "none" else args.material,
                                 scheduler=args.scheduler, n_workers=args.workers, progress=not args.quiet,
                                 intensities=args.intensities, names=names, fingerprints=fingerprints,
                                 overwrite=args.overwrite)
    except BaseException:
        if created and out_dir.is_dir() and not any(out_dir.glob("*_atoms.csv")):
            shutil.rmtree(out_dir)  # made by this run and holding no result: leave nothing behind
        raise
    print(f"{len(summary)} frames processed; results in {out_dir} (<stem>_object.hspy, <stem>_atoms.csv, drift.csv, "
          "summary.csv)")
    return 0


_COMMANDS = {"zemlin": _zemlin, "reconstruct": _reconstruct, "atoms": _atoms, "series": _series}
