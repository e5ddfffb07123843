"""Dose sweep: S-site accuracy and Mo position error versus dose for every method (prints tables).

Held-out simulated frames at doses from 1e3 to 1e5 e⁻/Å², each method with the same
probe and the same find_atoms; the ideal observer and the Cramér-Rao bound on the
same frames; the dose each method needs for 0.9 balanced S-site accuracy; and the
speed of reconstruct() against Richardson-Lucy with 30 iterations on 512² frames.

Run: .venv/bin/python benchmarks/dose_sweep.py [--frames 6] [--size 192] [--doses 9]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import deepstem_utils as ds
from deepstem_utils import evaluation
from deepstem_utils.evaluation import baselines
from deepstem_utils.network import dataset

PROBE = ds.Probe(80e3, 30.0, {"C10": 10.0, "C12": 15.0, "phi12": 0.3, "C21": 150.0, "C30": -5e3}, source_size=0.5)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--doses", type=int, default=9)  # 9: 1e4 is one of them
    args = parser.parse_args()
    doses = np.geomspace(1e3, 1e5, args.doses)
    sweep = evaluation.dose_sweep(doses, args.frames, shape=(args.size, args.size), probe=PROBE)
    acc = sweep.groupby(["dose", "method"], sort=False).s_accuracy.agg(["mean", "sem"]).unstack()
    rmse = sweep.groupby(["dose", "method"], sort=False).mo_rmse.mean().unstack()
    print(f"{args.frames} frames per dose, {args.size}² px at 0.16 Å/px")
    print("\nbalanced S-site accuracy (mean ± sem)")
    methods = list(dict.fromkeys(sweep.method))
    print("| dose [e⁻/Å²] | " + " | ".join(methods) + " |")
    print("|---" * (len(methods) + 1) + "|")
    for dose in acc.index:
        cells = [f"{acc.loc[dose, ('mean', m)]:.3f} ± {acc.loc[dose, ('sem', m)]:.3f}" for m in methods]
        print(f"| {dose:.3g} | " + " | ".join(cells) + " |")
    print("\nMo position RMSE [pm] (ideal observer column: Cramér-Rao bound)")
    print("| dose [e⁻/Å²] | " + " | ".join(methods) + " |")
    print("|---" * (len(methods) + 1) + "|")
    for dose in rmse.index:
        print(f"| {dose:.3g} | " + " | ".join(f"{rmse.loc[dose, m]:.1f}" for m in methods) + " |")
    needed = evaluation.dose_for_accuracy(sweep, 0.9)
    print("\ndose for 0.9 balanced S-site accuracy [e⁻/Å²]")
    for m, v in needed.items():
        print(f"| {m} | {v:.3g} |")
    best = needed[["raw", "gaussian", "wiener", "richardson_lucy", "bm3d", "gaussian+fit"]].min()
    for method in ("deepstem", "deepstem+fit"):
        print(f"\n{method} / best classical: {needed[method] / best:.2f} (target <= 0.25)")
        print(f"{method} / ideal observer: {needed[method] / needed['ideal observer']:.2f} (target <= 2)")
    print(f"ideal observer / (best classical / 4): {needed['ideal observer'] / (best / 4):.2f} "
          "(> 1: the 0.25 target lies below the physical limit)")
    big = dataset.simulate_frame((512, 512), sampling=0.16, dose=1e4, probe=PROBE, rng=3)
    psf = PROBE.intensity((64, 64), 0.16)
    ds.reconstruct(big.counts, PROBE, sampling=0.16)
    times = {}
    for name, run in [("reconstruct", lambda: ds.reconstruct(big.counts, PROBE, sampling=0.16)),
                      ("RL-30", lambda: baselines.richardson_lucy(big.counts, psf, 30))]:
        t = []
        for _ in range(3):
            t0 = time.perf_counter()
            run()
            t.append(time.perf_counter() - t0)
        times[name] = float(np.median(t))
    print(f"\n512² frame: reconstruct {1 / times['reconstruct']:.1f} frames/s, RL-30 {1 / times['RL-30']:.2f} frames/s, "
          f"speed-up {times['RL-30'] / times['reconstruct']:.1f}x (targets >= 5 frames/s, >= 5x)")


if __name__ == "__main__":
    main()
