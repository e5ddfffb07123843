"""The autoencoder: decoder physics, encoder shapes, reconstruct(), weights files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import deepstem_utils as ds
from deepstem_utils import dataset, model
from deepstem_utils.imaging import linear_image
from deepstem_utils.reconstruction import reconstruct

PROBE = ds.Probe(energy=80e3, semiangle=30.0, aberrations={"C30": -1e4})


@pytest.fixture(scope="module")
def frame():
    return dataset.simulate_frame((160, 192), sampling=0.16, dose=1e4, probe=PROBE, rng=11)


@pytest.mark.parametrize("psf_shape", [(9, 9), (10, 7), (64, 64), (33, 40)])
def test_decoder_equals_linear_image(psf_shape):
    rng = np.random.default_rng(0)
    obj = rng.random((70, 90))
    psf = rng.random(psf_shape)
    psf /= psf.sum()
    decoded = model.decode(torch.from_numpy(obj)[None, None], torch.from_numpy(psf))[0, 0].numpy()
    np.testing.assert_allclose(decoded, linear_image(obj, psf), atol=1e-12)


def test_decoder_can_fail():
    # a shifted PSF must give a different image: the comparison above is not vacuous
    rng = np.random.default_rng(1)
    obj = rng.random((40, 40))
    psf = np.zeros((9, 9))
    psf[4, 5] = 1.0
    decoded = model.decode(torch.from_numpy(obj)[None, None], torch.from_numpy(psf))[0, 0].numpy()
    centred = np.zeros((9, 9))
    centred[4, 4] = 1.0
    assert np.abs(decoded - linear_image(obj, centred)).max() > 0.1


def test_encoder_is_non_negative_and_keeps_shape():
    net = model.UNet(base=8, depth=3)
    x = torch.randn(2, 2, 48, 64) * 5
    out = net(x)
    assert out.shape == (2, 1, 48, 64)
    assert float(out.detach().min()) >= 0


def test_atom_blur_keeps_mass_and_has_the_atom_width():
    density = torch.zeros(2, 1, 41, 41)
    density[:, 0, 20, 20] = 1.0
    out = model.atom_blur(density, torch.tensor([0.8, 1.6]))
    np.testing.assert_allclose(out.sum((1, 2, 3)).numpy(), 1.0, rtol=1e-6)
    for b, sigma in enumerate([0.8, 1.6]):
        profile = out[b, 0, 20].numpy()
        x = np.arange(41) - 20
        measured = np.sqrt(np.sum(profile * x**2) / profile.sum())
        assert measured == pytest.approx(sigma, rel=0.05)


def test_wiener_restores_a_blurred_point():
    psf = PROBE.intensity((64, 64), 0.16)
    obj = np.zeros((96, 96))
    obj[40, 50] = 1.0
    image = linear_image(obj, psf) + 1e-3
    image /= image.mean()
    out = model.wiener(torch.from_numpy(image)[None, None], torch.from_numpy(psf))[0, 0].numpy()
    assert np.unravel_index(np.argmax(out), out.shape) == (40, 50)
    assert out.max() > 1.5 * image.max()  # sharper than the blurred point


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
    assert np.abs(tiled - whole).max() < 0.02 * whole.max()
    # no seam: the column-to-column jump in the tiled result is no larger than in the untiled one
    assert np.abs(np.diff(tiled, axis=1)).max() < 1.1 * np.abs(np.diff(whole, axis=1)).max()


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


def test_corrupt_and_foreign_weights(tmp_path, frame):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00not a torch file")
    foreign = tmp_path / "foreign.pt"
    torch.save({"some": torch.zeros(3)}, foreign)
    for path, message in [(corrupt, "not a readable weights file"), (foreign, "not a DeepSTEM weights file"),
                          (tmp_path / "missing.pt", "not found")]:
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            reconstruct(frame.counts, PROBE, sampling=0.16, weights=path)
    assert corrupt.read_bytes() == b"\x00not a torch file"  # nothing the user owns is changed


def test_shipped_weights_are_small_and_match_their_hash():
    import hashlib
    import json

    record = json.loads(model.WEIGHTS.with_suffix(".json").read_text())
    data = model.WEIGHTS.read_bytes()
    assert len(data) < 20e6
    assert hashlib.sha256(data).hexdigest() == record["sha256"]
    net, config = model.load_model()
    assert config == record["config"]


def test_detector_pedestal_is_removed_automatically(frame):
    # an analogue detector: gain and a large dark offset; the object must come out the same
    clean = reconstruct(frame.counts, frame.probe, sampling=frame.sampling)
    raw = frame.counts * 40.0 + 5000.0
    obj = reconstruct(raw, frame.probe, sampling=frame.sampling)
    corr = np.corrcoef(obj.ravel(), clean.ravel())[0, 1]
    assert corr > 0.9
    # and counted data are not touched
    np.testing.assert_allclose(reconstruct(frame.counts, frame.probe, sampling=frame.sampling, offset=None), clean)


def test_gain_offset_estimate():
    from deepstem_utils import detector, imaging

    f = dataset.simulate_frame((384, 384), sampling=0.16, dose=1e5, probe=PROBE, rng=1,
                               acquisition=imaging.Acquisition(gain=50.0, offset=3000.0))
    est = detector.estimate_gain_offset(f.counts)
    assert est["offset"] == pytest.approx(3000.0, abs=150)
    assert est["gain"] == pytest.approx(50.0, rel=0.35)


def test_upsampling_path_equals_interpolate_then_project():
    """The U-Net projects channels (1x1 conv) before the bilinear upsampling: the same map as after it."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    net = model.UNet(base=8, depth=3)
    x = torch.randn(1, 8 * 4, 12, 20)
    for up in net.up:
        x_up = x[:, :up.in_channels]
        after = up(F.interpolate(x_up, scale_factor=2, mode="bilinear", align_corners=False))
        before = F.interpolate(up(x_up), scale_factor=2, mode="bilinear", align_corners=False)
        torch.testing.assert_close(before, after, rtol=1e-5, atol=1e-5)


