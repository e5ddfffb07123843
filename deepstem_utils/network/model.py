"""The physics-informed autoencoder of DeepSTEM and :func:`reconstruct`.

Encoder: a small U-Net that maps a noisy HAADF frame to a non-negative atom
density (softplus output), spread to the width of an atom by a fixed last
layer (:func:`atom_blur`) to give the object function. It sees two channels: the frame normalised to
mean 1, and the same frame Wiener-filtered with the probe it is given, so the
encoder is conditioned on the probe (it is trained over a distribution of
probes, :func:`dataset.random_probe`).

Decoder: the linear image model, convolution with the probe intensity
(:func:`decode`), **fixed, not learned**; it equals
:func:`imaging.linear_image` with reflecting boundaries.

Data consistency: the encoder's object can be followed by a few fixed
expectation-maximisation steps of the Poisson likelihood of the frame under the
decoder (:func:`em_refine`, Richardson-Lucy steps started from the encoder's
object). They keep the encoder's support and atom shapes but move every
column's weight towards what the counts say, so the object's column integrals
are linear in the atoms (the object carries the count).

Training (:mod:`deepstem_utils.train`) compares the decoded image with an
*independent* noise realisation of the same frame (a binomial split of the
counts), so the network cannot win by reproducing the noise.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.fft import next_fast_len
from torch import nn

__all__ = ["UNet", "decode", "decoder_grid", "decoder_otf", "decode_adjoint", "em_refine", "em_otfs", "wiener", "wiener_filter", "atom_blur", "encoder_input",
           "psf_tensor", "WIENER_EPS"]

#: Regularisation of the Wiener channel, relative to |OTF(0)|² = 1.
WIENER_EPS = 0.03


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)

    def forward(self, x):
        return F.silu(self.conv2(F.silu(self.conv1(x))))


class UNet(nn.Module):
    """Encoder: a U-Net with ``depth`` resolution levels and a softplus output.

    Parameters
    ----------
    base : int
        Channels at the first level (doubled at each level).
    depth : int
        Number of levels.
    in_channels : int
        Input channels (frame and its Wiener-filtered copy).
    stem : {1, 2}
        With 2, the input is folded into 2 × 2 blocks (``pixel_unshuffle``: 4× the channels at half the
        resolution) and the output unfolded again (``pixel_shuffle``): every layer then works at half
        resolution or less, which is several times cheaper on a CPU (the full-resolution layers dominate the
        cost of a U-Net, in arithmetic and in memory traffic), while the output keeps full resolution.
        Input sides must be multiples of ``stem * 2**(depth-1)`` (:attr:`multiple`).
    """

    def __init__(self, base: int = 16, depth: int = 3, in_channels: int = 2, stem: int = 1):
        super().__init__()
        if stem not in (1, 2):
            raise ValueError(f"stem must be 1 or 2, got {stem!r}")
        self.depth, self.stem = depth, stem
        chans = [base * 2**i for i in range(depth)]
        self.down = nn.ModuleList()
        cin = in_channels * stem**2
        for c in chans:
            self.down.append(_Block(cin, c))
            cin = c
        self.up = nn.ModuleList()
        self.fuse = nn.ModuleList()
        for c_hi, c_lo in zip(chans[-2::-1], chans[:0:-1]):
            self.up.append(nn.Conv2d(c_lo, c_hi, 1))
            self.fuse.append(_Block(2 * c_hi, c_hi))
        self.head = nn.Conv2d(chans[0], stem**2, 1)

    @property
    def multiple(self) -> int:
        """Input sides must be multiples of this [px]."""
        return self.stem * 2 ** (self.depth - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stem > 1:
            x = F.pixel_unshuffle(x, self.stem)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.avg_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up, fuse in zip(self.up, self.fuse):
            # the 1x1 convolution commutes with bilinear upsampling (both linear; the weights of an interpolated
            # pixel sum to 1, so the bias passes through): applied first, on a quarter of the pixels
            x = F.interpolate(up(x), scale_factor=2, mode="bilinear", align_corners=False)
            x = fuse(torch.cat([x, skips.pop()], 1))
        x = F.softplus(self.head(x))
        return F.pixel_shuffle(x, self.stem) if self.stem > 1 else x


# ------------------------------------------------------------------ physics
def atom_blur(density: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """The encoder's fixed last layer: an atom density blurred to the width of an atom.

    An atom's peak in the object has a physical width (thermal vibration and the
    extent of high-angle scattering, about 0.1 Å). Without it, the sparsity prior
    would pile a column's whole weight into a single pixel. The blur keeps the
    total (each kernel sums to 1).

    Parameters
    ----------
    density : (b, 1, ny, nx) tensor
        Non-negative atom density from the U-Net.
    sigma : float or (b,) tensor
        Standard deviation of the atom's peak [px] (per sample).
    """
    b = density.shape[0]
    sigma = torch.as_tensor(sigma, dtype=density.dtype).reshape(-1).expand(b)
    if float(sigma.max()) <= 0:
        return density
    half = max(1, int(math.ceil(3 * float(sigma.max()))))
    t = torch.arange(-half, half + 1, dtype=density.dtype)
    kernel = torch.exp(-0.5 * (t[None, :] / sigma.clamp_min(1e-3)[:, None]) ** 2)
    kernel = kernel / kernel.sum(1, keepdim=True)  # (b, k)
    x = F.pad(density, (half, half, half, half), mode="replicate")
    ny, nx = density.shape[-2:]
    taps = [kernel[:, j].reshape(b, 1, 1, 1) for j in range(2 * half + 1)]
    # a sum of shifted copies: 3-6x faster than a 1-channel conv2d on CPU, the same numbers to float rounding
    rows = sum(w * x[..., j:j + ny, :] for j, w in enumerate(taps))     # along rows
    return sum(w * rows[..., j:j + nx] for j, w in enumerate(taps))     # along columns


def _symmetric_index(n: int, before: int, after: int) -> torch.Tensor:
    return torch.from_numpy(np.pad(np.arange(n), (before, after), mode="symmetric"))


def _pad_axis(x: torch.Tensor, before: int, after: int, dim: int) -> torch.Tensor:
    """numpy's ``symmetric`` padding along ``dim``: mirrored copies, edge pixel repeated (cheap to backpropagate)."""
    n = x.shape[dim]
    if before <= n and after <= n:
        parts = [torch.flip(x.narrow(dim, 0, before), (dim,))] if before else []
        parts.append(x)
        if after:
            parts.append(torch.flip(x.narrow(dim, n - after, after), (dim,)))
        return torch.cat(parts, dim) if len(parts) > 1 else x
    return x.index_select(dim, _symmetric_index(n, before, after))  # a pad wider than the array: repeat the mirror


