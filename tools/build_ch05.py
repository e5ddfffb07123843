"""Source of notebooks/05_dose_evaluation.ipynb (run: python tools/build_ch05.py)."""
from nbbuild import write

cells = [
("md", r"""
(ch:dose)=
# 5. Atoms, species and the dose they need

## Overview

The claim of DeepSTEM {cite:p}`lee2021deepstem` is that sulfur can be told
apart next to molybdenum at a lower dose than before. This chapter turns the
claim into numbers: it finds every column in an object map, labels it Mo, S₂,
S₁, empty S site or Mo adatom with a confidence, scores the labels against the
ground truth of simulated frames, and repeats this across dose for DeepSTEM,
the classical alternatives and the **ideal observer**, the physical limit.

**What you will learn**

1. How `find_atoms` goes from an object map to sites with species and confidences.
2. Why the species are best *counted* in the frame itself, at the columns the object map locates.
3. What the physical limit is: the ideal observer and the Cramér–Rao bound.
4. How S-site accuracy and Mo position error depend on dose for each method,
   and what dose each method needs.

**Prerequisites**

| concept | importance | where |
|---|---|---|
| the object function and the linear model | necessary | {ref}`ch:linear-model` |
| simulated frames with ground truth | necessary | {ref}`ch:data` |
| `reconstruct()` | necessary | {ref}`ch:autoencoder` |
"""),
("code", r"""
import time

import numpy as np
import pandas as pd
import matplotlib.pyplot as plt

import deepstem_utils as ds
from deepstem_utils import baselines, dataset, evaluation, limits, metrics, model
from deepstem_utils.plotting import show_image, show_sites

plt.rcParams.update({"figure.dpi": 90})
DOSES = ds.choose(full=np.geomspace(1e3, 1e5, 9), quick=np.array([2e3, 1e4, 5e4]))   # [e⁻/Å²], 1e4 included
N_FRAMES = ds.choose(full=4, quick=1)          # frames per dose
SIZE = ds.choose(full=224, quick=112)          # frame side [px]
RL_MAX = ds.choose(full=100, quick=30)         # Richardson-Lucy iterations explored
SAMPLING = 0.16                                # [Å/px]
PROBE = ds.Probe(80e3, 30.0, {"C10": 10.0, "C12": 15.0, "phi12": 0.3, "C21": 150.0, "C30": -5e3},
                 source_size=0.5)              # a "measured" probe of a tuned 80 kV corrector (assumption)
""", ['hide-input']),
("md", r"""
## From an object map to atoms

`find_atoms` works in three steps (see its docstring for details):

1. **Columns**: local maxima of the lightly smoothed object
   (`skimage.feature.peak_local_max`), refined to sub-pixel precision, each with
   its integrated intensity in a 0.7 Å disk.
2. **Lattice**: bright columns with at least two bright neighbours at the
   lattice spacing are lattice Mo; bright columns without are **Mo adatoms**.
   Around each lattice Mo the three S sites lie along one of two triads of
   directions; the triad holding intensity is chosen locally, so rotation,
   strain, edges and mirror-twin boundaries (where the triad flips) do not break it.
   The other triad, the hollow sites, is empty in MoS₂: it measures what "no atom"
   looks like in this very image.
3. **Species**: S-site intensities are a mixture of three Gaussians for 0, 1
   and 2 S atoms, with means $b$, $b + 2\alpha u$ and $b + 2u$ ($b$ from the hollow
   sites, $u$ fitted within the band Z-contrast allows) and variances that grow
   with the number of atoms, fitted by expectation–maximisation. For an image
   linear in the atoms $\alpha = 1/2$; a regularised reconstruction need not be
   linear (a prior learned mostly from full S₂ columns lifts a lone S towards
   S₂), so $\alpha$ is fitted too, within 0.3–0.8, when enough sites hold one
   atom. The class fractions are fitted with the levels, but a site's label
   weighs the classes equally: it is the class under which the site's own
   intensity is most likely, the rule of the ideal observer below, and its
   normalised likelihood is the **confidence**. (With the fitted fractions, a
   frame that holds a handful of S₁ sites fits an S₁ fraction near zero and reads
   them all as S₂ or empty; `class_prior="fitted"` gives that behaviour.) No fixed
   thresholds.

A frame with only a few S₁ sites cannot fit $\alpha$, so the fit starts from
the level where the network is known to put one S atom: measured once on
simulated frames with many S₁ sites (`tools/calibrate_weights.py`,
`evaluation.measure_one_atom_fraction`) and stored beside the weights. It is a
property of the network, like a detector's gain: the shipped DeepSTEM weights
put one S atom at the fraction printed below of the way from an empty site to
S₂, where a linear image puts it at one half. `reconstruct()` writes the value
into the metadata of its Signal2D result and `find_atoms` reads it from there;
for a plain array it is passed as `one_atom_fraction`.
"""),
("code", r"""
frame = dataset.simulate_frame((256, 256), sampling=SAMPLING, dose=1e4, probe=PROBE, rng=np.random.default_rng(42),
                               s_vacancy=0.08, s_divacancy=0.03, adatoms=0.006)
obj = ds.reconstruct(frame.counts, PROBE, sampling=SAMPLING)
level = evaluation.one_atom_fraction("deepstem")   # stored with the shipped weights
calibration = model.weights_calibration()
print(f"the shipped network puts one S atom at {level:.2f} of the way from an empty S site to S₂ "
      f"(a linear image: 0.50); between frames this level varies by {calibration['iqr']:.2f} (interquartile range); "
      f"the supervised U-Net's level: {evaluation.one_atom_fraction('supervised_unet'):.2f}")
found = ds.find_atoms(obj, sampling=SAMPLING, one_atom_fraction=level)
extent = (256 * SAMPLING, 256 * SAMPLING)
score = metrics.score_sites(found, frame.sites, extent)

fig, axes = plt.subplots(1, 2, figsize=(14, 6))
show_image(axes[0], obj / frame.electrons_per_pixel, SAMPLING, title="DeepSTEM object, 10⁴ e⁻/Å² (simulated)",
           cmap="gray", label="object per px")
show_sites(axes[0], found.x, found.y, found.species)
sc = axes[1].scatter(found.x, found.y, c=found.confidence, cmap="viridis", vmin=0.5, vmax=1, s=12)
axes[1].set_xlim(0, extent[0]); axes[1].set_ylim(extent[1], 0); axes[1].set_aspect("equal")
axes[1].set_xlabel("x [Å]"); axes[1].set_ylabel("y [Å]"); axes[1].set_title("confidence of each site")
plt.colorbar(sc, ax=axes[1], fraction=0.046, label="confidence (posterior probability)")
plt.tight_layout()
print(f"balanced S-site accuracy {score['s_site_accuracy']:.3f}, Mo position RMSE {score['mo_rmse']:.1f} pm")
score["confusion"]
"""),
("md", r"""
Rows are the truth, columns what `find_atoms` reported ("missed": no site
reported within 0.6 Å). Per species:
"""),
("code", r"""
score["per_species"].round(3)
"""),
("code", r"""
fig, ax = plt.subplots(figsize=(8, 3.5))
bins = np.linspace(found.intensity.min(), np.percentile(found.intensity, 99.5), 80)
for sp, color in [("vacancy", "red"), ("S1", "darkorange"), ("S2", "gold"), ("Mo", "tab:blue"), ("Mo_adatom", "cyan")]:
    ax.hist(found.intensity[found.species == sp], bins, color=color, alpha=0.7, label=sp)
ax.set_xlabel("integrated object intensity in 0.7 Å [counts]"); ax.set_ylabel("sites"); ax.legend()
ax.set_title("what the mixture model separates");
"""),
("code", r"""
assert score["per_species"].loc["Mo", "F1"] > 0.9
assert found.confidence.between(0, 1).all()
"""),
("md", r"""
## Locate with the object, count with the counts

The histogram above integrates the *object* over a disk around each column. For
a network's object that measure is not linear in the atoms (the lift of a lone
S printed above), and for any method a disk also collects the tails of the
neighbouring columns. DeepSTEM's own decoder says how to do better: the frame
is the object convolved with the probe, so once the object map has *located*
the columns, their scattering can be *counted* in the frame by fitting that
same linear model at those positions,

$$
\lambda(\mathbf r) = b + \sum_i a_i\, |P|^2(\mathbf r - \mathbf r_i),
$$ (eq:column-fit)

with $\lambda$ the expected counts, $b$ a constant background and $a_i$ the
counts column $i$ scatters (`quantify.column_intensities`: the probe intensity
placed at every located Mo column, S site and hollow site, fitted jointly by
least squares weighted with the Poisson variance). The $a_i$ are linear in the
number of atoms whatever produced the map, so one S atom lies half-way between
an empty site and S₂ again, and overlapping columns are separated rather than
summed. Before the intensities are measured, the positions of the Mo columns
and S sites are themselves refined against the counts by the same model (a
damped Gauss–Newton step per column for $a_i$ and $\mathbf r_i$,
`quantify.refine_positions`): the object map gives the start, the counts pin each
column as closely as the dose allows (the Cramér–Rao bound below).
`find_atoms(obj, counts=frame, psf=probe_intensity)` does both; the
mixture model is unchanged. In the sweep below the methods marked **+fit**
locate the columns in their object (DeepSTEM's, or the Gaussian-filtered
frame) and count them in the frame. This is the ideal observer's model
{eq}`eq:ideal-observer` with positions that are *found*, not given.

"""),
("code", r"""
psf = PROBE.intensity((model.psf_grid(SAMPLING),) * 2, SAMPLING)
counted = ds.find_atoms(obj, sampling=SAMPLING, counts=frame.counts, psf=psf)
counted_score = metrics.score_sites(counted, frame.sites, extent)
fig, axes = plt.subplots(1, 2, figsize=(14, 3.5))
for ax, table, title, xlabel in [
        (axes[0], found, "integrated DeepSTEM object", "object intensity in 0.7 Å [counts]"),
        (axes[1], counted, "fitted to the counts, eq. (column-fit)", "column intensity $a_i$ [counts]")]:
    truth_species = np.full(len(table), "missed", dtype=object)
    i, j = metrics.match_sites(table, np.asarray(frame.sites.x), np.asarray(frame.sites.y), 0.6)
    truth_species[i] = np.asarray(frame.sites.species).astype(str)[j]
    s_sites = table.species.isin(["S2", "S1", "vacancy"]).to_numpy()
    values = table.intensity.to_numpy() / np.median(table.intensity[table.species == "Mo"])
    bins = np.linspace(-0.1, 0.6, 60)
    for sp, color in [("vacancy", "red"), ("S1", "darkorange"), ("S2", "gold")]:
        ax.hist(values[s_sites & (truth_species == sp)], bins, color=color, alpha=0.7, label=f"true {sp}")
    ax.set_xlabel(xlabel.replace("[counts]", "/ median Mo")); ax.set_ylabel("S sites"); ax.set_title(title); ax.legend()
plt.tight_layout()
plt.show()
print(f"balanced S-site accuracy on this frame: {score['s_site_accuracy']:.3f} from the integrated object, "
      f"{counted_score['s_site_accuracy']:.3f} fitted to the counts")

"""),
("code", r"""
assert counted.confidence.between(0, 1).all() and len(counted) == len(found)   # same sites, other intensities

"""),
("md", r"""
## The physical limit

No method can beat an observer who knows everything except the quantity being
measured. The **ideal observer** knows every site's position, the probe, the
dose and the exact forward model; for each S site it compares the Poisson
likelihood of the counts under 0, 1 and 2 S atoms,

$$
\hat k = \arg\max_{k\in\{0,1,2\}} \sum_{\mathbf r}
\left[x(\mathbf r)\ln\lambda_k(\mathbf r) - \lambda_k(\mathbf r)\right],
$$ (eq:ideal-observer)

with $\lambda_k$ the expected counts with $k$ atoms on that site and everything
else true. For positions, the **Cramér–Rao bound** is the smallest RMS error
any unbiased estimator can have: with the Fisher information of the counts
$F_{ab} = \sum_{\mathbf r} \partial_a\lambda\,\partial_b\lambda/\lambda$ for the
column's $(x, y)$, the bound is $\sqrt{\operatorname{tr}F^{-1}}$. Both are computed
here on the same frames (`deepstem_utils.limits`), not quoted.

## The dose sweep

Every method gets the same frames and the same probe, and every object
estimate goes through the same `find_atoms`:

* **raw**: the frame itself;
* **Gaussian**: the frame smoothed with σ = 0.25 Å;
* **Wiener** deconvolution with the probe;
* **Richardson–Lucy** with the probe, at its best iteration count per frame
  (chosen with the ground truth: generous to the baseline);
* **BM3D**, the standard non-local denoiser, on the Anscombe-transformed counts
  (`baselines.bm3d`, no deconvolution);
* **supervised U-Net**: DeepSTEM's own encoder, trained on the same simulated
  frames (the same seeds, the same steps) but scored against their ground-truth
  object by the mean squared error (`deepstem train` with
  `deepstem_utils/weights/supervised_config.json`): the AtomAI-style alternative
  a user would pick when the simulations are trusted. It needs ground truth, so
  unlike DeepSTEM it can never learn from a microscope's own frames;
* **DeepSTEM**: `reconstruct()` with the shipped weights;
* **gaussian+fit** and **deepstem+fit**: the columns located in the Gaussian-filtered
  frame or in DeepSTEM's object, their intensities fitted to the counts
  {eq}`eq:column-fit`;
* the **ideal observer** and the Cramér–Rao bound.

The same specimen is imaged at every dose, so the doses differ only in the counts.
The specimens hold more S vacancies than a good crystal (12 % of S sites
half-empty, 4 % empty; an assumption of this sweep, not of the data the
networks learned from) so that every class has enough sites in every frame:
with only one or two S₁ sites in a frame, one site would swing its balanced
accuracy by a sixth.
The balanced S-site accuracy of the sweep is taken over **every** true S site: a
site that a method does not find counts as misidentified. (Scored only on the
sites it finds, a method that misses the hard ones at low dose would look better
than the ideal observer, which labels every site.)
"""),
("code", r"""
t0 = time.time()
# a method that finds no MoS₂ in a frame at a low dose has every site of that frame counted as missed
sweep = evaluation.dose_sweep(DOSES, N_FRAMES, shape=(SIZE, SIZE), probe=PROBE, sampling=SAMPLING, rl_max=RL_MAX,
                              progress=False, s_vacancy=0.12, s_divacancy=0.04)
print(f"{len(sweep)} scores in {time.time() - t0:.0f} s")
summary = sweep.groupby(["method", "dose"], sort=False)[["s_accuracy", "mo_rmse"]].agg(["mean", "sem"])
colors = {"raw": "0.6", "gaussian": "tab:purple", "wiener": "tab:brown", "richardson_lucy": "tab:orange",
          "bm3d": "tab:green", "supervised_unet": "tab:red", "deepstem": "tab:blue", "gaussian+fit": "plum", "deepstem+fit": "navy",
          "ideal observer": "k"}
fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
for method, group in sweep.groupby("method", sort=False):
    g = group.groupby("dose")
    style = dict(color=colors[method], marker="o", ms=4, capsize=2, label=method,
                 ls="--" if method == "ideal observer" else ":" if method.endswith("+fit") else "-")
    axes[0].errorbar(g.s_accuracy.mean().index, g.s_accuracy.mean(), g.s_accuracy.sem().fillna(0), **style)
    label = "Cramér–Rao bound" if method == "ideal observer" else method
    axes[1].errorbar(g.mo_rmse.mean().index, g.mo_rmse.mean(), g.mo_rmse.sem().fillna(0), **{**style, "label": label})
axes[0].axhline(0.9, color="k", lw=0.5)
axes[0].set_xscale("log"); axes[0].set_xlabel("dose [e⁻/Å²]"); axes[0].set_ylabel("balanced S-site accuracy")
axes[1].set_xscale("log"); axes[1].set_yscale("log"); axes[1].set_xlabel("dose [e⁻/Å²]")
axes[1].set_ylabel("Mo position RMSE [pm]")
axes[0].legend(fontsize="small"); axes[1].legend(fontsize="small")
plt.tight_layout()
"""),
("md", r"""
Error bars are the standard error over frames. The dose each method needs for
a balanced S-site accuracy of 0.9 (interpolated in log dose; NaN: not reached
in the range swept):
"""),
("code", r"""
needed = evaluation.dose_for_accuracy(sweep, 0.9)
classical = needed[["raw", "gaussian", "wiener", "richardson_lucy", "bm3d", "gaussian+fit"]]
best_classical = classical.min()
at_1e4 = sweep[np.isclose(sweep.dose, DOSES[np.argmin(abs(np.log(DOSES / 1e4)))])]


def mean_at_1e4(method, column):
    return at_1e4[at_1e4.method == method][column].mean()


rows = []
for method in ["deepstem", "deepstem+fit"]:
    rows += [
        (method, "dose for 0.9 [e⁻/Å²]", needed[method], ""),
        (method, "/ best classical", needed[method] / best_classical, "≤ 0.25"),
        (method, "/ ideal observer", needed[method] / needed["ideal observer"], "≤ 2"),
        (method, f"S-site accuracy at {at_1e4.dose.iloc[0]:.2g} e⁻/Å²", mean_at_1e4(method, "s_accuracy"), "≥ 0.95"),
        (method, "Mo RMSE / Cramér–Rao", mean_at_1e4(method, "mo_rmse") / mean_at_1e4("ideal observer", "mo_rmse"),
         "≤ 1.5"),
    ]
rows += [("best classical", f"dose for 0.9 [e⁻/Å²] ({classical.idxmin()})", best_classical, ""),
         ("supervised U-Net", "dose for 0.9 [e⁻/Å²]", needed["supervised_unet"], ""),
         ("ideal observer", "dose for 0.9 [e⁻/Å²]", needed["ideal observer"], ""),
         ("any method", "ideal observer / (best classical / 4)", needed["ideal observer"] / (best_classical / 4),
          "< 1 for the 0.25 target to be reachable at all")]
checks = pd.DataFrame(rows, columns=["method", "figure", "value", "target (issue)"])
display(needed.to_frame().round(0))
checks.round(3)

"""),
("code", r"""
ratio_fit = needed["deepstem+fit"] / best_classical
ratio_obj = needed["deepstem"] / best_classical
print(f"DeepSTEM needs {ratio_obj:.1f}× the dose of the best classical method ({classical.idxmin()}) with its object "
      f"integrated and {ratio_fit:.2f}× with the counts fitted; the ideal observer needs "
      f"{needed['ideal observer'] / best_classical:.2f}× (NaN: 0.9 not reached in the range swept).")
target = best_classical / 4
print(f"The ≤ 1/4 target asks for {target:.0f} e⁻/Å²; the ideal observer needs {needed['ideal observer']:.0f} e⁻/Å²: "
      + ("below the physical limit, unreachable by any method on these frames." if target < needed["ideal observer"]
         else "above the physical limit, so reachable in principle."))

"""),
("code", r"""
# physics that must hold whatever the method: the ideal observer bounds every method's S-site accuracy. Both are
# scored on every true S site (a site a method does not find counts as misidentified), frame by frame; a method can
# still beat it on a few frames by chance, so the bound is tested on the mean paired difference within 2 standard
# errors (+0.03 for the quick mode's single frame)
acc = sweep.groupby(["method", "dose"]).s_accuracy.mean().unstack(0)
print("mean balanced S-site accuracy per dose:")
print(acc.round(3).to_string())
paired = sweep.pivot_table(index=["dose", "frame"], columns="method", values="s_accuracy")
excess = paired.drop(columns="ideal observer").sub(paired["ideal observer"], axis=0)   # method minus ideal observer
mean, se = excess.groupby(level="dose").mean(), excess.groupby(level="dose").sem().fillna(0.0)
assert (mean <= 2 * se + 0.03).all().all(), (mean - 2 * se).round(3)
"""),
("md", r"""
Read the table against the targets of the issue: where a figure falls short
the table says so; nothing here is tuned to pass. Scored on every true S site,
a method's accuracy stays below 1 even at the highest dose when `find_atoms`
never finds some sites (among them, by design, an empty S site held by a single
Mo at an edge, which is more likely beyond the edge than a vacancy): each such
site counts as misidentified, and the ideal observer, given every position, does
not pay that price.

What the sweep says, in three steps:

1. **Integrating the network's object is the wrong way to count.** With the
   object integrated over a disk, both networks need far more dose than the
   classical methods to tell S₂ from S₁. A network's object is not linear in the
   atoms: both lift a lone S towards S₂ (the level printed in the first section),
   by an amount that varies from frame to frame (the spread printed there), and a
   prior learned from frames where most S sites hold two atoms returns S₂-like
   columns when unsure: exactly the confusion the balanced accuracy punishes.
2. **Locate with the network, count with the physics.** The same DeepSTEM objects,
   with the column intensities fitted to the counts {eq}`eq:column-fit`, bring
   DeepSTEM to the level of the classical methods: the counts hold the information
   about the number of atoms, and the linear model reads it without the network's
   bias. For the Gaussian-filtered frame, whose intensities are already linear in
   the atoms, fitting the counts changes little (the curves above). DeepSTEM's
   sharper map helps where the lattice is *located*: its Mo positions are more
   precise than those of the raw or filtered frames (right panel).
3. **The counts already hold nearly the answer.** The classical methods read
   the same counts, and with the same labelling rule as the ideal observer (each
   site by its own likelihood) they come within a small factor of the physical
   limit: the ratios printed above say how DeepSTEM + fit compares with the best
   of them. Gaussian + fit quantifies exactly as DeepSTEM + fit does (positions
   refined and intensities fitted in the counts); the two differ only in where
   the columns are first found. The ≤ 1/4 target asks for less than the ideal
   observer itself needs whenever the last row of the table is above 1: then no
   method can reach it on these frames. What remains between DeepSTEM + fit and
   the ideal observer is finding the lattice at the lowest doses (missed sites
   count as wrong), the mixture model learning its levels from one frame's sites
   (the ideal observer is given them), and the smooth contamination that a
   constant background does not model.

The supervised U-Net is the same network as DeepSTEM's encoder, fed the same
frames; only the loss differs. Where it does better than DeepSTEM with the
object integrated, the difference measures what the ground truth is worth that
the self-supervised loss cannot see. A microscopist who has no ground truth for
their own specimen (and at the microscope, nobody has) can only train the
self-supervised way on their own frames; with the counts fit, the
self-supervised network is enough.

"""),
("code", r"""
from deepstem_utils import insitu
from deepstem_utils.imaging import Acquisition, dose_from_current
from deepstem_utils.plotting import dose_dwell_chart

series = Acquisition(dose=insitu.SERIES_DOSE, sampling=insitu.SERIES_SAMPLING, dwell_time=insitu.SERIES_DWELL_TIME)
current = series.probe_current                              # [pA]
per_dwell = dose_from_current(current, 1.0, 1.0)            # [e⁻/Å²] per [µs/Å²] at this current
points = [{"label": f"chapter 6 series (simulated): {series.dose:.0f} e⁻/Å², {current:.0f} pA", "dose": series.dose,
           "dwell": series.dwell_time_per_area, "source": "computed"}]
best_name = classical.idxmin() if classical.notna().any() else "raw"
for method in ["deepstem", "deepstem+fit", "supervised_unet", best_name, "ideal observer"]:
    points.append({"label": f"{method}: dose for 0.9 S accuracy (this chapter)", "dose": needed[method],
                   "dwell": needed[method] / per_dwell, "source": "computed"})
literature = pd.read_csv("../data/literature_settings.csv")
quoted = literature[literature.status == "quoted"]
points += [{"label": f"{r.work} (quoted)", "dose": r.dose_e_per_A2, "dwell": r.dwell_us_per_A2, "source": "quoted"}
           for r in quoted.itertuples()]
points = pd.DataFrame(points)
fig, ax = plt.subplots(figsize=(7.5, 5))
dose_dwell_chart(ax, points)
ax.set_title("dose and dwell time per area (computed points; literature: see table)")
plt.show()
display(points.round(1))
literature[["work", "dose_e_per_A2", "dwell_us_per_A2", "status"]]
"""),
("md", r"""
A method that never reaches 0.9 in the dose range swept has no point on the
chart (its dose is NaN in the table above).

## Speed

DeepSTEM against Richardson–Lucy with 30 iterations, on the same 512 × 512
frame, in the same run. `reconstruct()` runs the U-Net's convolutions in
bfloat16 where the CPU computes them natively (`precision="auto"`; the object
differs from the float32 one by well under 1 %, a unit test checks it) and in
float32 elsewhere; both rows are timed. Richardson–Lucy is the NumPy/SciPy
implementation of `baselines.richardson_lucy` (float64 FFT convolutions, as a
user would run it).

Timing on a CPU has a trap: both methods allocate large temporary buffers for
every call, and glibc's allocator (Linux) hands buffers above an adaptive size
threshold back to the kernel when they are freed, so the next call pays a page
fault for every 4 kB it touches. Whether it does depends on what ran before in
the process, so the same function can run markedly faster or slower from one
run to the next (`benchmarks/README.md` records it for Richardson–Lucy). The
methods are therefore timed twice, interleaved (`timing.compare`), first with
the allocator as it is, then after `timing.keep_freed_memory()`, which lets both
reuse their buffers: the second comparison is the fair one, and the one held
against the target.
"""),
("code", r"""
from deepstem_utils import timing
from deepstem_utils.reconstruction import native_bfloat16

big = dataset.simulate_frame((512, 512), sampling=SAMPLING, dose=1e4, probe=PROBE, rng=3)
psf = PROBE.intensity((64, 64), SAMPLING)
print(f"this CPU computes bfloat16 natively: {native_bfloat16()}")
runs = {"DeepSTEM reconstruct()": lambda: ds.reconstruct(big.counts, PROBE, sampling=SAMPLING),
        "DeepSTEM reconstruct(precision='float32')":
            lambda: ds.reconstruct(big.counts, PROBE, sampling=SAMPLING, precision="float32"),
        "Richardson–Lucy, 30 iterations": lambda: baselines.richardson_lucy(big.counts, psf, 30)}
as_is = timing.compare(runs, repeats=7)
reused = timing.keep_freed_memory()
tuned = timing.compare(runs, repeats=7)
speed = pd.DataFrame({"s per frame, allocator as is": as_is["median [s]"],
                      "s per frame, buffers reused": tuned["median [s]"],
                      "frames/s, buffers reused": tuned["per second"]})
print(f"allocator set to reuse freed buffers: {reused}")
speed.round(3)
"""),
("code", r"""
def faster(table, name):
    return table.loc["Richardson–Lucy, 30 iterations", "median [s]"] / table.loc[name, "median [s]"]


ratio, ratio32 = faster(tuned, "DeepSTEM reconstruct()"), faster(tuned, "DeepSTEM reconstruct(precision='float32')")
print(f"reconstruct(): {tuned.loc['DeepSTEM reconstruct()', 'per second']:.1f} frames/s (target ≥ 5), "
      f"{ratio:.1f}× faster than RL-30 (target ≥ 5×) on this machine, in this run; in float32 {ratio32:.1f}×; "
      f"with the allocator as it was: {faster(as_is, 'DeepSTEM reconstruct()'):.1f}×")
"""),
("md", r"""
## Summary

* `find_atoms` labels every site Mo, S₂, S₁, empty S site or Mo adatom with a
  posterior confidence, from a local lattice model and a mixture model anchored on
  the image's own hollow sites.
* Counting the columns in the frame by the linear model {eq}`eq:column-fit`, at
  the positions the object map finds, makes the S-site labels linear in the
  atoms; `find_atoms(obj, counts=..., psf=...)` and `deepstem series` do it.
* The ideal observer {eq}`eq:ideal-observer` and the Cramér–Rao bound give the
  physical limit on the same frames.
* The dose sweep measures, for each method, the dose needed for 0.9 S-site
  accuracy; the table above compares DeepSTEM with the best classical method,
  a supervised U-Net trained on the same frames, and the ideal observer.
* The Fig. 1b chart puts these doses and chapter 6's settings on the dose–dwell
  plane; literature values are drawn only when entered as quoted, with a citation.

## What's next

Chapter 6 runs this pipeline frame by frame on a simulated in situ series of
MoS₂ forming from (NH₄)₂MoS₄.

## Exercises

1. Rerun the sweep with a probe that has 50 Å more defocus (`PROBE.with_aberrations(C10=-40.0)`)
   while DeepSTEM is still given `PROBE`. What does the wrong probe cost?
2. The ideal observer knows the positions. Give it positions off by 0.2 Å
   (shift `frame.sites.x`) and recompute its accuracy at 10⁴ e⁻/Å².
"""),
("code", r"""
# Solution 2
shifted = dataset.simulate_frame((128, 128), sampling=SAMPLING, dose=1e4, probe=PROBE, rng=1)
truth = np.asarray(shifted.sites.species).astype(str)
s_sites = np.isin(truth, ["S2", "S1", "vacancy"])
exact = limits.ideal_observer(shifted)
shifted.sites.x = shifted.sites.x + 0.2
off = limits.ideal_observer(shifted)
print(f"accuracy with true positions {np.mean(exact[s_sites] == truth[s_sites]):.3f}, "
      f"with positions off by 0.2 Å {np.mean(off[s_sites] == truth[s_sites]):.3f}")
""", ['hide-cell']),
]

write("notebooks/05_dose_evaluation.ipynb", cells)
