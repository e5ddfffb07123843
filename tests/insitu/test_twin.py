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


def test_twin_under_the_beam_keeps_its_mo_history_and_loses_s_where_scanned():
    """The S draws are the twin's own: one seed grows the same grains at every dose; the beam adds S vacancies
    in the scanned field, as many as σ_d·D per S atom and frame."""
    from deepstem_utils.insitu import beam

    n, field = 10, (30.0, 30.0)
    offsets = np.tile([15.0, 15.0], (n, 1))
    kw = dict(frame_time=2.0, extent=(60.0, 60.0), film_units=300, rng=4)
    dark = insitu.simulate_growth(n, **kw)
    lit = insitu.simulate_growth(n, beam=beam.BeamExposure(1e4, field, offsets, cross_section=2e3), **kw)  # σD = 0.2
    mo = [(f.sites.species == "Mo") | (f.sites.species == "Mo_adatom") for f in lit]
    assert all(np.array_equal(a.sites.x[(a.sites.species == "Mo") | (a.sites.species == "Mo_adatom")], b.sites.x[m])
               for a, b, m in zip(dark, lit, mo))  # the same Mo history
    assert dark[-1].dose == 0.0 and dark[-1].scan is None
    assert lit[3].dose == 1e4 and lit[3].scan == (15.0, 15.0, 30.0, 30.0)
    tallies = [e for f in lit for e in f.events if e["kind"] == "sulfur"]
    hit, atoms = sum(t["beam"] for t in tallies), sum(t["s_atoms"] for t in tallies)
    p = -math.expm1(-0.2)
    assert hit == pytest.approx(p * atoms, abs=5 * math.sqrt(p * atoms)) and hit > 20
    s_counts = lambda f: f.sites.counts["S"][np.isin(f.sites.species, ["S2", "S1", "vacancy"])]  # noqa: E731
    assert s_counts(lit[-1]).mean() < s_counts(dark[-1]).mean() - 0.2  # far more vacancies under this beam
    with pytest.raises(ValueError, match="scanned fields"):
        insitu.simulate_growth(n + 1, beam=beam.BeamExposure(1e4, field, offsets), **kw)
