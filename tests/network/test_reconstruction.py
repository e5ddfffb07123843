"""reconstruct(): shapes, units, data consistency, sizes and samplings, signals, precision, offsets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import deepstem_utils as ds
from deepstem_utils.network import dataset, model
from deepstem_utils.network.reconstruction import native_bfloat16, reconstruct
from deepstem_utils.physics.imaging import linear_image
from deepstem_utils.physics.probe import psf_grid

PROBE = ds.Probe(energy=80e3, semiangle=30.0, aberrations={"C30": -1e4})


@pytest.fixture(scope="module")
def frame():
    return dataset.simulate_frame((160, 192), sampling=0.16, dose=1e4, probe=PROBE, rng=11)


def test_reconstruct_shape_units_and_data_consistency(frame):
    obj = reconstruct(frame.counts, frame.probe, sampling=frame.sampling)
    assert obj.shape == frame.counts.shape and obj.dtype == np.float64
    assert np.all(np.isfinite(obj)) and obj.min() >= 0
    # the decoder reproduces the frame: reblurred object close to the noiseless image (in counts)
    psf = frame.probe.intensity((64, 64), frame.sampling)
    noiseless = linear_image(frame.obj, psf) * frame.electrons_per_pixel
    reblurred = linear_image(obj, psf)
    assert abs(reblurred.mean() / frame.counts.mean() - 1) < 0.05
    error = np.linalg.norm(reblurred - noiseless) / np.linalg.norm(noiseless)
    raw_error = np.linalg.norm(frame.counts - noiseless) / np.linalg.norm(noiseless)
    assert error < 0.5 * raw_error  # it denoises


def test_reconstruct_is_scale_equivariant(frame):
    a = reconstruct(frame.counts, frame.probe, sampling=frame.sampling)
    b = reconstruct(frame.counts * 7.0, frame.probe, sampling=frame.sampling)
    np.testing.assert_allclose(b, 7.0 * a, rtol=1e-4, atol=1e-6 * b.max())


def test_reconstruct_honours_the_probe(frame):
    wide = ds.Probe(energy=80e3, semiangle=15.0)
    a = reconstruct(frame.counts, frame.probe, sampling=frame.sampling)
    b = reconstruct(frame.counts, wide, sampling=frame.sampling)
    assert np.abs(a - b).mean() > 0.05 * a.mean()


@pytest.mark.parametrize("shape", [(64, 64), (64, 150), (97, 70)])
def test_reconstruct_any_size(shape):
    f = dataset.simulate_frame(shape, sampling=0.18, dose=5e3, probe=PROBE, rng=2)
    assert reconstruct(f.counts, PROBE, sampling=0.18).shape == shape


@pytest.mark.parametrize("sampling", [0.05, 0.3])
def test_reconstruct_resamples_outside_the_training_range(sampling):
    f = dataset.simulate_frame((96, 80), sampling=sampling, dose=1e4, probe=PROBE, rng=3)
    obj = reconstruct(f.counts, PROBE, sampling=sampling)
    assert obj.shape == (96, 80) and obj.min() >= 0
    assert abs(obj.sum() / f.counts.sum() - 1) < 0.1  # total intensity kept through the resampling


def test_tiling_leaves_no_seams():
    f = dataset.simulate_frame((300, 300), sampling=0.16, dose=1e4, probe=PROBE, rng=4)
    whole = reconstruct(f.counts, PROBE, sampling=0.16)
    tiled = reconstruct(f.counts, PROBE, sampling=0.16, tile=160, overlap=64)
    # the data-consistency steps run on the whole stitched object and spread a tile's small difference over its
    # columns (the more so, the further they fit the counts: 0.6 % RMS after 3 plain Richardson-Lucy steps, 1.9 %
    # after the shipped 10 accelerated ones). Judged against what matters, the noise: another Poisson draw of the
    # same frame changes the object by about 40 %; the tiling must change it at least ten times less
    other = np.random.default_rng(5).poisson(linear_image(f.obj, PROBE.intensity((64, 64), 0.16))
                                             * f.electrons_per_pixel).astype(float)
    noise = np.linalg.norm(reconstruct(other, PROBE, sampling=0.16) - whole)
    assert np.linalg.norm(tiled - whole) < 0.1 * noise
    # no seam: the column-to-column jump in the tiled result is no larger than in the untiled one
    assert np.abs(np.diff(tiled, axis=1)).max() < 1.1 * np.abs(np.diff(whole, axis=1)).max()


def test_the_tiled_encoder_agrees_with_the_whole_frame(tmp_path):
    """The encoder alone (no data-consistency steps): every pixel within 2 % of the object's maximum."""
    from deepstem_utils.network.weights import load_model, save_model

    net, config = load_model()
    save_model(net, tmp_path / "encoder.pt", dict(config, em_steps=0))
    f = dataset.simulate_frame((300, 300), sampling=0.16, dose=1e4, probe=PROBE, rng=4)
    whole = reconstruct(f.counts, PROBE, sampling=0.16, weights=tmp_path / "encoder.pt")
    tiled = reconstruct(f.counts, PROBE, sampling=0.16, tile=160, overlap=64, weights=tmp_path / "encoder.pt")
    assert np.abs(tiled - whole).max() < 0.02 * whole.max()


