"""The first cell of every chapter: ``from deepstem_utils import book; rng = book.setup()``.

One call gives every chapter the same set-up, so that no notebook carries a copy
of it:

* **Figures for the text column.** The matplotlib style :data:`STYLE`: figures
  :data:`FIGURE_PX` wide at :data:`DPI` (one figure pixel is one CSS pixel in the
  book's :data:`COLUMN_PX` text column, so a figure is shown at 100 % and its text
  at the size it was drawn), constrained layout, readable font sizes.
  :func:`deepstem_utils.plotting.column_figure` sizes its figures from this style.
  In a Jupyter kernel, figures are sent as PNG files that record in their metadata
  the smallest text drawn in them (:data:`TEXT_SIZE_KEY`, in pt), so that the book's
  tests can check that no text is shown below :data:`MIN_TEXT_PX`.
* **Progress bars off when nobody watches.** When the kernel's client cannot answer
  ``input()`` (the book build, nbclient, nbconvert, papermill all run cells that
  way) or ``TQDM_DISABLE`` is set, every tqdm bar is disabled, whatever its caller
  passes as ``disable=``: a static page would otherwise show a frozen "0%| | 0/80".
  A reader running the notebook in Jupyter keeps the bars.
* **Deterministic seeds** for ``random``, NumPy's global generator and torch (when
  it is imported), and a seeded :class:`numpy.random.Generator` to use.
* **Buffers reused.** :func:`deepstem_utils.core.memory.keep_freed_memory`: the
  chapter's large temporaries (FFTs, sparse fits, feature maps) come from memory
  the process freed before instead of fresh kernel pages; the results are the same
  to the bit, the chapter runs faster.
* **Tables.** pandas shows 4 significant decimals, a Series as a table (not as its
  ``dtype: float64`` text repr) and NumPy scalars print as numbers, not as
  ``np.float64(0.5)``.

This module imports only the ground floor of the package (``core``): it configures
matplotlib, pandas, tqdm, the allocator and the random generators that the package's
modules use. So any floor above ``core`` may import it (the explorers of ``widgets`` could record their snapshots' text size
with :func:`figure_png` once ``tests/test_architecture.py`` lists a floor for it).
"""

from __future__ import annotations

import io
import os
import random
import sys
import warnings

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import tqdm.std
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.figure import Figure

from .core.memory import keep_freed_memory

__all__ = ["COLUMN_PX", "DPI", "FIGURE_PX", "MIN_TEXT_PX", "STYLE", "TEXT_SIZE_KEY", "setup", "table", "sci", "interactive_client",
           "show_progress_bars", "drawn_text_sizes", "figure_png"]

#: Width of the book's text column [CSS px], measured in the built book with headless Chromium
#: (``tools/measure_column.py``: the content box of a chapter's ``article``, which images fill
#: up to ``max-width: 100%``): 688 px in a 1280 px wide window, 784 px at 1400 px (the window
#: of the book's tests), 790 px from 1600 px on (sphinx-book-theme 1.3).
COLUMN_PX = 784
#: Figure resolution [dots per inch]: at natural size one figure pixel is one CSS pixel.
DPI = 100
#: Natural width of a full-column figure [px]: the column less 20 px, the margin of the
#: tight bounding box the inline backend crops figures to.
FIGURE_PX = COLUMN_PX - 20
#: Smallest text a reader should have to read in a figure, as displayed [px].
MIN_TEXT_PX = 8.0
#: PNG text chunk in which a figure records the size of the smallest text drawn in it [pt].
TEXT_SIZE_KEY = "DeepSTEM smallest text pt"

