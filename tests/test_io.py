"""deepstem_utils.io.load: calibrated signals and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import deepstem_utils as ds


def test_npy_needs_sampling(tmp_path):
    path = tmp_path / "frame.npy"
    np.save(path, np.ones((64, 80)))
    with pytest.raises(ValueError, match="sampling"):
        ds.load(path)
    signal = ds.load(path, sampling=0.16)
    assert signal.data.shape == (64, 80)
    for axis in signal.axes_manager.signal_axes:
        assert axis.units == "Å" and axis.scale == pytest.approx(0.16)


def test_hspy_round_trip_converts_nm(tmp_path):
    import hyperspy.api as hs

    s = hs.signals.Signal2D(np.random.default_rng(0).random((32, 48)))
    for axis in s.axes_manager.signal_axes:
        axis.scale, axis.units = 0.02, "nm"
    path = tmp_path / "frame.hspy"
    s.save(path)
    loaded = ds.load(path)
    np.testing.assert_array_equal(loaded.data, s.data)
    assert loaded.axes_manager.signal_axes[0].scale == pytest.approx(0.2)
    assert loaded.axes_manager.signal_axes[0].units == "Å"


@pytest.mark.parametrize("name,content,match", [
    ("missing.npy", None, "not found"),
    ("empty.npy", b"", "empty"),
    ("frame.xyz", b"abc", "unknown file type"),
    ("broken.npy", b"\x93NUMPY garbage", "not a readable"),
    ("broken.hspy", b"not hdf5 at all", "could not be read"),
])
def test_bad_files(tmp_path, name, content, match):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        ds.load(path, sampling=0.2)


def test_uncalibrated_file_asks_for_sampling(tmp_path):
    import hyperspy.api as hs

    path = tmp_path / "raw.hspy"
    hs.signals.Signal2D(np.ones((16, 16))).save(path)
    with pytest.raises(ValueError, match="--sampling"):
        ds.load(path)
    assert ds.load(path, sampling=0.1).axes_manager.signal_axes[0].scale == pytest.approx(0.1)


def test_microscope_settings_from_metadata():
    hs = pytest.importorskip("hyperspy.api")
    from deepstem_utils.io import microscope_settings

    s = hs.signals.Signal2D(np.zeros((8, 8)))
    assert microscope_settings(s) == {"energy": None, "semiangle": None, "dwell_time": None, "magnification": None}
    s.metadata.set_item("Acquisition_instrument.TEM.beam_energy", 60.0)
    s.metadata.set_item("Acquisition_instrument.TEM.convergence_angle", 31.5)
    s.metadata.set_item("Acquisition_instrument.TEM.dwell_time", 2e-6)
    got = microscope_settings(s)
    assert got["energy"] == 60e3 and got["semiangle"] == 31.5 and got["dwell_time"] == pytest.approx(2.0)


# ---------------------------------------------------------------- calibrations load() must not use silently
def _saved(tmp_path, name, change):
    import hyperspy.api as hs

    s = hs.signals.Signal2D(np.random.default_rng(0).random((16, 20)))
    for axis in s.axes_manager.signal_axes:
        axis.scale, axis.units = 0.02, "nm"
    change(s)
    path = tmp_path / name
    s.save(path)
    return path


def _non_uniform(s):
    s.axes_manager.signal_axes[0].convert_to_non_uniform_axis()
    s.axes_manager.signal_axes[0].axis = np.linspace(0.0, 1.0, 20) ** 2


def _non_square(s):
    s.axes_manager.signal_axes[1].scale = 0.03


def _flipped(s):
    s.axes_manager.signal_axes[0].scale = -0.02


@pytest.mark.parametrize("change, match", [(_non_uniform, "non-uniform"), (_non_square, "not square"),
                                           (_flipped, "negative scale")])
def test_unusable_calibration_is_a_clear_error_naming_the_file(tmp_path, change, match):
    path = _saved(tmp_path, "odd.hspy", change)
    with pytest.raises(ValueError, match=match) as info:
        ds.load(path)
    assert "odd.hspy" in str(info.value)
    # an explicit pixel size replaces the calibration
    signal = ds.load(path, sampling=0.2)
    assert [a.scale for a in signal.axes_manager.signal_axes] == [0.2, 0.2]


def test_load_keeps_the_axis_offset_in_angstrom(tmp_path):
    def shifted(s):
        s.axes_manager.signal_axes[0].offset = 1.5  # nm
    signal = ds.load(_saved(tmp_path, "shifted.hspy", shifted))
    assert signal.axes_manager.signal_axes[0].offset == pytest.approx(15.0)


def test_file_frames_need_one_shape_and_name_the_odd_file(tmp_path):
    from deepstem_utils.io import FileFrames

    np.save(tmp_path / "a.npy", np.ones((3, 32, 32)))
    np.save(tmp_path / "b.npy", np.ones((32, 40)))
    with pytest.raises(ValueError, match="b.npy.*one frame shape"):
        FileFrames([tmp_path / "a.npy", tmp_path / "b.npy"], sampling=0.2)
    frames = FileFrames([tmp_path / "a.npy"], sampling=0.2)
    assert len(frames) == 3 and frames.source(2) == "a.npy, frame 2"
    assert frames.names() == ["a_00000", "a_00001", "a_00002"]
    sub = tmp_path / "sub"
    sub.mkdir()
    np.save(sub / "a.npy", np.ones((32, 32)))
    np.save(tmp_path / "c.npy", np.ones((32, 32)))
    with pytest.raises(ValueError, match="rename"):
        FileFrames([tmp_path / "c.npy", sub / "a.npy", sub / "a.npy"], sampling=0.2).names()
