"""The STEM probe: :class:`Probe`, an immutable value built from the measured state of the microscope.

The probe wave is the inverse Fourier transform of the aperture times
:math:`e^{-i\\chi}` (:mod:`.optics`); its intensity, blurred by the effective
source (partial spatial coherence), is the point-spread function of the linear
image model. A ``Probe`` is frozen and hashable, so caches key on it directly
and it travels to worker processes as it is.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import numpy as np
from skimage import measure

from .optics import (
    ABERRATION_ORDERS,
    aberration_phase,
    aperture,
    check_grid,
    spatial_frequencies,
    validate_aberrations,
    wavelength,
)

__all__ = ["Probe", "psf_grid", "focal_nodes", "focal_nodes_for_phase", "focal_spread_from", "probe_fwhm", "probe_d50", "scherzer_defocus"]


def _gaussian_blur_fourier(shape, sampling, fwhm: float) -> np.ndarray:
    """Fourier transform of a normalised Gaussian of the given FWHM [Å]."""
    ky, kx = spatial_frequencies(shape, sampling)
    sigma = fwhm / (2 * math.sqrt(2 * math.log(2)))
    return np.exp(-2 * np.pi**2 * sigma**2 * (kx**2 + ky**2))


@dataclass(frozen=True)
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
    focal_spread : float, optional
        Standard deviation (1σ) of the defocus over the electrons of the beam [Å]:
        partial temporal coherence from the energy spread and the chromatic
        aberration, σ = Cc·ΔE/E (:func:`focal_spread_from`). The probe intensity is
        the incoherent average of the probe intensities over a Gaussian
        distribution of C10 offsets (Gauss–Hermite quadrature with enough nodes
        for the phase it spreads, :func:`focal_nodes`). Default 0 (monochromatic).
    source_size : float, optional
        Full width at half maximum of the Gaussian effective source, projected
        onto the specimen [Å]. It models partial spatial coherence: the
        probe intensity is convolved with this Gaussian. Default 0 (coherent).

    Notes
    -----
    A probe is an immutable value: change one with :meth:`with_aberrations` or
    :func:`dataclasses.replace`. Equal probes hash alike, so a probe can key a cache.

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
    aberrations: Mapping[str, float] = field(default_factory=dict)
    source_size: float = 0.0
    focal_spread: float = 0.0

    def __post_init__(self):
        energy, semiangle = float(self.energy), float(self.semiangle)
        source_size, focal_spread = float(self.source_size), float(self.focal_spread)
        wavelength(energy)  # validates
        if not np.isfinite(semiangle) or semiangle <= 0:
            raise ValueError(f"semiangle must be a positive convergence semiangle [mrad], got {semiangle!r}")
        if not np.isfinite(source_size) or source_size < 0:
            raise ValueError(f"source_size must be a FWHM >= 0 [Å], got {source_size!r}")
        if not np.isfinite(focal_spread) or focal_spread < 0:
            raise ValueError(f"focal_spread must be a standard deviation >= 0 [Å], got {focal_spread!r}")
        # frozen: the checked values are set once, here; the aberrations become a read-only mapping
        object.__setattr__(self, "energy", energy)
        object.__setattr__(self, "semiangle", semiangle)
        object.__setattr__(self, "aberrations", MappingProxyType(validate_aberrations(self.aberrations)))
        object.__setattr__(self, "source_size", source_size)
        object.__setattr__(self, "focal_spread", focal_spread)

    def _key(self) -> tuple:
        return (self.energy, self.semiangle, tuple(sorted(self.aberrations.items())), self.source_size,
                self.focal_spread)

    def __hash__(self) -> int:
        return hash(self._key())

    def __eq__(self, other) -> bool:
        return isinstance(other, Probe) and self._key() == other._key()

    def __reduce__(self):  # a read-only mapping does not pickle; the probe travels as its arguments
        return (type(self), (self.energy, self.semiangle, dict(self.aberrations), self.source_size,
                             self.focal_spread))

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
        (ny, nx), (sy, sx) = check_grid(shape, sampling)
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
        """Probe intensity |P|^2 with partial temporal and spatial coherence: the point-spread function.

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
        With a focal spread σ the intensity is :math:`\\int |P_{C_{10}+\\delta}|^2\\,
        N(\\delta; 0, \\sigma^2)\\,d\\delta`, by Gauss–Hermite quadrature (:func:`focal_nodes`);
        then the effective source blurs it (a convolution with a Gaussian of FWHM ``source_size``).
        The grid is periodic: choose an extent larger than the probe's tails
        (a few nm for a corrected probe, more for a strongly aberrated one).
        """
        shape, sampling = check_grid(shape, sampling)
        if self.focal_spread > 0:
            transfer = self.transfer(shape, sampling)
            ky, kx = spatial_frequencies(shape, sampling)
            dchi = np.pi * self.wavelength * (kx**2 + ky**2)  # d chi / d C10 [rad/Å]
            offsets, weights = focal_nodes(self.focal_spread, self.cutoff_frequency, self.wavelength)
            psf = np.zeros(shape)
            for delta, w in zip(offsets, weights):
                psf += w * np.abs(np.fft.ifft2(transfer * np.exp(-1j * delta * dchi))) ** 2
            psf = np.fft.fftshift(psf)
        else:
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
        return dataclasses.replace(self, aberrations={**self.aberrations, **changes})

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        """The probe as the contract's JSON object."""
        return {
            "energy": self.energy,
            "semiangle": self.semiangle,
            "aberrations": dict(self.aberrations),
            "source_size": self.source_size,
            "focal_spread": self.focal_spread,
        }

    @classmethod
    def from_dict(cls, data: Mapping, *, origin: str = "probe") -> "Probe":
        """Build a probe from the contract's JSON object, with clear errors on bad keys."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{origin}: expected a JSON object with keys energy, semiangle, aberrations, source_size"
                             " (and optionally focal_spread)")
        required = {"energy", "semiangle", "aberrations", "source_size"}
        missing = sorted(required - set(data))
        unknown = sorted(set(data) - required - {"focal_spread"})
        if missing:
            raise ValueError(f"{origin}: missing key(s) {missing}; a probe needs {sorted(required)}")
        if unknown:
            raise ValueError(f"{origin}: unknown key(s) {unknown}; a probe has {sorted(required)} and optionally "
                             "'focal_spread'")
        if not isinstance(data["aberrations"], Mapping):
            raise ValueError(f"{origin}: 'aberrations' must be an object of polar names, e.g. {{\"C10\": -50.0}}")
        try:
            return cls(data["energy"], data["semiangle"], dict(data["aberrations"]), data["source_size"],
                       data.get("focal_spread", 0.0))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{origin}: {err}") from None

    def to_json(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the probe as JSON (keys ``energy, semiangle, aberrations, source_size, focal_spread``).

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
    ray = sum(abs(probe.aberrations.get(s, 0.0)) * a**n for s, (n, _) in ABERRATION_ORDERS.items())
    ray += 3 * probe.focal_spread * a  # the defocus spread widens the rays by up to 3 sigma
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
    # the intensity enclosed within each radius, in rings 1/64 px wide (no sort of the whole grid: O(n))
    width = sampling / 64
    ring = np.bincount((r / width).astype(np.int64), weights=psf.ravel())
    enclosed = np.cumsum(ring)                   # within the outer edge of each ring
    return 2 * float(np.interp(0.5, enclosed, width * np.arange(1, len(enclosed) + 1)))


def scherzer_defocus(energy: float, C30: float) -> float:
    """Scherzer defocus :math:`\\sqrt{1.5\\,C_s\\,\\lambda}` [Å] for spherical aberration C30 [Å].

    Returned as a defocus (= -C10): positive for positive C30.
    """
    return math.copysign(math.sqrt(1.5 * abs(C30) * wavelength(energy)), C30)


def psf_grid(sampling: float, minimum: float = 7.5, size: int = 64) -> int:
    """Side [px] of a square grid for a probe intensity: at least ``minimum`` Å and ``size`` px (a power of two).

    Examples
    --------
    >>> psf_grid(0.16), psf_grid(0.05)
    (64, 256)
    """
    while size * sampling < minimum:
        size *= 2
    return size


def focal_spread_from(cc: float, energy_spread: float, energy: float) -> float:
    """Focal spread (1σ) [Å] from the chromatic aberration and the energy spread: σ = Cc·ΔE/E.

    Parameters
    ----------
    cc : float
        Chromatic aberration coefficient Cc [Å] (e.g. 1.4 mm = 1.4e7 Å).
    energy_spread : float
        Standard deviation of the beam's energy [eV] (a FWHM ΔE of a Gaussian spread is 2.355 σ).
    energy : float
        Beam energy [eV].

    Notes
    -----
    The first-order focal spread; the relativistic correction factor
    (1 + E/E₀)/(1 + E/2E₀) and the spread of the lens current are left out
    (add them to ``energy_spread`` if they matter).

    Examples
    --------
    >>> round(focal_spread_from(1.4e7, 0.3 / 2.355, 80e3), 1)   # Cc 1.4 mm, 0.3 eV FWHM at 80 kV
    22.3
    """
    values = {"cc": cc, "energy_spread": energy_spread, "energy": energy}
    for name, value in values.items():
        if not np.isfinite(value) or value < 0 or (name == "energy" and value == 0):
            raise ValueError(f"{name} must be a finite number >= 0 (energy > 0), got {value!r}")
    return float(cc) * float(energy_spread) / float(energy)


def focal_nodes(focal_spread: float, cutoff_frequency: float, wavelength: float) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Hermite nodes [Å] and weights (summing to 1) for averaging over a Gaussian focal spread.

    The number of nodes grows with the phase ω = π λ k² σ that one standard deviation of
    defocus adds at the aperture edge ``k = cutoff_frequency`` [1/Å]: ⌈2ω + ω²/4⌉ + 3, capped at 100.
    That converges the intensity to about 1e-5 (normalised L1) for ω up to 14 (σ = 200 Å at
    80 kV and 30 mrad), against 100 nodes; a test doubles the nodes to check.

    Parameters
    ----------
    focal_spread : float
        Standard deviation of the defocus [Å].
    cutoff_frequency : float
        Largest spatial frequency in the probe [1/Å].
    wavelength : float
        Electron wavelength [Å].
    """
    return focal_nodes_for_phase(focal_spread, math.pi * wavelength * cutoff_frequency**2 * focal_spread)


def focal_nodes_for_phase(focal_spread: float, omega: float, count: int | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Hermite nodes [Å] and weights (summing to 1) for a Gaussian focal spread whose one standard
    deviation adds at most the phase ``omega`` [rad] to any beam: ⌈2ω + ω²/4⌉ + 3 nodes, capped at 100 (the rule
    of :func:`focal_nodes`, which takes ω at the aperture edge; a tilted tableau beam adds its tilt's term), or
    ``count`` nodes when given (``omega`` is then not used)."""
    n = int(count) if count is not None else min(int(math.ceil(2 * omega + omega**2 / 4)) + 3, 100)
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return focal_spread * x, w / w.sum()
