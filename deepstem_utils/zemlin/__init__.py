"""Measuring the aberrations with a Zemlin tableau (chapter 2).

* :mod:`.tableau` — simulate a tableau: tilts, an amorphous carbon film, tilted-illumination images.
* :mod:`.diffractogram` — the diffractogram of one image and the fit of its Thon rings (apparent defocus and
  two-fold astigmatism).
* :mod:`.solve` — the least-squares solve over the tilts and :func:`measure_aberrations`.
"""

from .diffractogram import DiffractogramFit, diffractogram, fit_diffractogram, ring_model
from .solve import (
    CORRECTED_LIMITS,
    aberration_error,
    apparent_aberrations,
    apparent_design_matrix,
    consistent_signs,
    measure_aberrations,
    random_aberrations,
    solve_aberrations,
)
from .tableau import amorphous_carbon, simulate_tableau, tableau_tilts

__all__ = ["consistent_signs", "DiffractogramFit", "diffractogram", "fit_diffractogram", "ring_model", "CORRECTED_LIMITS",
           "aberration_error", "apparent_aberrations", "apparent_design_matrix", "measure_aberrations",
           "random_aberrations", "solve_aberrations", "amorphous_carbon", "simulate_tableau", "tableau_tilts"]
