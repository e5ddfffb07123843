r"""The power spectrum of one image in polar coordinates, and its Thon-ring background and contrast.

One windowed periodogram (one FFT; every pixel kept, so dense rings stay resolved) is binned into
azimuthal sectors x radial bins of half a spectrum pixel (:func:`polar_spectrum`). Around a smooth
background B and with a smooth ring contrast m, the expected power is

.. math::

    P = B\,[1 - m\cos\Phi], \qquad \log P = \log B + \log(1 - m\cos\Phi),

so in the log the background's decay (film spectrum, coherence envelopes) is an additive, smooth term that
does not modulate the rings. :func:`normalised` removes it with boxes one local ring period wide (which null
a ring) and :func:`contrast` estimates m from the local ring power. The log of a bin's mean of n
exponentially distributed periodogram pixels has a known bias and variance (digamma, trigamma), used as
the fit's weights (:func:`log_power`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft
from scipy import special

__all__ = ["PolarSpectrum", "polar_spectrum", "log_power", "normalised", "contrast", "MAX_BOX"]

#: Widest box [1/Å²] used for the background (a ring period longer than this is only partly removed).
MAX_BOX = 0.2


@dataclass
class PolarSpectrum:
    """Periodogram of one image binned in (sector, k).

    Attributes
    ----------
    power : (n_sectors, n_k) ndarray
        Mean periodogram value of the pixels in each bin (0 where empty).
    count : (n_sectors, n_k) ndarray
        Pixels per bin.
    u, phi : (n_sectors, n_k) ndarray
        Centroid of each bin: ``u = k²`` [1/Å²] and azimuth [rad] in [0, π).
    k_edges : (n_k + 1,) ndarray
        Radial bin edges [1/Å].
    k_step : float
        Spectrum pixel [1/Å] (the coarser of the two axes).
    looks : int
        Independent periodograms averaged into each pixel (tiles).
    """

    power: np.ndarray
    count: np.ndarray
    u: np.ndarray
    phi: np.ndarray
    k_edges: np.ndarray
    k_step: float
    log_power: np.ndarray | None = None
    log_weight: np.ndarray | None = None
    cos2: np.ndarray | None = None
    sin2: np.ndarray | None = None
    looks: int = 1

    def __post_init__(self):
        if self.cos2 is None:
            self.cos2, self.sin2 = np.cos(2 * self.phi), np.sin(2 * self.phi)

    @property
    def sector_phi(self) -> np.ndarray:
        n = self.power.shape[0]
        return (np.arange(n) + 0.5) * np.pi / n

    def head(self, u_top: float) -> "PolarSpectrum":
        """The bins up to ``u_top`` [1/Å²] (views, no copy)."""
        j = int(np.searchsorted(self.k_edges, math.sqrt(max(u_top, 0.0)), side="right"))
        j = min(max(j, 2), self.power.shape[1])
        log_p, w = log_power(self)
        return PolarSpectrum(self.power[:, :j], self.count[:, :j], self.u[:, :j], self.phi[:, :j],
                             self.k_edges[: j + 1], self.k_step, log_p[:, :j], w[:, :j], self.cos2[:, :j],
                             self.sin2[:, :j], self.looks)


@lru_cache(maxsize=8)
def _geometry(shape, sampling, n_sectors, k_lo, k_hi):
    ny, nx = shape
    ky = np.fft.fftfreq(ny, sampling)[:, None]
    kx = np.fft.rfftfreq(nx, sampling)[None, :]
    k = np.hypot(kx, ky)
    k_step = max(1.0 / (ny * sampling), 1.0 / (nx * sampling))
    step = max(0.5 * k_step, 0.004)  # half a spectrum pixel (rings are kept down to 2.5 pixels a period)
    n_k = int(math.floor((k_hi - k_lo) / step))
    edges = k_lo + step * np.arange(n_k + 1)
    phi = np.arctan2(ky, kx) % np.pi
    # the spectrum's axes carry the streaks of a non-periodic image's edges: left out
    keep = (k >= edges[0]) & (k < edges[-1]) & (kx > 1.5 / (nx * sampling)) & (np.abs(ky) > 1.5 / (ny * sampling))
    flat = np.flatnonzero(keep)
    sector = np.minimum((phi.ravel()[flat] / (np.pi / n_sectors)).astype(np.int64), n_sectors - 1)
    kbin = np.minimum(((k.ravel()[flat] - k_lo) / step).astype(np.int64), n_k - 1)
    index = sector * n_k + kbin
    size = n_sectors * n_k
    count = np.bincount(index, minlength=size).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = np.bincount(index, k.ravel()[flat] ** 2, minlength=size) / count
        ph = np.bincount(index, phi.ravel()[flat], minlength=size) / count
    centre_u = (0.5 * (edges[:-1] + edges[1:])) ** 2
    centre_phi = (np.arange(n_sectors)[:, None] + 0.5) * np.pi / n_sectors
    u = np.where(count > 0, u, np.broadcast_to(centre_u, (n_sectors, n_k)).ravel())
    ph = np.where(count > 0, ph, np.broadcast_to(centre_phi, (n_sectors, n_k)).ravel())
    window = np.outer(_tukey(ny), _tukey(nx))
    out = (flat, index, count.reshape(n_sectors, n_k), u.reshape(n_sectors, n_k), ph.reshape(n_sectors, n_k),
           edges, k_step, window)
    for a in out:
        if isinstance(a, np.ndarray):
            a.setflags(write=False)
    return out


def _tukey(n: int, taper: float = 0.1) -> np.ndarray:
    """A window flat over its middle, cosine-tapered over ``taper``/2 of each end (keeps dense rings)."""
    w = np.ones(n)
    m = max(int(taper * n / 2), 1)
    ramp = 0.5 * (1 - np.cos(np.pi * (np.arange(m) + 0.5) / m))
    w[:m], w[n - m :] = ramp, ramp[::-1]
    return w


def polar_spectrum(image: np.ndarray, sampling: float, n_sectors: int = 72, k_max: float | None = None,
                   k_min: float | None = None, tile: int | None = None) -> PolarSpectrum:
    """Bin the windowed periodogram of one image into azimuthal sectors and radial bins.

    Parameters
    ----------
    image : (ny, nx) ndarray
    sampling : float
        Pixel size [Å].
    n_sectors : int
        Sectors over [0, π) (the spectrum is centrosymmetric).
    k_max, k_min : float, optional
        Radial range [1/Å]; by default from 4 spectrum pixels (at least 0.04 1/Å) to 0.9 Nyquist.
    tile : int, optional
        Average the periodograms of non-overlapping square tiles of this side [px] (a coarser spectrum);
        by default one periodogram of the whole image (the finest spectrum: dense rings stay resolved).

    Returns
    -------
    PolarSpectrum
    """
    image = np.asarray(image, float)
    if image.ndim != 2:
        raise ValueError(f"a tableau image must be 2-D, got shape {image.shape}")
    if not np.all(np.isfinite(image)):
        raise ValueError("the tableau image contains NaN or inf")
    tiles = [image]
    if tile is not None:
        tile = int(min(tile, *image.shape))
        tiles = [image[r : r + tile, c : c + tile] for r in range(0, image.shape[0] - tile + 1, tile)
                 for c in range(0, image.shape[1] - tile + 1, tile)]
    ny, nx = tiles[0].shape
    k_step = max(1.0 / (ny * sampling), 1.0 / (nx * sampling))
    nyquist = 0.5 / sampling
    k_hi = float(0.9 * nyquist if k_max is None else min(k_max, 0.95 * nyquist))
    k_lo = float(max(0.04, 4 * k_step) if k_min is None else k_min)
    flat, index, count, u, phi, edges, k_step, window = _geometry((ny, nx), float(sampling), int(n_sectors), k_lo, k_hi)
    power = 0.0
    for t in tiles:
        spectrum = scipy.fft.rfft2((t - t.mean()) * window)
        power = power + (spectrum.real**2 + spectrum.imag**2).ravel()[flat]
    total = np.bincount(index, power / len(tiles), minlength=count.size).reshape(count.shape)
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return PolarSpectrum(mean, count, u, phi, edges, k_step, looks=len(tiles))


# ----------------------------------------------------------------------------- background and ring contrast
class _Box:
    """A box in u of a given width (per bin) around every bin: interpolation positions in the cumulative sums."""

    def __init__(self, spec: PolarSpectrum, width):
        edges = spec.k_edges
        n_sec, n_k = spec.u.shape
        step = edges[1] - edges[0]
        rows = (np.arange(n_sec) * (n_k + 1))[:, None]
        self.parts = []
        for sign in (1, -1):
            k = np.sqrt(np.clip(spec.u + sign * width / 2, edges[0] ** 2, edges[-1] ** 2))
            x = np.clip((k - edges[0]) / step, 0, n_k - 1e-9)
            i = x.astype(np.int64)
            self.parts.append((sign, (rows + i).ravel(), (x - i).ravel()))
        self.shape = (n_sec, n_k)

    def __call__(self, values) -> np.ndarray:
        """Sum of ``values`` (per bin) over each bin's box."""
        cum = np.zeros((self.shape[0], self.shape[1] + 1))
        np.cumsum(values, axis=1, out=cum[:, 1:])
        cum = cum.ravel()
        out = 0.0
        for sign, i, f in self.parts:
            c0 = cum[i]
            out = out + sign * (c0 + f * (cum[i + 1] - c0))
        return out.reshape(self.shape)


