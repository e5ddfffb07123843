"""Aberrations from a Zemlin tableau: :func:`measure_aberrations` (ring fits of every image, then the solve).

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
:math:`C_{12}'` (:mod:`.rings`). They are linear in the axial coefficients through the
Hessian of χ at τ, which a generalised least-squares solve inverts, each image
weighted by the covariance of its own ring fit (:mod:`.lsq`). A first round
fits every image on its own; further rounds refit every image from the
tableau's prediction, and images that disagree grossly are left out. Conventions are those of
:mod:`deepstem_utils.physics.optics` (abTEM's polar names, ``C10`` = -defocus); the
tilt τ = (tx, ty) is the direction of the incident beam, ``exp(2πi(tx x + ty y)/λ)``.

Diffractograms are even in χ: a tableau of a pure phase object cannot tell
the global sign of χ. The sign is fixed by the prior that the tableau was
recorded in underfocus (``C10 < 0``), as is usual; override it with
``defocus_sign`` (+1, or ``"amplitude"`` to read it from the film's amplitude contrast).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..core.signals import to_angstrom_factor, unwrap
from ..physics.optics import wavelength
from .diffractogram import MIN_SNR, DiffractogramFit
from .lsq import (
    apparent_aberrations,
    apparent_design_matrix,
    consistent_signs,
    solve_aberrations,
    solve_linear,
    solve_with_floor,
    to_cartesian,
    to_polar,
)
from .polar import polar_spectrum
from .rings import fit_rings

__all__ = ["measure_aberrations", "FILM_DEFOCUS_ALLOWANCE", "FILM_ASTIGMATISM_ALLOWANCE", "C30_PRIOR", "OUTLIER_CHI2", "WORKERS",
           # re-exported from .lsq (the solve this module drives)
           "apparent_design_matrix", "apparent_aberrations", "consistent_signs", "solve_aberrations", "solve_linear",
           "to_cartesian", "to_polar"]

#: Systematic standard error of a shift that every image's apparent values share, which the residuals of the
#: solve cannot show and which lands in C10 and C12 alone [Å]: (floor, fraction of the recording defocus) for
#: the defocus, added in quadrature, and a floor for each part of the two-fold astigmatism. The ring model is
#: that of a weak phase object; a real film's non-linear contrast shifts the apparent defocus of every image
#: alike: on the simulated 3 nm amorphous-carbon films by -0.8 to -1.6 Å at 15-60 nm underfocus and -3 Å at
#: 100 nm (chapter 2 computes it); the astigmatism that all images shared was up to about 0.1 Å in the
#: benchmark's tableaux at 1024² px. The allowances for a real film are assumptions.
FILM_DEFOCUS_ALLOWANCE = (2.0, 0.005)
FILM_ASTIGMATISM_ALLOWANCE = 0.1


# ------------------------------------------------------------------------------------------ the measurement
#: Gaussian prior σ [Å] on the k⁴ term when the axial image fits it (a corrected instrument: |C3| ≲ 10 µm).
C30_PRIOR = 1e5
#: Threads that fit the images (numpy releases the GIL in most of the work; 2 cores is the target machine).
WORKERS = 2
#: An image whose residual in the solve exceeds this chi² (3 degrees of freedom, with the tableau's extra
#: scatter included) is left out as an outlier (a chance of 1e-6 for a consistent image).
OUTLIER_CHI2 = 30.0


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
        be clearly positive for a real film; needs a film with absorption).
    iterations : int
        Rounds of fitting: the first fits every image on its own, each further one refits every image
        from the tableau's consensus (at least one).
    amplitude_contrast : float
        Absorption-to-phase ratio of the film assumed by the ring model (a-C: 0.07).
    return_fits : bool
        Also return the per-image fits.

    Returns
    -------
    aberrations : dict
        Polar coefficients (abTEM names) [Å, rad] up to ``order``.
    uncertainties : dict
        One-sigma uncertainties [Å, rad]: from the covariance of every image's ring fit, with the extra
        scatter of the images about the solution when they disagree more than their fits say; C10 and C12
        include the allowances :data:`FILM_DEFOCUS_ALLOWANCE` and :data:`FILM_ASTIGMATISM_ALLOWANCE` for a
        shift shared by all images (the film's non-linear contrast).
    fits : list of DiffractogramFit
        Only with ``return_fits=True``; ``fit.used`` says whether the image entered the final solve.

    Raises
    ------
    ValueError
        For malformed input, tilts that cannot determine the unknowns, and tableaux whose images show too
        few Thon rings to determine them (blank, too noisy, or too small to resolve the rings).
    """
    stack, sampling = _as_stack(tableau, sampling)
    tilts = _checked_tilts(tilts, len(stack))
    if defocus_sign not in (None, -1, 1, "amplitude"):
        raise ValueError("defocus_sign must be -1 (underfocus, C10 < 0), +1 (overfocus) or 'amplitude'")
    A, names = apparent_design_matrix(tilts, order)
    if np.linalg.matrix_rank(A) < A.shape[1]:
        solve_linear(np.zeros((len(tilts), 3)), tilts, order)  # raises the explanatory error
    lam = wavelength(energy)
    psi = math.atan(amplitude_contrast)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        spectra = list(pool.map(lambda img: polar_spectrum(img, sampling), stack))
        k_min = float(spectra[0].k_edges[0])
        # round 1: every image on its own; the k^4 term of the ring model from the untilted image
        axial = int(np.argmin(np.hypot(tilts[:, 0], tilts[:, 1])))
        first = fit_rings(spectra[axial], lam, fit_c30=True, c30_prior=(0.0, C30_PRIOR), psi=psi)
        c30 = float(first.theta[3]) if first.snr >= MIN_SNR else 0.0
        results = pool.map(lambda i: first if i == axial else fit_rings(spectra[i], lam, c30=c30, psi=psi),
                           range(len(spectra)))
        fits = [DiffractogramFit.from_rings(r, k_min) for r in results]
        used = _detected(fits, tilts, order, stack.shape[1:], sampling, defocus_offset, lam)
        fits = _sign_fits(fits, used, A, defocus_sign)
        sol, used = _robust_solve(fits, tilts, order, used)
        fits, sol, used = _consensus_rounds(pool, spectra, fits, sol, used, tilts, order, lam, psi, c30, k_min,
                                            iterations, defocus_sign, (stack.shape[1:], sampling, defocus_offset))
    for i, f in enumerate(fits):
        f.used = bool(used[i])
    cov = sol.cov.copy()
    floor, fraction = FILM_DEFOCUS_ALLOWANCE
    cov[0, 0] += floor**2 + (fraction * float(np.median(np.abs([f.C1 for f, u in zip(fits, used) if u])))) ** 2
    cov[1, 1] += FILM_ASTIGMATISM_ALLOWANCE**2  # the columns C12 cos 2φ12, C12 sin 2φ12
    cov[2, 2] += FILM_ASTIGMATISM_ALLOWANCE**2
    ab, unc = to_polar(sol.x, cov, names)
    ab["C10"] = ab["C10"] - defocus_offset
    if not all(np.isfinite(v) for v in list(ab.values()) + list(unc.values())):
        raise ValueError("the tableau gave non-finite aberrations or uncertainties; check the images and tilts")
    return (ab, unc, fits) if return_fits else (ab, unc)