#: The book's matplotlib style (font sizes in pt: 1 pt is DPI/72 px at natural size).
STYLE = {
    "figure.dpi": DPI,
    "savefig.dpi": "figure",
    "figure.figsize": (FIGURE_PX / DPI, 0.62 * FIGURE_PX / DPI),
    "figure.constrained_layout.use": True,
    "font.size": 10.0,
    "axes.titlesize": "medium",
    "axes.labelsize": "medium",
    "xtick.labelsize": "small",
    "ytick.labelsize": "small",
    "legend.fontsize": "small",
    "figure.titlesize": "large",
    "image.interpolation": "nearest",
    "figure.max_open_warning": 50,
}

#: tqdm's own constructor, kept so that the bars can be switched back on.
_TQDM_INIT = tqdm.std.tqdm.__dict__["__init__"]
#: Position of ``disable`` among tqdm's positional parameters.
_DISABLE_POSITION = 10


def _silent_init(self, *args, **kwargs):
    if len(args) > _DISABLE_POSITION:
        args = args[:_DISABLE_POSITION] + (True,) + args[_DISABLE_POSITION + 1 :]
    else:
        kwargs["disable"] = True
    return _TQDM_INIT.__get__(self, type(self))(*args, **kwargs)


def show_progress_bars(show: bool) -> None:
    """Show or hide every tqdm progress bar created from now on.

    Hidden bars are disabled whatever ``disable=`` their caller passes (the package's
    functions pass ``disable=not progress``); ``TQDM_DISABLE`` is set too, for the
    processes started later (dask workers, the command line).

    Parameters
    ----------
    show : bool
        True restores tqdm's own behaviour.
    """
    tqdm.std.tqdm.__init__ = _TQDM_INIT if show else _silent_init
    if show:
        os.environ.pop("TQDM_DISABLE", None)
    else:
        os.environ["TQDM_DISABLE"] = "1"


