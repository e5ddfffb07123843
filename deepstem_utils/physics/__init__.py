"""The physics at the bottom of every chapter: the probe, the linear image, the specimen, the detector.

* :mod:`.optics` — wavelength, the aberration phase χ, the aperture.
* :mod:`.probe` — :class:`Probe`: its wave, its intensity (the point-spread function), FWHM and d50.
* :mod:`.imaging` — the linear image :math:`I = |P|^2 \\circledast O` and the acquisition (dose, Poisson, scan, detector).
* :mod:`.specimen` — MoS₂ and graphene in projection, HAADF cross-sections, object functions.
* :mod:`.detector` — gain and dark offset of a detector estimated from a frame (photon transfer).
"""

from .detector import estimate_gain_offset, to_electrons
from .imaging import Acquisition, acquire, dose_from_current, electrons_per_pixel, linear_image
from .optics import aberration_phase, wavelength
from .probe import Probe, scherzer_defocus
from .specimen import Sites, haadf_cross_section, mos2_lattice, object_function, random_mos2

__all__ = ["estimate_gain_offset", "to_electrons", "Acquisition", "acquire", "dose_from_current",
           "electrons_per_pixel", "linear_image", "aberration_phase", "wavelength", "Probe", "scherzer_defocus",
           "Sites", "haadf_cross_section", "mos2_lattice", "object_function", "random_mos2"]