def _consensus_rounds(pool, spectra, fits, sol, used, tilts, order, lam, psi, c30, k_min, iterations, defocus_sign,
                      geometry):
    """Refit every image from the tableau's prediction (C30 from the solve), then solve again; repeat."""
    A, names = apparent_design_matrix(tilts, order)
    amplitude = defocus_sign == "amplitude"
    flipped = False
    for _ in range(max(iterations, 2) - 1):
        if order >= 3:
            c30 = float(sol.x[[s for s, *_ in names].index("C30")])
        start = (A @ sol.x).reshape(-1, 3)
        u_start = [max(0.3, 0.5 * f.k_range[1] ** 2) for f in fits]  # half the range that carried rings

        def refit(i, sign=1.0):
            return DiffractogramFit.from_rings(fit_rings(spectra[i], lam, c30=sign * c30, start=sign * start[i],
                                                         psi=psi, u_start=u_start[i], fit_psi=amplitude), k_min)

        fits = list(pool.map(refit, range(len(spectra))))
        used = _detected(fits, tilts, order, *geometry, lam=lam)
        if amplitude and not flipped and _amplitude_says_flip(fits, used):
            flipped = True  # the film's absorption says the other global sign: refit from the flipped consensus
            fits = list(pool.map(lambda i: refit(i, -1.0), range(len(spectra))))
            used = _detected(fits, tilts, order, *geometry, lam=lam)
        sol, used = _robust_solve(fits, tilts, order, used)
    return fits, sol, used


