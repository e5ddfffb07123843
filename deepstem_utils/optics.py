"""Electron optics of the STEM probe: wavelength, aberrations, aperture, `Probe`.

Conventions (shared/CONTRACT.md): lengths in Å, angles of aberrations in
radians, semiangles in mrad, energy in eV. Aberrations use abTEM's polar names
(``C10`` = -defocus, ``C12``/``phi12`` two-fold astigmatism, ``C21``/``phi21``
axial coma, ``C23``/``phi23`` three-fold astigmatism, ``C30`` spherical
aberration, ... up to fifth order). The aberration phase is

.. math::

    \\chi(\\alpha, \\phi) = \\frac{2\\pi}{\\lambda} \\sum_{n,m}
        \\frac{\\alpha^{n+1}}{n+1} C_{nm} \\cos[m(\\phi - \\phi_{nm})]

and the probe in reciprocal space is :math:`A(k)\\,e^{-i\\chi(k)}` (abTEM's sign).
Arrays are ``(ny, nx)``; the azimuth is ``phi = arctan2(ky, kx)`` with ``kx``
along columns.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
from scipy import constants

__all__ = [
    "POLAR_SYMBOLS",
    "wavelength",
    "interaction_parameter",
    "spatial_frequencies",
    "aberration_phase",
    "aperture",
    "Probe",
    "probe_fwhm",
    "probe_d50",
    "scherzer_defocus",
]

#: Polar aberration names, in abTEM's order, up to fifth order.
POLAR_SYMBOLS: tuple[str, ...] = (
    "C10", "C12", "phi12",
    "C21", "phi21", "C23", "phi23",
    "C30", "C32", "phi32", "C34", "phi34",
    "C41", "phi41", "C43", "phi43", "C45", "phi45",
    "C50", "C52", "phi52", "C54", "phi54", "C56", "phi56",
)  # fmt: skip

#: (n, m) of every magnitude symbol: chi term alpha^(n+1)/(n+1) cos(m(phi - phi_nm)).
_ORDERS: dict[str, tuple[int, int]] = {
    s: (int(s[1]), int(s[2])) for s in POLAR_SYMBOLS if s.startswith("C")
}


def wavelength(energy: float) -> float:
    """Relativistic electron wavelength.

    Parameters
    ----------
    energy : float
        Beam energy [eV].

    Returns
    -------
    float
        Wavelength [Å].

    Notes
    -----
    :math:`\\lambda = h / \\sqrt{2 m_0 e E (1 + e E / 2 m_0 c^2)}`.

    Examples
    --------
    >>> round(wavelength(80e3), 5)
    0.04176
    >>> round(wavelength(300e3), 5)
    0.01969
    """
    energy = float(energy)
    if not np.isfinite(energy) or energy <= 0:
        raise ValueError(f"energy must be a positive number of eV, got {energy!r}")
    m0, e, c, h = constants.m_e, constants.e, constants.c, constants.h
    return h / math.sqrt(2 * m0 * e * energy * (1 + e * energy / (2 * m0 * c**2))) * 1e10


def interaction_parameter(energy: float) -> float:
    """Relativistic interaction parameter sigma [rad / (V Å)] (Kirkland eq. 5.6)."""
    m0, e, c, h = constants.m_e, constants.e, constants.c, constants.h
    lam = wavelength(energy) * 1e-10
    m = m0 + e * energy / c**2
    return 2 * math.pi * m * e * lam / h**2 * 1e-10


def _check_grid(shape, sampling) -> tuple[tuple[int, int], tuple[float, float]]:
    try:
        shape = tuple(int(n) for n in shape)
    except TypeError:
        raise TypeError(f"shape must be a pair (ny, nx) of integers, got {shape!r}") from None
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape must be a pair (ny, nx) of positive integers, got {shape!r}")
    if np.ndim(sampling) == 0:
        sampling = (float(sampling), float(sampling))
    sampling = tuple(float(s) for s in sampling)
    if len(sampling) != 2 or not all(np.isfinite(s) and s > 0 for s in sampling):
        raise ValueError(f"sampling must be a positive pixel size [Å] (or a (sy, sx) pair), got {sampling!r}")
    return shape, sampling


def spatial_frequencies(shape: tuple[int, int], sampling: float | tuple[float, float]):
    """Spatial frequencies of an ``(ny, nx)`` grid in FFT order.

    Parameters
    ----------
    shape : (int, int)
        Grid shape ``(ny, nx)``.
    sampling : float or (float, float)
        Pixel size [Å], one value or ``(sy, sx)``.

    Returns
    -------
    ky, kx : (ny, nx) ndarray
        Spatial frequencies [1/Å], ``kx`` varying along columns.
    """
    (ny, nx), (sy, sx) = _check_grid(shape, sampling)
    ky = np.fft.fftfreq(ny, sy)
    kx = np.fft.fftfreq(nx, sx)
    return np.meshgrid(ky, kx, indexing="ij")


def _validate_aberrations(aberrations: Mapping[str, float] | None) -> dict[str, float]:
    aberrations = dict(aberrations or {})
    unknown = sorted(set(aberrations) - set(POLAR_SYMBOLS))
    if unknown:
        raise ValueError(
            f"unknown aberration name(s) {unknown}; use abTEM's polar names "
            f"({', '.join(POLAR_SYMBOLS[:8])}, ...) with C10 = -defocus [Å] and angles phiNM [rad]"
        )
    out = {}
    for key, value in aberrations.items():
        value = float(value)
        if not np.isfinite(value):
            raise ValueError(f"aberration {key} must be finite, got {value!r}")
        out[key] = value
    return out


def aberration_phase(
    alpha: np.ndarray, phi: np.ndarray, wavelength: float, aberrations: Mapping[str, float]
) -> np.ndarray:
    """Aberration phase :math:`\\chi(\\alpha, \\phi)` [rad].

    Parameters
    ----------
    alpha : ndarray
        Scattering angle [rad].
    phi : ndarray
        Azimuth [rad], ``arctan2(ky, kx)``.
    wavelength : float
        Electron wavelength [Å].
    aberrations : dict
        Polar coefficients: magnitudes ``CNM`` [Å], angles ``phiNM`` [rad]. Missing names are zero.

    Returns
    -------
    ndarray
        chi [rad], same shape as the broadcast of ``alpha`` and ``phi``.

    Examples
    --------
    Pure defocus gives the textbook phase :math:`\\pi \\lambda C_{10} k^2`:

    >>> lam = wavelength(80e3); k = 0.5  # 1/Å
    >>> chi = aberration_phase(np.array(k * lam), np.array(0.0), lam, {"C10": 100.0})
    >>> bool(np.isclose(chi, np.pi * lam * 100.0 * k**2))
    True
    """
    p = _validate_aberrations(aberrations)
    alpha = np.asarray(alpha, dtype=float)
    phi = np.asarray(phi, dtype=float)
    chi = np.zeros(np.broadcast_shapes(alpha.shape, phi.shape))
    for symbol, (n, m) in _ORDERS.items():
        magnitude = p.get(symbol, 0.0)
        if magnitude == 0.0:
            continue
        angle = p.get(f"phi{n}{m}", 0.0) if m > 0 else 0.0
        chi = chi + magnitude * alpha ** (n + 1) / (n + 1) * np.cos(m * (phi - angle))
    return 2 * np.pi / wavelength * chi


def aperture(
    alpha: np.ndarray, phi: np.ndarray, semiangle: float, angular_sampling: tuple[float, float] | None = None
) -> np.ndarray:
    """Objective (probe-forming) aperture with an anti-aliased edge.

    Parameters
    ----------
    alpha, phi : ndarray
        Scattering angle [rad] and azimuth [rad].
    semiangle : float
        Convergence semiangle [mrad].
    angular_sampling : (float, float), optional
        Angular pixel size ``(d_alpha_y, d_alpha_x)`` [mrad]. When given, the edge
        falls linearly from 1 to 0 over one angular pixel (as abTEM's soft
        aperture), so a small change of semiangle changes the probe smoothly.

    Returns
    -------
    ndarray
        Transmission in [0, 1].
    """
    cutoff = float(semiangle) * 1e-3
    alpha = np.asarray(alpha, dtype=float)
    if angular_sampling is None:
        return (alpha <= cutoff).astype(float)
    day, dax = (float(a) * 1e-3 for a in angular_sampling)
    width = np.sqrt((np.cos(phi) * dax) ** 2 + (np.sin(phi) * day) ** 2)
    out = np.clip((cutoff - alpha) / np.where(width > 0, width, 1.0) + 0.5, 0.0, 1.0)
    out[alpha == 0] = 1.0
    return out


def _gaussian_blur_fourier(shape, sampling, fwhm: float) -> np.ndarray:
    """Fourier transform of a normalised Gaussian of the given FWHM [Å]."""
    ky, kx = spatial_frequencies(shape, sampling)
    sigma = fwhm / (2 * math.sqrt(2 * math.log(2)))
    return np.exp(-2 * np.pi**2 * sigma**2 * (kx**2 + ky**2))


@dataclass
class Probe:
    """A STEM probe defined by the measured state of the microscope.

    Parameters
    ----------
    energy : float
        Beam energy [eV].
    semiangle : float
        Convergence semiangle [mrad].
    aberrations : dict, optional
        Polar aberration coefficients (abTEM names): magnitudes [Å], angles [rad].
        ``C10`` is minus the defocus. Missing names are zero.
    source_size : float, optional
        Full width at half maximum of the Gaussian effective source, projected
        onto the specimen [Å]. It models partial spatial coherence: the
        probe intensity is convolved with this Gaussian. Default 0 (coherent).

    Examples
    --------
    >>> probe = Probe(energy=80e3, semiangle=30.0, aberrations={"C30": -1e4})
    >>> psf = probe.intensity(shape=(128, 128), sampling=0.16)
    >>> psf.shape, round(float(psf.sum()), 6)
    ((128, 128), 1.0)
    >>> int(np.argmax(psf)) == 64 * 128 + 64
    True
    """

    energy: float
    semiangle: float
    aberrations: dict = field(default_factory=dict)
    source_size: float = 0.0

    def __post_init__(self):
        self.energy = float(self.energy)
        wavelength(self.energy)  # validates
        self.semiangle = float(self.semiangle)
        if not np.isfinite(self.semiangle) or self.semiangle <= 0:
            raise ValueError(f"semiangle must be a positive convergence semiangle [mrad], got {self.semiangle!r}")
        self.aberrations = _validate_aberrations(self.aberrations)
        self.source_size = float(self.source_size)
        if not np.isfinite(self.source_size) or self.source_size < 0:
            raise ValueError(f"source_size must be a FWHM >= 0 [Å], got {self.source_size!r}")

    # ------------------------------------------------------------------ optics
    @property
    def wavelength(self) -> float:
        """Electron wavelength [Å]."""
        return wavelength(self.energy)

    @property
    def defocus(self) -> float:
        """Defocus [Å] (= -C10; positive is underfocus in abTEM's convention)."""
        return -self.aberrations.get("C10", 0.0)

    @property
    def cutoff_frequency(self) -> float:
        """Largest spatial frequency in the probe, semiangle / wavelength [1/Å]."""
        return self.semiangle * 1e-3 / self.wavelength

    def phase(self, shape: tuple[int, int], sampling) -> np.ndarray:
        """Aberration phase chi on the reciprocal grid of ``(shape, sampling)``, FFT order [rad]."""
        ky, kx = spatial_frequencies(shape, sampling)
        lam = self.wavelength
        alpha = np.hypot(kx, ky) * lam
        return aberration_phase(alpha, np.arctan2(ky, kx), lam, self.aberrations)

    def transfer(self, shape: tuple[int, int], sampling) -> np.ndarray:
        """Aperture times exp(-i chi) on the reciprocal grid, FFT order (complex)."""
        (ny, nx), (sy, sx) = _check_grid(shape, sampling)
        ky, kx = spatial_frequencies((ny, nx), (sy, sx))
        lam = self.wavelength
        alpha = np.hypot(kx, ky) * lam
        phi = np.arctan2(ky, kx)
        angular_sampling = (lam / (ny * sy) * 1e3, lam / (nx * sx) * 1e3)
        nyquist = min(1 / (2 * sy), 1 / (2 * sx))
        if self.cutoff_frequency > nyquist:
            raise ValueError(
                f"the aperture ({self.semiangle} mrad = {self.cutoff_frequency:.3f} 1/Å) reaches beyond the "
                f"Nyquist frequency of sampling {max(sy, sx)} Å ({nyquist:.3f} 1/Å): use a finer sampling"
            )
        a = aperture(alpha, phi, self.semiangle, angular_sampling)
        chi = aberration_phase(alpha, phi, lam, self.aberrations)
        return a * np.exp(-1j * chi)

    def wave(self, shape: tuple[int, int], sampling) -> np.ndarray:
        """Coherent probe wave function in real space.

        Parameters
        ----------
        shape : (int, int)
            ``(ny, nx)``.
        sampling : float or (float, float)
            Pixel size [Å].

        Returns
        -------
        (ny, nx) complex ndarray
            Centred on pixel ``(ny // 2, nx // 2)``, normalised so that ``sum |psi|^2 = 1``.
        """
        psi = np.fft.fftshift(np.fft.ifft2(self.transfer(shape, sampling)))
        return psi / math.sqrt(float(np.sum(np.abs(psi) ** 2)))

    def intensity(self, shape: tuple[int, int], sampling) -> np.ndarray:
        """Probe intensity |P|^2 with partial spatial coherence: the point-spread function.

        Parameters
        ----------
        shape : (int, int)
            ``(ny, nx)``.
        sampling : float or (float, float)
            Pixel size [Å].

        Returns
        -------
        (ny, nx) float64 ndarray
            Non-negative, sums to 1, centred on pixel ``(ny // 2, nx // 2)``.

        Notes
        -----
        The grid is periodic: choose an extent larger than the probe's tails
        (a few nm for a corrected probe, more for a strongly aberrated one).
        """
        shape, sampling = _check_grid(shape, sampling)
        psf = np.abs(self.wave(shape, sampling)) ** 2
        if self.source_size > 0:
            blur = _gaussian_blur_fourier(shape, sampling, self.source_size)
            psf = np.fft.ifft2(np.fft.fft2(psf) * blur).real
            psf = np.clip(psf, 0.0, None)
        return (psf / psf.sum()).astype(np.float64)

    # ------------------------------------------------------------ measures
    def fwhm(self) -> float:
        """Full width at half maximum of the probe intensity [Å] (equal-area circle)."""
        return probe_fwhm(self)

    def d50(self) -> float:
        """Diameter containing 50 % of the probe intensity [Å]."""
        return probe_d50(self)

    def with_aberrations(self, **changes: float) -> "Probe":
        """A copy with some aberration coefficients replaced."""
        ab = dict(self.aberrations)
        ab.update(changes)
        return Probe(self.energy, self.semiangle, ab, self.source_size)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        """The probe as the contract's JSON object."""
        return {
            "energy": self.energy,
            "semiangle": self.semiangle,
            "aberrations": dict(self.aberrations),
            "source_size": self.source_size,
        }

    @classmethod
    def from_dict(cls, data: Mapping, *, origin: str = "probe") -> "Probe":
        """Build a probe from the contract's JSON object, with clear errors on bad keys."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{origin}: expected a JSON object with keys energy, semiangle, aberrations, source_size")
        required = {"energy", "semiangle", "aberrations", "source_size"}
        missing = sorted(required - set(data))
        unknown = sorted(set(data) - required)
        if missing:
            raise ValueError(f"{origin}: missing key(s) {missing}; a probe needs {sorted(required)}")
        if unknown:
            raise ValueError(f"{origin}: unknown key(s) {unknown}; a probe has exactly {sorted(required)}")
        if not isinstance(data["aberrations"], Mapping):
            raise ValueError(f"{origin}: 'aberrations' must be an object of polar names, e.g. {{\"C10\": -50.0}}")
        try:
            return cls(data["energy"], data["semiangle"], dict(data["aberrations"]), data["source_size"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"{origin}: {err}") from None

    def to_json(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the probe as JSON (keys ``energy, semiangle, aberrations, source_size``).

        An existing non-empty file is kept unless ``overwrite=True``.
        """
        path = Path(path)
        if path.exists() and path.is_file() and path.stat().st_size > 0 and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a directory; give a file name such as {path / 'probe.json'}")
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "Probe":
        """Read a probe written by :meth:`to_json` (or by hand, same keys)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"probe file {path} not found")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is not valid JSON ({err}); write it with Probe.to_json") from None
        return cls.from_dict(data, origin=str(path))


def _fine_grid(probe: Probe, points_per_fwhm: float = 12.0):
    """A grid fine enough to measure the probe shape, with the aperture sampled
    finely in reciprocal space (extent >= 60 lambda/alpha) and wide enough for the tails."""
    lam = probe.wavelength
    a = probe.semiangle * 1e-3
    d_airy = 0.5145 * lam / a
    # an aberrated probe spreads roughly by the largest geometric ray deviation
    ray = sum(abs(probe.aberrations.get(s, 0.0)) * a**n for s, (n, _) in _ORDERS.items())
    extent = max(60 * lam / a, 6 * ray + 10 * d_airy, 6 * probe.source_size + 10 * d_airy)
    sampling = min(d_airy / points_per_fwhm, lam / (2.5 * a))
    n = 2 * math.ceil(extent / sampling / 2)
    if n > 2048:
        n, sampling = 2048, max(extent / 2048, sampling)
        sampling = min(sampling, lam / (2.2 * a))
    return (n, n), sampling


def probe_fwhm(probe: Probe) -> float:
    """FWHM of the probe intensity [Å]: the diameter of the circle with the same
    area as the half-maximum contour (found with sub-pixel marching squares).

    For an aberration-free, coherent probe this is the Airy value
    :math:`0.5145\\,\\lambda/\\alpha`.
    """
    from skimage import measure

    shape, sampling = _fine_grid(probe)
    psf = probe.intensity(shape, sampling)
    peak = np.unravel_index(np.argmax(psf), psf.shape)
    best = 0.0
    for contour in measure.find_contours(psf, 0.5 * psf.max()):
        y, x = contour[:, 0], contour[:, 1]
        closed = np.allclose(contour[0], contour[-1])
        area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
        inside = measure.points_in_poly([peak[::-1]], np.column_stack([x, y]))[0]
        if closed and inside:
            best = max(best, area)
    if best == 0.0:  # fall back to counting pixels
        best = float(np.count_nonzero(psf >= 0.5 * psf.max()))
    return 2 * math.sqrt(best / math.pi) * sampling


def probe_d50(probe: Probe) -> float:
    """Diameter of the circle, centred on the intensity centroid, that holds 50 % of the probe [Å]."""
    shape, sampling = _fine_grid(probe)
    psf = probe.intensity(shape, sampling)
    ny, nx = shape
    y, x = np.mgrid[0:ny, 0:nx] * sampling
    cy, cx = float((psf * y).sum()), float((psf * x).sum())
    r = np.hypot(y - cy, x - cx).ravel()
    order = np.argsort(r)
    cumulative = np.cumsum(psf.ravel()[order])
    return 2 * float(np.interp(0.5, cumulative, r[order]))


def scherzer_defocus(energy: float, C30: float) -> float:
    """Scherzer defocus :math:`\\sqrt{1.5\\,C_s\\,\\lambda}` [Å] for spherical aberration C30 [Å].

    Returned as a defocus (= -C10): positive for positive C30.
    """
    return math.copysign(math.sqrt(1.5 * abs(C30) * wavelength(energy)), C30)
