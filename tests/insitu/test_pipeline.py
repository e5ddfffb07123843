"""The series pipeline on dask: processing, outputs, resume, drift that survives bad frames, physical sites, the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import deepstem_utils as ds
from deepstem_utils import cli, insitu
from deepstem_utils.insitu import pipeline

#: The probe of the drifting series (conftest.drifting).
PROBE = ds.Probe(80e3, 30.0, {"C30": -5e3})



def test_series_registration_survives_frames_without_contrast(tmp_path, twin):
    """Bare graphene at low dose cannot be registered: the pipeline must not let that break the drift."""
    probe = ds.Probe(80e3, 30.0, {"C30": 2000.0}, source_size=0.5)
    acq = insitu.SeriesAcquisition(twin[18:26], probe, shape=(192, 192), sampling=0.16, dose=5e4, frame_time=1.0,
                                   drift=(0.6, -0.4), seed=1)
    frames = [acq[i] for i in range(8)]
    frames[3] = np.random.default_rng(1).poisson(0.3, frames[3].shape).astype(float)  # a frame with no contrast
    pipeline.process_series(frames, probe, 0.16, tmp_path, n_workers=1, progress=False)
    drift = pd.read_csv(tmp_path / "drift.csv")
    true = acq.offsets - acq.offsets[0]
    assert not drift.reliable[3] or not drift.reliable[4]
    assert np.abs(drift.dx_A.to_numpy() - true[:, 0]).max() < 0.4  # Å, over the whole series


def test_physical_sites_drop_light_lattices_and_adatoms():


    rng = np.random.default_rng(0)
    rows = [(0, "Mo", v) for v in rng.normal(35, 3, 40)] + [(0, "S2", v) for v in rng.normal(15, 3, 40)]
    rows += [(f, "Mo", v) for f in (1, 2) for v in rng.normal(600, 30, 50)]
    rows += [(1, "Mo_adatom", 590.0), (2, "Mo_adatom", 60.0), (2, "S2", 230.0)]
    rows += [(0, "Mo_adatom", 610.0), (0, "Mo_adatom", 36.0)]  # a Mo atom and a noise peak on the bare support
    t = pd.DataFrame(rows, columns=["frame", "species", "intensity"])
    kept = pipeline.physical_sites(t)
    # frame 0's "lattice" scatters like graphene, not Mo: only the Mo atom on it is kept, as an adatom
    assert kept[kept.frame == 0].intensity.tolist() == [610.0]
    assert sorted(kept[kept.species == "Mo_adatom"].intensity) == [590.0, 610.0]
    assert (kept.species == "S2").sum() == 1
    with pytest.raises(ValueError, match="min_mo_fraction"):
        pipeline.physical_sites(t, 1.5)






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
    summary = pipeline.process_series(counting, PROBE, 0.16, out, n_workers=1, progress=False)
    assert counting.reads == [0, 1, 2, 3]  # each frame read once, in time order
    assert list(summary.frame) == [0, 1, 2, 3]
    assert (summary["Mo"] > 20).all()
    drift = pd.read_csv(out / "drift.csv")
    assert drift.dy_px.iloc[-1] == pytest.approx(-4.5, abs=0.6)
    # registered positions of the same Mo column agree across frames (load_atoms joins drift.csv)
    table = pipeline.load_atoms(out)
    a0, a3 = table[table.frame == 0], table[table.frame == 3]
    assert np.allclose(a0.x_registered, a0.x) and not np.allclose(a3.y_registered, a3.y)
    from deepstem_utils.evaluation.metrics import match_sites

    i, j = match_sites(a3.rename(columns={"x_registered": "x_", "y_registered": "y_"})
                       .assign(x=lambda d: d.x_, y=lambda d: d.y_), a0.x_registered, a0.y_registered, 0.3)
    assert len(i) > 0.7 * min(len(a0), len(a3))
    # resume: remove one frame's results; only that frame is redone
    done = pipeline.frame_outputs(out, 2)["atoms"]
    kept = pipeline.frame_outputs(out, 1)["atoms"]
    stamp = kept.stat().st_mtime_ns
    done.unlink()
    counting = CountingFrames(drifting)
    again = pipeline.process_series(counting, PROBE, 0.16, out, n_workers=1, progress=False)
    assert done.exists() and kept.stat().st_mtime_ns == stamp
    assert counting.reads == [2]  # the drift of the finished run is reused: only the missing frame is read
    pd.testing.assert_frame_equal(again, summary)
    # what other tools read: the object as a calibrated .hspy with its provenance, the sites with their units
    obj = pipeline.load_object(out, 2)
    axes = obj.axes_manager.signal_axes
    assert [(a.scale, a.units, a.offset) for a in axes] == [(0.16, "Å", 0.0)] * 2
    assert obj.data.shape == (128, 128) and np.all(np.isfinite(obj.data))
    assert obj.metadata.DeepSTEM.series.frame == 2 and obj.metadata.DeepSTEM.weights_sha256
    assert obj.metadata.DeepSTEM.probe.aberrations.C30 == -5e3
    assert not list(out.glob("*.npy")) and not list(out.glob(".*"))  # no uncalibrated arrays, no temporaries
    import json

    side = json.loads(pipeline.frame_outputs(out, 2)["sidecar"].read_text())
    assert side["columns"]["x"] == "Å" and side["sampling"] == 0.16 and side["frame"] == 2
    assert side["intensities"] == "counts" and side["object"] == "frame_00002_object.hspy"
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


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
    counted = pd.read_csv(pipeline.frame_outputs(tmp_path / "counts", 0)["atoms"])
    integrated = pd.read_csv(pipeline.frame_outputs(tmp_path / "object", 0)["atoms"])
    # the same sites, other intensities: fitted counts of a column are not the integrated object
    assert len(counted) == len(integrated) and not np.allclose(counted.intensity, integrated.intensity)
    with pytest.raises(ValueError, match="intensities must be"):
        pipeline.process_series(stack, PROBE, 0.16, tmp_path / "bad", intensities="fit", progress=False)


def test_resume_without_drift_file_uses_the_steps_of_the_tasks(tmp_path, drifting):
    """An interrupted run has no drift.csv: each finished task left its registration step; a frame whose step
    is lost is registered again in the client; only the frames needed are read."""
    out = tmp_path / "run"
    first = pipeline.process_series(drifting, PROBE, 0.16, out, n_workers=1, progress=False)
    drift = pd.read_csv(out / "drift.csv")
    (out / "drift.csv").unlink()
    pipeline.frame_outputs(out, 3)["atoms"].unlink()  # frame 3 not finished (its step survived)
    pipeline.frame_outputs(out, 1)["step"].unlink()  # frame 1 finished, its step lost
    counting = CountingFrames(drifting)
    again = pipeline.process_series(counting, PROBE, 0.16, out, n_workers=1, progress=False)
    assert counting.reads == [0, 1, 3]
    pd.testing.assert_frame_equal(pd.read_csv(out / "drift.csv"), drift)
    pd.testing.assert_frame_equal(again, first)


def test_series_cli_refuses_other_inputs_and_recomputes_only_them_with_overwrite(tmp_path, drifting):
    frames = tmp_path / "frames"
    frames.mkdir()
    np.save(frames / "a.npy", drifting[0])
    np.save(frames / "b.npy", drifting[1])
    ds.Probe.to_json(PROBE, tmp_path / "probe.json")
    out = tmp_path / "out"
    argv = ["series", str(frames), "--probe", str(tmp_path / "probe.json"), "--sampling", "0.16", "--out", str(out),
            "--workers", "1", "--quiet"]
    assert cli.main(argv) == 0
    assert sorted(p.name for p in out.glob("*_atoms.csv")) == ["a_atoms.csv", "b_atoms.csv"]  # named after files
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    first_b = pd.read_csv(out / "b_atoms.csv")
    # the same inputs: a rerun resumes and redoes nothing
    assert cli.main(argv) == 0
    assert all(stamps[p.name] == p.stat().st_mtime_ns for p in out.glob("*_atoms.*"))
    # another frame b (same file name): refused, with the reason, and nothing touched
    np.save(frames / "b.npy", drifting[3])
    assert cli.main(argv) == 2
    assert all(stamps[p.name] == p.stat().st_mtime_ns for p in out.glob("*_atoms.*"))
    # another probe: refused too
    ds.Probe.to_json(ds.Probe(80e3, 30.0, {"C30": -3e3}), tmp_path / "other.json")
    assert cli.main(argv[:3] + [str(tmp_path / "other.json")] + argv[4:]) == 2
    # the Python API checks the same record (other names, other frames)
    with pytest.raises(FileExistsError, match="other inputs"):
        pipeline.process_series([drifting[0], drifting[3]], PROBE, 0.16, out, n_workers=1, progress=False)
    # --overwrite recomputes frame b alone (and its registration); frame a is kept
    assert cli.main(argv + ["--overwrite"]) == 0
    assert stamps["a_atoms.csv"] == (out / "a_atoms.csv").stat().st_mtime_ns
    assert stamps["b_atoms.csv"] != (out / "b_atoms.csv").stat().st_mtime_ns
    again_b = pd.read_csv(out / "b_atoms.csv")
    assert len(again_b) != len(first_b) or not np.allclose(again_b.x, first_b.x)  # drifted by 3 frames, not 1
    drift = pd.read_csv(out / "drift.csv")
    assert drift.dy_px.iloc[1] == pytest.approx(-4.5, abs=0.6)  # b is now three steps from a (as in the test above)


def _saved_frames(tmp_path, frames):
    folder = tmp_path / "frames"
    folder.mkdir(exist_ok=True)
    for name, frame in frames.items():
        np.save(folder / name, frame)
    ds.Probe.to_json(PROBE, tmp_path / "probe.json")
    return folder


@pytest.mark.parametrize("bad, message", [
    (np.full((128, 128), np.nan), r"b.npy contains NaN"),
    (np.ones((128, 96)), r"b.npy holds frames of 128x96 px, the first file 128x128 px"),
    (-np.ones((128, 128)), r"b.npy has negative values"),
])
def test_series_cli_bad_frame_is_named_before_anything_is_written(tmp_path, drifting, capsys, bad, message):
    import re

    folder = _saved_frames(tmp_path, {"a.npy": drifting[0], "b.npy": bad, "c.npy": drifting[1]})
    out = tmp_path / "out"
    code = cli.main(["series", str(folder), "--probe", str(tmp_path / "probe.json"), "--sampling", "0.16",
                     "--out", str(out), "--workers", "1", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and re.search(message, err), err
    assert not out.exists()  # no new empty --out, no half series


def test_series_refuses_hangs_and_reading_its_own_outputs(tmp_path, drifting, capsys):
    folder = _saved_frames(tmp_path, {"a.npy": drifting[0], "b.npy": drifting[1]})
    base = ["series", str(folder), "--probe", str(tmp_path / "probe.json"), "--sampling", "0.16", "--quiet"]
    import threading

    for workers in ("0", "-2"):  # a LocalCluster without workers waits forever: run it where a hang shows
        codes = []
        runner = threading.Thread(target=lambda: codes.append(cli.main(base + ["--out", str(tmp_path / "o"),
                                                                              "--workers", workers])), daemon=True)
        runner.start()
        runner.join(60)
        assert codes == [2], f"--workers {workers}: no answer within 60 s (a hang)" if not codes else codes
        assert "--workers" in capsys.readouterr().err
    with pytest.raises(ValueError, match="n_workers"):
        pipeline.process_series(drifting[:2], PROBE, 0.16, tmp_path / "p", n_workers=0, progress=False)
    with pytest.raises(ValueError, match="max_in_flight"):
        pipeline.process_series(drifting[:2], PROBE, 0.16, tmp_path / "p", max_in_flight=0, progress=False)
    assert not (tmp_path / "p").exists() and not (tmp_path / "o").exists()
    # --out the input folder: a rerun would take <stem>_object.hspy for frames
    assert cli.main(base + ["--out", str(folder), "--workers", "1"]) == 2
    assert "folder the inputs are read from" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["a.npy", "b.npy"]


def test_process_series_names_the_bad_frame(tmp_path, drifting):
    bad = [drifting[0], np.full((128, 128), np.nan)]
    with pytest.raises(ValueError, match="frame 1 contains NaN"):
        pipeline.process_series(bad, PROBE, 0.16, tmp_path / "out", n_workers=1, progress=False)
    with pytest.raises(ValueError, match="frame 1 is 128x100 px, the series' frames 128x128 px"):
        pipeline.process_series([drifting[0], drifting[1][:, :100]], PROBE, 0.16, tmp_path / "out", n_workers=1,
                                progress=False)
    assert not (tmp_path / "out").exists()  # checked before anything was written
