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
