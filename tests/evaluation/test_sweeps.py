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


def test_accuracy_is_pooled_over_frames():
    """Two frames: one with 40 S2, 4 S1 (all right) and a single vacancy (missed); one with 40 S2, 6 S1 (half
    right) and 3 vacancies (all right). The mean of the frames' balanced accuracies is (2/3 + 2/3) / 2 = 0.667;
    pooled, every site weighs the same: (80/80 + 7/10 + 3/4) / 3 = 0.817."""
    table = pd.DataFrame({"method": ["m", "m"], "dose": [1e4, 1e4], "frame": [0, 1],
                          "S2_sites": [40, 40], "S2_right": [40, 40], "S1_sites": [4, 6], "S1_right": [4, 3],
                          "vacancy_sites": [1, 3], "vacancy_right": [0, 3]})
    table["s_accuracy"] = [2 / 3, 2 / 3]
    pooled = evaluation.pooled_accuracy(table).loc[("m", 1e4)]
    assert pooled.s_accuracy == pytest.approx((1 + 0.7 + 0.75) / 3)
    assert pooled.low <= pooled.s_accuracy <= pooled.high and pooled.sites == 94
    assert evaluation.dose_for_accuracy(table, 0.8)["m"] == pytest.approx(1e4)  # pooled: reached
    assert evaluation.dose_for_accuracy(table.drop(columns=["S2_sites"]), 0.8).isna().all()  # per-frame mean
    with pytest.raises(ValueError, match="site counts"):
        evaluation.pooled_accuracy(table.drop(columns=["S1_right"]))


def test_evaluate_frame_scores_every_method():
    f = dataset.simulate_frame((96, 96), sampling=0.16, dose=2e4, probe=PROBE, rng=3)
    rows = pd.DataFrame(evaluation.evaluate_frame(f, rl_max=10))
    assert list(rows.method) == list(evaluation.METHODS) + ["ideal observer"]
    assert rows.s_accuracy.between(0, 1).all()
    # the counts behind each accuracy are in the row, and give it back
    recall = [rows[f"{c}_right"] / rows[f"{c}_sites"] for c in ("S2", "S1", "vacancy")]
    assert (pd.concat(recall, axis=1).mean(1) - rows.s_accuracy).abs().max() < 1e-12
    # the ideal observer knows more than any method: it is at least as accurate on the same frame
    ideal = rows.set_index("method").s_accuracy["ideal observer"]
    assert ideal >= rows[rows.method != "ideal observer"].s_accuracy.max() - 0.02


def test_a_callable_is_a_method_and_atomap_is_a_peer():
    """A user adds a peer without editing the package: a callable returning an object estimate or a sites table."""
    import numpy as np
    from scipy import ndimage

    from deepstem_utils.evaluation import sweeps

    f = dataset.simulate_frame((128, 128), sampling=0.16, dose=1e5, probe=PROBE, rng=4)

    def median_filter(frame, psf):  # an object estimate: located and labelled by find_atoms
        return ndimage.median_filter(frame.counts, 3)

    def truth(frame, psf):  # a sites table, scored as given
        return pd.DataFrame({"x": frame.sites.x, "y": frame.sites.y, "species": frame.sites.species})

    rows = pd.DataFrame(evaluation.evaluate_frame(f, methods=["gaussian", median_filter, truth, "atomap"]))
    assert list(rows.method) == ["gaussian", "median_filter", "truth", "atomap", "ideal observer"]
    by = rows.set_index("method")
    assert by.s_accuracy["truth"] == 1.0 and by.mo_rmse["truth"] == pytest.approx(0.0, abs=1e-6)
    assert by.F1_Mo["median_filter"] > 0.8 and by.F1_Mo["atomap"] > 0.8
    assert np.isfinite(by.mo_rmse["atomap"])
    sweep = evaluation.dose_sweep([1e5], 1, shape=(128, 128), probe=PROBE, methods=[median_filter], progress=False)
    assert set(sweep.method) == {"median_filter", "ideal observer"}
    with pytest.raises(ValueError, match="share a name"):
        evaluation.evaluate_frame(f, methods=[median_filter, median_filter])
    with pytest.raises(ValueError, match="unknown method"):
        evaluation.dose_sweep([1e4], 1, methods=["mystery"], progress=False)
    with pytest.raises(TypeError, match="callable"):
        evaluation.evaluate_frame(f, methods=[42])
    assert "atomap" in sweeps.PEERS and "atomap" not in evaluation.METHODS


def test_a_missing_optional_package_fails_before_any_work(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bm3d" else real(name, *a))
    with pytest.raises(ModuleNotFoundError, match=r"deepstem_utils\[baselines\]"):
        evaluation.dose_sweep([1e4], 1, progress=False)  # the default methods include BM3D
