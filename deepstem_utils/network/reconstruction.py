"""``reconstruct()``: a HAADF frame in, the object function out.

The public function checks and converts the input (ndarray or Signal2D,
calibration, counts), brings the frame to a pixel size the network was trained
on (:data:`dataset.SAMPLING_RANGE`), runs the encoder of :mod:`model` (tiled
with overlap for large frames) and returns the object function on the input's
grid, scaled so that the decoder reproduces the frame:
``linear_image(obj, probe.intensity(...)) ≈ image``.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache

import numpy as np
import torch
from skimage.transform import resize
from tqdm.auto import tqdm

from ..core.signals import unwrap
from ..core.version import __version__
from ..physics.detector import estimate_gain_offset, offset_cannot_exceed
from ..physics.probe import Probe, psf_grid
from .dataset import SAMPLING_RANGE
from .model import atom_blur, em_otfs, em_refine, encoder_input, psf_tensor, wiener_filter
from .weights import WEIGHTS, load_model, sha256, weights_calibration

__all__ = ["reconstruct", "native_bfloat16", "probe_terms", "remove_offset", "MIN_SIDE", "SUPPORTED_SAMPLING"]

#: Smallest image side [px].
MIN_SIDE = 64
#: Pixel sizes the contract promises [Å]; frames outside are resampled if within (0.02, 1.0).
SUPPORTED_SAMPLING = (0.05, 0.30)


@lru_cache(maxsize=4)
def _cached_model(path: str | None, mtime: float):
    net, config = load_model(path)
    # channels-last convolutions are 15-25 % faster on CPU (oneDNN); the numbers are the same to float precision
    return net.to(memory_format=torch.channels_last), config


@lru_cache(maxsize=4)
def probe_terms(probe: Probe, size: int, work: float, shape: tuple[int, int]):
    """The probe intensity on the working grid [``size`` px of ``work`` Å], its Wiener filter and the transfer
    functions of the data-consistency steps for a padded frame of ``shape``: the same for every frame of a
    series, so computed once per probe (a ``Probe`` is hashable). Few are kept: the terms of a 4k² frame hold
    about 200 MB."""
    with torch.no_grad():
        psf = psf_tensor(probe.intensity((size, size), work))
        return psf, wiener_filter(psf, shape), em_otfs(psf, shape)


def _model(weights):
    path = WEIGHTS if weights is None else weights
    path = os.fspath(path)
    mtime = os.path.getmtime(path) if os.path.isfile(path) else -1.0
    return _cached_model(None if weights is None else path, mtime)


def _ceil_to(n: int, m: int) -> int:
    return int(math.ceil(n / m) * m)


def _check_image(image) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim != 2:
        raise ValueError(f"image must be 2-D (ny, nx); got shape {array.shape} "
                         "(for a stack or series, call reconstruct on each frame or use `deepstem series`)")
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise TypeError(f"image must hold real numbers (detector counts), got dtype {array.dtype}")
    if min(array.shape) < MIN_SIDE:
        raise ValueError(f"image is {array.shape[0]}x{array.shape[1]} px; at least {MIN_SIDE} px a side is needed")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        bad = int(np.sum(~np.isfinite(array)))
        raise ValueError(f"image contains {bad} NaN/inf pixel(s); replace them (e.g. with the median) first")
    if array.min() < 0:
        raise ValueError(f"image has negative values (min {array.min():.3g}); reconstruct needs non-negative "
                         "detector counts: remove a subtracted offset or clip at 0")
    if array.max() == array.min():
        raise ValueError("image is constant: there is no structure to reconstruct")
    return array


#: Tiles are multiples of this many pixels (every encoder's downsampling divides it).
TILE_MULTIPLE = 32


def _check_tiles(tile, overlap):
    """``tile`` a multiple of :data:`TILE_MULTIPLE` of at least 128 px, ``overlap`` 0 to half of it (the blend
    ramps at the two ends of a tile must not overlap)."""
    if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < 128 or tile % TILE_MULTIPLE:
        raise ValueError(f"tile must be a whole number of pixels, a multiple of {TILE_MULTIPLE} and at least 128, "
                         f"got {tile!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or not 0 <= overlap <= tile // 2:
        raise ValueError(f"overlap must be a whole number of pixels from 0 to tile/2 = {tile // 2}, got {overlap!r}")


def _finite(value, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def _check_sampling(sampling) -> float:
    try:
        sampling = float(sampling)
    except (TypeError, ValueError):
        raise ValueError(f"sampling must be a pixel size in Å, got {sampling!r}") from None
    if not np.isfinite(sampling) or not 0.02 < sampling < 1.0:
        raise ValueError(f"sampling {sampling!r} Å/px is not a plausible atomic-resolution pixel size "
                         f"(supported {SUPPORTED_SAMPLING[0]}-{SUPPORTED_SAMPLING[1]} Å/px); check the calibration")
    return sampling


def _blend_window(n: int, overlap: int) -> np.ndarray:
    w = np.ones(n)
    ramp = (np.arange(overlap) + 0.5) / overlap
    w[:overlap] = ramp
    w[n - overlap:] = ramp[::-1]
    return w


def _tiles(n: int, tile: int, overlap: int) -> list[int]:
    if n <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, n - tile, step)) + [n - tile]
    return sorted(set(starts))


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 convolutions natively (AVX512-BF16 or AMX, through oneDNN)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _use_bfloat16(precision: str) -> bool:
    if precision not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"precision must be 'auto', 'float32' or 'bfloat16', got {precision!r}")
    return precision == "bfloat16" or (precision == "auto" and native_bfloat16())


def _run_network(net, x: torch.Tensor, sigma: float, tile: int, overlap: int, progress: bool,
                 bfloat16: bool = False) -> np.ndarray:
    """Encoder (U-Net and atom blur) on a (1, 2, H, W) input, tiled with blended overlaps when large.

    With ``bfloat16`` the U-Net's convolutions run in bfloat16 (the input, the output and the atom blur stay
    float32)."""
    _, _, h, w = x.shape

    def encoder(t):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
            density = net(t.contiguous(memory_format=torch.channels_last))
        return atom_blur(density.float().contiguous(), sigma)

    if h <= tile and w <= tile:
        return encoder(x)[0, 0].numpy().astype(np.float64)
    out = np.zeros((h, w))
    norm = np.zeros((h, w))
    rows, cols = _tiles(h, tile, overlap), _tiles(w, tile, overlap)
    bar = tqdm(total=len(rows) * len(cols), desc="tiles", disable=not progress, leave=False)
    for r in rows:
        for c in cols:
            th, tw = min(tile, h), min(tile, w)
            pred = encoder(x[:, :, r:r + th, c:c + tw])[0, 0].numpy().astype(np.float64)
            wy = _blend_window(th, overlap) if h > tile else np.ones(th)
            wx = _blend_window(tw, overlap) if w > tile else np.ones(tw)
            if r == 0 and h > tile:
                wy[:overlap] = 1
            if r + th == h and h > tile:
                wy[th - overlap:] = 1
            if c == 0 and w > tile:
                wx[:overlap] = 1
            if c + tw == w and w > tile:
                wx[tw - overlap:] = 1
            weight = wy[:, None] * wx[None, :]
            out[r:r + th, c:c + tw] += pred * weight
            norm[r:r + th, c:c + tw] += weight
            bar.update()
    bar.close()
    return out / norm


def _reconstruct_array(image: np.ndarray, probe: Probe, sampling: float, weights, tile: int, overlap: int,
                       progress: bool, bfloat16: bool = False) -> np.ndarray:
    net, config = _model(weights)
    ny, nx = image.shape
    work = float(np.clip(sampling, *SAMPLING_RANGE))
    zoomed = not math.isclose(work, sampling, rel_tol=1e-9)
    if zoomed:
        shape = (max(8, round(ny * sampling / work)), max(8, round(nx * sampling / work)))
        # area-averaging when shrinking (anti-aliased), so the counts' mean is kept without point-sampling noise
        x = resize(image, shape, order=1, mode="reflect", anti_aliasing=sampling < work, preserve_range=True)
    else:
        x = image
    scale = float(x.mean())
    if not scale > 0:
        raise ValueError("the image holds no counts after resampling to the working pixel size")
    x = x / scale
    multiple = net.multiple
    margin = 16
    h, w = x.shape
    ph, pw = _ceil_to(h + 2 * margin, multiple), _ceil_to(w + 2 * margin, multiple)
    top, left = (ph - h) // 2, (pw - w) // 2
    padded = np.pad(x, ((top, ph - h - top), (left, pw - w - left)), mode="symmetric")
    psf, filt, otfs = probe_terms(probe, psf_grid(work), work, (ph, pw))
    with torch.inference_mode():
        frame = torch.from_numpy(padded.astype(np.float32))[None, None]
        inp = encoder_input(frame, psf, filt)
        sigma = float(config.get("atom_width", 0.0)) / work
        obj = _run_network(net, inp, sigma, tile, overlap, progress, bfloat16)
        steps = int(config.get("em_steps", 0))
        if steps:  # data consistency: the object's columns carry the frame's counts
            obj = em_refine(torch.from_numpy(obj.astype(np.float32))[None, None], frame, psf, steps,
                            otfs=otfs, power=float(config.get("em_power", 1.0)))[0, 0].numpy().astype(np.float64)
        obj = obj[top:top + h, left:left + w]
    if zoomed:
        obj = resize(obj, (ny, nx), order=1, mode="reflect", anti_aliasing=sampling > work, preserve_range=True)
        # the frame was interpolated as counts per input pixel, so the object already is per input pixel
        obj = np.clip(obj, 0, None)
    return obj * scale


def reconstruct(
    image,
    probe: Probe,
    sampling: float | None = None,
    weights: str | os.PathLike | None = None,
    *,
    tile: int = 1024,
    overlap: int = 96,
    progress: bool = False,
    offset: float | str | None = "auto",
    precision: str = "auto",
):
    """Reconstruct the HAADF object function of a frame with the DeepSTEM encoder.

    Parameters
    ----------
    image : (ny, nx) ndarray or hyperspy Signal2D
        Non-negative detector counts (any scale: the frame is normalised to its
        mean). 64 px a side or more, any aspect ratio.
    probe : Probe
        The probe that recorded the frame (ideally from a Zemlin tableau,
        :func:`measure_aberrations`). The encoder is conditioned on it.
    sampling : float, optional
        Pixel size [Å]. Taken from a Signal2D's calibration when not given;
        required for an ndarray. 0.05-0.30 Å/px is the supported range.
    weights : str or Path, optional
        A weights file written by ``deepstem train``; None uses the shipped weights.
    tile, overlap : int
        Frames larger than ``tile`` px (at the working pixel size) are processed in
        tiles that overlap by ``overlap`` px and are blended, so there are no seams.
    progress : bool
        Show a progress bar over tiles.
    offset : "auto", float or None
        Dark level of the detector [counts], subtracted before reconstruction.
        ``"auto"`` (default) estimates it by photon transfer
        (:func:`detector.estimate_gain_offset`) and subtracts it only when it is
        a clear pedestal (more than 20 % of the mean), as in raw files from
        analogue detectors; counted frames are left alone. None: no correction.
    precision : {"float32", "bfloat16", "auto"}
        Arithmetic of the U-Net's convolutions. ``"bfloat16"`` makes a frame about
        1.5 times as fast on CPUs that compute it natively (AVX512-BF16, AMX; see
        :func:`native_bfloat16`) and much slower on others; ``"auto"`` (default) uses
        it only where it is native. Input, output and the fixed layers stay float32;
        the object differs from the float32 one by well under 1 % (a unit test checks 2 %).

    Returns
    -------
    (ny, nx) ndarray or Signal2D
        The object function, non-negative, on the image's grid, in the image's
        units: ``linear_image(obj, probe.intensity(...))`` approximates the frame.
        A Signal2D input gives a Signal2D with its calibration and metadata,
        plus ``metadata.DeepSTEM`` (probe, weights, package version).

    Examples
    --------
    >>> from deepstem_utils.network import dataset
    >>> frame = dataset.simulate_frame((96, 96), sampling=0.16, dose=1e4, rng=0)
    >>> obj = reconstruct(frame.counts, frame.probe, sampling=0.16)
    >>> obj.shape, bool(obj.min() >= 0)
    ((96, 96), True)
    """
    bfloat16 = _use_bfloat16(precision)  # decided once; a bad value fails before any work
    if not isinstance(probe, Probe):
        raise TypeError(f"probe must be a deepstem_utils.Probe (e.g. Probe.from_json('probe.json')), "
                        f"got {type(probe).__name__}")
    calibrated = unwrap(image, sampling)
    if calibrated.signal is None and calibrated.sampling is None:
        raise ValueError("sampling is required for an array image: pass sampling=<Å per pixel>")
    array = _check_image(calibrated.data)
    sampling = _check_sampling(calibrated.sampling)
    _check_tiles(tile, overlap)
    _model(weights)  # a missing or bad weights file fails before any work
    # reconstruct is scale-equivariant: work on the frame divided by its largest value, so that no statistic of a
    # frame with enormous (finite) values overflows, and scale back at the end
    unit = float(array.max())
    scaled_offset = offset if offset is None or isinstance(offset, str) else _finite(offset, "offset") / unit
    array, used_offset = remove_offset(array / unit, scaled_offset)
    with np.errstate(over="ignore"):
        obj = _reconstruct_array(array, probe, sampling, weights, tile, overlap, progress, bfloat16) * unit
    if not np.all(np.isfinite(obj)):
        raise ValueError(f"the frame's values (max {unit:.3g}) are too large for a finite object: rescale the frame, "
                         "e.g. to detector counts")
    return calibrated.like(obj, "object function",
                           _provenance(obj, sampling, probe, weights, used_offset * unit, bfloat16))


def remove_offset(array: np.ndarray, offset) -> tuple[np.ndarray, float]:
    """The frame with the detector's dark level subtracted (clipped at 0), and the level used [counts].

    ``offset``: ``"auto"`` (a photon-transfer estimate, used only when it is a clear pedestal: more than 20 % of
    the mean with a good fit; a counted frame's dark pixels rule one out without estimating), a number, or None.
    """
    if offset is None:
        return array, 0.0
    if isinstance(offset, str):
        if offset != "auto":
            raise ValueError(f"offset must be 'auto', a number [counts] or None, got {offset!r}")
        level = 0.2 * array.mean()
        if offset_cannot_exceed(array, level):  # a counted frame: no pedestal, no need to estimate it
            return array, 0.0
        est = estimate_gain_offset(array)
        if not (est["offset"] > level and est["r2"] > 0.2):
            return array, 0.0
        offset = est["offset"]
    offset = float(offset)
    if not np.isfinite(offset):
        raise ValueError(f"offset must be finite, got {offset!r}")
    out = np.clip(array - offset, 0, None)
    if out.max() == 0:
        raise ValueError(f"subtracting the offset {offset:.4g} leaves nothing: the offset is too large")
    return out, offset


def _provenance(obj: np.ndarray, sampling: float, probe: Probe, weights, offset: float, bfloat16: bool) -> dict:
    """What a Signal2D output records under ``metadata.DeepSTEM``."""
    path = WEIGHTS if weights is None else weights
    record = {"DeepSTEM.package_version": __version__, "DeepSTEM.probe": probe.to_dict(),
              "DeepSTEM.weights": os.fspath(path), "DeepSTEM.weights_sha256": sha256(path),
              "DeepSTEM.detector_offset_subtracted": float(offset),
              "DeepSTEM.precision": "bfloat16" if bfloat16 else "float32",
              # the decoder reproduces the frame, so the object holds the detected counts [counts per Å²]
              "DeepSTEM.detected_counts_per_A2": float(obj.mean()) / sampling**2,
              "DeepSTEM.detected_counts_note": "detector counts per Å² above the offset; the incident dose is this "
                                               "/ (gain × fraction scattered onto the detector)"}
    calibration = weights_calibration(path)
    if "one_atom_fraction" in calibration:  # read by find_atoms
        record["DeepSTEM.one_atom_fraction"] = float(calibration["one_atom_fraction"])
    return record
