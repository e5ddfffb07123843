"""The chapters' set-up call: figure style for the text column, progress bars, seeds, tables."""

from __future__ import annotations

import base64
import io
import os
import random

import matplotlib
import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pandas as pd
import pytest
from nbclient import NotebookClient
from PIL import Image
from tqdm.std import tqdm

from deepstem_utils import book, plotting


@pytest.fixture
def restored():
    """Undo what setup() changes in this process."""
    rc = matplotlib.rcParams.copy()
    options = {o: pd.get_option(o) for o in ("display.precision", "styler.format.precision", "display.max_columns",
                                             "display.max_colwidth", "display.width")}  # fmt: skip
    printoptions = np.get_printoptions()
    tqdm_disable = os.environ.get("TQDM_DISABLE")
    yield
    matplotlib.rcParams.update(rc)
    for option, value in options.items():
        pd.set_option(option, value)
    np.set_printoptions(**printoptions)
    book.show_progress_bars(True)
    if tqdm_disable is not None:
        os.environ["TQDM_DISABLE"] = tqdm_disable


def test_style_makes_figures_one_column_wide_at_natural_size(restored):
    book.setup()
    assert matplotlib.rcParams["figure.dpi"] == book.DPI
    fig, axes = plotting.column_figure(1, 2, aspect=1.0, colorbar=True)
    assert fig.get_figwidth() * fig.dpi == pytest.approx(book.FIGURE_PX)
    assert book.FIGURE_PX <= book.COLUMN_PX
    plt.close(fig)


def test_two_image_panels_with_colour_bars_draw_no_text_below_the_minimum(restored):
    book.setup()
    fig, axes = plotting.column_figure(1, 2, colorbar=True)
    image = np.random.default_rng(0).random((40, 40))
    for ax in axes:
        plotting.show_image(ax, image, 0.2, "a panel title", label="counts")
    plotting.show_sites(axes[1], [1.0, 2.0], [1.0, 2.0], ["Mo", "S2"])
    sizes = book.drawn_text_sizes(fig)
    assert len(sizes) > 10  # titles, labels, ticks, colour bars, scale bars, legend
    assert min(sizes) * fig.dpi / 72 >= book.MIN_TEXT_PX
    plt.close(fig)


def test_drawn_text_sizes_sees_small_text_and_skips_hidden_axes():
    fig, (a, b) = plt.subplots(1, 2)
    a.set_title("tiny", fontsize=3)
    b.axis("off")
    b.tick_params(labelsize=2)  # never drawn: the axis is off
    sizes = book.drawn_text_sizes(fig)
    assert min(sizes) == pytest.approx(3)
    assert 2 not in sizes
    plt.close(fig)


def test_figure_png_records_the_smallest_text():
    fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
    ax.plot([0, 1])
    ax.set_xlabel("small", fontsize=5)
    png = Image.open(io.BytesIO(book.figure_png(fig)))
    assert float(png.text[book.TEXT_SIZE_KEY]) == pytest.approx(5)
    assert png.size[0] <= 4 * 100 + 10
    assert book.figure_png(plt.figure()) is None
    plt.close("all")


def test_seeds_are_reproducible(restored):
    first = book.setup(seed=7)
    a = (random.random(), np.random.random(), first.random())
    second = book.setup(seed=7)
    assert (random.random(), np.random.random(), second.random()) == a


def test_hidden_bars_stay_hidden_whatever_the_caller_passes(restored):
    out = io.StringIO()
    book.show_progress_bars(False)
    assert os.environ["TQDM_DISABLE"] == "1"
    for _ in tqdm(range(5), file=out, disable=False):
        pass
    assert out.getvalue() == ""
    book.show_progress_bars(True)
    for _ in tqdm(range(5), file=out, disable=False):
        pass
    assert "5/5" in out.getvalue()  # the control: shown again


def test_outside_a_kernel_a_person_may_be_watching():
    assert book.interactive_client()


def _outputs(cell):
    return [(o.output_type, o.get("name"), o.get("data", {}), o.get("text", "")) for o in cell.outputs]


def test_in_a_kernel_run_by_nbclient_bars_are_off_figures_measured_series_are_tables():
    """The book build's situation: nbclient runs the cells (no stdin). A bar before setup() is the control."""
    cells = ["from tqdm.auto import tqdm\nfor _ in tqdm(range(3), disable=False): pass",
             "from deepstem_utils import book\nrng = book.setup()\nprint(book.interactive_client())",
             "for _ in tqdm(range(3), disable=False): pass",
             "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.set_title('t', fontsize=6)\nplt.show()",
             "import pandas as pd, numpy as np\npd.Series([1.5, 2.5], index=['a', 'b'], name='v')",
             "np.float64(0.5)"]  # fmt: skip
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=180, kernel_name="python3").execute()
    before, setup, after, figure, series, scalar = (_outputs(c) for c in nb.cells)
    assert before, "the control: without setup() the bar leaves output"
    assert setup == [("stream", "stdout", {}, "False\n")]
    assert after == []
    png = next(d["image/png"] for kind, _, d, _ in figure if "image/png" in d)
    text = Image.open(io.BytesIO(base64.b64decode(png))).text
    assert float(text[book.TEXT_SIZE_KEY]) == pytest.approx(6)
    assert "<table" in series[0][2]["text/html"]
    assert scalar[0][2]["text/plain"] == "0.5"
