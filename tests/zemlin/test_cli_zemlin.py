"""`deepstem zemlin` on tableaux that cannot be measured, or barely: never a NaN in a probe file (issue 22)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from deepstem_utils import cli, zemlin


def _write(folder, stack, tilts):
    np.save(folder / "tableau.npy", stack)
    (folder / "tilts.csv").write_text("tx_mrad,ty_mrad\n" + "\n".join(f"{x},{y}" for x, y in tilts) + "\n")
    return ["zemlin", str(folder / "tableau.npy"), "--tilts", str(folder / "tilts.csv"), "--energy", "80000",
            "--sampling", "0.2", "--out", str(folder / "probe.json")]


def test_one_image_tableau_writes_finite_numbers(tmp_path, capsys):
    """One image and --order 1 used to write NaN uncertainties; they now come from the ring fit."""
    tilts = np.zeros((1, 2))
    stack = zemlin.simulate_tableau({"C10": -300.0, "C12": 30.0, "phi12": 0.2}, tilts, shape=(256, 256),
                                    sampling=0.2, dose=1e4, focal_spread=30.0, angular_spread=0.0,
                                    quadrature=(3, 1), rng=2)
    argv = _write(tmp_path, stack, tilts) + ["--order", "1"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    for name in ("probe.json", "probe_uncertainties.json"):
        text = (tmp_path / name).read_text()
        assert "NaN" not in text and "Infinity" not in text
        values = json.loads(text)
        numbers = values["aberrations"].values() if "aberrations" in values else values.values()
        assert all(math.isfinite(v) for v in numbers)


@pytest.mark.parametrize("case", ["blank", "one image at order 3"])
def test_unmeasurable_tableau_exits_2_with_one_line(tmp_path, capsys, case):
    tilts = zemlin.tableau_tilts((10.0, 20.0), 6)
    if case == "blank":
        stack = np.random.default_rng(1).poisson(400.0, (len(tilts), 256, 256)).astype(float)
    else:
        tilts = tilts[:1]
        stack = np.random.default_rng(1).poisson(400.0, (1, 256, 256)).astype(float)
    assert cli.main(_write(tmp_path, stack, tilts)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("deepstem zemlin: error:")
    assert not (tmp_path / "probe.json").exists() and not (tmp_path / "probe_uncertainties.json").exists()
