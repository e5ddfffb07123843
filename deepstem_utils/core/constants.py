"""Facts shared by every area of the package, each defined once with its source.

Lengths in Å, energies in eV, charges in C.
"""

from __future__ import annotations

__all__ = ["E_CHARGE", "BOLTZMANN", "MOS2_A", "GRAPHENE_A", "Z", "MOS2_BOND_FRACTION"]

#: Elementary charge [C] (CODATA 2018, exact).
E_CHARGE = 1.602176634e-19
#: Boltzmann constant [eV/K] (CODATA 2018, exact).
BOLTZMANN = 8.617333262e-5

#: In-plane lattice parameter of 2H-MoS₂ [Å] (bulk value, Wakabayashi et al., Phys. Rev. B 11, 1975);
#: the monolayer's differs by well under 1 %.
MOS2_A = 3.16
#: Lattice parameter of graphene [Å].
GRAPHENE_A = 2.46
#: Projected Mo-S distance as a fraction of the lattice parameter: the S columns sit at the centres of the
#: Mo triangles, a/√3 from each Mo.
MOS2_BOND_FRACTION = 3 ** -0.5

#: Atomic numbers of the elements the book uses.
Z = {"C": 6, "S": 16, "Se": 34, "Mo": 42}
