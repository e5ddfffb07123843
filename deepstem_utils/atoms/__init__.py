"""Finding and counting atoms (chapter 5): columns, the MoS₂ lattice, the S-site mixture, counts, :func:`find_atoms`.

* :mod:`.columns` — bright columns, sub-pixel centroids, integrated intensities (any material).
* :mod:`.mixture` — how many S atoms each S site holds: a mixture model with Z-contrast bands.
* :mod:`.lattice` — the MoS₂ honeycomb in an image: Mo, S sites, hollow sites, sites beyond the edge.
* :mod:`.quantify` — column intensities and positions fitted to the counts by the linear image model.
* :mod:`.find` — :func:`find_atoms`, which puts the steps together.
"""

from .columns import find_columns, integrated_intensity
from .find import find_atoms
from .lattice import GHOST_REACH, mos2_sites
from .mixture import S_CLASSES, fit_s_mixture, mixture_summary, mo_level
from .quantify import column_intensities, gaussian_kernel, refine_positions

__all__ = ["find_columns", "integrated_intensity", "find_atoms", "GHOST_REACH", "mos2_sites", "S_CLASSES", "fit_s_mixture",
           "mixture_summary", "mo_level", "column_intensities", "gaussian_kernel", "refine_positions"]
