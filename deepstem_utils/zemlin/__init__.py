"""Measuring the aberrations with a Zemlin tableau (chapter 2).

* :mod:`.tableau` — simulate a tableau: tilts, an amorphous carbon film, tilted-illumination images.
* :mod:`.polar` — one image's power spectrum in polar coordinates; the Thon rings' background and contrast.
* :mod:`.rings` — the fit of one image's Thon-ring phase (search, then Levenberg-Marquardt).
* :mod:`.diffractogram` — the diffractogram for display and :func:`fit_diffractogram` (apparent defocus and
  two-fold astigmatism of one image, with their covariance).
* :mod:`.lsq` — the design matrix of the tilts and the generalised least-squares solve.
* :mod:`.solve` — :func:`measure_aberrations`: ring fits of every image, signs, solve, refits from the consensus.
* :mod:`.accuracy` — random aberration sets and error measures for tests, benchmark and chapter 2.
"""

from .accuracy import CORRECTED_LIMITS, aberration_error, random_aberrations, standard_error
from .diffractogram import MIN_SNR, DiffractogramFit, diffractogram, fit_diffractogram, ring_model
from .lsq import (
    apparent_aberrations,
    apparent_design_matrix,
    consistent_signs,
    solve_aberrations,
    solve_linear,
)
from .solve import FILM_ASTIGMATISM_ALLOWANCE, FILM_DEFOCUS_ALLOWANCE, measure_aberrations
from .tableau import amorphous_carbon, simulate_tableau, tableau_tilts

__all__ = ["consistent_signs", "DiffractogramFit", "diffractogram", "fit_diffractogram", "ring_model", "MIN_SNR",
           "CORRECTED_LIMITS", "aberration_error", "standard_error", "apparent_aberrations", "apparent_design_matrix",
           "measure_aberrations", "random_aberrations", "solve_aberrations", "solve_linear", "FILM_DEFOCUS_ALLOWANCE", "FILM_ASTIGMATISM_ALLOWANCE",
           "amorphous_carbon", "simulate_tableau", "tableau_tilts"]
