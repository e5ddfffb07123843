"""Thon rings of one image: its diffractogram and the fit of its apparent defocus and astigmatism.

The diffractogram (power spectrum) of a bright-field image of a thin amorphous
film shows Thon rings set by the even part of the aberration phase around the
beam. For one image that is, to the order the solve needs,

.. math::

    \\Delta_e(\\mathbf{k}) \\approx \\pi\\lambda k^2\\left[C_1' + C_{12}'\\cos 2(\\phi - \\phi_{12}')\\right]
        + \\tfrac{\\pi}{2}\\lambda^3 C_{30} k^4 ,

and :func:`fit_diffractogram` finds the apparent defocus :math:`C_1'` and
two-fold astigmatism :math:`C_{12}'` of that image, with their covariance
(:mod:`.rings` does the work; :mod:`.solve` turns many images into the axial
aberrations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..physics.optics import wavelength
from .polar import polar_spectrum
from .rings import RingResult, fit_rings

__all__ = ["diffractogram", "DiffractogramFit", "fit_diffractogram", "ring_model", "MIN_SNR"]

#: Matched-filter signal-to-noise ratio below which an image counts as showing no Thon rings. The fit
#: maximises it over every ring pattern it tries, so noise alone scores too: on 20 shot-noise images the
#: largest score was 9.6 at 256² px and 6.4 at 512² (a film in focus: 5). Rings at 512² score 20-170.
MIN_SNR = 10.0


def diffractogram(image: np.ndarray, tile: int | None = None, sampling: float | None = None) -> np.ndarray:
    """Welch-averaged power spectrum of an image for display, zero frequency at ``(n//2, n//2)``.

    Parameters
    ----------
    image : (ny, nx) ndarray
    tile : int, optional
        Side of the square, Hann-windowed tiles (half-overlapping) that are
        averaged. By default the smallest power of two whose frequency step is
        at most 0.01 1/Å (needs ``sampling``), capped by the image size; without
        ``sampling``, half the image.
    sampling : float, optional
        Pixel size [Å].

    Returns
    -------
    (tile, tile) ndarray
    """
    image = np.asarray(image, float)
    if image.ndim != 2:
        raise ValueError(f"a tableau image must be 2-D, got shape {image.shape}")
    if not np.all(np.isfinite(image)):
        raise ValueError("the tableau image contains NaN or inf")
    n = min(image.shape)
    if tile is None and sampling is not None:
        tile = 2 ** int(math.ceil(math.log2(1.0 / (0.01 * sampling))))
    if tile is None:
        tile = 2 ** int(math.floor(math.log2(max(n // 2, 32))))
    tile = min(tile, n)
    window = np.outer(np.hanning(tile), np.hanning(tile))
    step = tile // 2
    acc = np.zeros((tile, tile))
    count = 0
    for r in range(0, image.shape[0] - tile + 1, step):
        for c in range(0, image.shape[1] - tile + 1, step):
            patch = image[r : r + tile, c : c + tile]
            patch = (patch - patch.mean()) * window
            acc += np.abs(np.fft.fft2(patch)) ** 2
            count += 1
    return np.fft.fftshift(acc / count)


@dataclass
class DiffractogramFit:
    """Apparent defocus and two-fold astigmatism of one image's Thon rings.

    Attributes
    ----------
    C1 : float
        Apparent C10 [Å] (signed; the global sign of χ is not seen by one image, see
        :func:`fit_diffractogram`).
    a, b : float
        Cartesian two-fold astigmatism ``C12 cos 2φ12``, ``C12 sin 2φ12`` [Å].
    psi : float
        Amplitude-contrast phase of the ring model [rad].
    quality : float
        Correlation of the data with the fitted ring model, in [-1, 1].
    k_range : (float, float)
        Spatial frequencies that carried the fitted rings [1/Å].
    C30 : float
        Coefficient of the k⁴ ring term [Å] (the axial C30), fitted or given.
    covariance : (3, 3) ndarray
        Covariance of (C1, a, b) [Å²] from the fit's Jacobian and residual.
    snr : float
        Matched-filter signal-to-noise ratio of the fitted rings (about 0 for an image without rings;
        below :data:`MIN_SNR` the image counts as showing none).
    used : bool
        Whether :func:`measure_aberrations` used the image in its final solve.
    """

    C1: float
    a: float
    b: float
    psi: float
    quality: float
    k_range: tuple[float, float]
    C30: float = 0.0
    covariance: np.ndarray = field(repr=False, default_factory=lambda: np.full((3, 3), np.inf))
    snr: float = 0.0
    used: bool = True

    @property
    def C12(self) -> float:
        return math.hypot(self.a, self.b)

    @property
    def phi12(self) -> float:
        return 0.5 * math.atan2(self.b, self.a)

    @property
    def detected(self) -> bool:
        """Whether the image shows Thon rings (``snr`` >= :data:`MIN_SNR`)."""
        return bool(self.snr >= MIN_SNR)

    def flipped(self) -> "DiffractogramFit":
        """The same rings with the opposite sign of χ."""
        return DiffractogramFit(-self.C1, -self.a, -self.b, -self.psi, self.quality, self.k_range, -self.C30,
                                self.covariance, self.snr, self.used)

    @classmethod
    def from_rings(cls, result: RingResult, k_min: float) -> "DiffractogramFit":
        """The record of a :class:`.rings.RingResult` (``k_min``: the lowest frequency fitted [1/Å])."""
        c1, a, b, c30 = (float(v) for v in result.theta)
        cov = np.array(result.covariance[:3, :3], float)
        return cls(c1, a, b, float(result.psi), float(result.correlation), (float(k_min), math.sqrt(result.u_max)),
                   c30, cov, float(result.snr))


def ring_model(u, phi, lam, C1, a, b, psi, C30):
    """Thon-ring modulation -cos 2(Δ - ψ) at ``u = k²`` [1/Å²] and azimuth ``phi`` [rad] (for display)."""
    cos2, sin2 = np.cos(2 * phi), np.sin(2 * phi)
    delta = np.pi * lam * u * (C1 + a * cos2 + b * sin2) + 0.5 * np.pi * lam**3 * C30 * u**2
    # a weak object with absorption w = tan(psi): |sin(chi) - w cos(chi)|^2 ~ sin^2(chi - psi),
    # whose ring modulation is -cos(2 (chi - psi))
    return -np.cos(2 * (delta - psi))


def fit_diffractogram(
    image: np.ndarray,
    energy: float,
    sampling: float,
    C30: float | None = None,
    defocus_range: tuple[float, float] = (100.0, 3000.0),
    initial: tuple[float, float, float] | None = None,
    amplitude_contrast: float | None = 0.07,
    fit_c30: bool = True,
    tile: int | None = None,
    n_sectors: int = 72,
) -> DiffractogramFit:
    """Fit the Thon rings of one image: apparent defocus and two-fold astigmatism, with their covariance.

    Parameters
    ----------
    image : (ny, nx) ndarray
        A bright-field image of a thin amorphous film.
    energy : float
        Beam energy [eV].
    sampling : float
        Pixel size [Å].
    C30 : float, optional
        Spherical aberration for the k⁴ term of the ring model [Å] (the start value when it is fitted).
    defocus_range : (float, float)
        Range of |apparent defocus| searched [Å].
    initial : (float, float, float), optional
        Start (C1, a, b) [Å] instead of the search (e.g. from the tableau's consensus); its sign is kept.
    amplitude_contrast : float or None
        Ratio w of absorption to phase of the film; the rings are sin²(χ - ψ) with ψ = atan(w). Fixed at
        0.07 by default (an assumption for amorphous carbon); None fits ψ.
    fit_c30 : bool
        Fit the k⁴ term of this image (with a Gaussian prior of 10 µm around ``C30``) rather than fix it.
    tile : int, optional
        Average the periodograms of half-overlapping tiles of this side [px] instead of using the whole
        image (a coarser spectrum).
    n_sectors : int
        Azimuthal sectors of the polar spectrum.

    Returns
    -------
    DiffractogramFit
        Without ``initial`` the sign is that of underfocus (C1 < 0): one diffractogram cannot tell the
        global sign of χ, which :func:`measure_aberrations` resolves over the tableau.

    Notes
    -----
    One windowed periodogram, binned in 72 sectors x half-pixel radial bins; the background is removed in
    the log of the power; a matched filter and a Hough transform over the sectors find start values; a
    Levenberg-Marquardt fit widens the frequency range while the rings carry signal, leaving out every
    bin whose rings are finer than 2.5 spectrum pixels (see :mod:`.rings`).
    """
    lam = wavelength(energy)
    spec = polar_spectrum(image, sampling, n_sectors=n_sectors, tile=tile)
    c30 = 0.0 if C30 is None else float(C30)
    free_c30 = fit_c30 or C30 is None
    result = fit_rings(spec, lam, c30=c30, fit_c30=free_c30, c30_prior=(c30, 1e5) if free_c30 else None,
                       psi=math.atan(amplitude_contrast or 0.0), fit_psi=amplitude_contrast is None,
                       defocus_range=defocus_range, start=initial)
    return DiffractogramFit.from_rings(result, float(spec.k_edges[0]))
