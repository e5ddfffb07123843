"""``deepstem train``: train the encoder on simulated frames, or fine-tune it on your own frames.

Without ``--frames`` the encoder is trained on simulated frames with a configuration (the shipped weights:
``deepstem train --config deepstem_utils/weights/train_config.json --out deepstem_utils/weights``).

With ``--frames`` it learns, self-supervised, from experimental frames (no ground truth):
``deepstem train --frames FILE... --probe probe.json [--sampling Å] [--init WEIGHTS|none] [--steps N] --out DIR``.
Every file is read (:func:`deepstem_utils.load`; a stack gives one frame per image) and checked, and the probe
is read, before any training; the counts become electrons through the detector's gain and offset (estimated by
photon transfer, or ``--gain``/``--offset``); see :mod:`deepstem_utils.network.finetune`. Writes
``DIR/deepstem.pt`` and ``DIR/deepstem.json``, for ``deepstem reconstruct --weights DIR/deepstem.pt``.

Exit status 0 on success, 2 for a usage error or bad input (one line on stderr), 1 for a failure at run time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

import numpy as np

from . import io
from .core.signals import sampling_of
from .network import finetune
from .network.train import main as simulated_main
from .network.weights import load_model, sha256
from .physics.probe import Probe

__all__ = ["main", "build_parser", "run_command", "one_line", "BAD_INPUT"]

#: Errors that mean bad input (exit status 2); any other error is a failure at run time (1).
BAD_INPUT = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError, ValueError,
             TypeError)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ValueError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="deepstem train", description="Fine-tune the DeepSTEM encoder on your own frames "
                "(self-supervised: no ground truth). Without --frames: train on simulated frames (--config).")
    p.add_argument("--frames", nargs="+", required=True, metavar="FILE",
                   help="frames to learn from (.dm3 .dm4 .emd .hspy .tif .npy; a stack gives one frame per image)")
    p.add_argument("--probe", required=True, help="probe JSON of the frames (measured: deepstem zemlin)")
    p.add_argument("--sampling", type=float, help="pixel size [Å]; needed for .npy and uncalibrated files")
    p.add_argument("--init", default=None, help="starting weights: a file from deepstem train, or 'none' for "
                   "random weights (default: the shipped weights)")
    p.add_argument("--steps", type=int, default=finetune.FINETUNE_DEFAULTS["steps"],
                   help=f"training steps at most (default {finetune.FINETUNE_DEFAULTS['steps']}; it stops earlier "
                        "when the held-out loss stops improving)")
    p.add_argument("--gain", type=float, help="detector gain [counts/e-] (default: estimated by photon transfer)")
    p.add_argument("--offset", type=float, help="detector dark offset [counts] (default: estimated)")
    p.add_argument("--out", required=True, help="output directory (DIR/deepstem.pt, DIR/deepstem.json)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in OUT")
    p.add_argument("--overwrite", action="store_true", help="replace existing weights in OUT")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no report on stdout")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--frames" not in argv:
        return simulated_main(argv)
    try:
        args = build_parser().parse_args(argv)
    except ValueError as err:
        print(f"deepstem train: error: {one_line(err)}", file=sys.stderr)
        return 2
    return run_command("train", _train_frames, args, interrupted="interrupted (continue with --resume)")


def run_command(name: str, command, args: argparse.Namespace, interrupted: str = "interrupted") -> int:
    """Run ``command(args)`` as ``deepstem name`` does: bad input exits 2 and a failure at run time 1, each with
    one line on stderr instead of a traceback; ``args.quiet`` silences stdout."""
    try:
        with open(os.devnull, "w") as devnull, \
                contextlib.redirect_stdout(devnull) if args.quiet else contextlib.nullcontext():
            return command(args)
    except KeyboardInterrupt:
        print(f"deepstem {name}: {interrupted}", file=sys.stderr)
        return 130
    except BAD_INPUT as err:
        print(f"deepstem {name}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except Exception as err:  # a failure at run time: one line, not a traceback
        print(f"deepstem {name}: failed: {type(err).__name__}: {one_line(err)}", file=sys.stderr)
        return 1


def one_line(err: BaseException) -> str:
    """The first line of an error's message (its type when it has none)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _read_frames(paths: list[str], sampling: float | None) -> tuple[list[np.ndarray], float, list[dict]]:
    """Every frame of every file, their common pixel size [Å] and the sources (file, SHA-256, frames)."""
    frames, sources, common = [], [], None
    for name in paths:
        path = Path(name)
        signal = io.load(path, sampling=sampling)
        s = sampling_of(signal)
        if common is not None and abs(s - common) > 1e-3 * common:
            raise ValueError(f"{path.name} has pixel size {s:.4g} Å, the first file {common:.4g} Å: train on frames "
                             "of one pixel size")
        common = s
        data = np.asarray(signal.data.compute() if hasattr(signal.data, "compute") else signal.data)
        stack = data.reshape((-1,) + data.shape[-2:])
        frames.extend(np.asarray(f, dtype=np.float64) for f in stack)
        sources.append({"file": os.fspath(path.resolve()), "sha256": sha256(path), "frames": len(stack)})
    return frames, common, sources


def _train_frames(args) -> int:
    probe = Probe.from_json(args.probe)
    if args.init is not None and args.init.lower() != "none":
        load_model(args.init)  # a bad weights file fails before any work
    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    frames, sampling, sources = _read_frames(args.frames, args.sampling)
    net, record = finetune.finetune(frames, probe, sampling, args.out, init=args.init, gain=args.gain,
                                    offset=args.offset, sources=sources, resume=args.resume,
                                    overwrite=args.overwrite, progress=not args.quiet, steps=args.steps)
    first, best = record["log"][0], record["heldout_nll_per_pixel"]
    print(f"held-out Poisson NLL per pixel: {first['heldout_nll']:.5f} at the start, {best:.5f} at step "
          f"{record['config']['finetune']['best_step']} (kept)")
    print(f"weights written to {Path(args.out) / 'deepstem.pt'}")
    return 0
