"""The one adapter between what a user hands in and what the package computes on.

Every public entry point (:func:`reconstruct`, :func:`find_atoms`,
:func:`measure_aberrations`, ...) accepts a plain ndarray with a ``sampling``
[Å/px] or a HyperSpy ``Signal2D`` that carries its own calibration. They call
:func:`unwrap` once, compute on the plain array, and hand the result back the
way it came (:meth:`Calibrated.like`): an ndarray for an ndarray, a Signal2D
with the input's axes and metadata for a Signal2D.

HyperSpy is imported only when a Signal2D is returned (it is heavy to import).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LENGTH_UNITS", "to_angstrom_factor", "is_signal", "sampling_of", "Calibrated", "unwrap", "real_array"]

#: Length units a calibrated axis may carry, and their factor to Å.
LENGTH_UNITS = {"å": 1.0, "a": 1.0, "angstrom": 1.0, "ang": 1.0, "nm": 10.0, "pm": 0.01, "µm": 1e4, "um": 1e4}


def to_angstrom_factor(units) -> float | None:
    """Factor from a length unit to Å, or None when the unit is not a length.

    Examples
    --------
    >>> to_angstrom_factor("nm"), to_angstrom_factor("px")
    (10.0, None)
    """
    return LENGTH_UNITS.get(str(units).strip().lower())


def is_signal(obj) -> bool:
    """Whether ``obj`` looks like a HyperSpy signal (it has axes and data)."""
    return hasattr(obj, "axes_manager") and hasattr(obj, "data")


def sampling_of(signal) -> float:
    """Pixel size [Å] of a calibrated Signal2D (from :func:`deepstem_utils.load`).

    Raises
    ------
    ValueError
        When the signal axes carry no length unit.
    """
    axes = signal.axes_manager.signal_axes
    factor = to_angstrom_factor(axes[0].units)
    if factor is None:
        raise ValueError("the signal's axes carry no length calibration; pass sampling=<Å>")
    return float(axes[0].scale * factor)


@dataclass(frozen=True)
class Calibrated:
    """An image (or stack) as the package computes on it, with where it came from.

    Attributes
    ----------
    data : ndarray
        The values, as given (a lazy signal's data is computed).
    sampling : float or None
        Pixel size [Å]: the one passed in, else the signal's calibration; None when unknown.
    signal : Signal2D or None
        The signal it came from (None for an ndarray).
    """

    data: np.ndarray
    sampling: float | None
    signal: object = None

    def like(self, data: np.ndarray, title: str | None = None, metadata: dict | None = None):
        """``data`` (same grid) returned the way the input came.

        An ndarray for an ndarray input. For a Signal2D input, a Signal2D with the
        input's axes (scale, units, offset), metadata and original metadata, the
        title ``title`` and every ``metadata`` item set (dotted keys, e.g.
        ``"DeepSTEM.weights"``).
        """
        if self.signal is None:
            return data
        import hyperspy.api as hs

        axes = [axis.get_axis_dictionary() for axis in self.signal.axes_manager._axes]
        out = hs.signals.Signal2D(data, axes=axes, metadata=self.signal.metadata.as_dictionary(),
                                  original_metadata=self.signal.original_metadata.as_dictionary())
        if title is not None:
            out.metadata.General.title = title
        for key, value in (metadata or {}).items():
            out.metadata.set_item(key, value)
        return out


def unwrap(image, sampling: float | None = None) -> Calibrated:
    """Take an ndarray or a Signal2D apart into data, pixel size and origin.

    Parameters
    ----------
    image : ndarray or Signal2D
        The input. A lazy signal is computed.
    sampling : float, optional
        Pixel size [Å]; for a Signal2D it overrides the calibration.

    Returns
    -------
    Calibrated
        Checks of the values (shape, dtype, finiteness) are the caller's: each
        entry point names its own input in its errors.
    """
    if is_signal(image):
        data = image.data
        if hasattr(data, "compute"):
            data = data.compute()
        if sampling is None:
            sampling = sampling_of(image)
        return Calibrated(np.asarray(data), sampling, image)
    return Calibrated(np.asarray(image), sampling, None)


def real_array(array, name: str = "image", ndim: int = 2) -> np.ndarray:
    """``array`` as float64 after checking it is ``ndim``-D, real, numeric and finite.

    Raises
    ------
    ValueError
        Wrong number of dimensions, NaN or inf.
    TypeError
        Not real numbers.
    """
    array = np.asarray(array)
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D{' (ny, nx)' if ndim == 2 else ''}, got an array of shape "
                         f"{array.shape}")
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise TypeError(f"{name} must be a real numeric array, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or inf; replace or crop the bad pixels first")
    return array
