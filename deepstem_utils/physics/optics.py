"""Electron optics of the STEM probe: wavelength, the aberration phase, the aperture.

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

import math
from typing import Mapping

import numpy as np
from scipy import constants

__all__ = [
    "POLAR_SYMBOLS",
    "ABERRATION_ORDERS",
    "wavelength",
    "interaction_parameter",
    "check_grid",
    "spatial_frequencies",
    "validate_aberrations",
    "aberration_phase",
    "aperture",
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
ABERRATION_ORDERS: dict[str, tuple[int, int]] = {
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


def check_grid(shape, sampling) -> tuple[tuple[int, int], tuple[float, float]]:
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
    (ny, nx), (sy, sx) = check_grid(shape, sampling)
    ky = np.fft.fftfreq(ny, sy)
    kx = np.fft.fftfreq(nx, sx)
    return np.meshgrid(ky, kx, indexing="ij")


def validate_aberrations(aberrations: Mapping[str, float] | None) -> dict[str, float]:
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
    p = validate_aberrations(aberrations)
    alpha = np.asarray(alpha, dtype=float)
    phi = np.asarray(phi, dtype=float)
    chi = np.zeros(np.broadcast_shapes(alpha.shape, phi.shape))
    for symbol, (n, m) in ABERRATION_ORDERS.items():
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
