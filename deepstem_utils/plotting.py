"""Figure helpers shared by the chapters: calibrated image panels and scale bars."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.font_manager import FontProperties
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

__all__ = ["extent_of", "show_image", "add_scalebar", "nice_length"]


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


def add_scalebar(ax, length: float | None = None, units: str = "Å", color: str = "white", loc: str = "lower right"):
    """Draw a scale bar on an image panel whose axes are in Å.

    Parameters
    ----------
    ax : matplotlib Axes
        A panel drawn with :func:`show_image` (data coordinates in Å).
    length : float, optional
        Bar length [Å]; a round fifth of the field of view by default.
    units : {"Å", "nm"}
        Unit of the label.
    """
    x0, x1 = sorted(ax.get_xlim())
    if length is None:
        length = nice_length(x1 - x0)
    label = f"{length / 10:g} nm" if units == "nm" else f"{length:g} Å"
    bar = AnchoredSizeBar(
        ax.transData, length, label, loc, pad=0.4, color=color, frameon=False,
        size_vertical=(x1 - x0) / 100, fontproperties=FontProperties(size=9),
    )  # fmt: skip
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
    colorbar: bool = True,
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
        Colour-bar label with its unit, e.g. ``"counts"``.
    scalebar : bool or float
        True for an automatic bar, a number for a bar of that length [Å], False for none.
    colorbar : bool
        Draw a colour bar.

    Returns
    -------
    matplotlib.image.AxesImage
    """
    image = np.asarray(image)
    im = ax.imshow(image, cmap=cmap, extent=extent_of(image.shape, sampling), origin="upper", **kwargs)
    ax.set_xlabel("x [Å]")
    ax.set_ylabel("y [Å]")
    if title:
        ax.set_title(title)
    if scalebar:
        add_scalebar(ax, None if scalebar is True else float(scalebar))
    if colorbar:
        cb = plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        if label:
            cb.set_label(label)
    return im