def _box_width(spec: PolarSpectrum, period):
    """One ring period [1/Å²], symmetric inside the binned range and at most ``MAX_BOX``."""
    u_lo, u_hi = spec.k_edges[0] ** 2, spec.k_edges[-1] ** 2
    w = np.minimum(np.abs(period), MAX_BOX)
    return np.minimum(w, 2 * np.minimum(spec.u - u_lo, u_hi - spec.u))


def log_power(spec: PolarSpectrum):
    """log of each bin's mean power, unbiased for a mean of n exponential variates, and its weight 1/var."""
    if spec.log_power is None:
        n = spec.count.astype(np.int64) * spec.looks  # exponential variates averaged into each bin
        ok = (n > 0) & (spec.power > 0)
        table_n = np.arange(1, max(int(n.max()), 1) + 1)
        bias = np.r_[0.0, special.digamma(table_n) - np.log(table_n)]
        weight = np.r_[0.0, 1.0 / special.polygamma(1, table_n)]
        n = np.where(ok, n, 0)
        spec.log_power = np.where(ok, np.log(np.where(ok, spec.power, 1.0)), 0.0) - bias[n]
        spec.log_weight = weight[n]
    return spec.log_power, spec.log_weight


def normalised(spec: PolarSpectrum, period, passes: int = 3):
    """d = log P - log B per bin, log B smoothed by ``passes`` boxes one local ring period wide (in u).

    In the log the background's decay (film spectrum, coherence envelopes) is a smooth additive term that
    does not modulate the rings, so a smoothing that nulls the ring period removes it without shifting the
    rings; three boxes (response sinc³) also null the rings where their contrast changes over a period.
    """
    log_p, w = log_power(spec)
    box = _Box(spec, _box_width(spec, period))
    den = box(w)
    background = np.divide(box(log_p * w), den, out=np.zeros_like(den), where=den > 0)
    du = np.diff(spec.k_edges**2) * (den > 0)  # bins whose box held data
    norm = box(du)
    for _ in range(passes - 1):
        background = np.divide(box(background * du), norm, out=np.zeros_like(den), where=norm > 0)
    return np.where(w > 0, log_p - background, 0.0)


