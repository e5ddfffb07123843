"""Scoring against ground truth: matching, species scores, PSNR, separation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import deepstem_utils as ds
from deepstem_utils.evaluation import metrics
from deepstem_utils.physics import specimen

S = 0.16


def _object(sites, shape=(250, 250), sampling=S):
    return specimen.object_function(sites, shape, sampling)


def test_scoring_can_fail():
    sites = specimen.mos2_lattice((30.0, 30.0))
    found = ds.find_atoms(_object(sites, (190, 190)), sampling=S)
    wrong = found.assign(species=found.species.replace({"S2": "S1"}))
    assert metrics.score_sites(wrong, sites, (30.0, 30.0))["per_species"].loc["S2", "recall"] == 0
    shifted = found.assign(x=found.x + 0.3)
    assert metrics.score_sites(shifted, sites, (30.0, 30.0))["mo_rmse"] > 25


def test_psnr_known_value():
    truth = np.zeros((10, 10))
    truth[0, 0] = 2.0
    estimate = truth + 0.2
    assert metrics.psnr(truth, estimate) == pytest.approx(10 * np.log10(4 / 0.04))


def test_separation_of_two_classes():
    rng = np.random.default_rng(0)
    low, high = rng.normal(0, 1, 4000), rng.normal(3, 1, 4000)
    result = metrics.separation(low, high)
    assert result["d_prime"] == pytest.approx(3.0, abs=0.1)
    assert result["threshold"] == pytest.approx(1.5, abs=0.15)
    assert result["overlap"] == pytest.approx(0.067, abs=0.01)  # Φ(-1.5)
    assert metrics.separation(low, low + 10)["overlap"] == 0.0


def test_match_sites_is_one_to_one_within_the_radius():
    detected = pd.DataFrame({"x": [0.0, 0.1, 5.0], "y": [0.0, 0.0, 5.0]})
    i, j = metrics.match_sites(detected, [0.05, 9.0], [0.0, 9.0], radius=0.6)
    assert len(i) == 1 and j.tolist() == [0]
