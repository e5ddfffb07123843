"""Classical baselines: deconvolutions, BM3D, Atomap's Gaussians."""

from __future__ import annotations

import numpy as np
import pytest

import deepstem_utils as ds
from deepstem_utils.evaluation import baselines, metrics
from deepstem_utils.physics import specimen


@pytest.fixture(scope="module")
def blurred():
    sites = specimen.mos2_lattice((16.0, 16.0))
    obj = specimen.object_function(sites, (100, 100), 0.16)
    psf = ds.Probe(80e3, 30.0, {"C30": -5e3}, source_size=0.5).intensity((64, 64), 0.16)
    return obj, psf, ds.linear_image(obj, psf)


def test_deconvolutions_sharpen_a_noiseless_image(blurred):
    obj, psf, image = blurred
    scale = obj.sum() / image.sum()
    before = metrics.psnr(obj, image * scale)
    for estimate in (baselines.wiener(image, psf, balance=1e-3), baselines.richardson_lucy(image, psf, 50)):
        assert metrics.psnr(obj, estimate * obj.sum() / estimate.sum()) > before + 1.0
    rl = baselines.richardson_lucy(image, psf, 20)
    assert rl.sum() == pytest.approx(image.sum(), rel=0.02)  # RL keeps the counts


def test_gaussian_keeps_the_counts(blurred):
    _, _, image = blurred
    assert baselines.gaussian(image, 2.0).sum() == pytest.approx(image.sum(), rel=1e-6)


def test_bm3d_denoises_poisson_counts_without_bias():
    y, x = np.mgrid[0:96, 0:96]
    rate = 20 + 15 * np.sin(x / 6.0) * np.cos(y / 9.0)  # a smooth rate of 5-35 counts per pixel
    counts = np.random.default_rng(0).poisson(rate).astype(float)
    denoised = baselines.bm3d(counts)
    assert denoised.shape == counts.shape and np.all(np.isfinite(denoised)) and denoised.min() >= 0
    assert np.mean((denoised - rate) ** 2) < 0.25 * np.mean((counts - rate) ** 2)
    assert denoised.mean() == pytest.approx(rate.mean(), rel=0.03)  # the inverse Anscombe is unbiased


def test_atomap_gaussians_label_s_sites_from_the_frame():
    import deepstem_utils as ds
    from deepstem_utils.evaluation import metrics
    from deepstem_utils.network import dataset

    probe = ds.Probe(80e3, 30.0, {"C30": -5e3}, source_size=0.5)
    frame = dataset.simulate_frame((160, 160), sampling=0.16, dose=5e4, probe=probe, rng=3, s_vacancy=0.15,
                                   s_divacancy=0.05)
    start = ds.find_atoms(frame.obj, sampling=0.16)  # the sites only; the species come from the Gaussians
    start = start.assign(species=np.where(start.species.isin(["Mo", "Mo_adatom"]), start.species, "S2"))
    found = baselines.atomap_sites(frame.counts, start, 0.16)
    assert len(found) == len(start) and np.isfinite(found[["x", "y", "intensity"]].to_numpy()).all()
    score = metrics.score_sites(found, frame.sites, (160 * 0.16, 160 * 0.16))
    assert score["s_site_accuracy"] > 0.9  # S1 and empty sites recovered although every start said S2
    assert score["mo_rmse"] < 10.0  # pm


def test_atomap_sites_needs_enough_columns():
    import pandas as pd

    sites = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [1.0, 1.0, 2.0], "species": ["Mo", "Mo", "S2"]})
    with pytest.raises(ValueError, match="at least 10 columns"):
        baselines.atomap_sites(np.ones((64, 64)), sites, 0.16)
