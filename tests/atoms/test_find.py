"""find_atoms: lattice, species, adatoms, dopants, counts, signals, bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import deepstem_utils as ds
from deepstem_utils import atoms, network
from deepstem_utils.atoms import lattice
from deepstem_utils.evaluation import metrics
from deepstem_utils.network import dataset
from deepstem_utils.physics import specimen

S = 0.16


def _object(sites, shape=(250, 250), sampling=S):
    return specimen.object_function(sites, shape, sampling)


@pytest.mark.parametrize("rotation", [0.0, 0.3, 1.0])
def test_perfect_lattice_any_rotation(rotation):
    sites = specimen.mos2_lattice((40.0, 40.0), rotation=rotation)
    found = ds.find_atoms(_object(sites), sampling=S)
    assert list(found.columns[:4]) == ["x", "y", "species", "confidence"]
    score = metrics.score_sites(found, sites, (40.0, 40.0))
    assert score["per_species"].loc["Mo", "F1"] > 0.98
    assert score["per_species"].loc["S2", "F1"] > 0.98
    assert score["mo_rmse"] < 8.0  # pm
    assert found["confidence"].between(0, 1).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_defects_twins_and_edges_noise_free(seed):
    sites = specimen.random_mos2((40.0, 40.0), rng=seed, twin=1.0 if seed == 1 else 0.0, edge=1.0 if seed == 2 else 0.0,
                                 s_vacancy=0.1, s_divacancy=0.04)
    found = ds.find_atoms(_object(sites), sampling=S)
    score = metrics.score_sites(found, sites, (40.0, 40.0))
    assert score["s_site_accuracy"] > 0.95
    assert score["per_species"].loc["Mo", "F1"] > 0.97


def test_species_follow_the_atoms_not_a_threshold():
    # scale the object by 100: the mixture model adapts, the species do not change
    sites = specimen.random_mos2((30.0, 30.0), rng=4, s_vacancy=0.1)
    obj = _object(sites, (190, 190))
    a = ds.find_atoms(obj, sampling=S)
    b = ds.find_atoms(obj * 100, sampling=S)
    assert list(a.species) == list(b.species)


def test_adatom_is_reported_off_the_lattice():
    sites = specimen.mos2_lattice((30.0, 30.0))
    mo = np.flatnonzero(sites.species == "Mo")
    centre = np.argmin(np.hypot(sites.x[mo] - 15, sites.y[mo] - 15))
    # a hollow site: a/sqrt(3) from a Mo, opposite to an S direction
    x0, y0 = sites.x[mo][centre], sites.y[mo][centre]
    s = np.flatnonzero(sites.species == "S2")
    nearest_s = s[np.argmin(np.hypot(sites.x[s] - x0, sites.y[s] - y0))]
    hx, hy = 2 * x0 - sites.x[nearest_s], 2 * y0 - sites.y[nearest_s]
    adatom = specimen.Sites(np.array([hx]), np.array([hy]), np.array(["Mo_adatom"], object),
                            {"Mo": np.ones(1), "S": np.zeros(1)})
    found = ds.find_atoms(_object(sites + adatom, (190, 190)), sampling=S)
    ad = found[found.species == "Mo_adatom"]
    assert len(ad) == 1
    assert math.hypot(ad.x.iloc[0] - hx, ad.y.iloc[0] - hy) < 0.2


def test_edge_mo_with_one_bond_is_in_its_grain_a_lone_pair_is_not():
    """The adatom decision: a Mo on a lattice site of a grain, bonded to one grain Mo only, is an edge Mo of
    that grain (it was reported as an adatom); two lone Mo one bond apart are adatoms."""
    a = 3.16
    sites = specimen.mos2_lattice((30.0, 30.0), rotation=0.2)
    xy = np.c_[sites.x, sites.y]
    sp = np.asarray(sites.species)
    grain = np.hypot(sites.x - 15, sites.y - 15) < 7.0
    mo = np.flatnonzero(sp == "Mo")
    inner = xy[mo[grain[mo]]]
    edge = next(k for k in mo if not grain[k] and np.sum(np.hypot(*(inner - xy[k]).T) < 1.1 * a) == 1)
    keep = grain.copy()
    keep[edge] = True
    s2 = np.flatnonzero(sp == "S2")
    keep[s2[np.hypot(*(xy[s2] - xy[edge]).T) < 0.7 * a]] = True  # the S it carries
    pair = specimen.Sites(np.array([4.0, 4.0 + a]), np.array([25.0, 25.0]), np.array(["Mo_adatom"] * 2, object),
                          {"Mo": np.ones(2), "S": np.zeros(2)})
    found = ds.find_atoms(_object(sites.select(keep) + pair, (190, 190)), sampling=S)
    nearest = np.hypot(found.x - xy[edge, 0], found.y - xy[edge, 1]).idxmin()
    assert found.species[nearest] == "Mo"
    adatoms = found[found.species == "Mo_adatom"]
    assert len(adatoms) == 2 and np.allclose(np.sort(adatoms.x), [4.0, 4.0 + a], atol=0.1)


def test_mo_on_a_faint_lattice_is_an_adatom():
    """A Mo atom among columns that scatter far less (the support read as a lattice on a bare frame) is not
    bonded to them: it is an adatom (it was labelled a lattice Mo of the faint lattice)."""
    sites = specimen.mos2_lattice((30.0, 30.0))
    mo = np.flatnonzero(np.asarray(sites.species) == "Mo")
    k = mo[np.argmin(np.hypot(sites.x[mo] - 15, sites.y[mo] - 15))]
    others = mo[mo != k]
    faint = specimen.Sites(sites.x[others], sites.y[others], np.array(["C"] * len(others), object),
                           {"C": np.full(len(others), 3.0)})
    atom = specimen.Sites(sites.x[[k]], sites.y[[k]], np.array(["Mo_adatom"], object), {"Mo": np.ones(1)})
    found = ds.find_atoms(_object(faint + atom, (190, 190)), sampling=S, quiet=True)
    nearest = np.hypot(found.x - sites.x[k], found.y - sites.y[k]).idxmin()
    assert found.species[nearest] == "Mo_adatom"
    assert (found.species == "Mo").sum() > 50  # the faint columns still form their lattice


def test_material_none_finds_every_bright_column():
    sites = specimen.graphene_lattice((20.0, 20.0))
    obj = _object(sites, (125, 125))
    found = ds.find_atoms(obj, sampling=S, material=None)
    assert set(found.species) == {"column"}
    score = metrics.match_sites(found, sites.x, sites.y, 0.4)
    inside = (sites.x > 1) & (sites.x < 19) & (sites.y > 1) & (sites.y < 19)
    assert np.isin(np.flatnonzero(inside), score[1]).mean() > 0.95


def test_material_none_refines_positions_and_fits_intensities_in_the_counts():
    """Another material (a jittered square lattice of heavy columns) at a low dose: with the counts and the probe,
    every column's position is refined in the counts, closer to the truth than the object's peaks, and its
    intensity is the fitted count of the column."""
    from deepstem_utils.physics import imaging

    rng = np.random.default_rng(5)
    grid = np.arange(3.0, 37.0, 3.3)
    xx, yy = np.meshgrid(grid, grid)
    n = xx.size
    sites = specimen.Sites(xx.ravel() + rng.uniform(-0.3, 0.3, n), yy.ravel() + rng.uniform(-0.3, 0.3, n),
                           np.array(["Mo"] * n, object), {"Mo": np.ones(n)})
    probe = ds.Probe(80e3, 30.0, source_size=0.5)
    psf = probe.intensity((64, 64), S)
    obj = specimen.object_function(sites, (250, 250), S)
    counts = rng.poisson(imaging.linear_image(obj, psf) * 300.0).astype(float)   # a few hundred counts/column
    from scipy import ndimage
    smooth = ndimage.gaussian_filter(counts, 0.25 / S)             # the locator: a Gaussian-filtered frame
    alone = ds.find_atoms(smooth, sampling=S, material=None)
    fitted = ds.find_atoms(smooth, sampling=S, material=None, counts=counts, psf=psf)
    assert fitted.attrs["intensities"] == "counts" and len(fitted) == len(alone)

    def rms(found):
        i, j = metrics.match_sites(found, sites.x, sites.y, 0.6)
        inner = (sites.x[j] > 2) & (sites.x[j] < 38) & (sites.y[j] > 2) & (sites.y[j] < 38)
        return float(np.sqrt(np.mean((found.x.to_numpy()[i] - sites.x[j])[inner] ** 2
                                     + (found.y.to_numpy()[i] - sites.y[j])[inner] ** 2)))

    assert rms(fitted) < 0.8 * rms(alone), (rms(fitted), rms(alone))
    # the intensities are the columns' fitted counts: each column scatters obj's integral times 300 counts
    per_column = obj.sum() * 300.0 / n
    inner = (fitted.x > 3) & (fitted.x < 37) & (fitted.y > 3) & (fitted.y < 37)
    assert np.median(fitted.intensity[inner]) == pytest.approx(per_column, rel=0.1)


def test_reconstructed_noisy_frame_end_to_end():
    probe = ds.Probe(80e3, 30.0, {"C30": -1e4})
    f = dataset.simulate_frame((256, 256), sampling=S, dose=3e4, probe=probe, rng=8)
    obj = ds.reconstruct(f.counts, probe, sampling=S)
    found = ds.find_atoms(obj, sampling=S)
    score = metrics.score_sites(found, f.sites, (256 * S, 256 * S))
    assert score["per_species"].loc["Mo", "F1"] > 0.9
    assert score["s_site_accuracy"] > 0.6


def test_signal_input_uses_its_calibration():
    hs = pytest.importorskip("hyperspy.api")
    sites = specimen.mos2_lattice((20.0, 20.0))
    obj = _object(sites, (125, 125))
    signal = hs.signals.Signal2D(obj)
    for axis in signal.axes_manager.signal_axes:
        axis.scale, axis.units = S / 10, "nm"
    pd.testing.assert_frame_equal(ds.find_atoms(signal), ds.find_atoms(obj, sampling=S))


@pytest.mark.parametrize("obj, message", [(np.ones(50), "2-D"), (np.full((50, 50), np.nan), "NaN"),
                                          (np.ones((50, 50)), None)])
def test_bad_input(obj, message):
    if message is None:  # a featureless object has no columns: an empty table, not a crash
        out = ds.find_atoms(obj, sampling=S)
        assert len(out) == 0 and list(out.columns[:4]) == ["x", "y", "species", "confidence"]
        return
    with pytest.raises(ValueError, match=message):
        ds.find_atoms(obj, sampling=S)


def test_needs_sampling_and_known_material():
    obj = _object(specimen.mos2_lattice((10.0, 10.0)), (64, 64))
    with pytest.raises(ValueError, match="sampling"):
        ds.find_atoms(obj)
    with pytest.raises(ValueError, match="material"):
        ds.find_atoms(obj, sampling=S, material="WSe2")


def test_find_atoms_with_nothing_to_find_says_why():
    """An image without bright columns gives no site and a warning that says so (not an error)."""
    image = np.zeros((120, 120))
    image[60, 60] = 1.0  # a single bright pixel: one column, no lattice
    with pytest.warns(UserWarning, match="no MoS₂"):
        table = ds.find_atoms(image, sampling=0.15)
    assert table.empty and list(table.columns[:4]) == ["x", "y", "species", "confidence"]


def test_dopant_on_s_sites_is_its_own_species():
    """Se substituted for one S of a column (S + Se) is told apart from S2, S1 and Mo with dopant="Se"."""
    sites = specimen.mos2_lattice((30.0, 30.0), rotation=0.2)
    rng = np.random.default_rng(1)
    s = rng.permutation(np.flatnonzero(sites.species == "S2"))
    se, s1 = s[:15], s[15:25]
    sites.counts["Se"] = np.zeros(len(sites))
    sites.species[se], sites.counts["S"][se], sites.counts["Se"][se] = "Se", 1, 1
    sites.species[s1], sites.counts["S"][s1] = "S1", 1
    obj = specimen.object_function(sites, (200, 200), 0.15)
    noisy = obj + rng.normal(0, 0.02 * obj.max(), obj.shape)
    found = ds.find_atoms(noisy, sampling=0.15, dopant="Se")
    score = metrics.score_sites(found, sites, (30.0, 30.0), species=("Mo", "S2", "S1", "vacancy", "Se"))
    f1 = score["per_species"]["F1"]
    assert f1["Se"] > 0.9 and f1["S1"] > 0.9 and f1["Mo"] > 0.95
    with pytest.raises(ValueError, match="dopant"):
        ds.find_atoms(noisy, sampling=0.15, dopant="Xx")


def _nonlinear_object(seed=3):
    """A frame with few S1 sites whose lone S reads at 0.75 of S2 (as a network's object can), not 0.5."""
    sites = specimen.random_mos2((36.0, 36.0), rng=seed, s_vacancy=0.05, s_divacancy=0.0)
    obj = _object(sites, (225, 225))
    lone = sites.species == "S1"
    extra = specimen.Sites(sites.x[lone], sites.y[lone], sites.species[lone],
                           {e: c[lone] for e, c in sites.counts.items()})
    return obj + 0.5 * _object(extra, (225, 225)), sites


def test_one_atom_fraction_starts_the_mixture_where_the_object_puts_one_atom():
    obj, sites = _nonlinear_object()
    assert 2 <= np.sum(sites.species == "S1") <= 8  # too few lone S atoms to fit their level from the frame
    recall = {}
    for level in (0.5, 0.75):
        found = ds.find_atoms(obj, sampling=S, one_atom_fraction=level)
        recall[level] = metrics.score_sites(found, sites, (36.0, 36.0))["per_species"].loc["S1", "recall"]
    assert recall[0.75] == 1.0 and recall[0.5] < 1.0
    # reconstruct() writes the level into a Signal2D's metadata; find_atoms reads it from there
    import hyperspy.api as hs

    signal = hs.signals.Signal2D(obj)
    for axis in signal.axes_manager.signal_axes:
        axis.scale, axis.units = S, "Å"
    signal.metadata.set_item("DeepSTEM.one_atom_fraction", 0.75)
    pd.testing.assert_frame_equal(ds.find_atoms(signal), ds.find_atoms(obj, sampling=S, one_atom_fraction=0.75))
    with pytest.raises(ValueError, match="one_atom_fraction"):
        ds.find_atoms(obj, sampling=S, one_atom_fraction=1.5)


def test_columns_beyond_the_edge_do_not_leak_into_edge_sites():
    """The counts fit holds the lattice sites predicted just outside the frame: S2 sites at the frame's edge read
    like those inside. Without them, the tails of the Mo beyond the edge are credited to the edge sites."""
    probe = ds.Probe(80e3, 30.0, {"C30": -5e3}, source_size=0.5)
    f = dataset.simulate_frame((256, 256), sampling=S, dose=1e7, probe=probe, rng=3, s_vacancy=0.0,
                               s_divacancy=0.0)
    crop = (slice(48, 208), slice(48, 208))  # the lattice goes on beyond every edge of the cropped frame
    obj, counts = f.obj[crop], f.counts[crop]
    psf = probe.intensity((64, 64), S)
    side = 160 * S
    ratio = {}
    for reach in (lattice.GHOST_REACH, -1e9):
        old, lattice.GHOST_REACH = lattice.GHOST_REACH, reach
        try:
            found = ds.find_atoms(obj, sampling=S, counts=counts, psf=psf, refine=False)
        finally:
            lattice.GHOST_REACH = old
        s2 = found[found.species == "S2"]
        to_edge = np.minimum.reduce([s2.x, s2.y, side - S - s2.x, side - S - s2.y])
        inner = s2.intensity[to_edge > 4.0].median()
        ratio[reach > 0] = (s2.intensity[to_edge < 1.5] / inner).to_numpy()
    assert len(ratio[True]) >= 5
    assert np.all(np.abs(ratio[True] - 1) < 0.1)  # with the sites beyond the edge held: as inside
    # the test can fail: without them, edge sites read high, and further from the inner level
    assert np.max(ratio[False]) > 1.1
    assert np.mean(np.abs(ratio[True] - 1)) < 0.6 * np.mean(np.abs(ratio[False] - 1))


def test_an_array_object_starts_at_the_shipped_networks_one_atom_level(monkeypatch):
    """An ndarray is taken to be reconstruct()'s object: the mixture starts at the level stored with the shipped
    weights (as a Signal2D from reconstruct carries it), not at the 1/2 of a linear image."""
    shipped = network.weights_calibration()["one_atom_fraction"]
    assert atoms.find.default_one_atom_fraction() == pytest.approx(shipped)
    # the shipped network's level may lie near 1/2 (the object then carries the count linearly); a level far from
    # it makes the test able to tell the two starts apart
    level = 0.62
    monkeypatch.setattr(atoms.find, "default_one_atom_fraction", lambda: level)
    frame = dataset.simulate_frame((128, 128), sampling=S, dose=2e4, rng=5, s_vacancy=0.15, s_divacancy=0.05)
    obj = ds.reconstruct(frame.counts, frame.probe, sampling=S)
    starts = []
    fit = atoms.fit_s_mixture
    monkeypatch.setattr(atoms.find, "fit_s_mixture", lambda *a, **k: (starts.append(k["alpha0"]), fit(*a, **k))[1])
    default = ds.find_atoms(obj, sampling=S)
    pd.testing.assert_frame_equal(default, ds.find_atoms(obj, sampling=S, one_atom_fraction=level))
    ds.find_atoms(obj, sampling=S, one_atom_fraction=0.5)
    ds.find_atoms(obj, sampling=S, counts=frame.counts, psf=frame.probe.intensity((64, 64), S))
    assert starts == pytest.approx([level, level, 0.5, 0.5])    # the counts are linear: 1/2


# ------------------------------------------------ parameters: a clear error naming the range, before any work
def _lattice_frame():
    sites = specimen.mos2_lattice((16.0, 16.0))
    obj = _object(sites, (100, 100))
    return obj, obj * 50.0 + 2.0, ds.Probe(80e3, 30.0).intensity((33, 33), S)


@pytest.mark.parametrize("change, match", [
    ({"counts": "negative"}, "counts.*negative"),
    ({"counts": "shape"}, "counts must have the object's shape"),
    ({"counts": "nan"}, "counts contains NaN"),
    ({"lattice_constant": 0.0}, r"lattice_constant must be .* between 2.8 and 3.8 Å"),
    ({"lattice_constant": float("nan")}, r"lattice_constant must be .* between"),
    ({"radius": 0.0}, r"radius must be between half a pixel .* and 2.0 Å"),
    ({"radius": -0.5}, r"radius must be between"),
    ({"radius": float("nan")}, r"radius must be between"),
    ({"sampling": 2.0}, r"sampling must be between 0.01 and 0.527 Å/px \(the lattice constant"),
    ({"sampling": 1e-4}, r"sampling must be between 0.01"),
    ({"sampling": 0.6, "material": None}, r"sampling must be between 0.01 and 0.5 Å/px"),
    ({"psf": "1-D"}, r"psf must be a 2-D probe intensity"),
    ({"psf": "negative"}, r"psf must be a probe intensity: non-negative"),
])
def test_bad_parameters_fail_before_any_work(monkeypatch, change, match):
    obj, counts, psf = _lattice_frame()
    kwargs = {"sampling": S, "counts": counts, "psf": psf}
    for key, value in change.items():
        if key == "counts":
            value = {"negative": -counts, "shape": counts[:-2], "nan": np.where(counts > counts.mean(), np.nan,
                                                                                 counts)}[value]
        if key == "psf":
            value = {"1-D": psf.sum(0), "negative": psf - psf.mean()}[value]
        kwargs[key] = value

    def no_work(*args, **kw):
        raise AssertionError("find_atoms started work before checking its parameters")

    monkeypatch.setattr(atoms.find, "find_columns", no_work)
    with pytest.raises(ValueError, match=match):
        ds.find_atoms(obj, **kwargs)


def test_good_parameters_still_work():
    obj, counts, psf = _lattice_frame()
    found = ds.find_atoms(obj, sampling=S, counts=counts, psf=psf, lattice_constant=3.16, radius=0.5)
    assert (found.species == "Mo").sum() > 10


# ------------------------------------------------ Signal2D: the signal's own coordinates, and what attrs record
def test_signal_positions_in_its_own_coordinates_and_attrs_record_them():
    hs = pytest.importorskip("hyperspy.api")
    sites = specimen.mos2_lattice((20.0, 20.0))
    obj = _object(sites, (125, 125))
    signal = hs.signals.Signal2D(obj)
    for axis, offset in zip(signal.axes_manager.signal_axes, (1.25, -0.5)):
        axis.scale, axis.units, axis.offset = S / 10, "nm", offset  # offsets 12.5 Å, -5 Å
    signal.metadata.General.original_filename = "frame_0001.dm4"
    plain = ds.find_atoms(obj, sampling=S)
    found = ds.find_atoms(signal)
    np.testing.assert_allclose(found.x, plain.x + 12.5)
    np.testing.assert_allclose(found.y, plain.y - 5.0)
    assert list(found.species) == list(plain.species)
    # a site sits where the signal's own axes put its column
    first = found.iloc[0]
    col = signal.axes_manager.signal_axes[0].value2index((first.x) / 10)
    row = signal.axes_manager.signal_axes[1].value2index((first.y) / 10)
    assert obj[row - 1:row + 2, col - 1:col + 2].max() == obj[max(row - 4, 0):row + 5, max(col - 4, 0):col + 5].max()
    attrs = found.attrs
    assert attrs["units"]["x"] == attrs["units"]["y"] == "Å"
    assert attrs["sampling"] == pytest.approx(S) and attrs["origin"] == pytest.approx([12.5, -5.0])
    assert attrs["source"] == "frame_0001.dm4" and attrs["shape"] == [125, 125] and attrs["intensities"] == "object"
    assert "mixture" in attrs
    assert plain.attrs["source"] == "ndarray" and plain.attrs["origin"] == [0.0, 0.0]
    empty = ds.find_atoms(np.zeros((64, 64)), sampling=S, quiet=True)  # no lattice: the table still says what it is
    assert empty.attrs["sampling"] == S and empty.attrs["units"]["x"] == "Å"


def test_a_grain_mo_at_the_frame_edge_holds_its_s_an_adatom_does_not():
    """At the frame's edge a grain Mo whose Mo neighbours lie beyond the frame has no bond to a grain in view,
    like an adatom on the support; but it holds its S columns, and an adatom on the support does not (in
    chapter 7's series such edge Mo were 81 of 94 false adatoms)."""
    a = 3.16
    sites = specimen.mos2_lattice((30.0, 30.0), rotation=0.1)
    xy = np.c_[sites.x, sites.y]
    sp = np.asarray(sites.species)
    mo = np.flatnonzero(sp == "Mo")
    grain = sites.x > 14.0                                   # a grain in view, so there is a lattice
    edge = next(k for k in mo if 1.0 < sites.x[k] < 2.5 and 8.0 < sites.y[k] < 22.0)
    keep = grain.copy()
    keep[edge] = True
    s2 = np.flatnonzero(sp == "S2")
    keep[s2[(np.hypot(*(xy[s2] - xy[edge]).T) < 0.7 * a) & (sites.x[s2] > 0.3)]] = True  # its S in view
    lone = specimen.Sites(np.array([1.8]), np.array([3.0]), np.array(["Mo_adatom"], object),
                          {"Mo": np.ones(1), "S": np.zeros(1)})
    found = ds.find_atoms(_object(sites.select(keep) + lone, (190, 190)), sampling=S)
    at_edge = np.hypot(found.x - xy[edge, 0], found.y - xy[edge, 1]).idxmin()
    assert np.hypot(found.x[at_edge] - xy[edge, 0], found.y[at_edge] - xy[edge, 1]) < 0.3
    assert found.species[at_edge] == "Mo"
    at_lone = np.hypot(found.x - 1.8, found.y - 3.0).idxmin()
    assert found.species[at_lone] == "Mo_adatom"
