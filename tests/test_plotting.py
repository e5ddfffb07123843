"""Figure helpers: calibrated extents, scale bars, overlays, the Fig. 1b chart."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from deepstem_utils import plotting


def test_extent_puts_pixel_centres_at_index_times_sampling():
    left, right, bottom, top = plotting.extent_of((10, 20), 0.5)
    assert (left, right, bottom, top) == (-0.25, 9.75, 4.75, -0.25)


@pytest.mark.parametrize("span, length", [(40.0, 5.0), (100.0, 20.0), (7.0, 1.0), (0.9, 0.1)])
def test_nice_length(span, length):
    assert plotting.nice_length(span) == pytest.approx(length)


def test_show_image_labels_axes_in_angstrom_and_draws_sites():
    fig, ax = plt.subplots()
    im = plotting.show_image(ax, np.random.default_rng(0).random((30, 40)), 0.2, "frame", label="counts")
    plotting.show_sites(ax, [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], ["Mo", "S2", "C"])
    assert ax.get_xlabel() == "x [Å]" and ax.get_ylabel() == "y [Å]"
    assert im.get_extent() == list(plotting.extent_of((30, 40), 0.2))
    assert len(ax.collections) == 2  # Mo and S2 drawn, graphene C skipped
    plt.close(fig)


def test_dose_dwell_chart_draws_only_what_it_has():
    fig, ax = plt.subplots()
    points = pd.DataFrame({"label": ["this book", "a paper"], "dose": [1e4, np.nan], "dwell": [2.0, np.nan],
                           "source": ["computed", "quoted"]})
    plotting.dose_dwell_chart(ax, points)
    labels = [line.get_label() for line in ax.get_lines()]
    assert "this book" in labels and "a paper" not in labels
    assert ax.get_xscale() == "log" and "[e⁻/Å²]" in ax.get_ylabel()
    plt.close(fig)
