"""Source of notebooks/07_your_own_data.ipynb (run: python tools/build_ch07.py)."""
from nbbuild import write

cells = [
("md", r"""
(ch:own-data)=
# 7. Your own data: a real MoS₂ frame

## Overview

Everything so far was simulated. This chapter runs DeepSTEM on a **real**
HAADF-STEM image: monolayer MoS₂ with Se implanted on S sites, recorded at
60 kV, shipped with the PyPI package `temul-toolkit` (file
`temul/example_data/experimental/example_Se_implanted_MoS2.dm3`, credit: the
TEMUL toolkit authors, E. O'Connell et al.). The file is read from the
installed package at run time; it is not copied into this repository. It is
the closest public stand-in for the paper's data. The same steps work on your
own `.dm3/.dm4/.emd/.tif/.hspy` files.

**What you will learn**

1. How to load a microscope file with its calibration and metadata.
2. How to estimate the detector's gain and dark offset, and from them the dose, from the frame itself.
3. How to run `reconstruct` and `find_atoms` on real data, and read the confidence map.
4. How to test what dose your analysis needs **without ground truth**, by thinning the counts.

**Prerequisites**

| concept | importance | where |
|---|---|---|
| the probe and the linear model | necessary | {ref}`ch:linear-model` |
| `reconstruct` and its limits | necessary | {ref}`ch:autoencoder` |
| `find_atoms` and the confidences | necessary | {ref}`ch:dose` |
"""),
("code", r"""
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import matplotlib.pyplot as plt

import deepstem_utils as ds
from deepstem_utils import baselines, detector, evaluation, io, model, specimen
from deepstem_utils.metrics import match_sites
from deepstem_utils.plotting import show_image, show_sites

plt.rcParams.update({"figure.dpi": 90})
CROP = ds.choose(full=1024, quick=384)            # side of the region analysed [px]
ATOMAP_CROP = ds.choose(full=384, quick=128)      # side of the corner fitted with Atomap's 2-D Gaussians [px]
FRACTIONS = ds.choose(full=[1.0, 1 / 4, 1 / 16, 1 / 64], quick=[1.0, 1 / 4])   # dose fractions kept
SEMIANGLE = 30.0    # [mrad] convergence semiangle: NOT in the file, an assumption
SOURCE = 0.5        # [Å] effective source FWHM: an assumption
""", ['hide-input']),
("md", r"""
## Loading the file

`ds.load` reads any format HyperSpy reads and returns a `Signal2D` with its
axes in Å (this file is calibrated in nm). `io.microscope_settings` collects
what the metadata says about the microscope:
"""),
("code", r"""
spec = importlib.util.find_spec("temul")
path = Path(list(spec.submodule_search_locations)[0]) / "example_data" / "experimental" / "example_Se_implanted_MoS2.dm3"
signal = ds.load(path)
sampling = io.sampling_of(signal)
settings = io.microscope_settings(signal)
print(signal)
print(f"pixel size {sampling:.4f} Å, {signal.data.dtype}, values {signal.data.min()}–{signal.data.max()}")
pd.Series(settings, name="from the file").to_frame()
"""),
("code", r"""
assert settings["energy"] == 60e3 and abs(sampling - 0.127) < 0.001
"""),
("md", r"""
The file gives the beam energy (60 kV), the dwell time and the pixel size, but
not the convergence semiangle: we assume 30 mrad and an effective source of
0.5 Å FWHM, both stated as assumptions. A measured probe
({ref}`ch:zemlin`) would replace them.

## Detector gain, dark offset and the dose

The values start near 2.9 million: this detector adds a large dark offset.
For Poisson electrons the noise variance grows linearly with the signal above
the offset, so a line through (local mean, local noise variance) pairs gives
the gain (slope) and the offset (where the variance vanishes): the
*photon-transfer* method (`detector.estimate_gain_offset`).
"""),
("code", r"""
data = np.asarray(signal.data, dtype=float)[:CROP, :CROP]
est = detector.estimate_gain_offset(data)
electrons = detector.to_electrons(data, est["gain"], est["offset"])
# incident dose: detected electrons / fraction a MoS2 monolayer scatters onto the detector (model estimate)
cell = np.sqrt(3) / 2 * specimen.MOS2_A**2                                      # [Å²] per MoS2 unit
scattered = (specimen.haadf_cross_section(42, 60e3) + 2 * specimen.haadf_cross_section(16, 60e3)) / cell
dose = electrons.mean() / sampling**2 / scattered
dwell_area = settings["dwell_time"] / sampling**2
pd.Series({"gain [counts/e⁻]": est["gain"], "dark offset [counts]": est["offset"],
           "detected e⁻ per px": electrons.mean(), "fraction scattered by MoS₂ (model)": scattered,
           "dose estimate [e⁻/Å²]": dose, "dwell time per area [µs/Å²]": dwell_area},
          name="estimate").to_frame()
"""),
("md", r"""
The dose is an **estimate**: it divides the detected electrons by the fraction
a monolayer scatters onto the detector according to the cross-sections of
chapter 3 (whose absolute scale is itself a screened-Rutherford estimate, and
whose detector angles are assumed). Treat it as good to a factor of two.

## Reconstruction and atoms
"""),
("code", r"""
probe = ds.Probe(energy=settings["energy"], semiangle=SEMIANGLE, source_size=SOURCE)
crop = signal.isig[:CROP, :CROP]
obj = ds.reconstruct(crop, probe)        # Signal2D in, Signal2D out: calibration and metadata kept
atoms = ds.find_atoms(obj)
print(obj)
print(f"offset subtracted by reconstruct: {obj.metadata.DeepSTEM.detector_offset_subtracted:.0f} counts")
atoms.species.value_counts().to_frame("sites")
"""),
("code", r"""
view = slice(0, min(CROP, 320))
fig, axes = plt.subplots(1, 3, figsize=(18, 5.5))
show_image(axes[0], electrons[view, view], sampling, title="real frame [detected e⁻]", label="e⁻ per px")
show_image(axes[1], obj.data[view, view], sampling, title="DeepSTEM object", cmap="magma", label="object [counts]")
inside = (atoms.x < view.stop * sampling) & (atoms.y < view.stop * sampling)
show_image(axes[2], obj.data[view, view], sampling, title="sites", cmap="gray", label="object [counts]")
show_sites(axes[2], atoms.x[inside], atoms.y[inside], atoms.species[inside])
plt.tight_layout()
"""),
("code", r"""
assert obj.data.shape == (CROP, CROP) and np.all(obj.data >= 0)
assert (atoms.species == "Mo").sum() > 50, "the MoS2 lattice was not found in the real image"
"""),
("md", r"""
The confidence is the posterior probability of each label. Where the S-site
intensities split cleanly into classes it is close to 1; where classes overlap
it drops. Se substituted on an S site (Z = 34 instead of 16) makes the column
much brighter than S₂: those sites sit in the bright tail of the S-site
histogram, beyond what two S atoms can give. By default `find_atoms` knows
only S₂, S₁ and empty sites, so they are labelled S₂; the histogram shows how
many there are. With `dopant="Se"` it adds a fourth class, one S and one Se in
the column, whose brightness relative to one S is fitted within the band that
Z-exponents 1.4–2.1 allow (the next cell). Whether the data supports that class
is the fit's decision, not ours; the cell prints what it found.
"""),
("code", r"""
s_sites = atoms[atoms.species.isin(["S2", "S1", "vacancy"])]
mo_level = atoms.intensity[atoms.species == "Mo"].median()
fig, axes = plt.subplots(1, 2, figsize=(13, 4))
axes[0].hist(s_sites.intensity / mo_level, 80, color="gold")
for k, name in [(1, "S₁"), (2, "S₂")]:
    axes[0].axvline(k * (16 / 42) ** 1.7, color="k", ls=":", lw=1)
    axes[0].text(k * (16 / 42) ** 1.7, axes[0].get_ylim()[1] * 0.9, f" {name} (γ=1.7)", fontsize=8)
axes[0].axvline((34 / 42) ** 1.7 + (16 / 42) ** 1.7, color="purple", ls="--", lw=1)
axes[0].text((34 / 42) ** 1.7 + (16 / 42) ** 1.7, axes[0].get_ylim()[1] * 0.8, " Se+S (γ=1.7)", fontsize=8)
axes[0].set_xlabel("S-site intensity / median Mo intensity"); axes[0].set_ylabel("sites")
sc = axes[1].scatter(atoms.x, atoms.y, c=atoms.confidence, s=4, cmap="viridis", vmin=0.5, vmax=1)
axes[1].set_xlim(0, CROP * sampling); axes[1].set_ylim(CROP * sampling, 0); axes[1].set_aspect("equal")
axes[1].set_xlabel("x [Å]"); axes[1].set_ylabel("y [Å]"); axes[1].set_title("confidence map")
plt.colorbar(sc, ax=axes[1], label="confidence")
plt.tight_layout()
bright = (s_sites.intensity / mo_level > 0.5 * ((34 / 42) ** 1.7 + (16 / 42) ** 1.7 + 2 * (16 / 42) ** 1.7)).sum()
print(f"S sites brighter than halfway between S2 and Se+S: {bright} of {len(s_sites)}")
"""),
("code", r"""
with_se = ds.find_atoms(obj, dopant="Se")
counts = pd.DataFrame({"MoS₂ classes only": atoms.species.value_counts(),
                       'dopant="Se"': with_se.species.value_counts()}).fillna(0).astype(int)
se_sites = with_se[with_se.species == "Se"]
fig, ax = plt.subplots(figsize=(6, 6))
show_image(ax, obj.data[view, view], sampling, 'Se-substituted S sites (dopant="Se")', cmap="gray", label="object [counts]")
inside = (with_se.x < view.stop * sampling) & (with_se.y < view.stop * sampling)
show_sites(ax, with_se.x[inside], with_se.y[inside], with_se.species[inside])
plt.show()
if len(se_sites):
    print(f"{len(se_sites)} S sites hold Se (median confidence {se_sites.confidence.median():.2f})")
else:
    print("no S site is bright enough for one S plus one Se (Se scattering 2.9-4.9 times one S): on this frame, "
          "with this probe, the bright tail of the histogram is not a class of its own")
counts
"""),
("md", r"""
## What dose does this analysis need? A test without ground truth

A real frame has no ground truth, but it does have counts. Keeping each
detected electron with probability $f$ (binomial thinning) gives an honest
frame of the same specimen at $f$ times the dose, with the right Poisson
noise. Analyse the thinned frames and compare their sites with the full-dose
result of the same method: the agreement tells how far the dose could have been
lowered with that method. DeepSTEM is compared with a Gaussian filter and
Richardson–Lucy (30 iterations), all with the same probe and the same
`find_atoms`; "DeepSTEM + counts fit" locates the sites in DeepSTEM's object
and counts them in the thinned frame itself (chapter 5, {eq}`eq:column-fit`).
The fourth comparison is the classical column-by-column analysis of Atomap
{cite:p}`nord2017atomap`: a 2-D Gaussian refined on every column of the frame
itself (`baselines.atomap_sites`). Atomap fits each Gaussian after subtracting
the lowest values around it, which is not linear in the atoms: on this frame
a Gaussian fitted at an empty hollow site came out nearly as large as one at an
S site (it fits the flanks of the neighbours), so those volumes labelled many S sites empty. The
Gaussians' volumes are therefore measured as model-based quantification does:
one width (the median Atomap fitted), the refined positions, and one joint fit
with a constant background; the S sites are then labelled by the same mixture
model. Atomap's own peak finder finds only the Mo sublattice
on this frame, so its Gaussians start at the sites DeepSTEM found at full dose,
the same starts at every dose; its "matched to full dose" is therefore 1 by
construction, and only its species are a test. Agreement with oneself is not correctness: a method that always
says S₂ agrees perfectly. Read it next to the species counts.
"""),
("code", r"""
rng = np.random.default_rng(0)
reference = atoms   # DeepSTEM on the raw file, offset removed by reconstruct
counts = np.round(electrons).astype(np.int64)
psf = probe.intensity((model.psf_grid(sampling),) * 2, sampling)
deepstem = lambda x: ds.reconstruct(x, probe, sampling=sampling, offset=None)  # noqa: E731
methods = {
    "DeepSTEM": deepstem,
    "DeepSTEM + counts fit": deepstem,
    "Gaussian filter (0.25 Å)": lambda x: baselines.gaussian(x, 0.25 / sampling),
    "Richardson–Lucy (30 it.)": lambda x: baselines.richardson_lucy(x, psf, 30),
}
# the one-S level find_atoms starts from: 1/2 for the linear methods, the network's measured value for DeepSTEM;
# "+ counts fit": the sites DeepSTEM's object locates, their intensities fitted to the (thinned) counts
level = {name: evaluation.one_atom_fraction("deepstem" if name == "DeepSTEM" else "raw") for name in methods}
thinned = {f: (rng.binomial(counts, f).astype(float) if f < 1 else counts.astype(float)) for f in FRACTIONS}


objects = {}   # one object per method and dose: the two DeepSTEM rows share their reconstruction


def find(name, f):
    key = (methods[name], f)
    if key not in objects:
        objects[key] = methods[name](thinned[f])
    fit = {"counts": thinned[f], "psf": psf} if name.endswith("counts fit") else {}
    return ds.find_atoms(objects[key], sampling=sampling, one_atom_fraction=level[name], **fit)


rows, full_dose = [], {}
for name in methods:
    full = full_dose[name] = find(name, 1.0)   # this method's own full-dose answer
    for f in FRACTIONS:
        a = full if f == 1.0 else find(name, f)
        i, j = match_sites(a, full.x, full.y, 0.5)
        rows.append({"method": name, "dose fraction": f, "dose estimate [e⁻/Å²]": f * dose, "sites found": len(a),
                     "matched to full dose": len(i) / max(len(full), 1),
                     "same species": np.mean(a.species.to_numpy()[i] == full.species.to_numpy()[j]) if len(i) else np.nan})
    if name == "DeepSTEM":   # the electron-count path against the raw-file path of the section above
        i, j = match_sites(full, reference.x, reference.y, 0.5)
        paths_agree = np.mean(full.species.to_numpy()[i] == reference.species.to_numpy()[j])
# Atomap: a 2-D Gaussian per column on the thinned counts themselves, started at the sites DeepSTEM found at full
# dose (Atomap's own peak finder finds only the Mo sublattice on this frame); in a corner, as each fit takes ~50 ms
corner = ATOMAP_CROP * sampling
start = reference[(reference.x < corner) & (reference.y < corner)]
full = full_dose["Atomap 2-D Gaussians"] = baselines.atomap_sites(thinned[1.0][:ATOMAP_CROP, :ATOMAP_CROP], start,
                                                                  sampling)
for f in FRACTIONS:
    a = full if f == 1.0 else baselines.atomap_sites(thinned[f][:ATOMAP_CROP, :ATOMAP_CROP], start, sampling)
    i, j = match_sites(a, full.x, full.y, 0.5)
    rows.append({"method": "Atomap 2-D Gaussians", "dose fraction": f, "dose estimate [e⁻/Å²]": f * dose,
                 "sites found": len(a), "matched to full dose": len(i) / max(len(full), 1),
                 "same species": np.mean(a.species.to_numpy()[i] == full.species.to_numpy()[j]) if len(i) else np.nan})
thinning = pd.DataFrame(rows)
print(f"DeepSTEM on electron counts vs on the raw file: {paths_agree:.3f} of the sites get the same species")
print(f"Atomap at full dose: {dict(full.species.value_counts())} in the {ATOMAP_CROP}² px corner")
thinning.pivot(index="dose fraction", columns="method", values="same species").sort_index(ascending=False).round(3)
"""),
("code", r"""
# the electron-count path (explicit gain and offset) and the raw-file path (offset removed by reconstruct) agree
assert paths_agree > 0.95
"""),
("code", r"""
# what each method says at full dose: agreement with oneself means little if every S site gets the same label
composition = pd.DataFrame({name: table.species[table.species.isin(["S2", "S1", "vacancy"])].value_counts(normalize=True)
                            for name, table in full_dose.items()}).T.reindex(columns=["S2", "S1", "vacancy"]).fillna(0)
# what each method's mixture estimates, whatever the labels say: the fitted S1 share and how far apart the S1 and
# S2 levels are in standard deviations (d'); below about 2 a label weighing the classes equally calls many S2 S1
composition["S1 share (mixture)"] = [table.attrs["mixture"]["fractions"]["S1"] for table in full_dose.values()]
composition["S1-S2 separation d'"] = [table.attrs["mixture"]["separation"] for table in full_dose.values()]
composition["same species at the lowest dose"] = thinning[thinning["dose fraction"] == min(FRACTIONS)].set_index(
    "method")["same species"]
overlapping = composition.index[composition["S1-S2 separation d'"] < 2].tolist()
print(f"S1 and S2 levels less than 2 standard deviations apart in: {', '.join(overlapping) or 'none'}")
finding = composition.drop(index="Atomap 2-D Gaussians", errors="ignore")["same species at the lowest dose"]
print(f"of the methods that find the lattice themselves, {finding.idxmax()} keeps its species best at "
      f"{min(FRACTIONS)} of the dose ({finding.max():.3f}), {finding.idxmin()} least ({finding.min():.3f})")
composition.round(3)

"""),
("md", r"""
What this test shows on a real frame, read from the two tables:

* **Self-consistency is not correctness.** The methods do not agree on what the
  S sites hold at full dose (the first columns of the composition table). Each
  site is labelled by its own intensity, with no prior that S₂ is common (the
  ideal observer's rule, chapter 5, which suits a balanced accuracy). Where a
  method's S₁ and S₂ levels lie less than about two standard deviations apart
  (the column d′, printed above the table), that rule calls a sizeable part of
  the S₂ sites S₁, so its share of S₁
  *labels* overstates the S₁ sites; the mixture's fitted **S₁ share** (the
  column next to it) is the composition the method actually estimates, and the
  number to quote. Where a method keeps its own labels as the dose falls, it is at
  least stable; which labels are *right* the frame cannot say.
* **Which method holds up** is printed above the composition table: of the
  methods that find the lattice in the thinned frame themselves, the one that
  keeps its species best at the lowest dose, and the one that keeps them least.
  Chapter 5, where ground truth is known, says whether stability there comes
  with correctness.
* **Atomap's agreement is 1 for the positions by construction** (its Gaussians
  start at the same sites at every dose), so only its species are tested, and the
  joint fit of its Gaussians labels S sites nearly the same way at every dose.
* **What a measured probe would change.** The convergence semiangle and the
  aberrations are assumed here; the counts fit uses that probe as the image of a
  column, so a wrong probe biases every column alike (the levels move together),
  while the network's object changes shape. Chapter 2 shows how to measure it.

"""),
("md", r"""
## Another format: a file this chapter writes

Your files may be `.hspy`, `.emd` or `.tif` rather than `.dm3`. To show that the
path is the same, the chapter writes a **simulated** frame (chapter 3's
simulator, 80 kV, 0.15 Å per pixel, calibrated in nm as many instruments save
it, with the beam energy and dwell time in its metadata) to `.hspy` and `.tif`
in a temporary folder and reads them back with `ds.load`.
"""),
("code", r"""
import subprocess
import sys
import tempfile

import hyperspy.api as hs
from deepstem_utils import dataset

folder = Path(tempfile.mkdtemp())
sim_probe = ds.Probe(80e3, 30.0, {"C30": -5e3}, source_size=0.5)
sim = dataset.simulate_frame((256, 256), sampling=0.15, dose=2e4, probe=sim_probe, rng=7, edge=0.0)
signal = hs.signals.Signal2D(sim.counts.astype(np.float32))
for axis in signal.axes_manager.signal_axes:
    axis.scale, axis.units = 0.015, "nm"
signal.metadata.set_item("Acquisition_instrument.TEM.beam_energy", 80.0)        # [keV], HyperSpy's convention
signal.metadata.set_item("Acquisition_instrument.TEM.convergence_angle", 30.0)  # [mrad]
signal.metadata.set_item("Acquisition_instrument.TEM.dwell_time", 2e-6)         # [s]
signal.save(folder / "simulated_frame.hspy")
signal.save(folder / "simulated_frame.tif")
sim_probe.to_json(folder / "probe.json")
for name in ("simulated_frame.hspy", "simulated_frame.tif"):
    loaded = ds.load(folder / name)
    print(f"{name:22s} pixel size {io.sampling_of(loaded):.3f} Å, settings {io.microscope_settings(loaded)}")
loaded = ds.load(folder / "simulated_frame.hspy")
sim_obj = ds.reconstruct(loaded, sim_probe)           # Signal2D in -> Signal2D out, calibration kept
sim_atoms = ds.find_atoms(sim_obj)
print("object calibration:", sim_obj.axes_manager.signal_axes[0].scale, sim_obj.axes_manager.signal_axes[0].units,
      "| provenance:", sim_obj.metadata.DeepSTEM.as_dictionary().get("package_version"))
print(sim_atoms.species.value_counts().to_dict())
"""),
("md", r"""
The `.tif` keeps the pixel size but not the beam energy, convergence angle or
dwell time: for such files, give them by hand (the probe JSON holds the first
two).

## The same steps in a terminal

Everything above is also a command. Here the chapter calls it as a terminal
would (`deepstem` is the same as `python -m deepstem_utils`); a folder stands
for all the image files in it.
"""),
("code", r"""
def deepstem(*args):
    result = subprocess.run([sys.executable, "-m", "deepstem_utils", *map(str, args)], capture_output=True, text=True)
    print("$ deepstem", " ".join(map(str, args)))
    print((result.stdout + result.stderr).strip(), f"\n(exit status {result.returncode})\n")
    return result.returncode


deepstem("reconstruct", folder / "simulated_frame.hspy", "--probe", folder / "probe.json", "--out", folder / "results")
deepstem("atoms", folder / "results", "--out", folder / "results")
deepstem("reconstruct", folder / "simulated_frame.hspy", "--probe", folder / "probe.json", "--out", folder / "results")
print(pd.read_csv(folder / "results" / "simulated_frame_atoms.csv").head())
"""),
("md", r"""
The second `reconstruct` refuses to replace the existing result (exit status
2, a one-line message): nothing you own is overwritten without `--overwrite`.

## A different material

`find_atoms(..., material=None)` knows no lattice: it returns every bright
column with species `"column"`, its position, its integrated intensity and a
confidence. That is the starting point for any crystal (here the same
simulated frame, read as if it were unknown).
"""),
("code", r"""
columns = ds.find_atoms(sim_obj, material=None)
fig, ax = plt.subplots(figsize=(5.5, 5.5))
show_image(ax, sim_obj.data, io.sampling_of(sim_obj), "material=None: every bright column", label="object")
show_sites(ax, columns.x, columns.y, columns.species)
plt.show()
print(f"{len(columns)} columns; intensity quartiles {np.percentile(columns.intensity, [25, 50, 75]).round(2)}")
"""),
("code", r"""
import shutil

shutil.rmtree(folder)
""", ['remove-cell']),
("md", r"""
## Your own files

```bash
deepstem reconstruct my_frame.dm4 --probe probe.json --out results/      # results/my_frame_object.hspy
deepstem atoms results/my_frame_object.hspy --out results/                 # results/my_frame_atoms.csv
```

Files without calibration (`.npy`, some `.tif`) need `--sampling` in Å per
pixel. The probe JSON comes from `deepstem zemlin` on your tableau
({ref}`ch:zemlin`) or is written by hand (`energy` [eV], `semiangle` [mrad],
`aberrations` in abTEM's names, `source_size` [Å]). Outputs are never
overwritten without `--overwrite`.

## Summary

* `ds.load` gives a calibrated `Signal2D`; `io.microscope_settings` reads the
  beam energy, dwell time and magnification where the file has them.
* Gain and dark offset come from the frame by photon transfer; `reconstruct`
  removes a clear pedestal on its own (`offset="auto"`).
* On this real 60 kV frame the MoS₂ lattice, its S sites and their confidences
  come out of the same `reconstruct` and `find_atoms` used on simulations; the
  convergence angle is assumed, so the object is only as good as that guess.
* Binomial thinning measures the dose an analysis needs without any ground truth.

## Exercises

1. Change the assumed semiangle to 25 and 35 mrad. How many sites change species?
2. Thin to 1/32 of the dose. What is lost first: Mo positions or S species?
"""),
("code", r"""
# Solution 1
for semiangle in (25.0, 35.0):
    other = ds.find_atoms(ds.reconstruct(crop, ds.Probe(60e3, semiangle, source_size=SOURCE)))
    i, j = match_sites(other, atoms.x, atoms.y, 0.5)
    print(semiangle, "mrad:", int(np.sum(other.species.to_numpy()[i] != atoms.species.to_numpy()[j])), "sites change")
""", ['hide-cell']),
]

write("notebooks/07_your_own_data.ipynb", cells)
