"""Where the Zemlin measurement's C3 bias on physical tableaux comes from (prints a table).

One noise-free 512² tableau (chapter 2's aberrations, recorded 40 nm underfocus, focal spread 50 Å,
illumination spread 0.1 mrad), simulated twice: with the previous benchmark's five fixed focal-spread
points (Thon rings survive where the focal spread erases them) and with as many points as the physics
needs. For every image: the apparent defocus C1' that `fit_diffractogram` found, the true apparent
defocus at that tilt (`apparent_aberrations`), their difference, and the highest spatial frequency the
fit used; then what `measure_aberrations` made of each tableau.

With the focal spread integrated, a tilted beam's rings are damped by
exp(-(π σ)² (λk² + 2 τ·k)² / 2): strongly along the tilt, not at all on the "achromatic circle"
λk² + 2 τ·k = 0. A fit that treats the damping as the same in every direction mis-weights the sectors,
and its error in C1' depends on the tilt's azimuth; C3 and coma are solved from exactly those C1'.

Run: .venv/bin/python benchmarks/zemlin_tilt_defocus.py   (about 10 s)
"""

from __future__ import annotations

import numpy as np

from deepstem_utils import zemlin

TRUTH = {"C10": 45.0, "C12": 60.0, "phi12": 0.6, "C21": 1400.0, "phi21": 1.0, "C30": 25000.0}
OFFSET = -400.0  # recording defocus as a C10 [Å]


def main():
    recorded = dict(TRUTH, C10=TRUTH["C10"] + OFFSET)
    tilts = zemlin.tableau_tilts((10.0, 20.0), 6)
    film = zemlin.amorphous_carbon((512, 512), 0.2, 80e3, rng=np.random.default_rng(1))
    true = zemlin.apparent_aberrations(recorded, tilts)
    results = {}
    print("| tilt [mrad] | azimuth [°] | true C1' [Å] | 5-point fit − true [Å] | physical fit − true [Å] | "
          "k max 5-point / physical [1/Å] |")
    print("|---|---|---|---|---|---|")
    fits = {}
    for label, quadrature in [("5-point", (5, 3)), ("physical", (None, 3))]:
        stack = zemlin.simulate_tableau(recorded, tilts, 80e3, (512, 512), 0.2, dose=np.inf, focal_spread=50.0,
                                        angular_spread=0.1, specimen=film, rng=1, quadrature=quadrature)
        measured, sigma, fits[label] = zemlin.measure_aberrations(stack, tilts, 80e3, 0.2, defocus_offset=OFFSET,
                                                                  return_fits=True)
        results[label] = (measured, sigma)
    for t, a, f5, fp in zip(tilts, true, fits["5-point"], fits["physical"]):
        print(f"| {np.hypot(*t):.0f} | {np.degrees(np.arctan2(t[1], t[0])):.0f} | {a[0]:.1f} | "
              f"{abs(f5.C1) - abs(a[0]):+.1f} | {abs(fp.C1) - abs(a[0]):+.1f} | "
              f"{f5.k_range[1]:.2f} / {fp.k_range[1]:.2f} |")
    print("\n| tableau | C10 [Å] | C21 [Å] | C30 [Å] |")
    print("|---|---|---|---|")
    print(f"| truth | {TRUTH['C10']:.1f} | {TRUTH['C21']:.0f} | {TRUTH['C30']:.0f} |")
    for label, (m, s) in results.items():
        print(f"| {label} | {m['C10']:.1f} ± {s['C10']:.1f} | {m['C21']:.0f} ± {s['C21']:.0f} | "
              f"{m['C30']:.0f} ± {s['C30']:.0f} |")


if __name__ == "__main__":
    main()
