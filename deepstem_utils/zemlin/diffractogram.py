"""Thon rings of one image: its diffractogram and the fit of its apparent defocus and astigmatism.

The diffractogram (power spectrum) of a bright-field image of a thin amorphous
film shows Thon rings set by the even part of the aberration phase around the
beam. For one image that is, to the order the solve needs,

.. math::

    \\Delta_e(\\mathbf{k}) \\approx \\pi\\lambda k^2\\left[C_1' + C_{12}'\\cos 2(\\phi - \\phi_{12}')\\right]
        + \\tfrac{\\pi}{2}\\lambda^3 C_{30} k^4 ,

and :func:`fit_diffractogram` finds the apparent defocus :math:`C_1'` and
two-fold astigmatism :math:`C_{12}'` of that image (:mod:`.solve` turns them
into the axial aberrations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, optimize

from ..physics.optics import wavelength

__all__ = ["RESOLVED", "diffractogram", "DiffractogramFit", "fit_diffractogram", "ring_model"]

#: Spectrum pixels per Thon-ring period (in k) below which rings count as unresolved: a fit whose rings are
#: denser than this inside its frequency range is redone on a finer spectrum (see :func:`fit_diffractogram`).
RESOLVED = 4.0


def diffractogram(image: np.ndarray, tile: int | None = None, sampling: float | None = None) -> np.ndarray:
    """Welch-averaged power spectrum of an image, zero frequency at ``(n//2, n//2)``.

    Parameters
    ----------
    image : (ny, nx) ndarray
    tile : int, optional
        Side of the square, Hann-windowed tiles (half-overlapping) that are
        averaged. By default the smallest power of two whose frequency step is
        at most 0.01 1/Å (so that dense Thon rings stay resolved; needs
        ``sampling``), capped by the image size; without ``sampling``, half the image.
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
    """Apparent defocus and two-fold astigmatism of one diffractogram.

    Attributes
    ----------
    C1 : float
        Apparent C10 [Å] (signed, see ``sign_known``).
    a, b : float
        Cartesian two-fold astigmatism ``C12 cos 2φ12``, ``C12 sin 2φ12`` [Å].
    psi : float
        Amplitude-contrast phase [rad] (0 for a pure phase object).
    C30 : float
        Coefficient of the k⁴ ring term [Å] (the axial C30), fitted or given.
    quality : float
        Correlation of the data with the fitted ring model, in [0, 1].
    k_range : (float, float)
        Spatial frequencies used [1/Å].
    sector_defocus : ndarray
        Signed defocus per azimuthal sector of the initial estimate [Å].
    """

    C1: float
    a: float
    b: float
    psi: float
    quality: float
    k_range: tuple[float, float]
    C30: float = 0.0
    sector_angles: np.ndarray = field(repr=False, default=None)
    sector_defocus: np.ndarray = field(repr=False, default=None)

    @property
    def C12(self) -> float:
        return math.hypot(self.a, self.b)

    @property
    def phi12(self) -> float:
        return 0.5 * math.atan2(self.b, self.a)

    def flipped(self) -> "DiffractogramFit":
        """The same rings with the opposite sign of χ."""
        return DiffractogramFit(-self.C1, -self.a, -self.b, -self.psi, self.quality, self.k_range, -self.C30,
                                self.sector_angles, None if self.sector_defocus is None else -self.sector_defocus)  # fmt: skip


def _polar_profile(spec, k_sampling, k_range, n_phi, n_u):
    n = spec.shape[0]
    c = n // 2
    u = np.linspace(k_range[0] ** 2, k_range[1] ** 2, n_u)
    phi = (np.arange(n_phi) + 0.5) * np.pi / n_phi
    k = np.sqrt(u)
    # average phi and phi + pi (the spectrum is centrosymmetric)
    out = 0
    for shift in (0.0, np.pi):
        rows = c + (k[None, :] * np.sin(phi[:, None] + shift)) / k_sampling
        cols = c + (k[None, :] * np.cos(phi[:, None] + shift)) / k_sampling
        out = out + ndimage.map_coordinates(spec, [rows, cols], order=1, mode="nearest")
    return phi, u, out / 2


def _normalise_rows(profile, u, smooth_u):
    """Remove the smooth background and envelope from each row of a (phi, u) profile.

    ``smooth_u`` (scalar or one value per row) is the Gaussian width in u = k² [1/Å²];
    0.6 ring periods removes the background while leaving the rings untouched.
    """
    du = u[1] - u[0]
    logp = np.log(np.maximum(profile, 1e-30))
    widths = np.broadcast_to(np.asarray(smooth_u, float), (profile.shape[0],))
    out = np.empty_like(logp)
    for i, w in enumerate(widths):
        s = max(1.0, w / du)
        background = ndimage.gaussian_filter1d(logp[i], s, mode="nearest")
        d = logp[i] - background
        env = np.sqrt(ndimage.gaussian_filter1d(d**2, s, mode="nearest")) + 1e-12
        out[i] = d / env
    return out


def ring_model(u, phi, lam, C1, a, b, psi, C30):
    cos2, sin2 = np.cos(2 * phi), np.sin(2 * phi)
    delta = np.pi * lam * u * (C1 + a * cos2 + b * sin2) + 0.5 * np.pi * lam**3 * C30 * u**2
    # a weak object with absorption w = tan(psi): |sin(chi) - w cos(chi)|^2 ~ sin^2(chi - psi),
    # whose ring modulation is -cos(2 (chi - psi))
    return -np.cos(2 * (delta - psi))


def _information_limit(spec, k_sampling, k_max):
    """Largest frequency where the spectrum still rises above its high-frequency noise floor."""
    n = spec.shape[0]
    c = n // 2
    y, x = np.indices(spec.shape)
    r = np.hypot(y - c, x - c) * k_sampling
    bins = np.arange(0, k_max + k_sampling, k_sampling)
    idx = np.digitize(r.ravel(), bins)
    radial = np.bincount(idx, spec.ravel(), minlength=len(bins) + 1)[1 : len(bins)]
    counts = np.bincount(idx, minlength=len(bins) + 1)[1 : len(bins)]
    radial = radial / np.maximum(counts, 1)
    floor = np.median(radial[int(0.85 * len(radial)) :])
    above = np.nonzero(radial > 1.3 * floor)[0]
    return bins[above[-1]] if len(above) else k_max


def fit_diffractogram(
    image: np.ndarray,
    energy: float,
    sampling: float,
    C30: float | None = None,
    k_range: tuple[float, float] | None = None,
    defocus_range: tuple[float, float] = (100.0, 3000.0),
    n_sectors: int = 72,
    initial: tuple[float, float, float] | None = None,
    amplitude_contrast: float | None = 0.07,
    fit_c30: bool = True,
    tile: int | None = None,
) -> DiffractogramFit:
    """Fit the Thon rings of one image: apparent defocus and two-fold astigmatism.

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
    fit_c30 : bool
        Fit the k⁴ term of this image (default) rather than fix it at ``C30``.
    k_range : (float, float), optional
        Spatial frequencies to fit [1/Å]; from 0.08 1/Å to the information limit by default.
    defocus_range : (float, float)
        Range of |apparent defocus| searched in each sector [Å].
    n_sectors : int
        Azimuthal sectors of the initial estimate.
    initial : (float, float, float), optional
        Start (C1, a, b) [Å] for the refinement instead of the sector search
        (used to refit an image from the tableau's consensus).
    amplitude_contrast : float or None
        Ratio w of absorption to phase of the film; the rings are sin²(χ - ψ) with
        ψ = atan(w). Fixed at 0.07 by default (an assumption for amorphous carbon:
        fitting it trades off against the defocus); None fits ψ.
    tile : int, optional
        Tile side of the power spectrum [px] (:func:`diffractogram`). By default the
        frequency step is at most 0.01 1/Å; when the fitted rings turn out denser
        than ``RESOLVED`` spectrum pixels per period inside the fitted range (strong
        defocus or astigmatism: they alias into a moiré that can mislead the fit),
        the image is refitted once with tiles twice as large, if it is big enough.

    Returns
    -------
    DiffractogramFit
        Up to the global sign of χ, which one diffractogram cannot tell: the
        returned fit has the sign that makes the sectors' mean defocus negative
        (underfocus); :func:`measure_aberrations` resolves the sign over the tableau.

    Notes
    -----
    1. Welch power spectrum; polar resampling on ``u = k²``, where Thon rings
       of a pure defocus are equally spaced; log background and envelope removed.
    2. Initial estimate: in each sector, the defocus whose ring model
       correlates best with the profile (a 1-D search); then the signed sector
       defocus ``C1 + a cos 2φ + b sin 2φ`` by least squares, trying both
       signs where the astigmatism makes the sectors change sign.
    3. Refinement of (C1, a, b, ψ[, C30]) on the whole 2-D pattern (Nelder-Mead).
    """
    lam = wavelength(energy)
    free_c30 = fit_c30 or C30 is None
    c30_given = C30
    C30 = 0.0 if C30 is None else float(C30)
    spec = diffractogram(image, tile=tile, sampling=sampling)
    n = spec.shape[0]
    k_sampling = 1.0 / (n * sampling)
    nyquist = 0.5 / sampling
    fitted_range = k_range
    if fitted_range is None:
        k_hi = min(0.9 * nyquist, _information_limit(spec, k_sampling, 0.95 * nyquist))
        fitted_range = (max(0.06, 6 * k_sampling), max(k_hi, 0.25))
    phi, u, prof = _polar_profile(spec, k_sampling, fitted_range, n_phi=2 * n_sectors, n_u=512)
    sec_phi = phi.reshape(n_sectors, -1).mean(1)
    mag = np.full(n_sectors, np.nan)
    if initial is not None:
        starts = [tuple(float(v) for v in initial)]
    else:
        sec_raw = prof.reshape(n_sectors, phi.size // n_sectors, -1).mean(1)
        # the k^4 term shifts the rings of every sector alike: try a few values when it is not known
        c30_trials = [C30] if not free_c30 else sorted({C30, -6e4, -3e4, 0.0, 3e4, 6e4})
        mag, conf, best_c30 = _sector_defocus(sec_raw, u, lam, defocus_range, c30_trials, amplitude_contrast)
        if free_c30:  # start the refinement from the k^4 term the sectors liked best
            C30 = best_c30
        starts = _signed_starts(sec_phi, mag, conf)
    rings = _RingFit(prof, u, phi, lam, starts[0], defocus_range[0], amplitude_contrast, C30, free_c30)
    r = min((rings.refine(rings.start(s0), slice(0, len(u), 2)) for s0 in starts),  # every other u sample
            key=lambda res: res.fun)
    last = rings.carrying_rings(r.x)
    if last < len(u) - len(u) // _BANDS:  # refit on the frequencies that carry rings
        r = rings.refine(r.x, slice(0, last))
    fitted_range = (fitted_range[0], float(math.sqrt(u[last - 1])))
    c1, a, b, psi, c30 = rings.unpack(r.x)
    psi = (psi + np.pi / 2) % np.pi - np.pi / 2
    signed = np.sign(c1 + a * np.cos(2 * sec_phi) + b * np.sin(2 * sec_phi)) * mag
    densest = max(abs(c1) + math.hypot(a, b), 1.0)
    k_resolved = 1.0 / (2 * RESOLVED * lam * densest * k_sampling)  # dk = du / (2k) = 1 / (2 k λ C) per ring
    if tile is None and k_resolved < fitted_range[1] and 2 * n <= min(np.shape(image)):
        return fit_diffractogram(image, energy, sampling, C30=c30_given, k_range=k_range,
                                 defocus_range=defocus_range, n_sectors=n_sectors, initial=initial,
                                 amplitude_contrast=amplitude_contrast, fit_c30=fit_c30, tile=2 * n)
    return DiffractogramFit(float(c1), float(a), float(b), float(psi), float(-r.fun), tuple(fitted_range),
                            float(c30), sec_phi, signed)


#: Bands of u = k² in which the fitted rings are checked against the data (:meth:`_RingFit.carrying_rings`).
_BANDS = 16


def _sector_defocus(sec_raw, u, lam, defocus_range, c30_trials, amplitude_contrast):
    """Step 1: in each sector, the |defocus| whose ring model correlates best with the profile (a 1-D search).

    Each trial defocus is scored against the profile normalised with a background width matched to its own
    ring period, with both signs of χ and every trial k⁴ term. Returns the magnitude per sector, the best
    correlation per sector (its confidence) and the k⁴ coefficient the sectors liked best.
    """
    period = lambda c: 1.0 / (lam * np.abs(c))  # noqa: E731  ring period in u for a defocus c [1/Å²]
    n_sectors = sec_raw.shape[0]
    trial = np.geomspace(defocus_range[0], defocus_range[1], 700)
    scales = np.geomspace(0.6 * period(defocus_range[1]), 0.6 * period(defocus_range[0]), 10)
    which = np.abs(np.log(0.6 * period(trial))[:, None] - np.log(scales)[None, :]).argmin(1)
    score_neg = np.full((n_sectors, trial.size), -np.inf)
    score_pos = np.full((n_sectors, trial.size), -np.inf)
    c30_score = dict.fromkeys(c30_trials, 0.0)
    for j, scale in enumerate(scales):
        pick = which == j
        if not np.any(pick):
            continue
        sec = _normalise_rows(sec_raw, u, scale)
        sec -= sec.mean(1, keepdims=True)
        t = trial[pick][:, None]
        for c30_trial in c30_trials:
            for sign, score in ((-1.0, score_neg), (1.0, score_pos)):
                model = -np.cos(2 * np.pi * lam * sign * t * u[None, :] + np.pi * lam**3 * c30_trial * u[None, :] ** 2
                                - 2 * math.atan(amplitude_contrast or 0.0))
                model -= model.mean(1, keepdims=True)
                norm = np.linalg.norm(model, axis=1)[None, :] * np.linalg.norm(sec, axis=1)[:, None]
                this = (sec @ model.T) / (norm + 1e-12)
                if sign < 0:  # in the underfocus frame the sign of the k^4 term is meaningful
                    c30_score[c30_trial] = max(c30_score[c30_trial], float(this.max(1).sum()))
                score[:, pick] = np.maximum(score[:, pick], this)
    best_neg, best_pos = score_neg.max(1), score_pos.max(1)
    mag = np.where(best_neg >= best_pos, trial[score_neg.argmax(1)], trial[score_pos.argmax(1)])
    return mag, np.maximum(best_neg, best_pos), max(c30_score, key=c30_score.get)


def _signed_starts(sec_phi, mag, conf, n_starts: int = 3):
    """Step 2: up to ``n_starts`` distinct (C1, a, b) [Å] from the sectors' |defocus|, best first.

    The signed sector defocus is C(φ) = C1 + a cos 2φ + b sin 2φ, but each sector's sign is unknown where
    astigmatism makes the sectors change sign: candidate sign fields are tried, each fitted by robust least
    squares (a few sectors lock onto a wrong ring order).
    """
    design = np.column_stack([np.ones_like(sec_phi), np.cos(2 * sec_phi), np.sin(2 * sec_phi)])
    w = np.clip(conf, 0.05, None)
    candidates = []
    for theta0 in np.linspace(0, np.pi, 12, endpoint=False):
        for frac in np.linspace(-1.0, 1.0, 11):
            signs = np.where(np.cos(2 * (sec_phi - theta0)) + frac >= 0, -1.0, 1.0)
            y = signs * mag
            coef, *_ = np.linalg.lstsq(design * w[:, None], y * w, rcond=None)
            for _ in range(2):
                res = np.abs(np.abs(design @ coef) - mag)
                inl = res < max(20.0, 3 * np.median(res))
                if inl.sum() < 6:
                    break
                coef, *_ = np.linalg.lstsq(design[inl] * w[inl, None], y[inl] * w[inl], rcond=None)
            res = np.abs(np.abs(design @ coef) - mag)
            resid = np.sum(w * np.minimum(res, 30.0) ** 2)  # truncated loss
            coef = -coef if coef[0] > 0 else coef  # global sign: underfocus
            candidates.append((resid, tuple(np.round(coef, 0))))
    starts = []
    for resid, coef in sorted(candidates):
        if all(np.abs(np.array(coef) - np.array(s_)).max() > 10.0 for s_ in starts):
            starts.append(coef)
        if len(starts) == n_starts:
            break
    return starts


class _RingFit:
    """Step 3: refinement of (C1, a, b[, ψ][, C30]) on the whole 2-D (φ, u) pattern by Nelder-Mead.

    Each row of the profile is normalised for its own ring period (from the start ``guess``).
    """

    def __init__(self, prof, u, phi, lam, guess, min_defocus, amplitude_contrast, C30, free_c30):
        c1, a, b = guess
        c_row = np.maximum(np.abs(c1 + a * np.cos(2 * phi) + b * np.sin(2 * phi)), min_defocus)
        data = _normalise_rows(prof, u, 0.6 / (lam * c_row))
        self.uu, self.pp = np.meshgrid(u, phi)
        self.d0 = data - data.mean(1, keepdims=True)
        self.lam, self.C30, self.free_c30 = lam, C30, free_c30
        self.free_psi = amplitude_contrast is None
        self.psi0 = 0.0 if self.free_psi else math.atan(amplitude_contrast)

    def start(self, guess) -> np.ndarray:
        """The parameter vector for a (C1, a, b) start."""
        tails = ([0.0] if self.free_psi else []) + ([self.C30 / 1e3] if self.free_c30 else [])
        return np.array(list(guess) + tails)

    def unpack(self, p):
        """(C1, a, b, ψ, C30) from a parameter vector (C30 is fitted in units of 1e3 Å)."""
        psi = p[3] if self.free_psi else self.psi0
        c30 = p[-1] * 1e3 if self.free_c30 else self.C30
        return p[0], p[1], p[2], psi, c30

    def refine(self, start, cols):
        uu, pp, d = self.uu[:, cols], self.pp[:, cols], self.d0[:, cols]
        dn = np.linalg.norm(d)

        def negcorr(p):
            m = ring_model(uu, pp, self.lam, *self.unpack(p))
            m = m - m.mean(1, keepdims=True)
            return -np.sum(d * m) / (np.linalg.norm(m) * dn + 1e-12)

        steps = [20.0, 20.0, 20.0] + ([0.3] if self.free_psi else []) + ([10.0] if self.free_c30 else [])
        simplex = np.vstack([start, start + np.diag(steps)])
        return optimize.minimize(negcorr, start, method="Nelder-Mead",
                                 options={"xatol": 0.05, "fatol": 1e-7, "maxiter": 4000, "initial_simplex": simplex})

    def carrying_rings(self, p) -> int:
        """The information limit: index past the last u band whose data still correlate with the fitted rings."""
        d0 = self.d0
        model = ring_model(self.uu, self.pp, self.lam, *self.unpack(p))
        model -= model.mean(1, keepdims=True)
        n_u = d0.shape[1]
        bands = np.array_split(np.arange(n_u), _BANDS)
        corr = np.array([np.sum(d0[:, b] * model[:, b]) / (np.linalg.norm(d0[:, b]) * np.linalg.norm(model[:, b])
                                                          + 1e-12) for b in bands])
        noise = 3.0 / math.sqrt(d0.shape[0] * len(bands[0]))
        good = np.nonzero(corr > max(noise, 0.05))[0]
        last = bands[good[-1]][-1] + 1 if len(good) else n_u
        return max(last, n_u // 4)
