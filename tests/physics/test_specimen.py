"""Specimens in projection, cross-sections and object functions."""

from __future__ import annotations

import numpy as np
import pytest

from deepstem_utils.physics import specimen


def test_mos2_lattice_geometry():
    sites = specimen.mos2_lattice((30.0, 30.0), margin=0.0)
    mo = sites.select(sites.species == "Mo")
    s2 = sites.select(sites.species == "S2")
    assert abs(len(mo) - len(s2)) <= 0.1 * len(mo)
    # nearest Mo-Mo distance is a, nearest Mo-S (projected) is a / sqrt(3)
    p_mo = np.column_stack([mo.x, mo.y])
    p_s = np.column_stack([s2.x, s2.y])
    d_mm = np.linalg.norm(p_mo[:, None] - p_mo[None], axis=-1)
    d_mm[d_mm == 0] = np.inf
    assert d_mm.min() == pytest.approx(specimen.MOS2_A, rel=1e-9)
    d_ms = np.linalg.norm(p_mo[:, None] - p_s[None], axis=-1)
    assert d_ms.min() == pytest.approx(specimen.MOS2_A / np.sqrt(3), rel=1e-9)
    # density: one Mo per unit cell of area sqrt(3)/2 a^2
    area = 30.0 * 30.0
    assert len(mo) == pytest.approx(area / (np.sqrt(3) / 2 * specimen.MOS2_A**2), rel=0.08)
    assert set(np.unique(s2.counts["S"])) == {2.0}


def test_rotation_keeps_distances():
    sites = specimen.mos2_lattice((20.0, 20.0), rotation=0.3)
    p = np.column_stack([sites.x, sites.y])[sites.species == "Mo"]
    d = np.linalg.norm(p[:, None] - p[None], axis=-1)
    d[d == 0] = np.inf
    assert d.min() == pytest.approx(specimen.MOS2_A)


def test_cross_section_scaling():
    s, mo = specimen.haadf_cross_section(np.array([16, 42]), gamma=1.7)
    assert s / mo == pytest.approx((16 / 42) ** 1.7)
    # the screened-Rutherford estimate grows with Z and is of order 0.01-0.1 Å² for Mo at 80 kV
    w = specimen.haadf_cross_section(np.array([6, 16, 42]), gamma=None)
    assert np.all(np.diff(w) > 0) and 0.005 < w[-1] < 0.2


def test_object_function_integrates_to_cross_sections():
    sampling = 0.1
    sites = specimen.Sites(np.array([5.0, 12.0]), np.array([6.0, 6.0]), np.array(["Mo", "S2"], dtype=object),
                           {"Mo": np.array([1.0, 0.0]), "S": np.array([0.0, 2.0])})
    obj = specimen.object_function(sites, (120, 170), sampling)
    sigma_mo, sigma_s = specimen.haadf_cross_section(np.array([42, 16]))
    total = obj.sum() * sampling**2
    assert total == pytest.approx(sigma_mo + 2 * sigma_s, rel=1e-5)
    left = obj[:, :85].sum() * sampling**2
    assert left == pytest.approx(sigma_mo, rel=1e-5)
    # the peak sits at the atom: row y / sampling, column x / sampling
    assert np.unravel_index(np.argmax(obj), obj.shape) == (60, 50)
