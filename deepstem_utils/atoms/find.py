"""``find_atoms()``: columns, lattice and species from an object function.

1. **Columns** (:mod:`.columns`): local maxima of the lightly smoothed object,
   refined to sub-pixel precision, each with its integrated intensity.
2. **Lattice** (:mod:`.lattice`, ``material="MoS2"``): Mo columns, S sites and
   hollow sites of the honeycomb, robust to rotation, strain, grain and
   mirror-twin boundaries.
3. **Intensities**: integrated over a disk of the object, or, given the frame's
   ``counts`` and probe, fitted to the counts by the linear image model at
   positions refined in the counts (:mod:`.quantify`).
4. **Species** (:mod:`.mixture`): the S sites' intensities as a mixture of 0, 1
   and 2 S atoms fitted by expectation-maximisation; each site gets the class
   under which its intensity is most likely and that normalised likelihood as
   its confidence. No fixed thresholds.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from ..core.constants import MOS2_A, Z
from ..core.signals import Calibrated, counts_array, real_array, unwrap
from ..network.weights import weights_calibration
from .columns import DISK_RADIUS, find_columns, integrated_intensity
from .lattice import MoS2Sites, NoLattice, mos2_sites
from .mixture import ONE_S_PER_MO, S_CLASSES, fit_s_mixture, mixture_summary
from .quantify import column_intensities, refine_positions

__all__ = ["find_atoms", "default_one_atom_fraction", "lattice_members", "SIGNIFICANCE", "ALIKE", "REGISTRY_DEG",
           "COLUMNS", "LATTICE_CONSTANT_RANGE", "CELL_PX",
           "MIN_SAMPLING", "MAX_SAMPLING_ANY", "MAX_RADIUS"]

#: With ``counts``: an off-lattice bright column (a candidate Mo adatom) is reported only if its fitted counts
#: exceed this many standard errors.
SIGNIFICANCE = 5.0
#: Two Mo-like columns one lattice spacing apart are bonded in a grain only if they scatter alike: the fainter holds
#: at least this fraction of the brighter's intensity (each holds one Mo atom; the support's lattice read as a
#: honeycomb on a bare frame scatters far less than a Mo adatom on it).
ALIKE = 0.5
#: An edge Mo with a single bond belongs to its grain if the bond lies along its neighbour's lattice directions
#: within this angle [degrees]: it sits on a lattice site of the grain.
REGISTRY_DEG = 10.0
#: The columns of the table :func:`find_atoms` returns.
COLUMNS = ["x", "y", "species", "confidence", "intensity"]
#: Z-exponents that bound how a dopant scatters relative to S (the band of HAADF detectors in use).
GAMMA_BAND = (1.4, 2.1)
#: ``lattice_constant`` [Å] accepted: MoS₂-like transition-metal dichalcogenides (MoS₂ 3.16, MoTe₂ 3.52).
LATTICE_CONSTANT_RANGE = (2.8, 3.8)
#: The lattice constant must span at least this many pixels for the honeycomb to be found.
CELL_PX = 6
#: ``sampling`` [Å/px]: below this an atomic-resolution frame would hold hardly any lattice; above
#: ``MAX_SAMPLING_ANY`` (``material=None``) neighbouring columns are not resolved.
MIN_SAMPLING, MAX_SAMPLING_ANY = 0.01, 0.5
#: Largest ``radius`` [Å] of the integration disk (half the Mo-S distance is about 0.9 Å).
MAX_RADIUS = 2.0


def find_atoms(obj, sampling: float | None = None, material: str | None = "MoS2", *,
               lattice_constant: float | None = None, radius: float = DISK_RADIUS, dopant: str | None = None,
               one_atom_fraction: float | None = None, counts=None, psf: np.ndarray | None = None,
               class_prior: str = "equal", refine: bool = True, quiet: bool = False) -> pd.DataFrame:
    """Locate atomic columns and identify their species.

    Parameters
    ----------
    obj : (ny, nx) ndarray or Signal2D
        Object function (from :func:`reconstruct`), any scale.
    sampling : float, optional
        Pixel size [Å]; taken from a Signal2D's calibration if not given.
    material : {"MoS2", None}
        ``"MoS2"``: fit the 2H-MoS₂ lattice and label every site ``Mo``, ``S2``,
        ``S1``, ``vacancy`` or ``Mo_adatom``. ``None``: every bright column, species ``"column"``
        (with ``counts``, its position refined and its intensity fitted in the counts, as for MoS₂).
    lattice_constant : float, optional
        MoS₂ lattice parameter [Å] (2.8-3.8); measured from the Mo-Mo distances if not given.
    radius : float
        Radius of the disk over which a column's intensity is integrated [Å] (half a pixel to 2 Å).
    dopant : str, optional
        An element substituted on S sites (e.g. ``"Se"``): S sites holding one S and
        one dopant atom become their own species, named after the element. Its
        scattering relative to S is fitted within the band that Z-exponents
        1.4-2.1 allow.
    one_atom_fraction : float, optional
        Where one S atom lies between an empty S site (0) and S₂ (1) in this kind
        of object: 1/2 for an image linear in the atoms (raw or deconvolved
        frames); a network's object is not linear, and its value, measured on
        simulated frames, is stored with its weights. The mixture model starts
        there and refits it when enough sites hold one atom. Default: the value
        in a Signal2D's ``metadata.DeepSTEM.one_atom_fraction`` (written by
        :func:`reconstruct`), else that of the shipped weights (an ndarray is taken
        to be :func:`reconstruct`'s object); always 1/2 with ``counts``. Pass 1/2 for
        a raw or deconvolved frame.
    counts : (ny, nx) ndarray or Signal2D, optional
        The frame ``obj`` was made from [counts]. With ``psf``, every column's
        intensity is fitted to these counts by the linear image model at the
        positions found in ``obj`` (:func:`quantify.column_intensities`), instead of
        integrating ``obj``: the object map locates, the counts quantify, and the
        intensities are linear in the atoms whatever made ``obj``. The sites the
        lattice predicts at and just beyond the frame's edge (:data:`lattice.GHOST_REACH`)
        are fitted too, and not reported. A candidate Mo
        adatom whose fitted counts are below :data:`SIGNIFICANCE` standard errors is
        a peak of noise (bare support at low dose) and is not reported.
    psf : (k, k) ndarray, optional
        Probe intensity on the frame's pixel grid (:meth:`Probe.intensity`), centred
        on pixel ``k // 2``; needed with ``counts``.
    class_prior : {"equal", "fitted"}
        How an S site's label weighs the classes (S₂, S₁, empty). ``"equal"``: by
        the likelihood of its own intensity alone, as the ideal observer does, so
        the label does not depend on how many other defects the image holds.
        ``"fitted"``: weighted by the class fractions fitted to this image (the most
        probable class when the image is typical of the specimen; rare classes in a
        small image are then under-called).
    refine : bool
        With ``counts``: refine the Mo and S positions (every column's with ``material=None``) against the counts by the
        linear image model before measuring the intensities
        (:func:`quantify.refine_positions`). The object map gives the start; the
        counts pin each column as closely as the dose allows.
    quiet : bool
        Return an empty table without a warning when there is no MoS₂ lattice
        (a frame of a growth series before any grain has formed).

    Returns
    -------
    pandas.DataFrame
        One row per site: ``x``, ``y`` [Å] (contract convention; for a Signal2D in the
        signal's own coordinates, its axis offsets included, converted to Å), ``species``,
        ``confidence`` (0-1, the probability of the species given the site's
        intensity, with the class weights of ``class_prior``), and
        ``intensity`` (integrated object over the disk, or with ``counts`` the
        fitted counts of the column). ``attrs["mixture"]`` summarises the S-site
        mixture: the fitted class ``fractions`` (the composition it estimates) and
        the ``separation`` d′ of the S₁ and S₂ levels in pooled standard deviations;
        below about 2 the labels of a rare class are mostly guesses, and the
        fractions are the better estimate of how many there are. ``attrs`` also
        records ``units`` (per column), ``sampling`` [Å/px], ``origin`` (x, y of
        pixel (0, 0) [Å]), ``shape`` (ny, nx), ``source`` (file name or title, or
        ``"ndarray"``) and ``intensities`` (``"counts"`` or ``"object"``):
        :mod:`deepstem_utils.interop` uses them to hand the table to Atomap or HyperSpy.

    Raises
    ------
    ValueError
        Before any work, naming the parameter and its allowed range: ``sampling``
        outside 0.01 Å/px to a sixth of the lattice constant (0.5 Å/px with
        ``material=None``), ``lattice_constant`` outside
        :data:`LATTICE_CONSTANT_RANGE`, ``radius`` outside half a pixel to
        :data:`MAX_RADIUS`, ``counts`` negative, non-finite or of another shape
        than ``obj``, ``psf`` not a 2-D non-negative kernel; a Signal2D whose
        calibration cannot be used (non-uniform, flipped or non-square axes).

    Examples
    --------
    >>> from deepstem_utils.physics import specimen
    >>> sites = specimen.mos2_lattice((30.0, 30.0))
    >>> obj = specimen.object_function(sites, (200, 200), 0.15)
    >>> atoms = find_atoms(obj, sampling=0.15)
    >>> sorted(set(atoms.species))
    ['Mo', 'S2']
    """
    checked = _check_inputs(obj, sampling, material, lattice_constant, radius, dopant, counts, psf, class_prior)
    level = _one_atom_start(obj, one_atom_fraction, counts)
    array, sampling = checked.array, checked.sampling
    ratio = _dopant_ratio(dopant)
    columns = find_columns(array, sampling, radius=radius)
    if material in (None, "none"):
        if counts is not None and len(columns):
            columns = _fitted_columns(columns, checked.counts, checked.psf, sampling, refine)
        return checked.describe(_any_material(columns))
    try:
        if len(columns) < 3:
            raise NoLattice("fewer than 3 bright columns: no MoS₂ found, so no sites are returned "
                            "(for another material use material=None)")
        lattice = mos2_sites(columns, array, sampling, lattice_constant)
    except NoLattice as message:  # bare support or noise: no site, and say why
        if not quiet:
            warnings.warn(str(message), stacklevel=2)
        return checked.describe(pd.DataFrame({name: [] for name in COLUMNS}))
    if counts is not None:
        measured = _fitted_intensities(checked.counts, checked.psf, array.shape, sampling, lattice, refine)
    else:
        measured = _integrated_intensities(array, sampling, lattice, radius)
    return checked.describe(_label(lattice, measured, level, counts is None, ratio, dopant, class_prior))


@dataclass(frozen=True)
class _Inputs:
    """The checked inputs of :func:`find_atoms`, and what its table's ``attrs`` say about them."""

    array: np.ndarray                 # the object [any scale]
    sampling: float                   # [Å/px]
    origin: tuple[float, float]       # (x, y) of pixel (0, 0) in the input's own coordinates [Å]
    source: str                       # the object's file name or title, or "ndarray"
    counts: np.ndarray | None         # the frame [counts], or None
    psf: np.ndarray | None            # its probe intensity, or None

    def describe(self, table: pd.DataFrame) -> pd.DataFrame:
        """``table`` in the input's coordinates (its axis offsets added) with the ``attrs`` of :func:`find_atoms`."""
        attrs = dict(table.attrs)
        x0, y0 = self.origin
        if x0 or y0:
            table = table.assign(x=table["x"] + x0, y=table["y"] + y0)
        fitted = self.counts is not None
        table.attrs = {
            "units": {"x": "Å", "y": "Å", "confidence": "probability (0-1)",
                      "intensity": "counts (fitted to the frame)" if fitted else "object (integrated over a disk)"},
            "sampling": self.sampling, "origin": [float(x0), float(y0)], "shape": list(self.array.shape),
            "source": self.source, "intensities": "counts" if fitted else "object", **attrs}
        return table


def _check_inputs(obj, sampling, material, lattice_constant, radius, dopant, counts, psf, class_prior) -> _Inputs:
    """Every argument of :func:`find_atoms` checked before any work; each error names the parameter and its range."""
    if class_prior not in ("equal", "fitted"):
        raise ValueError(f"class_prior must be 'equal' (label by the site's own intensity) or 'fitted', "
                         f"got {class_prior!r}")
    if (counts is None) != (psf is None):
        raise ValueError("counts and psf go together: give both (the frame and its probe intensity) or neither")
    calibrated = unwrap(obj, sampling)
    array, sampling = _as_object(calibrated)
    if material not in ("MoS2", None, "none"):
        raise ValueError(f"material must be 'MoS2' or None, got {material!r}")
    _dopant_ratio(dopant)
    mos2 = material == "MoS2"
    if lattice_constant is not None:
        low, high = LATTICE_CONSTANT_RANGE
        if not _finite_number(lattice_constant) or not low <= lattice_constant <= high:
            raise ValueError(f"lattice_constant must be a MoS₂-like lattice parameter between {low} and {high} Å "
                             f"(MoS₂: {MOS2_A} Å), or None to measure it; got {lattice_constant!r}")
    a = float(lattice_constant or MOS2_A)
    largest = a / CELL_PX if mos2 else MAX_SAMPLING_ANY
    if not MIN_SAMPLING <= sampling <= largest:
        what = (f"the lattice constant {a:.3g} Å must span at least {CELL_PX} px" if mos2
                else "neighbouring atomic columns must be resolved")
        raise ValueError(f"sampling must be between {MIN_SAMPLING} and {largest:.3g} Å/px ({what}); got "
                         f"{sampling:.4g} Å/px: check the calibration")
    if not _finite_number(radius) or not 0.5 * sampling <= radius <= MAX_RADIUS:
        raise ValueError(f"radius must be between half a pixel ({0.5 * sampling:.3g} Å) and {MAX_RADIUS} Å "
                         f"(the disk a column's intensity is integrated over); got {radius!r}")
    frame = kernel = None
    if counts is not None:
        frame = counts_array(unwrap(counts, sampling).data, "counts", constant_ok=True)
        if frame.shape != array.shape:
            raise ValueError(f"counts must have the object's shape {array.shape} (the frame the object was made "
                             f"from), got {frame.shape}")
        kernel = np.asarray(psf)
        if kernel.ndim != 2 or min(kernel.shape) < 3:
            raise ValueError(f"psf must be a 2-D probe intensity on the frame's pixel grid (k, k), k >= 3 "
                             f"(Probe.intensity((k, k), sampling)); got shape {kernel.shape}")
        kernel = real_array(kernel, "psf")
        if kernel.min() < 0 or not kernel.sum() > 0:
            raise ValueError("psf must be a probe intensity: non-negative with a positive sum")
    return _Inputs(array, sampling, calibrated.origin, calibrated.source, frame, kernel)


def _finite_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and bool(np.isfinite(value))


@dataclass
class _Intensities:
    """Column intensities of one image at the lattice's sites, and where the columns are."""

    mo: np.ndarray          # Mo-like columns
    s: np.ndarray           # S sites
    hollow: np.ndarray      # hollow sites (no atom: the "empty" level)
    mo_xy: np.ndarray       # (n_mo, 2) Mo positions [Å] (refined with counts)
    s_xy: np.ndarray        # (n_s, 2) S positions [Å]
    real: np.ndarray        # Mo-like columns to report (off-lattice ones must be significant in the counts)
    on_lattice: np.ndarray  # Mo-like columns of a grain (:func:`lattice_members`); the others are Mo adatoms


@lru_cache(maxsize=1)
def default_one_atom_fraction() -> float:
    """The one-S level of the shipped network's object (its calibration), the start for an object of unknown
    origin: on held-out frames this start gains DeepSTEM's object 0.04 balanced S accuracy over 1/2 and costs
    linear images (which the EM refits from there) under 0.005."""
    return float(weights_calibration(None).get("one_atom_fraction", 0.5))


def _one_atom_start(obj, one_atom_fraction, counts) -> float:
    """Where the mixture model starts the one-S level (see ``one_atom_fraction`` of :func:`find_atoms`)."""
    if one_atom_fraction is None and counts is not None:
        one_atom_fraction = 0.5  # fitted by the linear model: one S atom is half of S2
    if one_atom_fraction is None:
        metadata = getattr(obj, "metadata", None)
        stored = metadata.get_item("DeepSTEM.one_atom_fraction", None) if metadata is not None else None
        one_atom_fraction = default_one_atom_fraction() if stored is None else stored
    one_atom_fraction = float(one_atom_fraction)
    if not 0.3 <= one_atom_fraction <= 0.8:
        raise ValueError(f"one_atom_fraction must be between 0.3 and 0.8 (1/2 for a linear image), "
                         f"got {one_atom_fraction}")
    return one_atom_fraction


def _as_object(calibrated: Calibrated) -> tuple[np.ndarray, float]:
    array, sampling = calibrated.data, calibrated.sampling
    if array.ndim != 2:
        raise ValueError(f"the object function must be 2-D (ny, nx), got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or array.dtype == bool or np.iscomplexobj(array):
        raise TypeError(f"the object function must hold real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError("the object function contains NaN or inf; replace the bad pixels first")
    if min(array.shape) < 8:
        raise ValueError(f"the object function is only {array.shape[0]}x{array.shape[1]} px")
    with np.errstate(over="ignore"):
        if not np.isfinite(np.sum(np.abs(array))):
            raise ValueError(f"the object function has values too large to compute with (max {np.abs(array).max():.3g}"
                             "; their sum overflows float64): rescale it")
    if sampling is None:
        raise ValueError("sampling is required for an array: pass sampling=<Å per pixel>")
    if not _finite_number(sampling) or sampling <= 0:
        raise ValueError(f"sampling must be a positive pixel size in Å, got {sampling!r}")
    return array, float(sampling)


def _dopant_ratio(dopant: str | None) -> tuple[float, float] | None:
    """How much more than one S a dopant atom scatters: the band the Z-exponents of :data:`GAMMA_BAND` allow."""
    if dopant is None:
        return None
    if dopant not in Z or dopant in ("Mo", "S"):
        raise ValueError(f"dopant must be an element symbol other than Mo and S from {sorted(Z)}, got {dopant!r}")
    return tuple(sorted((Z[dopant] / Z["S"]) ** g for g in GAMMA_BAND))


def _any_material(columns: pd.DataFrame) -> pd.DataFrame:
    """``material=None``: every bright column, with a confidence that grows with its intensity."""
    if columns.empty:
        return pd.DataFrame({name: [] for name in COLUMNS})
    out = columns.assign(species="column")
    spread = out["intensity"].std() if len(out) > 1 else 1.0
    out["confidence"] = 1 / (1 + np.exp(-(out["intensity"] / max(spread, 1e-12))))
    return out[COLUMNS].reset_index(drop=True)


def _fitted_columns(columns: pd.DataFrame, counts: np.ndarray, psf: np.ndarray, sampling: float, refine: bool):
    """``material=None`` with counts: every column's position refined against the counts (with ``refine``) and
    its intensity fitted there by the linear image model, as :func:`_fitted_intensities` does for MoS₂."""
    xy = _refined(counts, psf, columns[["x", "y"]].to_numpy(float), sampling, refine)
    fitted, _ = column_intensities(counts, xy[:, 0], xy[:, 1], psf, sampling)
    return columns.assign(x=xy[:, 0], y=xy[:, 1], intensity=fitted)


def _refined(frame: np.ndarray, kernel: np.ndarray, xy: np.ndarray, sampling: float, refine: bool,
             movable: np.ndarray | None = None) -> np.ndarray:
    """Positions ``(n, 2)`` [Å] refined against the counts (:func:`quantify.refine_positions`; only ``movable``
    ones), or as given without ``refine``: the first step of both counts fits."""
    if not refine or not len(xy):
        return xy
    x, y, _ = refine_positions(frame, xy[:, 0], xy[:, 1], kernel, sampling, movable=movable)
    return np.c_[x, y]


def _integrated_intensities(array: np.ndarray, sampling: float, lattice: MoS2Sites, radius: float) -> _Intensities:
    """Intensities integrated over a disk of the object (its 20th percentile taken as the background)."""
    background = float(np.percentile(array, 20))
    s_sites, hollows = lattice.s_sites, lattice.hollows
    s_int = integrated_intensity(array - background, s_sites[:, 0], s_sites[:, 1], sampling, radius) \
        if len(s_sites) else np.array([])
    hollow_int = integrated_intensity(array - background, hollows[:, 0], hollows[:, 1], sampling, radius) \
        if len(hollows) else np.array([0.0])
    mo = lattice.mo
    mo_int = mo["intensity"].to_numpy()
    return _Intensities(mo_int, s_int, hollow_int, mo[["x", "y"]].to_numpy(), s_sites, np.ones(len(mo), bool),
                        lattice.in_layer(lattice_members(mo[["x", "y"]].to_numpy(), mo_int, lattice.a)))


def _fitted_intensities(counts, psf, shape, sampling: float, lattice: MoS2Sites, refine: bool) -> _Intensities:
    """Intensities of the Mo columns, S sites and hollow sites fitted jointly to the counts.

    With ``refine`` the Mo and S positions are first refined against the counts
    (:func:`quantify.refine_positions`; hollow sites stay where the lattice puts them).
    The lattice's ghosts (sites just beyond the frame's edge) are fitted with the others, in place, and
    not returned. An off-lattice bright column whose counts are not significantly above zero is a peak of noise
    (bare support); lattice Mo are vouched for by their neighbours (and a low dose must not lose them).
    """
    frame = np.asarray(getattr(counts, "data", counts), dtype=float)
    if frame.shape != tuple(shape):
        raise ValueError(f"counts must have the object's shape {tuple(shape)}, got {frame.shape}")
    kernel = np.asarray(psf, dtype=float)
    mo, s_sites, hollows = lattice.mo, lattice.s_sites, lattice.hollows
    xy = np.vstack([mo[["x", "y"]].to_numpy(), s_sites.reshape(-1, 2), hollows.reshape(-1, 2),
                    np.asarray(lattice.ghosts, float).reshape(-1, 2)])
    n_mo, n_s, n_h = len(mo), len(s_sites), len(hollows)
    xy = _refined(frame, kernel, xy, sampling, refine, movable=np.arange(len(xy)) < n_mo + n_s)
    fitted, _, errors = column_intensities(frame, xy[:, 0], xy[:, 1], kernel, sampling, return_errors=True)
    mo_int = fitted[:n_mo]
    on = lattice.in_layer(lattice_members(mo[["x", "y"]].to_numpy(), mo_int, lattice.a))
    real = on | (mo_int >= SIGNIFICANCE * errors[:n_mo])
    return _Intensities(mo_int, fitted[n_mo:n_mo + n_s], fitted[n_mo + n_s:n_mo + n_s + n_h], xy[:n_mo],
                        xy[n_mo:n_mo + n_s], real, on)


def lattice_members(xy: np.ndarray, intensity: np.ndarray, a: float) -> np.ndarray:
    """Which Mo-like columns belong to a grain's lattice; the others are Mo adatoms (the adatom decision).

    Two columns one lattice spacing apart (±12 %) are bonded when they scatter alike (:data:`ALIKE`). A column
    with two bonds or more is in a grain; so is an edge column with one bond to such a column along that
    column's own lattice directions (:data:`REGISTRY_DEG`): it sits on a lattice site of the grain, held by the
    S it shares. What is left (no bond, or one off the lattice or to another lone column) is an adatom on the
    support, unless it holds two S (``MoS2Sites.in_layer``, in :func:`find_atoms`: a grain Mo at the edge).

    Parameters
    ----------
    xy : (n, 2) ndarray
        Positions of the Mo-like columns [Å].
    intensity : (n,) ndarray
        Their intensities, on one scale [any unit].
    a : float
        Lattice parameter [Å].

    Returns
    -------
    (n,) ndarray of bool

    Examples
    --------
    >>> a = 3.16
    >>> row = np.array([[0.0, 0.0], [a, 0.0], [2 * a, 0.0], [a / 2, a * 3 ** 0.5 / 2], [3 * a, 0.0], [20.0, 0.0]])
    >>> lattice_members(row, np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0]), a).tolist()
    [True, True, True, True, True, False]
    >>> lattice_members(row, np.array([1.0, 1.0, 1.0, 1.0, 20.0, 20.0]), a).tolist()  # a Mo on a faint lattice
    [True, True, True, True, False, False]
    """
    xy, value = np.asarray(xy, float).reshape(-1, 2), np.clip(np.asarray(intensity, float), 0, None)
    n = len(xy)
    if n < 2:
        return np.zeros(n, bool)
    pairs = cKDTree(xy).query_pairs(1.12 * a, output_type="ndarray")
    if len(pairs):
        i, j = pairs.T
        bond = xy[j] - xy[i]
        length = np.hypot(*bond.T)
        alike = (length > 0.88 * a) & (np.minimum(value[i], value[j]) >= ALIKE * np.maximum(value[i], value[j])) \
            & (np.maximum(value[i], value[j]) > 0)
        i, j, bond = i[alike], j[alike], bond[alike]
    else:
        i = j = np.array([], int)
        bond = np.zeros((0, 2))
    bonds = np.bincount(np.r_[i, j], minlength=n)
    core = bonds >= 2
    z = np.exp(6j * np.arctan2(bond[:, 1], bond[:, 0])) if len(bond) else np.array([], complex)
    orientation = np.zeros(n, complex)  # the sum of e^{6iφ} over each column's bonds: its lattice directions
    np.add.at(orientation, i, z)
    np.add.at(orientation, j, z)
    edge = np.zeros(n, bool)
    tolerance = math.radians(6 * REGISTRY_DEG)
    for lone, grain, zz in ((i, j, z), (j, i, z)):  # a lone column bonded to a core one, along its directions
        candidate = ~core[lone] & core[grain]
        others = orientation[grain[candidate]] - zz[candidate]  # the grain column's other bonds
        turn = np.abs(np.angle(zz[candidate] * np.conj(others)))
        edge[lone[candidate][turn <= tolerance]] = True
    return core | edge


def _label(lattice: MoS2Sites, measured: _Intensities, level: float, fit_alpha: bool, ratio, dopant,
           class_prior: str) -> pd.DataFrame:
    """The sites table: S sites labelled by the mixture model, Mo by a two-class posterior against S₂."""
    lattice_mo = measured.mo[measured.on_lattice]
    if len(measured.s):
        empty = measured.hollow if len(measured.hollow) else np.array([0.0])
        post, params = fit_s_mixture(measured.s, unit0=ONE_S_PER_MO * float(np.median(lattice_mo)), empty=empty,
                                     dopant_ratio=ratio, alpha0=level, fit_alpha=fit_alpha, class_prior=class_prior)
        cls, conf = post.argmax(1), post.max(1)
        # an edge site held by a single Mo and empty is more likely beyond the edge than a vacancy
        keep = ~((cls == 0) & (lattice.support < 2))
        s2 = (params["background"] + 2 * params["per_atom"],
              math.sqrt(params["sigma0"] ** 2 + 2 * params["var_per_atom"]))
        mixture = mixture_summary(params, dopant)
    else:
        cls, conf, keep = np.array([], int), np.array([]), np.array([], bool)
        s2, mixture = (0.0, 1.0), {}
    p_mo = _mo_confidence(measured.mo, lattice_mo, *s2)
    rows = [(x, y, "Mo" if on else "Mo_adatom", float(p), value)
            for (x, y), value, on, p, r in zip(measured.mo_xy, measured.mo, measured.on_lattice, p_mo, measured.real)
            if r]
    rows += [(x, y, S_CLASSES[c] if c < 3 else dopant, float(p), value)
             for (x, y), value, c, p, k in zip(measured.s_xy, measured.s, cls, conf, keep) if k]
    out = pd.DataFrame(rows, columns=COLUMNS)
    out.attrs["mixture"] = mixture
    out.attrs["class_prior"] = class_prior
    return out


def _mo_confidence(values: np.ndarray, lattice_mo: np.ndarray, s2_mean: float, s2_sd: float) -> np.ndarray:
    """Probability that a column is Mo rather than S₂: two Gaussians, Mo's from the lattice Mo (robust spread)."""
    mo_mean = float(np.median(lattice_mo)) if len(lattice_mo) else float(np.median(values))
    mo_sd = 1.4826 * float(np.median(np.abs(lattice_mo - mo_mean))) if len(lattice_mo) > 2 else 0.1 * mo_mean
    mo_sd = max(mo_sd, 0.02 * mo_mean)
    lm = -0.5 * ((values - mo_mean) / mo_sd) ** 2 - math.log(mo_sd)
    ls = -0.5 * ((values - s2_mean) / s2_sd) ** 2 - math.log(s2_sd)
    return 1 / (1 + np.exp(np.clip(ls - lm, -50, 50)))
