"""DeepSTEM learns from your own frames: self-supervised training on experimental images.

The loss of :mod:`.train` needs no ground truth: the counts of a frame are split
binomially into two independent Poisson frames, the encoder reads one and the
fixed decoder's image is scored against the other. That works on real frames as
well as on simulated ones, **provided the values are Poisson counts of
electrons**: a binomial split of anything else (an analogue detector's output
with gain and dark offset) does not give two independent halves. So the frames
are first turned into electron counts with the detector's gain and offset
(estimated by photon transfer, :func:`physics.detector.estimate_gain_offset`, or
given), and a frame without a shot-noise signature is refused.

Held out, never trained on: a stripe of rows at the bottom of every frame
(``holdout``). Its binomial halves are drawn once; after every ``eval_every``
steps the network reads one half and its decoded image is scored against the
other by the Poisson negative log-likelihood per pixel. The weights with the
lowest held-out loss are kept (early stopping after ``patience`` evaluations
without improvement), so fine-tuning on a single frame cannot simply learn its
noise. Augmentation is by the eight flips and quarter turns of a crop, each
applied to the probe intensity in the decoder too.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from scipy.special import gammaln
from tqdm.auto import tqdm

from ..physics.detector import estimate_gain_offset
from ..physics.probe import Probe, psf_grid
from .model import UNet, decode, encoder_input
from .train import DEFAULT_CONFIG, encode, poisson_loss, save_checkpoint
from .weights import WEIGHTS, load_model, save_model, sha256

__all__ = ["FINETUNE_DEFAULTS", "electron_counts", "dihedral", "heldout_split", "poisson_nll", "Heldout", "finetune"]

#: Options of a fine-tuning run (see :func:`finetune`).
FINETUNE_DEFAULTS = {"steps": 400, "batch": 4, "crop": 96, "lr": 3e-4, "seed": 0, "split": 0.5, "holdout": 0.2,
                     "eval_every": 25, "patience": 6, "threads": 2, "thin": 0.1}
#: Smallest mean number of detected electrons per pixel a frame must hold to be trained on.
MIN_ELECTRONS = 0.05
#: A photon-transfer line explaining less than this share of the variance is no shot-noise signature.
MIN_R2 = 0.3


def electron_counts(frame: np.ndarray, gain: float | None = None, offset: float | None = None) -> tuple[np.ndarray,
                                                                                                     dict]:
    """A frame in detected electrons (integers), with the gain and offset used.

    Parameters
    ----------
    frame : (ny, nx) ndarray
        Detector output [counts].
    gain, offset : float, optional
        Detector gain [counts/e⁻] and dark offset [counts]; estimated by photon transfer when not given.

    Returns
    -------
    electrons : (ny, nx) ndarray
        ``round((frame - offset) / gain)``, clipped at 0.
    record : dict
        ``gain``, ``offset``, ``estimated`` (bool), ``r2`` of the photon-transfer line (None if given),
        ``electrons_per_pixel``.

    Raises
    ------
    ValueError
        Non-finite or negative values, a frame with no shot-noise signature (an integrating detector or a
        processed image: give ``gain`` and ``offset`` if you know them), or too few electrons.
    """
    frame = np.asarray(frame, dtype=np.float64)
    if frame.ndim != 2:
        raise ValueError(f"a frame must be 2-D (ny, nx), got shape {frame.shape}")
    if not np.all(np.isfinite(frame)):
        raise ValueError(f"the frame holds {int(np.sum(~np.isfinite(frame)))} NaN/inf pixel(s): replace them first")
    estimated = gain is None or offset is None
    r2 = None
    if estimated:
        est = estimate_gain_offset(frame)
        r2 = est["r2"]
        if r2 < MIN_R2 or est["gain"] <= 0:
            raise ValueError(f"the frame shows no shot-noise signature (photon-transfer line r² {r2:.2f} < {MIN_R2}):"
                             " it does not look like counted electrons (an integrating detector, or a processed "
                             "image); a binomial split is valid only for Poisson counts. Give the detector's gain "
                             "and offset if you know them")
        gain = est["gain"] if gain is None else gain
        offset = est["offset"] if offset is None else offset
    gain, offset = float(gain), float(offset)
    if not (np.isfinite(gain) and gain > 0 and np.isfinite(offset)):
        raise ValueError(f"gain must be > 0 and offset finite, got gain {gain!r}, offset {offset!r}")
    if frame.min() < offset - 5 * math.sqrt(max(gain * abs(offset), 1.0)) and frame.min() < 0:
        raise ValueError(f"the frame has negative values (min {frame.min():.4g}) below its offset {offset:.4g}: "
                         "give raw detector counts")
    electrons = np.rint(np.clip((frame - offset) / gain, 0, None))
    if electrons.mean() < MIN_ELECTRONS:
        raise ValueError(f"the frame holds {electrons.mean():.3g} electrons per pixel after the offset "
                         f"({offset:.4g}) and gain ({gain:.4g}): too few to learn from (need {MIN_ELECTRONS})")
    return electrons, {"gain": gain, "offset": offset, "estimated": estimated, "r2": r2,
                       "electrons_per_pixel": float(electrons.mean())}


def dihedral(array: np.ndarray, k: int) -> np.ndarray:
    """One of the eight flips and quarter turns of the last two axes (``k`` in 0-7); the centre of an
    odd-sized array stays the centre, so a PSF centred on ``n // 2`` stays centred."""
    out = np.rot90(array, k % 4, axes=(-2, -1))
    return np.flip(out, axis=-1) if k >= 4 else out


