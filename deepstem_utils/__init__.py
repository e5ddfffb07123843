"""deepstem_utils: the package behind the DeepSTEM book.

An independent reimplementation of DeepSTEM (Y. Lee et al., ACS Omega 6 (2021)
21623, doi:10.1021/acsomega.1c03002): HAADF-STEM object-function
reconstruction with a physics-informed autoencoder.

Public API (shared/CONTRACT.md): :class:`Probe`, :func:`load`,
:func:`reconstruct`, :func:`find_atoms`, :func:`measure_aberrations`.
"""

from __future__ import annotations

from ._quick import choose, quick_mode
from .imaging import Acquisition, acquire, linear_image
from .io import load
from .optics import Probe, wavelength
from .reconstruction import reconstruct
from .atoms import find_atoms
from .zemlin import measure_aberrations

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "Probe",
    "wavelength",
    "linear_image",
    "Acquisition",
    "acquire",
    "quick_mode",
    "choose",
    "load",
    "reconstruct",
    "find_atoms",
    "measure_aberrations",
]
