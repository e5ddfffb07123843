"""The multislice evaluation set: frames the linear image model did not make, and the oracles on them.

``data/multislice_eval.npz`` (made by ``data/make_multislice_eval.py`` with abTEM:
PRISM multislice, frozen phonons, focal spread, 60 and 80 kV, bare and on
graphene) holds noiseless HAADF scans, the detected fraction per incident
electron, and their ground truth. :class:`MultisliceSet` records them at any dose
(Poisson counts, seeded) as :class:`MultisliceFrame` objects that the methods of
:mod:`.sweeps` take like simulated frames.

There is no object function behind a multislice frame, so the ideal observer of
:mod:`.limits` (which knows the forward model) does not apply. In its place:

* :func:`oracle_species` — the **oracle that knows the positions and the class
  levels**: every column's counts fitted at its true position
  (:func:`atoms.quantify.column_intensities`), each S site given the class whose
  level (measured on the noiseless scan with the same fit) explains its counts best.
* the same rule with the positions **estimated from the frame**
  (``positions=`` the sites a method found): the bound a real method can approach.

Model-based quantification (StatSTEM; Van Aert, den Dekker et al.) and the
probability of error in atom counting (De Backer et al.) set these bounds in the
same way for thicker columns; the book applies them to S-site counting in a monolayer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..atoms.find import find_atoms
from ..atoms.lattice import GHOST_REACH, within
from ..atoms.quantify import column_intensities
from ..physics.imaging import electrons_per_pixel, linear_image
from ..physics.probe import Probe, psf_grid
from ..physics.specimen import Sites
from .baselines import GAUSSIAN_SIGMA
from .metrics import match_sites

__all__ = ["MultisliceFrame", "MultisliceSet", "load_multislice_set", "class_levels", "class_spreads",
           "oracle_species", "oracle_rows", "expected_counts", "site_counts", "S_SPECIES", "ORACLE", "ORACLE_ESTIMATED"]

#: Names of the oracles' rows in a sweep table.
ORACLE, ORACLE_ESTIMATED = "oracle (positions, levels)", "oracle (levels; positions found)"

#: The species of an S site, by the number of S atoms it holds.
S_SPECIES = ("vacancy", "S1", "S2")


@dataclass
class MultisliceFrame:
    """One multislice frame recorded at a dose, with its ground truth (the interface of ``dataset.Frame``).

    Attributes
    ----------
    counts : (ny, nx) ndarray
        Poisson counts [electrons].
    expected : (ny, nx) ndarray
        The noiseless multislice scan in counts (``image × dose × sampling²``).
    sites : Sites
        True columns (positions [Å], species).
    probe : Probe
        The probe the methods are given (measured or true, as chosen in :meth:`MultisliceSet.frame`).
    true_probe : Probe
        The probe of the simulation.
    sampling : float
        Pixel size [Å].
    dose : float
        Dose [e⁻/Å²].
    condition : str
        E.g. ``"80 kV, on graphene"``.
    obj : None
        No object function stands behind a multislice frame.
    """

    counts: np.ndarray
    expected: np.ndarray
    sites: Sites
    probe: Probe
    true_probe: Probe
    sampling: float
    dose: float
    condition: str
    obj: None = None

    @property
    def electrons_per_pixel(self) -> float:
        """Incident electrons per pixel."""
        return electrons_per_pixel(self.dose, self.sampling)


@dataclass
class MultisliceSet:
    """The noiseless scans of the set and their ground truth (:func:`load_multislice_set`)."""

    images: np.ndarray
    sampling: float
    conditions: list
    energies: np.ndarray
    sites: list
    true_probes: list
    settings: dict

    def __len__(self) -> int:
        return len(self.images)

    def frame(self, i: int, dose: float, seed: int = 0, probe: Probe | None = None) -> MultisliceFrame:
        """Frame ``i`` recorded at ``dose`` [e⁻/Å²] (Poisson noise seeded by ``(seed, i, dose)``), handed to the
        methods with ``probe`` (default: the true probe; pass the measured one for the full chain)."""
        if not (np.isfinite(dose) and dose > 0):
            raise ValueError(f"dose must be a positive number of e⁻/Å², got {dose!r}")
        expected = self.images[i].astype(np.float64) * electrons_per_pixel(dose, self.sampling)
        rng = np.random.default_rng([seed, i, int(round(dose))])
        return MultisliceFrame(rng.poisson(expected).astype(np.float64), expected, self.sites[i],
                               self.true_probes[i] if probe is None else probe, self.true_probes[i], self.sampling,
                               float(dose), self.conditions[i])


def load_multislice_set(path: str | Path) -> MultisliceSet:
    """Read ``data/multislice_eval.npz`` (or a file of the same layout), with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run data/make_multislice_eval.py to make it")
    with np.load(path, allow_pickle=False) as data:
        missing = {"images", "sampling", "condition", "energy", "sites", "probes", "settings"} - set(data.files)
        if missing:
            raise ValueError(f"{path.name} is not a multislice evaluation set (missing {sorted(missing)})")
        images = np.asarray(data["images"], np.float32)
        sites = [Sites(np.array(s["x"], float), np.array(s["y"], float), np.array(s["species"], dtype=object))
                 for s in json.loads(str(data["sites"]))]
        probes = [Probe.from_dict(p, origin=f"{path.name} probe") for p in json.loads(str(data["probes"]))]
        return MultisliceSet(images, float(data["sampling"]), [str(c) for c in data["condition"]],
                             np.asarray(data["energy"], float), sites, probes, json.loads(str(data["settings"])))