def _robust_solve(fits, tilts, order, used):
    """GLS solve on the used images, leaving out outliers one at a time while the rest determine the unknowns.

    Each image is judged by how far it lies from what the *other* images predict for it (leave one out: an
    image with much leverage bends a solution that includes it towards itself), against its own covariance,
    the extra scatter that makes the median image's chi² typical (2.37 for 3 degrees of freedom) and the
    prediction's covariance, so that a few grossly wrong images can hide neither way.
    """
    apparent = np.array([[f.C1, f.a, f.b] for f in fits])
    covs = np.array([f.covariance for f in fits])
    used = used.copy()
    while True:
        idx = np.nonzero(used)[0]
        A, names = apparent_design_matrix(tilts[idx], order)
        floor = _median_floor(A, apparent[idx], covs[idx], names)
        worst, worst_chi2 = None, OUTLIER_CHI2
        for j in range(len(idx)):
            rest = np.ones(len(idx), bool)
            rest[j] = False
            rows = np.repeat(rest, 3)
            sol = solve_with_floor(A[rows], apparent[idx][rest], covs[idx][rest], floor, names)
            if sol is None:  # without this image the rest cannot predict it: it cannot be judged
                continue
            a_j = A[3 * j : 3 * j + 3]
            r = apparent[idx[j]] - a_j @ sol.x
            c = covs[idx[j]] + floor * np.eye(3) + a_j @ sol.cov @ a_j.T
            chi2 = float(r @ np.linalg.solve(c, r))
            if chi2 > worst_chi2:
                worst, worst_chi2 = j, chi2
        if worst is None:
            return solve_linear(apparent[idx], tilts[idx], order, covariances=covs[idx]), used
        used = used.copy()
        used[idx[worst]] = False


def _median_floor(A, apparent, covs, names) -> float:
    """The extra variance per apparent value that makes the median image's chi² that of 3 degrees of freedom."""
    sol = solve_with_floor(A, apparent, covs, 0.0, names)
    if sol is None or sol.dof <= 0 or np.median(sol.image_chi2) <= 2.366:
        return 0.0
    lo, hi = 0.0, float(np.max(np.abs(apparent))) ** 2 + 1.0
    for _ in range(40):
        mid = math.sqrt(lo * hi) if lo > 0 else hi * 1e-6
        lo, hi = (mid, hi) if np.median(solve_with_floor(A, apparent, covs, mid, names).image_chi2) > 2.366 else (lo, mid)
    return hi


def _sign_fits(fits, used, A, defocus_sign):
    """Make the signs of χ consistent over the images, the global one from the recording defocus."""
    idx = np.nonzero(used)[0]
    rows = np.repeat(used, 3)
    apparent = np.array([[fits[i].C1, fits[i].a, fits[i].b] for i in idx])
    weights = np.array([3.0 / max(float(np.trace(fits[i].covariance)), 1e-12) for i in idx])
    signs = consistent_signs(apparent, A[rows], weights / weights.max())
    fits = list(fits)
    for i, s in zip(idx, signs):
        fits[i] = fits[i] if s > 0 else fits[i].flipped()
    want = 1 if defocus_sign == 1 else -1  # "amplitude" starts from underfocus and checks later
    reference = fits[idx[0]]  # the used image with the smallest index (the axial one comes first usually)
    if np.sign(reference.C1) != want:
        fits = [f.flipped() if used[i] else f for i, f in enumerate(fits)]
    return fits


def _amplitude_says_flip(fits, used) -> bool:
    psi = np.array([f.psi for f, u in zip(fits, used) if u])
    median = float(np.median(psi))
    return median < -0.03 and float(np.mean(np.sign(psi) == np.sign(median))) >= 0.8


def _detected(fits, tilts, order, shape, sampling, defocus_offset, lam) -> np.ndarray:
    """The images that show Thon rings; a clear error when they cannot determine the unknowns."""
    used = np.array([f.detected for f in fits])
    A, names = apparent_design_matrix(tilts[used], order)
    if used.any() and np.linalg.matrix_rank(A) == A.shape[1]:
        return used
    side = min(shape)
    hint = ""
    if defocus_offset:
        k_res = 1.0 / (2.5 * 2 * lam * abs(defocus_offset) / (side * sampling))
        hint = (f"; at the recording defocus of {abs(defocus_offset) / 10:g} nm, {side} px images at {sampling:g} Å/px "
                f"resolve Thon rings only up to {k_res:.2f} 1/Å (2.5 spectrum pixels per ring)")
    raise ValueError(
        f"Thon rings were found in only {int(used.sum())} of {len(fits)} images (signal-to-noise ratio >= "
        f"{MIN_SNR:g}), too few to determine the {A.shape[1]} unknowns of order {order}: the images may be "
        f"blank (no film in the beam), too noisy (raise the dose), or too small to resolve the rings{hint}. "
        "Record larger images, closer to focus or with more dose, or ask for a lower order."
    )


def _checked_tilts(tilts, n: int) -> np.ndarray:
    tilts = np.asarray(tilts, dtype=float)
    if tilts.ndim != 2 or tilts.shape[1] != 2:
        raise ValueError(f"tilts must be an (n, 2) array of (tx, ty) in mrad, got shape {tilts.shape}")
    if len(tilts) != n:
        raise ValueError(f"the tableau has {n} images but {len(tilts)} tilts were given: one tilt per image")
    if not np.all(np.isfinite(tilts)):
        raise ValueError("tilts contain NaN or inf")
    if np.abs(tilts).max() > 200:
        raise ValueError("tilts look too large for mrad (> 200 mrad); give tilts in mrad")
    return tilts


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
