"""Source of notebooks/06_insitu_mos2.ipynb (run: python tools/build_ch06.py)."""
from nbbuild import write

cells = [
("md", r"""
(ch:insitu)=
# 6. In situ: MoS₂ forming on graphene at 500 °C

## Overview

The experiment DeepSTEM was built for {cite:p}`lee2021deepstem`: a thin film of
(NH₄)₂MoS₄ on suspended graphene is heated to 500 °C in the microscope, and
MoS₂ forms, frame after frame. The paper follows clusters as they form and grow,
grains as they meet and merge, and Mo adatoms around them (its Fig. 2), at a
dose low enough not to drive the chemistry with the beam. Its series are not
public, so this chapter builds a **digital twin** of the experiment, a kinetic
Monte Carlo model with Arrhenius rates at 500 °C, images it through the
acquisition model with the probe measured in chapter 2, runs the whole
DeepSTEM pipeline on it frame by frame, and checks what the pipeline recovers
against the twin's ground truth. **Everything shown here is simulated.**

**What you will learn**

1. What happens chemically when (NH₄)₂MoS₄ is heated, and how a kinetic Monte
   Carlo model turns that into a time series of atomic configurations.
2. How an in situ series is processed: drift registration, reconstruction and
   atom finding on every frame (on a dask cluster), tracking and event detection.
3. What DeepSTEM recovers frame by frame (the counterpart of the paper's Fig. 2)
   and what the paper could not show: the per-frame accuracy against ground truth.

**Prerequisites**

| concept | importance | where |
|---|---|---|
| the acquisition model (dose, drift, jitter) | necessary | {ref}`ch:linear-model` |
| the measured probe | necessary | {ref}`ch:zemlin` |
| `reconstruct()` and `find_atoms()` | necessary | {ref}`ch:autoencoder`, {ref}`ch:dose` |
"""),
("code", r"""
import base64
import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import matplotlib.pyplot as plt
from matplotlib import animation
from IPython.display import HTML

import deepstem_utils as ds
from deepstem_utils import evaluation, insitu, series, tracking
from deepstem_utils.imaging import dose_from_current
from deepstem_utils.plotting import show_image, show_series_panel, show_sites

plt.rcParams.update({"figure.dpi": 90})
N_FRAMES = ds.choose(full=80, quick=10)        # frames in the series
SIZE = ds.choose(full=512, quick=256)          # frame side [px]
FRAME_TIME = ds.choose(full=0.6, quick=2.5)    # time from one frame to the next [s]
SAMPLING = 0.16                                # [Å/px]
DOSE = 2e4                                     # per frame [e⁻/Å²] (assumption, see the text)
DWELL = 2.0                                    # per pixel [µs] (assumption)
DATA = Path("../data")
""", ['hide-input']),
("md", r"""
## The chemistry and its kinetic twin

Heated, ammonium tetrathiomolybdate loses ammonia and hydrogen sulfide and
becomes amorphous MoS₃ well below 500 °C; at 500 °C MoS₃ gives up sulfur and
becomes MoS₂:

```{math}
:label: eq:thermolysis
(\mathrm{NH_4})_2\mathrm{MoS_4} \rightarrow 2\,\mathrm{NH_3} + \mathrm{H_2S} + \mathrm{MoS_3},
\qquad \mathrm{MoS_3} \rightarrow \mathrm{MoS_2} + \mathrm{S}.
```

The twin (`deepstem_utils.insitu`, see its docstring for every rule) follows the
Mo. Each step is an activated process with an Arrhenius rate

```{math}
:label: eq:arrhenius
k = \nu \, e^{-E/k_B T},
```

with the attempt frequency $\nu$, a barrier $E$ and $T$ = 773 K. The MoS₃ film
releases MoS₂ units; the Mo diffuses over the graphene far faster than a frame
is scanned until it is caught: by a grain edge (it attaches where it has the
most Mo neighbours), by a *trap* (a defect or residue site, where it sits as a
visible **Mo adatom** until it escapes), or by a trap already holding a Mo,
where the two **nucleate** a new grain with a random orientation. Grains that
touch **merge**: the smaller one turns onto the larger one's lattice; when the
turn maps MoS₂ onto its 60°-rotated variant, a **mirror-twin boundary** remains.
Edge Mo detach at a rate set by their number of Mo neighbours, and every S
position empties and refills from the sulfur-rich atmosphere, so S vacancies
come and go. The parameters below are the twin's; the paper does not give them,
so every barrier is an **assumption**, chosen so that the time scales match
what the paper shows (grains that grow over tens of seconds, adatoms that stay
for a few frames).
"""),
("code", r"""
params = insitu.KineticParameters()
kT = insitu.BOLTZMANN * params.temperature
rows = [
    ("temperature", f"{params.temperature:.2f} K", "paper (500 °C)"),
    ("attempt frequency ν", f"{params.attempt_frequency:.0e} Hz", "assumption (usual value)"),
    ("release barrier", f"{params.release_barrier:.2f} eV → {params.release_rate:.3f} /s per unit, "
                        f"time constant {1 / params.release_rate:.0f} s", "assumption"),
    ("trap barrier", f"{params.trap_barrier:.2f} eV → adatom stays {1 / params.escape_rate:.1f} s "
                     f"= {1 / params.escape_rate / FRAME_TIME:.1f} frames", "assumption"),
    ("edge bond energy", f"{params.bond_energy:.2f} eV per Mo neighbour; an edge Mo with 2 neighbours leaves "
                         f"after {1 / params.rate(params.detach_barrier + 2 * params.bond_energy):.0f} s",
     "assumption"),
    ("traps", f"1 per {1 / params.trap_density:.0f} Å², {params.nucleation_fraction:.0%} strong enough to nucleate",
     "assumption"),
    ("S vacancy fraction", f"{params.s_vacancy_fraction:.0%} (exchange {params.s_exchange_rate} /s)", "assumption"),
    ("k_B T", f"{kT * 1e3:.1f} meV", "computed"),
]
pd.DataFrame(rows, columns=["parameter", "value", "source"]).set_index("parameter")
"""),
("code", r"""
twin = insitu.simulate_growth(N_FRAMES, frame_time=FRAME_TIME, rng=2021, progress=True)
total = [f.n_mo + f.film for f in twin]
assert len(set(total)) == 1, "the twin must conserve Mo"
sizes = []
for f in twin:
    mo = (f.sites.species == "Mo") & (f.cluster >= 0)
    ids, counts = np.unique(f.cluster[mo], return_counts=True)
    sizes.append(counts)
times = np.array([f.time for f in twin])
kinds = pd.Series([e["kind"] for f in twin for e in f.events]).value_counts()

fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), constrained_layout=True)
axes[0].plot(times, [c.max() if len(c) else 0 for c in sizes], label="largest grain")
axes[0].plot(times, [c.sum() for c in sizes], label="all grains")
axes[0].plot(times, [f.film for f in twin], label="Mo still in the precursor film")
axes[0].set(xlabel="time [s]", ylabel="Mo atoms", title="the twin over the whole simulated area")
axes[0].legend()
axes[1].plot(times, [len(c) for c in sizes], label="grains")
axes[1].plot(times, [int(np.sum(f.sites.species == "Mo_adatom")) for f in twin], label="trapped Mo adatoms")
axes[1].set(xlabel="time [s]", ylabel="number", title="grains and adatoms")
axes[1].legend()
plt.show()
print(f"Mo conserved: {total[0]} atoms in every frame; events: " + ", ".join(f"{k} {v}" for k, v in kinds.items()))
"""),
("md", r"""
## Recording the series

Each configuration is imaged as in chapter 1, with the probe **measured** from a
simulated Zemlin tableau exactly as in chapter 2 (`data/make_probe.py` wrote
`data/probe_measured.json`), a dose and a dwell time per frame, stage drift
that accumulates from frame to frame (and distorts each frame while it is
scanned), scan-line jitter and Poisson noise. The precursor film is a smooth
amorphous background that fades as it is used up; the graphene is there too.

The dose and dwell time are **assumptions**: the paper's are not restated
here. Chapter 5 showed that with these weights DeepSTEM needs more than
10⁴ e⁻/Å² to tell S₁ from S₂ reliably, so the series is recorded at 2 × 10⁴ e⁻/Å²
per frame, still in the low-dose regime of in situ work.
"""),
("code", r"""
probe = ds.Probe.from_json(DATA / "probe_measured.json")
acq = insitu.SeriesAcquisition(twin, probe, shape=(SIZE, SIZE), sampling=SAMPLING, dose=DOSE, dwell_time=DWELL,
                               frame_time=FRAME_TIME, seed=7)
a = acq.acquisition
scan_time = SIZE * SIZE * DWELL * 1e-6
print(f"probe: {probe.energy / 1e3:.0f} kV, {probe.semiangle:.0f} mrad, measured aberrations "
      + ", ".join(f"{k} = {v:.0f} Å" for k, v in probe.aberrations.items() if not k.startswith("phi")))
print(f"dose {DOSE:.0e} e⁻/Å² per frame = {a.electrons_per_pixel:.0f} e⁻/px; dwell {DWELL} µs/px = "
      f"{a.dwell_time_per_area:.0f} µs/Å²; probe current {a.probe_current:.0f} pA; "
      f"scan {scan_time:.2f} s of a {FRAME_TIME} s frame period")
print(f"cumulative dose over the series: {DOSE * N_FRAMES:.1e} e⁻/Å²")

fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), constrained_layout=True)
for ax, i in zip(axes, [1, N_FRAMES // 2, N_FRAMES - 1]):
    show_image(ax, acq[i], SAMPLING, f"raw frame {i} (t = {twin[i].time:.1f} s)", label="counts")
plt.show()
"""),
("md", r"""
## The pipeline on every frame

`series.process_series` (also `deepstem series FRAMES... --probe probe.json --out DIR`)
sends every frame, with the one before it, to a task on a `dask.distributed` cluster (a `LocalCluster`
here; `--scheduler ADDRESS` uses a running one); the task registers the pair, then runs
`reconstruct()` and `find_atoms()` (columns counted in the frame). At most a few frames are in
flight, so memory does not grow with the length of the series (`benchmarks/series_scaling.py`
measures it for 200 and 1000 frames of 512², and the speed-up from a second worker), and every
frame's results are written as they arrive, so a run that is stopped resumes
where it stopped. The series object renders each frame only when it is asked
for, like a file read lazily.

Registration is harder than it looks on a crystal: the graphene and MoS₂
lattices make the cross-correlation periodic, with a peak at every lattice
vector. `series.register_drift` therefore first correlates strongly smoothed
frames, where only non-periodic content is left (grain shapes, the film), and
then refines on lightly smoothed ones, where the lattice pins the sub-pixel
remainder. The first frames, bare graphene at this dose, hold almost no
contrast (the mean count per pixel is printed below) and cannot be registered at all; as
stage drift is smooth, a step far from the typical step is replaced by the
median step (marked in the plot).
"""),
("code", r"""
workdir = tempfile.TemporaryDirectory()
out = Path(workdir.name) / "deepstem"
summary = series.process_series(acq, probe, SAMPLING, out, n_workers=2, progress=True)
atoms = series.load_atoms(out)
drift = pd.read_csv(out / "drift.csv")
true_shift = acq.offsets - acq.offsets[0]
error = np.hypot(drift.dx_A.to_numpy() - true_shift[:, 0], drift.dy_A.to_numpy() - true_shift[:, 1])

fig, ax = plt.subplots(figsize=(6.5, 3.6))
ax.plot(times, true_shift[:, 0], "k-", label="true x")
ax.plot(times, true_shift[:, 1], "k--", label="true y")
ax.plot(times, drift.dx_A, "C1.", label="registered x")
ax.plot(times, drift.dy_A, "C0.", label="registered y")
bad = ~drift.reliable.to_numpy(bool)
ax.plot(times[bad], drift.dx_A[bad], "rx", label="step replaced by the median")
ax.set(xlabel="time [s]", ylabel="field-of-view shift [Å]", title="stage drift: truth and registration")
ax.legend(ncol=2, fontsize="small")
plt.show()
step_error = np.hypot(*np.diff(np.stack([drift.dx_A.to_numpy() - true_shift[:, 0],
                                          drift.dy_A.to_numpy() - true_shift[:, 1]]), axis=1))
print(f"frame 0 (bare graphene and film): {acq[0].mean():.2f} counts per pixel on average")
print(f"{int(bad.sum())} of {N_FRAMES - 1} steps replaced; registration error: median {np.median(step_error) * 100:.0f} pm from one frame to the next, "
      f"{error[-1] * 100:.0f} pm accumulated after {N_FRAMES} frames, at most {error.max() * 100:.0f} pm")
"""),
("md", r"""
## The counterpart of Fig. 2

The panels show the reconstructed object with the sites `find_atoms` reports:
Mo as solid blue markers, S columns as yellow dots (S₁ open orange, empty S
sites red crosses) and Mo adatoms in dashed cyan circles; scale bars 0.5 nm.
Panels (a–e) follow the **formation** of grains; (f–h) the first **merger** of
two grains that the twin records inside the field of view, before, at and after it.
The frames are picked from the twin's event log; what is drawn is what the
pipeline found.
"""),
("code", r"""
events_true = acq.truth_events()
merges = events_true[(events_true.kind == "coalescence") & events_true.in_field]
nuclei = events_true[(events_true.kind == "nucleation") & events_true.in_field]
last = int(merges.frame.iloc[0]) - 1 if len(merges) else N_FRAMES - 4
formation = list(np.unique(np.linspace(1, max(last, 5), 5).astype(int)))
if len(merges):
    m = int(merges.frame.iloc[0])
    merging = [max(m - 2, 0), m, min(m + 3, N_FRAMES - 1)]
    spot_merge = merges[["x", "y"]].iloc[0].to_numpy()
else:
    merging = [N_FRAMES - 3, N_FRAMES - 2, N_FRAMES - 1]
    spot_merge = np.array([SIZE * SAMPLING / 2] * 2)
spot_form = nuclei[["x", "y"]].iloc[0].to_numpy() if len(nuclei) else spot_merge
WIDTH = ds.choose(full=50.0, quick=SIZE * SAMPLING)   # panel width [Å]

fig, axes = plt.subplots(2, 4, figsize=(15, 7.8), constrained_layout=True)
for ax, i, letter, spot in zip(axes.flat, formation + merging, "abcdefgh", [spot_form] * 5 + [spot_merge] * 3):
    obj = np.load(series.frame_outputs(out, i)["object"])
    centre = spot - [drift.dx_A.iloc[i], drift.dy_A.iloc[i]]   # frame-0 coordinates -> this frame
    show_series_panel(ax, obj, atoms[atoms.frame == i], SAMPLING, f"({letter}) frame {i}, t = {twin[i].time:.1f} s",
                      window=(centre[0] - WIDTH / 2, centre[1] - WIDTH / 2, WIDTH))
for ax in axes.flat[len(formation) + 3:]:
    ax.axis("off")
plt.show()
if len(merges):
    print("first merger in the field:", merges.iloc[0].detail, f"(frame {int(merges.frame.iloc[0])})")
"""),
("md", r"""
## What the paper could not show: accuracy against ground truth

The twin knows every atom, so each frame's sites can be scored (chapter 5's
`score_sites`): the balanced S-site accuracy (S₂ / S₁ / empty), the Mo position
error and the F1 score of adatoms. The same series is also analysed **without
DeepSTEM**: `find_atoms` on the raw frames, with the same registration.
"""),
("code", r'''
def series_sites(find):
    """``find(i)`` on every frame, in one table with drift-corrected positions (as series.load_atoms gives them)."""
    return series.with_drift(pd.concat([find(i).assign(frame=i) for i in range(N_FRAMES)], ignore_index=True), drift)


level = evaluation.one_atom_fraction("deepstem")   # the network's one-S level (chapter 5)
atoms_object = series_sites(lambda i: series.frame_atoms(np.load(series.frame_outputs(out, i)["object"]), SAMPLING,
                                                         one_atom_fraction=level))
atoms_raw = series_sites(lambda i: series.frame_atoms(acq[i], SAMPLING, one_atom_fraction=0.5))
scores = {"DeepSTEM, counts fitted": acq.score(atoms), "DeepSTEM, object integrated": acq.score(atoms_object),
          "raw frames": acq.score(atoms_raw)}

fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), constrained_layout=True)
for name, table in scores.items():
    axes[0].plot(table.time_s, table.s_accuracy, ".-", label=name)
    axes[1].plot(table.time_s, table.mo_rmse, ".-", label=name)
    axes[2].plot(table.time_s, table.F1_adatom, ".-", label=name)
axes[0].axhline(0.9, color="gray", ls=":", label="target 0.9")
axes[0].set(xlabel="time [s]", ylabel="balanced S-site accuracy", ylim=(0, 1.02))
axes[1].set(xlabel="time [s]", ylabel="Mo position RMSE [pm]")
axes[2].set(xlabel="time [s]", ylabel="F1 of Mo adatoms", ylim=(0, 1.02))
for ax in axes:
    ax.legend(fontsize="small")
plt.show()
table = pd.DataFrame({name: {"S-site accuracy, median over frames": t.s_accuracy.median(),
                             "S-site accuracy, worst frame": t.s_accuracy.min(),
                             "frames with S-site accuracy ≥ 0.9": (t.s_accuracy.dropna() >= 0.9).mean(),
                             "Mo RMSE, median [pm]": t.mo_rmse.median(),
                             "adatom F1, median": t.F1_adatom.median()} for name, t in scores.items()})
table.round(3)
'''),
("code", r"""
frac = lambda t: (t.s_accuracy.dropna() >= 0.9).mean()   # noqa: E731
for name, t in scores.items():
    print(f"{name}: S-site accuracy ≥ 0.9 in {frac(t):.0%} of the frames (worst frame {t.s_accuracy.min():.2f}); "
          f"Mo RMSE median {t.mo_rmse.median():.1f} pm")

"""),
("md", r"""
Read this comparison as it is. The pipeline locates the columns in DeepSTEM's
object and counts them in the frame (chapter 5, {eq}`eq:column-fit`): the
intensities are then linear in the atoms, and a lone S reads as half of S₂ in
every frame. Integrating the network's object instead (the middle row) lets the
network's lift of lone S atoms towards S₂, which varies from frame to frame,
decide the label. The raw frame integrated over a column does well too at
2 × 10⁴ e⁻/Å² with a well-corrected, measured probe (chapter 5 shows the dose
below which it stops doing so); what DeepSTEM's object adds is where the columns
are: more columns found and more precise positions.

Frames with few S₁ sites in view make the balanced accuracy jumpy: one missed
S₁ among three moves it by a sixth. The first frames hold no grain yet (no S
site, no accuracy). There the object shows the graphene lattice and noise, which
`find_atoms` alone, judging intensities only relative to each other, can take for
a lattice and adatoms. Counted in the frames, intensities share one scale over the
whole series (the dose per frame is constant), and a column holding one Mo atom
scatters the same in every frame: `series.load_atoms` drops a frame's "lattice"
and any adatom that scatter less than half of the series' Mo level
(`series.physical_sites`). The rows from the object and the raw frames above are
not cleaned this way (their intensities have no common scale).

## Grains, vacancies and adatoms over time

The grains found in each frame (connected Mo with at least four atoms,
`tracking.grains`) against the twin's; the S sites found empty or half-empty
against the truth; and the adatoms, linked from frame to frame with trackpy
(`tracking.link_adatoms`), against the twin's trapped adatoms.
"""),
("code", r"""
grain_table = tracking.track_grains(atoms)
found_per_frame = grain_table.groupby("frame")["size"].agg(["max", "count"]).reindex(range(N_FRAMES), fill_value=0)
true_largest = []
for i in range(N_FRAMES):
    truth = acq.truth(i)
    true_largest.append(int(np.sum(truth.species == "Mo")))
counts = atoms.groupby(["frame", "species"]).size().unstack(fill_value=0).reindex(range(N_FRAMES), fill_value=0)
truth_table = scores["DeepSTEM, counts fitted"]

fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), constrained_layout=True)
axes[0].plot(times, found_per_frame["max"], ".-", label="largest grain (found)")
axes[0].plot(times, counts.get("Mo", 0), ".-", label="lattice Mo in view (found)")
axes[0].plot(times, true_largest, "k--", label="Mo in grains in view (truth)")
axes[0].set(xlabel="time [s]", ylabel="Mo atoms")
axes[1].plot(times, counts.get("S1", 0) + counts.get("vacancy", 0), ".-", label="S₁ + empty (found)")
axes[1].plot(times, truth_table.true_S1 + truth_table.true_vacancy, "k--", label="S₁ + empty (truth)")
axes[1].set(xlabel="time [s]", ylabel="S sites missing S")
tracks = tracking.link_adatoms(atoms, search_range=1.5, memory=1)
truth_xy, truth_ids = acq.adatom_truth()
recovery = tracking.link_recovery(tracks, truth_xy, truth_ids, radius=1.0)
axes[2].plot(times, counts.get("Mo_adatom", 0), ".-", label="adatoms (found)")
axes[2].plot(times, truth_table.true_adatoms, "k--", label="adatoms (truth)")
axes[2].set(xlabel="time [s]", ylabel="Mo adatoms in view")
for ax in axes:
    ax.legend(fontsize="small")
plt.show()
print(f"adatom links (same adatom in consecutive frames): {recovery['recovered']} of {recovery['links']} "
      f"recovered ({recovery['fraction']:.0%})")
"""),
("md", r"""
Trapped adatoms sit still until they escape, so linking them needs only a
short search range (1.5 Å, several times the registration error); a track ends
when the adatom leaves its trap, is absorbed by a grain, or is missed.

## Events

`tracking.detect_events` turns the tracks into events: a grain with no
predecessor is a **nucleation**, a grain with two or more is a
**coalescence**, an adatom track that ends next to a grain is an
**attachment**. Next to it, the twin's own log of the same kinds of event inside
the field of view. (The twin logs a nucleation when two Mo meet; the pipeline
sees a grain from four Mo on, a few frames later.) A new grain counts as a
nucleation only where the previous frame could already see (the drift is known
from the registered positions); one that appears where the previous frame could
not see drifted into view, an **entry** (the twin's log has no such kind). A grain
that nucleated outside the field and *grows* into it cannot be told from one
nucleated at the edge, and counts as a nucleation. Excluding every grain that
touches the edge instead would lose the real nucleations near it (how far the
twin's nucleations in view lie from the edge is printed below).
"""),
("code", r"""
# the series starts at frame 0 even when its first frames have no sites (bare graphene)
events_found = tracking.detect_events(atoms, tracks, grain_table, field=acq.field, first_frame=0)
in_view = events_true[events_true.in_field]
shift = acq.offsets[nuclei.frame.to_numpy()] - acq.offsets[0]   # registered -> that frame's own coordinates
fx, fy = nuclei.x.to_numpy() - shift[:, 0], nuclei.y.to_numpy() - shift[:, 1]
to_edge = np.minimum.reduce([fx, fy, acq.field[0] - fx, acq.field[1] - fy])
print("the twin's nucleations in view lie " + ", ".join(f"{d:.1f}" for d in to_edge) + " Å from the field's edge")
pd.DataFrame({"found by the pipeline": events_found.kind.value_counts(),
              "in the twin's log (in view)": in_view.kind.value_counts()}).fillna(0).astype(int)
"""),
("code", r"""
events_found[events_found.kind != "attachment"].head(12)
"""),
("md", r"""
## The series as an animation
"""),
("code", r"""
step = ds.choose(full=2, quick=1)
shown = list(range(0, N_FRAMES, step))
fig, ax = plt.subplots(figsize=(5.2, 5.2))
fig.subplots_adjust(0, 0, 1, 1)


def draw(k):
    ax.clear()
    i = shown[k]
    obj = np.load(series.frame_outputs(out, i)["object"])[::2, ::2]
    show_series_panel(ax, obj, atoms[atoms.frame == i], 2 * SAMPLING, None)
    ax.text(0.02, 0.97, f"t = {twin[i].time:5.1f} s", transform=ax.transAxes, color="white", va="top")
    return []


movie = animation.FuncAnimation(fig, draw, frames=len(shown), interval=250)
gif = Path(workdir.name) / "series.gif"
movie.save(gif, writer=animation.PillowWriter(fps=4), dpi=60)   # a GIF: plays offline, no script needed
plt.close(fig)
HTML(f'<img src="data:image/gif;base64,{base64.b64encode(gif.read_bytes()).decode()}" '
     f'alt="the reconstructed series with the sites found, frame by frame" style="max-width: 480px">')
"""),
("code", r"""
workdir.cleanup()
""", ['remove-cell']),
("md", r"""
## Summary

- The twin turns the thermolysis of (NH₄)₂MoS₄ at 500 °C into a time series of
  atomic configurations with Arrhenius kinetics: precursor release, fast Mo
  diffusion, trapping (visible adatoms), nucleation at defects, edge growth,
  detachment, grain rotation and merging with mirror-twin boundaries, and S
  vacancies that come and go. It conserves Mo and keeps every atom on its grain's lattice.
- `process_series` registers the drift and runs `reconstruct` and `find_atoms`
  on every frame on dask; `tracking` links adatoms (trackpy) and grains and
  reports nucleation, coalescence and attachment.
- The Fig. 2 counterpart shows formation and merging as the pipeline sees them;
  scoring every frame against the twin shows how far each frame's labels can be
  trusted, with and without DeepSTEM (the numbers are above, computed on this run).
  It also shows the limits: bare graphene at this dose cannot be registered (its
  steps are replaced by the median drift), a grain growing into view counts as
  nucleated, and grains that come within a bond length of each other count as one
  for the pipeline before the twin merges them. Counting the columns in the frames
  gives every frame the same intensity scale, which is what tells one Mo atom from
  the graphene lattice and noise on the bare frames.

## Exercises

1. Raise `trap_barrier` by 0.1 eV: how long do adatoms stay, and what happens to
   the number of grains? Explain with {eq}`eq:arrhenius`.
2. Record the series at 5 × 10³ e⁻/Å² per frame. Which of the per-frame scores
   drops first, and why (think of chapter 5's ideal observer)?
3. Replace the measured probe with an aberration-free guess and rerun the
   pipeline. What happens to the S-site accuracy?
4. Write the frames to a `.hspy` stack with `hyperspy` and process them with
   `deepstem series` in a terminal. Compare the outputs with the ones above.
"""),
]

write("notebooks/06_insitu_mos2.ipynb", cells)
