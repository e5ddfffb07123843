"""Atom tables on disk: a plain CSV any tool reads, and the sidecar with the units and provenance."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

import deepstem_utils as ds
from deepstem_utils.atoms import table as atoms_table
from deepstem_utils.physics import specimen


def test_csv_and_sidecar_round_trip(tmp_path):
    sites = specimen.mos2_lattice((16.0, 16.0))
    found = ds.find_atoms(specimen.object_function(sites, (100, 100), 0.16), sampling=0.16)
    path = atoms_table.save_atoms(found, tmp_path / "frame_atoms.csv", extra={"frame": 3})
    plain = pd.read_csv(path)  # no comment lines: any CSV reader gets the columns
    assert list(plain.columns) == list(found.columns)
    np.testing.assert_allclose(plain.x, found.x, atol=1e-4)
    side = json.loads(atoms_table.sidecar_path(path).read_text())
    assert side["columns"]["x"] == "Å" and side["columns"]["species"] == ""
    assert side["sampling"] == 0.16 and side["origin"] == [0.0, 0.0] and side["frame"] == 3
    assert side["source"] == "ndarray" and side["deepstem_utils"] == ds.__version__
    back = atoms_table.read_atoms(path)
    assert back.attrs["units"]["y"] == "Å" and back.attrs["sampling"] == 0.16
    assert back.attrs["mixture"].keys() == found.attrs["mixture"].keys()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame_atoms.csv", "frame_atoms.json"]  # no temporaries


def test_sidecar_holds_plain_json(tmp_path):
    t = pd.DataFrame({"x": [1.0], "y": [2.0]})
    t.attrs = {"units": {"x": "Å"}, "value": np.float32(0.5), "array": np.arange(2), "bad": float("nan")}
    path = atoms_table.save_atoms(t, tmp_path / "t_atoms.csv")
    side = json.loads(atoms_table.sidecar_path(path).read_text())
    assert side["value"] == 0.5 and side["array"] == [0, 1] and side["bad"] is None and side["columns"]["y"] == ""
    assert atoms_table.read_atoms(tmp_path / "t_atoms.csv").attrs["units"] == {"x": "Å", "y": ""}
