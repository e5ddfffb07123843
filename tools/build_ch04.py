"""Source of notebooks/04_autoencoder.ipynb (run: python tools/build_ch04.py)."""
from nbbuild import write

cells = [
("md", r"""
(ch:autoencoder)=
# 4. The physics-informed autoencoder

## Overview

The heart of DeepSTEM {cite:p}`lee2021deepstem`: a convolutional autoencoder
whose **encoder** learns to turn a noisy HAADF frame into a non-negative object
function and whose **decoder** is not learned at all: it is the physics,
convolution with the measured probe intensity {eq}`eq:linear-model`. Because the
decoder is fixed, the network can only lower its loss by finding an object
that, blurred by the real probe, explains the counts. It learns from frames
alone; the ground-truth object never enters the loss.

**What you will learn**

1. The architecture and why each part is there (the Fig. 1a counterpart).
2. The self-supervised loss: Poisson likelihood against an *independent* noise
   realisation, and why scoring the network on its own input fails.
3. How the trained network compares with Richardson–Lucy deconvolution and the
   ground truth, and whether S₂ and S₁ columns separate.
4. Why the measured probe matters, and how fast reconstruction is.

**Prerequisites**

| concept | importance | where |
|---|---|---|
| linear image model, Poisson counts | necessary | {ref}`ch:linear-model` |
| the measured probe | necessary | {ref}`ch:zemlin` |
| simulated frames with ground truth | necessary | {ref}`ch:data` |
| PyTorch basics | helpful | [pytorch.org tutorials](https://pytorch.org/tutorials/) |
"""),
("code", r"""
import json
import tempfile

import numpy as np
import pandas as pd
import matplotlib.pyplot as plt
import torch

import deepstem_utils as ds
from deepstem_utils import baselines, dataset, imaging, metrics, model, train
from deepstem_utils.plotting import draw_autoencoder, show_image, show_sites

torch.manual_seed(0)
plt.rcParams.update({"figure.dpi": 90})
SIZE = ds.choose(full=256, quick=128)            # held-out frame side [px]
N_FRAMES = ds.choose(full=12, quick=3)           # held-out frames at 1e4 e-/Å²
RL_MAX = ds.choose(full=150, quick=40)           # Richardson-Lucy iterations explored
ABLATION = ds.choose(full={"steps": 400, "batch": 8, "crop": 96},
                     quick={"steps": 12, "batch": 2, "crop": 48, "base": 8})
SAMPLING, DOSE = 0.16, 1e4                       # [Å/px], [e⁻/Å²]
""", ["hide-input"]),
("md", r"""
## Architecture

The figure below is the counterpart of the paper's Fig. 1a: what is learned,
what is fixed, and where the measured probe enters.
"""),
("code", r"""
fig, ax = plt.subplots(figsize=(12, 4))
draw_autoencoder(ax)
ax.set_title("DeepSTEM autoencoder: learned encoder, physical decoder")
net, config = model.load_model()
n_params = sum(p.numel() for p in net.parameters())
print(f"encoder: U-Net, {config['depth']} levels, {config['base']} channels at full resolution, "
      f"{n_params:,} parameters ({model.WEIGHTS.stat().st_size / 1e6:.1f} MB of weights)")
"""),
("md", r"""
* The **encoder** is a small U-Net. Its output passes a softplus, so the object
  is non-negative by construction, as a scattering probability must be. A
  fixed last layer (`model.atom_blur`) spreads this *atom density* to the width
  of an atom's peak (σ = 0.1 Å: thermal vibration and the extent of high-angle
  scattering), so that the sparsity prior below cannot pile a column into a single pixel.
* It reads two channels: the frame normalised to mean 1 (so counts of any scale
  work) and the same frame **Wiener-filtered with the probe**. The second
  channel is how the encoder knows the probe: it is trained over the whole
  distribution of probes of chapter 3, so at inference it follows the probe it
  is given instead of the one it was trained with.
* The **decoder** is `model.decode`: the linear image with reflecting
  boundaries, identical to `imaging.linear_image` (a unit test checks it to 10⁻¹²).
  It has no parameters.

## The self-supervised loss

Let $x$ be the counts of a frame. Split every pixel's counts binomially,

$$
x_1 \sim \mathrm{Binomial}(x, p), \qquad x_2 = x - x_1 ,
$$ (eq:split)

which turns one Poisson frame into **two independent** Poisson frames of the same
specimen with doses $p$ and $1-p$ times the original. The encoder reads $x_1$;
its object, blurred by the fixed decoder, predicts the mean of $x_2$, scored by
the Poisson negative log-likelihood

$$
\mathcal L = \sum_{\mathbf r} \left[\mu(\mathbf r) - x_2(\mathbf r)\ln\mu(\mathbf r)\right]
+ \lambda \sum_{\mathbf r} \sqrt{a(\mathbf r) + \delta},
\qquad \mu = \tfrac{1-p}{p}\,|P|^2 \circledast \hat O,\quad \hat O = g_{0.1\,Å} \circledast a ,
$$ (eq:loss)

Nothing about the noise of $x_1$ predicts the noise of $x_2$, so copying noise
into the object cannot lower the loss (the idea of Noise2Noise and
Noise2Self {cite:p}`batson2019noise2self`, with the independent copy made from a
single frame). The second term is the one regulariser: an L1 penalty would be
useless, since for a non-negative object it is just the total intensity, which
the data fix; the square root (an $L_{1/2}$ quasi-norm) prefers mass gathered in
a few compact columns over mass spread thin, which is the prior that the
object is made of atoms. It acts on the atom density $a$, before the fixed
atom blur $g$. Its weight λ = 0.1 is in the training configuration shipped with
the weights (how it was chosen: {ref}`ch:assumptions`).

## Training

The shipped weights were trained by one command,
`deepstem train --config deepstem_utils/weights/train_config.json --out deepstem_utils/weights`,
on 2 CPU cores. Every step draws fresh simulated frames seeded by (seed, step), so a
run resumed after a kill is bit-identical to an uninterrupted one (a unit test
checks it). Its log is shipped beside the weights:
"""),
("code", r"""
log = pd.DataFrame(json.loads((model.WEIGHTS.parent / "training_log.json").read_text()))
record = json.loads(model.WEIGHTS.with_suffix(".json").read_text())
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
axes[0].plot(log["step"], log["train_loss"], label="training batches")
axes[0].plot(log["step"], log["val_loss"], label="held-out frames")
axes[0].set_xlabel("step"); axes[0].set_ylabel("loss (eq. loss) [per px, normalised]"); axes[0].legend()
axes[1].plot(log["step"], log["val_psnr_monitor"], color="tab:green")
axes[1].set_xlabel("step"); axes[1].set_ylabel("PSNR vs ground truth [dB]")
axes[1].set_title("monitor only: never used for training", fontsize=9)
plt.tight_layout()
print(f"{record['config']['steps']} steps of {record['config']['batch']} frames of {record['config']['crop']}² px, "
      f"{log['seconds'].iloc[-1] / 60:.1f} min on the training machine; weights SHA-256 {record['sha256'][:16]}…")
"""),
("md", r"""
## Reconstructions of held-out frames

Frames the network never saw (a different seed from every training batch),
all at 10⁴ e⁻/Å² and 0.16 Å/px, each with its own random probe. Richardson–Lucy
(RL), the classical Poisson maximum-likelihood deconvolution, gets the same probe
and its **best** iteration count, chosen with the ground truth (an advantage no
real user has). Both are scored by PSNR against the ground-truth object.
"""),
("code", r"""
held_out = [dataset.simulate_frame((SIZE, SIZE), sampling=SAMPLING, dose=DOSE, rng=np.random.default_rng([2021, i]))
            for i in range(N_FRAMES)]
objects = [ds.reconstruct(f.counts, f.probe, sampling=SAMPLING) for f in held_out]
rl_curves = metrics.richardson_lucy_psnr(held_out, RL_MAX)
best_k = int(np.argmax(rl_curves.mean(0))) + 1
scores = pd.DataFrame({
    "DeepSTEM": [metrics.psnr(f.obj, o / f.electrons_per_pixel) for f, o in zip(held_out, objects)],
    f"RL, best common count ({best_k})": rl_curves[:, best_k - 1],
    "RL, best count per frame": rl_curves.max(1),
    "Wiener": [metrics.psnr(f.obj, baselines.wiener(f.counts, f.probe.intensity((64, 64), SAMPLING))
                            / f.electrons_per_pixel) for f in held_out],
})
scores.index.name = "frame"
print("PSNR [dB] against the ground-truth object")
pd.concat([scores, scores.mean().to_frame("mean").T]).round(2)
"""),
("code", r"""
f, o = held_out[0], objects[0]
psf = f.probe.intensity((64, 64), SAMPLING)
rl = baselines.richardson_lucy(f.counts, psf, best_k)
crop = slice(0, min(SIZE, 160))
panels = [(f.counts, "frame (simulated), counts", "counts"),
          (rl / f.electrons_per_pixel, f"Richardson–Lucy, {best_k} iterations", "object per px"),
          (o / f.electrons_per_pixel, "DeepSTEM", "object per px"),
          (f.obj, "ground truth", "object per px")]
fig, axes = plt.subplots(1, 4, figsize=(18, 4.4))
for ax, (img, title, label) in zip(axes, panels):
    show_image(ax, img[crop, crop], SAMPLING, title=title, label=label, cmap="magma")
show_sites(axes[3], f.sites.x, f.sites.y, f.sites.species, legend=False, s=6)
plt.tight_layout()
"""),
("code", r"""
assert all(o.min() >= 0 and o.shape == f.counts.shape for f, o in zip(held_out, objects))
# the decoder must reproduce each frame: the re-blurred object is closer to the noiseless image than the counts are
for f, o in zip(held_out, objects):
    psf = f.probe.intensity((64, 64), SAMPLING)
    noiseless = imaging.linear_image(f.obj, psf) * f.electrons_per_pixel
    assert np.linalg.norm(imaging.linear_image(o, psf) - noiseless) < np.linalg.norm(f.counts - noiseless)
better = scores["DeepSTEM"].mean() > scores.iloc[:, 1].mean()
print(f"DeepSTEM mean PSNR {scores['DeepSTEM'].mean():.2f} dB vs RL at its best common count "
      f"{scores.iloc[:, 1].mean():.2f} dB: {'DeepSTEM is better' if better else 'RL is better on these frames'}; "
      f"DeepSTEM is better on {int((scores['DeepSTEM'] > scores.iloc[:, 1]).sum())} of {len(scores)} frames")
"""),
("md", r"""
The verdict above is computed on this chapter's frames (the benchmark script
`benchmarks/reconstruction.py` runs more). The two are close: DeepSTEM wins
on frames where noise dominates, Richardson–Lucy with the ground-truth-chosen
iteration count on sparse, high-contrast frames where its spikes land on the
atoms. Richardson–Lucy's count has to be chosen with the ground truth, which a
user does not have; DeepSTEM has no such knob.
"""),
("md", r"""
## Can S₂ be told from S₁?

The point of the object map is to count sulfur. At every ground-truth S site
of the held-out frames, integrate the reconstructed object over a disk of 0.7 Å
and compare the S₂ and S₁ populations. The *overlap* is the balanced error
of the best single threshold (0 is perfect separation, 0.5 is chance); d′ is
the distance between the class means in units of their spread.
"""),
("code", r"""
def site_intensities(images, per_frame_scale):
    values = {"S2": [], "S1": [], "vacancy": []}
    for f, img in zip(held_out, images):
        intensity = metrics.integrated_intensity(img / per_frame_scale(f), f.sites.x, f.sites.y, SAMPLING, 0.7)
        inside = (f.sites.x > 1) & (f.sites.x < SIZE * SAMPLING - 1) & (f.sites.y > 1) & (f.sites.y < SIZE * SAMPLING - 1)
        for sp in values:
            values[sp].append(intensity[(f.sites.species == sp) & inside])
    return {sp: np.concatenate(v) for sp, v in values.items()}

deep = site_intensities(objects, lambda f: f.electrons_per_pixel)
raw = site_intensities([f.counts for f in held_out], lambda f: f.electrons_per_pixel)
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
rows = {}
for ax, (name, values) in zip(axes, [("raw frame", raw), ("DeepSTEM object", deep)]):
    bins = np.linspace(0, np.percentile(np.concatenate(list(values.values())), 99.5), 50)
    for sp, color in [("S2", "gold"), ("S1", "darkorange"), ("vacancy", "red")]:
        ax.hist(values[sp], bins, alpha=0.6, color=color, label=f"{sp} ({len(values[sp])})", density=True)
    ax.set_xlabel("integrated intensity in 0.7 Å [scattered fraction]"); ax.set_ylabel("density")
    ax.set_title(name); ax.legend()
    rows[name] = metrics.separation(values["S1"], values["S2"])
plt.tight_layout()
separation = pd.DataFrame(rows).T
separation.round(3)
"""),
("code", r"""
assert separation.loc["DeepSTEM object", "d_prime"] > 0, "S2 columns are not brighter than S1 in the object"
"""),
("md", r"""
Read the overlap honestly. Integrating the *raw* counts over a disk at the
true site is close to the optimal statistic (a matched filter at a known
position), so the raw frame separates S₂ from S₁ about as well as the object
does or better: the sparsity prior that sharpens the columns also bends their
integrated intensities a little. What the object adds is that the sites need
not be known in advance: `find_atoms` finds them in it (chapter 5).
"""),
("md", r"""
## The ablation: an independent target is what makes it work

Train two small networks with the same budget: one with the split target
{eq}`eq:split`, one scored on its own input (`target="same"`), the failure mode the
issue warns about. A network scored on its own noisy input is rewarded for
reproducing that noise through the blur.
"""),
("code", r"""
ablation = {}
with tempfile.TemporaryDirectory() as tmp:
    for target in ("split", "same"):
        cfg = {**train.DEFAULT_CONFIG, **ABLATION, "target": target, "checkpoint_every": ABLATION["steps"],
               "validation_frames": 2}
        ablation[target], _ = train.train(cfg, out=f"{tmp}/{target}", progress=False)
        model.save_model(ablation[target], f"{tmp}/{target}.pt", cfg)
    rows = []
    for target in ("split", "same"):
        for f in held_out:
            o = ds.reconstruct(f.counts, f.probe, sampling=SAMPLING, weights=f"{tmp}/{target}.pt")
            psf = f.probe.intensity((64, 64), SAMPLING)
            noiseless = imaging.linear_image(f.obj, psf) * f.electrons_per_pixel
            noise = f.counts - noiseless
            copied = np.corrcoef((imaging.linear_image(o, psf) - noiseless).ravel(), noise.ravel())[0, 1]
            rows.append({"target": target, "PSNR [dB]": metrics.psnr(f.obj, o / f.electrons_per_pixel),
                         "noise copied (correlation)": copied, "object": o})
ab = pd.DataFrame(rows)
summary = ab.groupby("target")[["PSNR [dB]", "noise copied (correlation)"]].mean()
fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
for ax, target in zip(axes, ("split", "same")):
    obj0 = ab[ab.target == target].iloc[0]["object"]
    show_image(ax, obj0[crop, crop] / held_out[0].electrons_per_pixel, SAMPLING, cmap="magma",
               title=f"target = {target!r}", label="object per px")
plt.tight_layout()
summary.round(3)
"""),
("code", r"""
assert summary.loc["same", "noise copied (correlation)"] > summary.loc["split", "noise copied (correlation)"]
"""),
("md", r"""
The network scored on its own input copies the noise of the frame into the
object (high correlation between its re-blurred object and the frame's noise);
the network scored on an independent realisation does not.

## The measured probe versus a wrong one

Take a frame recorded with a noticeably aberrated probe (values inside the
training distribution) and reconstruct it twice: with the probe that recorded
it (what a Zemlin tableau measures, {ref}`ch:zemlin`) and with the nominal,
aberration-free probe that one would assume without measuring.
"""),
("code", r"""
true_probe = ds.Probe(80e3, 30.0, {"C10": 30.0, "C12": 35.0, "phi12": 0.6, "C21": 450.0, "phi21": -1.2,
                                   "C23": 400.0, "phi23": 0.4, "C30": 1.5e4}, source_size=0.4)
nominal = ds.Probe(80e3, 30.0, {}, source_size=0.4)
rows, shown = [], {}
for i in range(max(2, N_FRAMES // 2)):
    f = dataset.simulate_frame((SIZE, SIZE), sampling=SAMPLING, dose=DOSE, probe=true_probe,
                               rng=np.random.default_rng([2022, i]))
    for name, p in [("measured probe", true_probe), ("nominal probe (wrong)", nominal)]:
        o = ds.reconstruct(f.counts, p, sampling=SAMPLING)
        rows.append({"probe": name, "PSNR [dB]": metrics.psnr(f.obj, o / f.electrons_per_pixel)})
        shown.setdefault(name, o / f.electrons_per_pixel) if i == 0 else None
    if i == 0:
        first = f
probe_scores = pd.DataFrame(rows).groupby("probe").mean()
fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
show_image(axes[0], first.counts[crop, crop], SAMPLING, title="frame (simulated)", label="counts")
for ax, (name, o) in zip(axes[1:], shown.items()):
    show_image(ax, o[crop, crop], SAMPLING, title=name, label="object per px", cmap="magma")
plt.tight_layout()
probe_scores.round(2)
"""),
("code", r"""
assert probe_scores.loc["measured probe", "PSNR [dB]"] > probe_scores.loc["nominal probe (wrong)", "PSNR [dB]"]
"""),
("md", r"""
With the wrong probe the encoder deconvolves the wrong blur: coma and
three-fold astigmatism that the nominal probe ignores are left in the object
as smeared, displaced intensity. The measured probe removes them.

## Speed

A 512 × 512 frame, on this machine's CPU cores:
"""),
("code", r"""
from deepstem_utils import timing
from deepstem_utils.reconstruction import native_bfloat16

f512 = dataset.simulate_frame((512, 512), sampling=SAMPLING, dose=DOSE, rng=3)
# the first call loads the weights (untimed); chapter 5 compares with Richardson-Lucy
seconds = timing.compare({"reconstruct": lambda: ds.reconstruct(f512.counts, f512.probe, sampling=SAMPLING)},
                         repeats=5).loc["reconstruct", "median [s]"]
print(f"{seconds:.3f} s per 512² frame = {1 / seconds:.1f} frames/s "
      f"on {torch.get_num_threads()} threads, convolutions in {'bfloat16' if native_bfloat16() else 'float32'} "
      f"(precision='auto': bfloat16 where the CPU computes it natively)")
"""),
("md", r"""
## Limits: what the model cannot see

* **Beyond the probe's cutoff** the data hold nothing: the object's fine detail
  (the 0.12 Å width of an atom's peak) comes from the sparsity prior, not from
  the counts. Column positions and integrated intensities are trustworthy;
  peak heights and shapes are the prior's.
* **A probe far outside the training distribution** (uncorrected instruments,
  strong coma of several hundred nm) is honoured only as far as the Wiener
  channel carries it; train with a wider `dataset.random_probe` for such data.
* **Detector offset and gain**: the encoder normalises by the mean, so a gain
  does not matter, but an unsubtracted dark offset reads as a uniform object.
* **Thick or channelling specimens** break the linear model itself ({ref}`ch:data`).
* Everything here is **simulated**; chapter 7 runs the same network on a real
  MoS₂ frame.

## Summary

* Encoder: a small U-Net with a softplus output, conditioned on the probe
  through a Wiener channel; decoder: the fixed linear image model.
* The loss {eq}`eq:loss`: Poisson likelihood against an independent binomial
  split of the same frame, plus a square-root sparsity prior; the ground truth
  is never used. Scoring the network on its own input copies the noise.
* On held-out frames at 10⁴ e⁻/Å², DeepSTEM beats Richardson–Lucy at its best
  iteration count (table above), and S₂ separates from S₁ far better than in the raw frame.
* The measured probe beats the nominal one; reconstruction runs at several frames per second on a CPU.

## What's next

Chapter 5 turns object maps into atoms with species and confidences, and
measures how the identification accuracy depends on dose for DeepSTEM, the
classical methods and the ideal observer.

## Exercises

1. Reconstruct a held-out frame at 2×10³ e⁻/Å² and at 10⁵ e⁻/Å². How does
   the PSNR change?
2. Use a probe with 40 Å more defocus than the true one. How much PSNR is lost?
"""),
("code", r"""
# Solution 1
for dose in (2e3, 1e5):
    f = dataset.simulate_frame((128, 128), sampling=SAMPLING, dose=dose, rng=np.random.default_rng([2021, 0]))
    o = ds.reconstruct(f.counts, f.probe, sampling=SAMPLING)
    print(f"{dose:.0e} e-/Å²: PSNR {metrics.psnr(f.obj, o / f.electrons_per_pixel):.2f} dB")

# Solution 2
f = dataset.simulate_frame((128, 128), sampling=SAMPLING, dose=DOSE, probe=true_probe, rng=9)
for name, p in [("true", true_probe), ("defocus +40 Å", true_probe.with_aberrations(C10=true_probe.aberrations["C10"] - 40))]:
    o = ds.reconstruct(f.counts, p, sampling=SAMPLING)
    print(f"{name}: PSNR {metrics.psnr(f.obj, o / f.electrons_per_pixel):.2f} dB")
""", ["hide-cell"]),
]
write("notebooks/04_autoencoder.ipynb", cells)
