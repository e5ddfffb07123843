"""Make ``data/multislice_eval.npz``: the multislice evaluation set (abTEM, frozen phonons, focal spread).

Noiseless HAADF scans of defective monolayer MoS₂ (S₁ columns, S divacancies, Mo
vacancies, Mo adatoms), bare and on a graphene support, at 60 and 80 kV, simulated
with abTEM's PRISM multislice — not by the linear image model that the network is
trained on. The evaluation (``deepstem_utils.evaluation.multislice``) adds Poisson
noise at any dose; every method is then given the probe *measured* from a Zemlin
tableau (the full chain of chapter 2).

Physics and settings (assumptions where the paper gives none):

* Structure: :func:`deepstem_utils.physics.specimen.random_mos2` in projection, lifted
  to 3-D: Mo at z = 0, S at ±1.585 Å (an S₁ column keeps its top or bottom S at
  random), Mo adatoms 1.6 Å above the top S plane, graphene 3.35 Å below the bottom S plane.
  The frame (112 × 112 px of 0.16 Å) sits in a cell 4 Å larger on every side (vacuum
  beyond the structure's edge, so the periodic cell does not wrap).
* Frozen phonons: Gaussian displacements, 1σ per direction 0.05 Å (Mo), 0.07 Å (S),
  0.07 Å (C) (room temperature, an assumption of the order of the MoS₂ Debye-Waller factors).
* Probe: the book's true instrument (``TRUTH`` of ``data/make_probe.py``, imported from it),
  30 mrad, focal spread 1σ = Cc σ_E / E with Cc 1.5 mm and 0.63 eV FWHM (50 Å at 80 kV,
  67 Å at 60 kV), source 0.5 Å FWHM (applied as a Gaussian blur of the scan).
  The focal spread is averaged by Gauss–Hermite quadrature (``NODES`` nodes); each node is
  paired with its own frozen-phonon configuration (a stratified average over both).
* Potential: Lobato parametrisation, 0.05 Å sampling, 1 Å slices, infinite projection;
  PRISM interpolation factor 3 (window ≥ 10 Å, several probe d50).
* Detector: a flexible annular detector in 2 mrad rings; the file keeps the HAADF
  range of each voltage, 60-200 mrad at 80 kV and 70-220 mrad at 60 kV (realistic ranges).

Output (float32 images, small): ``images`` (n, 112, 112) detected fraction per incident
electron; per frame its condition, the true sites (x, y [Å] in frame coordinates, species),
the true probe (JSON) and every setting. About an hour on one idle core (PRISM is single-threaded here).

Run: ``.venv/bin/python data/make_multislice_eval.py`` (``--quick``: a tiny cell in seconds, for tests).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from deepstem_utils.physics import specimen
from deepstem_utils.physics.probe import Probe

sys.path.insert(0, str(Path(__file__).parent))
from make_probe import SEMIANGLE, SOURCE, TRUTH, focal_spread  # noqa: E402  (one instrument for both scripts)

OUT = Path(__file__).with_name("multislice_eval.npz")
DETECTORS = {80e3: (60.0, 200.0), 60e3: (70.0, 220.0)}
CONDITIONS = [(80e3, False), (80e3, True), (60e3, False), (60e3, True)]
SIGMAS = {"Mo": 0.05, "S": 0.07, "C": 0.07}
Z_S, Z_ADATOM, Z_GRAPHENE = 1.585, 1.585 + 1.6, -(1.585 + 3.35)
SETTINGS = dict(sampling=0.16, size=112, frames_per_condition=2, pad=4.0, potential_sampling=0.05,
                slice_thickness=1.0, interpolation=3, nodes=7, seed=2023,
                defects=dict(s_vacancy=0.15, s_divacancy=0.05, mo_vacancy=0.02, adatoms=0.006, twin=0.0,
                             edge=0.0))
QUICK = dict(SETTINGS, size=24, frames_per_condition=1, pad=2.0, interpolation=1, nodes=2)


def true_probe(energy: float) -> Probe:
    """The instrument's true probe at ``energy`` [eV]."""
    return Probe(energy, SEMIANGLE, TRUTH, source_size=SOURCE, focal_spread=focal_spread(energy))


def atoms_3d(sites: specimen.Sites, offset: float, rng: np.random.Generator):
    """ase Atoms of the columns (symbols and positions [Å]); the frame's (0, 0) at (offset, offset)."""
    import ase  # noqa: PLC0415  (only the generating script needs it)

    symbols, positions = [], []
    for x, y, species, n_mo, n_s, n_c in zip(sites.x, sites.y, sites.species, sites.counts.get("Mo", 0 * sites.x),
                                             sites.counts.get("S", 0 * sites.x), sites.counts.get("C", 0 * sites.x)):
        if n_mo > 0:
            symbols.append("Mo")
            positions.append((x, y, Z_ADATOM if species == "Mo_adatom" else 0.0))
        if n_s >= 2:
            symbols += ["S", "S"]
            positions += [(x, y, Z_S), (x, y, -Z_S)]
        elif n_s == 1:
            symbols.append("S")
            positions.append((x, y, Z_S if rng.random() < 0.5 else -Z_S))
        if n_c > 0:
            symbols.append("C")
            positions.append((x, y, Z_GRAPHENE))
    positions = np.array(positions) + np.array([offset, offset, 0.0])
    return ase.Atoms(symbols, positions=positions)


