"""Series pipeline: memory versus series length and throughput versus dask workers (prints a table).

Frames are made on the fly (one simulated 512² specimen, drifting, fresh Poisson
noise per frame), so the series never sits in memory. Peak memory is the
largest resident set of this process plus the dask workers, sampled every 0.2 s
(every 1 s for the memory runs, which also record it against the frames done,
split into this process, which holds the client and the LocalCluster's
scheduler, and the largest worker).

Run: .venv/bin/python benchmarks/series_scaling.py [--lengths 200 1000] [--size 512] [--throughput-frames 40]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from scipy import ndimage

import deepstem_utils as ds
from deepstem_utils.insitu import pipeline
from deepstem_utils.network import dataset

PROBE = ds.Probe(80e3, 30.0, {"C30": -5e3}, source_size=0.5)


class SyntheticSeries:
    """``n`` frames of one specimen drifting 0.3 px per frame, each with its own Poisson noise."""

    def __init__(self, n: int, size: int):
        frame = dataset.simulate_frame((size + 64, size + 64), sampling=0.16, dose=1e4, probe=PROBE, rng=1)
        self.rate = frame.counts  # noisy but fine as a rate map for re-noising
        self.n, self.size = n, size

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        shift = 0.3 * (i % 100)
        view = ndimage.shift(self.rate, (shift * 0.5, shift), order=1, mode="reflect")[32:32 + self.size,
                                                                                        32:32 + self.size]
        return np.random.default_rng(i).poisson(np.clip(view, 0, None)).astype(float)


def peak_memory(run, out=None, trace=None):
    """Peak resident memory [MiB] of this process plus its children while ``run()`` runs, and the seconds.

    With ``out`` and ``trace`` (a list), every sample also records how many frames are done (atoms files in
    ``out``) and the memory of this process (client and scheduler) and of the largest child (a worker)."""
    me = psutil.Process()
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            children = []
            for c in me.children(recursive=True):
                try:
                    children.append(c.memory_info().rss)
                except psutil.Error:  # a child that just ended
                    pass
            own = me.memory_info().rss
            total = own + sum(children)
            peak[0] = max(peak[0], total)
            if trace is not None and out is not None:
                done = sum(1 for _ in Path(out).glob("frame_*_atoms.csv"))
                trace.append((done, total / 2**20, own / 2**20, max(children, default=0) / 2**20))
            time.sleep(0.2 if trace is None else 1.0)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.time()
    try:
        run()
    finally:
        stop.set()
        t.join()
    return peak[0] / 2**20, time.time() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="*", default=[200, 1000], help="series lengths for the memory table (none: skip it)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--throughput-frames", type=int, default=40, help="frames per throughput run (0: skip)")
    args = parser.parse_args()
    print("| frames | peak memory [MiB] | seconds | frames/s |")
    print("|---|---|---|---|")
    traces = {}
    for n in args.lengths:
        frames = SyntheticSeries(n, args.size)
        traces[n] = []
        with tempfile.TemporaryDirectory() as tmp:
            mem, sec = peak_memory(lambda: pipeline.process_series(frames, PROBE, 0.16, tmp, n_workers=2,
                                                                 progress=False), tmp, traces[n])
        print(f"| {n} | {mem:.0f} | {sec:.0f} | {n / sec:.2f} |", flush=True)
    if args.lengths:
        n = max(args.lengths)
        trace = np.array(traces[n])
        print(f"\nMemory while the {n}-frame series runs (highest sample up to each point) [MiB]:\n")
        print("| frames done | all processes | client + scheduler | largest worker |")
        print("|---|---|---|---|")
        for mark in np.unique(np.linspace(n / 10, n, 10).astype(int)):
            upto = trace[trace[:, 0] <= mark]
            if len(upto):
                print(f"| {mark} | {upto[:, 1].max():.0f} | {upto[:, 2].max():.0f} | {upto[:, 3].max():.0f} |")
    print()
    if args.throughput_frames <= 0:  # memory only
        return
    print("| workers | frames/s |")
    print("|---|---|")
    rates = {}
    for workers in (1, 2):
        frames = SyntheticSeries(args.throughput_frames, args.size)
        with tempfile.TemporaryDirectory() as tmp:
            _, sec = peak_memory(lambda: pipeline.process_series(frames, PROBE, 0.16, tmp, n_workers=workers,
                                                               progress=False))
        rates[workers] = args.throughput_frames / sec
        print(f"| {workers} | {rates[workers]:.2f} |", flush=True)
    print(f"\nspeed-up with 2 workers: {rates[2] / rates[1]:.2f}x (target >= 1.7x on 2 cores)")


if __name__ == "__main__":
    main()