def _pad_symmetric(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """numpy's ``symmetric`` padding (edge pixel repeated) on the last two axes."""
    return _pad_axis(_pad_axis(x, top, bottom, x.dim() - 2), left, right, x.dim() - 1)


def _fast(n: int) -> int:
    return next_fast_len(int(n), real=True)


def decoder_grid(shape: tuple[int, int], psf_shape: tuple[int, int]) -> tuple[int, int]:
    """FFT grid of the decoder for objects of ``shape`` and a PSF of ``psf_shape``: no wrap-around, a fast size."""
    (ny, nx), (py, px) = shape, psf_shape
    return _fast(ny + 2 * py - 2), _fast(nx + 2 * px - 2)


def decoder_otf(psf: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """``rfft2`` of ``psf`` on the decoder's grid for objects of ``shape``: computed once when many objects share
    a probe (:func:`em_refine` in :func:`reconstruct`)."""
    return torch.fft.rfft2(psf, s=decoder_grid(shape, psf.shape[-2:]))


def decode(obj: torch.Tensor, psf: torch.Tensor, otf: torch.Tensor | None = None) -> torch.Tensor:
    """The fixed decoder: the linear image of ``obj`` with ``psf`` (reflecting boundaries).

    Parameters
    ----------
    obj : (b, 1, ny, nx) tensor
        Object functions.
    psf : (b, 1, py, px) or (py, px) tensor
        Probe intensities centred on ``(py//2, px//2)``, each summing to 1.
    otf : tensor, optional
        :func:`decoder_otf` ``(psf, (ny, nx))``, when already computed.

    Returns
    -------
    (b, 1, ny, nx) tensor
        Equal to :func:`imaging.linear_image` ``(obj, psf, boundary="reflect")``.
    """
    ny, nx = obj.shape[-2:]
    py, px = psf.shape[-2:]
    top, bottom = py - 1 - py // 2, py // 2
    left, right = px - 1 - px // 2, px // 2
    padded = _pad_symmetric(obj, top, bottom, left, right)
    fy, fx = decoder_grid((ny, nx), (py, px))
    if otf is None:
        otf = torch.fft.rfft2(psf, s=(fy, fx))
    full = torch.fft.irfft2(torch.fft.rfft2(padded, s=(fy, fx)) * otf, s=(fy, fx))
    return full[..., py - 1 : py - 1 + ny, px - 1 : px - 1 + nx]


def _flipped(psf: torch.Tensor) -> torch.Tensor:
    """The PSF mirrored through its centre pixel (``py//2, px//2`` stays the centre): the adjoint's kernel."""
    py, px = psf.shape[-2:]
    flipped = torch.flip(psf, dims=(-2, -1))
    return torch.roll(flipped, shifts=(1 - py % 2, 1 - px % 2), dims=(-2, -1))


def decode_adjoint(image: torch.Tensor, psf: torch.Tensor) -> torch.Tensor:
    """The correlation with the PSF (the decoder's adjoint, up to the treatment of the frame's edges)."""
    return decode(image, _flipped(psf))


def em_refine(obj: torch.Tensor, image: torch.Tensor, psf: torch.Tensor, steps: int,
              floor: float = 1e-6, otfs: tuple[torch.Tensor, torch.Tensor] | None = None,
              power: float = 1.0) -> torch.Tensor:
    """Expectation-maximisation steps of the Poisson likelihood of ``image`` under the decoder, from ``obj``.

    Each step is the Richardson-Lucy update :math:`O \\leftarrow O \\cdot P^T\\!\\circledast
    \\left[x / (P \\circledast O)\\right]`: multiplicative, so the object stays non-negative and
    keeps its support (a pixel the encoder left empty stays nearly empty), and every step raises the
    likelihood of the frame. Started from the encoder's object, a few steps move each column's weight
    towards the counts that the frame holds for it, so integrals over columns become linear in the atoms,
    as the decoder is. Differentiable (it is part of the network in training).

    Parameters
    ----------
    obj : (b, 1, ny, nx) tensor
        Non-negative starting object.
    image : (b, 1, ny, nx) tensor
        The frame, in the units of ``decode(obj, psf)``.
    psf : (b, 1, py, px) or (py, px) tensor
        Probe intensities (centred, each summing to 1).
    steps : int
        Number of updates (0 returns ``obj``).
    floor : float
        Smallest value of the decoded image in a ratio, relative to the image's mean.
    otfs : (tensor, tensor), optional
        :func:`em_otfs` ``(psf, (ny, nx))``, when already computed.
    power : float
        Exponent ``q`` of the correction, :math:`O \\leftarrow O \\cdot (P^T\\!\\circledast[x/(P\\circledast O)])^q`:
        1 is Richardson-Lucy; 1 < q ≤ 2 takes longer steps along the same path, so fewer of them reach the
        same likelihood (the accelerated iteration of E. S. Meinel, J. Opt. Soc. Am. A 3, 787 (1986)): from a
        start near the solution, as the encoder's object is, 10 steps of power 2 reach the likelihood of about
        20 plain ones (a unit test checks it); from a flat start its first steps overshoot.
    """
    if not 0 < power <= 2.5:
        raise ValueError(f"power must be in (0, 2.5], got {power!r}")
    if steps <= 0:
        return obj
    small = floor * image.mean(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    flipped = _flipped(psf)
    forward, adjoint = (None, None) if otfs is None else otfs
    for _ in range(steps):
        ratio = image / decode(obj, psf, forward).clamp_min(small)
        correction = decode(ratio, flipped, adjoint).clamp_min(0)
        obj = obj * (correction if power == 1 else correction**power)
    return obj


def em_otfs(psf: torch.Tensor, shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The transfer functions :func:`em_refine` needs for objects of ``shape``: of the PSF and of its mirror."""
    return decoder_otf(psf, shape), decoder_otf(_flipped(psf), shape)


def _wiener_grid(shape: tuple[int, int], psf_shape: tuple[int, int]) -> tuple[int, int]:
    """FFT grid of the Wiener channel: the image padded by half the PSF on every side, at a fast size."""
    return _fast(shape[0] + 2 * (psf_shape[0] // 2)), _fast(shape[1] + 2 * (psf_shape[1] // 2))


def wiener_filter(psf: torch.Tensor, shape: tuple[int, int], eps: float = WIENER_EPS) -> torch.Tensor:
    """The Wiener filter of ``psf`` in Fourier space (``rfft2`` layout) for images of ``shape`` (ny, nx).

    :func:`wiener` builds it when not given; a caller filtering many frames with one probe
    (``reconstruct`` on a series) computes it once.
    """
    py, px = psf.shape[-2:]
    fy, fx = _wiener_grid(shape, (py, px))
    kernel = torch.zeros(psf.shape[:-2] + (fy, fx), dtype=psf.dtype)
    rows = (torch.arange(py) - py // 2) % fy
    cols = (torch.arange(px) - px // 2) % fx
    kernel[..., rows[:, None], cols[None, :]] = psf
    otf = torch.fft.rfft2(kernel)
    return otf.conj() / (otf.abs() ** 2 + eps)


def wiener(image: torch.Tensor, psf: torch.Tensor, eps: float = WIENER_EPS,
           filt: torch.Tensor | None = None) -> torch.Tensor:
    """Wiener-filtered image with the probe: the probe-conditioning channel.

    Parameters
    ----------
    image : (b, 1, ny, nx) tensor
        Images normalised to mean 1.
    psf : (b, 1, py, px) or (py, px) tensor
        Probe intensities (centred, summing to 1).
    eps : float
        Regularisation relative to :math:`|\\mathrm{OTF}(0)|^2 = 1`.
    filt : tensor, optional
        :func:`wiener_filter` ``(psf, (ny, nx), eps)``, when already computed.
    """
    ny, nx = image.shape[-2:]
    py, px = psf.shape[-2:]
    mh, mw = py // 2, px // 2
    if filt is None:
        filt = wiener_filter(psf, (ny, nx), eps)
    padded = _pad_symmetric(image, mh, mh, mw, mw)
    fy, fx = _wiener_grid((ny, nx), (py, px))
    out = torch.fft.irfft2(torch.fft.rfft2(padded, s=(fy, fx)) * filt, s=(fy, fx))
    return out[..., mh : mh + ny, mw : mw + nx]


def encoder_input(image: torch.Tensor, psf: torch.Tensor, filt: torch.Tensor | None = None) -> torch.Tensor:
    """Stack the normalised frame and its Wiener-filtered copy: ``(b, 2, ny, nx)`` (``filt``: see :func:`wiener`)."""
    return torch.cat([image, wiener(image, psf, filt=filt)], dim=1)


def psf_tensor(psf: np.ndarray) -> torch.Tensor:
    """A probe intensity as the float32 tensor the network's layers take."""
    return torch.from_numpy(np.ascontiguousarray(psf, dtype=np.float32))
