"""Arrhenius rates of the kinetic model and the events they drive."""

from __future__ import annotations

import math

import pytest

from deepstem_utils import insitu
from deepstem_utils.core.constants import BOLTZMANN


def test_twin_events_and_arrhenius():
    p = insitu.KineticParameters()
    assert p.rate(2.0) == pytest.approx(1e13 * math.exp(-2.0 / (BOLTZMANN * 773.15)))
    hot = insitu.KineticParameters(temperature=873.15)
    assert hot.release_rate > p.release_rate
    frames = insitu.simulate_growth(20, extent=(60.0, 60.0), film_units=300, rng=5)
    kinds = {e["kind"] for f in frames for e in f.events}
    assert {"release", "nucleation", "attach"} <= kinds
