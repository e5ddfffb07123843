"""Dose sweeps: every method scored on the same frames; the dose for a target accuracy."""

from __future__ import annotations

import pandas as pd
import pytest

import deepstem_utils as ds
from deepstem_utils import evaluation
from deepstem_utils.network import dataset

PROBE = ds.Probe(80e3, 30.0, {"C10": 10.0, "C12": 15.0, "C30": -5e3}, source_size=0.5)


def test_dose_for_accuracy_interpolates_in_log_dose():
    table = pd.DataFrame({"method": ["a"] * 3 + ["b"] * 3, "dose": [1e3, 1e4, 1e5] * 2,
                          "s_accuracy": [0.5, 0.8, 1.0, 0.95, 0.97, 0.99]})
    result = evaluation.dose_for_accuracy(table, 0.9)
    assert result["a"] == pytest.approx(10 ** 4.5)
    assert result["b"] == pytest.approx(1e3)
    never = evaluation.dose_for_accuracy(table.assign(s_accuracy=0.1), 0.9)
    assert never.isna().all()


def test_evaluate_frame_scores_every_method():
    f = dataset.simulate_frame((96, 96), sampling=0.16, dose=2e4, probe=PROBE, rng=3)
    rows = pd.DataFrame(evaluation.evaluate_frame(f, rl_max=10))
    assert list(rows.method) == list(evaluation.METHODS) + ["ideal observer"]
    assert rows.s_accuracy.between(0, 1).all()
    # the ideal observer knows more than any method: it is at least as accurate on the same frame
    ideal = rows.set_index("method").s_accuracy["ideal observer"]
    assert ideal >= rows[rows.method != "ideal observer"].s_accuracy.max() - 0.02
