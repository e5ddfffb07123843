"""Reading microscope files into calibrated HyperSpy signals (lengths in Å).

:func:`load` reads what HyperSpy/RosettaSciIO reads (``.dm3 .dm4 .emd .hspy
.tif``) and ``.npy`` (which carries no calibration, so ``sampling`` is needed).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["SUPPORTED", "load", "sampling_of", "to_angstrom_factor", "microscope_settings"]

SUPPORTED = (".dm3", ".dm4", ".emd", ".hspy", ".tif", ".tiff", ".npy")
_LENGTH_UNITS = {"å": 1.0, "a": 1.0, "angstrom": 1.0, "ang": 1.0, "nm": 10.0, "pm": 0.01, "µm": 1e4, "um": 1e4}


def to_angstrom_factor(units) -> float | None:
    """Factor from a length unit to Å, or None when the unit is not a length."""
    return _LENGTH_UNITS.get(str(units).strip().lower())


def _calibrate(signal, sampling: float | None, path: Path):
    for axis in signal.axes_manager.signal_axes:
        if sampling is not None:
            axis.scale, axis.units, axis.offset = float(sampling), "Å", 0.0
            continue
        factor = to_angstrom_factor(axis.units)
        if factor is None or not np.isfinite(axis.scale) or axis.scale <= 0:
            raise ValueError(
                f"{path.name} has no length calibration (axis units {str(axis.units)!r}); "
                "pass the pixel size with sampling=<Å> (command line: --sampling <Å>)"
            )
        axis.scale, axis.offset, axis.units = axis.scale * factor, axis.offset * factor, "Å"
    return signal


def load(path: str | os.PathLike, sampling: float | None = None, lazy: bool = False):
    """Load an image, stack or tableau as a HyperSpy Signal2D with axes in Å.

    Parameters
    ----------
    path : str or Path
        ``.dm3 .dm4 .emd .hspy .tif`` or ``.npy``.
    sampling : float, optional
        Pixel size [Å]. Required for ``.npy`` and uncalibrated files; overrides the file's calibration.
    lazy : bool
        Load lazily (large stacks and time series).

    Returns
    -------
    hyperspy.signals.Signal2D
    """
    import hyperspy.api as hs

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not an image file")
    ext = path.suffix.lower()
    if ext not in SUPPORTED:
        raise ValueError(f"{path.name}: unknown file type {ext!r}; supported: {' '.join(SUPPORTED)}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty")
    if sampling is not None and (not np.isfinite(sampling) or sampling <= 0):
        raise ValueError(f"sampling must be a positive pixel size in Å, got {sampling!r}")
    if ext == ".npy":
        if sampling is None:
            raise ValueError(f"{path.name}: a .npy file has no calibration; pass sampling=<Å> (--sampling <Å>)")
        try:
            data = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise ValueError(f"{path} is not a readable .npy file ({err})") from None
        if data.ndim < 2:
            raise ValueError(f"{path.name} holds a {data.ndim}-D array; an image must be 2-D (a stack 3-D)")
        signal = hs.signals.Signal2D(data)
        signal.metadata.General.title = path.stem
        signal.metadata.General.original_filename = path.name
    else:
        try:
            signal = hs.load(str(path), lazy=lazy)
        except Exception as err:  # RosettaSciIO raises many kinds of errors on bad files
            raise ValueError(f"{path} could not be read ({type(err).__name__}: {err})") from None
        if isinstance(signal, list):
            images = [s for s in signal if s.axes_manager.signal_dimension == 2]
            if not images:
                raise ValueError(f"{path.name} holds no 2-D image")
            signal = images[0]
        if signal.axes_manager.signal_dimension != 2:
            signal = signal.as_signal2D((0, 1)) if signal.data.ndim >= 2 else signal
            if signal.axes_manager.signal_dimension != 2:
                raise ValueError(f"{path.name} holds no 2-D image")
    return _calibrate(signal, sampling, path)


def sampling_of(signal) -> float:
    """Pixel size [Å] of a calibrated Signal2D (from :func:`load`)."""
    axes = signal.axes_manager.signal_axes
    factor = to_angstrom_factor(axes[0].units)
    if factor is None:
        raise ValueError("the signal's axes carry no length calibration; pass sampling=<Å>")
    return float(axes[0].scale * factor)


def microscope_settings(signal) -> dict:
    """Beam energy [eV], convergence semiangle [mrad], dwell time [µs] and magnification from metadata.

    Reads HyperSpy's standard ``metadata.Acquisition_instrument.TEM`` entries
    (``beam_energy`` in keV, ``convergence_angle`` in mrad, ``dwell_time`` in s,
    ``magnification``); a setting the file does not carry is None.
    """
    tem = "Acquisition_instrument.TEM."
    md = signal.metadata

    def get(key):
        return md.get_item(tem + key) if md.has_item(tem + key) else None

    energy, semiangle, magnification = get("beam_energy"), get("convergence_angle"), get("magnification")
    dwell = get("dwell_time")
    if dwell is None and md.has_item(tem + "Detector.dwell_time"):
        dwell = md.get_item(tem + "Detector.dwell_time")
    return {
        "energy": float(energy) * 1e3 if energy is not None else None,
        "semiangle": float(semiangle) if semiangle is not None else None,
        "dwell_time": float(dwell) * 1e6 if dwell is not None else None,
        "magnification": float(magnification) if magnification is not None else None,
    }