#: Variance over a period of log(1 - m cos Φ), tabulated for the inversion in :func:`contrast`.
_M_TABLE = np.linspace(0.0, 0.95, 96)
_V_TABLE = np.var(np.log(1 - _M_TABLE[:, None] * np.cos(np.linspace(0, 2 * np.pi, 256, endpoint=False))), axis=1)


def contrast(spec: PolarSpectrum, d, period, phase=None):
    """Ring contrast m per bin, over boxes two local ring periods wide.

    With ``phase`` (the model's Φ per bin), from the part of d in phase with the model's rings (coherent:
    noise averages out, so the template's amplitude, and with it the fit's stated precision, is not
    inflated where there are no rings): the fundamental F of log(1 - m cos Φ) is 2(1 - sqrt(1 - m²))/m,
    so m = 4F / (4 + F²). Without it, from the local variance of d minus that of the noise.
    """
    _, w = log_power(spec)
    box = _Box(spec, _box_width(spec, 2 * period))
    if phase is not None:
        c = np.cos(phase)
        num = box(-w * d * c)
        den = box(w * c**2)
        f = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        # the noise adds 1/den to F² on average: remove it, so that faded rings do not count as information
        f = np.sqrt(np.clip(f**2 - np.divide(1.0, den, out=np.full_like(den, np.inf), where=den > 0), 0.0, None))
        f = np.where(num > 0, np.minimum(f, 1.7), 0.0)
        return np.minimum(4 * f / (4 + f**2), 0.95)
    total = box(w)
    excess = box(w * d**2 - (w > 0))
    v = np.divide(excess, total, out=np.zeros_like(excess), where=total > 0)
    noise = np.sqrt(3.0 * box((w > 0).astype(float))) / np.maximum(total, 1e-300)
    return np.interp(v - noise, _V_TABLE, _M_TABLE, left=0.0)


