"""Fitting the Thon rings of one image."""

from __future__ import annotations

import numpy as np

from deepstem_utils import zemlin


def test_dense_rings_are_refitted_on_a_finer_spectrum():
    """Strong underfocus with astigmatism and C30: on the default spectrum (0.01 1/Å steps) the outer rings
    alias into a moiré and the fit locks onto it; the fit notices and redoes itself with finer steps."""
    ab = {"C10": -566.5, "C12": 191.6, "phi12": 0.4, "C30": -39393.0}
    image = zemlin.simulate_tableau(ab, np.zeros((1, 2)), shape=(1024, 1024), sampling=0.2, dose=1e4,
                                    focal_spread=50.0, angular_spread=0.1, rng=5)[0]
    true = zemlin.apparent_aberrations(ab, np.zeros((1, 2)))[0]
    coarse = zemlin.fit_diffractogram(image, 80e3, 0.2, tile=512)  # the finer spectrum forbidden
    fine = zemlin.fit_diffractogram(image, 80e3, 0.2)
    assert abs(coarse.C1 - true[0]) > 100.0  # the failure the refit exists for
    assert np.allclose([fine.C1, fine.a, fine.b], true, atol=10.0)