def test_reconstruct_signal_keeps_calibration(frame):
    hs = pytest.importorskip("hyperspy.api")
    signal = hs.signals.Signal2D(frame.counts)
    for axis in signal.axes_manager.signal_axes:
        axis.scale, axis.units = frame.sampling / 10, "nm"
    signal.metadata.General.title = "my frame"
    signal.metadata.set_item("Acquisition_instrument.TEM.beam_energy", 80.0)
    out = reconstruct(signal, frame.probe)
    assert isinstance(out, hs.signals.Signal2D)
    assert out.axes_manager.signal_axes[0].units == "nm"
    assert out.axes_manager.signal_axes[0].scale == pytest.approx(frame.sampling / 10)
    assert out.metadata.Acquisition_instrument.TEM.beam_energy == 80.0
    assert out.metadata.DeepSTEM.probe["semiangle"] == 30.0
    assert out.metadata.DeepSTEM.precision == ("bfloat16" if native_bfloat16() else "float32")  # the path that ran
    assert reconstruct(signal, frame.probe, precision="float32").metadata.DeepSTEM.precision == "float32"
    np.testing.assert_allclose(out.data, reconstruct(frame.counts, frame.probe, sampling=frame.sampling))
    assert signal.metadata.General.title == "my frame"  # the input is untouched


@pytest.mark.parametrize(
    "image, message",
    [
        (np.ones(100), "2-D"),
        (np.ones((3, 100, 100)), "2-D"),
        (np.full((100, 100), np.nan), "NaN"),
        (-np.ones((100, 100)), "negative"),
        (np.ones((100, 100)), "constant"),
        (np.random.default_rng(0).random((40, 100)), "64 px"),
        (np.array([["a"] * 80] * 80), "real numbers"),
    ],
)
def test_reconstruct_bad_input(image, message):
    with pytest.raises((ValueError, TypeError), match=message):
        reconstruct(image, PROBE, sampling=0.16)


def test_reconstruct_needs_sampling_and_a_probe(frame):
    with pytest.raises(ValueError, match="sampling"):
        reconstruct(frame.counts, PROBE)
    with pytest.raises(ValueError, match="plausible"):
        reconstruct(frame.counts, PROBE, sampling=5.0)
    with pytest.raises(TypeError, match="Probe"):
        reconstruct(frame.counts, {"energy": 80e3}, sampling=0.16)


def test_detector_pedestal_is_removed_automatically(frame):
    # an analogue detector: gain and a large dark offset; the object must come out the same
    clean = reconstruct(frame.counts, frame.probe, sampling=frame.sampling)
    raw = frame.counts * 40.0 + 5000.0
    obj = reconstruct(raw, frame.probe, sampling=frame.sampling)
    corr = np.corrcoef(obj.ravel(), clean.ravel())[0, 1]
    assert corr > 0.9
    # and counted data are not touched
    np.testing.assert_allclose(reconstruct(frame.counts, frame.probe, sampling=frame.sampling, offset=None), clean)


def test_bfloat16_gives_the_float32_object(frame):
    a = reconstruct(frame.counts, frame.probe, sampling=frame.sampling, precision="float32")
    b = reconstruct(frame.counts, frame.probe, sampling=frame.sampling, precision="bfloat16")
    assert b.dtype == np.float64 and b.shape == a.shape and b.min() >= 0
    assert np.linalg.norm(b - a) / np.linalg.norm(a) < 0.02
    assert abs(b.sum() / a.sum() - 1) < 0.005
    auto = reconstruct(frame.counts, frame.probe, sampling=frame.sampling, precision="auto")
    expected = b if native_bfloat16() else a
    np.testing.assert_array_equal(auto, expected)
    with pytest.raises(ValueError, match="precision"):
        reconstruct(frame.counts, frame.probe, sampling=frame.sampling, precision="float16")


def test_offset_shortcut_decides_as_the_full_estimate():
    """remove_offset skips the photon-transfer estimate when many pixels are dark; it must decide as the
    estimate would: for counted frames at several doses, with and without a pedestal and a gain."""
    from deepstem_utils.network.reconstruction import remove_offset
    from deepstem_utils.physics import detector, imaging

    skipped = 0
    for i, (dose, gain, offset) in enumerate([(3e3, 1.0, 0.0), (1e5, 1.0, 0.0), (1e6, 1.0, 0.0),
                                              (1e4, 40.0, 5000.0), (1e5, 50.0, 3000.0), (1e4, 1.0, 2.0)]):
        f = dataset.simulate_frame((128, 128), sampling=0.16, dose=dose, probe=PROBE, rng=i,
                                   acquisition=imaging.Acquisition(gain=gain, offset=offset))
        est = detector.estimate_gain_offset(f.counts)
        full = est["offset"] if (est["offset"] > 0.2 * f.counts.mean() and est["r2"] > 0.2) else 0.0
        _, used = remove_offset(f.counts, "auto")
        assert used == full
        skipped += np.count_nonzero(f.counts <= 0.2 * f.counts.mean()) >= 0.001 * (f.counts.size - 1) + 2
    assert 0 < skipped < 6   # both paths ran


