"""The kinetic model's parts: the Arrhenius rates and a MoS₂ grain on its own lattice.

See :mod:`.twin` for the model they make up. Lattice keys are integer pairs
``(i, j)`` of the unit lattice vectors ``a1 = (1, 0)``, ``a2 = (1/2, √3/2)``;
S columns are keyed in thirds of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..core.constants import BOLTZMANN, MOS2_A

__all__ = ["KineticParameters", "Cluster", "LATTICE_BASIS", "NEIGHBOURS", "neighbour_keys"]

_A1 = np.array([1.0, 0.0])
_A2 = np.array([0.5, math.sqrt(3) / 2])
#: The unit lattice vectors a1, a2 as columns.
LATTICE_BASIS = np.stack([_A1, _A2], 1)
#: Lattice offsets of the six nearest neighbours.
NEIGHBOURS = ((1, 0), (0, 1), (-1, 1), (-1, 0), (0, -1), (1, -1))
# S columns of a Mo at (i, j), in thirds of the lattice vectors: variant 0 (up triangles), 1 (down)
_S_TRIAD = {0: ((1, 1), (-2, 1), (1, -2)), 1: ((-1, -1), (2, -1), (-1, 2))}


@dataclass
class KineticParameters:
    r"""Rates of the kinetic model. Energies [eV], frequencies [Hz], temperature [K].

    Attributes
    ----------
    temperature : float
        773.15 K: the paper's 500 °C.
    attempt_frequency : float
        1e13 Hz, a typical lattice vibration frequency (assumption, the usual choice).
    release_barrier : float
        Barrier of MoS₃ → MoS₂ + S per precursor unit (assumption: 2.22 eV, so the
        film decomposes with a time constant of about 30 s at 500 °C).
    trap_barrier : float
        Barrier for a Mo adatom to leave a trap (assumption: 2.05 eV: a trapped
        adatom stays about 2 s, a few frames, as the adatoms of the paper do).
    detach_barrier : float
        Barrier for an edge Mo with no Mo neighbour to leave a grain (assumption: 2.05 eV,
        as for a trap).
    bond_energy : float
        Energy of one Mo-Mo neighbour bond at a grain edge (assumption: 0.30 eV).
    trap_density : float
        Traps (defects, residue sites) per Å² of graphene (assumption: 1 per 300 Å²).
    nucleation_fraction : float
        Fraction of the traps strong enough to hold two Mo, where a grain can
        nucleate (assumption: 0.1); at the others a second Mo passes by.
    s_vacancy_fraction : float
        Steady-state fraction of empty S positions without the beam,
        :math:`k_\mathrm{loss}/(k_\mathrm{loss}+k_\mathrm{fill})`: thermal loss against refill from the S
        that the precursor's decomposition releases (model assumption: 0.04; that this S reaches the
        grains' vacancies is assumed, not known). The beam's share is added by :mod:`.beam`.
    s_exchange_rate : float
        :math:`k_\mathrm{loss}+k_\mathrm{fill}` [1/s] (assumption: 0.1 /s).
    mo_lattice : float
        MoS₂ lattice parameter [Å] (3.16 Å).
    """

    temperature: float = 773.15
    attempt_frequency: float = 1e13
    release_barrier: float = 2.22
    trap_barrier: float = 2.05
    detach_barrier: float = 2.05
    bond_energy: float = 0.30
    trap_density: float = 1 / 300
    nucleation_fraction: float = 0.1
    s_vacancy_fraction: float = 0.04
    s_exchange_rate: float = 0.1
    mo_lattice: float = MOS2_A

    def rate(self, barrier: float) -> float:
        r"""Arrhenius rate :math:`\nu e^{-E/k_BT}` [1/s] of a barrier [eV]."""
        return self.attempt_frequency * math.exp(-barrier / (BOLTZMANN * self.temperature))

    @property
    def release_rate(self) -> float:
        """MoS₂ units released per precursor unit per second."""
        return self.rate(self.release_barrier)

    @property
    def escape_rate(self) -> float:
        """Escapes of one trapped adatom per second."""
        return self.rate(self.trap_barrier)


@dataclass
class Cluster:
    """A MoS₂ grain: Mo on its own lattice (origin, orientation) and its S columns.

    Attributes
    ----------
    id : int
        Identifier (kept by the larger grain of a merger).
    origin : (2,) ndarray
        Position of lattice site (0, 0) [Å].
    theta : float
        Orientation of the first lattice vector [rad].
    mo : dict[(int, int), int]
        Occupied Mo sites → S-triad variant (0, or 1 for the mirror-twin variant).
    s : dict[(int, int), int]
        S columns (in thirds of the lattice vectors) → number of S atoms (0-2).
    """

    id: int
    origin: np.ndarray
    theta: float
    a: float
    mo: dict = field(default_factory=dict)
    s: dict = field(default_factory=dict)

    def _matrix(self) -> np.ndarray:
        c, s = math.cos(self.theta), math.sin(self.theta)
        return np.array([[c, -s], [s, c]]) @ LATTICE_BASIS * self.a

    def position(self, keys, thirds: bool = False) -> np.ndarray:
        """Positions [Å] of lattice sites (or S columns with ``thirds``), shape (n, 2)."""
        k = np.asarray(list(keys), float).reshape(-1, 2)
        if thirds:
            k = k / 3
        return self.origin + k @ self._matrix().T

    def site_of(self, xy) -> tuple[int, int]:
        """Nearest lattice site to a position [Å]."""
        f = np.linalg.solve(self._matrix(), np.asarray(xy, float) - self.origin)
        return int(round(f[0])), int(round(f[1]))

    def mo_positions(self) -> np.ndarray:
        return self.position(self.mo.keys())

    def free_edge(self) -> list[tuple[int, int]]:
        """Empty lattice sites next to the cluster."""
        out = set()
        for (i, j) in self.mo:
            for di, dj in NEIGHBOURS:
                key = (i + di, j + dj)
                if key not in self.mo:
                    out.add(key)
        return sorted(out)

    def coordination(self, key) -> int:
        """Number of occupied Mo neighbours of a lattice site."""
        i, j = key
        return sum((i + di, j + dj) in self.mo for di, dj in NEIGHBOURS)

    def add_mo(self, key, variant: int = 0, s_count: int = 2):
        """Occupy a Mo site; its new S columns start with ``s_count`` atoms."""
        self.mo[key] = variant
        for t in _triad(key, variant):
            self.s.setdefault(t, s_count)

    def remove_mo(self, key):
        """Empty a Mo site; S columns with no Mo left go with it."""
        variant = self.mo.pop(key)
        keep = {t for k, v in self.mo.items() for t in _triad(k, v)}
        for t in _triad(key, variant):
            if t not in keep:
                self.s.pop(t, None)


def _triad(key, variant):
    i, j = key
    return [(3 * i + di, 3 * j + dj) for di, dj in _S_TRIAD[variant]]


def neighbour_keys(key) -> list[tuple[int, int]]:
    """The six lattice sites next to ``key``."""
    i, j = key
    return [(i + di, j + dj) for di, dj in NEIGHBOURS]