def test_bfloat16_gives_the_float32_object(frame):
    a = reconstruct(frame.counts, frame.probe, sampling=frame.sampling, precision="float32")
    b = reconstruct(frame.counts, frame.probe, sampling=frame.sampling, precision="bfloat16")
    assert b.dtype == np.float64 and b.shape == a.shape and b.min() >= 0
    assert np.linalg.norm(b - a) / np.linalg.norm(a) < 0.02
    assert abs(b.sum() / a.sum() - 1) < 0.005
    auto = reconstruct(frame.counts, frame.probe, sampling=frame.sampling, precision="auto")
    expected = b if ds.reconstruction.native_bfloat16() else a
    np.testing.assert_array_equal(auto, expected)
    with pytest.raises(ValueError, match="precision"):
        reconstruct(frame.counts, frame.probe, sampling=frame.sampling, precision="float16")


def test_offset_shortcut_decides_as_the_full_estimate():
    """_remove_offset skips the photon-transfer estimate when many pixels are dark; it must decide as the
    estimate would: for counted frames at several doses, with and without a pedestal and a gain."""
    from deepstem_utils import detector, imaging
    from deepstem_utils.reconstruction import _remove_offset

    skipped = 0
    for i, (dose, gain, offset) in enumerate([(3e3, 1.0, 0.0), (1e5, 1.0, 0.0), (1e6, 1.0, 0.0),
                                              (1e4, 40.0, 5000.0), (1e5, 50.0, 3000.0), (1e4, 1.0, 2.0)]):
        f = dataset.simulate_frame((128, 128), sampling=0.16, dose=dose, probe=PROBE, rng=i,
                                   acquisition=imaging.Acquisition(gain=gain, offset=offset))
        est = detector.estimate_gain_offset(f.counts)
        full = est["offset"] if (est["offset"] > 0.2 * f.counts.mean() and est["r2"] > 0.2) else 0.0
        _, used = _remove_offset(f.counts, "auto")
        assert used == full
        skipped += np.count_nonzero(f.counts <= 0.2 * f.counts.mean()) >= 0.001 * (f.counts.size - 1) + 2
    assert 0 < skipped < 6   # both paths ran


def test_cached_probe_terms_give_the_same_encoder_input(frame):
    """The probe intensity and its Wiener filter are computed once per probe and grid, and give the input the
    uncached path gives; a different probe gets its own."""
    from deepstem_utils.reconstruction import _probe_terms

    size = model.psf_grid(frame.sampling)
    psf = model._psf_tensor(frame.probe.intensity((size, size), frame.sampling))
    image = torch.rand(1, 1, 96, 112)
    key = json.dumps(frame.probe.to_dict(), sort_keys=True)
    cached_psf, filt = _probe_terms(key, size, frame.sampling, (96, 112))
    assert _probe_terms(key, size, frame.sampling, (96, 112))[1] is filt
    torch.testing.assert_close(model.encoder_input(image, cached_psf, filt), model.encoder_input(image, psf))
    other = ds.Probe(frame.probe.energy, 20.0)
    other_psf, _ = _probe_terms(json.dumps(other.to_dict(), sort_keys=True), size, frame.sampling, (96, 112))
    assert not torch.allclose(other_psf, cached_psf)


def test_atom_blur_equals_a_separable_gaussian_convolution():
    """The shifted-copies blur is the separable Gaussian convolution with replicated edges (per sample sigma)."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    density = torch.from_numpy(rng.random((2, 1, 40, 56)).astype(np.float32))
    sigma = torch.tensor([0.6, 1.7])
    out = model.atom_blur(density, sigma).numpy()
    for k, s in enumerate(sigma.tolist()):
        half = max(1, int(np.ceil(3 * float(sigma.max()))))
        t = np.arange(-half, half + 1)
        w = np.exp(-0.5 * (t / s) ** 2)
        w /= w.sum()
        ref = ndimage.convolve1d(ndimage.convolve1d(density[k, 0].numpy().astype(float), w, axis=0, mode="nearest"),
                                 w, axis=1, mode="nearest")
        np.testing.assert_allclose(out[k, 0], ref, rtol=1e-5, atol=1e-6)
