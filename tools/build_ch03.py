"""Source of notebooks/03_training_data.ipynb (run: python tools/build_ch03.py)."""
from nbbuild import write

cells = [
("md", r"""
(ch:data)=
# 3. Training data: simulated MoS₂ frames with ground truth

## Overview

DeepSTEM {cite:p}`lee2021deepstem` learned from experimental atomic-resolution
HAADF frames. Those frames are not public, so this book **simulates** them, and
says so wherever they appear: every frame in chapters 3–6 is simulated by code
in `deepstem_utils`. This chapter builds those frames from the atoms up and then
asks the question the paper never shows: how good is the linear image model
{eq}`eq:linear-model` for a monolayer of MoS₂, compared with a multislice
simulation that treats the electron as a wave?

**What you will learn**

1. How a defective MoS₂ monolayer looks in projection: Mo and S₂ columns, S
   monovacancies (S₁), S divacancies, Mo adatoms, mirror-twin boundaries, edges, the graphene support.
2. How its object function is built, and what is assumed in it (the Z-exponent γ).
3. Which probes, doses and pixel sizes the training frames span.
4. How far the linear model is from multislice for monolayer MoS₂, per species.

**Prerequisites**

| concept | importance | where |
|---|---|---|
| the linear image model and the acquisition model | necessary | {ref}`ch:linear-model` |
| the probe from measured aberrations | helpful | {ref}`ch:zemlin` |
"""),
("code", r"""
import collections

import numpy as np
import pandas as pd
import matplotlib.pyplot as plt
from pathlib import Path

import deepstem_utils as ds
from deepstem_utils import dataset, imaging, metrics, specimen
from deepstem_utils.plotting import show_image, show_sites

rng = np.random.default_rng(2013)
plt.rcParams.update({"figure.dpi": 90})
SIZE = ds.choose(full=384, quick=160)          # frame side [px]
N_PROBES = ds.choose(full=8, quick=4)          # probes drawn from the training distribution
SAMPLING, ENERGY = 0.16, 80e3                  # [Å/px], [eV]
DATA = Path("..") / "data"
""", ["hide-input"]),
("md", r"""
## A defective monolayer in projection

Seen along [001], 2H-MoS₂ is a honeycomb: one sublattice holds Mo columns, the
other S₂ columns (two S atoms, one above the other). `specimen.random_mos2`
draws a monolayer with a random rotation and a small strain and then damages
it: S₂ sites lose one S (S₁) or both (a divacancy, kept as a site labelled
`vacancy` so that it can be scored), Mo sites are emptied, Mo adatoms sit on
hollow sites or on the bare support, a mirror-twin boundary may split the
field (the far side is the mirror image of the near side, which swaps the S
sublattice as a 60° twin does; the 4|4P boundary core itself is not modelled),
and the layer may be a flake with edges on a graphene sheet. Every column is
kept as ground truth, with its species.
"""),
("code", r"""
fov = SIZE * SAMPLING
sites = specimen.random_mos2((fov, fov), rng=7, twin=1.0, edge=1.0, s_vacancy=0.08, adatoms=0.006)
obj = specimen.object_function(sites, (SIZE, SIZE), SAMPLING, energy=ENERGY)

fig, axes = plt.subplots(1, 2, figsize=(11, 5))
show_image(axes[0], obj, SAMPLING, title="object function (simulated)", cmap="magma", label="scattered fraction per px")
show_image(axes[1], obj, SAMPLING, title="ground truth", cmap="gray", label="scattered fraction per px")
show_sites(axes[1], sites.x, sites.y, sites.species)
plt.tight_layout()

pd.Series(collections.Counter(sites.species), name="columns").to_frame().T
"""),
("md", r"""
The twin boundary runs along a zigzag direction; on the far side the S₂
columns sit where the near side has its hexagon's other corners. The flake's
edges expose the graphene support, whose carbon columns are part of the
object but too weak to see at this contrast.

## The object function

The object function is a sum of narrow peaks, one per atom, each integrating
to the atom's HAADF cross-section:

$$
O(\mathbf r) = \sum_i \sigma(Z_i)\, g(\mathbf r - \mathbf r_i),\qquad
\sigma(Z) = \sigma_{\mathrm{Mo}} \left(\frac{Z}{42}\right)^{\gamma},
$$ (eq:object)

with $g$ a Gaussian of σ = 0.12 Å (thermal vibration plus the extent of
high-angle scattering) and γ = 1.7 (an {ref}`assumption <ch:assumptions>`). A
column's weight is then fixed by its atoms, so the contrast between S₂, S₁ and
Mo is what γ says it is:
"""),
("code", r"""
weights = {
    "Mo": specimen.haadf_cross_section(42, ENERGY),
    "S2": 2 * specimen.haadf_cross_section(16, ENERGY),
    "S1": specimen.haadf_cross_section(16, ENERGY),
    "C (graphene)": specimen.haadf_cross_section(6, ENERGY),
}
table = pd.DataFrame({"cross-section [Å²]": weights})
table["relative to Mo"] = table["cross-section [Å²]"] / weights["Mo"]
table.round(5)
"""),
("code", r"""
ratio = weights["S2"] / weights["Mo"]
assert abs(ratio - 2 * (16 / 42) ** 1.7) < 1e-12   # eq. (eq:object) with gamma = 1.7
assert abs(weights["S2"] / weights["S1"] - 2) < 1e-12
"""),
("md", r"""
An S₂ column scatters about half as much as Mo, an S₁ column a quarter: the
three are well separated in the object, and the whole difficulty of low-dose
imaging is that the probe blurs them together and Poisson noise buries the
difference.

## Probes, doses and pixel sizes

The network must work with whatever probe the user measures, so it is trained
over a distribution of probes (`dataset.random_probe`): 60–300 kV (mostly 80),
semiangles 20–35 mrad, residual aberrations of a tuned corrector and a source
size up to 0.8 Å. These ranges are an assumption. A few of them:
"""),
("code", r"""
probes = [dataset.random_probe(np.random.default_rng([3, i])) for i in range(N_PROBES)]
fig, axes = plt.subplots(1, N_PROBES, figsize=(2.2 * N_PROBES, 2.6))
rows = []
for ax, p in zip(axes, probes):
    psf = p.intensity((64, 64), SAMPLING)
    show_image(ax, psf[16:48, 16:48], SAMPLING, cmap="inferno", colorbar=False, scalebar=1.0)
    ax.set_title(f"{p.energy / 1e3:.0f} kV, {p.semiangle:.0f} mrad", fontsize=8)
    ax.set_xlabel(""); ax.set_ylabel(""); ax.set_xticks([]); ax.set_yticks([])
    rows.append({"energy [kV]": p.energy / 1e3, "semiangle [mrad]": p.semiangle, "C10 [Å]": p.aberrations["C10"],
                 "C21 [Å]": p.aberrations["C21"], "C30 [µm]": p.aberrations["C30"] / 1e4,
                 "source FWHM [Å]": p.source_size, "probe FWHM [Å]": p.fwhm()})
plt.tight_layout()
pd.DataFrame(rows).round(2)
"""),
("md", r"""
Doses are drawn log-uniformly from 500 to 2×10⁵ e⁻/Å² and pixel sizes from
0.12 to 0.20 Å (frames at other pixel sizes, 0.05–0.30 Å, are resampled into
that range by `reconstruct`). Here is one specimen through one probe at three
doses. A monolayer scatters about a thousandth of the beam onto the HAADF
detector, so even 10⁴ e⁻/Å² gives less than one count per pixel on average:
"""),
("code", r"""
probe = ds.Probe(ENERGY, 30.0, {"C10": 10.0, "C12": 15.0, "C30": -5e3}, source_size=0.5)
psf = probe.intensity((64, 64), SAMPLING)
clean = imaging.linear_image(obj, psf)
doses = [1e3, 1e4, 1e5]
frames = [imaging.acquire(clean, imaging.Acquisition(dose=d, sampling=SAMPLING), rng=np.random.default_rng(i))
          for i, d in enumerate(doses)]
fig, axes = plt.subplots(1, 3, figsize=(14, 4.3))
for ax, d, f in zip(axes, doses, frames):
    show_image(ax, f, SAMPLING, title=f"{d:.0e} e⁻/Å² (simulated)", label="counts")
plt.tight_layout()
mean_counts = [f.mean() for f in frames]
expected = [clean.mean() * imaging.electrons_per_pixel(d, SAMPLING) for d in doses]
pd.DataFrame({"dose [e⁻/Å²]": doses, "mean counts per px": mean_counts, "expected": expected})
"""),
("code", r"""
for m, e, f in zip(mean_counts, expected, frames):
    assert abs(m - e) < 5 * np.sqrt(e / f.size), "mean counts off the Poisson expectation"
"""),
("md", r"""
`dataset.simulate_frame` does all of this in one call (a random specimen,
probe, dose and pixel size unless given) and returns the counts with their
ground truth: the object function and the sites.

## How good is the linear model? A multislice check

Equation {eq}`eq:linear-model` treats each atom as an independent incoherent
scatterer whose signal is its cross-section times the probe intensity at its
position. For a monolayer this should be good, but the probe channels and
spreads between the two S atoms of a column and scatters coherently; the paper
assumes the model without showing it. The file `data/multislice_mos2.npz` holds
a multislice HAADF scan made with abTEM {cite:p}`madsen2021abtem` by
`data/make_multislice.py` (80 kV, 30 mrad, aberration free, 60–200 mrad
detector, 4 frozen-phonon configurations; settings in the file): a periodic MoS₂
supercell with one S₁ column, one S divacancy and one Mo adatom. It is too slow
to run in the book (minutes on a laptop), so it is committed, small.

We render the linear model for the same columns with the same probe and compare.
"""),
("code", r"""
ms = np.load(DATA / "multislice_mos2.npz")
ms_image = ms["image"]
sx, sy = (float(v) for v in ms["sampling"])   # (x, y) scan sampling [Å]: the periodic cell makes them differ
assert abs(sx / sy - 1) < 0.02
s_ms = sx
species = ms["species"].astype(str)
counts = {"Mo": np.isin(species, ["Mo", "Mo_adatom"]).astype(float),
          "S": np.select([species == "S2", species == "S1"], [2.0, 1.0], 0.0)}
# work in scan pixels: y is rescaled by sx/sy (< 1 % here) so that one pixel size serves both axes
ms_sites = specimen.Sites(ms["x"], ms["y"] * sx / sy, species.astype(object), counts)
ms_probe = ds.Probe(ENERGY, 30.0)
linear_obj = specimen.object_function(ms_sites, ms_image.shape, s_ms, energy=ENERGY)
# the supercell is periodic, and so is its multislice scan
linear = imaging.linear_image(linear_obj, ms_probe.intensity((128, 128), s_ms), boundary="periodic")
# compare shapes, not absolute scales: least-squares fit multislice = a * linear + b
A = np.stack([linear.ravel(), np.ones(linear.size)], 1)
(a, b), *_ = np.linalg.lstsq(A, ms_image.ravel(), rcond=None)
residual = ms_image - (a * linear + b)
rel_residual = np.linalg.norm(residual) / np.linalg.norm(ms_image - ms_image.mean())

fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
show_image(axes[0], ms_image, s_ms, title="multislice (abTEM, simulated)", label="detected fraction")
show_sites(axes[0], ms_sites.x, ms_sites.y, ms_sites.species, legend=False)
show_image(axes[1], a * linear + b, s_ms, title="linear model, fitted scale", label="detected fraction")
show_image(axes[2], residual, s_ms, title="multislice − linear", cmap="RdBu_r", label="detected fraction",
           vmin=-abs(residual).max(), vmax=abs(residual).max())
plt.tight_layout()
print(f"scale a = {a:.3f} (absolute cross-sections of the model are an estimate), background b = {b:.2e}")
print(f"relative residual |multislice - fit| / |multislice - mean| = {rel_residual:.3f}")
"""),
("md", r"""
The scale factor `a` tells how far the screened-Rutherford estimate of the
absolute cross-sections is from multislice; it only sets how many counts a
frame has, not its contrast. What matters for DeepSTEM is the **contrast
between species**: integrate both images in a disk of 0.7 Å radius around
every column and compare the ratios to Mo.
"""),
("code", r"""
def column_ratios(image):
    intensity = metrics.integrated_intensity(image - image.min(), ms_sites.x, ms_sites.y, s_ms, radius=0.7)
    mo = intensity[species == "Mo"].mean()
    return {sp: intensity[species == sp].mean() / mo for sp in ["S2", "S1", "vacancy", "Mo_adatom"]}

ratios = pd.DataFrame({"multislice": column_ratios(ms_image), "linear model (γ = 1.7)": column_ratios(linear)})
ratios["linear / multislice"] = ratios.iloc[:, 1] / ratios.iloc[:, 0]
# the Z-exponent the multislice S2/Mo ratio implies, from sigma(S2)/sigma(Mo) = 2 (16/42)^gamma
obj_ratio = ratios.loc["S2", "multislice"] / ratios.loc["S2", "linear model (γ = 1.7)"] * weights["S2"] / weights["Mo"]
gamma_eff = np.log(obj_ratio / 2) / np.log(16 / 42)
print(f"Z-exponent implied by multislice for S2 vs Mo: γ ≈ {gamma_eff:.2f}")
ratios.round(3)
"""),
("code", r"""
# the test of the model: S2 and S1 keep their order and their contrast to within 25 % of multislice
assert ratios.loc["S2", "multislice"] > ratios.loc["S1", "multislice"] > ratios.loc["vacancy", "multislice"]
assert 0.75 < ratios.loc["S2", "linear / multislice"] < 1.33
assert 0.75 < ratios.loc["S1", "linear / multislice"] < 1.33
"""),
("md", r"""
Read the table this way: integrated over a column, the linear model with γ = 1.7
reproduces the multislice contrast of S₂ and S₁ to Mo to the accuracy shown in
the last column, and the implied γ says how to tune the model if you want it
closer. The residual map shows where the model is least faithful: at the
columns themselves, where channelling and the coherent sum over the two S
atoms change the peak shape a little. For a monolayer the linear model is a
sound basis for both simulation and reconstruction; for thicker crystals it
would not be (channelling grows with thickness).

## Summary

* Training frames are **simulated**: a defective MoS₂ monolayer on graphene
  (S₁, divacancies, Mo vacancies, Mo adatoms, mirror twins, edges), its object
  function {eq}`eq:object`, a probe from a distribution of corrected instruments,
  and the acquisition model of chapter 1.
* Every frame keeps its ground truth (object and sites), which the
  self-supervised training of chapter 4 never uses but every evaluation does.
* At 10⁴ e⁻/Å² a monolayer gives well under one count per pixel.
* Against abTEM multislice, the linear model keeps the per-species contrast of
  monolayer MoS₂ (table above); its absolute scale is an estimate.

## What's next

{ref}`ch:autoencoder` trains the physics-informed autoencoder on these frames,
without ever showing it the ground truth.

## Exercises

1. Draw a frame with `dataset.simulate_frame(rng=...)` and count its species.
   How many S₁ columns would you expect for `s_vacancy=0.06`?
2. Change γ to 1.5 and 2.0 in `specimen.object_function` and recompute the
   linear/multislice ratio of S₂. Which γ fits best?
"""),
("code", r"""
# Solution 1
frame = dataset.simulate_frame((128, 128), rng=5)
found = collections.Counter(frame.sites.species)
s_sites = found["S2"] + found["S1"] + found["vacancy"]
print(dict(found), f"expected S1 ≈ 0.06 × {s_sites} = {0.06 * s_sites:.1f}")

# Solution 2
for g in (1.5, 1.7, 2.0):
    o = specimen.object_function(ms_sites, ms_image.shape, s_ms, energy=ENERGY, gamma=g)
    lin = imaging.linear_image(o, ms_probe.intensity((128, 128), s_ms), boundary="periodic")
    print(g, round(column_ratios(lin)["S2"] / ratios.loc["S2", "multislice"], 3))
""", ["hide-cell"]),
]
write("notebooks/03_training_data.ipynb", cells)
