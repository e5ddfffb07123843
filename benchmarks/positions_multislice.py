"""Column positions with ``material=None`` on frames the network never saw (prints a table).

Issue 20's must-reach: on a multislice frame at low dose, the columns located in DeepSTEM's object (and
refined in the counts) must scatter no more about the truth than those of a Gaussian filter, on the same
columns. The frames are ``data/multislice_eval.npz`` (abTEM, 60 and 80 kV, bare and on graphene), recorded
at each dose with a fixed seed; every method gets the probe measured from a tableau (``data/probe_measured*``).
Columns are matched to the true Mo, S₂ and S₁ sites within 0.6 Å; the RMS is over the sites every method
found.

Run: .venv/bin/python benchmarks/positions_multislice.py [--doses 3e3 1e4 3e4]   (about 1 min)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

import deepstem_utils as ds
from deepstem_utils.evaluation import multislice
from deepstem_utils.evaluation.baselines import GAUSSIAN_SIGMA
from deepstem_utils.evaluation.metrics import match_sites
from deepstem_utils.physics.probe import psf_grid

DATA = Path(__file__).resolve().parents[1] / "data"
METHODS = ("DeepSTEM object", "DeepSTEM + counts", "Gaussian filter", "Gaussian + counts")


def errors(frame, psf) -> dict:
    """Distance to the true site [Å] of every matched Mo/S₂/S₁ site, by method: {method: {site: distance}}."""
    species = np.asarray(frame.sites.species).astype(str)
    keep = np.isin(species, ["Mo", "S2", "S1"])
    tx, ty = np.asarray(frame.sites.x)[keep], np.asarray(frame.sites.y)[keep]
    obj = ds.reconstruct(frame.counts, frame.probe, sampling=frame.sampling)
    smoothed = ndimage.gaussian_filter(frame.counts, GAUSSIAN_SIGMA / frame.sampling)
    counts = {"counts": frame.counts, "psf": psf}
    tables = {"DeepSTEM object": ds.find_atoms(obj, frame.sampling, material=None),
              "DeepSTEM + counts": ds.find_atoms(obj, frame.sampling, material=None, **counts),
              "Gaussian filter": ds.find_atoms(smoothed, frame.sampling, material=None),
              "Gaussian + counts": ds.find_atoms(smoothed, frame.sampling, material=None, **counts)}
    out = {}
    for name, table in tables.items():
        i, j = match_sites(table, tx, ty, 0.6)
        out[name] = dict(zip(j, np.hypot(table.x.to_numpy()[i] - tx[j], table.y.to_numpy()[i] - ty[j])))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--doses", type=float, nargs="+", default=[3e3, 1e4, 3e4])
    args = parser.parse_args()
    evaluation_set = multislice.load_multislice_set(DATA / "multislice_eval.npz")
    probes = {80e3: ds.Probe.from_json(DATA / "probe_measured.json"),
              60e3: ds.Probe.from_json(DATA / "probe_measured_60kV.json")}
    print("| dose [e⁻/Å²] | sites (found by all) | " + " | ".join(f"{m} RMS [pm]" for m in METHODS) + " |")
    print("|---" * (2 + len(METHODS)) + "|")
    for dose in args.doses:
        pooled = {m: [] for m in METHODS}
        for i in range(len(evaluation_set)):
            frame = evaluation_set.frame(i, dose, seed=0, probe=probes[float(evaluation_set.energies[i])])
            size = psf_grid(frame.sampling)
            found = errors(frame, frame.probe.intensity((size, size), frame.sampling))
            common = set.intersection(*(set(d) for d in found.values()))
            for m in METHODS:
                pooled[m] += [found[m][j] for j in common]
        rms = {m: 100 * float(np.sqrt(np.mean(np.square(pooled[m])))) for m in METHODS}
        print(f"| {dose:.0e} | {len(pooled[METHODS[0]])} | " + " | ".join(f"{rms[m]:.1f}" for m in METHODS) + " |")


if __name__ == "__main__":
    main()
