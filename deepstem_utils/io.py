"""Reading microscope files into calibrated HyperSpy signals (lengths in Å), one by one or as a series.

:func:`load` reads what HyperSpy/RosettaSciIO reads (``.dm3 .dm4 .emd .hspy
.tif``) and ``.npy`` (which carries no calibration, so ``sampling`` is needed).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .core.signals import axis_calibration, sampling_of

__all__ = ["SUPPORTED", "load", "sampling_of", "microscope_settings", "FileFrames"]

SUPPORTED = (".dm3", ".dm4", ".emd", ".hspy", ".tif", ".tiff", ".npy")


def _calibrate(signal, sampling: float | None, path: Path):
    """The signal with both signal axes in Å (or set to ``sampling``), after checking that they are usable."""
    axes = signal.axes_manager.signal_axes
    if sampling is not None:
        for axis in axes:
            if not getattr(axis, "is_uniform", True):
                axis.convert_to_uniform_axis()  # replaced below by the given pixel size
        for axis in signal.axes_manager.signal_axes:
            axis.scale, axis.units, axis.offset = float(sampling), "Å", 0.0
        return signal
    try:
        calibrations = [axis_calibration(axis, label) for axis, label in zip(axes, ("x", "y"))]
    except ValueError as err:
        raise ValueError(f"{path.name}: {err}") from None
    for axis, calibration in zip(axes, calibrations):
        if calibration is None:
            raise ValueError(
                f"{path.name} has no length calibration (axis units {str(axis.units)!r}); "
                "pass the pixel size with sampling=<Å> (command line: --sampling <Å>)"
            )
    for axis, (scale, offset) in zip(axes, calibrations):
        axis.scale, axis.offset, axis.units = scale, offset, "Å"
    try:
        sampling_of(signal)  # square pixels
    except ValueError as err:
        raise ValueError(f"{path.name}: {err} (or pass --sampling to override the calibration)") from None
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


class FileFrames:
    """The frames of one or more files as a lazy sequence (each file a frame or a stack).

    Files are opened lazily (HyperSpy), so a long series is read one frame at a time.
    Every file's calibration and frame shape are checked when the sequence is made
    (from the files' headers, without reading the frames): one pixel size and one
    frame shape for the whole series, or a ``ValueError`` that names the file.

    Parameters
    ----------
    paths : iterable of str or Path
        The files, in time order.
    sampling : float, optional
        Pixel size [Å] for every file (needed for ``.npy`` and uncalibrated files).
    """

    def __init__(self, paths, sampling: float | None = None):
        self._items = []
        self.sampling = None
        self.shape = None
        self.paths = [Path(p) for p in paths]
        for path in self.paths:
            signal = load(path, sampling=sampling, lazy=True)
            s = sampling_of(signal)
            if self.sampling is None:
                self.sampling = s
            elif abs(s - self.sampling) > 1e-6 * self.sampling:
                raise ValueError(f"{path.name} has pixel size {s:.4g} Å, the first file {self.sampling:.4g} Å: "
                                 "a series needs one pixel size")
            data = signal.data
            shape = tuple(int(n) for n in data.shape[-2:])
            if self.shape is None:
                self.shape = shape
            elif shape != self.shape:
                raise ValueError(f"{path.name} holds frames of {shape[0]}x{shape[1]} px, the first file "
                                 f"{self.shape[0]}x{self.shape[1]} px: a series needs one frame shape")
            if data.ndim == 2:
                self._items.append((data, None, path))
            else:
                flat = data.reshape((-1,) + data.shape[-2:])
                self._items.extend((flat, k, path) for k in range(flat.shape[0]))

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i: int) -> np.ndarray:
        data, k, _ = self._items[i]
        frame = data if k is None else data[k]
        return np.asarray(frame.compute() if hasattr(frame, "compute") else frame)

    def source(self, i: int) -> str:
        """Where frame ``i`` comes from: the file name, and its index in a stack (``"run.emd, frame 3"``)."""
        _, k, path = self._items[i]
        return path.name if k is None else f"{path.name}, frame {k}"

    def names(self) -> list[str]:
        """One name per frame, for its output files: the file's stem, or ``<stem>_NNNNN`` for frame NNNNN of a
        stack.

        Raises
        ------
        ValueError
            Two frames would get the same name (files with one stem in two folders).
        """
        names = [path.stem if k is None else f"{path.stem}_{k:05d}" for _, k, path in self._items]
        seen = {}
        for i, name in enumerate(names):
            if name in seen:
                raise ValueError(f"{self.source(seen[name])} and {self.source(i)} would both write {name}_*: "
                                 "rename one")
            seen[name] = i
        return names
