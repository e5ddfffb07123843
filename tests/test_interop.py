"""Atoms tables into Atomap and HyperSpy markers, and back: the same sites, in the tools' own coordinates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import deepstem_utils as ds
from deepstem_utils import interop
from deepstem_utils.atoms import table as atoms_table
from deepstem_utils.physics import specimen

hs = pytest.importorskip("hyperspy.api")
S = 0.16


@pytest.fixture(scope="module")
def calibrated():
    """A MoS₂ object as a Signal2D in nm with axis offsets (a crop of a larger scan), and its sites."""
    sites = specimen.mos2_lattice((20.0, 20.0), rotation=0.2)
    obj = specimen.object_function(sites, (125, 125), S)
    signal = hs.signals.Signal2D(obj)
    for axis, offset in zip(signal.axes_manager.signal_axes, (3.0, -1.5)):  # nm: 30 Å, -15 Å
        axis.scale, axis.units, axis.offset = S / 10, "nm", offset
    return signal, ds.find_atoms(signal)


def test_sublattice_round_trip(calibrated, tmp_path):
    pytest.importorskip("atomap")
    signal, atoms = calibrated
    sub = interop.to_sublattice(atoms, signal)
    px = np.column_stack([sub.x_position, sub.y_position])
    np.testing.assert_allclose(px, (atoms[["x", "y"]].to_numpy() - [30.0, -15.0]) / S, atol=1e-9)
    back = interop.from_sublattice(sub, like=atoms)
    np.testing.assert_allclose(back[["x", "y"]], atoms[["x", "y"]], atol=1e-9)
    assert list(back.species) == list(atoms.species) and back.attrs["origin"] == [30.0, -15.0]
    # the same from a table read back from disk, on the bare array (the sidecar gives sampling and origin)
    path = atoms_table.save_atoms(atoms, tmp_path / "t_atoms.csv")
    read = atoms_table.read_atoms(path)
    sub2 = interop.to_sublattice(read, signal.data)
    np.testing.assert_allclose(np.column_stack([sub2.x_position, sub2.y_position]), px, atol=1e-3)
    # Atomap refines the Mo columns with 2-D Gaussians: they stay on the columns (to a few pm)
    mo = interop.to_sublattice(atoms, signal, species="Mo")
    mo.find_nearest_neighbors()
    mo.refine_atom_positions_using_2d_gaussian(show_progressbar=False)
    refined = interop.from_sublattice(mo, like=atoms[atoms.species == "Mo"])
    shift = np.hypot(*(refined[["x", "y"]].to_numpy() - atoms.loc[atoms.species == "Mo", ["x", "y"]].to_numpy()).T)
    assert len(refined) == (atoms.species == "Mo").sum() and np.median(shift) < 0.05
    assert refined.attrs["refined_by"] == "atomap"


def test_markers_sit_on_the_columns_in_the_signals_units(calibrated):
    signal, atoms = calibrated
    markers = interop.to_markers(atoms, signal)
    offsets = np.asarray(markers.kwargs["offsets"], float)
    np.testing.assert_allclose(offsets, atoms[["x", "y"]].to_numpy() / 10)  # Å -> the signal's nm
    x_axis, y_axis = signal.axes_manager.signal_axes
    for (xo, yo) in offsets[:20]:  # each marker on a bright pixel of the image, by the signal's own axes
        col, row = x_axis.value2index(xo), y_axis.value2index(yo)
        patch = signal.data[max(row - 1, 0):row + 2, max(col - 1, 0):col + 2]
        assert patch.max() > 0.1 * signal.data.max()  # a column (between columns the object is ~0)
    back = interop.from_markers(markers, signal)
    np.testing.assert_allclose(back[["x", "y"]], atoms[["x", "y"]], atol=1e-9)
    assert len(markers.kwargs["facecolors"]) == len(atoms)
    signal.add_marker(markers, permanent=True, plot_marker=False)  # HyperSpy accepts and keeps them
    assert len(signal.metadata.Markers) == 1
    only_mo = interop.to_markers(atoms, signal, species="Mo")
    assert len(only_mo.kwargs["offsets"]) == (atoms.species == "Mo").sum()


def test_tables_without_calibration_are_refused():
    bare = pd.DataFrame({"x": [1.0], "y": [2.0]})
    with pytest.raises(ValueError, match="pixel size"):
        interop.pixel_positions(bare, np.zeros((8, 8)))
    assert interop.pixel_positions(bare, sampling=0.5).tolist() == [[2.0, 4.0]]
    with pytest.raises(ValueError, match="'x'"):
        interop.to_markers(pd.DataFrame({"y": [1.0]}))
    uncalibrated = hs.signals.Signal2D(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="length unit"):
        interop.to_markers(bare, uncalibrated)
