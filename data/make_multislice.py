"""Multislice HAADF frames of monolayer MoS₂ with abTEM (the linear-model check of chapter 03).

Writes ``data/multislice_mos2.npz``: a noiseless multislice HAADF scan of a
periodic 2H-MoS₂ supercell with one S monovacancy (an S1 column), one S
divacancy (an empty S site) and one Mo adatom above a hollow site, with the
column positions and species (ground truth) and every setting used.

Settings (assumptions where the paper gives none): 80 kV, 30 mrad, aberration
free, HAADF detector 60-200 mrad, potential sampling 0.05 Å, 1 Å slices,
Lobato parametrisation, infinite projection, 4 frozen-phonon configurations
with 0.08 Å rms displacement, scan sampling 0.16 Å.

Run: ``.venv/bin/python data/make_multislice.py`` (a few minutes on 2 cores).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("multislice_mos2.npz")
SETTINGS = dict(energy=80e3, semiangle=30.0, inner=60.0, outer=200.0, potential_sampling=0.05,
                slice_thickness=1.0, phonon_configs=4, phonon_sigma=0.08, scan_sampling=0.16, repeat=(4, 2))


def structure():
    import abtem
    from ase import Atom
    from ase.build import mx2

    cell = mx2(formula="MoS2", kind="2H", a=3.16, thickness=3.17, size=(1, 1, 1), vacuum=2.0)
    cell = abtem.orthogonalize_cell(cell)
    atoms = cell * (*SETTINGS["repeat"], 1)
    atoms.center(vacuum=2.0, axis=2)
    xy = atoms.positions[:, :2]
    symbols = np.array(atoms.get_chemical_symbols())
    centre = np.diag(atoms.cell)[:2] / 2
    s_idx = np.flatnonzero(symbols == "S")
    # S columns: pairs of S with the same (x, y)
    order = np.argsort(np.hypot(*(xy[s_idx] - centre).T))
    first = s_idx[order[0]]
    partners = s_idx[np.hypot(*(xy[s_idx] - xy[first]).T) < 0.1]
    top = partners[np.argmax(atoms.positions[partners, 2])]
    # a second S column two columns away for the divacancy
    far = s_idx[np.hypot(*(xy[s_idx] - xy[first]).T) > 3.0]
    second = far[np.argmin(np.hypot(*(xy[far] - centre - np.array([-3.5, 2.5])).T))]
    pair2 = s_idx[np.hypot(*(xy[s_idx] - xy[second]).T) < 0.1]
    remove = [top, *pair2]
    # Mo adatom above a hollow site (the centre of a hexagon) away from the defects
    mo = np.flatnonzero(symbols == "Mo")
    m0 = mo[np.argmin(np.hypot(*(xy[mo] - centre - np.array([2.5, -2.5])).T))]
    hollow = xy[m0] + np.array([3.16 / 2, 3.16 / (2 * np.sqrt(3))]) * np.array([1, -1])
    hollow = hollow % np.diag(atoms.cell)[:2]  # inside the periodic cell, where the scan sees it whole
    vacancy_xy = xy[second].copy()
    del atoms[sorted(remove, reverse=True)]
    z_top = atoms.positions[:, 2].max()
    atoms.append(Atom("Mo", (hollow[0], hollow[1], z_top + 1.6)))
    return atoms, vacancy_xy


def columns(atoms, vacancy_xy):
    """Projected columns and their species (Mo, S2, S1, vacancy, Mo_adatom)."""
    xy = atoms.positions[:, :2]
    symbols = np.array(atoms.get_chemical_symbols())
    out_xy, species = [], []
    used = np.zeros(len(atoms), bool)
    for i in range(len(atoms)):
        if used[i]:
            continue
        same = np.flatnonzero((np.hypot(*(xy - xy[i]).T) < 0.1) & ~used)
        used[same] = True
        if symbols[i] == "Mo":
            species.append("Mo_adatom" if i == len(atoms) - 1 else "Mo")
        else:
            species.append("S2" if len(same) == 2 else "S1")
        out_xy.append(xy[same].mean(0))
    out_xy.append(vacancy_xy)
    species.append("vacancy")
    return np.array(out_xy), np.array(species)


def main():
    import abtem

    abtem.config.set({"device": "cpu"})
    atoms, vacancy_xy = structure()
    frozen = abtem.FrozenPhonons(atoms, num_configs=SETTINGS["phonon_configs"], sigmas=SETTINGS["phonon_sigma"],
                                 seed=1)
    potential = abtem.Potential(frozen, sampling=SETTINGS["potential_sampling"],
                                slice_thickness=SETTINGS["slice_thickness"], parametrization="lobato",
                                projection="infinite")
    probe = abtem.Probe(energy=SETTINGS["energy"], semiangle_cutoff=SETTINGS["semiangle"])
    extent = np.diag(atoms.cell)[:2]
    scan = abtem.GridScan(start=(0, 0), end=tuple(extent), sampling=SETTINGS["scan_sampling"])
    detector = abtem.AnnularDetector(inner=SETTINGS["inner"], outer=SETTINGS["outer"])
    measurement = probe.scan(potential, scan=scan, detectors=detector).compute(progress_bar=True)
    image = np.asarray(measurement.array).T  # abTEM is (x, y); the contract is (rows=y, cols=x)
    xy, species = columns(atoms, vacancy_xy)
    np.savez_compressed(OUT, image=image, sampling=np.array(scan.sampling), extent=extent, x=xy[:, 0],
                        y=xy[:, 1], species=species, settings=np.array(repr(SETTINGS)),
                        abtem_version=np.array(abtem.__version__))
    print(f"wrote {OUT} ({image.shape[0]}x{image.shape[1]} px, mean detected fraction {image.mean():.2e})")


if __name__ == "__main__":
    main()
