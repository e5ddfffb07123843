"""The explorers: a live widget in Jupyter, a PNG of its state in the static book."""

from __future__ import annotations

import base64

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from deepstem_utils import widgets  # noqa: E402
from deepstem_utils.physics import specimen  # noqa: E402


def test_probe_explorer_follows_its_sliders_and_renders_a_png():
    sites = specimen.mos2_lattice((12.0, 12.0))
    obj = specimen.object_function(sites, (75, 75), 0.16)
    explorer = widgets.ProbeExplorer(obj, 0.16, defocus=0.0)
    sharp = explorer.probe()
    explorer.sliders["defocus"].value = 10.0
    blurred = explorer.probe()
    assert blurred.aberrations["C10"] == pytest.approx(-100.0) and blurred.d50() > sharp.d50()
    bundle = explorer._repr_mimebundle_()
    png = base64.b64decode(bundle["image/png"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and "defocus=10" in bundle["text/plain"]


def test_tableau_explorer_changes_the_chosen_aberration():
    tilts = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    explorer = widgets.TableauExplorer(tilts, shape=(64, 64), symbol="C21", value=1000.0)
    explorer.which.value = "C30"
    assert explorer.value.max == widgets.TableauExplorer.RANGES["C30"][1]
    assert "C30" in explorer._repr_mimebundle_()["text/plain"]


def test_probe_explorer_focal_spread_slider_lowers_the_peak():
    sites = specimen.mos2_lattice((12.0, 12.0))
    obj = specimen.object_function(sites, (75, 75), 0.16)
    explorer = widgets.ProbeExplorer(obj, 0.16, focal_spread=0.0)
    explorer.sliders["focal_spread"].value = 50.0
    probe = explorer.probe()
    assert probe.focal_spread == 50.0
    assert probe.intensity((151, 151), 0.16).max() < 0.8 * explorer.probe(focal_spread=0.0).intensity((151, 151), 0.16).max()
