"""The S-site mixture: how many S atoms each S site of MoS₂ holds, from the sites' intensities.

Z-contrast fixes the ratios of the column intensities: with Z-exponents γ of
1.6-2.0 an S₂ column scatters 0.31-0.42 of a Mo column
(:math:`2 (16/42)^\\gamma`), an S₁ column half that, a C column a few per cent.
The mixture model lets the data set the levels within those bands
(:func:`fit_s_mixture`); the constants below are where each band comes from.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["ALPHA_WEIGHT", "MO_LIKE", "ONE_S_PER_MO", "S_CLASSES", "mo_level", "fit_s_mixture", "mixture_summary"]

#: A column at least this fraction of the Mo level is Mo-like: the geometric mean of the S₂ and Mo levels
#: (√0.385 ≈ 0.62 for S₂/Mo = 0.385 at γ = 1.7), so it splits the two classes evenly on a log scale.
MO_LIKE = 0.62
#: One S atom as a fraction of one Mo column: (Z_S/Z_Mo)^1.7 = 0.194, rounded (γ = 1.7, an assumption; the
#: mixture model refits it within ±35 %, which covers γ of 1.4-2.1): the start of the per-atom level.
ONE_S_PER_MO = 0.19


def mo_level(values: np.ndarray) -> float:
    """The intensity of one Mo column among column intensities ``values``.

    Found iteratively from the brightest columns: the median of those at least
    :data:`MO_LIKE` of the current level, starting from the 95th percentile.

    Examples
    --------
    >>> round(mo_level(np.array([10.0, 11.0, 30.0, 31.0, 29.0, 3.0])), 1)
    30.0
    """
    level = float(np.percentile(values, 95))
    for _ in range(5):
        above = values[values >= MO_LIKE * level]
        if len(above) == 0:
            break
        level = float(np.median(above))
    return level


#: The one-atom level the mixture starts from weighs as much as this many S₁ sites when it is fitted
#: (:func:`fit_s_mixture`): a level measured on hundreds of simulated sites should not yield to three sites
#: of one frame.
ALPHA_WEIGHT = 10.0

#: Classes of an S site, by the number of S atoms it holds (0, 1, 2).
S_CLASSES = ("vacancy", "S1", "S2")


def fit_s_mixture(values: np.ndarray, unit0: float, empty: np.ndarray, iterations: int = 200,
                   dopant_ratio: tuple[float, float] | None = None, alpha0: float = 0.5, fit_alpha: bool = True,
                   class_prior: str = "equal", alpha_weight: float = ALPHA_WEIGHT):
    """EM for the intensities of S sites: 0, 1 or 2 S atoms.

    Class ``k`` has mean ``b + c_k u`` with ``c = (0, 2α, 2)`` and variance
    ``s0² + c_k v``. The spread ``s0`` of an empty site is measured at the hollow
    sites of the same image (``empty``), which hold no atom in MoS₂, and anchors
    the level ``b``; ``b``, ``u`` (one S atom), ``v`` and the class weights are
    fitted, with ``u`` kept within the band Z-contrast allows and ``b`` within
    ``[-0.5 u, +0.6 u]`` of the hollow level. ``α`` places the one-atom class
    between the other two: 1/2 for an image linear in the number of atoms; a
    regularised reconstruction need not be linear (a prior learned mostly from
    full S₂ columns pulls a lone S towards S₂), so ``α`` is fitted too, within
    0.3-0.8, as a compromise between the one-atom sites' mean level and the
    start ``alpha0`` (measured for the method that made the image), which counts
    as ``alpha_weight`` sites: a frame with a handful of S₁ sites cannot drag
    the level onto its S₂ or empty sites, a frame with many sets it itself.
    ``fit_alpha`` False keeps ``alpha0`` (intensities known to be linear in the atoms).

    With ``dopant_ratio = (lo, hi)`` a fourth class holds one S and one dopant atom,
    mean ``b + (1 + r) u``, where the dopant scatters ``r`` times one S, fitted within
    ``[lo, hi]`` (the band the Z-exponent allows).

    The class fractions are fitted with the levels, but with ``class_prior="equal"``
    (the default) the returned probabilities weigh the classes equally: a site is
    labelled by its own intensity, as the ideal observer labels it, and not by how
    common its class is in this image. A frame holding few S₁ sites would otherwise
    fit a tiny S₁ fraction and read every one of them as S₂ or empty (the fitted
    fraction collapses when a class has a handful of members). ``"fitted"`` uses the
    fitted fractions (the most probable class, given the image's mixture).

    Returns the probabilities (n, 3 or 4) and the fitted parameters.
    """
    if class_prior not in ("equal", "fitted"):
        raise ValueError(f"class_prior must be 'equal' or 'fitted', got {class_prior!r}")
    b = b_hollow = float(np.median(empty))
    mad = 1.4826 * float(np.median(np.abs(empty - b))) if len(empty) > 4 else 0.0
    u = max(unit0, 1e-12)
    s0 = s0_floor = max(mad, 0.05 * u)
    v = (0.2 * u) ** 2
    alpha = start = float(np.clip(alpha0, 0.3, 0.8))
    ratio = float(np.sqrt(dopant_ratio[0] * dopant_ratio[1])) if dopant_ratio else None
    weights = np.array([0.05, 0.1, 0.85] + ([0.02] if dopant_ratio else []))
    weights /= weights.sum()
    cap = 3.0 if dopant_ratio is None else 2.0 + dopant_ratio[1]

    def steps(a):
        return np.array([0.0, 2 * a, 2.0] + ([1.0 + ratio] if dopant_ratio else []))

    def posterior(x, prior=None):
        c = steps(alpha)
        mean, var = b + c * u, s0**2 + c * v
        logp = -0.5 * (x[:, None] - mean) ** 2 / var - 0.5 * np.log(2 * np.pi * var) + np.log(
            weights if prior is None else prior)
        p = np.exp(logp - logp.max(1, keepdims=True))
        return p / p.sum(1, keepdims=True)

    for _ in range(iterations):
        x = np.minimum(values, b + cap * u)  # winsorised: Mo-bright outliers must not inflate the fit
        post = posterior(x)
        c = steps(alpha)
        # weighted least squares for the level b and the step u of the classes
        w = post / (s0**2 + c * v)
        A = np.array([[w.sum(), (w * c).sum()], [(w * c).sum(), (w * c * c).sum()]])
        rhs = np.array([(w * x[:, None]).sum(), (w * c * x[:, None]).sum()])
        try:
            b_new, u_new = np.linalg.solve(A, rhs)
        except np.linalg.LinAlgError:
            b_new, u_new = b, u
        # one S atom scatters 0.13-0.27 of a Mo atom for Z-exponents 1.4-2.1: keep u in that band; an empty
        # site reads a little above a hollow site in a reconstruction (its Mo neighbours are closer), never
        # as high as one S atom
        u_new = float(np.clip(u_new, 0.65 * unit0, 1.35 * unit0))
        b = float(np.clip(b_new, b_hollow - 0.5 * u_new, b_hollow + 0.6 * u_new))
        n_k = post.sum(0) + 1e-9
        if fit_alpha:
            level = float((post[:, 1] * x).sum() / n_k[1])
            seen = float(np.clip((level - b) / (2 * u_new), 0.3, 0.8))
            alpha = (n_k[1] * seen + alpha_weight * start) / (n_k[1] + alpha_weight)
        if dopant_ratio and n_k[3] >= 3:
            level = float((post[:, 3] * x).sum() / n_k[3])
            ratio = float(np.clip((level - b) / u_new - 1.0, *dopant_ratio))
        c = steps(alpha)
        resid2 = (x[:, None] - (b + c * u_new)) ** 2
        var_k = (post * resid2).sum(0) / n_k
        if n_k[0] >= 2:  # empty sites seen: their own spread (never below the hollow sites')
            s0 = math.sqrt(max(float(var_k[0]), s0_floor**2))
        v_new = max(float(((var_k[1:] - s0**2) * n_k[1:]).sum() / (c[1:] * n_k[1:]).sum()), (0.03 * u_new) ** 2)
        weights = np.clip(n_k / n_k.sum(), 0.005, None)
        weights /= weights.sum()
        converged = abs(u_new - u) < 1e-7 * u and abs(v_new - v) < 1e-7 * v
        u, v = u_new, v_new
        if converged:
            break
    final = np.full(len(weights), 1 / len(weights)) if class_prior == "equal" else weights
    params = {"background": b, "per_atom": u, "sigma0": s0, "var_per_atom": v, "weights": weights,
              "one_atom_fraction": alpha, "dopant_ratio": ratio}
    return posterior(values, final), params


def mixture_summary(params: dict, dopant: str | None = None) -> dict:
    """What the S-site mixture says about the image as a whole (``find_atoms(...).attrs["mixture"]``).

    ``fractions``: the fitted share of S sites in each class (the composition the
    mixture estimates, which does not depend on the labelling rule);
    ``separation``: the distance between the S₁ and S₂ levels in units of their
    pooled standard deviation (d′). Below about 2 the two classes overlap so much
    that a label weighing them equally calls many S₂ sites S₁ (at d′ = 1.5 about
    a fifth of them): trust the fractions, not the count of labels.
    """
    b, u, s0, v, alpha = (params[k] for k in ("background", "per_atom", "sigma0", "var_per_atom",
                                              "one_atom_fraction"))
    var1, var2 = s0**2 + 2 * alpha * v, s0**2 + 2 * v
    names = list(S_CLASSES) + ([dopant] if dopant and len(params["weights"]) > 3 else [])
    return {"fractions": {name: float(w) for name, w in zip(names, params["weights"])},
            "separation": float(2 * (1 - alpha) * u / math.sqrt(0.5 * (var1 + var2))),
            "background": float(b), "per_atom": float(u), "one_atom_fraction": float(alpha)}
