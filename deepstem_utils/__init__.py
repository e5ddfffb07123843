"""deepstem_utils: the package behind the DeepSTEM book.

An independent reimplementation of DeepSTEM (Y. Lee et al., ACS Omega 6 (2021)
21623, doi:10.1021/acsomega.1c03002): HAADF-STEM object-function
reconstruction with a physics-informed autoencoder.

Public API (shared/CONTRACT.md): :class:`Probe`, :func:`load`,
:func:`reconstruct`, :func:`find_atoms`, :func:`measure_aberrations`.

The package is built in floors; a module imports only from its own floor or
below (``tests/test_architecture.py`` checks it):

0. ``core`` — constants, quick mode, the ndarray/Signal2D adapter
1. ``physics`` — probe, linear image, specimen, detector
2. ``zemlin`` — measuring the aberrations
3. ``network`` — training data, the autoencoder, training, ``reconstruct``
4. ``atoms`` — columns, lattice, S-site mixture, counts, ``find_atoms``
5. ``insitu`` — growth twin, series acquisition, pipeline, tracking
6. ``evaluation`` — metrics, baselines, limits, dose sweeps
7. ``io``, ``interop``, ``plotting``, ``timing``, ``widgets``, ``cli``, ``cli_train`` — files, Atomap and HyperSpy,
   figures and the command line
"""

from __future__ import annotations

from .atoms.find import find_atoms
from .core.quick import choose, quick_mode
from .core.version import __version__
from .io import load
from .network.reconstruction import reconstruct
from .physics.imaging import Acquisition, acquire, linear_image
from .physics.optics import wavelength
from .physics.probe import Probe
from .zemlin.solve import measure_aberrations

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
