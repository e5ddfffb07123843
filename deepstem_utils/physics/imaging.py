"""The linear (incoherent) HAADF image model and the acquisition model.

The noiseless image is the object function convolved with the probe
intensity, :math:`I = |P|^2 \\circledast O` (:func:`linear_image`). The object
function ``O`` is a dimensionless density: the probability per unit area
[1/Å² × Å² per pixel = dimensionless per pixel] that an electron passing there
is scattered onto the annular detector. With a point-spread function that
sums to one, ``I`` is the expected fraction of the probe's electrons that the
detector counts at each scan position.

:func:`acquire` turns that fraction into what a detector records: electrons
per pixel from the dose and pixel size, Poisson counting, scan distortions
(line jitter and drift), detector gain, offset and read noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.fft import next_fast_len

from ..core.constants import E_CHARGE
from ..core.signals import real_array

__all__ = [
    "linear_image",
    "electrons_per_pixel",
    "dose_from_current",
    "dwell_time_per_area",
    "Acquisition",
    "scan_positions",
    "acquire",
]

def _pad_widths(psf_shape: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    # the PSF is centred on (py//2, px//2): it reaches py//2 rows up and py-1-py//2 rows down
    py, px = psf_shape
    return ((py - 1 - py // 2, py // 2), (px - 1 - px // 2, px // 2))


def linear_image(obj: np.ndarray, psf: np.ndarray, boundary: str = "reflect") -> np.ndarray:
    """The linear incoherent image :math:`I = |P|^2 \\circledast O`, by FFT.

    Parameters
    ----------
    obj : (ny, nx) ndarray
        Object function (dimensionless per pixel).
    psf : (py, px) ndarray
        Probe intensity on the same pixel size, centred on pixel ``(py//2, px//2)``
        (as :meth:`Probe.intensity` returns it). It may be smaller or larger than ``obj``.
    boundary : {"reflect", "constant", "periodic"}
        What the object is taken to be outside the field of view. ``"reflect"``
        (default) mirrors it, so edges carry no wrap-around and no dark rim;
        ``"constant"`` takes it as zero (the exact linear convolution of a
        finite object); ``"periodic"`` wraps (for periodic crystals).

    Returns
    -------
    (ny, nx) ndarray
        The image, same shape as ``obj``. Pixel ``(i, j)`` is the probe centred on
        object pixel ``(i, j)``: a delta object at ``(i0, j0)`` gives the PSF
        centred at ``(i0, j0)``.

    Examples
    --------
    >>> obj = np.zeros((32, 32)); obj[10, 20] = 1.0
    >>> psf = np.zeros((9, 9)); psf[4, 4] = 0.5; psf[4, 5] = 0.5
    >>> image = linear_image(obj, psf, boundary="constant")
    >>> [round(float(v), 12) for v in image[10, 19:22]]
    [0.0, 0.5, 0.5]
    """
    obj = real_array(obj, "object")
    psf = real_array(psf, "psf")
    if boundary not in ("reflect", "constant", "periodic"):
        raise ValueError(f"boundary must be 'reflect', 'constant' or 'periodic', got {boundary!r}")
    ny, nx = obj.shape
    py, px = psf.shape
    if boundary == "periodic":
        # fold the PSF onto the object's grid, origin at pixel (0, 0)
        kernel = np.zeros((ny, nx))
        rows = (np.arange(py) - py // 2) % ny
        cols = (np.arange(px) - px // 2) % nx
        np.add.at(kernel, (rows[:, None], cols[None, :]), psf)
        return np.fft.irfft2(np.fft.rfft2(obj) * np.fft.rfft2(kernel), s=(ny, nx))
    (top, bottom), (left, right) = _pad_widths((py, px))
    mode = "symmetric" if boundary == "reflect" else "constant"
    padded = _pad(obj, ((top, bottom), (left, right)), mode)
    # full linear convolution on a grid large enough that nothing wraps
    fy, fx = padded.shape[0] + py - 1, padded.shape[1] + px - 1
    fy, fx = next_fast_len(fy, real=True), next_fast_len(fx, real=True)
    full = np.fft.irfft2(np.fft.rfft2(padded, s=(fy, fx)) * np.fft.rfft2(psf, s=(fy, fx)), s=(fy, fx))
    # 'valid' part: output pixel (i, j) sums padded[i + top - u + py//2 ...]; crop accordingly
    return full[py - 1 : py - 1 + ny, px - 1 : px - 1 + nx].copy()


def _pad(array: np.ndarray, widths, mode: str) -> np.ndarray:
    """np.pad that also works when the pad is wider than the array (repeats the mirror)."""
    if mode == "constant":
        return np.pad(array, widths, mode="constant")
    out = array
    (t, b), (l, r) = widths
    while t > 0 or b > 0 or l > 0 or r > 0:
        ny, nx = out.shape
        step = ((min(t, ny), min(b, ny)), (min(l, nx), min(r, nx)))
        out = np.pad(out, step, mode="symmetric")
        t, b, l, r = t - step[0][0], b - step[0][1], l - step[1][0], r - step[1][1]
    return out


def electrons_per_pixel(dose: float, sampling: float) -> float:
    """Electrons that hit one scan pixel: dose [e⁻/Å²] × pixel area [Å²]."""
    if not np.isfinite(dose) or dose <= 0:
        raise ValueError(f"dose must be a positive number of electrons per Å², got {dose!r}")
    if not np.isfinite(sampling) or sampling <= 0:
        raise ValueError(f"sampling must be a positive pixel size [Å], got {sampling!r}")
    return float(dose) * float(sampling) ** 2


def dose_from_current(current: float, dwell_time: float, sampling: float) -> float:
    """Dose per area [e⁻/Å²] from probe current [pA], dwell time per pixel [µs] and pixel size [Å]."""
    electrons = current * 1e-12 * dwell_time * 1e-6 / E_CHARGE
    return electrons / sampling**2


def dwell_time_per_area(dwell_time: float, sampling: float) -> float:
    """Dwell time per area [µs/Å²] from the dwell time per pixel [µs] and pixel size [Å]."""
    return dwell_time / sampling**2


@dataclass
class Acquisition:
    """Settings of one HAADF frame acquisition.

    Parameters
    ----------
    dose : float
        Electron dose per area [e⁻/Å²].
    sampling : float
        Pixel size [Å].
    dwell_time : float
        Dwell time per pixel [µs]; sets the time axis of drift.
    gain : float
        Detector output per detected electron [counts/e⁻]. 1 means counting.
    offset : float
        Detector dark level [counts].
    read_noise : float
        Gaussian read-out noise, standard deviation [counts].
    jitter : float
        Scan-line jitter, standard deviation of each line's shift along the
        fast scan direction (x) [Å].
    drift : (float, float)
        Specimen drift velocity ``(vx, vy)`` [Å/s].
    flyback : float
        Line fly-back time [µs] (drift keeps going while the beam returns).
    """

    dose: float = 1e4
    sampling: float = 0.16
    dwell_time: float = 2.0
    gain: float = 1.0
    offset: float = 0.0
    read_noise: float = 0.0
    jitter: float = 0.0
    drift: tuple[float, float] = (0.0, 0.0)
    flyback: float = 0.0

    @property
    def electrons_per_pixel(self) -> float:
        """Incident electrons per scan pixel."""
        return electrons_per_pixel(self.dose, self.sampling)

    @property
    def dwell_time_per_area(self) -> float:
        """Dwell time per area [µs/Å²]."""
        return dwell_time_per_area(self.dwell_time, self.sampling)

    @property
    def probe_current(self) -> float:
        """Probe current implied by dose, dwell and pixel size [pA]."""
        return self.electrons_per_pixel * E_CHARGE / (self.dwell_time * 1e-6) * 1e12


def scan_positions(shape: tuple[int, int], acquisition: Acquisition, rng: np.random.Generator):
    """Where the probe really was for each pixel, in pixels of the ideal grid.

    Returns
    -------
    rows, cols : (ny, nx) ndarray
        Fractional pixel coordinates of the true probe position for every
        recorded pixel (raster scan, x fast), with line jitter and linear drift.
    """
    ny, nx = shape
    s = acquisition.sampling
    rows, cols = np.mgrid[0:ny, 0:nx].astype(float)
    if acquisition.jitter > 0:
        cols = cols + rng.normal(0.0, acquisition.jitter / s, size=(ny, 1))
    vx, vy = acquisition.drift
    if vx or vy:
        t = (rows * (nx * acquisition.dwell_time + acquisition.flyback) + cols * acquisition.dwell_time) * 1e-6
        # the specimen moves by v t, so the probe samples it at x - v t
        cols = cols - vx * t / s
        rows = rows - vy * t / s
    return rows, cols


def acquire(
    image: np.ndarray,
    acquisition: Acquisition,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Record a noisy HAADF frame from the noiseless linear image.

    Parameters
    ----------
    image : (ny, nx) ndarray
        Expected detected fraction per scan position (:func:`linear_image`), values in [0, 1].
    acquisition : Acquisition
        Dose [e⁻/Å²], pixel size [Å], detector and scan settings.
    rng : Generator or int, optional
        Random generator or seed.

    Returns
    -------
    (ny, nx) float64 ndarray
        Detector output [counts]: ``gain * Poisson(N_e * I(r')) + offset + read noise``,
        where ``N_e`` is :func:`electrons_per_pixel` and ``r'`` the distorted scan position.

    Examples
    --------
    >>> frame = acquire(np.full((64, 64), 0.05), Acquisition(dose=1e4, sampling=0.2), rng=0)
    >>> bool(abs(frame.mean() - 0.05 * 1e4 * 0.2**2) < 0.2)
    True
    """
    image = real_array(image, "image")
    if image.min() < -1e-9 * max(1.0, float(np.abs(image).max())):  # FFT round-off is tolerated
        raise ValueError("the noiseless image must be non-negative (a detected fraction)")
    image = np.clip(image, 0.0, None)
    rng = np.random.default_rng(rng)
    a = acquisition
    if a.jitter > 0 or any(a.drift):
        rows, cols = scan_positions(image.shape, a, rng)
        image = ndimage.map_coordinates(image, [rows, cols], order=3, mode="mirror")
        image = np.clip(image, 0.0, None)
    counts = rng.poisson(image * a.electrons_per_pixel).astype(np.float64)
    frame = a.gain * counts + a.offset
    if a.read_noise > 0:
        frame = frame + rng.normal(0.0, a.read_noise, size=frame.shape)
    return frame
