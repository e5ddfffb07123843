"""Hand an atoms table to the tools microscopists already use: Atomap and HyperSpy.

A table from :func:`find_atoms` (or read back with :func:`.atoms.table.read_atoms`)
holds positions ``x``, ``y`` [Å] in its image's own coordinates and records, in
``attrs``, the pixel size and the origin they refer to. From these:

* :func:`to_sublattice` makes an Atomap ``Sublattice`` (positions in pixels), to
  refine the columns with Atomap's 2-D Gaussians or use its lattice analysis;
  :func:`from_sublattice` brings its (refined) positions back as a table in Å.
* :func:`to_markers` makes HyperSpy point markers in a signal's own axis units,
  to overlay the sites on the image (``signal.add_marker(markers)``);
  :func:`from_markers` reads them back.

Atomap and HyperSpy are imported only when used (``pip install 'deepstem_utils[baselines]'`` for Atomap).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .core.signals import is_signal, origin_of, sampling_of, to_angstrom_factor

__all__ = ["SPECIES_COLOURS", "pixel_positions", "to_sublattice", "from_sublattice", "to_markers", "from_markers"]

#: Marker colours of the species (matplotlib names); other species are grey.
SPECIES_COLOURS = {"Mo": "tab:orange", "Mo_adatom": "tab:red", "S2": "tab:blue", "S1": "tab:cyan",
                   "vacancy": "white", "column": "tab:orange"}


def _select(atoms: pd.DataFrame, species) -> pd.DataFrame:
    for column in ("x", "y"):
        if column not in atoms:
            raise ValueError(f"the atoms table has no {column!r} column (a table from find_atoms has x, y [Å])")
    if species is None:
        return atoms
    wanted = [species] if isinstance(species, str) else list(species)
    return atoms[atoms["species"].isin(wanted)]


def _frame_of(atoms: pd.DataFrame, image) -> tuple[float, tuple[float, float]]:
    """Pixel size [Å] and origin (x, y) [Å] that the table's positions refer to: the image's calibration
    when it is a Signal2D, else the table's ``attrs``."""
    if image is not None and is_signal(image):
        sampling = sampling_of(image)
        return sampling, origin_of(image, sampling)
    sampling = atoms.attrs.get("sampling")
    if sampling is None:
        raise ValueError("the table does not record its pixel size (attrs['sampling'], set by find_atoms); pass a "
                         "calibrated Signal2D as the image, or sampling=<Å>")
    origin = atoms.attrs.get("origin", (0.0, 0.0))
    return float(sampling), (float(origin[0]), float(origin[1]))


def pixel_positions(atoms: pd.DataFrame, image=None, sampling: float | None = None) -> np.ndarray:
    """``(n, 2)`` positions (column, row) [px] of the table's sites in ``image`` (Atomap's ``[[x0, y0], ...]``).

    Parameters
    ----------
    atoms : DataFrame
        ``x``, ``y`` [Å] in the image's own coordinates (:func:`find_atoms`).
    image : Signal2D or ndarray, optional
        A calibrated Signal2D gives the pixel size and origin; otherwise they come from ``atoms.attrs``.
    sampling : float, optional
        Pixel size [Å], overriding both (origin then from ``atoms.attrs``, default 0).
    """
    if sampling is None:
        sampling, origin = _frame_of(atoms, image)
    else:
        origin = tuple(atoms.attrs.get("origin", (0.0, 0.0)))
    xy = atoms[["x", "y"]].to_numpy(float)
    return (xy - np.asarray(origin, float)) / float(sampling)


def to_sublattice(atoms: pd.DataFrame, image, species=None, name: str = "", color: str = "red"):
    """An Atomap ``Sublattice`` of the table's sites (all, or those of ``species``) on ``image``.

    Parameters
    ----------
    atoms : DataFrame
        Sites from :func:`find_atoms`.
    image : Signal2D or (ny, nx) ndarray
        The image to refine on (the frame, or the object). A Signal2D lends its
        calibration to the sublattice (Atomap reads it); for an ndarray the table's
        ``attrs`` give the pixel size.
    species : str or list of str, optional
        Only these species (e.g. ``"Mo"`` for a sublattice of the metal columns).
    name, color : str
        Passed to Atomap.

    Returns
    -------
    atomap.sublattice.Sublattice
        Its ``atom_positions`` are the sites in pixels; refine them (e.g.
        ``find_nearest_neighbors()`` then ``refine_atom_positions_using_2d_gaussian()``)
        and read them back with :func:`from_sublattice`.
    """
    with warnings.catch_warnings():  # atomap's imports warn about deprecations
        warnings.simplefilter("ignore")
        import atomap.api as am  # noqa: PLC0415  (an optional extra, slow to import)

    chosen = _select(atoms, species)
    positions = pixel_positions(chosen, image)
    data = image if is_signal(image) else np.asarray(image, float)
    if not is_signal(image) and np.asarray(image).ndim != 2:
        raise ValueError(f"image must be 2-D (ny, nx), got shape {np.asarray(image).shape}")
    if len(positions) == 0:
        raise ValueError("no sites to hand to Atomap (empty table or no site of that species)")
    sublattice = am.Sublattice(positions, data, name=name, color=color)
    sublattice.deepstem_species = chosen["species"].to_numpy() if "species" in chosen else None
    return sublattice