#: The sites the oracle fits a column at: the MoS₂ layer's. The atoms of a support or contamination (``C``) lie
#: anywhere, some a fraction of an ångström from an S site: fitted as columns of their own they would make the
#: joint fit singular there; they are part of the background, as for every method.
FITTED = ("Mo", "Mo_adatom", "S2", "S1", "vacancy")


def _fit(image: np.ndarray, xy: np.ndarray, psf: np.ndarray, sampling: float,
         species: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts and standard errors of the columns at ``xy`` [Å] of the :data:`FITTED` ``species``, fitted
    jointly; NaN for other sites and for a site further than :data:`~deepstem_utils.atoms.lattice.GHOST_REACH`
    outside the frame (as in ``find_atoms``: a column seen through a few edge pixels of its probe's tail is not
    determined, and an unbounded value there would corrupt its neighbours' in the joint fit)."""
    ny, nx = image.shape
    keep = within(xy, (nx * sampling, ny * sampling), GHOST_REACH) & np.isin(species, FITTED)
    values, errors = np.full(len(xy), np.nan), np.full(len(xy), np.nan)
    if keep.any():
        values[keep], _, errors[keep] = column_intensities(image, xy[keep, 0], xy[keep, 1], psf, sampling,
                                                           return_errors=True)
    return values, errors


def expected_counts(frame, psf: np.ndarray) -> np.ndarray:
    """The noiseless frame [counts]: a multislice frame's scan, or a simulated frame's linear image of its object."""
    expected = getattr(frame, "expected", None)
    if expected is not None:
        return expected
    return linear_image(frame.obj, psf) * frame.electrons_per_pixel


def _class_values(frame, psf: np.ndarray) -> dict:
    """The counts fitted at the true S sites of the noiseless frame, by class: the sites inside the frame (those
    at or beyond the edge are fitted less well), or all of a class that has none inside."""
    xy = np.stack([frame.sites.x, frame.sites.y], 1)
    image = expected_counts(frame, psf)
    species = np.asarray(frame.sites.species).astype(str)
    values, _ = _fit(image, xy, psf, frame.sampling, species)
    ny, nx = image.shape
    inside = within(xy, (nx * frame.sampling, ny * frame.sampling), 0.0)
    out = {}
    for c in S_SPECIES:
        member = (species == c) & np.isfinite(values)
        if member.any():
            out[c] = values[member & inside] if np.any(member & inside) else values[member]
    return out


def class_levels(frame, psf: np.ndarray | None = None) -> dict:
    """The counts fitted at the true S sites of the **noiseless** frame, per class: ``{species: median}``.

    What the oracle knows: how many counts a column of each class gives, in this very frame and fit. ``frame``
    is a :class:`MultisliceFrame` or a simulated frame with its object (``dataset.Frame``).
    """
    return _medians(_class_values(frame, _psf(frame) if psf is None else psf))


def _medians(values: dict) -> dict:
    return {c: float(np.median(v)) for c, v in values.items()}


def _spreads(values: dict) -> dict:
    return {c: float(1.4826 * np.median(np.abs(v - np.median(v)))) if len(v) >= 3 else 0.0 for c, v in values.items()}


def class_spreads(frame, psf: np.ndarray | None = None) -> dict:
    """How much the noiseless counts of a class vary from site to site (robust standard deviation, 1.4826 ×
    the median absolute deviation; 0 for a class with fewer than 3 sites): ``{species: spread}``.

    A class's sites differ without noise: their neighbours (a vacancy beside an S₂ column), the support or
    contamination beneath them, the frozen phonons of a multislice frame. The oracle adds this to the fit's
    own error, so that at high dose it does not treat a level as sharper than the frame makes it.
    """
    return _spreads(_class_values(frame, _psf(frame) if psf is None else psf))


def _psf(frame: MultisliceFrame) -> np.ndarray:
    size = psf_grid(frame.sampling)
    return frame.probe.intensity((size, size), frame.sampling)


def oracle_species(frame, positions: np.ndarray | None = None, psf: np.ndarray | None = None,
                   levels: dict | None = None, spreads: dict | None = None) -> np.ndarray:
    """S-site species by the counts fitted at known positions, classified with known class levels.

    Parameters
    ----------
    frame : MultisliceFrame
        The noisy frame and its truth.
    positions : (n_sites, 2) ndarray, optional
        Where to fit each true site's column [Å]: default the true positions (the oracle); pass the positions a
        method estimated (matched to the true sites) for the bound a real method can approach.
    psf : ndarray, optional
        The fitting kernel (default: the probe the frame was handed, on the frame's grid).
    levels : dict, optional
        Class levels [counts] (default :func:`class_levels` of the frame).
    spreads : dict, optional
        Site-to-site spread of each class without noise [counts] (default :func:`class_spreads` of the frame).

    Returns
    -------
    (n_sites,) ndarray of str
        The class of every true S site (``""`` for other sites): the class of highest Gaussian likelihood, with
        the fit's own error at that site (its standard error) and the class's spread added in quadrature;
        classes weigh equally.
    """
    psf = _psf(frame) if psf is None else psf
    levels = class_levels(frame, psf) if levels is None else levels
    spreads = class_spreads(frame, psf) if spreads is None else spreads
    xy = np.stack([frame.sites.x, frame.sites.y], 1) if positions is None else np.asarray(positions, float)
    species = np.asarray(frame.sites.species).astype(str)
    values, errors = _fit(frame.counts, xy, psf, frame.sampling, species)
    out = np.full(len(species), "", dtype=object)
    s_sites = np.isin(species, S_SPECIES) & np.isfinite(values)
    names = [c for c in S_SPECIES if c in levels]
    means = np.array([levels[c] for c in names])
    error = np.nan_to_num(errors[s_sites], nan=1.0)
    spread = np.maximum(np.hypot(error[:, None], np.array([spreads.get(c, 0.0) for c in names])[None, :]), 1e-6)
    logp = -0.5 * ((values[s_sites, None] - means[None, :]) / spread) ** 2 - np.log(spread)
    out[s_sites] = np.array(names, dtype=object)[np.argmax(logp, axis=1)]
    return out


def site_counts(found: np.ndarray, truth: np.ndarray, inside: np.ndarray) -> dict:
    """Balanced S-site accuracy of labels ``found`` against ``truth`` over the sites ``inside``, with the counts it
    comes from: ``{"s_accuracy", "<class>_sites", "<class>_right"}`` for every class of :data:`S_SPECIES` (so
    that frames can be pooled: :func:`.sweeps.pooled_accuracy`)."""
    found, truth, inside = np.asarray(found), np.asarray(truth), np.asarray(inside, bool)
    record, recalls = {}, []
    for c in S_SPECIES:
        sites = inside & (truth == c)
        record[f"{c}_sites"], record[f"{c}_right"] = int(sites.sum()), int(np.sum(found[sites] == c))
        if sites.any():
            recalls.append(record[f"{c}_right"] / record[f"{c}_sites"])
    return {"s_accuracy": float(np.mean(recalls)) if recalls else float("nan"), **record}


def oracle_rows(frame, psf: np.ndarray, extent: tuple[float, float], margin: float = 0.5) -> list:
    """Sweep records of the two oracles on one frame (balanced S-site accuracy over the true S sites inside
    the frame less ``margin`` [Å]): :data:`ORACLE` at the true positions, and :data:`ORACLE_ESTIMATED` with the
    positions found by locating the columns in the Gaussian-filtered frame and refining them in the counts
    (``find_atoms(..., counts=, psf=)``), a site not found counting as misidentified."""
    truth = np.asarray(frame.sites.species).astype(str)
    x, y = np.asarray(frame.sites.x), np.asarray(frame.sites.y)
    inside = (x > margin) & (x < extent[0] - margin) & (y > margin) & (y < extent[1] - margin)
    noiseless = _class_values(frame, psf)  # one fit of the noiseless frame for both
    levels, spreads = _medians(noiseless), _spreads(noiseless)
    exact = oracle_species(frame, psf=psf, levels=levels, spreads=spreads)
    smoothed = ndimage.gaussian_filter(frame.counts, GAUSSIAN_SIGMA / frame.sampling, mode="reflect")
    found = find_atoms(smoothed, frame.sampling, one_atom_fraction=0.5, counts=frame.counts, psf=psf, quiet=True)
    positions = np.stack([x, y], 1)
    located = np.zeros(len(x), bool)
    if len(found):
        i, j = match_sites(found, x, y, 0.6)
        positions[j] = found[["x", "y"]].to_numpy()[i]
        located[j] = True
    estimated = oracle_species(frame, positions=positions, psf=psf, levels=levels, spreads=spreads)
    estimated[~located] = "missed"
    nan = float("nan")
    return [{"method": name, "dose": frame.dose, **site_counts(species, truth, inside), "mo_rmse": nan,
             "F1_Mo": nan, "F1_S2": nan, "F1_S1": nan} for name, species in ((ORACLE, exact),
                                                                             (ORACLE_ESTIMATED, estimated))]
