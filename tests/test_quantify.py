"""Column intensities fitted to the counts (deepstem_utils.quantify) and find_atoms(..., counts=, psf=)."""

from __future__ import annotations

import numpy as np
import pytest

import deepstem_utils as ds
from deepstem_utils import dataset, metrics, quantify
from deepstem_utils.model import psf_grid

S = 0.16


def _two_columns(a1, a2, separation_px, background=2.0, sigma=3.0):
    """Two Gaussian columns closer than their width, on a constant background (noise-free)."""
    k = quantify.gaussian_kernel(sigma)
    image = np.full((64, 64), background)
    h = k.shape[0] // 2
    for a, cx in ((a1, 20), (a2, 20 + separation_px)):
        image[32 - h:32 + h + 1, cx - h:cx + h + 1] += a * k
    return image, k


def test_overlapping_columns_are_separated_not_integrated():
    image, k = _two_columns(1000.0, 200.0, 5)  # 5 px apart, sigma 3 px: a disk integral would mix them
    a, b = quantify.column_intensities(image, [20 * S, 25 * S], [32 * S, 32 * S], k, S, fraction=0.999)
    assert a == pytest.approx([1000.0, 200.0], rel=2e-3)
    assert b == pytest.approx(2.0, abs=1e-2)


def test_sub_pixel_positions_are_honoured():
    k = quantify.gaussian_kernel(2.5)
    yy, xx = np.indices((48, 48))
    x0, y0 = 23.4, 20.7  # a column between pixels
    image = 300.0 * np.exp(-0.5 * ((xx - x0) ** 2 + (yy - y0) ** 2) / 2.5**2) / (2 * np.pi * 2.5**2)
    right, _ = quantify.column_intensities(image, [x0 * S], [y0 * S], k, S, fraction=0.999)
    wrong, _ = quantify.column_intensities(image, [round(x0) * S], [round(y0) * S], k, S, fraction=0.999)
    assert right[0] == pytest.approx(300.0, rel=2e-3)
    assert abs(wrong[0] - 300.0) > 3 * abs(right[0] - 300.0)  # the test can fail: rounding costs accuracy


def test_intensities_are_linear_in_the_atoms_on_a_noisy_frame():
    probe = ds.Probe(80e3, 30.0, {"C30": -5e3}, source_size=0.5)
    frame = dataset.simulate_frame((192, 192), sampling=S, dose=3e4, probe=probe, rng=4, s_vacancy=0.15,
                                   s_divacancy=0.05)
    n = psf_grid(S)
    psf = probe.intensity((n, n), S)
    species = np.asarray(frame.sites.species).astype(str)
    x, y = np.asarray(frame.sites.x), np.asarray(frame.sites.y)
    keep = species != "C"
    a, _ = quantify.column_intensities(frame.counts, x[keep], y[keep], psf, S)
    species = species[keep]
    inside = (x[keep] > 2) & (x[keep] < 192 * S - 2) & (y[keep] > 2) & (y[keep] < 192 * S - 2)
    level = {c: np.median(a[inside & (species == c)]) for c in ("vacancy", "S1", "S2", "Mo")}
    # one S atom half-way between an empty site and S2; an empty site near zero
    assert (level["S1"] - level["vacancy"]) / (level["S2"] - level["vacancy"]) == pytest.approx(0.5, abs=0.06)
    assert abs(level["vacancy"]) < 0.05 * level["Mo"]
    # the Mo columns carry the counts the object says they scatter (within the truncated tail)
    mo_truth = frame.obj.sum() * frame.electrons_per_pixel  # all scattered counts
    assert 0 < level["Mo"] < mo_truth


def test_find_atoms_with_counts_reads_a_lone_s_at_half():
    probe = ds.Probe(80e3, 30.0, {"C30": -5e3}, source_size=0.5)
    frame = dataset.simulate_frame((224, 224), sampling=S, dose=8e3, probe=probe, rng=0, s_vacancy=0.12,
                                   s_divacancy=0.04)
    n = psf_grid(S)
    psf = probe.intensity((n, n), S)
    obj = ds.reconstruct(frame.counts, probe, sampling=S)
    extent = (224 * S, 224 * S)
    plain = metrics.score_sites(ds.find_atoms(obj, sampling=S), frame.sites, extent)
    fitted = ds.find_atoms(obj, sampling=S, counts=frame.counts, psf=psf)
    score = metrics.score_sites(fitted, frame.sites, extent)
    # the network lifts a lone S towards S2 by a frame-dependent amount; the counts are linear in the atoms
    assert score["s_site_accuracy"] > 0.95
    assert score["s_site_accuracy"] > plain["s_site_accuracy"] + 0.1
    assert set(fitted.columns) >= {"x", "y", "species", "confidence", "intensity"}


def test_counts_and_psf_are_checked():
    sites_obj = np.zeros((80, 80))
    with pytest.raises(ValueError, match="counts and psf go together"):
        ds.find_atoms(sites_obj, sampling=S, counts=np.zeros((80, 80)))
    with pytest.raises(ValueError, match="NaN"):
        quantify.column_intensities(np.full((8, 8), np.nan), [0.5], [0.5], np.ones((3, 3)), S)
    with pytest.raises(ValueError, match="positive sum"):
        quantify.column_intensities(np.ones((8, 8)), [0.5], [0.5], np.zeros((3, 3)), S)
    with pytest.raises(ValueError, match="sigma"):
        quantify.gaussian_kernel(0.0)


def test_counts_of_another_shape_are_refused():
    from deepstem_utils import specimen

    sites = specimen.mos2_lattice((30.0, 30.0))
    obj = specimen.object_function(sites, (200, 200), 0.15)
    with pytest.raises(ValueError, match="object's shape"):
        ds.find_atoms(obj, sampling=0.15, counts=np.ones((100, 100)), psf=quantify.gaussian_kernel(3.0))
