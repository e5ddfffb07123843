"""The S-site mixture model: labels by each site's own intensity, fitted composition."""

from __future__ import annotations

import numpy as np
import pytest

import deepstem_utils as ds
from deepstem_utils import atoms
from deepstem_utils.physics import specimen


def test_rare_lone_s_atoms_are_labelled_by_their_own_intensity():
    """A frame with 5 S1 among 60 S2: with the fitted class fractions the S1 fraction collapses and the
    lone S atoms are read as S2 or empty; with equal class weights (the ideal observer's rule) they are not."""
    recalls = {"equal": [], "fitted": []}
    for seed in range(20):
        rng = np.random.default_rng(seed)
        values = np.r_[rng.normal(0, 4.5, 20), rng.normal(25, 8, 5), rng.normal(50, 10, 60)]
        truth = np.repeat([0, 1, 2], [20, 5, 60])
        hollows = rng.normal(0, 4.5, 40)
        for prior in recalls:
            post, params = atoms.fit_s_mixture(values, unit0=25.0, empty=hollows, fit_alpha=False, class_prior=prior)
            assert np.allclose(post.sum(1), 1)
            label = post.argmax(1)
            recalls[prior].append([np.mean(label[truth == k] == k) for k in range(3)])
    equal, fitted = np.array(recalls["equal"]), np.array(recalls["fitted"])
    assert equal[:, 1].mean() > 0.85 and fitted[:, 1].mean() < equal[:, 1].mean() - 0.15
    assert equal.mean() > fitted.mean() + 0.03  # balanced accuracy
    with pytest.raises(ValueError, match="class_prior"):
        ds.find_atoms(np.ones((40, 40)), sampling=0.16, class_prior="flat")


def test_mixture_fractions_estimate_the_composition_when_labels_cannot():
    """S1 and S2 levels 1.5 pooled standard deviations apart, 10 S1 among 200 S2: equal class weights label
    many S2 sites S1, while the fitted fraction stays near the true 5 %, and the summary says the two levels
    overlap (d' below 2); on a noise-free object it says they do not."""
    over, fraction, separation = [], [], []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        sd = 25.0 / 1.5
        values = np.r_[rng.normal(0, sd, 5), rng.normal(25, sd, 10), rng.normal(50, sd, 200)]
        hollows = rng.normal(0, sd, 60)
        post, params = atoms.fit_s_mixture(values, unit0=25.0, empty=hollows, fit_alpha=False)
        summary = atoms.mixture_summary(params)
        over.append(np.sum(post.argmax(1) == 1) / 10)
        fraction.append(summary["fractions"]["S1"])
        separation.append(summary["separation"])
    assert np.median(over) > 3                      # labels: several times the 10 true S1
    assert 0.0 < np.median(fraction) < 0.15          # the fitted fraction: near the true 10 / 215
    assert np.max(separation) < 2
    found = ds.find_atoms(specimen.object_function(specimen.mos2_lattice((30.0, 30.0)), (200, 200), 0.15),
                          sampling=0.15, one_atom_fraction=0.5)   # a noise-free object, linear in the atoms
    assert set(found.attrs["mixture"]["fractions"]) == {"vacancy", "S1", "S2"}
    assert found.attrs["mixture"]["separation"] > 2 and found.attrs["class_prior"] == "equal"


def test_the_one_atom_level_yields_to_many_sites_not_to_a_few():
    """A start α of 0.5 against S1 sites that sit at 0.65 of S2: three sites move α by less than a third of the
    way (the start weighs as :data:`mixture.ALPHA_WEIGHT` sites), a hundred move it most of the way."""
    from deepstem_utils.atoms.mixture import ALPHA_WEIGHT

    rng = np.random.default_rng(4)
    hollows = rng.normal(0, 2.0, 60)
    moved = {}
    for n1 in (3, 100):
        values = np.r_[rng.normal(0, 2.0, 10), rng.normal(0.65 * 60, 3.0, n1), rng.normal(60, 4.0, 150)]
        _, params = atoms.fit_s_mixture(values, unit0=30.0, empty=hollows, alpha0=0.5)
        moved[n1] = (params["one_atom_fraction"] - 0.5) / 0.15
    assert ALPHA_WEIGHT > 3
    assert 0 < moved[3] < 1 / 3 and moved[100] > 0.75
