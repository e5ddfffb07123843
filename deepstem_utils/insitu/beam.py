"""The electron beam in the twin: S atoms displaced by the electrons that record each frame (chapter 7).

Knock-on: an electron of the beam transfers enough energy to an S atom to eject it. For MoS₂ the
threshold of this process lies near the 80 kV used here, and vacancies form under an 80 keV beam
(Komsa et al., Phys. Rev. Lett. 109, 035503 (2012)). The probability that one S atom
is displaced while a frame is recorded at the dose ``D`` [e⁻/Å²] is

.. math:: p = 1 - e^{-\\sigma_d D} \\approx \\sigma_d D,

with the displacement cross-section :math:`\\sigma_d` [Å²]. Only the scanned field is irradiated;
the S positions outside it are not touched. The S exchange with the thermolysis atmosphere (thermal
loss and refill from the S that the precursor's decomposition releases) is a model assumption
(:class:`.kinetics.KineticParameters`); both act on every S position of the twin's grains in
:func:`update_sulfur`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .kinetics import KineticParameters

__all__ = ["BARN", "S_DISPLACEMENT_CROSS_SECTION", "S_CROSS_SECTION_ENERGY", "BeamExposure", "update_sulfur",
           "steady_vacancy_fraction"]

#: One barn [Å²] (10⁻²⁸ m²).
BARN = 1e-8
#: Displacement cross-section of S in MoS₂ [barn] at :data:`S_CROSS_SECTION_ENERGY` (assumption: of the order
#: of 1 barn. The knock-on cross-section rises steeply through 80 keV and near its threshold depends on the
#: lattice's vibrations, so on the temperature; the published values near 80 kV were not checked offline for
#: this book, so this is an order of magnitude, and every beam-damage figure scales with it).
S_DISPLACEMENT_CROSS_SECTION = 1.0
#: The beam energy [eV] :data:`S_DISPLACEMENT_CROSS_SECTION` is for.
S_CROSS_SECTION_ENERGY = 80e3


@dataclass(frozen=True)
class BeamExposure:
    """What the beam does to the twin: the dose of every frame over its scanned field.

    Attributes
    ----------
    dose : float
        Dose per frame [e⁻/Å²] (the acquisition's).
    field : (float, float)
        Scanned field ``(width, height)`` [Å].
    offsets : (n, 2) ndarray
        Specimen position of every frame's pixel (0, 0) [Å] (the acquisition's, drift included).
    cross_section : float
        Displacement cross-section of S [barn].
    """

    dose: float
    field: tuple
    offsets: np.ndarray
    cross_section: float = S_DISPLACEMENT_CROSS_SECTION

    def __post_init__(self):
        if not (math.isfinite(self.dose) and self.dose > 0):
            raise ValueError(f"dose must be a positive dose per frame in e⁻/Å², got {self.dose!r}")
        if not (math.isfinite(self.cross_section) and self.cross_section >= 0):
            raise ValueError(f"cross_section must be a non-negative cross-section in barn, got {self.cross_section!r}")
        offsets = np.asarray(self.offsets, float)
        if offsets.ndim != 2 or offsets.shape[1] != 2:
            raise ValueError(f"offsets must be (n, 2) positions [Å], got shape {offsets.shape}")

    @property
    def displaced_fraction(self) -> float:
        """Probability that one S atom in the field is displaced while one frame is recorded, σ_d·D to first
        order [dimensionless]."""
        return -math.expm1(-self.cross_section * BARN * self.dose)

    def scanned(self, frame: int, xy: np.ndarray) -> np.ndarray:
        """Which positions ``(n, 2)`` [Å] (specimen coordinates) lie in the field that frame ``frame`` scans."""
        x0, y0 = np.asarray(self.offsets, float)[frame]
        xy = np.asarray(xy, float).reshape(-1, 2)
        return (xy[:, 0] >= x0) & (xy[:, 0] < x0 + self.field[0]) & (xy[:, 1] >= y0) & (xy[:, 1] < y0 + self.field[1])


def update_sulfur(clusters, duration: float, parameters: KineticParameters, rng: np.random.Generator,
                  beam: BeamExposure | None = None, frame: int = 0) -> dict:
    """One frame of the S positions of every grain: the frame's electrons, then the exchange with the atmosphere.

    First the beam displaces every S atom in the scanned field of ``frame`` with probability
    :attr:`BeamExposure.displaced_fraction` (the probe passes a column in microseconds: an atom it displaces is
    counted missing from the next frame on). Then, over ``duration``, every S position empties (thermal loss)
    and refills (from the S of the precursor's decomposition) as an exact two-state Markov process with the
    steady-state empty fraction and exchange rate of ``parameters`` (both model assumptions).

    Parameters
    ----------
    clusters : iterable of Cluster
        The grains; their ``s`` counts (0-2 S per column) are updated in place.
    duration : float
        Frame period [s].
    parameters : KineticParameters
    rng : Generator
    beam : BeamExposure, optional
        Without it, no S is displaced by the beam.
    frame : int
        The frame being recorded (its scanned field).

    Returns
    -------
    dict
        Counts in the scanned field (the whole area without a beam): ``s_atoms`` (S atoms before the frame),
        ``beam`` (displaced by the beam), ``thermal`` (lost to the atmosphere), ``refill`` (S gained).
    """
    f = parameters.s_vacancy_fraction
    mix = -math.expm1(-parameters.s_exchange_rate * duration)
    lose, gain = f * mix, (1 - f) * mix
    p_beam = beam.displaced_fraction if beam is not None else 0.0
    tally = {"s_atoms": 0, "beam": 0, "thermal": 0, "refill": 0}
    for cluster in clusters:
        if not cluster.s:
            continue
        keys = list(cluster.s)
        n = np.array([cluster.s[k] for k in keys], int)
        inside = beam.scanned(frame, cluster.position(keys, thirds=True)) if beam is not None else np.ones(len(n), bool)
        hit = rng.binomial(n, p_beam) * inside if p_beam > 0 else np.zeros_like(n)
        n = n - hit
        lost = rng.binomial(n, lose)
        gained = rng.binomial(2 - n, gain)
        for key, value in zip(keys, n - lost + gained):
            cluster.s[key] = int(value)
        tally["s_atoms"] += int(np.sum((n + hit)[inside]))
        tally["beam"] += int(np.sum(hit))
        tally["thermal"] += int(np.sum(lost[inside]))
        tally["refill"] += int(np.sum(gained[inside]))
    return tally


def steady_vacancy_fraction(parameters: KineticParameters, dose: float, frame_time: float,
                            cross_section: float = S_DISPLACEMENT_CROSS_SECTION) -> float:
    """Fraction of S positions empty in steady state under the beam [dimensionless] (rates averaged over a frame).

    Loss at :math:`k_\\mathrm{th} + k_\\mathrm{beam}` (thermal, and :math:`\\sigma_d D` per frame period), refill at
    :math:`k_\\mathrm{fill}`: the empty fraction is :math:`(k_\\mathrm{th} + k_\\mathrm{beam}) / (k_\\mathrm{th} +
    k_\\mathrm{beam} + k_\\mathrm{fill})`.

    Examples
    --------
    >>> p = KineticParameters()
    >>> round(steady_vacancy_fraction(p, dose=0.0, frame_time=0.6), 6)  # no beam: the thermal fraction
    0.04
    >>> steady_vacancy_fraction(p, 1e6, 0.6) > 0.1
    True
    """
    k_th = parameters.s_vacancy_fraction * parameters.s_exchange_rate
    k_fill = (1 - parameters.s_vacancy_fraction) * parameters.s_exchange_rate
    k_beam = cross_section * BARN * dose / frame_time
    return (k_th + k_beam) / (k_th + k_beam + k_fill)
