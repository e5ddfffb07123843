"""Property-based tests (hypothesis): reconstruct, find_atoms and load never crash on valid input of any
shape, dtype, scale and sampling, keep the shape and return finite values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deepstem_utils as ds

PROBE = ds.Probe(80e3, 30.0, {"C30": -1e4})
DTYPES = [np.uint8, np.uint16, np.int32, np.float32, np.float64]
FAST = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def images(draw, min_side=64, max_side=150):
    ny = draw(st.integers(min_side, max_side))
    nx = draw(st.integers(min_side, max_side))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        top = min(np.iinfo(dtype).max, draw(st.sampled_from([1, 5, 200, 60000])))
        image = rng.poisson(rng.uniform(0.05, 1.0) * top, size=(ny, nx)).clip(0, np.iinfo(dtype).max)
    else:
        scale = draw(st.sampled_from([1e-3, 1.0, 1e4]))
        image = rng.gamma(0.5, scale, size=(ny, nx))
    image = image.astype(dtype)
    if image.max() == image.min():
        image.flat[0] = image.max() + 1 if np.issubdtype(dtype, np.integer) and image.max() < np.iinfo(dtype).max else 0
    return image


@FAST
@given(image=images(), sampling=st.floats(0.05, 0.30))
def test_reconstruct_never_crashes(image, sampling):
    obj = ds.reconstruct(image, PROBE, sampling=sampling)
    assert obj.shape == image.shape
    assert np.all(np.isfinite(obj)) and obj.min() >= 0


@FAST
@given(image=images(min_side=32, max_side=120), sampling=st.floats(0.05, 0.30),
       material=st.sampled_from(["MoS2", None]))
def test_find_atoms_never_crashes(image, sampling, material):
    table = ds.find_atoms(image, sampling=sampling, material=material)
    assert list(table.columns[:4]) == ["x", "y", "species", "confidence"]
    assert np.all(np.isfinite(table[["x", "y", "confidence"]].to_numpy(float)))
    ny, nx = image.shape
    assert table.x.between(-1, nx * sampling + 1).all() and table.y.between(-1, ny * sampling + 1).all()


@FAST
@given(image=images(min_side=8, max_side=80), sampling=st.floats(0.05, 0.30),
       ext=st.sampled_from([".npy", ".tif", ".hspy"]))
def test_load_round_trip(tmp_path_factory, image, sampling, ext):
    hs = pytest.importorskip("hyperspy.api")
    path = tmp_path_factory.mktemp("fuzz") / f"img{ext}"
    if ext == ".npy":
        np.save(path, image)
        signal = ds.load(path, sampling=sampling)
    else:
        s = hs.signals.Signal2D(image)
        for axis in s.axes_manager.signal_axes:
            axis.scale, axis.units = sampling / 10, "nm"
        s.save(path)
        signal = ds.load(path)
    assert signal.data.shape == image.shape
    np.testing.assert_array_equal(np.asarray(signal.data), image)
    assert ds.io.sampling_of(signal) == pytest.approx(sampling, rel=1e-5)
