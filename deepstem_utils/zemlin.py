"""Zemlin tableau: simulate it, fit its diffractograms, solve for the aberrations.

A Zemlin tableau is a set of images of a thin amorphous film recorded with the
illumination tilted by a set of angles τ. The diffractogram (power spectrum)
of each image shows Thon rings set by the *even part* of the aberration phase
around the tilted beam,

.. math::

    \\Delta_e(\\mathbf{k}) = \\tfrac12\\left[\\chi(\\boldsymbol\\tau + \\lambda\\mathbf{k})
        + \\chi(\\boldsymbol\\tau - \\lambda\\mathbf{k}) - 2\\chi(\\boldsymbol\\tau)\\right]
    \\approx \\pi\\lambda k^2\\left[C_1' + C_{12}'\\cos 2(\\phi - \\phi_{12}')\\right]
        + \\tfrac{\\pi}{2}\\lambda^3 C_{30} k^4 ,

so every image gives an apparent defocus :math:`C_1'` and two-fold astigmatism
:math:`C_{12}'`. They are linear in the axial coefficients through the
Hessian of χ at τ (:func:`apparent_design_matrix`), which a least-squares
solve inverts (:func:`solve_aberrations`). Conventions are those of
:mod:`deepstem_utils.optics` (abTEM's polar names, ``C10`` = -defocus); the
tilt τ = (tx, ty) is the direction of the incident beam, ``exp(2πi(tx x + ty y)/λ)``.

Diffractograms are even in χ: a tableau of a pure phase object cannot tell
the global sign of χ. The sign is fixed by the prior that the tableau was
recorded in underfocus (``C10 < 0``), as is usual; override it with
``defocus_sign`` (+1, or ``"amplitude"`` to read it from the film's amplitude contrast).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, optimize

from .optics import _validate_aberrations, aberration_phase, interaction_parameter, wavelength

__all__ = [
    "tableau_tilts",
    "amorphous_carbon",
    "simulate_tableau",
    "diffractogram",
    "DiffractogramFit",
    "fit_diffractogram",
    "apparent_aberrations",
    "apparent_design_matrix",
    "solve_aberrations",
    "measure_aberrations",
    "random_aberrations",
    "aberration_error",
    "CORRECTED_LIMITS",
]

#: Spectrum pixels per Thon-ring period (in k) below which rings count as unresolved: a fit whose rings are
#: denser than this inside its frequency range is redone on a finer spectrum (see :func:`fit_diffractogram`).
RESOLVED = 4.0

#: Unknowns of the solve, by order: (symbol, n, m).
_TERMS = {
    1: [("C10", 1, 0), ("C12", 1, 2)],
    2: [("C21", 2, 1), ("C23", 2, 3)],
    3: [("C30", 3, 0), ("C32", 3, 2), ("C34", 3, 4)],
}


# --------------------------------------------------------------------------- tilts
def tableau_tilts(magnitudes=(10.0, 20.0), n_azimuth: int = 6, include_axial: bool = True, rotation: float = 0.0):
    """Beam tilts of a tableau [mrad]: an optional untilted image and rings of tilts.

    Parameters
    ----------
    magnitudes : sequence of float
        Tilt magnitude of each ring [mrad].
    n_azimuth : int
        Tilts per ring, equally spaced in azimuth.
    include_axial : bool
        Put an untilted image first.
    rotation : float
        Azimuth of the first tilt of each ring [rad]; successive rings are staggered by half a step.

    Returns
    -------
    (n, 2) ndarray
        ``(tx, ty)`` per image [mrad].
    """
    tilts = [(0.0, 0.0)] if include_axial else []
    for i, t in enumerate(magnitudes):
        for j in range(n_azimuth):
            a = rotation + 2 * np.pi * (j + 0.5 * (i % 2)) / n_azimuth
            tilts.append((t * math.cos(a), t * math.sin(a)))
    return np.array(tilts, dtype=float)


# -------------------------------------------------------------------------- specimen
def amorphous_carbon(
    shape: tuple[int, int],
    sampling: float,
    energy: float = 80e3,
    thickness: float = 30.0,
    density: float = 2.0,
    rng=None,
) -> np.ndarray:
    """Projected phase of a thin amorphous carbon film [rad].

    Atoms sit on a strongly perturbed cubic grid with the density of a-C (a
    random structure with short-range exclusion, not white noise). Each atom
    adds a Gaussian phase peak whose integral is the carbon atom's
    phase-shift cross-section σ·∫V d³r.

    Parameters
    ----------
    shape : (int, int)
    sampling : float
        Pixel size [Å].
    energy : float
        Beam energy [eV].
    thickness : float
        Film thickness [Å].
    density : float
        Mass density [g/cm³] (a-C: 1.8-2.2).
    rng : Generator or int, optional

    Notes
    -----
    The integral of a C atom's potential, 2π a₀ e f_e(0) with f_e(0) ≈ 2.5 Å
    (Kirkland's parametrisation), is about 120 V Å³. The peak width (σ = 0.3 Å)
    stands for the spread of the atomic potential. Both are approximations.
    """
    rng = np.random.default_rng(rng)
    ny, nx = shape
    box = np.array([nx * sampling, ny * sampling, thickness])
    n_atoms = int(round(density / 12.011 * 6.02214076e23 * 1e-24 * box.prod()))
    pos = _hard_core(rng.uniform(0, 1, (n_atoms, 3)) * box, box, d_min=1.35, rng=rng)
    # sub-pixel positions: spread each atom bilinearly
    density_map = _bilinear_splat(pos[:, 1] / sampling - 0.5, pos[:, 0] / sampling - 0.5, (ny, nx))
    phase_per_atom = interaction_parameter(energy) * 2 * np.pi * 0.529177 * 14.399645 * 2.5  # rad Å²
    ky = np.fft.fftfreq(ny, sampling)[:, None]
    kx = np.fft.fftfreq(nx, sampling)[None, :]
    width = 0.3
    kernel = np.exp(-2 * np.pi**2 * width**2 * (kx**2 + ky**2))
    return np.fft.ifft2(np.fft.fft2(density_map) * kernel).real * phase_per_atom / sampling**2


def _hard_core(pos, box, d_min, rng, iterations=30):
    """Push apart atoms closer than d_min (periodic in x, y): a random structure with
    short-range exclusion, whose projection shows the amorphous-carbon ring near 1/(2 Å)."""
    from scipy.spatial import cKDTree

    pos = pos.copy()
    for _ in range(iterations):
        wrapped = np.column_stack([pos[:, 0] % box[0], pos[:, 1] % box[1], np.clip(pos[:, 2], 0, box[2])])
        tree = cKDTree(wrapped, boxsize=[box[0], box[1], box[2] + 10 * d_min])
        pairs = tree.query_pairs(d_min, output_type="ndarray")
        if len(pairs) == 0:
            break
        d = wrapped[pairs[:, 1]] - wrapped[pairs[:, 0]]
        d[:, :2] -= box[:2] * np.round(d[:, :2] / box[:2])
        dist = np.linalg.norm(d, axis=1, keepdims=True) + 1e-9
        push = 0.5 * (d_min - dist) * d / dist
        np.add.at(pos, pairs[:, 0], -push)
        np.add.at(pos, pairs[:, 1], push)
        pos += rng.normal(0, 0.01, pos.shape)
    pos[:, 0] %= box[0]
    pos[:, 1] %= box[1]
    return pos


def _bilinear_splat(rows, cols, shape):
    ny, nx = shape
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    fr, fc = rows - r0, cols - c0
    out = np.zeros(shape)
    for dr, wr in ((0, 1 - fr), (1, fr)):
        for dc, wc in ((0, 1 - fc), (1, fc)):
            np.add.at(out, ((r0 + dr) % ny, (c0 + dc) % nx), wr * wc)
    return out


# ------------------------------------------------------------------------- simulate
def _gauss_hermite(n: int):
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / w.sum()


def simulate_tableau(
    aberrations: dict,
    tilts,
    energy: float = 80e3,
    shape: tuple[int, int] = (1024, 1024),
    sampling: float = 0.2,
    dose: float = 2e4,
    focal_spread: float = 40.0,
    angular_spread: float = 0.1,
    amplitude_contrast: float = 0.07,
    specimen: np.ndarray | None = None,
    rng=None,
    quadrature: tuple[int, int] = (5, 7),
) -> np.ndarray:
    """Simulate a Zemlin tableau: bright-field images of amorphous carbon under tilted illumination.

    Parameters
    ----------
    aberrations : dict
        Polar aberration coefficients (abTEM names) [Å, rad], including the defocus
        at which the tableau is recorded (``C10``).
    tilts : (n, 2) array_like
        Beam tilts ``(tx, ty)`` [mrad].
    energy : float
        Beam energy [eV].
    shape : (int, int)
        Image size [px].
    sampling : float
        Pixel size [Å].
    dose : float
        Electron dose per image [e⁻/Å²]; Poisson noise. ``np.inf`` for noiseless.
    focal_spread : float
        Standard deviation of the defocus spread (temporal coherence) [Å].
    angular_spread : float
        Standard deviation of the illumination angles (spatial coherence) [mrad].
    amplitude_contrast : float
        Ratio of absorption to phase of the film (a-C: about 0.07; an assumption).
    specimen : (ny, nx) ndarray, optional
        Projected phase [rad]; a new :func:`amorphous_carbon` film by default.
    rng : Generator or int, optional
    quadrature : (int, int)
        Points for the focal-spread (Gauss-Hermite) and angular-spread integration.

    Returns
    -------
    (n, ny, nx) ndarray
        Counts per pixel.

    Notes
    -----
    For every tilt the image wave is the film's exit wave with the aberration
    phase evaluated around the tilted beam, χ(τ + λq) − χ(τ); partial coherence
    is an incoherent sum over defocus and illumination angle.
    """
    ab = _validate_aberrations(aberrations)
    tilts = np.asarray(tilts, float).reshape(-1, 2) * 1e-3
    rng = np.random.default_rng(rng)
    lam = wavelength(energy)
    if specimen is None:
        specimen = amorphous_carbon(shape, sampling, energy, rng=rng)
    ny, nx = specimen.shape
    wave = np.exp((1j - amplitude_contrast) * (specimen - specimen.mean()))
    ky, kx = np.meshgrid(np.fft.fftfreq(ny, sampling), np.fft.fftfreq(nx, sampling), indexing="ij")
    band = np.hypot(kx, ky) < (2 / 3) * 0.5 / sampling  # anti-aliasing for |psi|^2
    spectrum = np.fft.fft2(wave) * band
    df, wf = _gauss_hermite(quadrature[0]) if focal_spread > 0 else (np.zeros(1), np.ones(1))
    da, wa = _angular_points(quadrature[1]) if angular_spread > 0 else (np.zeros((1, 2)), np.ones(1))
    images = np.empty((len(tilts), ny, nx))
    for i, tau in enumerate(tilts):
        image = np.zeros((ny, nx))
        for (dax, day), w_a in zip(da * angular_spread * 1e-3, wa):
            tx, ty = tau[0] + dax, tau[1] + day
            ax, ay = tx + lam * kx, ty + lam * ky
            alpha2 = ax**2 + ay**2
            chi = aberration_phase(np.sqrt(alpha2), np.arctan2(ay, ax), lam, ab)
            chi -= aberration_phase(np.array(math.hypot(tx, ty)), np.array(math.atan2(ty, tx)), lam, ab)
            chi_df = np.pi / lam * (alpha2 - (tx**2 + ty**2))  # d chi / d C10
            for d, w_f in zip(df * focal_spread, wf):
                psi = np.fft.ifft2(spectrum * np.exp(-1j * (chi + d * chi_df)))
                image += w_a * w_f * np.abs(psi) ** 2
        images[i] = image
    if np.isfinite(dose):
        images = rng.poisson(images * dose * sampling**2).astype(float)
    return images


def _angular_points(n: int):
    """Centre plus a ring of n-1 points, weights matching a 2-D Gaussian of unit σ."""
    if n <= 1:
        return np.zeros((1, 2)), np.ones(1)
    ring = n - 1
    r = math.sqrt(2.0)  # E|x|^2 = 2 for a unit 2-D Gaussian: put the ring there, weight it to match
    a = 2 * np.pi * np.arange(ring) / ring
    pts = np.vstack([[0.0, 0.0], np.column_stack([r * np.cos(a), r * np.sin(a)])])
    w_ring = 2 / (r**2)  # second moment 2 = w_ring * r^2
    weights = np.r_[1 - w_ring, np.full(ring, w_ring / ring)]
    return pts, weights


# ---------------------------------------------------------------------- diffractogram
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


# ------------------------------------------------------------------------------ fit
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


def _ring_model(u, phi, lam, C1, a, b, psi, C30):
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
    c30_given, k_range_given = C30, k_range
    C30 = 0.0 if C30 is None else float(C30)
    spec = diffractogram(image, tile=tile, sampling=sampling)
    n = spec.shape[0]
    k_sampling = 1.0 / (n * sampling)
    nyquist = 0.5 / sampling
    if k_range is None:
        k_hi = min(0.9 * nyquist, _information_limit(spec, k_sampling, 0.95 * nyquist))
        k_range = (max(0.06, 6 * k_sampling), max(k_hi, 0.25))
    phi, u, prof = _polar_profile(spec, k_sampling, k_range, n_phi=2 * n_sectors, n_u=512)
    period = lambda c: 1.0 / (lam * np.abs(c))  # ring period in u for a defocus c [1/Å²]

    n_rows = phi.size // n_sectors
    sec_phi = phi.reshape(n_sectors, n_rows).mean(1)
    mag = np.full(n_sectors, np.nan)
    if initial is not None:
        c1, a, b = (float(v) for v in initial)
    else:
        # --- 1-D search per sector (|defocus|): each trial defocus is scored against the
        # profile normalised with a background width matched to its own ring period
        sec_raw = prof.reshape(n_sectors, n_rows, -1).mean(1)
        trial = np.geomspace(defocus_range[0], defocus_range[1], 700)
        scales = np.geomspace(0.6 * period(defocus_range[1]), 0.6 * period(defocus_range[0]), 10)
        which = np.abs(np.log(0.6 * period(trial))[:, None] - np.log(scales)[None, :]).argmin(1)
        score_neg = np.empty((n_sectors, trial.size))
        score_pos = np.empty((n_sectors, trial.size))
        # the k^4 term shifts the rings of every sector alike: try a few values when it is not known
        c30_trials = [C30] if not free_c30 else sorted({C30, -6e4, -3e4, 0.0, 3e4, 6e4})
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
        if free_c30:  # start the refinement from the k^4 term the sectors liked best
            C30 = max(c30_score, key=c30_score.get)
        best_neg, best_pos = score_neg.max(1), score_pos.max(1)
        mag = np.where(best_neg >= best_pos, trial[score_neg.argmax(1)], trial[score_pos.argmax(1)])
        conf = np.maximum(best_neg, best_pos)

        # --- signed sector defocus: C(phi) = C1 + a cos 2phi + b sin 2phi, sectors' signs unknown
        design = np.column_stack([np.ones_like(sec_phi), np.cos(2 * sec_phi), np.sin(2 * sec_phi)])
        w = np.clip(conf, 0.05, None)
        candidates = []
        # sign patterns: each sector's sign is that of C1 + a cos + b sin; try candidate sign fields
        for theta0 in np.linspace(0, np.pi, 12, endpoint=False):
            for frac in np.linspace(-1.0, 1.0, 11):
                signs = np.where(np.cos(2 * (sec_phi - theta0)) + frac >= 0, -1.0, 1.0)
                y = signs * mag
                coef, *_ = np.linalg.lstsq(design * w[:, None], y * w, rcond=None)
                # robust: refit on the sectors that agree (a few sectors lock onto a wrong ring order)
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
            if len(starts) == 3:
                break
        c1, a, b = starts[0]

    # --- 2-D refinement on all azimuths, each row normalised for its own ring period
    c_row = np.maximum(np.abs(c1 + a * np.cos(2 * phi) + b * np.sin(2 * phi)), defocus_range[0])
    data = _normalise_rows(prof, u, 0.6 * period(c_row))
    uu, pp = np.meshgrid(u, phi)
    d0 = data - data.mean(1, keepdims=True)

    free_psi = amplitude_contrast is None
    psi0 = 0.0 if free_psi else math.atan(amplitude_contrast)

    def unpack(p):
        psi = p[3] if free_psi else psi0
        c30 = p[-1] * 1e3 if free_c30 else C30
        return p[0], p[1], p[2], psi, c30

    def refine(start, cols):
        uu_, pp_, d_ = uu[:, cols], pp[:, cols], d0[:, cols]
        dn = np.linalg.norm(d_)

        def negcorr(p):
            m = _ring_model(uu_, pp_, lam, *unpack(p))
            m = m - m.mean(1, keepdims=True)
            return -np.sum(d_ * m) / (np.linalg.norm(m) * dn + 1e-12)

        steps = [20.0, 20.0, 20.0] + ([0.3] if free_psi else []) + ([10.0] if free_c30 else [])
        simplex = np.vstack([start, start + np.diag(steps)])
        return optimize.minimize(negcorr, start, method="Nelder-Mead",
                                 options={"xatol": 0.05, "fatol": 1e-7, "maxiter": 4000, "initial_simplex": simplex})

    cols = slice(0, len(u), 2)  # a first pass on every other u sample
    tails = ([0.0] if free_psi else []) + ([C30 / 1e3] if free_c30 else [])
    first = [(c1, a, b)] if initial is not None else starts
    r = min((refine(np.array(list(s0) + tails), cols) for s0 in first), key=lambda res: res.fun)
    # information limit: keep the u bands whose data still correlate with the fitted rings
    model = _ring_model(uu, pp, lam, *unpack(r.x))
    model -= model.mean(1, keepdims=True)
    bands = np.array_split(np.arange(len(u)), 16)
    corr = np.array([np.sum(d0[:, b] * model[:, b]) / (np.linalg.norm(d0[:, b]) * np.linalg.norm(model[:, b]) + 1e-12)
                     for b in bands])  # fmt: skip
    noise = 3.0 / math.sqrt(d0.shape[0] * len(bands[0]))
    good = np.nonzero(corr > max(noise, 0.05))[0]
    last = bands[good[-1]][-1] + 1 if len(good) else len(u)
    last = max(last, len(u) // 4)
    if last < len(u) - len(bands[0]):  # refit on the frequencies that carry rings
        r = refine(r.x, slice(0, last))
    k_range = (k_range[0], float(math.sqrt(u[last - 1])))
    c1, a, b, psi, c30 = unpack(r.x)
    psi = (psi + np.pi / 2) % np.pi - np.pi / 2
    signed = np.sign(c1 + a * np.cos(2 * sec_phi) + b * np.sin(2 * sec_phi)) * mag
    densest = max(abs(c1) + math.hypot(a, b), 1.0)
    k_resolved = 1.0 / (2 * RESOLVED * lam * densest * k_sampling)  # dk = du / (2k) = 1 / (2 k λ C) per ring
    if tile is None and k_resolved < k_range[1] and 2 * n <= min(np.shape(image)):
        return fit_diffractogram(image, energy, sampling, C30=c30_given, k_range=k_range_given,
                                 defocus_range=defocus_range, n_sectors=n_sectors, initial=initial,
                                 amplitude_contrast=amplitude_contrast, fit_c30=fit_c30, tile=2 * n)
    return DiffractogramFit(float(c1), float(a), float(b), float(psi), float(-r.fun), tuple(k_range), float(c30),
                            sec_phi, signed)  # fmt: skip


# ---------------------------------------------------------------------------- solve
def _hessian_of_term(tau: np.ndarray, n: int, m: int):
    """(C1', a, b) that unit cos and sin parts of the (n, m) aberration give at tilt tau.

    The term is f = Re/Im[ω^p ω̄^q] / (n+1) with ω = τx + iτy, p = (n+1+m)/2,
    q = (n+1-m)/2; the apparent C1' = (fxx + fyy)/2, a = (fxx - fyy)/2, b = fxy.
    """
    p, q = (n + 1 + m) // 2, (n + 1 - m) // 2
    w = complex(tau[0], tau[1])
    wb = w.conjugate()

    def mono(i, j, coef):
        if coef == 0:
            return 0j
        return coef * (w**i if i else 1) * (wb**j if j else 1)

    t_pp = mono(p - 2, q, p * (p - 1))
    t_pq = mono(p - 1, q - 1, p * q)
    t_qq = mono(p, q - 2, q * (q - 1))
    fxx = (t_pp + 2 * t_pq + t_qq) / (n + 1)
    fyy = -(t_pp - 2 * t_pq + t_qq) / (n + 1)
    fxy = 1j * (t_pp - t_qq) / (n + 1)
    c1 = (fxx + fyy) / 2
    a = (fxx - fyy) / 2
    cos_part = np.array([c1.real, a.real, fxy.real])
    sin_part = np.array([c1.imag, a.imag, fxy.imag])
    return cos_part, sin_part


def _unknowns(order: int):
    names = []
    for o in range(1, order + 1):
        for symbol, n, m in _TERMS[o]:
            names += [(symbol, n, m, "cos")] + ([(symbol, n, m, "sin")] if m else [])
    return names


def apparent_design_matrix(tilts, order: int = 3):
    """Matrix mapping axial Cartesian coefficients to the apparent (C1', a, b) of every tilt.

    Parameters
    ----------
    tilts : (n, 2) array_like
        Beam tilts [mrad].
    order : {1, 2, 3}
        Highest aberration order solved for: 1 (C10, C12), 2 (+ C21, C23), 3 (+ C30, C32, C34).

    Returns
    -------
    A : (3n, p) ndarray
        Rows ``[C1'_0, a_0, b_0, C1'_1, ...]``; columns ``C10, C12 cos 2φ12, C12 sin 2φ12, C21 cos φ21, ...``
        (for m > 0, ``Cnm cos(m φnm)`` and ``Cnm sin(m φnm)``).
    names : list of (symbol, n, m, part)
    """
    tilts = np.asarray(tilts, float).reshape(-1, 2) * 1e-3
    names = _unknowns(order)
    A = np.zeros((3 * len(tilts), len(names)))
    for i, tau in enumerate(tilts):
        col = 0
        for symbol, n, m, part in names:
            cos_part, sin_part = _hessian_of_term(tau, n, m)
            A[3 * i : 3 * i + 3, col] = cos_part if part == "cos" else sin_part
            col += 1
    return A, names


def apparent_aberrations(aberrations: dict, tilts) -> np.ndarray:
    """Apparent (C1', a, b) [Å] at each tilt [mrad] for given axial aberrations (up to third order)."""
    ab = _validate_aberrations(aberrations)
    A, names = apparent_design_matrix(tilts, order=3)
    x = _to_cartesian(ab, names)
    return (A @ x).reshape(-1, 3)


def _to_cartesian(ab: dict, names) -> np.ndarray:
    x = []
    for symbol, n, m, part in names:
        c = ab.get(symbol, 0.0)
        angle = ab.get(f"phi{n}{m}", 0.0) if m else 0.0
        x.append(c * (math.cos(m * angle) if part == "cos" else math.sin(m * angle)))
    return np.array(x)


def _to_polar(x: np.ndarray, cov: np.ndarray, names):
    ab, unc = {}, {}
    i = 0
    while i < len(names):
        symbol, n, m, part = names[i]
        if m == 0:
            ab[symbol] = float(x[i])
            unc[symbol] = float(np.sqrt(max(cov[i, i], 0.0)))
            i += 1
            continue
        ca, cb = x[i], x[i + 1]
        c = math.hypot(ca, cb)
        ang = math.atan2(cb, ca) / m
        # uncertainties: project the 2x2 covariance on the radial and tangential directions
        sub = cov[i : i + 2, i : i + 2]
        if c > 0:
            er = np.array([ca, cb]) / c
            et = np.array([-cb, ca]) / c
            s_r = math.sqrt(max(er @ sub @ er, 0.0))
            s_t = math.sqrt(max(et @ sub @ et, 0.0))
            s_phi = s_t / (m * c)
        else:
            s_r = math.sqrt(max(np.trace(sub) / 2, 0.0))
            s_phi = math.pi / m
        ab[symbol], ab[f"phi{n}{m}"] = float(c), float(ang)
        unc[symbol], unc[f"phi{n}{m}"] = float(s_r), float(min(s_phi, math.pi / m))
        i += 2
    return ab, unc


def solve_aberrations(apparent: np.ndarray, tilts, order: int = 3, weights=None):
    """Least-squares solve for the axial aberrations from apparent (C1', a, b) per tilt.

    Parameters
    ----------
    apparent : (n, 3) ndarray
        Apparent C1', a = C12' cos 2φ12', b = C12' sin 2φ12' per image [Å].
    tilts : (n, 2) array_like
        Beam tilts [mrad].
    order : {1, 2, 3}
        Highest order solved for (see :func:`apparent_design_matrix`).
    weights : (n,) array_like, optional
        Relative weight of each image (e.g. its fit quality).

    Returns
    -------
    aberrations : dict
        Polar coefficients [Å, rad].
    uncertainties : dict
        One-sigma uncertainties from the residuals (covariance of the solve).

    Raises
    ------
    ValueError
        When the tilts cannot determine the requested unknowns.
    """
    apparent = np.asarray(apparent, float).reshape(-1, 3)
    A, names = apparent_design_matrix(tilts, order)
    if A.shape[0] != 3 * len(apparent):
        raise ValueError(f"{len(apparent)} fitted images but {A.shape[0] // 3} tilts: give one tilt per image")
    y = apparent.ravel()
    w = np.ones(len(apparent)) if weights is None else np.asarray(weights, float)
    W = np.repeat(np.sqrt(np.clip(w, 1e-6, None)), 3)
    Aw, yw = A * W[:, None], y * W
    rank = np.linalg.matrix_rank(Aw, tol=1e-8 * np.abs(Aw).max())
    if rank < A.shape[1]:
        need = {1: "one untilted image", 2: "an untilted image and a ring of at least 3 tilts",
                3: "an untilted image and two rings of tilts of different magnitude (at least 8 tilts)"}[order]  # fmt: skip
        raise ValueError(
            f"{len(apparent)} images at these tilts cannot determine the {A.shape[1]} unknowns of order {order} "
            f"(rank {rank}); order {order} needs {need}. Add tilts or ask for a lower order."
        )
    x, *_ = np.linalg.lstsq(Aw, yw, rcond=None)
    resid = yw - Aw @ x
    dof = A.shape[0] - A.shape[1]
    s2 = float(resid @ resid) / dof if dof > 0 else float("nan")  # no redundancy: no error estimate
    cov = s2 * np.linalg.inv(Aw.T @ Aw)
    return _to_polar(x, cov, names)


def _best_signs(apparent: np.ndarray, A: np.ndarray, weights: np.ndarray):
    """Per-image signs of χ that make the tableau consistent (smallest least-squares residual)."""
    n = len(apparent)
    W = np.repeat(np.sqrt(weights), 3)
    Aw = A * W[:, None]
    proj = np.eye(len(W)) - Aw @ np.linalg.pinv(Aw)
    if n > 16:  # greedy flips for large tableaus
        signs = np.ones(n)
        for _ in range(3):
            for i in range(1, n):
                best = None
                for s in (1.0, -1.0):
                    signs[i] = s
                    r = proj @ (np.repeat(signs, 3) * apparent.ravel() * W)
                    if best is None or r @ r < best[0]:
                        best = (r @ r, s)
                signs[i] = best[1]
        return signs
    patterns = np.array(list(itertools.product((1.0, -1.0), repeat=n - 1)))
    patterns = np.hstack([np.ones((len(patterns), 1)), patterns])
    y = np.repeat(patterns, 3, axis=1) * (apparent.ravel() * W)[None, :]
    r = y @ proj.T
    return patterns[np.argmin(np.einsum("ij,ij->i", r, r))]


def measure_aberrations(
    tableau,
    tilts,
    energy: float = 80e3,
    sampling: float | None = None,
    order: int = 3,
    defocus_offset: float = 0.0,
    defocus_sign: int | str | None = None,
    iterations: int = 3,
    amplitude_contrast: float = 0.07,
    return_fits: bool = False,
):
    """Measure the aberrations from a Zemlin tableau.

    Parameters
    ----------
    tableau : (n, ny, nx) ndarray or Signal2D stack
        Bright-field images of a thin amorphous film, one per tilt.
    tilts : (n, 2) array_like
        Beam tilt ``(tx, ty)`` of every image [mrad]: the incident wave is
        ``exp(2πi (tx x + ty y) / λ)``, x along columns, y along rows.
    energy : float
        Beam energy [eV].
    sampling : float
        Pixel size [Å]; read from a Signal2D's axes when not given.
    order : {1, 2, 3}
        Highest aberration order solved for.
    defocus_offset : float
        A defocus deliberately added to record the tableau, as a C10 [Å]; it is
        subtracted from the measured C10.
    defocus_sign : {-1, +1, "amplitude"}, optional
        Sign of the C10 at which the tableau was recorded (-1: underfocus, the
        default assumption, as tableaus are usually recorded). ``"amplitude"``
        takes it from the film's amplitude contrast instead (the fitted ψ must
        be clearly positive for a real film; needs a good fit and a film with absorption).
    iterations : int
        Rounds of (fit all diffractograms with the current C30) → solve.
    amplitude_contrast : float
        Absorption-to-phase ratio of the film assumed by the ring model (a-C: 0.07).
    return_fits : bool
        Also return the per-image fits.

    Returns
    -------
    aberrations : dict
        Polar coefficients (abTEM names) [Å, rad] up to ``order``.
    uncertainties : dict
        One-sigma uncertainties [Å, rad].
    fits : list of DiffractogramFit
        Only with ``return_fits=True``.
    """
    stack, sampling = _as_stack(tableau, sampling)
    tilts = np.asarray(tilts, dtype=float)
    if tilts.ndim != 2 or tilts.shape[1] != 2:
        raise ValueError(f"tilts must be an (n, 2) array of (tx, ty) in mrad, got shape {tilts.shape}")
    if len(tilts) != len(stack):
        raise ValueError(f"the tableau has {len(stack)} images but {len(tilts)} tilts were given: one tilt per image")
    if not np.all(np.isfinite(tilts)):
        raise ValueError("tilts contain NaN or inf")
    if np.abs(tilts).max() > 200:
        raise ValueError("tilts look too large for mrad (> 200 mrad); give tilts in mrad")
    A, names = apparent_design_matrix(tilts, order)
    if np.linalg.matrix_rank(A) < A.shape[1]:
        solve_aberrations(np.zeros((len(tilts), 3)), tilts, order)  # raises the explanatory error
    C30 = None  # first round: every diffractogram fits its own k^4 term
    iterations = max(1, iterations)
    for it in range(iterations):
        w_amp = None if defocus_sign == "amplitude" else amplitude_contrast
        fits = [fit_diffractogram(img, energy, sampling, C30=C30, amplitude_contrast=w_amp) for img in stack]
        apparent = np.array([[f.C1, f.a, f.b] for f in fits])
        weights = np.array([max(f.quality, 0.05) for f in fits])
        signs = _best_signs(apparent, A, weights)
        fits = [f if s > 0 else f.flipped() for f, s in zip(fits, signs)]
        # the amplitude-contrast phase is trusted only once the ring model holds C30
        sign = _global_sign(fits, tilts, defocus_sign, use_psi=(it == iterations - 1 and it > 0))
        fits = [f if sign > 0 else f.flipped() for f in fits]
        apparent = np.array([[f.C1, f.a, f.b] for f in fits])
        quality = np.array([f.quality for f in fits])
        # solve on the images whose rings fit well (when they determine the unknowns) ...
        good = quality >= 0.6 * quality.max()
        rows = np.repeat(good, 3)
        if np.linalg.matrix_rank(A[rows]) == A.shape[1]:
            ab, unc = solve_aberrations(apparent[good], tilts[good], order, weights[good])
        else:
            ab, unc = solve_aberrations(apparent, tilts, order, weights)
        # ... then refit the others from the tableau's consensus, and solve with all
        predicted = A @ _to_cartesian(ab, names)
        redo = np.nonzero(quality < 0.8 * np.median(quality[good]))[0]
        if len(redo):
            c30 = ab.get("C30", 0.0) if order >= 3 else 0.0
            for i in redo:
                refit = fit_diffractogram(stack[i], energy, sampling, C30=c30, initial=predicted[3 * i : 3 * i + 3],
                                          amplitude_contrast=w_amp)
                if refit.quality > fits[i].quality:
                    fits[i] = refit
        apparent = np.array([[f.C1, f.a, f.b] for f in fits])
        weights = np.array([max(f.quality, 0.05) for f in fits])
        ab, unc = solve_aberrations(apparent, tilts, order, weights)
        if order < 3:
            break
        C30 = ab.get("C30", 0.0)
    ab["C10"] = ab["C10"] - defocus_offset
    return (ab, unc, fits) if return_fits else (ab, unc)


def _global_sign(fits, tilts, defocus_sign, use_psi=True):
    """+1 keeps the fits' signs, -1 flips all of them (the axial image's C10 gets the wanted sign)."""
    axial = int(np.argmin(np.hypot(tilts[:, 0], tilts[:, 1])))
    if defocus_sign is None:
        defocus_sign = -1
    if defocus_sign == "amplitude":
        psi = np.array([f.psi for f in fits])
        median = float(np.median(psi))
        agree = float(np.mean(np.sign(psi) == np.sign(median)))
        if use_psi and abs(median) > 0.03 and agree >= 0.8:
            return 1 if median > 0 else -1
        defocus_sign = -1
    if defocus_sign not in (-1, 1):
        raise ValueError("defocus_sign must be -1 (underfocus, C10 < 0), +1 (overfocus) or 'amplitude'")
    return 1 if fits[axial].C1 == 0 or np.sign(fits[axial].C1) == defocus_sign else -1


def _as_stack(tableau, sampling):
    try:
        from hyperspy.signals import BaseSignal
    except ImportError:  # pragma: no cover
        BaseSignal = ()
    if isinstance(tableau, BaseSignal):
        axes = tableau.axes_manager.signal_axes
        if sampling is None:
            scale = axes[0].scale
            units = str(axes[0].units)
            factor = {"nm": 10.0, "Å": 1.0, "A": 1.0, "pm": 0.01, "angstrom": 1.0}.get(units)
            if factor is None:
                raise ValueError(f"the tableau's axes are in {units!r}; give sampling= in Å")
            sampling = scale * factor
        tableau = np.asarray(tableau.data)
    stack = np.asarray(tableau)
    if stack.ndim != 3:
        raise ValueError(f"a tableau is a stack of 2-D images (n, ny, nx), got an array of shape {stack.shape}")
    if not np.issubdtype(stack.dtype, np.number):
        raise TypeError(f"the tableau must be numeric, got {stack.dtype}")
    if not np.all(np.isfinite(stack)):
        raise ValueError("the tableau contains NaN or inf: replace the bad pixels first")
    if min(stack.shape[1:]) < 64:
        raise ValueError(f"tableau images of {stack.shape[1:]} px are too small to show Thon rings (need >= 64 px)")
    if sampling is None or not np.isfinite(sampling) or sampling <= 0:
        raise ValueError("give the pixel size: sampling=<Å per pixel>")
    return stack.astype(float), float(sampling)



# ------------------------------------------------------------------ evaluation aids
#: Limits of a tuned aberration-corrected 80 kV instrument used for random test sets [Å]:
#: |C1| <= 20 nm, |A1| <= 20 nm, |B2| <= 200 nm, |A2| <= 200 nm, |C3| <= 5 µm.
CORRECTED_LIMITS = {"C10": 200.0, "C12": 200.0, "C21": 2000.0, "C23": 2000.0, "C30": 5e4}


def random_aberrations(rng, limits: dict | None = None) -> dict:
    """Random aberrations within ``limits`` (default :data:`CORRECTED_LIMITS`) [Å, rad].

    Round aberrations are uniform in ±limit; the others are uniform over the
    disc of radius limit in the complex plane (random magnitude and angle).
    """
    rng = np.random.default_rng(rng)
    limits = dict(CORRECTED_LIMITS if limits is None else limits)
    ab = {}
    for symbol, limit in limits.items():
        n, m = int(symbol[1]), int(symbol[2])
        if m == 0:
            ab[symbol] = float(rng.uniform(-limit, limit))
        else:
            ab[symbol] = float(limit * math.sqrt(rng.uniform()))
            ab[f"phi{n}{m}"] = float(rng.uniform(-math.pi, math.pi) / m)
    return ab


def aberration_error(true: dict, measured: dict, symbol: str) -> float:
    """Size of the difference between two values of one aberration [Å].

    For an aberration with an angle the difference of the complex values
    ``C exp(i m phi)`` is used, so that magnitude and angle errors both count.
    """
    n, m = int(symbol[1]), int(symbol[2])
    if m == 0:
        return abs(measured.get(symbol, 0.0) - true.get(symbol, 0.0))
    angle = f"phi{n}{m}"
    z_true = true.get(symbol, 0.0) * np.exp(1j * m * true.get(angle, 0.0))
    z_meas = measured.get(symbol, 0.0) * np.exp(1j * m * measured.get(angle, 0.0))
    return float(abs(z_meas - z_true))
