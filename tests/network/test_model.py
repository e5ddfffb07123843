"""The autoencoder's layers: the decoder equals the linear image model; encoder, atom blur, Wiener channel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import deepstem_utils as ds
from deepstem_utils.network import model
from deepstem_utils.physics.imaging import linear_image

PROBE = ds.Probe(energy=80e3, semiangle=30.0, aberrations={"C30": -1e4})


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


def _poisson_nll(obj, image, psf):
    mu = model.decode(obj, psf).clamp_min(1e-12)
    return float((mu - image * torch.log(mu)).sum())


def test_accelerated_em_steps_reach_the_likelihood_of_more_plain_ones():
    """From a start near the solution (as the encoder's object is; here 10 plain steps from a flat object),
    10 steps of Meinel's accelerated form (power 2) raise the frame's likelihood as far as 20 plain
    Richardson-Lucy steps (within 5 % of the gain) and further than 10; a power outside (0, 2.5] is refused."""
    rng = np.random.default_rng(2)
    psf = torch.from_numpy(PROBE.intensity((33, 33), 0.16).astype(np.float32))
    truth = torch.from_numpy((rng.random((64, 64)) < 0.03) * 50.0 + 0.5).float()[None, None]
    image = torch.poisson(model.decode(truth, psf), generator=torch.Generator().manual_seed(0))
    start = model.em_refine(torch.full_like(image, float(image.mean())), image, psf, 10)
    nll = {(k, q): _poisson_nll(model.em_refine(start, image, psf, k, power=q), image, psf)
           for k, q in [(0, 1.0), (10, 1.0), (20, 1.0), (10, 2.0)]}
    assert nll[(10, 2.0)] < nll[(10, 1.0)] < nll[(0, 1.0)]
    assert abs(nll[(10, 2.0)] - nll[(20, 1.0)]) < 0.05 * (nll[(0, 1.0)] - nll[(20, 1.0)])
    with pytest.raises(ValueError, match="power"):
        model.em_refine(start, image, psf, 1, power=3.0)
