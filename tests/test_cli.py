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
