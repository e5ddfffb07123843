"""Grains, adatom tracks and events on synthetic tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from deepstem_utils.insitu import tracking


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
