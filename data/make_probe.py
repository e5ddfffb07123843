"""Make ``data/probe_measured.json`` and ``data/probe_measured_60kV.json``: probes measured from a simulated Zemlin tableau (chapter 2's procedure).

Chapter 6 images its digital twin with a *measured* probe, as the paper did. The
instrument is simulated: an 80 kV aberration-corrected STEM after the corrector
has been tuned, so that its residual aberrations are those typical of a tuned
corrector (C1, A1 ~ 1.5 nm, coma C21 ~ 7 nm, i.e. B2 = C21/3 ~ 2.3 nm in Haider's
notation, C3 ~ 0.3 µm: an assumption, listed on the assumptions page), a 30 mrad
probe, a 0.5 Å source and the focal spread of Cc = 1.5 mm and a 0.63 eV energy spread
(FWHM; 50 Å 1σ at 80 kV, 67 Å at 60 kV). At 80 kV and at 60 kV a 13-image tableau
(untilted, 6 tilts at 10 mrad, 6 at 20 mrad) of simulated amorphous carbon is
recorded 40 nm underfocus at 1e4 e⁻/Å² per image, with that focal spread, and
measured with :func:`deepstem_utils.measure_aberrations`. ``probe_measured.json`` (80 kV) and ``probe_measured_60kV.json`` hold the
*measured* coefficients and the focal spread the tableau was simulated with (the
same gun and lens give the STEM probe its focal spread: an assumption); the true
coefficients and the uncertainties go to ``*_report.json`` beside each.

Run: .venv/bin/python data/make_probe.py   (about two minutes on 2 cores, mostly the simulation)
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

import deepstem_utils as ds
from deepstem_utils import zemlin
from deepstem_utils.physics import optics
from deepstem_utils.physics.probe import focal_spread_from

HERE = Path(__file__).parent
SAMPLING, SIZE, OFFSET = 0.2, 1024, -400.0
TRUTH = {"C10": 12.0, "C12": 15.0, "phi12": 0.6, "C21": 70.0, "phi21": -1.2, "C23": 60.0, "phi23": 0.4,
         "C30": 3.0e3}
SEMIANGLE, SOURCE, CC, ENERGY_SPREAD_FWHM = 30.0, 0.5, 1.5e7, 0.63  # Cc [Å], ΔE [eV]: assumptions


def focal_spread(energy: float) -> float:
    """The focal spread (1σ) [Å] at ``energy`` [eV] from the assumed Cc and energy spread (as the multislice set)."""
    return focal_spread_from(CC, ENERGY_SPREAD_FWHM / (2 * math.sqrt(2 * math.log(2))), energy)


def measure(energy: float, name: str, seed: int) -> None:
    """Simulate the tableau at ``energy`` [eV], measure it and write ``name``.json and ``name``_report.json."""
    rng = np.random.default_rng(seed)
    spread = focal_spread(energy)
    tilts = zemlin.tableau_tilts((10.0, 20.0), 6)
    recorded = dict(TRUTH, C10=TRUTH["C10"] + OFFSET)
    tableau = zemlin.simulate_tableau(recorded, tilts, energy, (SIZE, SIZE), SAMPLING, dose=1e4,
                                      focal_spread=spread, angular_spread=0.1, rng=rng)
    t0 = time.perf_counter()
    measured, uncertainty = zemlin.measure_aberrations(tableau, tilts, energy, SAMPLING, defocus_offset=OFFSET)
    seconds = time.perf_counter() - t0
    kept = {k: float(v) for k, v in measured.items() if k in optics.POLAR_SYMBOLS}
    probe = ds.Probe(energy, SEMIANGLE, kept, source_size=SOURCE, focal_spread=spread)
    probe.to_json(HERE / f"{name}.json", overwrite=True)  # this script owns the file
    report = {"true": TRUTH, "measured": kept,
              "uncertainty": {k: float(v) for k, v in uncertainty.items() if k in optics.POLAR_SYMBOLS},
              "error_in_standard_errors": {k: round(zemlin.standard_error(TRUTH, measured, uncertainty, k), 2)
                                           for k in ("C10", "C12", "C21", "C23", "C30", "C32", "C34")},
              "tableau": {"energy_eV": energy, "sampling_A": SAMPLING, "size_px": SIZE, "recording_C10_A": OFFSET,
                          "dose_per_image": 1e4, "focal_spread_A": spread, "angular_spread_mrad": 0.1,
                          "Cc_A": CC, "energy_spread_fwhm_eV": ENERGY_SPREAD_FWHM,
                          "tilts_mrad": np.asarray(tilts).tolist(), "seed": seed},
              "method": "deepstem_utils.measure_aberrations (polar Thon-ring fit, generalised least squares)",
              "seconds_to_measure": round(seconds, 1)}
    (HERE / f"{name}_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{energy / 1e3:.0f} kV, focal spread {spread:.1f} Å:")
    for k in ("C10", "C12", "C21", "C23", "C30"):
        print(f"  {k}: true {TRUTH.get(k, 0.0):9.1f} Å  measured {kept.get(k, 0.0):9.1f} ± {uncertainty[k]:.1f} Å  "
              f"({report['error_in_standard_errors'][k]:.1f} σ)")
    print(f"  measured in {seconds:.1f} s")


def main():
    measure(80e3, "probe_measured", seed=2021)
    measure(60e3, "probe_measured_60kV", seed=2060)


if __name__ == "__main__":
    main()
