"""Shared inputs of the in situ tests: a drifting series of one frame, and a short run of the growth twin."""

from __future__ import annotations

import pytest
from scipy import ndimage

import deepstem_utils as ds
from deepstem_utils import insitu
from deepstem_utils.network import dataset

#: The probe of the drifting series.
PROBE = ds.Probe(80e3, 30.0, {"C30": -5e3})


@pytest.fixture(scope="module")
def drifting():
    """Four 128² crops of one counted frame, shifted by (1.5, -1.0) px per frame."""
    base = dataset.simulate_frame((160, 160), sampling=0.16, dose=1e5, probe=PROBE, rng=3, edge=0.0)
    clean = base.counts
    frames = []
    for k in range(4):
        shifted = ndimage.shift(clean, (1.5 * k, -1.0 * k), order=1, mode="reflect")
        frames.append(shifted[16:144, 16:144])
    return frames


@pytest.fixture(scope="module")
def twin():
    """30 frames of the kinetic twin on 80 × 70 Å."""
    return insitu.simulate_growth(30, frame_time=1.0, extent=(80.0, 70.0), film_units=500, rng=11)
