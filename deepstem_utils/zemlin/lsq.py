r"""The least-squares solve over the tilts of a Zemlin tableau: the design matrix and a generalised solve.

Every image of a tableau gives an apparent defocus :math:`C_1'` and two-fold
astigmatism :math:`(a, b)`, linear in the axial coefficients through the
Hessian of χ at the tilt τ (:func:`apparent_design_matrix`):

.. math::

    \Delta_e(\mathbf{k}) = \tfrac12\left[\chi(\boldsymbol\tau + \lambda\mathbf{k})
        + \chi(\boldsymbol\tau - \lambda\mathbf{k}) - 2\chi(\boldsymbol\tau)\right]
    \approx \pi\lambda k^2\left[C_1' + C_{12}'\cos 2(\phi - \phi_{12}')\right]
        + \tfrac{\pi}{2}\lambda^3 C_{30} k^4 .

:func:`solve_linear` inverts it by generalised least squares, each image
weighted by the covariance of its own ring fit, with an extra scatter per
image (a random-effects model) when the images disagree more than their fits
say. Conventions: :mod:`deepstem_utils.physics.optics` (abTEM's polar names,
``C10`` = -defocus); the tilt τ = (tx, ty) [mrad] is the direction of the
incident beam, ``exp(2πi(tx x + ty y)/λ)``, x along columns.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..physics.optics import validate_aberrations

__all__ = ["apparent_design_matrix", "apparent_aberrations", "to_cartesian", "to_polar", "LinearSolution",
           "solve_linear", "solve_with_floor", "solve_aberrations", "consistent_signs"]

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
        for col, (symbol, n, m, part) in enumerate(names):
            cos_part, sin_part = _hessian_of_term(tau, n, m)
            A[3 * i : 3 * i + 3, col] = cos_part if part == "cos" else sin_part
    return A, names


def apparent_aberrations(aberrations: dict, tilts) -> np.ndarray:
    """Apparent (C1', a, b) [Å] at each tilt [mrad] for given axial aberrations (up to third order)."""
    ab = validate_aberrations(aberrations)
    A, names = apparent_design_matrix(tilts, order=3)
    return (A @ to_cartesian(ab, names)).reshape(-1, 3)


def to_cartesian(ab: dict, names) -> np.ndarray:
    """Cartesian coefficients (the columns of :func:`apparent_design_matrix`) of polar aberrations."""
    x = []
    for symbol, n, m, part in names:
        c = ab.get(symbol, 0.0)
        angle = ab.get(f"phi{n}{m}", 0.0) if m else 0.0
        x.append(c * (math.cos(m * angle) if part == "cos" else math.sin(m * angle)))
    return np.array(x)


def to_polar(x: np.ndarray, cov: np.ndarray, names):
    """Polar coefficients and one-sigma uncertainties [Å, rad] from Cartesian ones and their covariance."""
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
            s_phi = math.sqrt(max(et @ sub @ et, 0.0)) / (m * c)
        else:
            s_r = math.sqrt(max(np.trace(sub) / 2, 0.0))
            s_phi = math.pi / m
        ab[symbol], ab[f"phi{n}{m}"] = float(c), float(ang)
        unc[symbol], unc[f"phi{n}{m}"] = float(s_r), float(min(s_phi, math.pi / m))
        i += 2
    return ab, unc


@dataclass
class LinearSolution:
    """Cartesian coefficients ``x`` [Å], their covariance, the names of the columns and the fit statistics.

    ``image_chi2`` holds each image's share of the weighted residual (about 3 each when the covariances are
    right); ``floor`` [Å²] is the extra variance per apparent value that made chi² = dof (0 when the ring
    fits' covariances already explained the scatter).
    """

    x: np.ndarray
    cov: np.ndarray
    names: list
    chi2: float
    dof: int
    image_chi2: np.ndarray
    floor: float = 0.0

    @property
    def birge(self) -> float:
        return self.chi2 / self.dof if self.dof > 0 else 1.0


def solve_linear(apparent: np.ndarray, tilts, order: int = 3, covariances=None, weights=None) -> LinearSolution:
    """Generalised least squares for the axial aberrations from apparent (C1', a, b) per tilt.

    Parameters
    ----------
    apparent : (n, 3) ndarray
        Apparent C1', a = C12' cos 2φ12', b = C12' sin 2φ12' per image [Å].
    tilts : (n, 2) array_like
        Beam tilts [mrad].
    order : {1, 2, 3}
        Highest order solved for (see :func:`apparent_design_matrix`).
    covariances : (n, 3, 3) array_like, optional
        Covariance of every image's (C1', a, b) [Å²]. When the images scatter more than these say
        (chi² > dof), an extra variance, the same for every apparent value, is added until chi² = dof (a
        random-effects model); without redundancy they are used as they are.
    weights : (n,) array_like, optional
        Without covariances: relative weight of each image; the covariance then comes from the residuals alone.

    Raises
    ------
    ValueError
        When the tilts cannot determine the requested unknowns, or (without covariances) when no
        redundancy is left to estimate the uncertainties.
    """
    apparent = np.asarray(apparent, float).reshape(-1, 3)
    A, names = apparent_design_matrix(tilts, order)
    n = len(apparent)
    if A.shape[0] != 3 * n:
        raise ValueError(f"{n} fitted images but {A.shape[0] // 3} tilts: give one tilt per image")
    if covariances is None:
        w = np.ones(n) if weights is None else np.clip(np.asarray(weights, float), 1e-6, None)
        covs = np.eye(3)[None] / w[:, None, None]
    else:
        covs = np.asarray(covariances, float).reshape(n, 3, 3)
    sol = solve_with_floor(A, apparent, covs, 0.0, names)
    p = A.shape[1]
    if sol is None:
        rank = np.linalg.matrix_rank(A, tol=1e-8 * np.abs(A).max()) if np.any(A) else 0
        need = {1: "one image", 2: "at least 4 images at tilts in more than one direction (a ring of 3 tilts and an "
                "untilted image)", 3: "at least 4 images at tilts around a ring (an untilted image and a ring of 6 "
                "tilts; a second ring of another magnitude makes C30 and C32 far more precise)"}[order]  # fmt: skip
        raise ValueError(
            f"{n} images at these tilts cannot determine the {p} unknowns of order {order} "
            f"(rank {rank}); order {order} needs {need}. Add tilts or ask for a lower order."
        )
    if covariances is None:
        if sol.dof <= 0:
            raise ValueError(f"{n} images determine the {p} unknowns exactly: no redundancy is left to "
                             "estimate their uncertainties; give the covariances of the ring fits or add tilts")
        sol.cov = sol.cov * sol.chi2 / sol.dof
    elif sol.dof > 0 and sol.chi2 > sol.dof:
        # the images scatter more than their fits say: an extra error s² per apparent value (the same for
        # every image, from chi² = dof) accounts for what the ring fits cannot see
        lo, hi = 0.0, float(np.max(np.abs(apparent))) ** 2 + 1.0
        for _ in range(40):
            mid = math.sqrt(lo * hi) if lo > 0 else hi * 1e-6
            lo, hi = (mid, hi) if solve_with_floor(A, apparent, covs, mid, names).chi2 > sol.dof else (lo, mid)
        sol = solve_with_floor(A, apparent, covs, hi, names)
    return sol


def solve_with_floor(A, apparent, covs, floor, names):
    """Generalised least squares with covariances ``covs`` + ``floor``·1 per image [Å²]; None when rank-deficient.

    Parameters
    ----------
    A : (3n, p) ndarray
        Design matrix (:func:`apparent_design_matrix`).
    apparent : (n, 3) ndarray
        Apparent (C1', a, b) per image [Å].
    covs : (n, 3, 3) ndarray
        Their covariances [Å²].
    floor : float
        Extra variance added to every apparent value [Å²].
    names : list
        Column names of ``A``.

    Returns
    -------
    LinearSolution or None
    """
    n = len(apparent)
    if n == 0:
        return None
    whiten = np.linalg.inv(np.linalg.cholesky(covs + floor * np.eye(3)[None]))  # W Σ Wᵀ = 1
    Aw = np.einsum("nij,njp->nip", whiten, A.reshape(n, 3, -1)).reshape(3 * n, -1)
    yw = np.einsum("nij,nj->ni", whiten, apparent).ravel()
    if not np.any(Aw) or np.linalg.matrix_rank(Aw, tol=1e-8 * np.abs(Aw).max()) < A.shape[1]:
        return None
    x, *_ = np.linalg.lstsq(Aw, yw, rcond=None)
    resid = yw - Aw @ x
    sol = LinearSolution(x, np.linalg.inv(Aw.T @ Aw), names, float(resid @ resid), A.shape[0] - A.shape[1],
                         (resid.reshape(n, 3) ** 2).sum(1))
    sol.floor = float(floor)
    return sol


def solve_aberrations(apparent: np.ndarray, tilts, order: int = 3, weights=None, covariances=None):
    """Least-squares solve for the axial aberrations from apparent (C1', a, b) per tilt.

    Parameters
    ----------
    apparent, tilts, order, weights, covariances :
        As in :func:`solve_linear`.

    Returns
    -------
    aberrations : dict
        Polar coefficients [Å, rad].
    uncertainties : dict
        One-sigma uncertainties [Å, rad].
    """
    sol = solve_linear(apparent, tilts, order, covariances=covariances, weights=weights)
    return to_polar(sol.x, sol.cov, sol.names)


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
