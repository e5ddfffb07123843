"""The deepstem command: installed, helpful, and honest about what is not there yet."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from deepstem_utils import cli


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for sub in ("reconstruct", "atoms", "zemlin", "series"):
        assert sub in out


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) != 0


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "deepstem_utils", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "deepstem" in result.stdout


# ------------------------------------------------------------------------- zemlin
@pytest.fixture(scope="module")
def tableau_files(tmp_path_factory):
    import numpy as np

    from deepstem_utils import zemlin

    folder = tmp_path_factory.mktemp("tableau")
    tilts = zemlin.tableau_tilts((15.0,), 3)
    ab = {"C10": -300.0, "C12": 40.0, "phi12": 0.5}
    stack = zemlin.simulate_tableau(ab, tilts, shape=(512, 512), sampling=0.2, rng=0, quadrature=(3, 1),
                                    angular_spread=0.0)
    np.save(folder / "tableau.npy", stack)
    (folder / "tilts.csv").write_text("tx_mrad,ty_mrad\n" + "\n".join(f"{x},{y}" for x, y in tilts) + "\n")
    return folder, ab


def test_zemlin_command_writes_probe(tableau_files, capsys):
    from deepstem_utils import Probe

    folder, ab = tableau_files
    out = folder / "probe.json"
    argv = ["zemlin", str(folder / "tableau.npy"), "--tilts", str(folder / "tilts.csv"), "--energy", "80000",
            "--sampling", "0.2", "--order", "1", "--out", str(out)]
    assert cli.main(argv) == 0, capsys.readouterr().err
    probe = Probe.from_json(out)
    assert probe.aberrations["C10"] == pytest.approx(-300.0, abs=5.0)
    assert probe.aberrations["C12"] == pytest.approx(40.0, abs=5.0)
    assert (folder / "probe_uncertainties.json").exists()
    # a second run must not overwrite
    before = out.read_text()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "exists" in err and "--overwrite" in err
    assert out.read_text() == before


@pytest.mark.parametrize(
    "change,match",
    [
        ({"--tilts": "bad_tilts.csv"}, "tilts"),
        ({"--sampling": None}, "sampling"),
        ({"TABLEAU": "missing.npy"}, "not found"),
    ],
)
def test_zemlin_command_bad_input(tableau_files, tmp_path, capsys, change, match):
    folder, _ = tableau_files
    (folder / "bad_tilts.csv").write_text("0,0\n15,0\n")  # 2 tilts for 4 images
    args = {"TABLEAU": str(folder / "tableau.npy"), "--tilts": str(folder / "tilts.csv"), "--sampling": "0.2"}
    for key, value in change.items():
        args[key] = str(folder / value) if value and key != "--sampling" else value
    argv = ["zemlin", args["TABLEAU"], "--tilts", args["--tilts"], "--energy", "80000", "--order", "1",
            "--out", str(tmp_path / "p.json")]
    if args["--sampling"]:
        argv += ["--sampling", args["--sampling"]]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err
    assert not (tmp_path / "p.json").exists()


# -------------------------------------------------------------------- reconstruct
@pytest.fixture()
def frame_files(tmp_path):
    import numpy as np

    import deepstem_utils as ds
    from deepstem_utils.network import dataset

    probe = ds.Probe(energy=80e3, semiangle=30.0)
    probe.to_json(tmp_path / "probe.json")
    frame = dataset.simulate_frame((96, 96), sampling=0.16, dose=1e4, probe=probe, rng=5)
    np.save(tmp_path / "frame.npy", frame.counts)
    return tmp_path, frame


def test_reconstruct_cli_writes_calibrated_object(frame_files):
    hs = pytest.importorskip("hyperspy.api")
    import numpy as np

    import deepstem_utils as ds

    tmp, frame = frame_files
    argv = ["reconstruct", str(tmp / "frame.npy"), "--probe", str(tmp / "probe.json"), "--sampling", "0.16",
            "--out", str(tmp / "out")]
    assert cli.main(argv) == 0
    obj = hs.load(tmp / "out" / "frame_object.hspy")
    assert obj.data.shape == (96, 96)
    assert obj.axes_manager.signal_axes[0].scale == pytest.approx(0.16)
    assert obj.axes_manager.signal_axes[0].units == "Å"
    assert obj.metadata.DeepSTEM.weights_sha256
    assert obj.metadata.DeepSTEM.precision in ("float32", "bfloat16")
    # what produced it: the detected counts per area (the frame's counts over its area)
    assert obj.metadata.DeepSTEM.detected_counts_per_A2 == pytest.approx(frame.counts.mean() / 0.16**2, rel=0.05)
    expected = ds.reconstruct(frame.counts, ds.Probe.from_json(tmp / "probe.json"), sampling=0.16)
    np.testing.assert_allclose(obj.data, expected, rtol=1e-6)
    before = (tmp / "out" / "frame_object.hspy").read_bytes()
    assert cli.main(argv) == 2  # exists: refused
    assert (tmp / "out" / "frame_object.hspy").read_bytes() == before
    assert cli.main(argv + ["--overwrite"]) == 0


@pytest.mark.parametrize(
    "change, message",
    [
        ({"--sampling": None}, "sampling"),
        ({"--probe": "missing.json"}, "not found"),
        ({"--weights": "probe.json"}, "weights"),
        ({"--out": "probe.json"}, "is a file"),
    ],
)
def test_reconstruct_cli_bad_input(frame_files, capsys, change, message):
    tmp, _ = frame_files
    options = {"--probe": "probe.json", "--sampling": "0.16", "--out": "out"}
    options.update(change)
    argv = ["reconstruct", str(tmp / "frame.npy")]
    for key, value in options.items():
        if value is not None:
            argv += [key, str(tmp / value) if key in ("--probe", "--weights", "--out") else value]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_atoms_cli_round_trip(frame_files):
    import pandas as pd

    tmp, frame = frame_files
    assert cli.main(["reconstruct", str(tmp / "frame.npy"), "--probe", str(tmp / "probe.json"), "--sampling",
                     "0.16", "--out", str(tmp / "out")]) == 0
    assert cli.main(["atoms", str(tmp / "out" / "frame_object.hspy"), "--out", str(tmp / "out")]) == 0
    table = pd.read_csv(tmp / "out" / "frame_atoms.csv")
    assert list(table.columns[:4]) == ["x", "y", "species", "confidence"]
    assert set(table.species) <= {"Mo", "S2", "S1", "vacancy", "Mo_adatom"}
    assert cli.main(["atoms", str(tmp / "out" / "frame_object.hspy"), "--out", str(tmp / "out")]) == 2
    assert cli.main(["atoms", str(tmp / "frame.npy"), "--material", "none", "--out", str(tmp / "o2")]) == 2  # no sampling


@pytest.mark.parametrize(
    "array, message",
    [
        (np.ones(100), "2-D"),
        (np.ones((2, 100, 100)), "stack"),
        (np.full((100, 100), np.nan), "NaN"),
        (-np.ones((100, 100)), "negative"),
        (np.full((100, 100), 3.0), "constant"),
        (np.random.default_rng(0).poisson(1.0, (40, 40)).astype(float), "64 px"),
    ],
)
def test_reconstruct_cli_bad_images(frame_files, capsys, array, message):
    tmp, _ = frame_files
    np.save(tmp / "bad.npy", array)
    out = tmp / "out_bad"
    code = cli.main(["reconstruct", str(tmp / "bad.npy"), "--probe", str(tmp / "probe.json"), "--sampling", "0.16",
                     "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert not (out / "bad_object.hspy").exists()


def test_reconstruct_cli_sampling_out_of_range_and_corrupt_weights(frame_files, capsys):
    tmp, _ = frame_files
    base = ["reconstruct", str(tmp / "frame.npy"), "--probe", str(tmp / "probe.json"), "--out", str(tmp / "o")]
    assert cli.main(base + ["--sampling", "3.0"]) == 2
    assert "plausible" in capsys.readouterr().err
    (tmp / "w.pt").write_bytes(b"garbage")
    assert cli.main(base + ["--sampling", "0.16", "--weights", str(tmp / "w.pt")]) == 2
    assert "weights" in capsys.readouterr().err
    assert (tmp / "w.pt").read_bytes() == b"garbage"


def test_cli_on_a_directory_of_mixed_files(frame_files, capsys):
    """A directory stands for the images in it, whatever their format; other files are skipped with a note."""
    hs = pytest.importorskip("hyperspy.api")
    import numpy as np

    tmp, frame = frame_files
    mixed = tmp / "mixed"
    mixed.mkdir()
    signal = hs.signals.Signal2D(frame.counts.astype(np.float32))
    for axis in signal.axes_manager.signal_axes:
        axis.scale, axis.units = 0.016, "nm"  # calibrated in nm: read as 0.16 Å
    signal.save(mixed / "a_calibrated.hspy")
    np.save(mixed / "b_array.npy", frame.counts)
    signal.save(mixed / "c_image.tif")
    (mixed / "notes.txt").write_text("microscope log")
    before = {p.name: p.read_bytes() for p in mixed.iterdir()}
    argv = ["reconstruct", str(mixed), "--probe", str(tmp / "probe.json"), "--sampling", "0.16",
            "--out", str(tmp / "mixed_out"), "--quiet"]
    assert cli.main(argv) == 0
    assert "notes.txt" in capsys.readouterr().err
    written = sorted(p.name for p in (tmp / "mixed_out").iterdir())
    assert written == ["a_calibrated_object.hspy", "b_array_object.hspy", "c_image_object.hspy"]
    objects = [hs.load(tmp / "mixed_out" / name).data for name in written]
    np.testing.assert_allclose(objects[0], objects[1], rtol=1e-5)  # same frame, whatever the format
    assert cli.main(["atoms", str(tmp / "mixed_out"), "--out", str(tmp / "mixed_atoms"), "--quiet"]) == 0
    assert len(list((tmp / "mixed_atoms").glob("*_atoms.csv"))) == 3
    assert {p.name: p.read_bytes() for p in mixed.iterdir()} == before  # inputs untouched
    empty = tmp / "empty"
    empty.mkdir()
    assert cli.main(["reconstruct", str(empty), "--probe", str(tmp / "probe.json"), "--out", str(tmp / "o2")]) == 2
    assert "holds no image" in capsys.readouterr().err


# ------------------------------------------------------------------ atoms: the recommended pipeline, outputs
def test_atoms_cli_fits_the_counts_with_frame_and_probe(frame_files, capsys):
    import json

    import pandas as pd

    import deepstem_utils as ds

    tmp, frame = frame_files
    assert cli.main(["reconstruct", str(tmp / "frame.npy"), "--probe", str(tmp / "probe.json"), "--sampling",
                     "0.16", "--out", str(tmp / "objects"), "--quiet"]) == 0
    obj = tmp / "objects" / "frame_object.hspy"
    base = ["atoms", str(obj), "--quiet"]
    assert cli.main(base + ["--out", str(tmp / "integrated")]) == 0
    assert cli.main(base + ["--frame", str(tmp / "frame.npy"), "--probe", str(tmp / "probe.json"), "--sampling",
                            "0.16", "--out", str(tmp / "fitted")]) == 0
    fitted = pd.read_csv(tmp / "fitted" / "frame_atoms.csv")
    integrated = pd.read_csv(tmp / "integrated" / "frame_atoms.csv")
    probe = ds.Probe.from_json(tmp / "probe.json")
    expected = ds.find_atoms(ds.load(obj), counts=frame.counts, psf=probe.intensity((64, 64), 0.16))
    np.testing.assert_allclose(fitted.intensity, expected.intensity, rtol=1e-3)
    # and the two paths differ, so the check above tells them apart
    assert len(integrated) != len(fitted) or not np.allclose(integrated.intensity, fitted.intensity, rtol=1e-3)
    side = json.loads((tmp / "fitted" / "frame_atoms.json").read_text())
    assert side["intensities"] == "counts" and side["frame"] == "frame.npy" and side["columns"]["x"] == "Å"
    assert json.loads((tmp / "integrated" / "frame_atoms.json").read_text())["intensities"] == "object"
    capsys.readouterr()
    bad = [(["--frame", str(tmp / "frame.npy")], "--probe"),                       # one without the other
           (["--frame", str(tmp / "frame.npy"), str(tmp / "frame.npy"), "--probe", str(tmp / "probe.json")],
            "one frame per object")]
    np.save(tmp / "small.npy", frame.counts[:80])
    bad.append((["--frame", str(tmp / "small.npy"), "--probe", str(tmp / "probe.json"), "--sampling", "0.16"],
                "80x96 px, its object 96x96"))
    for extra, message in bad:
        assert cli.main(base + extra + ["--out", str(tmp / "bad")]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
        assert not (tmp / "bad").exists()


def test_atoms_cli_positions_in_the_objects_own_coordinates(frame_files):
    import json

    import hyperspy.api as hs
    import pandas as pd

    tmp, _ = frame_files
    assert cli.main(["reconstruct", str(tmp / "frame.npy"), "--probe", str(tmp / "probe.json"), "--sampling",
                     "0.16", "--out", str(tmp / "objects"), "--quiet"]) == 0
    obj = hs.load(tmp / "objects" / "frame_object.hspy")
    plain = tmp / "plain"
    assert cli.main(["atoms", str(tmp / "objects" / "frame_object.hspy"), "--out", str(plain), "--quiet"]) == 0
    for axis, offset in zip(obj.axes_manager.signal_axes, (10.0, 20.0)):
        axis.offset = offset  # Å: a crop of a larger scan
    obj.save(tmp / "crop_object.hspy")
    assert cli.main(["atoms", str(tmp / "crop_object.hspy"), "--out", str(tmp / "crop"), "--quiet"]) == 0
    a, b = pd.read_csv(plain / "frame_atoms.csv"), pd.read_csv(tmp / "crop" / "crop_atoms.csv")
    np.testing.assert_allclose(b.x, a.x + 10.0, atol=2e-4)
    np.testing.assert_allclose(b.y, a.y + 20.0, atol=2e-4)
    assert json.loads((tmp / "crop" / "crop_atoms.json").read_text())["origin"] == [10.0, 20.0]


# ------------------------------------------------------------------ exit codes, batches, --quiet
def test_a_failure_at_run_time_exits_1_and_leaves_nothing(frame_files, capsys, monkeypatch):
    tmp, _ = frame_files
    argv = ["reconstruct", str(tmp / "frame.npy"), "--probe", str(tmp / "probe.json"), "--sampling", "0.16",
            "--out", str(tmp / "new_out")]
    real = cli.reconstruct
    monkeypatch.setattr(cli, "reconstruct", lambda *a, **k: real(*a, **k) * np.inf)  # a non-finite object
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "non-finite" in err and "frame.npy" in err and len(err.splitlines()) == 1
    assert not (tmp / "new_out").exists()  # no new empty --out

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory in a convolution")

    monkeypatch.setattr(cli, "reconstruct", broken)
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "failed: RuntimeError: out of memory" in err and "Traceback" not in err
    assert not (tmp / "new_out").exists()


def test_enormous_values_are_refused_not_turned_into_inf(frame_files, capsys):
    tmp, frame = frame_files
    np.save(tmp / "huge.npy", frame.counts * 1e306)  # finite, but every sum over the frame is inf
    code = cli.main(["reconstruct", str(tmp / "huge.npy"), "--probe", str(tmp / "probe.json"), "--sampling",
                     "0.16", "--out", str(tmp / "out_huge")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "too large" in err and "huge.npy" in err
    assert not (tmp / "out_huge").exists()


@pytest.mark.parametrize("command", ["reconstruct", "atoms"])
def test_one_bad_file_in_a_batch_writes_nothing(frame_files, capsys, command):
    tmp, frame = frame_files
    batch = tmp / "batch"
    batch.mkdir()
    np.save(batch / "a_good.npy", frame.counts)
    np.save(batch / "b_good.npy", frame.counts)
    bad = frame.counts.copy()
    bad[5, 5] = np.nan
    np.save(batch / "c_bad.npy", bad)
    out = tmp / "batch_out"
    extra = ["--probe", str(tmp / "probe.json")] if command == "reconstruct" else []
    assert cli.main([command, str(batch), "--sampling", "0.16", "--out", str(out), "--quiet"] + extra) == 2
    assert "c_bad.npy" in capsys.readouterr().err
    assert not out.exists()
    # into an existing folder: nothing added, nothing replaced
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert cli.main([command, str(batch), "--sampling", "0.16", "--out", str(out), "--quiet"] + extra) == 2
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_reconstruct_refuses_an_out_it_would_read_back(frame_files, capsys):
    tmp, _ = frame_files
    folder = tmp / "in"
    folder.mkdir()
    (tmp / "frame.npy").rename(folder / "frame.npy")
    argv = ["reconstruct", str(folder), "--probe", str(tmp / "probe.json"), "--sampling", "0.16", "--out"]
    assert cli.main(argv + [str(folder)]) == 2
    assert "folder the inputs are read from" in capsys.readouterr().err
    assert cli.main(argv + [str(tmp / "o")]) == 0
    (tmp / "o" / "frame_object.hspy").rename(folder / "frame_object.hspy")
    assert cli.main(["reconstruct", str(folder / "frame.npy"), str(folder / "frame_object.hspy"), "--probe",
                     str(tmp / "probe.json"), "--sampling", "0.16", "--out", str(folder)]) == 2
    assert "output of this command" in capsys.readouterr().err


def test_every_subcommand_takes_quiet():
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, __import__("argparse")._SubParsersAction))
    for name, sub in subparsers.choices.items():
        if name == "train":  # parsed by network.train
            continue
        assert "--quiet" in sub._option_string_actions, name


def test_quiet_prints_nothing_on_stdout(tableau_files, capsys):
    folder, _ = tableau_files
    argv = ["zemlin", str(folder / "tableau.npy"), "--tilts", str(folder / "tilts.csv"), "--energy", "80000",
            "--sampling", "0.2", "--order", "1", "--out", str(folder / "quiet_probe.json"), "--quiet"]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and (folder / "quiet_probe.json").exists()


def test_usage_errors_are_one_line_with_exit_2(capsys):
    assert cli.main(["reconstruct", "x.npy"]) == 2  # --probe and --out missing
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "required" in err
    assert cli.main(["series", "x.npy", "--probe", "p.json", "--out", "o", "--workers", "many"]) == 2
    assert "whole number" in capsys.readouterr().err