def _kernel():
    """The running IPython kernel, or None (not imported: IPython is not needed outside Jupyter)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell, getattr(shell, "kernel", None)


def interactive_client() -> bool:
    """Whether a person may be watching the output.

    In a Jupyter kernel: whether the client of the cell being run can answer
    ``input()`` (``allow_stdin`` of its execute request). JupyterLab, Notebook and
    VS Code can; nbclient, which the book build, nbconvert and papermill use, cannot.
    Outside a kernel (a script, a terminal): True.

    Returns
    -------
    bool
    """
    _, kernel = _kernel()
    if kernel is None or not hasattr(kernel, "get_parent"):
        return True
    parent = kernel.get_parent() or {}
    return bool(parent.get("content", {}).get("allow_stdin", True))


def drawn_text_sizes(fig: Figure) -> list[float]:
    """Font size of every piece of text drawn when ``fig`` is rendered [pt].

    The figure is drawn once on an off-screen renderer that records the size of
    each non-empty string it draws (titles, labels, tick labels, legends, colour-bar
    labels, annotations, scale-bar labels): what the reader sees, not what is set
    on artists that never show (the ticks of an axis turned off).

    Parameters
    ----------
    fig : matplotlib.figure.Figure

    Returns
    -------
    list of float
        Sizes [pt]; at natural size a size ``s`` shows as ``s * fig.dpi / 72`` px.
    """
    width, height = fig.bbox.size
    renderer = RendererAgg(max(int(width), 1), max(int(height), 1), fig.dpi)
    sizes: list[float] = []
    draw_text = renderer.draw_text

    def recording_draw_text(gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if str(s).strip():
            sizes.append(float(prop.get_size_in_points()))
        return draw_text(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)

    renderer.draw_text = recording_draw_text
    fig.draw(renderer)
    return sizes


def figure_png(fig: Figure) -> bytes | None:
    """The PNG the book shows for ``fig``, with the smallest text drawn in it in its metadata.

    As matplotlib's inline backend does: at the figure's dpi, cropped to the tight
    bounding box (5 px margin). The PNG text chunk :data:`TEXT_SIZE_KEY` holds the
    smallest font size drawn [pt] ("none" without text).

    Parameters
    ----------
    fig : matplotlib.figure.Figure

    Returns
    -------
    bytes or None
        None for a figure with nothing in it (as the inline backend).
    """
    if not fig.axes and not fig.artists and not fig.texts and not fig.images:
        return None
    sizes = drawn_text_sizes(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi, bbox_inches="tight", pad_inches=0.05,
                facecolor=fig.get_facecolor(), edgecolor=fig.get_edgecolor(),
                metadata={TEXT_SIZE_KEY: f"{min(sizes):.3f}" if sizes else "none"})  # fmt: skip
    return buffer.getvalue()


def table(frame: pd.DataFrame, formats: dict | str | None = None, missing: str = "—"):
    """A padded table without an index column, the book's style for every printed table.

    Parameters
    ----------
    frame : DataFrame
        The table; units belong in its column names (``"dose [e⁻/Å²]"``).
    formats : dict or str, optional
        Format per column (``{"PSNR [dB]": "{:.1f}"}``), or one format for every numeric column.
    missing : str
        What a missing value (NaN, None) shows: a dash, or words such as ``"none"``.

    Returns
    -------
    Styler
        Rendered by the notebook (and the book) as an HTML table.
    """
    if isinstance(formats, str):
        formats = {c: formats for c in frame.select_dtypes("number").columns}
    styler = frame.style.format(formats or {}, na_rep=missing).hide(axis="index")
    return styler.set_table_attributes('class="dataframe"')


def sci(x: float, digits: int = 1) -> str:
    """``x`` as 'a × 10ⁿ' (or '10ⁿ' for a power of ten), for tables and glued text.

    Examples
    --------
    >>> sci(25000.0)
    '2.5 × 10⁴'
    >>> sci(1e-3)
    '10⁻³'
    """
    exponent = int(np.floor(np.log10(abs(x))))
    mantissa = round(x / 10**exponent, digits)
    power = "10" + str(exponent).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return power if mantissa == 1 else f"{mantissa:g} × {power}"


def _series_html(series: pd.Series) -> str:
    return series.to_frame()._repr_html_()


def setup(seed: int = 2021, *, progress: bool | None = None) -> np.random.Generator:
    """Set up a chapter: figure style, progress bars, seeds, table display.

    Parameters
    ----------
    seed : int
        Seed of ``random``, NumPy's global generator, torch's (if torch is imported)
        and of the returned generator.
    progress : bool, optional
        Show tqdm progress bars. By default they are shown when a person may be
        watching (:func:`interactive_client`) and ``TQDM_DISABLE`` is not set.

    Returns
    -------
    numpy.random.Generator
        Seeded with ``seed``.
    """
    mpl.rcParams.update(STYLE)
    # constrained layout says this of every figure that also holds hand-placed axes (tableau montages, the
    # animation's panels); the layout of the gridspec axes is still right, and the book must build without stderr
    warnings.filterwarnings("ignore", message="There are no gridspecs with layoutgrids", category=UserWarning)
    if progress is None:
        progress = interactive_client() and os.environ.get("TQDM_DISABLE", "").lower() in ("", "0", "false")
    show_progress_bars(progress)

    random.seed(seed)
    np.random.seed(seed)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)

    keep_freed_memory()  # large temporaries reused, not page-faulted afresh: the same results, faster chapters

    pd.set_option("display.precision", 4)
    pd.set_option("styler.format.precision", 4)
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.max_colwidth", 80)
    pd.set_option("display.width", 120)
    np.set_printoptions(legacy="1.25")

    shell, _ = _kernel()
    if shell is not None and hasattr(shell, "display_formatter"):
        # the inline backend registers its own PNG formatter when its module is first loaded: load it first
        plt.switch_backend(mpl.get_backend())
        formatters = shell.display_formatter.formatters
        formatters["image/png"].for_type(Figure, figure_png)
        formatters["text/html"].for_type(pd.Series, _series_html)
    return np.random.default_rng(seed)
