"""The ndarray/Signal2D adapter: what goes in comes out the same way, with its calibration."""

from __future__ import annotations

import hyperspy.api as hs
import numpy as np
import pytest

from deepstem_utils.core import signals


def _signal(data, scale=0.02, units="nm", offset=0.0):
    s = hs.signals.Signal2D(data)
    for axis in s.axes_manager.signal_axes:
        axis.scale, axis.units, axis.offset = scale, units, offset
    s.metadata.General.title = "frame"
    return s


def test_array_round_trip_needs_no_hyperspy_object():
    data = np.arange(12.0).reshape(3, 4)
    c = signals.unwrap(data, sampling=0.2)
    assert c.signal is None and c.sampling == 0.2
    out = c.like(data * 2, "doubled", {"DeepSTEM.x": 1})
    assert isinstance(out, np.ndarray) and np.array_equal(out, data * 2)


def test_signal_round_trip_keeps_axes_and_adds_metadata():
    s = _signal(np.ones((8, 10)), scale=0.016, units="nm", offset=0.5)
    c = signals.unwrap(s)
    assert c.sampling == pytest.approx(0.16)  # nm -> Å
    out = c.like(np.zeros((8, 10)), "object function", {"DeepSTEM.note": "made here"})
    assert out.metadata.General.title == "object function"
    assert out.metadata.DeepSTEM.note == "made here"
    axis = out.axes_manager.signal_axes[0]
    assert (axis.scale, axis.units, axis.offset) == (0.016, "nm", 0.5)
    assert s.metadata.General.title == "frame"  # the input is untouched


def test_explicit_sampling_overrides_the_calibration():
    assert signals.unwrap(_signal(np.ones((4, 4))), sampling=0.3).sampling == 0.3


def test_uncalibrated_signal_is_a_clear_error():
    with pytest.raises(ValueError, match="no length calibration"):
        signals.unwrap(_signal(np.ones((4, 4)), units="px"))


def test_units():
    assert signals.to_angstrom_factor(" NM ") == 10.0
    assert signals.to_angstrom_factor("µm") == 1e4
    assert signals.to_angstrom_factor("px") is None


@pytest.mark.parametrize("bad, error, match", [
    (np.ones(5), ValueError, "2-D"), (np.array([[1.0, np.nan]]), ValueError, "NaN"),
    (np.ones((2, 2), complex), TypeError, "real"), (np.array([["a"]]), TypeError, "real")])
def test_real_array_names_the_problem(bad, error, match):
    with pytest.raises(error, match=match):
        signals.real_array(bad, "frame")


# ---------------------------------------------------------------- calibration that cannot be used silently
def _non_uniform(data):
    s = _signal(data)
    axis = s.axes_manager.signal_axes[0]
    axis.convert_to_non_uniform_axis()
    s.axes_manager.signal_axes[0].axis = np.linspace(0.0, 1.0, data.shape[1]) ** 2  # pixels not equally spaced
    return s


def test_non_uniform_axis_is_a_clear_error():
    with pytest.raises(ValueError, match="non-uniform"):
        signals.sampling_of(_non_uniform(np.ones((6, 8))))


def test_non_square_pixels_are_a_clear_error_not_x_alone():
    s = _signal(np.ones((6, 8)), scale=0.016)
    s.axes_manager.signal_axes[1].scale = 0.020
    with pytest.raises(ValueError, match="not square"):
        signals.sampling_of(s)
    with pytest.raises(ValueError, match="not square"):
        signals.unwrap(s)
    s.axes_manager.signal_axes[1].scale = 0.016 * (1 + 1e-5)  # rounding in a file header is square
    assert signals.sampling_of(s) == pytest.approx(0.16)


def test_negative_scale_is_named_not_called_uncalibrated():
    s = _signal(np.ones((6, 8)), scale=-0.016)
    with pytest.raises(ValueError, match="negative scale") as info:
        signals.sampling_of(s)
    assert "no length calibration" not in str(info.value)


def test_origin_is_the_axes_offsets_in_angstrom():
    s = _signal(np.ones((6, 8)), scale=0.016, units="nm", offset=0.5)
    s.axes_manager.signal_axes[1].offset = -0.25
    assert signals.origin_of(s) == pytest.approx((5.0, -2.5))
    c = signals.unwrap(s)
    assert c.origin == pytest.approx((5.0, -2.5)) and c.source == "frame"
    assert signals.unwrap(np.ones((3, 3)), 0.1).origin == (0.0, 0.0)
    px = _signal(np.ones((6, 8)), scale=1.0, units="px", offset=3.0)  # pixel offsets in pixels of the given size
    assert signals.unwrap(px, sampling=0.2).origin == pytest.approx((0.6, 0.6))


@pytest.mark.parametrize("bad, match", [(np.eye(4) * 1e307 + 1e307, "too large"), (-np.ones((4, 4)), "negative"),
                                        (np.ones((4, 4)), "constant"), (np.eye(4), "at least 8 px")])
def test_counts_array_refuses_what_gives_no_finite_answer(bad, match):
    with pytest.raises(ValueError, match=match):
        signals.counts_array(bad, "frame", min_side=8 if match == "at least 8 px" else 1)
    big = np.eye(4) * 1e300
    assert signals.counts_array(big, "frame").max() == 1e300  # large but summable is fine