def simulate(sites, energy: float, settings: dict, rng: np.random.Generator) -> np.ndarray:
    """Noiseless HAADF scan (ny, nx) of ``sites``: detected fraction per incident electron."""
    import abtem  # noqa: PLC0415  (only the generating script needs it)

    abtem.config.set({"device": "cpu", "dask.lazy": False})
    n, s, pad = settings["size"], settings["sampling"], settings["pad"]
    side = n * s
    atoms = atoms_3d(sites, pad, rng)
    z = atoms.positions[:, 2]
    atoms.positions[:, 2] += 5.0 - z.min()
    atoms.set_cell([side + 2 * pad, side + 2 * pad, z.max() - z.min() + 10.0])
    atoms.pbc = True
    probe = true_probe(energy)
    nodes, weights = np.polynomial.hermite_e.hermegauss(settings["nodes"])
    weights = weights / weights.sum()
    inner, outer = DETECTORS[energy]
    image = np.zeros((n, n))
    sigmas = np.array([SIGMAS[symbol] for symbol in atoms.get_chemical_symbols()])
    for node, weight in zip(nodes, weights):
        displaced = atoms.copy()
        displaced.positions += rng.normal(size=(len(atoms), 3)) * sigmas[:, None]  # one frozen-phonon configuration
        potential = abtem.Potential(displaced, sampling=settings["potential_sampling"],
                                    slice_thickness=settings["slice_thickness"], parametrization="lobato",
                                    projection="infinite")
        s_matrix = abtem.SMatrix(potential=potential, energy=energy, semiangle_cutoff=SEMIANGLE,
                                 interpolation=settings["interpolation"]).build(lazy=False)
        ab = dict(probe.aberrations)
        # abTEM's defocus is -C10; this node's defocus offset is node * sigma
        ctf = abtem.CTF(semiangle_cutoff=SEMIANGLE, energy=energy, defocus=-ab.pop("C10") + node * probe.focal_spread,
                        **ab)
        scan = abtem.GridScan(start=(pad, pad), end=(pad + side, pad + side), sampling=s, endpoint=False)
        detector = abtem.AnnularDetector(inner=inner, outer=outer)
        measurement = s_matrix.reduce(scan=scan, detectors=detector, ctf=ctf)
        measurement = measurement.compute() if hasattr(measurement, "compute") else measurement
        image += weight * np.asarray(measurement.array, float).T[:n, :n]  # abTEM is (x, y); ours (rows=y, cols=x)
    sigma_px = probe.source_size / (2 * math.sqrt(2 * math.log(2))) / s
    return ndimage.gaussian_filter(image, sigma_px, mode="reflect")  # the effective source: incoherent blur


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny cell with one frame (seconds), for tests")
    parser.add_argument("--out", default=str(OUT), help="output .npz")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else SETTINGS
    conditions = CONDITIONS[:1] if args.quick else CONDITIONS
    out = Path(args.out)
    images, condition, energies, frame_sites, probes = [], [], [], [], []
    start = time.time()
    for c, (energy, graphene) in enumerate(conditions):
        for k in range(settings["frames_per_condition"]):
            rng = np.random.default_rng([settings["seed"], c, k])
            side = settings["size"] * settings["sampling"]
            sites = specimen.random_mos2((side, side), rng, graphene=graphene, **settings["defects"])
            image = simulate(sites, energy, settings, rng)
            images.append(image.astype(np.float32))
            condition.append(f"{energy / 1e3:.0f} kV, {'on graphene' if graphene else 'bare'}")
            energies.append(energy)
            keep = sites.species != "C"
            frame_sites.append({"x": sites.x[keep].tolist(), "y": sites.y[keep].tolist(),
                                "species": [str(v) for v in sites.species[keep]]})
            probes.append(true_probe(energy).to_dict())
            print(f"frame {len(images)}: {condition[-1]}, mean detected fraction {image.mean():.2e} "
                  f"({time.time() - start:.0f} s)", flush=True)
    import abtem  # noqa: PLC0415

    np.savez_compressed(out, images=np.stack(images), condition=np.array(condition), energy=np.array(energies),
                        sites=np.array(json.dumps(frame_sites)), probes=np.array(json.dumps(probes)),
                        detectors=np.array(json.dumps({f"{e:.0f}": d for e, d in DETECTORS.items()})),
                        settings=np.array(json.dumps(settings)), sampling=np.array(settings["sampling"]),
                        abtem_version=np.array(abtem.__version__))
    print(f"wrote {out} ({len(images)} frames, {out.stat().st_size / 1e6:.2f} MB) in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
