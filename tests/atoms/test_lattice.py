"""The MoS₂ lattice in an image: Mo from the honeycomb, S and hollow sites, sites beyond the edge."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepstem_utils.atoms import lattice
from deepstem_utils.atoms.columns import find_columns
from deepstem_utils.core.constants import MOS2_A
from deepstem_utils.physics import specimen

S = 0.15


@pytest.fixture(scope="module")
def perfect():
    sites = specimen.mos2_lattice((30.0, 30.0), rotation=0.4)
    obj = specimen.object_function(sites, (200, 200), S)
    return sites, obj, lattice.mos2_sites(find_columns(obj, S), obj, S)


def test_lattice_parameter_and_sites(perfect):
    sites, obj, found = perfect
    assert found.a == pytest.approx(3.16, abs=0.01)
    assert found.on_lattice.mean() > 0.9
    true_s = np.stack([sites.x[sites.species == "S2"], sites.y[sites.species == "S2"]], 1)
    d = np.hypot(*(found.s_sites[:, None] - true_s[None]).transpose(2, 0, 1)).min(1)
    inner = lattice.within(found.s_sites, (obj.shape[1] * S, obj.shape[0] * S), -2.0)
    assert np.all(d[inner] < 0.1)  # (at the edge, a Mo with one neighbour can take the wrong triad)
    assert np.mean(d < 0.1) > 0.9
    # every hollow lies a Mo-S bond from the Mo columns and no site is within it
    true_mo = np.stack([sites.x[sites.species == "Mo"], sites.y[sites.species == "Mo"]], 1)
    to_mo = np.hypot(*(found.hollows[:, None] - true_mo[None]).transpose(2, 0, 1)).min(1)
    assert np.allclose(to_mo, 3.16 / math.sqrt(3), atol=0.1)
    to_s = np.hypot(*(found.hollows[:, None] - true_s[None]).transpose(2, 0, 1)).min(1)
    assert to_s.min() > 1.0


def test_ghosts_lie_beyond_the_edge(perfect):
    _, obj, found = perfect
    extent = ((obj.shape[1] - 1) * S, (obj.shape[0] - 1) * S)
    assert len(found.ghosts) > 0
    assert not np.any(lattice.within(found.ghosts, extent, -lattice.EDGE_MARGIN))
    assert np.all(lattice.within(found.ghosts, extent, lattice.GHOST_REACH))


def test_no_lattice_in_noise():
    rng = np.random.default_rng(0)
    obj = rng.random((100, 100)) * 0.01
    with pytest.raises(lattice.NoLattice):
        lattice.mos2_sites(find_columns(obj, S).head(2), obj, S)


def test_cluster_and_within():
    points = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0]])
    groups = sorted(sorted(g.tolist()) for g in lattice.cluster(points, 0.5))
    assert groups == [[0, 1], [2]]
    inside = np.array([[-0.1, 1.0], [1.0, 1.0], [5.0, 5.0]])
    assert lattice.within(inside, (4.0, 4.0), 0.0).tolist() == [False, True, False]
    assert lattice.within(inside, (4.0, 4.0), 0.5).tolist() == [True, True, False]


def test_mo_found_where_the_image_resolves_no_s_column():
    """A Gaussian-filtered frame of a blurred probe shows the Mo but no S column as a peak: almost every column
    is "lonely" (no neighbour at the Mo-S distance), and the few bright ones with neighbours (adatoms,
    contamination) set no Mo level for the rest (before: 30 of 113 Mo columns judged Mo, S-site accuracy 0.09)."""
    from scipy import ndimage

    from deepstem_utils.network.dataset import simulate_frame

    frame = simulate_frame((192, 192), sampling=0.16, dose=6e4, rng=np.random.default_rng([5, 1]),
                           s_vacancy=0.12, s_divacancy=0.04)
    smoothed = ndimage.gaussian_filter(frame.counts, 0.25 / 0.16)
    columns = find_columns(smoothed, 0.16)
    is_mo = lattice.honeycomb_mo(columns, MOS2_A)
    truth = np.asarray(frame.sites.species).astype(str)
    mo = np.stack([frame.sites.x, frame.sites.y], 1)[truth == "Mo"]
    xy = columns[["x", "y"]].to_numpy()
    on_mo = np.hypot(*(xy[:, None, :] - mo[None, :, :]).transpose(2, 0, 1)).min(1) < 0.5
    assert on_mo.sum() > 80 and np.mean(is_mo[on_mo]) > 0.95
