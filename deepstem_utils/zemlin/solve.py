"""Aberrations from a Zemlin tableau: the least-squares solve over the tilts, and `measure_aberrations`.

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
:mod:`deepstem_utils.physics.optics` (abTEM's polar names, ``C10`` = -defocus); the
tilt τ = (tx, ty) is the direction of the incident beam, ``exp(2πi(tx x + ty y)/λ)``.

Diffractograms are even in χ: a tableau of a pure phase object cannot tell
the global sign of χ. The sign is fixed by the prior that the tableau was
recorded in underfocus (``C10 < 0``), as is usual; override it with
``defocus_sign`` (+1, or ``"amplitude"`` to read it from the film's amplitude contrast).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from ..core.signals import to_angstrom_factor, unwrap
from ..physics.optics import validate_aberrations
from .diffractogram import fit_diffractogram

__all__ = ["apparent_design_matrix", "consistent_signs", "apparent_aberrations", "solve_aberrations", "measure_aberrations",
           "random_aberrations", "aberration_error", "CORRECTED_LIMITS"]

#: Unknowns of the solve, by order: (symbol, n, m).
_TERMS = {
    1: [("C10", 1, 0), ("C12", 1, 2)],
    2: [("C21", 2, 1), ("C23", 2, 3)],
    3: [("C30", 3, 0), ("C32", 3, 2), ("C34", 3, 4)],
}


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
    ab = validate_aberrations(aberrations)
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


def consistent_signs(apparent: np.ndarray, A: np.ndarray, weights: np.ndarray):
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
        signs = consistent_signs(apparent, A, weights)
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
    if hasattr(tableau, "axes_manager") and sampling is None:
        units = str(tableau.axes_manager.signal_axes[0].units)
        if to_angstrom_factor(units) is None:
            raise ValueError(f"the tableau's axes are in {units!r}; give sampling= in Å")
    calibrated = unwrap(tableau, sampling)
    stack, sampling = calibrated.data, calibrated.sampling
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
