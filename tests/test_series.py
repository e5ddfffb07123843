"""The series pipeline: drift registration, dask tasks, streaming outputs, resume."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

import deepstem_utils as ds
from deepstem_utils import cli, dataset, series

PROBE = ds.Probe(80e3, 30.0, {"C30": -5e3})


@pytest.fixture(scope="module")
def drifting():
    base = dataset.simulate_frame((160, 160), sampling=0.16, dose=1e5, probe=PROBE, rng=3, edge=0.0)
    clean = base.counts
    frames = []
    for k in range(4):
        shifted = ndimage.shift(clean, (1.5 * k, -1.0 * k), order=1, mode="reflect")
        frames.append(shifted[16:144, 16:144])
    return frames


def test_register_drift_finds_a_known_shift(drifting):
    dy, dx = series.register_drift(drifting[0], drifting[1])
    assert dy == pytest.approx(-1.5, abs=0.3) and dx == pytest.approx(1.0, abs=0.3)


class CountingFrames:
    """A series that counts how often each frame is read (a long series on disk should be read once)."""

    def __init__(self, frames):
        self.frames, self.reads = frames, []

    def __len__(self):
        return len(self.frames)

    def __getitem__(self, i):
        self.reads.append(i)
        return self.frames[i]


def test_process_series_and_resume(tmp_path, drifting):
    out = tmp_path / "run"
    counting = CountingFrames(drifting)
    summary = series.process_series(counting, PROBE, 0.16, out, n_workers=1, progress=False)
    assert counting.reads == [0, 1, 2, 3]  # each frame read once, in time order
    assert list(summary.frame) == [0, 1, 2, 3]
    assert (summary["Mo"] > 20).all()
    drift = pd.read_csv(out / "drift.csv")
    assert drift.dy_px.iloc[-1] == pytest.approx(-4.5, abs=0.6)
    # registered positions of the same Mo column agree across frames (load_atoms joins drift.csv)
    table = series.load_atoms(out)
    a0, a3 = table[table.frame == 0], table[table.frame == 3]
    assert np.allclose(a0.x_registered, a0.x) and not np.allclose(a3.y_registered, a3.y)
    from deepstem_utils.metrics import match_sites

    i, j = match_sites(a3.rename(columns={"x_registered": "x_", "y_registered": "y_"})
                       .assign(x=lambda d: d.x_, y=lambda d: d.y_), a0.x_registered, a0.y_registered, 0.3)
    assert len(i) > 0.7 * min(len(a0), len(a3))
    # resume: remove one frame's results; only that frame is redone
    done = series.frame_outputs(out, 2)["atoms"]
    kept = series.frame_outputs(out, 1)["atoms"]
    stamp = kept.stat().st_mtime_ns
    done.unlink()
    counting = CountingFrames(drifting)
    again = series.process_series(counting, PROBE, 0.16, out, n_workers=1, progress=False)
    assert done.exists() and kept.stat().st_mtime_ns == stamp
    assert counting.reads == [2]  # the drift of the finished run is reused: only the missing frame is read
    pd.testing.assert_frame_equal(again, summary)


def test_series_cli(tmp_path, drifting):
    stack = np.stack(drifting)
    np.save(tmp_path / "stack.npy", stack)
    ds.Probe.to_json(PROBE, tmp_path / "probe.json")
    argv = ["series", str(tmp_path / "stack.npy"), "--probe", str(tmp_path / "probe.json"), "--sampling", "0.16",
            "--out", str(tmp_path / "out"), "--workers", "1", "--quiet"]
    assert cli.main(argv) == 0
    assert len(pd.read_csv(tmp_path / "out" / "summary.csv")) == 4
    (tmp_path / "afile").write_text("x")
    assert cli.main(argv[:-5] + ["--out", str(tmp_path / "afile"), "--workers", "1", "--quiet"]) == 2


def test_series_intensities_option(tmp_path, drifting):
    import json

    stack = np.stack(drifting[:2])
    np.save(tmp_path / "stack.npy", stack)
    ds.Probe.to_json(PROBE, tmp_path / "probe.json")
    argv = ["series", str(tmp_path / "stack.npy"), "--probe", str(tmp_path / "probe.json"), "--sampling", "0.16",
            "--workers", "1", "--quiet"]
    assert cli.main(argv + ["--out", str(tmp_path / "counts")]) == 0
    assert cli.main(argv + ["--out", str(tmp_path / "object"), "--intensities", "object"]) == 0
    assert json.loads((tmp_path / "counts" / "run.json").read_text())["intensities"] == "counts"
    assert json.loads((tmp_path / "object" / "run.json").read_text())["intensities"] == "object"
    counted = pd.read_csv(series.frame_outputs(tmp_path / "counts", 0)["atoms"])
    integrated = pd.read_csv(series.frame_outputs(tmp_path / "object", 0)["atoms"])
    # the same sites, other intensities: fitted counts of a column are not the integrated object
    assert len(counted) == len(integrated) and not np.allclose(counted.intensity, integrated.intensity)
    with pytest.raises(ValueError, match="intensities must be"):
        series.process_series(stack, PROBE, 0.16, tmp_path / "bad", intensities="fit", progress=False)


def test_resume_without_drift_file_uses_the_steps_of_the_tasks(tmp_path, drifting):
    """An interrupted run has no drift.csv: each finished task left its registration step; a frame whose step
    is lost is registered again in the client; only the frames needed are read."""
    out = tmp_path / "run"
    first = series.process_series(drifting, PROBE, 0.16, out, n_workers=1, progress=False)
    drift = pd.read_csv(out / "drift.csv")
    (out / "drift.csv").unlink()
    series.frame_outputs(out, 3)["atoms"].unlink()  # frame 3 not finished (its step survived)
    series.frame_outputs(out, 1)["step"].unlink()  # frame 1 finished, its step lost
    counting = CountingFrames(drifting)
    again = series.process_series(counting, PROBE, 0.16, out, n_workers=1, progress=False)
    assert counting.reads == [0, 1, 3]
    pd.testing.assert_frame_equal(pd.read_csv(out / "drift.csv"), drift)
    pd.testing.assert_frame_equal(again, first)
