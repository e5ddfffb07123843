"""The physical limit (ideal observer, Cramér-Rao) and the dose evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import deepstem_utils as ds
from deepstem_utils import dataset, evaluation, limits

PROBE = ds.Probe(80e3, 30.0, {"C10": 10.0, "C12": 15.0, "C30": -5e3}, source_size=0.5)


def _inside(frame, margin=0.5):
    ny, nx = frame.counts.shape
    s = frame.sampling
    x, y = frame.sites.x, frame.sites.y
    return (x > margin) & (x < nx * s - margin) & (y > margin) & (y < ny * s - margin)


def test_ideal_observer_improves_with_dose_and_is_near_perfect_at_high_dose():
    accuracy = []
    for dose in (3e2, 1e5):
        f = dataset.simulate_frame((128, 128), sampling=0.16, dose=dose, probe=PROBE, rng=1, s_vacancy=0.15)
        io = limits.ideal_observer(f)
        sp = np.asarray(f.sites.species).astype(str)
        m = _inside(f) & np.isin(sp, ["S2", "S1", "vacancy"])
        accuracy.append(np.mean(io[m] == sp[m]))
    assert accuracy[1] > 0.99
    assert accuracy[0] < accuracy[1]


def test_cramer_rao_scales_as_one_over_sqrt_dose():
    f1 = dataset.simulate_frame((96, 96), sampling=0.16, dose=1e4, probe=PROBE, rng=2)
    f4 = dataset.simulate_frame((96, 96), sampling=0.16, dose=4e4, probe=PROBE, rng=2)
    b1, b4 = np.nanmedian(limits.cramer_rao(f1)), np.nanmedian(limits.cramer_rao(f4))
    assert b1 / b4 == pytest.approx(2.0, rel=0.05)
    assert 0.5 < b1 < 50  # pm: a sane order of magnitude at 1e4 e-/Å²


def test_cramer_rao_against_a_direct_fisher_sum():
    # an isolated Mo atom on a flat background: compare with the analytic-derivative Fisher information
    from deepstem_utils import specimen
    from deepstem_utils.imaging import electrons_per_pixel, linear_image

    sites = specimen.Sites(np.array([8.0]), np.array([8.0]), np.array(["Mo"], object), {"Mo": np.ones(1)})
    s = 0.16
    obj = specimen.object_function(sites, (100, 100), s) + 1e-4
    frame = dataset.Frame(counts=np.zeros((100, 100)), obj=obj, sites=sites, probe=PROBE, sampling=s, dose=1e4)
    psf = PROBE.intensity((64, 64), s)
    bound = limits.cramer_rao(frame, "Mo", psf)[0]
    epp = electrons_per_pixel(1e4, s)
    lam = linear_image(obj, psf) * epp
    # derivatives of the whole image under a shift of the atom (global, no window), by central differences
    h = 0.01
    grads = []
    for dx, dy in ((h, 0.0), (0.0, h)):
        plus = specimen.Sites(np.array([8.0 + dx]), np.array([8.0 + dy]), np.array(["Mo"], object), {"Mo": np.ones(1)})
        minus = specimen.Sites(np.array([8.0 - dx]), np.array([8.0 - dy]), np.array(["Mo"], object), {"Mo": np.ones(1)})
        diff = specimen.object_function(plus, (100, 100), s) - specimen.object_function(minus, (100, 100), s)
        grads.append(linear_image(diff, psf) * epp / (2 * h))
    gx, gy = grads
    fisher = np.array([[np.sum(gx * gx / lam), np.sum(gx * gy / lam)], [np.sum(gx * gy / lam), np.sum(gy * gy / lam)]])
    direct = np.sqrt(np.trace(np.linalg.inv(fisher))) * 100
    assert bound == pytest.approx(direct, rel=0.05)


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


def test_network_one_atom_level_is_measured_and_stored(tmp_path):
    from deepstem_utils import model

    # the shipped network's level, measured on one frame, lies in the band find_atoms accepts ...
    level = evaluation.measure_one_atom_fraction(weights=model.WEIGHTS, doses=(1e5,), n_frames=1, shape=(256, 256),
                                                 progress=False)
    assert 0.3 <= level["one_atom_fraction"] <= 0.8 and level["frames"] == 1
    # ... the shipped networks carry theirs beside their weights, and evaluation starts find_atoms there
    for method, path in (("deepstem", model.WEIGHTS), ("supervised_unet", model.SUPERVISED_WEIGHTS)):
        stored = model.weights_calibration(path)["one_atom_fraction"]
        assert evaluation.one_atom_fraction(method) == stored and 0.3 <= stored <= 0.8
    assert evaluation.one_atom_fraction("raw") == 0.5
    assert model.weights_calibration(tmp_path / "no_such.pt") == {}
