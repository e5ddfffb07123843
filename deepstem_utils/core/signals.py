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

__all__ = ["LENGTH_UNITS", "to_angstrom_factor", "is_signal", "axis_calibration", "sampling_of", "origin_of",
           "Calibrated", "unwrap", "real_array", "counts_array", "SQUARE_TOLERANCE"]

#: Length units a calibrated axis may carry, and their factor to Å.
LENGTH_UNITS = {"å": 1.0, "a": 1.0, "angstrom": 1.0, "ang": 1.0, "nm": 10.0, "pm": 0.01, "µm": 1e4, "um": 1e4}
#: Largest relative difference between the x and y pixel sizes that still counts as square pixels.
SQUARE_TOLERANCE = 1e-3


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


def axis_calibration(axis, label: str = "axis") -> tuple[float, float] | None:
    """Pixel size and offset [Å] of one signal axis; None when its units are not a length.

    Parameters
    ----------
    axis : hyperspy axis
        A signal axis.
    label : str
        How the axis is named in errors (``"x"``, ``"y"``).

    Returns
    -------
    (scale, offset) : tuple of float, or None
        Both in Å; None when the axis carries no length unit (or a zero or non-finite scale).

    Raises
    ------
    ValueError
        A non-uniform axis (pixels not equally spaced) or a negative scale (a flipped axis): the package
        computes on a uniform grid with ``x = offset + column * sampling``, sampling > 0.
    """
    if not getattr(axis, "is_uniform", True):
        raise ValueError(f"the {label} axis is non-uniform (its pixel positions are not equally spaced); "
                         f"resample the image onto a uniform grid first (HyperSpy: "
                         f"signal.axes_manager.signal_axes[{0 if label == 'x' else 1}].convert_to_uniform_axis())")
    factor = to_angstrom_factor(axis.units)
    scale = float(axis.scale)
    if factor is None or not np.isfinite(scale) or scale == 0:
        return None
    if scale < 0:
        raise ValueError(f"the {label} axis has a negative scale ({scale:.4g} {axis.units} per pixel): the image "
                         f"is stored flipped along {label}; flip the data and make the scale positive first")
    offset = float(axis.offset)
    if not np.isfinite(offset):
        raise ValueError(f"the {label} axis has a non-finite offset ({offset!r})")
    return scale * factor, offset * factor


def _calibrations(signal) -> list[tuple[float, float] | None]:
    """``axis_calibration`` of the x and y signal axes (x first, as HyperSpy orders them)."""
    axes = signal.axes_manager.signal_axes
    return [axis_calibration(axis, label) for axis, label in zip(axes, ("x", "y"))]


def sampling_of(signal) -> float:
    """Pixel size [Å] of a calibrated Signal2D (from :func:`deepstem_utils.load`).

    Raises
    ------
    ValueError
        When the signal axes carry no length unit, are non-uniform or flipped (a
        negative scale), or when the pixels are not square (x and y pixel sizes
        differ by more than :data:`SQUARE_TOLERANCE`): the package uses one pixel size.
    """
    calibrations = _calibrations(signal)
    if any(c is None for c in calibrations):
        raise ValueError("the signal's axes carry no length calibration; pass sampling=<Å>")
    scales = [c[0] for c in calibrations]
    if len(scales) == 2 and abs(scales[0] - scales[1]) > SQUARE_TOLERANCE * max(scales):
        raise ValueError(f"the pixels are not square (x {scales[0]:.5g} Å, y {scales[1]:.5g} Å per pixel); the "
                         "package needs one pixel size: resample the image to square pixels first")
    return float(scales[0])


def origin_of(signal, sampling: float | None = None) -> tuple[float, float]:
    """Position [Å] of the centre of pixel (0, 0) in a signal's own coordinates: the axes' offsets, in Å.

    An axis without a length unit (when ``sampling`` is given instead) counts its
    offset in pixels of ``sampling`` [Å]; without either, the origin is 0.
    """
    origin = []
    for axis, calibration in zip(signal.axes_manager.signal_axes, _calibrations(signal)):
        if calibration is not None:
            origin.append(calibration[1])
        else:
            offset = float(axis.offset)
            origin.append(offset * sampling if sampling is not None and np.isfinite(offset) else 0.0)
    return (origin + [0.0, 0.0])[0], (origin + [0.0, 0.0])[1]


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
    origin : (float, float)
        Position (x, y) [Å] of the centre of pixel (0, 0) in the signal's own coordinates (its axes'
        offsets); (0, 0) for an ndarray.
    """

    data: np.ndarray
    sampling: float | None
    signal: object = None
    origin: tuple[float, float] = (0.0, 0.0)

    @property
    def source(self) -> str:
        """Where the data came from: the signal's file name or title, else ``"ndarray"``."""
        if self.signal is None:
            return "ndarray"
        general = self.signal.metadata.get_item("General", None)
        for key in ("original_filename", "title"):
            value = general.get_item(key, None) if general is not None else None
            if value:
                return str(value)
        return "Signal2D"

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

    Raises
    ------
    ValueError
        A Signal2D whose calibration cannot be used (see :func:`sampling_of`;
        non-uniform or flipped axes even when ``sampling`` is given).
    """
    if is_signal(image):
        data = image.data
        if hasattr(data, "compute"):
            data = data.compute()
        if sampling is None:
            sampling = sampling_of(image)
        return Calibrated(np.asarray(data), sampling, image, origin_of(image, sampling))
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


def counts_array(array, name: str = "image", min_side: int = 1, constant_ok: bool = False) -> np.ndarray:
    """``array`` as float64 after checking it can be detector counts: :func:`real_array`, non-negative, at least
    ``min_side`` px a side, not constant (unless ``constant_ok``), and not so large that its sum overflows float64
    (every statistic of the frame would then be inf).

    Raises
    ------
    ValueError
        Naming ``name`` and the problem.
    TypeError
        Not real numbers.
    """
    array = real_array(array, name)
    if min(array.shape) < min_side:
        raise ValueError(f"{name} is {array.shape[0]}x{array.shape[1]} px; at least {min_side} px a side is needed")
    low, high = float(array.min()), float(array.max())
    if low < 0:
        raise ValueError(f"{name} has negative values (min {low:.3g}); detector counts are non-negative: remove a "
                         "subtracted offset or clip at 0")
    if low == high and not constant_ok:
        raise ValueError(f"{name} is constant: there is no structure in it")
    with np.errstate(over="ignore"):
        total = float(np.sum(array))
    if not np.isfinite(total):
        raise ValueError(f"{name} has values too large to compute with (max {high:.3g}; their sum overflows "
                         "float64): rescale it, e.g. to detector counts")
    return array