def heldout_split(electrons: np.ndarray, fraction: float) -> int:
    """First row of the held-out stripe at the bottom of a frame (``fraction`` of its rows, at least 64)."""
    rows = max(64, int(round(fraction * electrons.shape[0])))
    if electrons.shape[0] - rows < 64:
        raise ValueError(f"a frame of {electrons.shape[0]} rows is too small to hold out {rows} rows and train on "
                         "the rest (at least 64 rows each)")
    return electrons.shape[0] - rows


def _odd_psf(probe: Probe, sampling: float) -> np.ndarray:
    """The probe intensity on an odd grid (its centre is a pixel that flips and turns keep in place)."""
    size = psf_grid(sampling) + 1
    return probe.intensity((size, size), sampling)


def _batch(crops: list[np.ndarray], psfs: list[np.ndarray], split: float, sigma: float,
           rng: np.random.Generator, thin: float = 1.0) -> dict:
    """Binomial halves of electron-count crops as a training batch (the layout of :func:`train.make_batch`).

    With ``thin`` < 1 every crop is first thinned binomially to a fraction drawn log-uniformly in
    ``[thin, 1]`` of its counts: a thinned Poisson frame is a Poisson frame at a lower dose, so the network
    learns the frame's specimen at every dose down to that fraction.
    """
    xs, ys = [], []
    for counts in crops:
        if thin < 1:
            keep = float(np.exp(rng.uniform(np.log(thin), 0.0)))
            counts = rng.binomial(counts.astype(np.int64), keep).astype(np.float64)
        x1 = rng.binomial(counts.astype(np.int64), split).astype(np.float64)
        scale = max(x1.mean(), 1e-3)
        xs.append(x1 / scale)
        ys.append((counts - x1) / (scale * (1 - split) / split))
    as_t = lambda a: torch.from_numpy(np.stack(a)[:, None].astype(np.float32))  # noqa: E731
    psf = as_t(psfs)
    return {"inputs": encoder_input(as_t(xs), psf), "target": as_t(ys), "psf": psf,
            "sigma": torch.full((len(crops),), sigma, dtype=torch.float32)}


