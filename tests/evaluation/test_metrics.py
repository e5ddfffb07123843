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


@pytest.mark.parametrize("seed", range(12))
def test_match_sites_finds_the_optimal_assignment_of_a_dense_solve(seed):
    """Matching group by group (pairs within the radius) gives what one assignment over all pairs gives: as many
    matches and the same total distance, on crowded random sites with duplicates and strays."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(seed)
    truth = rng.uniform(0, 15, (int(rng.integers(5, 300)), 2))
    near = truth[: int(0.8 * len(truth))] + rng.normal(0, 0.3, (int(0.8 * len(truth)), 2))
    detected = np.concatenate([near, truth[:3], rng.uniform(0, 15, (int(rng.integers(0, 40)), 2))])
    cost = cdist(detected, truth)
    cost[cost > 0.6] = 1e6
    a, b = linear_sum_assignment(cost)
    keep = cost[a, b] < 1e6
    i, j = metrics.match_sites(pd.DataFrame({"x": detected[:, 0], "y": detected[:, 1]}), truth[:, 0], truth[:, 1])
    assert len(set(i)) == len(i) and len(set(j)) == len(j) and len(i) == keep.sum()
    assert cost[i, j].max() <= 0.6
    assert cost[i, j].sum() == pytest.approx(cost[a[keep], b[keep]].sum(), abs=1e-9)


def test_f1_counts_frames_where_everything_was_missed_or_false():
    assert metrics.f1_score(3, 1, 0) == pytest.approx(6 / 7)
    assert metrics.f1_score(0, 0, 4) == 0.0  # all missed: not "undefined"
    assert metrics.f1_score(0, 2, 0) == 0.0  # all false
    assert np.isnan(metrics.f1_score(0, 0, 0))
    assert metrics.f1_score(np.array([1, 0]), np.array([0, 0]), np.array([1, 3])).tolist() == [pytest.approx(2 / 3), 0.0]


class _Series:
    """A stand-in for SeriesAcquisition: ground truth of a few frames in a 40 x 40 Å field."""

    field = (40.0, 40.0)

    def __init__(self, truths):
        self._truths = truths
        self.frames = [type("F", (), {"time": float(t)})() for t in range(len(truths))]

    def __len__(self):
        return len(self._truths)

    def truth(self, i):
        return self._truths[i]


def _sites(rows):
    x, y, species = zip(*rows)
    return specimen.Sites(np.array(x), np.array(y), np.array(species, object), {"Mo": np.ones(len(x))})


def test_series_adatom_scores_and_their_causes():
    a = 3.16
    grain = [(20.0 + i * a, 20.0, "Mo") for i in range(3)] + [(20.0 + a / 2, 20.0 + a * 3**0.5 / 2, "Mo")]
    edge_grain = [(0.8, 30.0, "Mo"), (0.8 + a, 30.0, "Mo"), (0.8 + a / 2, 30.0 + a * 3**0.5 / 2, "Mo")]
    truths = [_sites(grain + edge_grain + [(10.0, 10.0, "Mo_adatom"), (30.0, 8.0, "Mo_adatom")]),
              _sites(grain + [(10.0, 10.0, "Mo_adatom")]),
              _sites(grain)]
    found = pd.DataFrame([  # frame, x, y, species, intensity
        (0, 10.05, 10.0, "Mo_adatom", 600.0),      # true adatom found
        (0, 30.0, 8.0, "Mo", 590.0),                # true adatom read as a grain Mo
        (0, 0.8, 30.0, "Mo_adatom", 610.0),         # grain Mo at the frame's edge
        (0, 20.0 + 2 * a, 20.0, "Mo_adatom", 605.0),  # grain Mo inside the frame
        (1, 25.0, 35.0, "Mo_adatom", 80.0),         # nothing there; the true adatom is not found
        (2, 5.0, 5.0, "Mo_adatom", 70.0),           # nothing there, in a frame without adatoms
    ], columns=["frame", "x", "y", "species", "intensity"])
    series = _Series(truths)
    scores = metrics.score_series(series, found)
    assert scores[["adatom_tp", "adatom_fp", "adatom_fn"]].to_numpy().tolist() == [[1, 2, 1], [0, 1, 1], [0, 1, 0]]
    assert scores.F1_adatom.tolist() == [pytest.approx(0.4), 0.0, 0.0]  # the old per-frame F1 ignored frames 1 and 2
    assert metrics.series_f1(scores) == pytest.approx(2 / (2 + 4 + 2))
    assert metrics.score_series(series, found, frames=[2, 0]).frame.tolist() == [2, 0]
    errors = metrics.adatom_errors(series, found)
    assert sorted(errors.cause) == sorted(["adatom read as a grain Mo", "grain Mo at the frame's edge",
                                          "grain Mo inside the frame", "no atom there", "adatom not found",
                                          "no atom there"])
    inside = errors[errors.cause == "grain Mo inside the frame"].iloc[0]
    assert inside.mo_neighbours == 1 and inside.there == "Mo"  # an edge Mo with one neighbour
    assert set(errors.cause) <= set(metrics.ADATOM_CAUSES)
