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
        ["zemlin", "t.hspy", "--tilts", "t.csv", "--energy", "80000", "--out", "p.json"],
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