def test_cached_probe_terms_give_the_same_encoder_input(frame):
    """The probe intensity and its Wiener filter are computed once per probe and grid, and give the input the
    uncached path gives; a different probe gets its own."""
    from deepstem_utils.network.reconstruction import probe_terms

    size = psf_grid(frame.sampling)
    psf = model.psf_tensor(frame.probe.intensity((size, size), frame.sampling))
    image = torch.rand(1, 1, 96, 112)
    cached_psf, filt, otfs = probe_terms(frame.probe, size, frame.sampling, (96, 112))
    same = ds.Probe.from_dict(frame.probe.to_dict())  # an equal probe, another object
    assert probe_terms(same, size, frame.sampling, (96, 112))[1] is filt
    torch.testing.assert_close(model.encoder_input(image, cached_psf, filt), model.encoder_input(image, psf))
    obj = torch.rand(1, 1, 96, 112)
    torch.testing.assert_close(model.em_refine(obj, image, cached_psf, 2, otfs=otfs), model.em_refine(obj, image, psf, 2))
    other = ds.Probe(frame.probe.energy, 20.0)
    other_psf = probe_terms(other, size, frame.sampling, (96, 112))[0]
    assert not torch.allclose(other_psf, cached_psf)


def test_enormous_values_give_a_finite_object_or_a_clear_error(frame):
    """reconstruct is scale-equivariant, also for values whose sum would overflow float64."""
    base = reconstruct(frame.counts, frame.probe, sampling=frame.sampling, precision="float32")
    big = reconstruct(frame.counts * 1e300, frame.probe, sampling=frame.sampling, precision="float32")
    assert np.all(np.isfinite(big))
    np.testing.assert_allclose(big / 1e300, base, rtol=1e-5, atol=1e-9 * base.max())
    with pytest.raises(ValueError, match="too large"):  # the frame is finite, its brightest columns' object is not
        reconstruct(frame.counts / frame.counts.max() * 1e308, frame.probe, sampling=frame.sampling)


@pytest.mark.parametrize("tile, overlap, match", [(100, 16, "tile"), (1000, 16, "tile"), (128, -1, "overlap"),
                                                  (128, 65, "overlap"), (256.0, 16, "tile"), (256, 8.5, "overlap")])
def test_tile_and_overlap_that_cannot_work_fail_before_any_work(frame, tile, overlap, match):
    with pytest.raises(ValueError, match=match):
        reconstruct(frame.counts, frame.probe, sampling=frame.sampling, tile=tile, overlap=overlap)


def test_a_missing_weights_file_fails_before_any_work(frame, tmp_path):
    with pytest.raises(FileNotFoundError, match="weights"):
        reconstruct(frame.counts, frame.probe, sampling=frame.sampling, weights=tmp_path / "none.pt")


def _one_atom_level(weights, seed):
    """(S1 - empty) / (S2 - empty) of the object integrated at the true sites (medians over the frame)."""
    from deepstem_utils.atoms.columns import integrated_intensity

    f = dataset.simulate_frame((256, 256), sampling=0.16, dose=1e5, rng=np.random.default_rng([31, seed]),
                               s_vacancy=0.12, s_divacancy=0.04)
    obj = reconstruct(f.counts, f.probe, sampling=0.16, weights=weights)
    species = np.asarray(f.sites.species).astype(str)
    x, y = np.asarray(f.sites.x), np.asarray(f.sites.y)
    inside = (x > 2) & (x < 256 * 0.16 - 2) & (y > 2) & (y < 256 * 0.16 - 2)
    level = {c: float(np.median(integrated_intensity(obj, x[inside & (species == c)], y[inside & (species == c)],
                                                     0.16))) for c in ("S1", "S2", "vacancy")}
    return (level["S1"] - level["vacancy"]) / (level["S2"] - level["vacancy"])


def test_the_object_carries_the_count_of_a_lone_s():
    """Integrated over a column, the object of a lone S atom is half an S2 column's (within 10 %), as the decoder
    is linear in the atoms; the encoder alone (v1, no data-consistency steps) lifts it towards S2 and fails."""
    from deepstem_utils.network.weights import WEIGHTS

    for seed in (0, 1):
        assert _one_atom_level(None, seed) == pytest.approx(0.5, abs=0.05)
    assert _one_atom_level(WEIGHTS.with_name("deepstem_v1.pt"), 0) > 0.55
