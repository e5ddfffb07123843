"""The kinetic twin of MoS₂ growth, its acquisition, and tracking/events on synthetic data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import deepstem_utils as ds
from deepstem_utils import insitu, series, tracking


@pytest.fixture(scope="module")
def twin():
    return insitu.simulate_growth(30, frame_time=1.0, extent=(80.0, 70.0), film_units=500, rng=11)


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


def test_twin_events_and_arrhenius():
    p = insitu.KineticParameters()
    assert p.rate(2.0) == pytest.approx(1e13 * math.exp(-2.0 / (insitu.BOLTZMANN * 773.15)))
    hot = insitu.KineticParameters(temperature=873.15)
    assert hot.release_rate > p.release_rate
    frames = insitu.simulate_growth(20, extent=(60.0, 60.0), film_units=300, rng=5)
    kinds = {e["kind"] for f in frames for e in f.events}
    assert {"release", "nucleation", "attach"} <= kinds


def test_twin_s_vacancies_reach_their_steady_state():
    params = insitu.KineticParameters(s_exchange_rate=2.0, s_vacancy_fraction=0.2)
    frames = insitu.simulate_growth(12, frame_time=2.0, extent=(60.0, 60.0), film_units=300, parameters=params, rng=2)
    s = frames[-1].sites.counts["S"][np.isin(frames[-1].sites.species, ["S2", "S1", "vacancy"])]
    empty = 1 - s.mean() / 2
    assert empty == pytest.approx(0.2, abs=0.06)


def test_acquisition_truth_and_registration(twin):
    probe = ds.Probe(80e3, 30.0, {"C30": 2000.0}, source_size=0.5)
    acq = insitu.SeriesAcquisition(twin, probe, shape=(192, 192), sampling=0.16, dose=5e4, frame_time=1.0,
                                   drift=(0.6, -0.4), seed=1)
    a = acq[20]
    assert a.shape == (192, 192) and np.array_equal(a, acq[20])  # rendered on demand, reproducibly
    for i in (12, 26):  # grains on graphene: a periodic lattice that must not fool the registration
        dy, dx = series.register_drift(acq[i - 1], acq[i])
        true = (acq.offsets[i] - acq.offsets[i - 1]) / 0.16
        assert dx == pytest.approx(true[0], abs=0.2) and dy == pytest.approx(true[1], abs=0.2)  # sub-pixel
    truth = acq.truth(20)
    assert np.all((truth.x >= 0) & (truth.x <= 192 * 0.16))
    with pytest.raises(IndexError):
        acq[len(acq)]
    with pytest.raises(ValueError, match="do not fit"):
        insitu.SeriesAcquisition(twin, probe, shape=(600, 600), sampling=0.16)


def test_series_registration_survives_frames_without_contrast(tmp_path, twin):
    """Bare graphene at low dose cannot be registered: the pipeline must not let that break the drift."""
    probe = ds.Probe(80e3, 30.0, {"C30": 2000.0}, source_size=0.5)
    acq = insitu.SeriesAcquisition(twin[18:26], probe, shape=(192, 192), sampling=0.16, dose=5e4, frame_time=1.0,
                                   drift=(0.6, -0.4), seed=1)
    frames = [acq[i] for i in range(8)]
    frames[3] = np.random.default_rng(1).poisson(0.3, frames[3].shape).astype(float)  # a frame with no contrast
    series.process_series(frames, probe, 0.16, tmp_path, n_workers=1, progress=False)
    drift = pd.read_csv(tmp_path / "drift.csv")
    true = acq.offsets - acq.offsets[0]
    assert not drift.reliable[3] or not drift.reliable[4]
    assert np.abs(drift.dx_A.to_numpy() - true[:, 0]).max() < 0.4  # Å, over the whole series


def test_grains_and_events_on_synthetic_tables():
    a = 3.16
    grain = [(i * a + j * a / 2, j * a * math.sqrt(3) / 2) for i in range(3) for j in range(2)]  # 6 Mo
    rows = []
    for frame in range(3):
        for k, (x, y) in enumerate(grain):
            rows.append((frame, x, y, "Mo"))
            if frame >= 1:  # a second grain appears at frame 1, two lattice steps away
                rows.append((frame, x + 5 * a, y, "Mo"))
        if frame == 2:  # a row of Mo fills the gap: the grains coalesce
            rows += [(frame, 3 * a + j * a / 2, j * a * math.sqrt(3) / 2, "Mo") for j in range(2)]
            rows += [(frame, 4 * a + j * a / 2, j * a * math.sqrt(3) / 2, "Mo") for j in range(2)]
    rows.append((0, 20.0, 20.0, "Mo_adatom"))
    rows.append((1, 20.2, 19.9, "Mo_adatom"))
    table = pd.DataFrame(rows, columns=["frame", "x", "y", "species"])
    grains = tracking.track_grains(table, min_size=4)
    assert list(grains.groupby("frame").size()) == [1, 2, 1]
    events = tracking.detect_events(table, min_size=4, attach_distance=1.0)
    assert list(events.kind) == ["nucleation", "coalescence"]
    tracks = tracking.link_adatoms(table, search_range=1.0)
    assert tracks.particle.nunique() == 1


def test_link_recovery_counts_links():
    tracks = pd.DataFrame({"frame": [0, 1, 2, 0, 1], "x": [0.0, 0.1, 0.2, 10.0, 10.0],
                           "y": [0.0, 0.0, 0.0, 5.0, 5.0], "particle": [0, 0, 0, 1, 2]})
    truth_xy = [np.array([[0.0, 0.0], [10.0, 5.0]]), np.array([[0.0, 0.0], [10.0, 5.0]]), np.array([[0.2, 0.0]])]
    truth_ids = [np.array([7, 8]), np.array([7, 8]), np.array([7])]
    result = tracking.link_recovery(tracks, truth_xy, truth_ids, radius=0.5)
    assert result == {"links": 3, "recovered": 2, "fraction": pytest.approx(2 / 3)}


def test_new_grain_at_the_edge_nucleated_or_drifted_in():
    """A grain that appears where the previous frame could see is a nucleation; one that comes into view
    because the field moved is an entry; with first_frame a grain after empty frames is a nucleation."""
    a = 3.16
    field = (40.0, 40.0)
    cell = [(i * a + j * a / 2, j * a * math.sqrt(3) / 2) for i in range(3) for j in range(2)]  # 6 Mo

    def table(shift_per_frame, grain_at):
        rows = []
        for frame in range(3):
            offset = np.array([shift_per_frame * frame, 0.0])  # frame origin in registered coordinates
            rows.append((frame, 20.0, 20.0, "Mo_adatom", *(np.array([20.0, 20.0]) + offset)))  # something in view
            if frame == 2:
                for x, y in cell:
                    xr, yr = grain_at[0] + x, grain_at[1] + y  # registered position of the new grain
                    rows.append((frame, xr - offset[0], yr - offset[1], "Mo", xr, yr))
        return pd.DataFrame(rows, columns=["frame", "x", "y", "species", "x_registered", "y_registered"])

    # a grain at the right edge of frame 2, whose place frame 1 saw (no drift): nucleation
    grown = table(0.0, (30.0, 10.0))
    assert list(tracking.detect_events(grown, min_size=4, field=field).kind) == ["nucleation"]
    # the field moved 16 Å per frame to the right: frame 2 sees x from 32 to 72 Å (registered), frame 1 only up to
    # 56; a grain at 58-66 Å is well inside frame 2 but was out of view before: it drifted in
    drifted = table(16.0, (58.0, 10.0))
    assert list(tracking.detect_events(drifted, min_size=4, field=field).kind) == ["entry"]
    # without a field nothing is known about the view: every new grain is a nucleation
    assert list(tracking.detect_events(drifted, min_size=4).kind) == ["nucleation"]
    # a grain in the first frame with sites is a nucleation only if the series started earlier
    later = grown[grown.frame == 2]
    assert len(tracking.detect_events(later, min_size=4, field=field)) == 0
    assert list(tracking.detect_events(later, min_size=4, field=field, first_frame=0).kind) == ["nucleation"]


def test_physical_sites_drop_light_lattices_and_adatoms():
    from deepstem_utils import series

    rng = np.random.default_rng(0)
    rows = [(0, "Mo", v) for v in rng.normal(35, 3, 40)] + [(0, "S2", v) for v in rng.normal(15, 3, 40)]
    rows += [(f, "Mo", v) for f in (1, 2) for v in rng.normal(600, 30, 50)]
    rows += [(1, "Mo_adatom", 590.0), (2, "Mo_adatom", 60.0), (2, "S2", 230.0)]
    t = pd.DataFrame(rows, columns=["frame", "species", "intensity"])
    kept = series.physical_sites(t)
    assert set(kept.frame) == {1, 2}  # frame 0's "lattice" scatters like graphene, not Mo
    assert (kept.species == "Mo_adatom").sum() == 1 and kept[kept.species == "Mo_adatom"].intensity.iloc[0] == 590
    assert (kept.species == "S2").sum() == 1
    with pytest.raises(ValueError, match="min_mo_fraction"):
        series.physical_sites(t, 1.5)
