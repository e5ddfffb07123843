"""The ground floor: constants, the quick-mode switch and the ndarray/Signal2D adapter.

Nothing here imports from another area of the package; every area may import from here.
"""

from .constants import BOLTZMANN, E_CHARGE, GRAPHENE_A, MOS2_A, Z
from .quick import choose, quick_mode
from .signals import Calibrated, sampling_of, unwrap

__all__ = ["BOLTZMANN", "E_CHARGE", "GRAPHENE_A", "MOS2_A", "Z", "choose", "quick_mode", "Calibrated",
           "sampling_of", "unwrap"]