def poisson_nll(expected: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-pixel Poisson negative log-likelihood [nats] of ``counts`` given ``expected`` (log x! included)."""
    expected = np.clip(np.asarray(expected, float), 1e-12, None)
    counts = np.asarray(counts, float)
    return expected - counts * np.log(expected) + gammaln(counts + 1)


class Heldout:
    """The held-out stripes of the frames, each split once into two independent Poisson halves.

    ``x1`` is what a method reads, ``x2`` what it is scored against: a method predicts ``x2``'s expected
    counts as ``(1 - split) / split`` times its estimate of ``x1``'s expected image
    (:meth:`score` for the encoder; :func:`poisson_nll` for any other estimate).
    """

    def __init__(self, frames, starts, psf: np.ndarray, split: float, sigma: float, seed: int, multiple: int,
                 thin: float = 1.0):
        rng = np.random.default_rng([seed, 10**9])
        self.split, self.items = split, []
        psf_t = torch.from_numpy(np.ascontiguousarray(psf, dtype=np.float32))[None, None]
        for electrons, start in zip(frames, starts):
            stripe = electrons[start:]
            h, w = (stripe.shape[0] // multiple) * multiple, (stripe.shape[1] // multiple) * multiple
            stripe = stripe[:h, :w]
            if thin < 1:  # an independent realisation at a lower dose: binomial thinning of Poisson counts
                stripe = rng.binomial(stripe.astype(np.int64), thin).astype(np.float64)
            x1 = rng.binomial(stripe.astype(np.int64), split).astype(np.float64)
            x2 = stripe - x1
            scale = max(x1.mean(), 1e-3)
            batch = {"inputs": encoder_input(torch.from_numpy((x1 / scale).astype(np.float32))[None, None], psf_t),
                     "psf": psf_t, "sigma": torch.tensor([sigma], dtype=torch.float32)}
            self.items.append({"x1": x1, "x2": x2, "scale": scale, "batch": batch})

    @property
    def factor(self) -> float:
        """Expected counts of ``x2`` per expected count of ``x1``."""
        return (1 - self.split) / self.split

    def score_image(self, predict) -> float:
        """Held-out Poisson NLL per pixel [nats] of any method: ``predict(x1)`` returns its estimate of the expected
        image of ``x1`` [counts] (e.g. a Gaussian-filtered ``x1``, or the decoded image of a deconvolution)."""
        total, pixels = 0.0, 0
        for item in self.items:
            expected = np.asarray(predict(item["x1"]), float) * self.factor
            total += float(poisson_nll(expected, item["x2"]).sum())
            pixels += expected.size
        return total / pixels

    def score(self, net: UNet, config: dict) -> float:
        """Held-out Poisson negative log-likelihood per pixel [nats, detected electrons] of the encoder's decoded
        image of ``x1`` against ``x2``."""
        total, pixels = 0.0, 0
        with torch.no_grad():
            for item in self.items:
                _, obj = encode(net, item["batch"], config)
                expected = decode(obj, item["batch"]["psf"])[0, 0].double().numpy() * item["scale"] * self.factor
                total += float(poisson_nll(expected, item["x2"]).sum())
                pixels += expected.size
        return total / pixels


def finetune(frames, probe: Probe, sampling: float, out: str | os.PathLike, *, init: str | os.PathLike | None = None,
             gain: float | None = None, offset: float | None = None, sources: list[dict] | None = None,
             resume: bool = False, overwrite: bool = False, progress: bool = True, **options) -> tuple[UNet, dict]:
    """Train the encoder on your own frames, self-supervised, and write ``out/deepstem.pt`` (+ ``deepstem.json``).

    Parameters
    ----------
    frames : sequence of (ny, nx) ndarray
        Raw detector frames of one pixel size [counts], each at least 128 px a side.
    probe : Probe
        The probe that recorded them (measured: chapter 2).
    sampling : float
        Pixel size [Å] (the network's working range is 0.12-0.20 Å).
    out : str or Path
        Output directory: ``deepstem.pt``, ``deepstem.json`` (config, SHA-256, sources, probe, gain and offset,
        training log), ``checkpoint_finetune.pt`` (for ``resume``).
    init : str, Path, "none" or None
        Starting weights: None for the shipped ones, a file from ``deepstem train``, or ``"none"`` to train
        from scratch (the shipped architecture, random weights).
    gain, offset : float, optional
        Detector gain [counts/e⁻] and dark offset [counts] for every frame; estimated per frame by photon
        transfer when not given (:func:`electron_counts`).
    sources : list of dict, optional
        Where the frames came from (e.g. ``{"file": ..., "sha256": ...}``), recorded in ``deepstem.json``.
    resume : bool
        Continue an interrupted run from ``out/checkpoint_finetune.pt`` (the same options required).
    overwrite : bool
        Replace an existing ``out/deepstem.pt``.
    progress : bool
        Show a progress bar.
    **options
        :data:`FINETUNE_DEFAULTS`: ``steps``, ``batch``, ``crop`` [px], ``lr``, ``seed``, ``split`` (binomial
        fraction given to the encoder), ``holdout`` (fraction of every frame's rows held out), ``eval_every``
        [steps], ``patience`` [evaluations], ``threads``, ``thin`` (every training crop is thinned to a
        random fraction of its dose, log-uniform down to ``thin``, so the network learns the specimen at lower
        doses than the frame's).

    Returns
    -------
    net : UNet
        The encoder with the lowest held-out loss.
    record : dict
        What ``deepstem.json`` holds (including ``log``: step, training loss, held-out NLL per pixel [nats]).
    """
    unknown = set(options) - set(FINETUNE_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown fine-tuning option(s) {sorted(unknown)}; known: {', '.join(FINETUNE_DEFAULTS)}")
    opts = {**FINETUNE_DEFAULTS, **options}
    _check_options(opts)
    sampling = float(sampling)
    if not (np.isfinite(sampling) and 0.12 <= sampling <= 0.20):
        raise ValueError(f"sampling {sampling!r} Å/px is outside the network's working range 0.12-0.20 Å/px: "
                         "resample the frames (or bin them) first")
    if not isinstance(probe, Probe):
        raise TypeError(f"probe must be a deepstem_utils.Probe (e.g. Probe.from_json('probe.json')), got "
                        f"{type(probe).__name__}")
    if len(frames) == 0:
        raise ValueError("no frames to train on")
    prepared = [electron_counts(f, gain, offset) for f in frames]
    electrons = [e for e, _ in prepared]
    net, config, init_record = _start(init)
    multiple = net.multiple
    crop = int(opts["crop"])
    if crop % multiple:
        raise ValueError(f"crop must be a multiple of {multiple}")
    starts = [heldout_split(e, opts["holdout"]) for e in electrons]
    for e, start in zip(electrons, starts):
        if start < crop or e.shape[1] < crop:
            raise ValueError(f"a frame of {e.shape[0]}x{e.shape[1]} px leaves {start} rows for training: at least "
                             f"the crop ({crop} px) is needed on each side")
    out = Path(out)
    final, ckpt_path = out / "deepstem.pt", out / "checkpoint_finetune.pt"
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file; give a directory")
    if final.exists() and not (overwrite or resume):
        raise FileExistsError(f"{final} exists; pass --overwrite to replace it or choose another --out")
    if ckpt_path.exists() and not resume:
        raise FileExistsError(f"{ckpt_path} exists (an earlier run): pass --resume to continue it, or another --out")
    torch.set_num_threads(int(opts["threads"]))
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(opts["seed"])
    psf = _odd_psf(probe, sampling)
    sigma = float(config.get("atom_width", 0.0)) / sampling
    heldout = Heldout(electrons, starts, psf, opts["split"], sigma, opts["seed"], multiple)
    opt = torch.optim.Adam(net.parameters(), lr=opts["lr"])
    state = {"step": 0, "log": [], "best": None, "best_loss": math.inf, "stale": 0}
    run_id = {"options": opts, "init": init_record, "probe": probe.to_dict(), "sampling": sampling,
              "frames": [[int(n) for n in e.shape] for e in electrons]}
    if resume and ckpt_path.exists():
        saved = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if saved["config"] != run_id:
            raise ValueError(f"{ckpt_path} was written by a run with other frames or options; resume with the same")
        net.load_state_dict(saved["net"])
        opt.load_state_dict(saved["opt"])
        state = saved["state"]
    out.mkdir(parents=True, exist_ok=True)
    if state["step"] == 0:
        _evaluate(net, config, heldout, state, 0, None, time.time())
    bar = tqdm(total=opts["steps"], initial=state["step"], desc="fine-tuning", disable=not progress)
    running, count, t0 = 0.0, 0, time.time()
    while state["step"] < opts["steps"] and state["stale"] < opts["patience"]:
        step = state["step"]
        rng = np.random.default_rng([opts["seed"], step])
        crops, psfs = [], []
        for _ in range(opts["batch"]):
            i = int(rng.integers(len(electrons)))
            r = int(rng.integers(0, starts[i] - crop + 1))
            c = int(rng.integers(0, electrons[i].shape[1] - crop + 1))
            k = int(rng.integers(8))
            crops.append(dihedral(electrons[i][r:r + crop, c:c + crop], k))
            psfs.append(dihedral(psf, k))
        batch = _batch(crops, psfs, opts["split"], sigma, rng, opts["thin"])
        net.train()
        _, obj = encode(net, batch, config)
        loss = poisson_loss(decode(obj, batch["psf"]), batch["target"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        running, count = running + loss.item(), count + 1
        state["step"] = step + 1
        bar.update()
        if state["step"] % opts["eval_every"] == 0 or state["step"] == opts["steps"]:
            _evaluate(net, config, heldout, state, state["step"], running / count, t0)
            running, count = 0.0, 0
            save_checkpoint(ckpt_path, {"net": net.state_dict(), "opt": opt.state_dict(), "state": state,
                                        "config": run_id})
    bar.close()
    net.load_state_dict(state["best"])
    net.eval()
    record_config = {**config, "finetune": {**opts, "best_step": state["best_step"],
                                            "stopped_at": state["step"]}}
    record = save_model(net, final, record_config, overwrite=True)
    record.update({"init": init_record, "sources": list(sources or []), "probe": probe.to_dict(),
                   "sampling_A": sampling, "detector": [r for _, r in prepared], "log": state["log"],
                   "heldout_nll_per_pixel": state["best_loss"]})
    final.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return net, record


def _check_options(opts: dict):
    for key in ("steps", "batch", "crop", "eval_every", "patience", "threads"):
        if int(opts[key]) != opts[key] or opts[key] < 1:
            raise ValueError(f"{key} must be a positive integer, got {opts[key]!r}")
    if not 0 < opts["split"] < 1:
        raise ValueError(f"split must be between 0 and 1, got {opts['split']!r}")
    if not 0 < opts["holdout"] < 0.9:
        raise ValueError(f"holdout must be a fraction of the rows between 0 and 0.9, got {opts['holdout']!r}")
    if not (np.isfinite(opts["lr"]) and opts["lr"] > 0):
        raise ValueError(f"lr must be > 0, got {opts['lr']!r}")
    if not 0 < opts["thin"] <= 1:
        raise ValueError(f"thin must be a fraction in (0, 1] (the lowest relative dose trained on), got {opts['thin']!r}")


def _start(init) -> tuple[UNet, dict, dict]:
    """The network to start from, its config, and what the record says about it."""
    if isinstance(init, str) and init.lower() == "none":
        config = dict(DEFAULT_CONFIG)
        net = UNet(base=config["base"], depth=config["depth"], stem=config["stem"])
        return net, config, {"weights": "none (random, seed of the run)"}
    path = WEIGHTS if init is None else Path(init)
    net, config = load_model(path)
    return net, dict(config), {"weights": os.fspath(path), "sha256": sha256(path)}


def _evaluate(net, config, heldout: Heldout, state: dict, step: int, train_loss, t0: float):
    """Score the held-out halves; keep the best weights and count evaluations without improvement."""
    net.eval()
    value = heldout.score(net, config)
    state["log"].append({"step": step, "train_loss": train_loss, "heldout_nll": value,
                         "seconds": time.time() - t0})
    if value < state["best_loss"] - 1e-6:
        state["best_loss"], state["best_step"], state["stale"] = value, step, 0
        state["best"] = {k: v.detach().clone() for k, v in net.state_dict().items()}
    else:
        state["stale"] += 1
