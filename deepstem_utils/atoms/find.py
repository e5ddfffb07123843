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

from ..core.constants import Z
from ..core.signals import unwrap
from ..network.weights import weights_calibration
from .columns import find_columns, integrated_intensity
from .lattice import MoS2Sites, NoLattice, mos2_sites
from .mixture import ONE_S_PER_MO, S_CLASSES, fit_s_mixture, mixture_summary
from .quantify import column_intensities, refine_positions

__all__ = ["find_atoms", "default_one_atom_fraction", "SIGNIFICANCE", "COLUMNS"]

#: With ``counts``: an off-lattice bright column (a candidate Mo adatom) is reported only if its fitted counts
#: exceed this many standard errors.
SIGNIFICANCE = 5.0
#: The columns of the table :func:`find_atoms` returns.
COLUMNS = ["x", "y", "species", "confidence", "intensity"]
#: Z-exponents that bound how a dopant scatters relative to S (the band of HAADF detectors in use).
GAMMA_BAND = (1.4, 2.1)


def find_atoms(obj, sampling: float | None = None, material: str | None = "MoS2", *,
               lattice_constant: float | None = None, radius: float = 0.7, dopant: str | None = None,
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
        ``S1``, ``vacancy`` or ``Mo_adatom``. ``None``: every bright column, species ``"column"``.
    lattice_constant : float, optional
        MoS₂ lattice parameter [Å]; measured from the Mo-Mo distances if not given.
    radius : float
        Radius of the disk over which a column's intensity is integrated [Å].
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
        With ``counts``: refine the Mo and S positions against the counts by the
        linear image model before measuring the intensities
        (:func:`quantify.refine_positions`). The object map gives the start; the
        counts pin each column as closely as the dose allows.
    quiet : bool
        Return an empty table without a warning when there is no MoS₂ lattice
        (a frame of a growth series before any grain has formed).

    Returns
    -------
    pandas.DataFrame
        One row per site: ``x``, ``y`` [Å] (contract convention), ``species``,
        ``confidence`` (0-1, the probability of the species given the site's
        intensity, with the class weights of ``class_prior``), and
        ``intensity`` (integrated object over the disk, or with ``counts`` the
        fitted counts of the column). ``attrs["mixture"]`` summarises the S-site
        mixture: the fitted class ``fractions`` (the composition it estimates) and
        the ``separation`` d′ of the S₁ and S₂ levels in pooled standard deviations;
        below about 2 the labels of a rare class are mostly guesses, and the
        fractions are the better estimate of how many there are.

    Examples
    --------
    >>> from deepstem_utils.physics import specimen
    >>> sites = specimen.mos2_lattice((30.0, 30.0))
    >>> obj = specimen.object_function(sites, (200, 200), 0.15)
    >>> atoms = find_atoms(obj, sampling=0.15)
    >>> sorted(set(atoms.species))
    ['Mo', 'S2']
    """
    if class_prior not in ("equal", "fitted"):
        raise ValueError(f"class_prior must be 'equal' (label by the site's own intensity) or 'fitted', "
                         f"got {class_prior!r}")
    if (counts is None) != (psf is None):
        raise ValueError("counts and psf go together: give both (the frame and its probe intensity) or neither")
    level = _one_atom_start(obj, one_atom_fraction, counts)
    array, sampling = _as_object(obj, sampling)
    if material not in ("MoS2", None, "none"):
        raise ValueError(f"material must be 'MoS2' or None, got {material!r}")
    ratio = _dopant_ratio(dopant)
    columns = find_columns(array, sampling, radius=radius)
    if material in (None, "none"):
        return _any_material(columns)
    try:
        if len(columns) < 3:
            raise NoLattice("fewer than 3 bright columns: no MoS₂ found, so no sites are returned "
                            "(for another material use material=None)")
        lattice = mos2_sites(columns, array, sampling, lattice_constant)
    except NoLattice as message:  # bare support or noise: no site, and say why
        if not quiet:
            warnings.warn(str(message), stacklevel=2)
        return pd.DataFrame({name: [] for name in COLUMNS})
    if counts is not None:
        measured = _fitted_intensities(counts, psf, array.shape, sampling, lattice, refine)
    else:
        measured = _integrated_intensities(array, sampling, lattice, radius)
    return _label(lattice, measured, level, counts is None, ratio, dopant, class_prior)


@dataclass
class _Intensities:
    """Column intensities of one image at the lattice's sites, and where the columns are."""

    mo: np.ndarray          # Mo-like columns
    s: np.ndarray           # S sites
    hollow: np.ndarray      # hollow sites (no atom: the "empty" level)
    mo_xy: np.ndarray       # (n_mo, 2) Mo positions [Å] (refined with counts)
    s_xy: np.ndarray        # (n_s, 2) S positions [Å]
    real: np.ndarray        # Mo-like columns to report (off-lattice ones must be significant in the counts)


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


def _as_object(obj, sampling) -> tuple[np.ndarray, float]:
    calibrated = unwrap(obj, sampling)
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
    if sampling is None:
        raise ValueError("sampling is required for an array: pass sampling=<Å per pixel>")
    sampling = float(sampling)
    if not np.isfinite(sampling) or sampling <= 0:
        raise ValueError(f"sampling must be a positive pixel size in Å, got {sampling!r}")
    return array, sampling


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


def _integrated_intensities(array: np.ndarray, sampling: float, lattice: MoS2Sites, radius: float) -> _Intensities:
    """Intensities integrated over a disk of the object (its 20th percentile taken as the background)."""
    background = float(np.percentile(array, 20))
    s_sites, hollows = lattice.s_sites, lattice.hollows
    s_int = integrated_intensity(array - background, s_sites[:, 0], s_sites[:, 1], sampling, radius) \
        if len(s_sites) else np.array([])
    hollow_int = integrated_intensity(array - background, hollows[:, 0], hollows[:, 1], sampling, radius) \
        if len(hollows) else np.array([0.0])
    mo = lattice.mo
    return _Intensities(mo["intensity"].to_numpy(), s_int, hollow_int, mo[["x", "y"]].to_numpy(), s_sites,
                        np.ones(len(mo), bool))


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
    if refine and len(xy):
        movable = np.arange(len(xy)) < n_mo + n_s
        x, y, _ = refine_positions(frame, xy[:, 0], xy[:, 1], kernel, sampling, movable=movable)
        xy = np.c_[x, y]
    fitted, _, errors = column_intensities(frame, xy[:, 0], xy[:, 1], kernel, sampling, return_errors=True)
    mo_int = fitted[:n_mo]
    real = lattice.on_lattice | (mo_int >= SIGNIFICANCE * errors[:n_mo])
    return _Intensities(mo_int, fitted[n_mo:n_mo + n_s], fitted[n_mo + n_s:n_mo + n_s + n_h], xy[:n_mo],
                        xy[n_mo:n_mo + n_s], real)


def _label(lattice: MoS2Sites, measured: _Intensities, level: float, fit_alpha: bool, ratio, dopant,
           class_prior: str) -> pd.DataFrame:
    """The sites table: S sites labelled by the mixture model, Mo by a two-class posterior against S₂."""
    lattice_mo = measured.mo[lattice.on_lattice]
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
            for (x, y), value, on, p, r in zip(measured.mo_xy, measured.mo, lattice.on_lattice, p_mo, measured.real)
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
