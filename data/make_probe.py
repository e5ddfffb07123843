"""Make ``data/probe_measured.json``: the probe measured from a simulated Zemlin tableau (chapter 2's procedure).

Chapter 6 images its digital twin with a *measured* probe, as the paper did. The
instrument is simulated: an 80 kV aberration-corrected STEM after the corrector
has been tuned, so that its residual aberrations are those typical of a tuned
corrector (C1, A1 ~ 1.5 nm, B2 ~ 7 nm, C3 ~ 0.3 µm: an assumption, listed on the
assumptions page), a 30 mrad probe and a 0.5 Å source. A 13-image tableau (untilted, 6 tilts at
10 mrad, 6 at 20 mrad) of simulated amorphous carbon is recorded 40 nm underfocus
at 1e4 e⁻/Å² per image and measured with :func:`deepstem_utils.measure_aberrations`.
The probe JSON holds the *measured* coefficients; the true ones and the
uncertainties go to ``probe_measured_report.json`` beside it.

Run: .venv/bin/python data/make_probe.py   (about two minutes on 2 cores)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import deepstem_utils as ds
from deepstem_utils import zemlin
from deepstem_utils.physics import optics

HERE = Path(__file__).parent
ENERGY, SAMPLING, SIZE, OFFSET = 80e3, 0.2, 1024, -400.0
TRUTH = {"C10": 12.0, "C12": 15.0, "phi12": 0.6, "C21": 70.0, "phi21": -1.2, "C23": 60.0, "phi23": 0.4,
         "C30": 3.0e3}
SEMIANGLE, SOURCE = 30.0, 0.5


def main():
    rng = np.random.default_rng(2021)
    tilts = zemlin.tableau_tilts((10.0, 20.0), 6)
    recorded = dict(TRUTH, C10=TRUTH["C10"] + OFFSET)
    tableau = zemlin.simulate_tableau(recorded, tilts, ENERGY, (SIZE, SIZE), SAMPLING, dose=1e4, focal_spread=50.0,
                                      angular_spread=0.1, rng=rng)
    measured, uncertainty = zemlin.measure_aberrations(tableau, tilts, ENERGY, SAMPLING, defocus_offset=OFFSET)
    kept = {k: float(v) for k, v in measured.items() if k in optics.POLAR_SYMBOLS}
    probe = ds.Probe(ENERGY, SEMIANGLE, kept, source_size=SOURCE)
    probe.to_json(HERE / "probe_measured.json", overwrite=True)  # this script owns the file
    report = {"true": TRUTH, "measured": kept,
              "uncertainty": {k: float(v) for k, v in uncertainty.items() if k in optics.POLAR_SYMBOLS},
              "tableau": {"energy_eV": ENERGY, "sampling_A": SAMPLING, "size_px": SIZE, "recording_C10_A": OFFSET,
                          "dose_per_image": 1e4, "tilts_mrad": np.asarray(tilts).tolist(), "seed": 2021}}
    (HERE / "probe_measured_report.json").write_text(json.dumps(report, indent=2) + "\n")
    for k in ("C10", "C12", "C21", "C23", "C30"):
        print(f"{k}: true {TRUTH.get(k, 0.0):9.1f} Å  measured {kept.get(k, 0.0):9.1f} ± {uncertainty[k]:.1f} Å")


if __name__ == "__main__":
    main()
