"""The linear image model and the acquisition model."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

import deepstem_utils as ds
from deepstem_utils.physics import imaging


@pytest.fixture(scope="module")
def psf():
    return ds.Probe(80e3, 30.0, {"C21": 200.0, "phi21": 0.5, "C12": 20.0}).intensity((31, 31), 0.16)


def test_delta_gives_the_probe(psf):
    obj = np.zeros((80, 70))
    obj[40, 33] = 1.0
    image = ds.linear_image(obj, psf, boundary="constant")
    np.testing.assert_allclose(image[40 - 15 : 40 + 16, 33 - 15 : 33 + 16], psf, atol=1e-14)
    assert image.sum() == pytest.approx(1.0)


def test_even_sized_psf_centring():
    psf = np.zeros((8, 8))
    psf[4, 4] = 1.0  # centred on (py//2, px//2)
    obj = np.random.default_rng(1).random((20, 25))
    np.testing.assert_allclose(ds.linear_image(obj, psf), obj, atol=1e-12)


def test_matches_direct_convolution(psf):
    obj = np.random.default_rng(2).random((50, 60))
    expected = signal.convolve2d(obj, psf, mode="same", boundary="fill")
    np.testing.assert_allclose(ds.linear_image(obj, psf, boundary="constant"), expected, atol=1e-12)
    expected_wrap = signal.convolve2d(obj, psf, mode="same", boundary="wrap")
    np.testing.assert_allclose(ds.linear_image(obj, psf, boundary="periodic"), expected_wrap, atol=1e-12)
    expected_reflect = signal.convolve2d(obj, psf, mode="same", boundary="symm")
    np.testing.assert_allclose(ds.linear_image(obj, psf, boundary="reflect"), expected_reflect, atol=1e-12)


def test_no_wraparound_at_edges(psf):
    """A bright atom at the left edge must not appear at the right edge."""
    obj = np.zeros((64, 64))
    obj[32, 0] = 1.0
    for boundary in ("reflect", "constant"):
        image = ds.linear_image(obj, psf, boundary=boundary)
        assert image[:, -10:].max() < 1e-12


def test_uniform_object_has_no_dark_rim(psf):
    image = ds.linear_image(np.full((40, 50), 3.0), psf)
    np.testing.assert_allclose(image, 3.0)


def test_psf_larger_than_object():
    psf = ds.Probe(80e3, 30.0).intensity((129, 129), 0.1)
    obj = np.random.default_rng(3).random((40, 30))
    image = ds.linear_image(obj, psf)
    assert image.shape == obj.shape and np.all(np.isfinite(image))


@pytest.mark.parametrize("bad", [np.zeros(10), np.zeros((3, 4, 5))])
def test_wrong_dimensions(bad, psf):
    with pytest.raises(ValueError, match="2-D"):
        ds.linear_image(bad, psf)


def test_nan_is_an_error(psf):
    obj = np.zeros((20, 20))
    obj[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ds.linear_image(obj, psf)


def test_electrons_per_pixel():
    assert imaging.electrons_per_pixel(1e4, 0.2) == pytest.approx(400.0)
    with pytest.raises(ValueError):
        imaging.electrons_per_pixel(-1, 0.2)


def test_dose_from_current():
    # 10 pA for 1 µs = 62.4 electrons; on a 0.1 Å pixel that is 6242 e-/Å²
    assert imaging.dose_from_current(10.0, 1.0, 0.1) == pytest.approx(6241.5, rel=1e-4)
    acq = ds.Acquisition(dose=6241.509, sampling=0.1, dwell_time=1.0)
    assert acq.probe_current == pytest.approx(10.0, rel=1e-4)
    assert acq.dwell_time_per_area == pytest.approx(100.0)


@pytest.mark.parametrize("dose", [1e3, 1e4, 1e5])
def test_dose_gives_mean_counts(dose):
    fraction = 0.03
    frame = ds.acquire(np.full((128, 128), fraction), ds.Acquisition(dose=dose, sampling=0.16), rng=7)
    expected = fraction * dose * 0.16**2
    assert frame.mean() == pytest.approx(expected, abs=5 * np.sqrt(expected / frame.size))
    # Poisson: variance equals mean
    assert frame.var() == pytest.approx(expected, rel=0.1)


def test_gain_offset_read_noise():
    acq = ds.Acquisition(dose=1e4, sampling=0.2, gain=3.0, offset=100.0, read_noise=2.0)
    frame = ds.acquire(np.full((200, 200), 0.05), acq, rng=1)
    mean_e = 0.05 * 400
    assert frame.mean() == pytest.approx(3 * mean_e + 100, rel=0.01)
    assert frame.var() == pytest.approx(9 * mean_e + 4, rel=0.05)


def test_acquire_is_reproducible_with_seed():
    image = np.full((32, 32), 0.1)
    acq = ds.Acquisition(jitter=0.2, drift=(5.0, 0.0))
    np.testing.assert_array_equal(ds.acquire(image, acq, rng=3), ds.acquire(image, acq, rng=3))


def test_drift_shifts_the_image():
    """A drift of vx moves the specimen by vx * t: the last row is shifted by vx * frame time."""
    obj = np.zeros((64, 64))
    obj[:, 20] = 1.0  # a vertical line
    image = ds.linear_image(obj, np.ones((1, 1)))
    acq = ds.Acquisition(dose=1e9, sampling=0.1, dwell_time=1.0, drift=(20.0, 0.0))  # 20 Å/s
    frame = ds.acquire(image, acq, rng=0)
    t_last_row = 63 * 64 * 1e-6  # [s]
    expected_shift = 20.0 * t_last_row / 0.1  # [px]
    first = np.argmax(frame[0])
    last = np.sum(frame[-1] * np.arange(64)) / frame[-1].sum()
    assert first == 20
    assert last - first == pytest.approx(expected_shift, abs=0.1)


def test_jitter_displaces_lines():
    obj = np.zeros((64, 64))
    obj[:, 32] = 1.0
    image = ds.linear_image(obj, ds.Probe(80e3, 30.0).intensity((21, 21), 0.1))
    acq = ds.Acquisition(dose=1e9, sampling=0.1, jitter=0.3)
    frame = ds.acquire(image, acq, rng=4)
    centres = (frame * np.arange(64)).sum(1) / frame.sum(1)
    assert 0.15 / 0.1 < np.std(centres) < 0.45 / 0.1


def test_negative_image_is_an_error():
    with pytest.raises(ValueError, match="non-negative"):
        ds.acquire(-np.ones((8, 8)), ds.Acquisition())
