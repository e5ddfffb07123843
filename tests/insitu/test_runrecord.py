"""The run record: results in an output folder are reused only for the same inputs and settings."""

from __future__ import annotations

import json

import numpy as np
import pytest

import deepstem_utils as ds
from deepstem_utils.insitu import runrecord

PROBE = ds.Probe(80e3, 30.0, {"C30": -5e3})


def _record(fingerprints, names=None, probe=PROBE):
    names = names or [f"f{i}" for i in range(len(fingerprints))]
    settings = runrecord.run_settings(probe, 0.16, None, "MoS2", "counts")
    return runrecord.RunRecord(settings, [{"name": n, "source": f"{n}.dm4", "fingerprint": f}
                                          for n, f in zip(names, fingerprints)])


def _finish(out, names):
    """Results as a finished run leaves them."""
    for name in names:
        for path in runrecord.frame_files(out, name).values():
            path.write_text("x")
    (out / "drift.csv").write_text("x")


def test_fingerprint_follows_the_values_not_the_dtype():
    a = np.arange(12.0).reshape(3, 4)
    assert runrecord.fingerprint(a) == runrecord.fingerprint(a.astype(np.int32))
    b = a.copy()
    b[1, 2] += 1
    assert runrecord.fingerprint(a) != runrecord.fingerprint(b)
    assert runrecord.fingerprint(a) != runrecord.fingerprint(a.reshape(4, 3))


def test_same_inputs_resume_and_keep_every_result(tmp_path):
    runrecord.reconcile(tmp_path, _record(["a", "b", "c"]))
    _finish(tmp_path, ["f0", "f1", "f2"])
    before = sorted(p.name for p in tmp_path.iterdir())
    runrecord.reconcile(tmp_path, _record(["a", "b", "c"]))
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    record = runrecord.read_record(tmp_path)
    assert record.names == ["f0", "f1", "f2"] and record.status == "running"


def test_a_changed_frame_is_refused_then_recomputed_alone_with_overwrite(tmp_path):
    runrecord.reconcile(tmp_path, _record(["a", "b", "c"]))
    _finish(tmp_path, ["f0", "f1", "f2"])
    with pytest.raises(FileExistsError, match=r"frame 1 was f1.dm4.*--overwrite"):
        runrecord.reconcile(tmp_path, _record(["a", "B", "c"]))
    assert runrecord.frame_files(tmp_path, "f1")["atoms"].exists()  # nothing touched
    runrecord.reconcile(tmp_path, _record(["a", "B", "c"]), overwrite=True)
    assert all(p.exists() for p in runrecord.frame_files(tmp_path, "f0").values())
    assert not any(p.exists() for p in runrecord.frame_files(tmp_path, "f1").values())
    kept = runrecord.frame_files(tmp_path, "f2")
    assert kept["atoms"].exists() and not kept["step"].exists()  # its registration on frame 1 is redone
    assert not (tmp_path / "drift.csv").exists()
    assert runrecord.read_record(tmp_path).frames[1]["fingerprint"] == "B"


def test_other_settings_make_every_result_stale(tmp_path):
    runrecord.reconcile(tmp_path, _record(["a", "b"]))
    _finish(tmp_path, ["f0", "f1"])
    other = ds.Probe(80e3, 30.0, {"C30": -4e3})
    with pytest.raises(FileExistsError, match="settings differ.*probe"):
        runrecord.reconcile(tmp_path, _record(["a", "b"], probe=other))
    runrecord.reconcile(tmp_path, _record(["a", "b"], probe=other), overwrite=True)
    assert not list(tmp_path.glob("*_atoms.csv"))


def test_frames_renamed_reordered_or_dropped_are_stale(tmp_path):
    runrecord.reconcile(tmp_path, _record(["a", "b", "c"], ["x", "y", "z"]))
    _finish(tmp_path, ["x", "y", "z"])
    with pytest.raises(FileExistsError, match="frame 0 was x.dm4, now is y.dm4"):
        runrecord.reconcile(tmp_path, _record([None, None], ["y", "x"]))  # names alone, when not fingerprinted
    with pytest.raises(FileExistsError, match="frame 2 was z.dm4, now is not in this run"):
        runrecord.reconcile(tmp_path, _record(["a", "b"], ["x", "y"]))
    runrecord.reconcile(tmp_path, _record(["a", "b"], ["x", "y"]), overwrite=True)
    assert not runrecord.frame_files(tmp_path, "z")["atoms"].exists()
    assert runrecord.frame_files(tmp_path, "y")["atoms"].exists()
    # appended frames are new work, not a conflict
    runrecord.reconcile(tmp_path, _record(["a", "b", "d"], ["x", "y", "w"]))
    assert runrecord.frame_files(tmp_path, "y")["atoms"].exists()


def test_results_without_a_record_are_not_reused(tmp_path):
    (tmp_path / "frame_00000_atoms.csv").write_text("x")  # an older deepstem's run
    (tmp_path / "frame_00000_object.npy").write_text("x")
    (tmp_path / "run.json").write_text(json.dumps({"frames": 1, "intensities": "counts"}))
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="without a run record"):
        runrecord.reconcile(tmp_path, _record(["a"], ["frame_00000"]))
    runrecord.reconcile(tmp_path, _record(["a"], ["frame_00000"]), overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "run.json"]  # the user's file stays


def test_frame_names_and_settings_are_checked():
    assert runrecord.frame_names(np.zeros((2, 4, 4)), None, 2) == ["frame_00000", "frame_00001"]
    for names, match in ((["a", "a"], "distinct"), (["a"], "one name per frame"), (["a", "../b"], "plain")):
        with pytest.raises(ValueError, match=match):
            runrecord.frame_names(None, names, 2)
    with pytest.raises(TypeError, match="Probe"):
        runrecord.run_settings({"energy": 80e3}, 0.16, None, "MoS2", "counts")
    with pytest.raises(FileNotFoundError, match="weights"):
        runrecord.run_settings(PROBE, 0.16, "missing.pt", "MoS2", "counts")
