"""The beam in the twin: S displaced by knock-on where and as much as the acquisition's dose says."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepstem_utils import insitu
from deepstem_utils.insitu import beam
from deepstem_utils.insitu.kinetics import Cluster


def _grain(n: int = 12) -> Cluster:
    """A grain of n × n Mo with full S columns, its lattice from (0, 0) Å."""
    grain = Cluster(0, np.zeros(2), 0.0, 3.16)
    for i in range(n):
        for j in range(n):
            grain.add_mo((i, j))
    return grain


def test_exposure_checks_and_displaced_fraction():
    exposure = beam.BeamExposure(2e4, (40.0, 40.0), np.zeros((3, 2)), cross_section=1.0)
    assert exposure.displaced_fraction == pytest.approx(1.0 * beam.BARN * 2e4, rel=1e-3)  # σD when small
    assert beam.BeamExposure(1e8, (1.0, 1.0), np.zeros((1, 2)), 100.0).displaced_fraction == pytest.approx(
        1 - math.exp(-100.0), abs=1e-12)
    with pytest.raises(ValueError, match="dose"):
        beam.BeamExposure(0.0, (40.0, 40.0), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="cross_section"):
        beam.BeamExposure(1e4, (40.0, 40.0), np.zeros((3, 2)), cross_section=-1.0)


def test_beam_displaces_s_only_in_the_scanned_field():
    no_exchange = insitu.KineticParameters(s_exchange_rate=0.0)
    grain = _grain()
    before = dict(grain.s)
    field = (20.0, 40.0)  # the left half of the grain's x range (about 0 to 52 Å)
    exposure = beam.BeamExposure(1e4, field, np.zeros((1, 2)), cross_section=7e3)  # σD = 0.7
    tally = beam.update_sulfur([grain], 0.6, no_exchange, np.random.default_rng(0), exposure, frame=0)
    xy = grain.position(before.keys(), thirds=True)
    inside = exposure.scanned(0, xy)
    lost = np.array([before[k] - grain.s[k] for k in before])
    assert lost[~inside].sum() == 0 and lost[inside].sum() == tally["beam"] > 0
    expected = exposure.displaced_fraction * tally["s_atoms"]
    assert tally["beam"] == pytest.approx(expected, abs=5 * math.sqrt(expected))
    assert tally["thermal"] == tally["refill"] == 0


def test_without_the_beam_the_s_reach_the_thermal_steady_state():
    p = insitu.KineticParameters(s_exchange_rate=5.0, s_vacancy_fraction=0.2)
    grain = _grain()
    rng = np.random.default_rng(1)
    for _ in range(5):
        beam.update_sulfur([grain], 1.0, p, rng)
    empty = 1 - np.mean(list(grain.s.values())) / 2
    assert empty == pytest.approx(beam.steady_vacancy_fraction(p, 0.0, 1.0), abs=0.03)
    assert beam.steady_vacancy_fraction(p, 1e6, 1.0) > beam.steady_vacancy_fraction(p, 1e5, 1.0) > 0.2
