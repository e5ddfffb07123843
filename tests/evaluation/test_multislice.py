"""The multislice evaluation set: its generating script (quick mode), the loader, frames at a dose, the oracle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepstem_utils.evaluation import multislice

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick_set(tmp_path_factory):
    """The generating script in quick mode: one tiny abTEM cell (a few seconds of multislice)."""
    pytest.importorskip("abtem")
    out = tmp_path_factory.mktemp("ms") / "quick.npz"
    result = subprocess.run([sys.executable, str(ROOT / "data" / "make_multislice_eval.py"), "--quick", "--out",
                             str(out)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    return multislice.load_multislice_set(out)


def test_the_script_runs_and_the_set_loads_with_its_truth(quick_set):
    assert len(quick_set) == 1 and quick_set.images.shape[1:] == (24, 24)
    assert quick_set.sampling == pytest.approx(0.16)
    sites = quick_set.sites[0]
    assert {"Mo", "S2"} <= set(sites.species) and len(sites.x) == len(sites.species)
    probe = quick_set.true_probes[0]
    assert probe.focal_spread > 0 and probe.energy == quick_set.energies[0]
    # a HAADF scan of a monolayer: a few thousandths of the beam reach the detector, brightest on Mo
    image = quick_set.images[0]
    assert 5e-4 < image.mean() < 5e-2 and image.min() >= 0


def test_frames_at_a_dose_are_poisson_and_reproducible(quick_set):
    a = quick_set.frame(0, 1e4, seed=1)
    b = quick_set.frame(0, 1e4, seed=1)
    assert np.array_equal(a.counts, b.counts) and a.obj is None
    assert a.expected.mean() == pytest.approx(quick_set.images[0].mean() * 1e4 * 0.16**2)
    big = quick_set.frame(0, 1e8, seed=2)
    assert big.counts.mean() == pytest.approx(big.expected.mean(), rel=0.01)
    with pytest.raises(ValueError, match="dose"):
        quick_set.frame(0, -1.0)


@pytest.fixture(scope="module")
def committed_set():
    """The committed evaluation set (data/multislice_eval.npz)."""
    return multislice.load_multislice_set(ROOT / "data" / "multislice_eval.npz")


def test_the_committed_set_covers_its_conditions(committed_set):
    assert {"80 kV, bare", "80 kV, on graphene", "60 kV, bare", "60 kV, on graphene"} <= set(committed_set.conditions)
    for sites in committed_set.sites:
        species = set(np.asarray(sites.species).astype(str))
        assert {"Mo", "S2", "S1", "vacancy"} <= species


def test_the_oracle_counts_s_atoms_at_high_dose(committed_set):
    frame = committed_set.frame(0, 1e7, seed=3)
    species = np.asarray(frame.sites.species).astype(str)
    found = multislice.oracle_species(frame)
    side = committed_set.images.shape[-1] * committed_set.sampling
    inner = (frame.sites.x > 0.6) & (frame.sites.x < side - 0.6) & (frame.sites.y > 0.6) & (frame.sites.y < side - 0.6)
    s_sites = np.isin(species, multislice.S_SPECIES) & (found != "") & inner  # (edge columns are cut by the frame)
    assert s_sites.sum() >= 20 and np.mean(found[s_sites] == species[s_sites]) > 0.98
    levels = multislice.class_levels(frame)
    assert levels["S2"] > levels.get("S1", 0.0)
    # and it can fail: at a dose too low to count, or at the wrong places, it is no longer right everywhere
    shifted = np.stack([frame.sites.x + 0.9, frame.sites.y], 1)
    wrong = multislice.oracle_species(frame, positions=shifted)
    assert np.mean(wrong[s_sites] == species[s_sites]) < np.mean(found[s_sites] == species[s_sites])


def test_a_foreign_file_is_refused(tmp_path):
    np.savez(tmp_path / "other.npz", images=np.zeros((1, 4, 4)))
    with pytest.raises(ValueError, match="not a multislice evaluation set"):
        multislice.load_multislice_set(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError, match="make_multislice_eval"):
        multislice.load_multislice_set(tmp_path / "missing.npz")


def test_class_levels_are_ordered_on_every_frame_of_the_set(committed_set):
    """Vacancy < S1 < S2 on every frame: sites far outside the frame are left out of the joint fit (before,
    a column seen through a few edge pixels came out at tens of thousands of counts and dragged the S1 median
    of a 60 kV frame above its S2's)."""
    for i in range(len(committed_set)):
        levels = multislice.class_levels(committed_set.frame(i, 1e5, seed=0))
        ordered = [levels[c] for c in multislice.S_SPECIES if c in levels]
        assert ordered == sorted(ordered), (i, levels)
        assert levels["S1"] == pytest.approx(0.5 * levels["S2"], rel=0.35)  # a monolayer: nearly linear


def test_the_oracle_bounds_a_method_at_high_dose(committed_set):
    """At 10⁵ e⁻/Å² the oracle that knows positions and levels labels the S sites of every frame nearly
    perfectly (its spread is the fit's own error; the levels are the noiseless frame's)."""
    for i in range(len(committed_set)):
        frame = committed_set.frame(i, 1e5, seed=1)
        ny, nx = frame.counts.shape
        rows = multislice.oracle_rows(frame, multislice._psf(frame), (nx * frame.sampling, ny * frame.sampling))
        assert rows[0]["s_accuracy"] > 0.95, (i, rows[0])


def test_the_oracle_fits_the_layer_not_its_support():
    """On a linear-model frame with amorphous carbon beneath, the oracle fits columns at the MoS₂ sites only (a C
    atom a fraction of an ångström from an S site made the joint fit singular: S₂ sites at -875 counts, and the
    oracle at 0.85 at 6·10⁴ e⁻/Å² while the ideal observer was at 1.00)."""
    from deepstem_utils.network.dataset import simulate_frame
    from deepstem_utils.physics.probe import psf_grid

    frame = simulate_frame((192, 192), sampling=0.16, dose=6e4, rng=np.random.default_rng([5, 1]),
                           s_vacancy=0.12, s_divacancy=0.04)
    assert "C" in set(np.asarray(frame.sites.species).astype(str))
    psf = frame.probe.intensity((psf_grid(0.16),) * 2, 0.16)
    rows = multislice.oracle_rows(frame, psf, (192 * 0.16, 192 * 0.16))
    assert rows[0]["s_accuracy"] > 0.95
    levels = multislice.class_levels(frame, psf)
    assert levels["vacancy"] < levels["S1"] < levels["S2"]


def test_the_object_alone_counts_s_on_frames_it_was_not_trained_on(committed_set, tmp_path):
    """Every committed multislice frame at 1.1·10⁴ e⁻/Å², with the tableau-measured probes: the S sites labelled
    from DeepSTEM's object alone (no counts fit), pooled over the frames, at least 0.83 balanced accuracy. The
    same encoder with 3 plain Richardson-Lucy steps (the shipped setting before the accelerated ones) reaches
    0.80 and fails."""
    import torch

    import deepstem_utils as ds
    from deepstem_utils.evaluation import sweeps
    from deepstem_utils.network.weights import WEIGHTS

    probes = {80e3: ds.Probe.from_json(ROOT / "data" / "probe_measured.json"),
              60e3: ds.Probe.from_json(ROOT / "data" / "probe_measured_60kV.json")}
    data = torch.load(WEIGHTS, weights_only=True)
    data["config"].update(em_steps=3, em_power=1.0)
    plain = tmp_path / "plain.pt"
    torch.save(data, plain)

    def three_plain_steps(frame, psf):
        return ds.reconstruct(frame.counts, frame.probe, sampling=frame.sampling, weights=plain)

    three_plain_steps.one_atom_fraction = 0.5
    table = sweeps.multislice_sweep(committed_set, [10954.45], ["deepstem", three_plain_steps], probes=probes,
                                    progress=False)
    pooled = sweeps.pooled_accuracy(table).s_accuracy.droplevel("dose")
    assert pooled["deepstem"] >= 0.83
    assert pooled["three_plain_steps"] < 0.83
