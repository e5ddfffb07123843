"""The deepstem command: installed, helpful, and honest about what is not there yet."""

from __future__ import annotations

import subprocess
import sys

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


@pytest.mark.parametrize(
    "argv",
    [
        ["reconstruct", "x.npy", "--probe", "p.json", "--out", "o"],
        ["atoms", "x.hspy", "--out", "o"],
        ["series", "a.npy", "--probe", "p.json", "--out", "o"],
    ],
)
def test_pending_subcommands_fail_clearly(argv, capsys):
    assert cli.main(argv) != 0
    err = capsys.readouterr().err
    assert "not yet available" in err and len(err.strip().splitlines()) == 1


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
