"""Simulated HAADF frames with ground truth: the data DeepSTEM learns from.

The paper trained on experimental frames that are not public. This module
draws realistic frames instead: a random defective MoS₂ specimen
(:func:`specimen.random_mos2`), its object function, the linear image with a
probe from a distribution of plausible instruments, and the acquisition model
of chapter 1. Every frame keeps its ground truth (object function and sites).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..physics import specimen
from ..physics.imaging import Acquisition, acquire, electrons_per_pixel, linear_image
from ..physics.probe import Probe, focal_spread_from, psf_grid

__all__ = ["Frame", "random_probe", "simulate_frame", "DOSE_RANGE", "SAMPLING_RANGE"]

#: Doses drawn for training [e⁻/Å²] (log-uniform).
DOSE_RANGE = (5e2, 2e5)
#: FWHM of a Gaussian in units of its standard deviation, 2√(2 ln 2).
FWHM_PER_SIGMA = 2 * math.sqrt(2 * math.log(2))
#: Pixel sizes the network sees natively [Å]; others are resampled into this range.
SAMPLING_RANGE = (0.12, 0.20)


@dataclass
class Frame:
    """One simulated frame and its ground truth.

    Attributes
    ----------
    counts : (ny, nx) ndarray
        Detector counts (gain 1, no offset: electrons).
    obj : (ny, nx) ndarray
        Ground-truth object function (dimensionless per pixel).
    sites : specimen.Sites
        Ground-truth columns (positions [Å], species).
    probe : Probe
        The probe that made the frame.
    sampling : float
        Pixel size [Å].
    dose : float
        Dose [e⁻/Å²].
    """

    counts: np.ndarray
    obj: np.ndarray
    sites: specimen.Sites
    probe: Probe
    sampling: float
    dose: float

    @property
    def electrons_per_pixel(self) -> float:
        """Incident electrons per pixel; ``obj * electrons_per_pixel`` is the object in counts."""
        return electrons_per_pixel(self.dose, self.sampling)


def random_probe(rng: np.random.Generator | int | None = None, energy: float | None = None) -> Probe:
    """A probe from an aberration-corrected instrument with random residual aberrations.

    Energy 60/80/200/300 kV (80 kV most often) unless given, semiangle 20-35 mrad,
    residuals |C1|, |A1| <= 40 Å, |B2|, |A2| <= 500 Å, |C3| <= 2 µm, source size
    FWHM 0-0.8 Å, and a focal spread from a chromatic aberration Cc of 1.0-1.8 mm
    and an energy spread of 0.25-0.8 eV FWHM (cold to Schottky field emission,
    no monochromator): 13-76 Å at 80 kV. These ranges are an assumption (typical
    of a tuned corrector). The focal spread is drawn from a child of ``rng``, so the
    other draws (and the frames of :func:`simulate_frame`) are those of a probe without it.
    """
    rng = np.random.default_rng(rng)
    if energy is None:
        energy = float(rng.choice([60e3, 80e3, 80e3, 80e3, 200e3, 300e3]))
    angle = lambda: float(rng.uniform(0, 2 * math.pi))  # noqa: E731
    aberrations = {
        "C10": float(rng.uniform(-40, 40)),
        "C12": float(rng.uniform(0, 40)), "phi12": angle(),
        "C21": float(rng.uniform(0, 500)), "phi21": angle(),
        "C23": float(rng.uniform(0, 500)), "phi23": angle(),
        "C30": float(rng.uniform(-2e4, 2e4)),
    }
    semiangle, source_size = float(rng.uniform(20, 35)), float(rng.uniform(0, 0.8))
    spread_rng = rng.spawn(1)[0]
    focal_spread = focal_spread_from(float(spread_rng.uniform(1.0e7, 1.8e7)),
                                     float(spread_rng.uniform(0.25, 0.8)) / FWHM_PER_SIGMA, energy)
    return Probe(energy=energy, semiangle=semiangle, aberrations=aberrations, source_size=source_size,
                 focal_spread=focal_spread)


def simulate_frame(
    shape: tuple[int, int] = (128, 128),
    sampling: float | None = None,
    dose: float | None = None,
    probe: Probe | None = None,
    rng: np.random.Generator | int | None = None,
    acquisition: Acquisition | None = None,
    psf_size: int = 64,
    gamma: float = 1.7,
    atom_width: float = 0.12,
    **specimen_options,
) -> Frame:
    """Draw a specimen, image it and record it.

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)`` of the frame.
    sampling : float, optional
        Pixel size [Å]; uniform in :data:`SAMPLING_RANGE` if not given.
    dose : float, optional
        Dose [e⁻/Å²]; log-uniform in :data:`DOSE_RANGE` if not given.
    probe : Probe, optional
        The probe; :func:`random_probe` if not given.
    rng : Generator or int, optional
        Random generator or seed.
    acquisition : Acquisition, optional
        Detector and scan settings (its dose and sampling are replaced by the
        frame's); default: electron counting, no distortions.
    psf_size : int
        Side of the PSF grid [px] (doubled until it covers at least 8 Å).
    gamma : float
        Z-exponent of the HAADF cross-sections (:func:`specimen.haadf_cross_section`).
    atom_width : float
        Standard deviation of each atom's peak in the object [Å] (:func:`specimen.object_function`).
    **specimen_options
        Passed to :func:`specimen.random_mos2`.
    """
    rng = np.random.default_rng(rng)
    if sampling is None:
        sampling = float(rng.uniform(*SAMPLING_RANGE))
    if dose is None:
        dose = float(math.exp(rng.uniform(math.log(DOSE_RANGE[0]), math.log(DOSE_RANGE[1]))))
    if probe is None:
        probe = random_probe(rng)
    ny, nx = shape
    sites = specimen.random_mos2((nx * sampling, ny * sampling), rng, **specimen_options)
    obj = specimen.object_function(sites, shape, sampling, energy=probe.energy, gamma=gamma, width=atom_width)
    obj = obj + specimen.contamination(shape, sampling, rng, level=float(rng.uniform(0, 2e-4)))
    psf_size = psf_grid(sampling, minimum=8.0, size=psf_size)
    psf = probe.intensity((psf_size, psf_size), sampling)
    image = linear_image(obj, psf)
    if acquisition is None:
        acquisition = Acquisition()
    acquisition = Acquisition(**{**acquisition.__dict__, "dose": dose, "sampling": sampling})
    counts = acquire(image, acquisition, rng)
    return Frame(counts=counts, obj=obj, sites=sites, probe=probe, sampling=sampling, dose=dose)
