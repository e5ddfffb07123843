"""The in situ case study end to end: per-frame accuracy, adatom links and events (prints tables).

The kinetic twin of chapter 6 (80 frames of 512² px, 2e4 e⁻/Å² per frame, the
probe of data/probe_measured.json) is processed with process_series on a
2-worker LocalCluster; every frame is scored against the twin's ground truth,
DeepSTEM's sites are counted in the frames (the default, ``intensities="counts"``) and, for comparison, by
integrating the saved objects; the same frames are also analysed without DeepSTEM (find_atoms on the raw counts).

Run: .venv/bin/python benchmarks/insitu_series.py [--frames 80] [--size 512] [--dose 2e4] [--seed 2021]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import deepstem_utils as ds
from deepstem_utils import evaluation, insitu
from deepstem_utils.insitu import pipeline, tracking

DATA = Path(__file__).resolve().parent.parent / "data"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=80)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--dose", type=float, default=2e4)
    parser.add_argument("--seed", type=int, default=2021)
    args = parser.parse_args()
    sampling = 0.16
    probe = ds.Probe.from_json(DATA / "probe_measured.json")
    twin = insitu.simulate_growth(args.frames, frame_time=0.6, rng=args.seed)
    acq = insitu.SeriesAcquisition(twin, probe, shape=(args.size, args.size), sampling=sampling, dose=args.dose,
                                   seed=7)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        pipeline.process_series(acq, probe, sampling, tmp, n_workers=2, progress=False)
        elapsed = time.time() - t0
        atoms = pipeline.load_atoms(tmp)
        drift = pd.read_csv(Path(tmp) / "drift.csv")

        def series_sites(find):  # find(i) on every frame, drift-corrected as load_atoms does
            return pipeline.with_drift(pd.concat([find(i).assign(frame=i) for i in range(len(acq))],
                                               ignore_index=True), drift)

        level = evaluation.one_atom_fraction("deepstem")
        atoms_object = series_sites(lambda i: ds.find_atoms(pipeline.load_object(tmp, i).data,
                                                    sampling, one_atom_fraction=level, quiet=True))
        atoms_raw = series_sites(lambda i: ds.find_atoms(acq[i], sampling, one_atom_fraction=0.5, quiet=True))
    truth_xy, truth_ids = acq.adatom_truth()
    print(f"{args.frames} frames of {args.size}² px at {args.dose:.0e} e⁻/Å² per frame; "
          f"pipeline {elapsed:.0f} s ({args.frames / elapsed:.2f} frames/s on 2 workers)\n")
    print("| analysis | S-site acc. median | worst frame | frames ≥ 0.9 | Mo RMSE median [pm] | adatom F1 median "
          "| adatom links recovered |")
    print("|---|---|---|---|---|---|---|")
    for name, table in (("DeepSTEM, counts fitted", atoms), ("DeepSTEM, object integrated", atoms_object),
                        ("raw frames", atoms_raw)):
        score = evaluation.score_series(acq, table)
        links = tracking.link_recovery(tracking.link_adatoms(table), truth_xy, truth_ids)
        acc = score.s_accuracy.dropna()
        print(f"| {name} | {acc.median():.3f} | {acc.min():.3f} | {(acc >= 0.9).mean():.2f} | "
              f"{score.mo_rmse.median():.1f} | {score.F1_adatom.median():.2f} | "
              f"{links['recovered']}/{links['links']} ({links['fraction']:.0%}) |")
    true_shift = acq.offsets - acq.offsets[0]
    error = np.hypot(drift.dx_A.to_numpy() - true_shift[:, 0], drift.dy_A.to_numpy() - true_shift[:, 1])
    print(f"\ndrift registration: error after {args.frames} frames {error[-1] * 100:.0f} pm, "
          f"largest {error.max() * 100:.0f} pm")
    found = tracking.detect_events(atoms, field=acq.field, first_frame=0).kind.value_counts()
    truth = acq.truth_events()
    truth = truth[truth.in_field].kind.value_counts()
    print("\n| event | found (DeepSTEM) | twin, in view |\n|---|---|---|")
    for kind in ("nucleation", "coalescence", "attachment", "entry"):
        print(f"| {kind} | {found.get(kind, 0)} | {truth.get(kind, 0) if kind != 'entry' else 'not logged (drifted into view)'} |")


if __name__ == "__main__":
    main()