def from_sublattice(sublattice, like: pd.DataFrame | None = None, sampling: float | None = None,
                    origin: tuple[float, float] | None = None) -> pd.DataFrame:
    """The sites of an Atomap ``Sublattice`` as a table: ``x``, ``y`` [Å] (and ``species`` when known).

    Parameters
    ----------
    sublattice : atomap.sublattice.Sublattice
        E.g. from :func:`to_sublattice`, after Atomap refined it.
    like : DataFrame, optional
        The table it was made from: its ``attrs`` give the pixel size and origin, and
        its other columns are kept (the order of the sites is Atomap's, which is the table's).
    sampling : float, optional
        Pixel size [Å] (default: ``like.attrs``, else the sublattice's ``pixel_size`` in its units).
    origin : (float, float), optional
        Position [Å] of pixel (0, 0) (default: ``like.attrs``, else 0).
    """
    attrs = dict(like.attrs) if like is not None else {}
    if sampling is None:
        sampling = attrs.get("sampling")
    if sampling is None:
        factor = to_angstrom_factor(getattr(sublattice, "units", ""))
        if factor is None:
            raise ValueError("the pixel size is unknown: pass like=<the table> or sampling=<Å>")
        sampling = float(sublattice.pixel_size) * factor
    if origin is None:
        origin = tuple(attrs.get("origin", (0.0, 0.0)))
    x = np.asarray(sublattice.x_position, float) * sampling + origin[0]
    y = np.asarray(sublattice.y_position, float) * sampling + origin[1]
    if like is not None and len(like) == len(x):
        table = like.reset_index(drop=True).assign(x=x, y=y)
    else:
        table = pd.DataFrame({"x": x, "y": y})
        species = getattr(sublattice, "deepstem_species", None)
        if species is not None and len(species) == len(x):
            table["species"] = species
    table.attrs = {**attrs, "sampling": float(sampling), "origin": [float(origin[0]), float(origin[1])],
                   "refined_by": "atomap"}
    return table


def to_markers(atoms: pd.DataFrame, signal=None, species=None, sizes: float = 8, **kwargs):
    """HyperSpy point markers at the table's sites, coloured by species, in ``signal``'s axis units.

    Parameters
    ----------
    atoms : DataFrame
        Sites from :func:`find_atoms` (``x``, ``y`` [Å] in the image's own coordinates).
    signal : Signal2D, optional
        The image to overlay: positions are converted from Å to its axis units (nm, Å, ...). Without it the
        offsets are in Å (for a signal calibrated in Å, as :func:`deepstem_utils.load` returns them).
    species : str or list of str, optional
        Only these species.
    sizes : float
        Marker size [points].
    **kwargs
        Passed to ``hyperspy.api.plot.markers.Points`` (e.g. ``facecolors``, ``edgecolors``).

    Returns
    -------
    hyperspy.api.plot.markers.Points
        ``signal.add_marker(markers, permanent=True)`` overlays them (and stores them with the signal).
    """
    import hyperspy.api as hs  # noqa: PLC0415  (heavy)

    chosen = _select(atoms, species)
    factor = 1.0
    if signal is not None:
        axis = signal.axes_manager.signal_axes[0]
        factor = to_angstrom_factor(axis.units)
        if factor is None:
            raise ValueError(f"the signal's axes are not in a length unit ({axis.units!r}): the sites are in Å")
        sampling_of(signal)  # a usable calibration (uniform, square, not flipped)
    offsets = chosen[["x", "y"]].to_numpy(float) / factor
    if "species" in chosen and "facecolors" not in kwargs and "color" not in kwargs:
        kwargs["facecolors"] = [SPECIES_COLOURS.get(str(s), "grey") for s in chosen["species"]]
        kwargs.setdefault("edgecolors", "black")
    return hs.plot.markers.Points(offsets=offsets, sizes=sizes, **kwargs)


def from_markers(markers, signal=None) -> pd.DataFrame:
    """Positions ``x``, ``y`` [Å] of HyperSpy point markers (made by :func:`to_markers`, or by hand)."""
    offsets = np.asarray(markers.kwargs["offsets"], float).reshape(-1, 2)
    factor = 1.0
    if signal is not None:
        factor = to_angstrom_factor(signal.axes_manager.signal_axes[0].units)
        if factor is None:
            raise ValueError("the signal's axes are not in a length unit")
    return pd.DataFrame({"x": offsets[:, 0] * factor, "y": offsets[:, 1] * factor})
