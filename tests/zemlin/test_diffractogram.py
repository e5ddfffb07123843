"""Fitting the Thon rings of one image."""

from __future__ import annotations

import numpy as np

from deepstem_utils import zemlin


def test_dense_rings_are_fitted_on_a_coarse_and_a_fine_spectrum():
    """Strong underfocus with astigmatism and C30: on a spectrum of 0.01 1/Å steps (512 px tiles) the outer
    rings are finer than 2.5 spectrum pixels and alias into a moiré, which locked the previous fit onto a
    wrong defocus (off by more than 100 Å). The fit leaves those bins out, so both spectra give the answer."""
    ab = {"C10": -566.5, "C12": 191.6, "phi12": 0.4, "C30": -39393.0}
    image = zemlin.simulate_tableau(ab, np.zeros((1, 2)), shape=(1024, 1024), sampling=0.2, dose=1e4,
                                    focal_spread=50.0, angular_spread=0.1, rng=5)[0]
    true = zemlin.apparent_aberrations(ab, np.zeros((1, 2)))[0]
    coarse = zemlin.fit_diffractogram(image, 80e3, 0.2, tile=512)  # the finer spectrum forbidden
    fine = zemlin.fit_diffractogram(image, 80e3, 0.2)
    assert np.allclose([coarse.C1, coarse.a, coarse.b], true, atol=10.0)
    assert np.allclose([fine.C1, fine.a, fine.b], true, atol=10.0)


def test_an_image_without_rings_is_not_detected():
    """Shot noise alone (no film in the beam): the fit's signal-to-noise ratio stays below MIN_SNR."""
    rng = np.random.default_rng(11)
    blank = rng.poisson(400.0, (512, 512)).astype(float)
    fit = zemlin.fit_diffractogram(blank, 80e3, 0.2)
    assert fit.snr < zemlin.MIN_SNR and not fit.detected


def test_the_fit_reports_a_covariance_that_covers_its_error():
    ab = {"C10": -350.0, "C12": 40.0, "phi12": -0.6}
    image = zemlin.simulate_tableau(ab, np.zeros((1, 2)), shape=(512, 512), sampling=0.2, dose=1e4,
                                    focal_spread=30.0, angular_spread=0.0, quadrature=(3, 1), rng=2)[0]
    true = zemlin.apparent_aberrations(ab, np.zeros((1, 2)))[0]
    fit = zemlin.fit_diffractogram(image, 80e3, 0.2, C30=0.0, fit_c30=False)
    sigma = np.sqrt(np.diag(fit.covariance))
    assert np.all(sigma > 0) and np.all(sigma < 2.0)
    # the film's non-linear contrast shifts the apparent defocus by about 1 Å (see solve.FILM_DEFOCUS_ALLOWANCE)
    assert abs(fit.C1 - true[0]) < 3 * sigma[0] + 2.0
    assert np.all(np.abs([fit.a - true[1], fit.b - true[2]]) < 3 * sigma[1:] + 0.3)
