"""Judging the methods (chapters 4-8): metrics, classical baselines, the physical limits, dose sweeps.

* :mod:`.metrics` — PSNR, class separation, sites matched and scored against ground truth (frames and series).
* :mod:`.baselines` — Gaussian filter, Wiener, Richardson-Lucy, BM3D, Atomap's 2-D Gaussians.
* :mod:`.limits` — the ideal observer and the Cramér-Rao bound.
* :mod:`.calibration` — where a network's object puts one S atom (measured on simulated frames).
* :mod:`.multislice` — the multislice evaluation set (frames the linear model did not make) and its oracles.
* :mod:`.sweeps` — every method (or any callable ``method(frame, psf)``) on the same frames, over dose.
"""

from .calibration import measure_one_atom_fraction, one_atom_fraction
from .limits import cramer_rao, ideal_observer
from .metrics import match_sites, psnr, score_series, score_sites
from .sweeps import METHODS, PEERS, dose_for_accuracy, dose_sweep, evaluate_frame, method_name, pooled_accuracy

__all__ = ["measure_one_atom_fraction", "one_atom_fraction", "cramer_rao", "ideal_observer", "match_sites", "psnr",
           "score_series", "score_sites", "METHODS", "PEERS", "dose_for_accuracy", "pooled_accuracy", "dose_sweep", "evaluate_frame",
           "method_name"]
