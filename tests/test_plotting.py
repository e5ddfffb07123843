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


def _bbox(artist, fig):
    fig.canvas.draw()
    return artist.get_window_extent(fig.canvas.get_renderer())


def test_column_figure_takes_the_style_width_and_at_most_two_panels_side_by_side():
    with plt.rc_context({"figure.figsize": (7.2, 4.0), "figure.dpi": 100}):
        fig, axes = plotting.column_figure(2, 2, aspect=1.0)
        assert fig.get_figwidth() == pytest.approx(7.2) and axes.shape == (2, 2)
        half, _ = plotting.column_figure(1, 1, width=0.5)
        assert half.get_figwidth() == pytest.approx(3.6)
        wide_panels, _ = plotting.column_figure(1, 2, aspect=1.0)
        flat, _ = plotting.column_figure(1, 2, aspect=0.5)
        assert flat.get_figheight() < wide_panels.get_figheight()  # no white bands around flat panels
        with pytest.raises(ValueError, match="side by side"):
            plotting.column_figure(1, 3)
    plt.close("all")


def test_show_sites_keeps_the_axes_on_the_image():
    fig, ax = plotting.column_figure()
    plotting.show_image(ax, np.zeros((20, 30)), 0.5, label="counts")
    limits = ax.get_xlim(), ax.get_ylim()
    x, y = [-20.0, 5.0, 60.0], [-20.0, 5.0, 3.0]  # two sites far beyond the 15 x 10 Å image
    plotting.show_sites(ax, x, y, ["Mo", "Mo", "S2"], legend=False)
    assert (ax.get_xlim(), ax.get_ylim()) == limits
    drawn = np.concatenate([c.get_offsets() for c in ax.collections])
    assert drawn.tolist() == [[5.0, 5.0]]
    plt.close(fig)


def test_one_species_legend_outside_every_panel():
    fig, axes = plotting.column_figure(1, 2)
    for ax, species in zip(axes, (["Mo", "S2"], ["S1", "vacancy"])):
        plotting.show_image(ax, np.zeros((20, 20)), 0.5, label="counts")
        plotting.show_sites(ax, [2.0, 6.0], [2.0, 6.0], species)
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in axes)
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["Mo", "S$_2$", "S$_1$", "S vacancy"]
    box = _bbox(legend, fig)
    for ax in axes:
        assert not box.overlaps(ax.get_window_extent()), "the legend covers the data"
    plt.close(fig)


def test_a_colour_bar_needs_a_label():
    fig, (a, b, c) = plt.subplots(1, 3)
    plotting.show_image(a, np.ones((5, 5)), 1.0)  # no label: no colour bar
    plotting.show_image(b, np.ones((5, 5)), 1.0, label="counts")
    assert len(fig.axes) == 4 and fig.axes[-1].get_ylabel() == "counts"
    with pytest.raises(ValueError, match="label"):
        plotting.show_image(c, np.ones((5, 5)), 1.0, colorbar=True)
    plt.close(fig)


def test_a_white_scale_bar_sits_on_a_dark_backdrop():
    fig, ax = plt.subplots()
    plotting.show_image(ax, np.ones((50, 50)), 0.2, scalebar=False)
    bar = plotting.add_scalebar(ax, 2.0)
    assert bar.patch.get_visible() and np.mean(bar.patch.get_facecolor()[:3]) < 0.2
    plt.close(fig)


def test_dose_dwell_legend_is_outside_the_chart():
    fig, ax = plotting.column_figure(aspect=0.62)
    points = pd.DataFrame({"label": ["this book, computed"], "dose": [1e4], "dwell": [2.0], "source": ["computed"]})
    plotting.dose_dwell_chart(ax, points)
    assert ax.get_legend() is None and len(fig.legends) == 1
    assert not _bbox(fig.legends[0], fig).overlaps(ax.get_window_extent())
    plt.close(fig)
