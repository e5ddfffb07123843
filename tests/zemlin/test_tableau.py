"""The simulated tableau: tilt geometry, the amorphous film, images and their counts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepstem_utils.physics.optics import interaction_parameter
from deepstem_utils.zemlin import tableau
from deepstem_utils.zemlin.diffractogram import fit_diffractogram


def test_tilts_form_staggered_rings():
    t = tableau.tableau_tilts((10.0, 20.0), 6)
    assert t.shape == (13, 2) and np.allclose(t[0], 0)
    r = np.hypot(*t[1:].T)
    assert np.allclose(r[:6], 10) and np.allclose(r[6:], 20)
    angles = np.degrees(np.arctan2(t[1:, 1], t[1:, 0])) % 360
    assert np.allclose(np.sort(angles[:6]), np.arange(0, 360, 60))
    assert np.allclose(np.sort(angles[6:]), np.arange(30, 360, 60))  # the second ring staggered by half a step
    assert len(tableau.tableau_tilts((15.0,), 8, include_axial=False)) == 8


def test_amorphous_carbon_holds_the_film_s_atoms():
    shape, sampling, thickness, density = (128, 128), 0.25, 30.0, 2.0
    phase = tableau.amorphous_carbon(shape, sampling, 80e3, thickness=thickness, density=density, rng=0)
    n_atoms = density / 12.011 * 6.02214076e23 * 1e-24 * (128 * sampling) ** 2 * thickness
    per_atom = interaction_parameter(80e3) * 2 * math.pi * 0.529177 * 14.399645 * 2.5
    # the mean projected phase is the atoms' total phase shift over the area
    assert phase.mean() == pytest.approx(n_atoms * per_atom / (128 * sampling) ** 2, rel=0.01)
    assert phase.std() > 0.1 * phase.mean()  # a structure, not a uniform slab


def test_images_are_reproducible_and_counted():
    ab = {"C10": -200.0, "C30": 1e4}
    tilts = tableau.tableau_tilts((10.0,), 3)
    a = tableau.simulate_tableau(ab, tilts, shape=(96, 96), sampling=0.2, dose=1e4, rng=4, quadrature=(3, 1))
    b = tableau.simulate_tableau(ab, tilts, shape=(96, 96), sampling=0.2, dose=1e4, rng=4, quadrature=(3, 1))
    assert a.shape == (4, 96, 96) and np.array_equal(a, b)
    assert np.allclose(a, np.round(a)) and a.min() >= 0
    # a weak phase object: the mean intensity is that of the incident beam minus the small absorption
    assert a.mean() == pytest.approx(1e4 * 0.2**2, rel=0.1)


def test_defocus_puts_contrast_into_the_image():
    tilts = np.zeros((1, 2))
    film = tableau.amorphous_carbon((128, 128), 0.2, rng=1)
    focused = tableau.simulate_tableau({}, tilts, shape=(128, 128), sampling=0.2, dose=np.inf, specimen=film,
                                       focal_spread=0.0, angular_spread=0.0)
    defocused = tableau.simulate_tableau({"C10": -500.0}, tilts, shape=(128, 128), sampling=0.2, dose=np.inf,
                                         specimen=film, focal_spread=0.0, angular_spread=0.0)
    # a pure phase object in focus shows (almost) no contrast; defocus turns phase into contrast
    assert defocused.std() > 5 * focused.std()


def test_the_focal_spread_erases_the_outer_rings():
    """With a focal spread of 50 Å (1σ) the rings' contrast exp(-(πλσk²)²/2) falls to 1e-3 at 0.75 1/Å. The
    default averages over enough defocus points for that; the 5 fixed points the package used before left
    rings far beyond (to about 1.5 1/Å), images richer than a real tableau."""
    film = tableau.amorphous_carbon((512, 512), 0.2, rng=3)
    kwargs = dict(shape=(512, 512), sampling=0.2, dose=np.inf, focal_spread=50.0, angular_spread=0.0, specimen=film)
    reach = {}
    for label, quadrature in (("default", (None, 1)), ("five points", (5, 1))):
        image = tableau.simulate_tableau({"C10": -400.0}, np.zeros((1, 2)), quadrature=quadrature, **kwargs)[0]
        reach[label] = fit_diffractogram(image, 80e3, 0.2, C30=0.0, fit_c30=False).k_range[1]
    assert reach["default"] < 0.85
    assert reach["five points"] > 1.1
