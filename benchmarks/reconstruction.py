"""DeepSTEM reconstruction: accuracy of every precision path, and speed against Richardson-Lucy (prints tables).

Accuracy (held-out simulated frames, seeds never used in training, 1e4 e⁻/Å², 0.16 Å/px, each with its own
random probe): object PSNR and balanced S-site accuracy from the object alone (``find_atoms(reconstruct(frame))``)
for ``precision="float32"`` and, where the CPU computes it natively, ``"bfloat16"``; the difference of each path
to float32 (a faster path must change PSNR by < 0.1 dB and S-site accuracy by < 0.01). Richardson-Lucy gets the
same probe and its best single iteration count for the set.

Speed (a 512² frame): frames per second of every path and its ratio to scikit-image-style Richardson-Lucy with 30
iterations (``baselines.richardson_lucy``, same PSF size), measured side by side (interleaved medians) in a
**fresh process**, first with the allocator as it is and then with freed buffers kept
(``timing.keep_freed_memory``). Timing on a CPU depends on what ran before in the process (glibc's allocator hands
large freed buffers back to the kernel, and the next call page-faults them in), so both states are reported.

``--float32-cpu`` re-runs the speed part as a CPU without native bfloat16 (AVX2 class, like most laptops) would:
oneDNN limited to AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``) and PyTorch's kernels to AVX2 (``ATEN_CPU_CAPABILITY=avx2``).

Run: .venv/bin/python benchmarks/reconstruction.py [--frames 12] [--size 256] [--float32-cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

import deepstem_utils as ds
from deepstem_utils.evaluation import baselines, metrics
from deepstem_utils.network import dataset
from deepstem_utils.network.reconstruction import native_bfloat16
from deepstem_utils.physics.probe import psf_grid

S = 0.16


def speed(paths: list[str], repeats: int) -> dict:
    """Interleaved timings in this (fresh) process: allocator as is, then with buffers kept."""
    import torch

    from deepstem_utils import timing

    torch.set_num_threads(2)
    big = dataset.simulate_frame((512, 512), sampling=S, dose=1e4, rng=3)
    psf = big.probe.intensity((psf_grid(S),) * 2, S)
    runs = {f"reconstruct {p}": (lambda p=p: ds.reconstruct(big.counts, big.probe, sampling=S, precision=p))
            for p in paths}
    runs["Richardson-Lucy, 30 it."] = lambda: baselines.richardson_lucy(big.counts, psf, 30)
    as_is = timing.compare(runs, repeats=repeats)
    kept = timing.keep_freed_memory()
    reused = timing.compare(runs, repeats=repeats)
    return {"as_is": as_is["median [s]"].to_dict(), "reused": reused["median [s]"].to_dict(), "kept": kept,
            "capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": native_bfloat16()}


def fresh_speed(paths: list[str], repeats: int, float32_cpu: bool) -> dict:
    env = dict(os.environ)
    if float32_cpu:
        env.update(ONEDNN_MAX_CPU_ISA="AVX2", ATEN_CPU_CAPABILITY="avx2")
    code = (f"import json, sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            f"import reconstruction as r; print(json.dumps(r.speed({paths!r}, {repeats})))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def accuracy(paths: list[str], n_frames: int, size: int, dose: float, rl_max: int):
    frames = [dataset.simulate_frame((size, size), sampling=S, dose=dose, rng=np.random.default_rng([2021, i]),
                                     s_vacancy=0.12, s_divacancy=0.04) for i in range(n_frames)]
    extent = (size * S, size * S)
    rows = {}
    for p in paths:
        psnr, acc = [], []
        for f in frames:
            obj = ds.reconstruct(f.counts, f.probe, sampling=S, precision=p)
            psnr.append(metrics.psnr(f.obj, obj / f.electrons_per_pixel))
            found = ds.find_atoms(obj, sampling=S, quiet=True)
            acc.append(metrics.score_sites(found, f.sites, extent, missed_as_wrong=True)["s_site_accuracy"])
        rows[p] = (np.array(psnr), np.array(acc))
    rl = metrics.richardson_lucy_psnr(frames, rl_max)
    return rows, rl


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--dose", type=float, default=1e4)
    parser.add_argument("--rl-max", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--float32-cpu", action="store_true", help="time as a CPU without native bfloat16")
    args = parser.parse_args()
    paths = ["float32"] + (["bfloat16"] if native_bfloat16() else [])
    rows, rl = accuracy(paths, args.frames, args.size, args.dose, args.rl_max)
    best_k = int(np.argmax(rl.mean(0)))
    print(f"{args.frames} held-out frames, {args.size}² px, {args.dose:.0e} e⁻/Å², {S} Å/px "
          f"(12 % S1, 4 % empty S sites)\n")
    print("| path | mean PSNR [dB] | ΔPSNR to float32 [dB] | balanced S accuracy (object alone) | Δ to float32 |")
    print("|---|---|---|---|---|")
    ref_psnr, ref_acc = rows["float32"]
    for p, (psnr, acc) in rows.items():
        print(f"| {p} | {psnr.mean():.2f} | {psnr.mean() - ref_psnr.mean():+.3f} | {acc.mean():.3f} | "
              f"{acc.mean() - ref_acc.mean():+.3f} |")
    print(f"| Richardson-Lucy, best common count ({best_k + 1}) | {rl[:, best_k].mean():.2f} | | | |\n")
    result = fresh_speed(paths, args.repeats, args.float32_cpu)
    cpu = "as a float32-only CPU (AVX2)" if args.float32_cpu else "as this CPU is"
    print(f"512² frame, fresh process, {cpu}: ATen capability {result['capability']}, native bfloat16 "
          f"{result['native_bf16']}; interleaved medians of {args.repeats}\n")
    print("| path | s per frame (as is) | frames/s (as is) | × RL-30 (as is) | s per frame (buffers kept) | "
          "frames/s (kept) | × RL-30 (kept) |")
    print("|---|---|---|---|---|---|---|")
    rl_as, rl_kept = result["as_is"]["Richardson-Lucy, 30 it."], result["reused"]["Richardson-Lucy, 30 it."]
    for p in paths:
        a, k = result["as_is"][f"reconstruct {p}"], result["reused"][f"reconstruct {p}"]
        print(f"| {p} | {a:.3f} | {1 / a:.1f} | {rl_as / a:.1f} | {k:.3f} | {1 / k:.1f} | {rl_kept / k:.1f} |")
    print(f"| Richardson-Lucy, 30 it. | {rl_as:.3f} | {1 / rl_as:.1f} | 1.0 | {rl_kept:.3f} | {1 / rl_kept:.1f} | 1.0 |")


if __name__ == "__main__":
    main()
