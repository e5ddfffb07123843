"""`deepstem train --frames`: fine-tuning on your own files from the command line, and its bad input."""

from __future__ import annotations

import hyperspy.api as hs
import numpy as np
import pytest

from deepstem_utils import cli
from deepstem_utils.network import dataset
from deepstem_utils.physics import imaging

FAST = ["--steps", "6"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frames")
    frame = dataset.simulate_frame((256, 256), sampling=0.16, dose=2e4, rng=4,
                                   acquisition=imaging.Acquisition(gain=10.0, offset=200.0))
    np.save(folder / "frame.npy", frame.counts)
    signal = hs.signals.Signal2D(frame.counts)
    for axis in signal.axes_manager.signal_axes:
        axis.scale, axis.units = 0.016, "nm"
    signal.save(folder / "frame.hspy")
    other = signal.deepcopy()
    for axis in other.axes_manager.signal_axes:
        axis.scale = 0.02
    other.save(folder / "other_sampling.hspy")
    frame.probe.to_json(folder / "probe.json")
    (folder / "bad_probe.json").write_text('{"energy": 80000}')
    return folder


def _train(files, *extra, out):
    return cli.main(["train", "--frames", str(files / "frame.hspy"), "--probe", str(files / "probe.json"),
                     "--out", str(out), "--quiet", *FAST, *extra])


def test_train_then_reconstruct_with_the_new_weights(files, tmp_path, capsys):
    assert _train(files, out=tmp_path / "weights") == 0
    assert capsys.readouterr().out == ""  # --quiet
    weights = tmp_path / "weights" / "deepstem.pt"
    assert weights.is_file() and weights.with_suffix(".json").is_file()
    code = cli.main(["reconstruct", str(files / "frame.npy"), "--sampling", "0.16", "--probe",
                     str(files / "probe.json"), "--weights", str(weights), "--out", str(tmp_path / "objects")])
    assert code == 0 and (tmp_path / "objects" / "frame_object.hspy").is_file()
    obj = hs.load(tmp_path / "objects" / "frame_object.hspy")
    assert obj.metadata.DeepSTEM.weights == str(weights)


@pytest.mark.parametrize("change, match", [
    ({"--frames": ["frame.hspy", "other_sampling.hspy"]}, "pixel size"),
    ({"--probe": ["bad_probe.json"]}, "missing key"),
    ({"--probe": ["nothing.json"]}, "not found"),
    ({"--init": ["probe.json"]}, "weights"),
    ({"--steps": ["0"]}, "steps"),
])
def test_bad_input_is_one_line_and_writes_nothing(files, tmp_path, capsys, change, match):
    options = {"--frames": ["frame.hspy"], "--probe": ["probe.json"], **change}
    argv = ["train", "--out", str(tmp_path / "out"), *FAST]
    for option, values in options.items():
        argv += [option] + [v if option == "--steps" else str(files / v) for v in values]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("deepstem train: error:"), err
    assert match in err[0], err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("array, match", [(np.ones(64), "2-D|1-D"), (np.full((256, 256), np.nan), "NaN"),
                                          (-np.ones((256, 256)), "negative|shot-noise")])
def test_bad_frames_are_refused(tmp_path, files, capsys, array, match):
    np.save(tmp_path / "bad.npy", array)
    code = cli.main(["train", "--frames", str(tmp_path / "bad.npy"), "--sampling", "0.16", "--probe",
                     str(files / "probe.json"), "--out", str(tmp_path / "out"), *FAST])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert any(m in err for m in match.split("|")), err
    assert not (tmp_path / "out").exists()


def test_existing_weights_are_kept(files, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "deepstem.pt").write_bytes(b"mine")
    assert _train(files, out=out) == 2
    assert "overwrite" in capsys.readouterr().err
    assert (out / "deepstem.pt").read_bytes() == b"mine"
