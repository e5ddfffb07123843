r"""Thon rings in polar coordinates: the fit of one image's ring phase.

With the background removed in the log of the power (:mod:`.polar`), each bin holds

.. math::

    d \approx \log(1 - m\cos\Phi) - \langle\cdot\rangle, \qquad
    \Phi = 2\Delta_e - 2\psi, \qquad
    \Delta_e = \pi\lambda u\,[C_1 + a\cos 2\phi + b \sin 2\phi] + \tfrac{\pi}{2}\lambda^3 C_{30} u^2,

with ``u = k²``. The phase is *linear* in θ = (C1, a, b, C30), so the fit is a small Levenberg-Marquardt
problem. This module finds the ring scale per sector with a matched filter and combines the sectors by a
Hough transform into start values (C1, a, b) (:func:`search_rings`), then refines θ, widening the
frequency range step by step (continuation) and leaving out every bin whose rings are finer than 2.5
spectrum pixels (they alias) (:func:`refine_rings`). The covariance of θ comes from the Jacobian and the
residual.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .polar import MAX_BOX, PolarSpectrum, contrast, log_power, normalised

__all__ = ["RingResult", "ring_template", "local_defocus", "resolved", "search_rings", "refine_rings", "fit_rings",
           "MIN_PIXELS_PER_RING"]

#: Rings finer than this many spectrum pixels per period are left out of the fit (they alias into moiré).
MIN_PIXELS_PER_RING = 2.5


def ring_template(m, phase, mean=None):
    """log(1 - m cos Φ) minus its mean over a period, and its derivative with respect to Φ.

    ``mean`` (the mean over a period, log((1 + sqrt(1 - m²)) / 2)) may be given to save its computation.
    """
    mc = m * np.cos(phase)
    mean = np.log(0.5 * (1 + np.sqrt(1 - m**2))) if mean is None else mean
    return np.log1p(-mc) - mean, m * np.sin(phase) / (1 - mc)


# ----------------------------------------------------------------------------- the ring phase
def _phase_basis(spec: PolarSpectrum, lam: float):
    """∂Δ/∂(C1, a, b, C30) per bin."""
    u = spec.u
    g = np.pi * lam * u
    return np.stack([g, g * spec.cos2, g * spec.sin2, 0.5 * np.pi * lam**3 * u**2])


def local_defocus(spec: PolarSpectrum, lam: float, theta) -> np.ndarray:
    """C1 + a cos 2φ + b sin 2φ + λ² u C30 per bin [Å]: the defocus the local ring period shows."""
    c1, a, b, c30 = theta
    return c1 + a * spec.cos2 + b * spec.sin2 + lam**2 * spec.u * c30


def resolved(spec: PolarSpectrum, lam: float, theta) -> np.ndarray:
    """Bins whose rings have at least MIN_PIXELS_PER_RING spectrum pixels per period (radially and azimuthally)."""
    c1, a, b, _ = theta
    k = np.sqrt(spec.u)
    radial = 2 * lam * k * np.abs(local_defocus(spec, lam, theta))  # d(2Δ/2π)/dk
    tangential = 2 * lam * k * np.abs(b * spec.cos2 - a * spec.sin2)
    return np.hypot(radial, tangential) * spec.k_step < 1.0 / MIN_PIXELS_PER_RING


@dataclass
class RingResult:
    """A ring fit: θ = (C1, a, b, C30) [Å], ψ [rad], covariance of the fitted parameters and diagnostics."""

    theta: np.ndarray
    psi: float
    covariance: np.ndarray  # over (C1, a, b[, C30][, psi]) as fitted
    free: tuple
    cost: float
    snr: float
    correlation: float
    u_max: float
    bins: int


def refine_rings(spec: PolarSpectrum, lam: float, theta, psi: float = 0.07, fit_c30: bool = False,
                 fit_psi: bool = False, c30_prior: tuple[float, float] | None = None, u_max: float | None = None,
                 widen: bool = True, iterations: int = 6, settle: bool = True, separable: bool = False) -> RingResult:
    """Levenberg-Marquardt refinement of the ring phase, widening the u range from ``u_max`` step by step.

    Parameters
    ----------
    spec : PolarSpectrum
    lam : float
        Wavelength [Å].
    theta : (4,) array_like
        Start (C1, a, b, C30) [Å].
    psi : float
        Amplitude-contrast phase [rad] (the start value when ``fit_psi``).
    fit_c30, fit_psi : bool
        Fit the k⁴ term and ψ as well.
    c30_prior : (float, float), optional
        Gaussian prior (mean, σ) [Å] on C30 when it is fitted.
    u_max : float, optional
        Upper end of the first u range [1/Å²]; the whole binned range by default.
    widen : bool
        Widen the range by steps of 1.6 while the added frequencies still carry rings.
    iterations : int
        Iterations per range.
    settle : bool
        Refit once more with B and m recomputed from the final estimate.
    separable : bool
        Leave out the bins whose local ring period (from ``theta``) is longer than the widest background box
        (where astigmatism brings the local defocus near zero): there the rings cannot be told from the
        background. Only for a start known to be close (the mask follows the estimate).

    Returns
    -------
    RingResult
    """
    theta = np.array(theta, float)
    free = [0, 1, 2] + ([3] if fit_c30 else [])
    prior = c30_prior if (fit_c30 and c30_prior is not None) else None
    u_end = spec.k_edges[-1] ** 2
    u_top = u_end if u_max is None else min(u_max, u_end)
    state = _FitState(spec, lam, theta, psi, u_top, separable)
    while True:
        theta, psi = _levenberg_marquardt(state, theta, psi, free, fit_psi, prior, iterations)
        if not widen or u_top >= u_end:
            break
        wider = _FitState(spec, lam, theta, psi, min(u_top * 2.0, u_end), separable)
        if wider.snr(theta, psi, above=u_top) < 3.0:
            break  # the added frequencies carry no rings that match: the information limit is reached
        state, u_top = wider, wider.u_top
    if settle:
        state = _FitState(spec, lam, theta, psi, u_top, separable)  # B and m from the final estimate
        theta, psi = _levenberg_marquardt(state, theta, psi, free, fit_psi, prior, iterations)
    return _finish(state, theta, psi, free, fit_psi, prior)


class _FitState:
    """The bins used up to ``u_top`` (flattened): data, weights, contrast and phase basis.

    B and m come from the estimate ``theta`` (the box widths follow its local ring period) and stay fixed
    during the iterations.
    """

    def __init__(self, spec, lam, theta, psi, u_top, separable=False):
        # the box filters need data half a box beyond the fitted range
        head = spec.head(u_top + MAX_BOX)
        period = 1.0 / (lam * np.maximum(np.abs(local_defocus(head, lam, theta)), 1.0))
        d = normalised(head, period)
        m = contrast(head, d, period)  # the fit's template: robust to a start off in phase
        # what the data hold in phase with the estimate: the fit's precision is computed with it
        m_in_phase = contrast(head, d, period, 2 * np.tensordot(theta, _phase_basis(head, lam), axes=1) - 2 * psi)
        w = log_power(head)[1]
        use = (w > 0) & (head.u <= u_top) & resolved(head, lam, theta)
        if separable:
            use &= np.abs(local_defocus(head, lam, theta)) * lam * MAX_BOX >= 1.0
        self.d, self.m, self.w, self.u, self.m_in_phase = d[use], m[use], w[use], head.u[use], m_in_phase[use]
        self.mean = np.log(0.5 * (1 + np.sqrt(1 - self.m**2)))
        self.sw = np.sqrt(self.w)
        self.basis = _phase_basis(head, lam)[:, use]
        self.u_top = u_top

    def snr(self, theta, psi, above: float = 0.0) -> float:
        """Matched-filter signal-to-noise ratio of the ring model in the bins above ``above`` [1/Å²]."""
        phase = 2 * (theta @ self.basis) - 2 * psi
        template, _ = ring_template(self.m, phase, self.mean)
        use = self.u > above
        norm = math.sqrt(float(np.sum(self.w[use] * template[use] ** 2)))
        return float(np.sum(self.w[use] * self.d[use] * template[use])) / norm if norm > 0 else 0.0


def _evaluate(state, theta, psi):
    """Residual, and -d(residual)/dΔ per bin (BLAS-free: tiny products do not wait for BLAS threads)."""
    phase = 2 * np.einsum("i,ij->j", theta, state.basis) - 2 * psi
    model, slope = ring_template(state.m, phase, state.mean)
    return state.sw * (state.d - model), state.sw * 2 * slope, model


def _cost(state, theta, psi, prior):
    phase = 2 * np.einsum("i,ij->j", theta, state.basis) - 2 * psi
    r = state.sw * (state.d - np.log1p(-state.m * np.cos(phase)) + state.mean)
    c = float(np.einsum("i,i->", r, r))
    return c + (((theta[3] - prior[0]) / prior[1]) ** 2 if prior is not None else 0.0)


def _jacobian(state, ds, free, fit_psi):
    cols = [-(ds * state.basis[p]) for p in free]
    if fit_psi:
        cols.append(ds)
    return np.stack(cols, axis=1)


def _levenberg_marquardt(state, theta, psi, free, fit_psi, prior, iterations):
    current = _cost(state, theta, psi, prior)
    mu = 1e-3
    for _ in range(iterations):
        r, ds, _ = _evaluate(state, theta, psi)
        J = _jacobian(state, ds, free, fit_psi)
        H = np.einsum("ni,nj->ij", J, J)
        g = np.einsum("ni,n->i", J, r)
        if prior is not None:
            i = free.index(3)
            H[i, i] += 1 / prior[1] ** 2
            g[i] += (theta[3] - prior[0]) / prior[1] ** 2
        scale = np.sqrt(np.maximum(np.diag(H), 1e-30))
        improved = False
        for _ in range(8):
            A = H / np.outer(scale, scale) + mu * np.eye(len(H))
            try:
                step = -np.linalg.solve(A, g / scale) / scale
            except np.linalg.LinAlgError:
                break
            trial_theta = theta.copy()
            trial_theta[free] += step[: len(free)]
            trial_psi = psi + (step[-1] if fit_psi else 0.0)
            new = _cost(state, trial_theta, trial_psi, prior)
            if new < current:
                theta, psi, current = trial_theta, trial_psi, new
                mu = max(mu / 5, 1e-7)
                improved = True
                break
            mu *= 8
        if not improved or np.all(np.abs(step[: len(free)]) < 0.02):
            break
    return theta, psi


def _finish(state, theta, psi, free, fit_psi, prior) -> RingResult:
    r, ds, template = _evaluate(state, theta, psi)
    J = _jacobian(state, ds, free, fit_psi)
    # the template's contrast m may exceed what the data hold in phase (noise where the rings have faded):
    # the estimate's covariance is the sandwich H_c⁻¹ (JᵀJ) H_c⁻ᵀ with the curvature H_c = Jᵀ J_c of the
    # in-phase contrast, not (JᵀJ)⁻¹, which would claim information the data do not have
    phase = 2 * (theta @ state.basis) - 2 * psi
    J_c = _jacobian(state, state.sw * 2 * ring_template(state.m_in_phase, phase)[1], free, fit_psi)
    B = np.einsum("ni,nj->ij", J, J)
    H = np.einsum("ni,nj->ij", J, J_c)
    if prior is not None:
        i = free.index(3)
        H[i, i] += 1 / prior[1] ** 2
        B[i, i] += 1 / prior[1] ** 2
    n_bins = len(r)
    dof = max(n_bins - H.shape[0], 1)
    chi2 = float(np.einsum("i,i->", r, r))
    s2 = max(chi2 / dof, 1.0)  # at least the counting noise
    try:
        h_inv = np.linalg.inv(H)
        cov = s2 * h_inv @ B @ h_inv.T
        cov = 0.5 * (cov + cov.T)
    except np.linalg.LinAlgError:
        cov = np.full(H.shape, np.inf)
    signal = float(np.sum(state.w * state.d * template))
    norm = math.sqrt(float(np.sum(state.w * template**2))) + 1e-300
    corr = signal / (norm * math.sqrt(float(np.sum(state.w * state.d**2))) + 1e-300)
    carrying = state.m > 0
    u_max = float(np.max(state.u[carrying])) if carrying.any() else 0.0
    return RingResult(theta, float(psi), cov, tuple(free) + (("psi",) if fit_psi else ()), chi2,
                      signal / norm, corr, u_max, n_bins)


# ----------------------------------------------------------------------------- search
def _ring_scores(spec: PolarSpectrum, lam: float, c_grid: np.ndarray, u_max: float, c30: float):
    """|matched filter|² over its noise, per sector and trial |C| [Å] (about 1 where no rings match)."""
    spec = spec.head(u_max + MAX_BOX)
    centre = 0.5 * (spec.k_edges[:-1] + spec.k_edges[1:])
    cols = np.nonzero(centre**2 <= u_max)[0]
    u = centre[cols] ** 2
    n = log_power(spec)[1][:, cols]
    scores = np.zeros((spec.power.shape[0], len(c_grid)))
    # the background box must be one ring period wide: a few classes of trial |C|, each with its own box
    for members in np.array_split(np.arange(len(c_grid)), 4):
        c = c_grid[members]
        period = np.full(spec.u.shape, 1.0 / (lam * c[0]))  # every trial's period fits in the box
        x = n * normalised(spec, period, passes=1)[:, cols]  # weight x data; its variance is the weight
        k_res = 1.0 / (MIN_PIXELS_PER_RING * 2 * lam * c * spec.k_step)  # finer rings alias: left out
        mask = (np.sqrt(u)[:, None] <= k_res[None, :]).astype(float)
        phase = 2 * np.pi * lam * u[:, None] * c[None, :] + np.pi * lam**3 * c30 * u[:, None] ** 2
        f2 = (x @ (np.cos(phase) * mask)) ** 2 + (x @ (np.sin(phase) * mask)) ** 2  # real BLAS products
        scores[:, members] = f2 / np.maximum(n @ mask, 1.0)
    return scores


def search_rings(spec: PolarSpectrum, lam: float, defocus_range=(100.0, 3000.0), u_max: float = 0.3,
                 c30: float = 0.0, max_astigmatism: float = 600.0, n_starts: int = 3):
    """Start values (C1, a, b) [Å] for the ring fit: a Hough transform of the per-sector ring scores.

    In each sector the matched filter scores every trial |C| (the rings are even in χ, so only |C| shows);
    the scores of all sectors are summed along every curve C(φ) = C1 + a cos 2φ + b sin 2φ of a grid, which
    finds the astigmatism even where the sectors change sign and where single sectors are too noisy.

    Returns
    -------
    starts : list of (float, float, float)
        Up to ``n_starts`` distinct local maxima, best first, with C1 <= 0.
    score : float
        The best curve's summed score over its noise (about 0 without rings).
    """
    step = 20.0
    c_max = defocus_range[1] + max_astigmatism
    c_grid = np.arange(step, c_max + step, step)
    raw = _ring_scores(spec, lam, c_grid, u_max, c30) - 1.0
    # rings longer than the widest background box, or with less than 1.5 periods in range, are not told
    # from the background
    c_min = max(defocus_range[0], 1.0 / (lam * MAX_BOX), 1.5 / (lam * u_max))
    raw[:, c_grid < c_min] = 0.0
    n_sec = raw.shape[0]
    group = max(n_sec // 24, 1)
    pooled = raw[: n_sec - n_sec % group].reshape(-1, group, len(c_grid)).sum(1)
    phi = (np.arange(pooled.shape[0]) + 0.5) * np.pi / pooled.shape[0]
    table = np.concatenate([pooled[:, ::-1], np.zeros((len(phi), 1)), pooled], axis=1)  # signed C, zero at len(c_grid)
    zero = len(c_grid)
    rows = np.arange(len(phi))[None, :, None]
    c1_all = np.arange(-int(defocus_range[1] / step), 1)

    def accumulate(tab, aa, bb, c1):
        shift = np.rint((aa[:, None] * np.cos(2 * phi) + bb[:, None] * np.sin(2 * phi)) / step).astype(np.int64)
        idx = np.clip(zero + c1[None, None, :] + shift[:, :, None], 0, tab.shape[1] - 1)
        return tab[rows, idx].sum(1)  # (curves, C1)

    # coarse: (a, b) every 60 Å, C1 every 40 Å on a table max-pooled over ±20 Å
    coarse = np.maximum(table, np.maximum(np.roll(table, 1, axis=1), np.roll(table, -1, axis=1)))
    g = np.arange(-max_astigmatism, max_astigmatism + 30.0, 60.0)
    aa, bb = (x.ravel() for x in np.meshgrid(g, g, indexing="ij"))
    keep = np.hypot(aa, bb) <= max_astigmatism + 30.0
    aa, bb = aa[keep], bb[keep]
    c1 = c1_all[::2]
    acc = accumulate(coarse, aa, bb, c1)
    found = []
    for _ in range(n_starts):
        i, j = np.unravel_index(np.argmax(acc), acc.shape)
        found.append((aa[i], bb[i], c1[j]))
        near = (np.abs(c1[None, :] - c1[j]) <= 6) & (np.hypot(aa - aa[i], bb - bb[i])[:, None] <= 150.0)
        acc = np.where(near, -np.inf, acc)
    # fine: (a, b) every 20 Å within ±60 Å, C1 every 20 Å within ±80 Å of each coarse maximum
    best = []
    g = np.arange(-60.0, 61.0, step)
    da, db = (x.ravel() for x in np.meshgrid(g, g, indexing="ij"))
    for a0, b0, c0 in found:
        c1 = c1_all[(c1_all >= c0 - 4) & (c1_all <= c0 + 4)]
        acc = accumulate(table, a0 + da, b0 + db, c1)
        i, j = np.unravel_index(np.argmax(acc), acc.shape)
        best.append((float(acc[i, j]), float(c1[j] * step), float(a0 + da[i]), float(b0 + db[i])))
    best.sort(reverse=True)
    noise = math.sqrt(len(phi) * group)  # each sector's score - 1 has unit spread under noise
    return [b[1:] for b in best], best[0][0] / noise


def fit_rings(spec: PolarSpectrum, lam: float, c30: float = 0.0, fit_c30: bool = False,
              c30_prior: tuple[float, float] | None = None, psi: float = 0.07, fit_psi: bool = False,
              defocus_range=(100.0, 3000.0), start=None, u_start: float | None = None) -> RingResult:
    """Fit the Thon rings of one binned spectrum: search (unless ``start`` is given), then refinement.

    Parameters
    ----------
    spec : PolarSpectrum
    lam : float
        Wavelength [Å].
    c30 : float
        The k⁴ coefficient [Å] (the start value when ``fit_c30``).
    fit_c30, c30_prior, psi, fit_psi :
        As in :func:`refine_rings`.
    defocus_range : (float, float)
        Range of |C| searched [Å].
    start : (float, float, float), optional
        Start (C1, a, b) [Å] instead of the search (e.g. from the tableau's consensus).
    u_start : float, optional
        With ``start``: the first u range [1/Å²] of the refinement (a start known to be close can begin
        with many rings); by default it holds about three rings.

    Returns
    -------
    RingResult
        Its ``snr`` is the matched-filter signal-to-noise ratio of the fitted rings (about 0 without rings).
    """
    if start is not None and u_start is not None:
        return refine_rings(spec, lam, list(start) + [c30], psi=psi, fit_c30=fit_c30, fit_psi=fit_psi,
                            c30_prior=c30_prior, u_max=u_start, separable=True)
    if start is not None:
        starts = [tuple(start)]
    else:
        starts, _ = search_rings(spec, lam, defocus_range=defocus_range, c30=c30)
    best = None
    for s in starts:
        # the first range holds about three rings of the start's defocus
        u1 = float(np.clip(3.0 / (lam * max(abs(s[0]), 1.0)), 0.15, 0.3))
        r = refine_rings(spec, lam, list(s) + [c30], psi=psi, u_max=u1, widen=False, iterations=4, settle=False)
        if best is None or r.snr > best[0].snr:
            best = (r, u1)
    r, u1 = best
    return refine_rings(spec, lam, r.theta, psi=r.psi, fit_c30=fit_c30, fit_psi=fit_psi, c30_prior=c30_prior,
                        u_max=u1 * 2.0)
