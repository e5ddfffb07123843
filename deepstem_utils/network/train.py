"""Self-supervised training of the DeepSTEM autoencoder.

Every step draws a batch of simulated frames (:func:`dataset.simulate_frame`),
seeded by ``(seed, step)`` alone, so a run resumed from a checkpoint sees the
same batches and ends bit-identical to an uninterrupted one.

The loss never sees the ground-truth object. Each frame's counts are split
binomially into two *independent* Poisson frames (``x1 ~ Binomial(x, p)``,
``x2 = x - x1``): the encoder reads ``x1``, the fixed decoder's image is scored
against ``x2`` by the Poisson negative log-likelihood. Noise in ``x1`` carries no
information about noise in ``x2``, so reproducing it does not pay; with
``target="same"`` (the ablation) the network is scored on its own input and
learns exactly that failure.

``target="supervised"`` trains the same network the other way, the way a user
of AtomAI-style tools would: its (atom-blurred) output is scored against the
ground-truth object by the mean squared error. It needs ground truth, so it can
only learn from simulations; it is the supervised baseline of chapter 6,
written to ``supervised_unet.pt`` rather than ``deepstem.pt``.

Run ``deepstem train --config CONFIG.json --out DIR`` or
``python -m deepstem_utils.train``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..physics.probe import psf_grid
from . import dataset
from .model import UNet, atom_blur, decode, em_otfs, em_refine, encoder_input
from .weights import load_model, save_model

__all__ = ["DEFAULT_CONFIG", "QUICK_CONFIG", "TARGETS", "RANGED", "check_config", "make_batch", "encode", "save_checkpoint", "output_names", "train", "main"]

#: Training targets: self-supervised with independent noise, its ablation, and the supervised baseline.
TARGETS = ("split", "same", "supervised")

#: The configuration of the shipped weights.
DEFAULT_CONFIG = {
    "seed": 0,
    "steps": 4000,
    "batch": 8,
    "crop": 96,
    "lr": 2e-3,
    "lr_final": 1e-4,
    "base": 16,
    "depth": 3,
    "stem": 1,
    "em_steps": 0,
    "em_power": 1.0,
    "em_in_training": True,
    "target": "split",
    "split": 0.5,
    "sparsity": 0.1,
    "atom_width": 0.1,
    "s_vacancy": 0.06,
    "s_divacancy": 0.02,
    "mo_vacancy": 0.01,
    "adatoms": 0.004,
    "gamma": 1.7,
    "object_width": 0.12,
    "checkpoint_every": 200,
    "validation_frames": 8,
    "threads": 2,
    "init": None,
}
#: A configuration that trains in well under a minute (tests, quick mode).
QUICK_CONFIG = {**DEFAULT_CONFIG, "steps": 40, "batch": 4, "crop": 64, "checkpoint_every": 20,
                "validation_frames": 2}


#: Options that may be a number or a range ``[lo, hi]`` drawn uniformly for every training frame.
RANGED = ("s_vacancy", "s_divacancy", "mo_vacancy", "adatoms", "gamma", "object_width")


def check_config(config: dict) -> dict:
    """The options of a run, the defaults filled in, after checking names and values (``ValueError`` if not).

    Physics of the simulated frames: ``s_vacancy``, ``s_divacancy``, ``mo_vacancy`` (fractions of sites),
    ``adatoms`` [1/Å²], ``gamma`` (Z-exponent of the cross-sections) and ``object_width`` (the atoms' width in
    the object [Å]) may each be a number or a range ``[lo, hi]`` (:data:`RANGED`), drawn for every frame.
    Network: ``base``, ``depth``, ``stem`` (see :class:`model.UNet`), ``em_steps`` (data-consistency steps
    after the encoder, :func:`model.em_refine`, in :func:`reconstruct`; also inside the training loss unless
    ``em_in_training`` is False, which halves the cost of a training step), ``em_power`` (their exponent: 1 is
    Richardson-Lucy, up to 2 takes longer steps), ``atom_width`` (the encoder's fixed
    blur [Å]), ``init`` (a weights file to start from instead of random weights: a warm start).
    """
    unknown = set(config) - set(DEFAULT_CONFIG)
    if unknown:
        raise ValueError(f"unknown training option(s): {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(DEFAULT_CONFIG)}")
    config = {**DEFAULT_CONFIG, **config}
    if config["target"] not in TARGETS:
        raise ValueError(f"target must be 'split' (independent noise), 'same' (ablation) or 'supervised' "
                         f"(ground-truth baseline), got {config['target']!r}")
    if not 0 < config["split"] < 1:
        raise ValueError("split must be between 0 and 1 (the fraction of counts given to the encoder)")
    multiple = config["stem"] * 2 ** (config["depth"] - 1)
    if config["crop"] % multiple:
        raise ValueError(f"crop must be a multiple of {multiple} (stem × 2^(depth-1))")
    for key in RANGED:
        value = config[key]
        low, high = (value, value) if np.ndim(value) == 0 else value
        if not (np.isfinite(low) and np.isfinite(high) and 0 <= low <= high):
            raise ValueError(f"{key} must be a number >= 0 or a range [lo, hi] with 0 <= lo <= hi, got {value!r}")
    if int(config["em_steps"]) < 0:
        raise ValueError("em_steps must be >= 0")
    if not 1.0 <= float(config["em_power"]) <= 2.0:
        raise ValueError(f"em_power must be from 1 (Richardson-Lucy) to 2, got {config['em_power']!r}")
    return config


def _draw(value, rng: np.random.Generator) -> float:
    """A fixed option as it is; a range ``[lo, hi]`` drawn uniformly."""
    return float(value) if np.ndim(value) == 0 else float(rng.uniform(*value))


def make_batch(config: dict, index) -> dict[str, torch.Tensor]:
    """The batch for step ``index`` (an int, or a tuple for held-out frames): inputs, targets, PSFs.

    Returns tensors ``inputs`` (b, 2, n, n), ``target`` (b, 1, n, n) in units where the
    decoded image is compared directly (for ``target="supervised"``: the ground-truth
    object, compared with the encoder's output), ``psf`` (b, 1, m, m), and ``obj``
    (the ground truth; in the self-supervised modes for monitoring only: it never
    enters their loss).
    """
    rng = np.random.default_rng([config["seed"], *np.atleast_1d(index)])
    n = config["crop"]
    p = config["split"]
    size = psf_grid(dataset.SAMPLING_RANGE[0])
    xs, ys, psfs, objs, samplings = [], [], [], [], []
    for _ in range(config["batch"]):
        physics = {key: _draw(config[key], rng) for key in RANGED}
        frame = dataset.simulate_frame((n, n), rng=rng, s_vacancy=physics["s_vacancy"],
                                       s_divacancy=physics["s_divacancy"], mo_vacancy=physics["mo_vacancy"],
                                       adatoms=physics["adatoms"], gamma=physics["gamma"],
                                       atom_width=physics["object_width"])
        counts = frame.counts.astype(np.int64)
        if config["target"] == "split":  # self-supervised, independent halves
            x1 = rng.binomial(counts, p).astype(np.float64)
            x2 = counts - x1
            scale = max(x1.mean(), 1e-3)
            xs.append(x1 / scale)
            ys.append(x2 / (scale * (1 - p) / p))
        else:  # "same" scores the input itself; "supervised" replaces the target by the ground truth below
            scale = max(counts.mean(), 1e-3)
            xs.append(counts / scale)
            ys.append(counts / scale)
        psfs.append(frame.probe.intensity((size, size), frame.sampling))
        samplings.append(frame.sampling)
        objs.append(frame.obj * frame.electrons_per_pixel / scale * (p if config["target"] == "split" else 1))
    as_t = lambda a: torch.from_numpy(np.stack(a)[:, None].astype(np.float32))  # noqa: E731
    psf = as_t(psfs)
    target = as_t(objs) if config["target"] == "supervised" else as_t(ys)
    return {"inputs": encoder_input(as_t(xs), psf), "target": target, "psf": psf, "obj": as_t(objs),
            "sigma": torch.tensor(config["atom_width"] / np.array(samplings), dtype=torch.float32)}


def poisson_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Poisson negative log-likelihood per pixel (up to a constant), in normalised units."""
    return torch.mean(predicted - target * torch.log(predicted + 1e-6))


def sparsity_penalty(obj: torch.Tensor, delta: float = 1e-3) -> torch.Tensor:
    """Mean of sqrt(obj + delta): small when the object's mass sits in few compact columns.

    An L1 penalty would be useless here: for a non-negative object it is the total
    intensity, which the data already fix. The square root (an L_p quasi-norm, p = 1/2)
    prefers concentrated over spread-out mass: the prior that the object is atoms.
    """
    return torch.mean(torch.sqrt(obj + delta))


def supervised_loss(obj: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the object, relative to the truth's mean square (so doses weigh alike)."""
    return torch.mean((obj - truth) ** 2) / torch.mean(truth**2).clamp_min(1e-12)


def encode(net: UNet, batch: dict, config: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder on a batch: (atom density, object) — U-Net, atom blur, data-consistency steps on the input.

    The PSFs' transfer functions are computed once per batch (``batch["otfs"]``) and shared with the loss."""
    density = net(batch["inputs"])
    obj = atom_blur(density, batch["sigma"])
    steps = int(config.get("em_steps", 0)) if config.get("em_in_training", True) else 0
    if steps and "otfs" not in batch:
        batch["otfs"] = em_otfs(batch["psf"], tuple(obj.shape[-2:]))
    return density, em_refine(obj, batch["inputs"][:, :1], batch["psf"], steps, otfs=batch.get("otfs"),
                              power=float(config.get("em_power", 1.0)))


def _loss(config: dict, obj: torch.Tensor, batch: dict) -> torch.Tensor:
    if config["target"] == "supervised":
        return supervised_loss(obj, batch["target"])
    forward = batch["otfs"][0] if "otfs" in batch else None
    return poisson_loss(decode(obj, batch["psf"], forward), batch["target"])


def output_names(config: dict) -> dict[str, str]:
    """File names a run writes: ``weights``, ``checkpoint`` and ``log`` (the supervised baseline's differ)."""
    if config.get("target") == "supervised":
        return {"weights": "supervised_unet.pt", "checkpoint": "checkpoint_supervised.pt",
                "log": "training_log_supervised.json"}
    return {"weights": "deepstem.pt", "checkpoint": "checkpoint.pt", "log": "training_log.json"}


def _lr(config: dict, step: int) -> float:
    t = step / max(config["steps"], 1)
    return config["lr_final"] + 0.5 * (config["lr"] - config["lr_final"]) * (1 + math.cos(math.pi * t))


def save_checkpoint(path: Path, payload: dict):
    """Write a checkpoint atomically: a kill never leaves a half-written one."""
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _validate(net, batch, config: dict) -> dict:
    with torch.no_grad():
        _, obj = encode(net, batch, config)
        loss = float(_loss(config, obj, batch))
        truth = batch["obj"]
        mse = float(torch.mean((obj - truth) ** 2))
        peak = float(truth.amax())
    return {"val_loss": loss, "val_psnr_monitor": 10 * math.log10(peak**2 / max(mse, 1e-20))}


def train(config: dict | None = None, out: str | os.PathLike = "training", resume: bool = False,
          overwrite: bool = False, progress: bool = True) -> tuple[UNet, list[dict]]:
    """Train the encoder; write checkpoints and the final weights to ``out``.

    Parameters
    ----------
    config : dict, optional
        Options (see :data:`DEFAULT_CONFIG`); missing ones take the defaults.
    out : str or Path
        Directory for ``checkpoint.pt``, ``training_log.json`` and ``deepstem.pt`` (+ ``.json``);
        see :func:`output_names` for the supervised baseline's names.
    resume : bool
        Continue from the checkpoint in ``out`` (same config required).
    overwrite : bool
        Replace existing final weights in ``out``.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    net : UNet
        The trained encoder.
    log : list of dict
        One record per checkpoint: step, training loss (mean since the last
        record), held-out self-supervised loss, and a monitoring PSNR against the
        ground truth (logged only; it is not used for training).
    """
    config = check_config(dict(config or {}))
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file; give a directory")
    out.mkdir(parents=True, exist_ok=True)
    names = output_names(config)
    final = out / names["weights"]
    if final.exists() and not overwrite and not resume:
        raise FileExistsError(f"{final} exists; pass --overwrite to replace it or choose another --out")
    ckpt_path = out / names["checkpoint"]
    if ckpt_path.exists() and not resume:
        raise FileExistsError(f"{ckpt_path} exists (an earlier run): pass --resume to continue it, "
                              "or choose another --out")
    torch.set_num_threads(int(config["threads"]))
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(config["seed"])
    net = UNet(base=config["base"], depth=config["depth"], stem=config["stem"])
    if config["init"]:  # a warm start: the weights of another run, with this run's architecture
        start_net, start_config = load_model(config["init"])
        if any(start_config.get(k, DEFAULT_CONFIG[k]) != config[k] for k in ("base", "depth", "stem")):
            raise ValueError(f"init weights {config['init']} have another architecture (base, depth, stem) than "
                             "this run's config")
        net.load_state_dict(start_net.state_dict())
    opt = torch.optim.Adam(net.parameters(), lr=config["lr"])
    start, log = 0, []
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        # keys added after a checkpoint was written take their defaults, so an older run still resumes
        if {**DEFAULT_CONFIG, **state["config"]} != {**DEFAULT_CONFIG, **config}:
            raise ValueError(f"{ckpt_path} was written with a different config; resume with the same one")
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        start, log = int(state["step"]), list(state["log"])
    held_out = make_batch({**config, "batch": config["validation_frames"]}, (10**9,))
    bar = tqdm(total=config["steps"], initial=start, desc="training", disable=not progress)
    running, count, t0 = 0.0, 0, time.time()
    if start == 0:  # where the curve starts: the held-out loss of the untrained network
        net.eval()
        log.append({"step": 0, "train_loss": None, **_validate(net, held_out, config), "seconds": 0.0})
        net.train()
    for step in range(start, config["steps"]):
        for group in opt.param_groups:
            group["lr"] = _lr(config, step)
        batch = make_batch(config, step)
        density, obj = encode(net, batch, config)
        loss = _loss(config, obj, batch)
        if config["sparsity"] and config["target"] != "supervised":
            loss = loss + config["sparsity"] * sparsity_penalty(density)
        opt.zero_grad()
        loss.backward()
        opt.step()
        running, count = running + loss.item(), count + 1
        bar.update()
        bar.set_postfix(loss=f"{loss.item():.4f}")
        done = step + 1
        if done % config["checkpoint_every"] == 0 or done == config["steps"]:
            net.eval()
            record = {"step": done, "train_loss": running / count, **_validate(net, held_out, config),
                      "seconds": time.time() - t0}
            net.train()
            log.append(record)
            running, count = 0.0, 0
            save_checkpoint(ckpt_path, {"step": done, "net": net.state_dict(), "opt": opt.state_dict(), "log": log,
                                        "config": config})
            (out / names["log"]).write_text(json.dumps(log, indent=1) + "\n")
    bar.close()
    net.eval()
    save_model(net, final, config, overwrite=True if (overwrite or resume) else False)
    return net, log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deepstem train", description="Train the DeepSTEM encoder "
                                     "(self-supervised, on simulated frames; CPU). To learn from your own frames: "
                                     "deepstem train --frames FILE... --probe probe.json --out DIR")
    parser.add_argument("--config", help="JSON file with training options (seed, steps, batch, crop [px], lr, "
                        "base, depth, target 'split'|'same'|'supervised', split, checkpoint_every [steps], threads); "
                        "missing options take the defaults")
    parser.add_argument("--out", required=True, help="output directory (checkpoint.pt, training_log.json, "
                        "deepstem.pt and deepstem.json; supervised_unet.pt etc. for target 'supervised')")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in OUT")
    parser.add_argument("--overwrite", action="store_true", help="replace existing weights in OUT")
    parser.add_argument("--quick", action="store_true", help="a tiny run (seconds), for tests")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no report on stdout")
    args = parser.parse_args(argv)
    try:
        config = dict(QUICK_CONFIG if args.quick else DEFAULT_CONFIG)
        if args.config:
            try:
                config.update(json.loads(Path(args.config).read_text()))
            except (OSError, json.JSONDecodeError) as exc:
                raise ValueError(f"cannot read config {args.config}: {exc}") from None
        _, log = train(config, args.out, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    except (ValueError, FileExistsError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        print(f"deepstem train: error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"weights written to {Path(args.out) / output_names(config)['weights']} "
              f"(final held-out loss {log[-1]['val_loss']:.5f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
