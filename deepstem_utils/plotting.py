"""Figure helpers shared by the chapters: figures for the text column, calibrated image panels, scale bars.

Figures for the book are made by :func:`column_figure`: its natural width is the
width of the matplotlib style's default figure, which ``deepstem_utils.book.setup()``
sets to the book's text column, so that a figure is shown at 100 % and its text at
the size it was drawn (a 15-inch figure squeezed into the column renders its tick
labels at 4–7 px). At most two panels sit side by side; more panels go in rows.

Overlays stay inside the image (:func:`show_sites` never widens the axes beyond
the image), legends go outside the data (:func:`legend_outside`), a colour bar is
drawn only with a label that says what it shows and in which unit, and a scale bar
carries a dark backdrop so that it reads on bright images too.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.font_manager import FontProperties
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

from .core.constants import E_CHARGE

__all__ = ["MAX_COLUMNS", "column_figure", "legend_outside", "extent_of", "show_image", "show_sites", "add_scalebar",
           "nice_length", "dose_dwell_chart", "tableau_montage", "draw_autoencoder", "show_series_panel"]

#: At most this many panels side by side in the text column; more panels go in rows.
MAX_COLUMNS = 2
#: Room a panel's decorations take beside and below its data area [in]: y tick labels and label;
#: a colour bar with its ticks and label; the title, x tick labels and label.
_Y_DECORATION, _COLORBAR_DECORATION, _X_DECORATION = 0.65, 0.85, 0.85
#: Tag of the legend :func:`legend_outside` owns (one per figure).
_OUTSIDE_LEGEND = "deepstem-outside-legend"


def column_figure(nrows: int = 1, ncols: int = 1, *, aspect: float = 1.0, width: float = 1.0,
                  colorbar: bool = False, **subplot_kw):
    """A figure for the book's text column, with constrained layout.

    Its width is the style's default figure width (``rcParams["figure.figsize"][0]``),
    which ``deepstem_utils.book.setup()`` sets to the text column, times ``width``; its
    height follows from the panels' aspect ratio, so an image panel is not framed by
    white bands. Shown at its natural width, its text renders at the size it was drawn.

    Parameters
    ----------
    nrows, ncols : int
        Panels in rows and side by side; at most :data:`MAX_COLUMNS` side by side.
    aspect : float
        Height over width of each panel's data area [dimensionless]: 1 for a square
        image, about 0.62 for a line plot.
    width : float
        Fraction of the column's width the figure takes, 0 < width ≤ 1 [dimensionless].
    colorbar : bool
        Leave room for a colour bar beside every panel.
    **subplot_kw
        Passed on to :meth:`matplotlib.figure.Figure.subplots` (``sharex``, ``sharey``, ...).

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : Axes or ndarray of Axes
        As :func:`matplotlib.pyplot.subplots` returns them (squeezed).

    Raises
    ------
    ValueError
        More than :data:`MAX_COLUMNS` panels side by side, or a width or aspect out of range.
    """
    if not 1 <= ncols <= MAX_COLUMNS:
        raise ValueError(f"at most {MAX_COLUMNS} panels side by side fit the text column (got ncols={ncols}); "
                         "put more panels in rows")
    if nrows < 1 or not 0 < width <= 1 or not aspect > 0:
        raise ValueError(f"need nrows >= 1, 0 < width <= 1 and aspect > 0 (got {nrows}, {width}, {aspect})")
    fig_width = plt.rcParams["figure.figsize"][0] * width
    data_width = fig_width / ncols - _Y_DECORATION - (_COLORBAR_DECORATION if colorbar else 0.0)
    data_width = max(data_width, 0.3 * fig_width / ncols)
    height = nrows * (data_width * aspect + _X_DECORATION)
    fig = plt.figure(figsize=(fig_width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, **subplot_kw)
    return fig, axes


def legend_outside(ax, loc: str = "lower center", ncols: int | None = None, **kwargs):
    """One legend for the labelled artists of every panel of ``ax``'s figure, outside the data.

    With constrained layout (:func:`column_figure`) it is a figure legend placed
    outside all panels (below them by default) and the layout makes room for it;
    otherwise it sits to the right of ``ax``. Calling it again replaces the legend
    it made before, so panels that each add labels end with a single legend.

    Parameters
    ----------
    ax : matplotlib Axes
        A panel of the figure.
    loc : str
        Side and alignment, e.g. ``"lower center"`` (below the panels) or ``"right upper"``.
    ncols : int, optional
        Legend columns; by default up to four entries per row, one entry per row for long labels.
    **kwargs
        Passed on to :meth:`matplotlib.figure.Figure.legend`.

    Returns
    -------
    matplotlib.legend.Legend or None
        None when no artist has a label.
    """
    fig = ax.figure
    handles, labels = [], []
    for panel in fig.axes:
        for handle, label in zip(*panel.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    for old in [leg for leg in fig.legends if leg.get_gid() == _OUTSIDE_LEGEND]:
        old.remove()
    for panel in fig.axes:
        if panel.get_legend() is not None and panel.get_legend().get_gid() == _OUTSIDE_LEGEND:
            panel.get_legend().remove()
    if not labels:
        return None
    if ncols is None:
        ncols = 1 if max(len(label) for label in labels) > 28 else min(len(labels), 4)
    if isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine):
        legend = fig.legend(handles, labels, loc=f"outside {loc}", ncols=ncols, **kwargs)
    else:
        legend = ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0,
                           ncols=ncols, **kwargs)
    legend.set_gid(_OUTSIDE_LEGEND)
    return legend


def extent_of(shape: tuple[int, int], sampling: float) -> tuple[float, float, float, float]:
    """imshow extent [Å] for an ``(ny, nx)`` image, pixel centres at ``index * sampling``.

    Returns ``(left, right, bottom, top)`` for ``origin="upper"`` (row 0 at the top).
    """
    ny, nx = shape
    return (-0.5 * sampling, (nx - 0.5) * sampling, (ny - 0.5) * sampling, -0.5 * sampling)


def nice_length(span: float) -> float:
    """A round scale-bar length, about a fifth of ``span`` (1, 2 or 5 × 10^n) [same unit]."""
    target = span / 5
    base = 10 ** np.floor(np.log10(target))
    for m in (5, 2, 1):
        if m * base <= target:
            return float(m * base)
    return float(base)


def add_scalebar(ax, length: float | None = None, units: str = "Å", color: str = "white", loc: str = "lower right",
                 backdrop: bool = True):
    """Draw a scale bar on an image panel whose axes are in Å.

    Parameters
    ----------
    ax : matplotlib Axes
        A panel drawn with :func:`show_image` (data coordinates in Å).
    length : float, optional
        Bar length [Å]; a round fifth of the field of view by default.
    units : {"Å", "nm"}
        Unit of the label.
    color : str
        Colour of the bar and its label.
    loc : str
        Corner of the panel.
    backdrop : bool
        Draw the bar on a translucent box of the opposite brightness, so that it
        reads on bright and dark parts of an image alike.

    Returns
    -------
    mpl_toolkits.axes_grid1.anchored_artists.AnchoredSizeBar
    """
    x0, x1 = sorted(ax.get_xlim())
    if length is None:
        length = nice_length(x1 - x0)
    label = f"{length / 10:g} nm" if units == "nm" else f"{length:g} Å"
    bar = AnchoredSizeBar(
        ax.transData, length, label, loc, pad=0.3, borderpad=0.4, color=color, frameon=backdrop,
        size_vertical=(x1 - x0) / 100, fontproperties=FontProperties(size="small"),
    )  # fmt: skip
    if backdrop:
        light = np.mean(to_rgb(color)) > 0.5
        bar.patch.set(facecolor="black" if light else "white", alpha=0.55, edgecolor="none")
    ax.add_artist(bar)
    return bar


def show_image(
    ax,
    image: np.ndarray,
    sampling: float,
    title: str | None = None,
    cmap: str = "gray",
    label: str | None = None,
    scalebar: bool | float = True,
    colorbar: bool | None = None,
    **kwargs,
):
    """Show a 2-D image with calibrated axes in Å, a scale bar and a labelled colour bar.

    Parameters
    ----------
    ax : matplotlib Axes
    image : (ny, nx) ndarray
    sampling : float
        Pixel size [Å].
    title : str, optional
    cmap : str
    label : str, optional
        What the colour bar shows, with its unit, e.g. ``"counts"`` or ``"phase [rad]"``.
    scalebar : bool or float
        True for an automatic bar, a number for a bar of that length [Å], False for none.
    colorbar : bool, optional
        Draw a colour bar. By default one is drawn when ``label`` says what it shows;
        a colour bar without a label means nothing, so ``colorbar=True`` needs one.

    Returns
    -------
    matplotlib.image.AxesImage

    Raises
    ------
    ValueError
        ``colorbar=True`` without a ``label``.
    """
    if colorbar is None:
        colorbar = label is not None
    if colorbar and not label:
        raise ValueError("a colour bar needs a label saying what it shows and its unit (label=...)")
    image = np.asarray(image)
    im = ax.imshow(image, cmap=cmap, extent=extent_of(image.shape, sampling), origin="upper", **kwargs)
    ax.set_xlabel("x [Å]")
    ax.set_ylabel("y [Å]")
    if title:
        ax.set_title(title)
    if scalebar:
        add_scalebar(ax, None if scalebar is True else float(scalebar))
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=label)
    return im


def tableau_montage(fig, diffractograms, tilts, k_sampling: float, k_max: float = 0.8, size: float = 0.125,
                    title: str | None = None):
    """The classic Zemlin-tableau montage: each diffractogram drawn at its tilt position.

    Parameters
    ----------
    fig : matplotlib Figure
    diffractograms : sequence of (n, n) ndarray
        Power spectra, zero frequency at ``(n//2, n//2)``.
    tilts : (m, 2) array_like
        Beam tilts ``(tx, ty)`` [mrad].
    k_sampling : float
        Frequency step of the diffractograms [1/Å].
    k_max : float
        Half-width of the shown region [1/Å].
    size : float
        Inset size as a fraction of the figure.

    Returns
    -------
    matplotlib Axes
        The background axes, in mrad.
    """
    tilts = np.asarray(tilts, float)
    reach = max(np.abs(tilts).max(), 1.0) * 1.35
    ax = fig.add_axes([0.08, 0.08, 0.86, 0.84])
    ax.set(xlim=(-reach, reach), ylim=(reach, -reach), xlabel="beam tilt τx [mrad]", ylabel="beam tilt τy [mrad]",
           aspect="equal")
    if title:
        ax.set_title(title)
    for spec, (tx, ty) in zip(diffractograms, tilts):
        n = spec.shape[0]
        c = n // 2
        r = int(min(c - 1, round(k_max / k_sampling)))
        crop = np.log(spec[c - r : c + r + 1, c - r : c + r + 1] + 1e-12)
        lo, hi = np.percentile(crop, [2, 99.8])
        # place the inset centred at the tilt (data -> figure coordinates)
        x_fig, y_fig = fig.transFigure.inverted().transform(ax.transData.transform((tx, ty)))
        inset = fig.add_axes([x_fig - size / 2, y_fig - size / 2, size, size])
        inset.imshow(crop, cmap="gray", vmin=lo, vmax=hi, extent=[-k_max, k_max, k_max, -k_max])
        inset.set_xticks([])
        inset.set_yticks([])
    return ax


#: How each species is drawn on images (Fig. 2 of the paper: Mo solid, S yellow, adatoms dashed cyan).
SPECIES_STYLE = {
    "Mo": dict(marker="o", s=18, facecolor="tab:blue", edgecolor="none", label="Mo"),
    "S2": dict(marker="o", s=14, facecolor="yellow", edgecolor="none", label="S$_2$"),
    "S1": dict(marker="o", s=14, facecolor="none", edgecolor="orange", linewidths=1.2, label="S$_1$"),
    "vacancy": dict(marker="x", s=20, color="red", linewidths=1.2, label="S vacancy"),
    "Mo_adatom": dict(marker="o", s=160, facecolor="none", edgecolor="cyan", linestyle="--", linewidths=1.2,
                      label="Mo adatom"),
    "Se": dict(marker="o", s=22, facecolor="magenta", edgecolor="none", label="Se + S"),
    "column": dict(marker="+", s=20, color="tab:green", label="column"),
}


def show_sites(ax, x, y, species, legend: bool = True, skip=("C",), **kwargs):
    """Overlay columns on an image drawn by :func:`show_image` (positions in Å).

    The overlay stays inside the image: the axes keep the image's extent (sites
    beyond it are not drawn and do not widen the panel with white bands), and the
    legend goes outside the data (:func:`legend_outside`).

    Parameters
    ----------
    ax : matplotlib Axes
    x, y : (n,) array_like
        Positions [Å].
    species : (n,) array_like of str
        Labels; styles from :data:`SPECIES_STYLE`, species in ``skip`` are not drawn.
    legend : bool
        Add the species shown to the figure's legend outside the panels.
    **kwargs
        Passed on to :meth:`matplotlib.axes.Axes.scatter` (e.g. ``s``).
    """
    x, y, species = np.asarray(x, float), np.asarray(y, float), np.asarray(species)
    images = ax.images
    if images:
        left, right, bottom, top = images[-1].get_extent()
        inside = ((x >= min(left, right)) & (x <= max(left, right))
                  & (y >= min(bottom, top)) & (y <= max(bottom, top)))  # fmt: skip
        x, y, species = x[inside], y[inside], species[inside]
    limits = ax.get_xlim(), ax.get_ylim()
    for name, style in SPECIES_STYLE.items():
        keep = species == name
        if name in skip or not np.any(keep):
            continue
        ax.scatter(x[keep], y[keep], **{**style, **kwargs})
    if images:
        ax.set_xlim(*limits[0])
        ax.set_ylim(*limits[1])
    if legend:
        legend_outside(ax)


def draw_autoencoder(ax, depth: int = 4, stem: int = 2, em_steps: int = 3):
    """Draw the DeepSTEM autoencoder (the counterpart of the paper's Fig. 1a) on ``ax``.

    Data flow left to right on the top row (frame, probe channel, learned encoder, the
    fixed data-consistency steps, object), the fixed decoder and the training loss below.
    Sized for :func:`column_figure` ``(1, 1, aspect=0.4)``.

    Parameters
    ----------
    ax : matplotlib Axes
    depth, stem, em_steps : int
        The encoder's U-Net levels, its stem (2: folded into 2 × 2 blocks, 1: none) and the
        number of EM steps after it (0: the block is not drawn), as in a weights file's config.
    """
    ax.set_xlim(0, 12)
    ax.set_ylim(0, 4.75)
    ax.axis("off")
    fold = "2×2 fold, " if stem > 1 else ""
    unfold = "unfold, " if stem > 1 else ""
    encoder = f"encoder (learned)\n{fold}U-Net,\n{depth} levels,\n{unfold}softplus ≥ 0\n+ atom blur (fixed)"
    boxes = [
        (0.05, 3.0, 1.6, 1.2, "frame\n$x$ (counts)", "#dddddd"),
        (2.0, 3.0, 1.9, 1.2, "normalise +\nWiener($x$; $P$)", "#cfe2f3"),
        (4.25, 2.55, 2.3, 2.1, encoder, "#9fc5e8"),
        (9.9, 3.0, 2.05, 1.2, "object\n$\\hat O \\geq 0$", "#ffe599"),
        (2.0, 0.2, 1.9, 1.2, "measured probe\n$|P|^2$ (ch. 2)", "#ead1dc"),
        (4.6, 0.2, 2.5, 1.2, "decoder (fixed)\n$|P|^2 \\circledast \\hat O$", "#f4cccc"),
        (8.45, 0.2, 3.5, 1.2, "training only: Poisson\nNLL vs independent $x_2$", "#d9ead3"),
    ]
    if em_steps:
        boxes.append((6.9, 3.0, 2.65, 1.2, f"{em_steps} EM steps\nagainst $x$ (fixed,\nreconstruct only)", "#fce5cd"))
    for x, y, w, h, text, color in boxes:
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05", facecolor=color, edgecolor="k"))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize="small")
    arrows = [((1.65, 3.6), (2.0, 3.6)), ((3.9, 3.6), (4.25, 3.6)), ((2.95, 1.4), (2.95, 3.0)),
              ((3.9, 0.8), (4.6, 0.8)), ((10.4, 3.0), (7.0, 1.4)), ((7.1, 0.8), (8.45, 0.8))]
    if em_steps:
        arrows += [((6.55, 3.6), (6.9, 3.6)), ((9.55, 3.6), (9.9, 3.6)), ((3.9, 1.2), (7.6, 3.0))]
    else:
        arrows += [((6.55, 3.6), (9.9, 3.6))]
    for start, end in arrows:
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=10, color="k"))


def show_series_panel(ax, obj: np.ndarray, atoms, sampling: float, title: str | None = None,
                      bar: float = 5.0, species=("Mo", "S2", "S1", "vacancy", "Mo_adatom"), window=None):
    """One panel of a time series in the style of the paper's Fig. 2.

    The object map in grey, Mo as solid markers, S columns as yellow dots (S₁ open
    orange, empty sites red crosses), Mo adatoms in dashed cyan circles and a
    scale bar of ``bar`` [Å] labelled in nm (0.5 nm by default); no colour bar.

    Parameters
    ----------
    ax : matplotlib Axes
    obj : (ny, nx) ndarray
        Object map.
    atoms : DataFrame
        ``x``, ``y`` [Å] and ``species`` of the sites in this frame.
    sampling : float
        Pixel size [Å].
    title : str, optional
    bar : float
        Scale-bar length [Å].
    species : tuple of str
        Species drawn.
    window : (float, float, float), optional
        ``(x0, y0, width)`` [Å]: show only this square of the frame (clipped to the frame).
    """
    x, y = np.asarray(atoms["x"], float), np.asarray(atoms["y"], float)
    labels = np.asarray(atoms["species"])
    if window is not None:
        ny, nx = obj.shape
        n = min(int(round(window[2] / sampling)), nx, ny)
        c0 = int(np.clip(round(window[0] / sampling), 0, nx - n))
        r0 = int(np.clip(round(window[1] / sampling), 0, ny - n))
        obj = obj[r0:r0 + n, c0:c0 + n]
        x, y = x - c0 * sampling, y - r0 * sampling
        inside = (x > -0.5 * sampling) & (x < (n - 0.5) * sampling) & (y > -0.5 * sampling) & (y < (n - 0.5) * sampling)
        x, y, labels = x[inside], y[inside], labels[inside]
    show_image(ax, obj, sampling, title, scalebar=False, colorbar=False,
               vmin=0, vmax=float(np.percentile(obj, 99.8)))
    add_scalebar(ax, bar, units="nm")
    keep = np.isin(labels, species)
    show_sites(ax, x[keep], y[keep], labels[keep], legend=False)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("")
    ax.set_ylabel("")


def dose_dwell_chart(ax, points, currents=(5.0, 50.0, 500.0)):
    """Dose per area against dwell time per area, log-log (the counterpart of Fig. 1b of Lee et al. 2021).

    Parameters
    ----------
    ax : matplotlib Axes
    points : pandas.DataFrame
        Columns ``label``, ``dose`` [e⁻/Å²], ``dwell`` [µs/Å²] and ``source``:
        ``"computed"`` (this book's settings, filled circles) or ``"quoted"``
        (a paper's values, open squares; the label should carry the citation).
        Rows with a missing dose or dwell time are not drawn.
    currents : sequence of float
        Probe currents [pA] drawn as grey guide lines: at a fixed current, dose
        and dwell time per area are proportional (dose = I t / e).
    """
    drawn = points.dropna(subset=["dose", "dwell"])
    if len(drawn):
        lo = min(drawn.dwell.min(), drawn.dose.min() * E_CHARGE / (max(currents) * 1e-18)) / 3
        hi = max(drawn.dwell.max(), drawn.dose.max() * E_CHARGE / (min(currents) * 1e-18)) * 3
    else:
        lo, hi = 1.0, 1e4
    t = np.geomspace(lo, hi, 50)
    for current in currents:
        dose = current * 1e-12 * t * 1e-6 / E_CHARGE  # [e⁻/Å²] from [pA] and [µs/Å²]
        ax.plot(t, dose, color="0.8", lw=0.8, zorder=0)
        ax.annotate(f"{current:g} pA", (t[-8], dose[-8]), color="0.5", fontsize="small", rotation=25)
    markers = {"computed": dict(marker="o"), "quoted": dict(marker="s", mfc="none")}
    for _, row in drawn.iterrows():
        ax.plot(row.dwell, row.dose, ls="none", ms=7, label=row.label, **markers.get(row.source, {"marker": "x"}))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("dwell time per area [µs/Å²]")
    ax.set_ylabel("dose per area [e⁻/Å²]")
    legend_outside(ax, ncols=1, fontsize="small")
    return ax
