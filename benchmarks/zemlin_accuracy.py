"""Accuracy of the Zemlin-tableau aberration measurement (prints a table).

20 random aberration sets typical of an aberration-corrected 80 kV instrument
(|C1| <= 20 nm, |A1| <= 20 nm, |B2| <= 200 nm, |A2| <= 200 nm, |C3| <= 5 µm),
each recorded as a tableau (axial image + rings at 10 and 20 mrad, 6 tilts each),
1024² px at 0.2 Å/px, 1e4 e⁻/Å² per image, focal spread 50 Å, illumination
spread 0.1 mrad, a-C amplitude contrast 0.07, recorded 40 nm underfocus.

Run: .venv/bin/python benchmarks/zemlin_accuracy.py [--sets 20] [--size 1024]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from deepstem_utils import zemlin

REQUIRED = {"C1": 5.0, "A1": 5.0, "B2": 50.0, "A2": 100.0, "C3": 3000.0}  # [Å] (0.5 nm, 0.5 nm, 5 nm, 10 nm, 0.3 µm)
NAMES = {"C1": "C10", "A1": "C12", "B2": "C21", "A2": "C23", "C3": "C30"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=20)
    parser.add_argument("--first", type=int, default=0, help="index of the first set (sets are seeded one by one, "
                        "so a long run can be split: --first 6 --sets 14)")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=2021)
    args = parser.parse_args()
    tilts = zemlin.tableau_tilts((10.0, 20.0), 6)
    offset = -400.0
    rows = []
    print(f"{'set':>3} | " + " | ".join(f"{n:>8}" for n in NAMES) + " | seconds")
    for i in range(args.first, args.first + args.sets):
        rng = np.random.default_rng([args.seed, i])  # each set reproducible on its own
        ab = zemlin.random_aberrations(rng)
        recorded = dict(ab, C10=ab["C10"] + offset)
        t0 = time.time()
        tableau = zemlin.simulate_tableau(recorded, tilts, shape=(args.size, args.size), sampling=0.2, dose=1e4,
                                          focal_spread=50.0, angular_spread=0.1, rng=rng)
        measured, _ = zemlin.measure_aberrations(tableau, tilts, 80e3, 0.2, defocus_offset=offset)
        errs = {n: zemlin.aberration_error(ab, measured, NAMES[n]) for n in NAMES}
        rows.append(errs)
        print(f"{i:>3} | " + " | ".join(f"{errs[n] / 10:7.2f}n" for n in NAMES) + f" | {time.time() - t0:6.1f}",
              flush=True)
    rms = {n: math.sqrt(np.mean([r[n] ** 2 for r in rows])) for n in NAMES}
    print()
    print("| aberration | RMS error | required | pass |")
    print("|---|---|---|---|")
    for n in NAMES:
        unit, scale = ("µm", 1e4) if n == "C3" else ("nm", 10.0)
        ok = "yes" if rms[n] <= REQUIRED[n] else "NO"
        print(f"| {n} ({NAMES[n]}) | {rms[n] / scale:.3f} {unit} | {REQUIRED[n] / scale:.2f} {unit} | {ok} |")


if __name__ == "__main__":
    main()
