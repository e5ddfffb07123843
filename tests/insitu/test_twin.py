"""The kinetic twin of MoS₂ growth: conservation, reproducibility, lattice geometry, sulfur."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepstem_utils import insitu


def test_twin_conserves_mo(twin):
    total = {f.n_mo + f.film for f in twin}
    assert total == {500}
    assert twin[-1].film < twin[0].film  # the film is being used up
    assert twin[-1].n_mo > 50


def test_twin_is_reproducible():
    a = insitu.simulate_growth(8, extent=(60.0, 60.0), film_units=200, rng=3)
    b = insitu.simulate_growth(8, extent=(60.0, 60.0), film_units=200, rng=3)
    assert all(np.array_equal(x.sites.x, y.sites.x) and list(x.sites.species) == list(y.sites.species)
               for x, y in zip(a, b))


def test_twin_atoms_sit_on_their_grain_lattice(twin):
    frame = twin[-1]
    sites = frame.sites
    for cid in np.unique(frame.cluster[frame.cluster >= 0]):
        mo = (frame.cluster == cid) & (sites.species == "Mo")
        xy = np.stack([sites.x[mo], sites.y[mo]], 1)
        if len(xy) < 3:
            continue
        d = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1))
        np.fill_diagonal(d, np.inf)
        nearest = d.min(1)
        # every Mo has a neighbour exactly one lattice constant away, and none closer
        assert nearest.min() > 0.99 * 3.16 and np.median(nearest) == pytest.approx(3.16, rel=1e-6)
        s = (frame.cluster == cid) & np.isin(sites.species, ["S2", "S1", "vacancy"])
        sxy = np.stack([sites.x[s], sites.y[s]], 1)
        ds_mo = np.hypot(*(sxy[:, None] - xy[None]).transpose(2, 0, 1)).min(1)
        assert np.allclose(ds_mo, 3.16 / math.sqrt(3), atol=1e-6)  # S columns sit at the Mo-S distance
    assert set(sites.species) <= {"Mo", "S2", "S1", "vacancy", "Mo_adatom"}
    assert np.all(sites.counts["S"][sites.species == "S1"] == 1)


def test_twin_s_vacancies_reach_their_steady_state():
    params = insitu.KineticParameters(s_exchange_rate=2.0, s_vacancy_fraction=0.2)
    frames = insitu.simulate_growth(12, frame_time=2.0, extent=(60.0, 60.0), film_units=300, parameters=params, rng=2)
    s = frames[-1].sites.counts["S"][np.isin(frames[-1].sites.species, ["S2", "S1", "vacancy"])]
    empty = 1 - s.mean() / 2
    assert empty == pytest.approx(0.2, abs=0.06)
