"""The growth twin's frames as a microscope records them (chapter 7).

:class:`SeriesAcquisition` renders each configuration of the kinetic twin
(:mod:`.twin`) through the physics of chapter 1: the object function of the
grains, adatoms, precursor film and graphene support, the linear image with the
measured probe, and the acquisition (dose, Poisson counts, scan jitter, stage
drift from frame to frame and within a frame). It also holds each frame's
ground truth in frame coordinates. :func:`record_series` runs the twin under the
beam of the very acquisition that records it (one dose per frame, the same
scanned fields), so that the S the beam displaces is where and as much as the
frames record.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.constants import GRAPHENE_A, Z
from ..physics.imaging import Acquisition, acquire, linear_image
from ..physics.probe import Probe, psf_grid
from ..physics.specimen import Sites, haadf_cross_section, object_function
from .beam import S_CROSS_SECTION_ENERGY, S_DISPLACEMENT_CROSS_SECTION, BeamExposure
from .kinetics import KineticParameters
from .twin import simulate_growth

__all__ = ["SeriesAcquisition", "record_series", "scan_offsets", "SERIES_DOSE", "SERIES_DWELL_TIME",
           "SERIES_SAMPLING"]


#: Chapter 7's acquisition settings per frame (the defaults of :class:`SeriesAcquisition`): dose [e⁻/Å²],
#: dwell time per pixel [µs], pixel size [Å].
SERIES_DOSE, SERIES_DWELL_TIME, SERIES_SAMPLING = 2e4, 2.0, 0.16


class SeriesAcquisition:
    """The twin's frames as a microscope records them: a lazy sequence of noisy frames.

    Frame ``i`` is rendered when it is asked for (so a long series never sits in
    memory) and is the same every time (its noise is seeded by ``(seed, i)``).

    Parameters
    ----------
    frames : list of TwinFrame
        From :func:`simulate_growth`.
    probe : Probe
        The probe (chapter 7 uses the probe measured in chapter 2).
    shape : (int, int)
        ``(ny, nx)`` of every frame [px].
    sampling : float
        Pixel size [Å].
    dose : float, optional
        Dose per frame [e⁻/Å²]. Default: the dose the twin was irradiated with (:func:`record_series`),
        else :data:`SERIES_DOSE`. A twin run under a beam must be recorded with that beam's dose and
        scanned fields (else ``ValueError``).
    dwell_time : float
        Dwell time per pixel [µs].
    drift : (float, float)
        Stage drift velocity ``(vx, vy)`` [Å/s]: it moves the field of view from
        frame to frame and distorts each frame while it is scanned.
    drift_wander : float
        Random change of the field-of-view offset per frame, standard deviation [Å].
    jitter : float
        Scan-line jitter, standard deviation [Å].
    frame_time : float
        Time between frames [s] (as in :func:`simulate_growth`).
    start : (float, float), optional
        Specimen position of the first frame's pixel (0, 0) [Å]; default: the field centred in the simulated area.
    seed : int
        Seed of the noise, jitter and drift.
    gamma : float
        Z-exponent of the HAADF cross-sections.
    """

    def __init__(self, frames, probe: Probe, shape=(512, 512), sampling: float = SERIES_SAMPLING,
                 dose: float | None = None, dwell_time: float = SERIES_DWELL_TIME, drift=(0.25, -0.15),
                 drift_wander: float = 0.05, jitter: float = 0.03, frame_time: float = 0.6, start=None, seed: int = 0,
                 gamma: float = 1.7):
        self.frames, self.probe = frames, probe
        ny, nx = tuple(shape)
        self.field = (nx * sampling, ny * sampling)
        #: specimen position of every frame's pixel (0, 0) [Å], shape (n, 2)
        self.offsets = scan_offsets(len(frames), frames[0].extent, self.field, drift, frame_time, drift_wander, seed,
                                    start)
        dose = _agreed_dose(frames, dose, self.offsets, self.field)
        self.shape, self.sampling, self.dose = tuple(shape), float(sampling), float(dose)
        self.acquisition = Acquisition(dose=dose, sampling=sampling, dwell_time=dwell_time, jitter=jitter,
                                       drift=tuple(drift))
        self.gamma, self.seed = gamma, seed
        psf_size = psf_grid(sampling, minimum=8.0)
        self.psf = probe.intensity((psf_size, psf_size), sampling)
        self._film_waves = _film_waves(np.random.default_rng([seed, 10**6 + 1]))
        g = frames[0].graphene
        self._graphene = _graphene_columns(g, frames[0].extent) if g is not None else None

    def __len__(self) -> int:
        return len(self.frames)

    def _keep(self, i: int, margin: float, min_grain: int):
        frame = self.frames[i]
        sites = frame.sites
        x, y = sites.x - self.offsets[i, 0], sites.y - self.offsets[i, 1]
        keep = (x > -margin) & (x < self.field[0] + margin) & (y > -margin) & (y < self.field[1] + margin)
        species = sites.species.copy()
        if min_grain > 0:
            ids, sizes = np.unique(frame.cluster[(frame.cluster >= 0) & (species == "Mo")], return_counts=True)
            small = np.isin(frame.cluster, ids[sizes < min_grain])
            keep &= ~(small & (species != "Mo"))  # S columns of a group with no lattice yet are not sites
            species[small & (species == "Mo")] = "Mo_adatom"
        return x, y, species, keep

    def truth(self, i: int, margin: float = 0.0, min_grain: int = 4) -> Sites:
        """Ground truth of frame ``i`` in frame coordinates [Å] (sites inside the field plus ``margin``).

        A group of fewer than ``min_grain`` Mo has no lattice yet: its Mo count as
        ``"Mo_adatom"`` and its S columns are left out.
        """
        x, y, species, keep = self._keep(i, margin, min_grain)
        counts = self.frames[i].sites.counts
        return Sites(x[keep], y[keep], species[keep], {e: c[keep] for e, c in counts.items()})

    def truth_ids(self, i: int, margin: float = 0.0, min_grain: int = 4) -> np.ndarray:
        """Adatom identity of every site of :meth:`truth` (``-1`` for other sites, including the Mo of
        groups smaller than ``min_grain``: they are scored as adatoms but have no single-atom track)."""
        _, _, _, keep = self._keep(i, margin, min_grain)
        return self.frames[i].adatom_id[keep]

    def registered(self, i: int, xy) -> np.ndarray:
        """Frame-``i`` positions [Å] in the coordinates of frame 0 (what drift registration should give)."""
        return np.asarray(xy, float) + (self.offsets[i] - self.offsets[0])

    def adatom_truth(self, registered: bool = True):
        """True trapped adatoms of every frame: lists of positions (n_t, 2) [Å] and identities (n_t,)."""
        xy, ids = [], []
        for i in range(len(self)):
            truth, aid = self.truth(i), self.truth_ids(i)
            keep = aid >= 0
            pos = np.stack([truth.x[keep], truth.y[keep]], 1)
            xy.append(self.registered(i, pos) if registered else pos)
            ids.append(aid[keep])
        return xy, ids

    def truth_events(self) -> pd.DataFrame:
        """The twin's nucleations, mergers and attachments of trapped adatoms, with frame-0 positions [Å]
        (``in_field``: the event happened inside that frame's field of view)."""
        rows = []
        for frame in self.frames:
            for e in frame.events:
                if e["kind"] not in ("nucleation", "merge") and not (e["kind"] == "attach" and "adatom" in e):
                    continue
                x, y = e["x"] - self.offsets[frame.index, 0], e["y"] - self.offsets[frame.index, 1]
                inside = 0 <= x <= self.field[0] and 0 <= y <= self.field[1]
                kind = {"merge": "coalescence", "attach": "attachment"}.get(e["kind"], e["kind"])
                detail = f"mirror twin: {e['mirror_twin']}, grain turned {e['turn_deg']:.0f}°" if kind == "coalescence" else ""
                x0, y0 = self.registered(frame.index, [x, y])
                rows.append({"frame": frame.index, "kind": kind, "x": x0, "y": y0, "in_field": inside,
                             "detail": detail})
        return pd.DataFrame(rows, columns=["frame", "kind", "x", "y", "in_field", "detail"])

    def film(self, i: int) -> np.ndarray:
        """The precursor film of frame ``i`` as a smooth object background (dimensionless per pixel).

        The film holds its atoms' scattering (1 Mo + 3 S per MoS₃ unit) spread over the
        area with a smooth amorphous texture (correlation length about 5 Å) fixed to the specimen.
        """
        frame = self.frames[i]
        area = frame.extent[0] * frame.extent[1]
        energy = self.probe.energy
        unit = (haadf_cross_section(Z["Mo"], energy, gamma=self.gamma)
                + 3 * haadf_cross_section(Z["S"], energy, gamma=self.gamma))
        mean = frame.film / area * unit * self.sampling**2
        ny, nx = self.shape
        y, x = np.mgrid[0:ny, 0:nx] * self.sampling
        x, y = x + self.offsets[i, 0], y + self.offsets[i, 1]
        k, phase, amplitude = self._film_waves
        texture = np.zeros(self.shape)
        for (kx, ky), p, a in zip(k, phase, amplitude):
            texture += a * np.cos(kx * x + ky * y + p)
        return mean * np.clip(1 + texture, 0, None)

    def object(self, i: int) -> np.ndarray:
        """Object function of frame ``i`` (grains, adatoms, precursor film, graphene), dimensionless per pixel."""
        margin = 3.0
        sites = self.truth(i, margin, min_grain=0)
        ox, oy = self.offsets[i]
        if self._graphene is not None:
            gx, gy = self._graphene[:, 0] - ox, self._graphene[:, 1] - oy
            keep = (gx > -margin) & (gx < self.field[0] + margin) & (gy > -margin) & (gy < self.field[1] + margin)
            n = int(keep.sum())
            sites = sites + Sites(gx[keep], gy[keep], np.array(["C"] * n, dtype=object), {"C": np.ones(n)})
        obj = object_function(sites, self.shape, self.sampling, energy=self.probe.energy, gamma=self.gamma)
        return obj + self.film(i)

    def __getitem__(self, i: int) -> np.ndarray:
        if not -len(self) <= i < len(self):
            raise IndexError(f"frame {i} of a series of {len(self)}")
        i = i % len(self)
        image = linear_image(self.object(i), self.psf)
        return acquire(image, self.acquisition, np.random.default_rng([self.seed, i]))


def scan_offsets(n_frames: int, extent, field, drift=(0.25, -0.15), frame_time: float = 0.6,
                 drift_wander: float = 0.05, seed: int = 0, start=None) -> np.ndarray:
    """Specimen position [Å] of every frame's pixel (0, 0): the stage drift of :class:`SeriesAcquisition`.

    Parameters
    ----------
    n_frames : int
    extent : (float, float)
        The simulated area [Å].
    field : (float, float)
        The field of view ``(width, height)`` [Å].
    drift : (float, float)
        Stage drift velocity [Å/s].
    frame_time : float
        Time between frames [s].
    drift_wander : float
        Random change of the offset per frame, standard deviation [Å] (seeded by ``seed``).
    seed : int
    start : (float, float), optional
        Offset of the first frame; default: the drifting field centred in the area.

    Returns
    -------
    (n_frames, 2) ndarray

    Raises
    ------
    ValueError
        The field and its drift leave the simulated area.
    """
    rng = np.random.default_rng([seed, 10**6])
    if start is None:
        start = ((extent[0] - field[0]) / 2 - 0.5 * n_frames * drift[0] * frame_time,
                 (extent[1] - field[1]) / 2 - 0.5 * n_frames * drift[1] * frame_time)
    steps = np.asarray(drift, float) * frame_time + rng.normal(0, drift_wander, (n_frames, 2))
    steps[0] = 0
    offsets = np.asarray(start, float) + np.cumsum(steps, 0)
    low, high = offsets.min(0), offsets.max(0) + field
    if np.any(low < -1.0) or np.any(high > np.asarray(extent) + 1.0):
        raise ValueError(f"the field of view ({field[0]:.0f} × {field[1]:.0f} Å) and its drift over "
                         f"{n_frames} frames ({np.ptp(offsets, 0).round(1).tolist()} Å) do not fit in the "
                         f"simulated area ({extent[0]:.0f} × {extent[1]:.0f} Å): use a smaller frame, less drift, "
                         "or simulate_growth(..., extent=...) with a larger area")
    return offsets


def _agreed_dose(frames, dose, offsets, field) -> float:
    """The dose per frame: the twin's when it ran under a beam (which must be this acquisition's), else ``dose``."""
    irradiated = [f for f in frames if f.dose > 0]
    if not irradiated:
        return SERIES_DOSE if dose is None else float(dose)
    twin_dose = irradiated[0].dose
    if dose is not None and not np.isclose(dose, twin_dose, rtol=1e-9):
        raise ValueError(f"the twin was irradiated at {twin_dose:.3g} e⁻/Å² per frame, the acquisition asks for "
                         f"{dose:.3g}: one dose drives both (use record_series)")
    scanned = np.array([f.scan[:2] for f in frames])
    if len(irradiated) != len(frames) or not np.allclose(scanned, offsets, atol=1e-9) \
            or not np.allclose([f.scan[2:] for f in frames], field):
        raise ValueError("the twin was irradiated over other fields than this acquisition scans (another frame "
                         "size, drift or seed): build both with record_series")
    return float(twin_dose)


def record_series(n_frames: int, probe: Probe, *, shape=(512, 512), sampling: float = SERIES_SAMPLING,
                  dose: float = SERIES_DOSE, dwell_time: float = SERIES_DWELL_TIME, frame_time: float = 0.6,
                  drift=(0.25, -0.15), drift_wander: float = 0.05, jitter: float = 0.03, seed: int = 0,
                  twin_seed=None, extent=(120.0, 100.0), film_units: int = 1400,
                  parameters: KineticParameters | None = None, cross_section: float | None = None,
                  gamma: float = 1.7, progress: bool = False) -> SeriesAcquisition:
    """Run the growth twin under the beam that records it, and the acquisition of its frames.

    The scanned field of every frame (size and drift) is fixed first; the twin then runs with
    that dose over those fields (:class:`.beam.BeamExposure`: S displaced by knock-on), and
    :class:`SeriesAcquisition` records the same frames at the same dose.

    Parameters
    ----------
    n_frames : int
    probe : Probe
    shape, sampling, dose, dwell_time, frame_time, drift, drift_wander, jitter, seed, gamma
        As for :class:`SeriesAcquisition` (``dose`` [e⁻/Å²] per frame, ``sampling`` [Å], ``frame_time`` [s]).
    twin_seed : int or Generator, optional
        Seed of the twin (:func:`.twin.simulate_growth`).
    extent, film_units, parameters
        As for :func:`.twin.simulate_growth` (``extent`` [Å]).
    cross_section : float, optional
        Displacement cross-section of S [barn]; default :data:`.beam.S_DISPLACEMENT_CROSS_SECTION`, which is for
        80 kV: another beam energy needs its own value.
    progress : bool
        Show the twin's progress bar.

    Returns
    -------
    SeriesAcquisition
        Its ``frames`` are the twin's (each with its ``dose`` and ``scan``).
    """
    if cross_section is None:
        if not np.isclose(probe.energy, S_CROSS_SECTION_ENERGY):
            raise ValueError(f"the default S displacement cross-section is for {S_CROSS_SECTION_ENERGY / 1e3:.0f} kV; "
                             f"give cross_section (barn) for {probe.energy / 1e3:.0f} kV")
        cross_section = S_DISPLACEMENT_CROSS_SECTION
    ny, nx = tuple(shape)
    field = (nx * sampling, ny * sampling)
    offsets = scan_offsets(n_frames, extent, field, drift, frame_time, drift_wander, seed)
    beam = BeamExposure(float(dose), field, offsets, float(cross_section))
    frames = simulate_growth(n_frames, frame_time, extent, film_units, parameters, twin_seed, progress, beam=beam)
    return SeriesAcquisition(frames, probe, shape, sampling, dose, dwell_time, drift, drift_wander, jitter, frame_time,
                             seed=seed, gamma=gamma)


def _film_waves(rng, n: int = 24, correlation: float = 5.0):
    """Random plane waves of a smooth amorphous texture (wavelengths around ``2π·correlation`` [Å])."""
    k = rng.normal(0, 1 / correlation, (n, 2))
    return k, rng.uniform(0, 2 * np.pi, n), np.full(n, 0.5 / np.sqrt(n / 2))


def _graphene_columns(g: np.ndarray, extent) -> np.ndarray:
    """C columns of the graphene whose hollow sites are the lattice ``g`` (columns: lattice vectors [Å])."""
    w, h = extent
    reach = 2 * max(w, h) / GRAPHENE_A + 4
    n = int(reach)
    i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    cells = np.stack([i.ravel(), j.ravel()], 1).astype(float)
    atoms = np.concatenate([(cells + 1 / 3) @ g.T, (cells + 2 / 3) @ g.T])
    keep = (atoms[:, 0] > -5) & (atoms[:, 0] < w + 5) & (atoms[:, 1] > -5) & (atoms[:, 1] < h + 5)
    return atoms[keep]
