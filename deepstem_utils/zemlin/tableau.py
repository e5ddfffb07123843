"""A simulated Zemlin tableau: bright-field images of thin amorphous carbon under tilted illumination.

Each image is the film's exit wave seen through the objective lens with the
aberration phase evaluated around the tilted beam, χ(τ + λq) − χ(τ), with
partial temporal (focal spread) and spatial (illumination angles) coherence
as incoherent sums, and Poisson noise. Conventions: :mod:`..physics.optics`
(abTEM's polar names, ``C10`` = -defocus); the tilt τ = (tx, ty) [mrad] is the
direction of the incident beam, ``exp(2πi(tx x + ty y)/λ)``, x along columns.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import fft as sp_fft
from scipy.spatial import cKDTree

from ..physics.optics import aberration_phase, interaction_parameter, validate_aberrations, wavelength
from ..physics.probe import focal_nodes_for_phase

__all__ = ["tableau_tilts", "amorphous_carbon", "simulate_tableau"]


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
    quadrature: tuple[int | None, int] = (None, 7),
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
    quadrature : (int or None, int)
        Points for the focal-spread (Gauss-Hermite) and angular-spread integration. ``None`` for the
        focal spread (the default) takes, tilt by tilt, as many as the phase that one σ of defocus adds to
        the simulated beams needs, and simulates the film's spectrum up to where the spread damps the rings
        below 1e-3. A number takes exactly that many over the whole anti-aliased band, as the package did
        up to version bb6742a (always): few points leave Thon rings where the focal spread erases them (at
        50 Å, rings to 1.5 1/Å instead of about 0.7), images richer than a real tableau. Tests and the
        previous benchmark's tableaux use such numbers; for physics, keep ``None``.

    Returns
    -------
    (n, ny, nx) ndarray
        Counts per pixel.

    Notes
    -----
    For every tilt the image wave is the film's exit wave with the aberration
    phase evaluated around the tilted beam, χ(τ + λq) − χ(τ); partial coherence
    is an incoherent sum over defocus and illumination angle. With a focal
    spread (and ``quadrature[0]`` None), the film's spectrum is simulated up to
    where the spread damps the untilted image's rings below 1e-3: beyond, the
    images carry no rings, and the faint dark-field background that pairs of
    higher frequencies would add is left out (an approximation).
    """
    ab = validate_aberrations(aberrations)
    tilts = np.asarray(tilts, float).reshape(-1, 2) * 1e-3
    rng = np.random.default_rng(rng)
    lam = wavelength(energy)
    if specimen is None:
        specimen = amorphous_carbon(shape, sampling, energy, rng=rng)
    ny, nx = specimen.shape
    wave = np.exp((1j - amplitude_contrast) * (specimen - specimen.mean()))
    ky, kx = np.meshgrid(np.fft.fftfreq(ny, sampling), np.fft.fftfreq(nx, sampling), indexing="ij")
    k_band = (2 / 3) * 0.5 / sampling  # anti-aliasing for |psi|^2
    adaptive = quadrature[0] is None
    if focal_spread > 0 and adaptive:  # beyond, the focal spread damps the rings below 1e-3
        k_band = min(k_band, math.sqrt(_OMEGA_BAND / (math.pi * lam * focal_spread)))
    # the phases are evaluated only where the film's spectrum is simulated (the band; often a few per cent of the
    # pixels), and the inverse FFTs run in single precision on every core: the same images, several times faster
    band = np.flatnonzero(np.hypot(kx, ky).ravel() < k_band)
    spectrum = np.fft.fft2(wave).ravel()[band]
    kxb, kyb = kx.ravel()[band], ky.ravel()[band]
    da, wa = _angular_points(quadrature[1]) if angular_spread > 0 else (np.zeros((1, 2)), np.ones(1))
    images = np.empty((len(tilts), ny, nx))
    buffer = np.zeros(ny * nx, np.complex64)
    for i, tau in enumerate(tilts):
        image = np.zeros((ny, nx))
        df, wf = _focal_points(focal_spread, quadrature[0], lam, k_band, math.hypot(*tau) + 3 * angular_spread * 1e-3)
        for (dax, day), w_a in zip(da * angular_spread * 1e-3, wa):
            tx, ty = tau[0] + dax, tau[1] + day
            ax, ay = tx + lam * kxb, ty + lam * kyb
            alpha2 = ax**2 + ay**2
            chi = aberration_phase(np.sqrt(alpha2), np.arctan2(ay, ax), lam, ab)
            chi -= aberration_phase(np.array(math.hypot(tx, ty)), np.array(math.atan2(ty, tx)), lam, ab)
            chi_df = np.pi / lam * (alpha2 - (tx**2 + ty**2))  # d chi / d C10
            at_focus = spectrum * np.exp(-1j * chi)
            for d, w_f in zip(df, wf):
                buffer[band] = at_focus * np.exp(-1j * d * chi_df)
                psi = sp_fft.ifft2(buffer.reshape(ny, nx), workers=-1)
                image += w_a * w_f * (psi.real.astype(float) ** 2 + psi.imag.astype(float) ** 2)
        images[i] = image
    if np.isfinite(dose):
        images = rng.poisson(images * dose * sampling**2).astype(float)
    return images


#: The simulated band ends where one σ of focal spread adds this phase to the untilted beam's rings
#: (their contrast exp(-ω²/2) is then 1e-3).
_OMEGA_BAND = 3.7


def _focal_points(focal_spread: float, count: int | None, lam: float, k_band: float, tilt: float):
    """Gauss-Hermite defocus offsets [Å] and weights for a Gaussian focal spread.

    ``count`` None: enough for every beam. A beam k of a tilted wave gains the phase ω = π σ (λk² + 2 τ·k)
    per σ of defocus; :func:`deepstem_utils.physics.probe.focal_nodes_for_phase` for the largest ω in the
    band. Too few nodes leave rings where the spread erases them.
    """
    if focal_spread <= 0:
        return np.zeros(1), np.ones(1)
    return focal_nodes_for_phase(focal_spread, math.pi * focal_spread * (lam * k_band**2 + 2 * tilt * k_band), count)


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
