"""DeepSTEM reconstruction against Richardson-Lucy on held-out frames (prints a table).

Held-out simulated frames (seeds never used in training) at 1e4 e⁻/Å², 0.16 Å/px,
each with its own random probe. Richardson-Lucy gets the same probe and its best
iteration count (best single count for the set, and the per-frame oracle).
Also: S2 vs S1 separation by integrated object intensity at the true S sites,
and the time to reconstruct a 512x512 frame.

Run: .venv/bin/python benchmarks/reconstruction.py [--frames 20] [--size 256]
"""

from __future__ import annotations

import argparse

import numpy as np

import deepstem_utils as ds
from deepstem_utils import timing
from deepstem_utils.atoms.columns import integrated_intensity
from deepstem_utils.evaluation import baselines, metrics
from deepstem_utils.network import dataset


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--dose", type=float, default=1e4)
    parser.add_argument("--rl-max", type=int, default=150)
    args = parser.parse_args()
    s = 0.16
    frames = [dataset.simulate_frame((args.size, args.size), sampling=s, dose=args.dose,
                                     rng=np.random.default_rng([2021, i])) for i in range(args.frames)]
    objects = [ds.reconstruct(f.counts, f.probe, sampling=s) for f in frames]
    deep = np.array([metrics.psnr(f.obj, o / f.electrons_per_pixel) for f, o in zip(frames, objects)])
    rl = metrics.richardson_lucy_psnr(frames, args.rl_max)
    best_k = int(np.argmax(rl.mean(0)))
    s1, s2 = [], []
    for f, o in zip(frames, objects):
        intensity = integrated_intensity(o / f.electrons_per_pixel, f.sites.x, f.sites.y, s, 0.7)
        edge = (f.sites.x > 1) & (f.sites.x < args.size * s - 1) & (f.sites.y > 1) & (f.sites.y < args.size * s - 1)
        s1.append(intensity[(f.sites.species == "S1") & edge])
        s2.append(intensity[(f.sites.species == "S2") & edge])
    sep = metrics.separation(np.concatenate(s1), np.concatenate(s2))
    big = dataset.simulate_frame((512, 512), sampling=s, dose=args.dose, rng=3)
    psf = big.probe.intensity((64, 64), s)
    runs = {"reconstruct()": lambda: ds.reconstruct(big.counts, big.probe, sampling=s),
            "Richardson-Lucy, 30 it.": lambda: baselines.richardson_lucy(big.counts, psf, 30)}
    as_is = timing.compare(runs)
    reused = timing.keep_freed_memory()
    tuned = timing.compare(runs)
    print(f"{args.frames} held-out frames, {args.size}² px, {args.dose:.0e} e⁻/Å², {s} Å/px")
    print()
    print("| method | mean PSNR [dB] | frames where DeepSTEM is better |")
    print("|---|---|---|")
    print(f"| DeepSTEM | {deep.mean():.2f} | |")
    print(f"| RL, best common count ({best_k + 1}) | {rl[:, best_k].mean():.2f} | {np.sum(deep > rl[:, best_k])}/{len(deep)} |")
    print(f"| RL, best count per frame (oracle) | {rl.max(1).mean():.2f} | {np.sum(deep > rl.max(1))}/{len(deep)} |")
    print()
    print(f"S2 vs S1 by integrated object intensity (0.7 Å): overlap {sep['overlap']:.3f}, d' {sep['d_prime']:.2f} "
          f"({sum(map(len, s2))} S2, {sum(map(len, s1))} S1 sites)")
    print()
    print(f"512² frame, interleaved medians of 7 (buffers reused: allocator set by timing.keep_freed_memory: {reused})")
    print("| | allocator as is [s] | buffers reused [s] |")
    print("|---|---|---|")
    for name in runs:
        print(f"| {name} | {as_is.loc[name, 'median [s]']:.3f} | {tuned.loc[name, 'median [s]']:.3f} |")
    ratio = tuned.iloc[1]["median [s]"] / tuned.iloc[0]["median [s]"]
    print(f"reconstruct(): {tuned.iloc[0]['per second']:.1f} frames/s, {ratio:.1f}x faster than RL-30")
    ok = deep.mean() > rl[:, best_k].mean()
    print(f"must reach (DeepSTEM PSNR > RL at best count): {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    main()
