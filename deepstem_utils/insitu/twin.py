"""A kinetic digital twin of MoS₂ forming on graphene from (NH₄)₂MoS₄ at 500 °C.

The paper's in situ series are not public. This module grows MoS₂ the way the
paper describes it (precursor → clusters → grains that meet and merge, with Mo
adatoms around them) with a kinetic Monte Carlo model whose rates are Arrhenius
laws at the experiment's temperature, and images every configuration through
the acquisition model of chapter 1 (dose, drift, scan jitter, the measured
probe of chapter 2).

The model
---------
1. **Precursor.** (NH₄)₂MoS₄ loses NH₃ and H₂S and becomes amorphous MoS₃ well
   below 500 °C; at 500 °C MoS₃ → MoS₂ + S. The precursor is a thin film on the
   graphene; each unit releases one MoS₂ unit (a Mo carrying its S) at a random
   place at the rate :math:`k_\\mathrm{rel} = \\nu e^{-E_\\mathrm{rel}/k_BT}`. NH₃,
   H₂S and the released S leave (not tracked). The film is drawn as a smooth
   amorphous background holding the scattering of its remaining atoms.
2. **Mobile Mo** diffuses on graphene far faster than a frame is scanned (it is
   not seen): it random-walks over the hollow sites of graphene (2.46 Å steps)
   until it meets a *sink*: a grain edge (it attaches at the free edge site nearby
   with the most Mo neighbours: fast edge relaxation), a free *trap* (a defect or
   residue site of the graphene: it is caught and becomes a visible **Mo
   adatom**) or an occupied trap (the two Mo nucleate a new grain with a random
   orientation: heterogeneous nucleation at defects).
3. **Trapped adatoms** escape at :math:`\\nu e^{-E_\\mathrm{trap}/k_BT}` and walk on.
4. **Detachment.** An edge Mo with *n* Mo neighbours leaves its grain at
   :math:`\\nu e^{-(E_\\mathrm{det} + n E_b)/k_BT}` and walks on.
5. **Merging.** Two grains that touch merge: the smaller one turns by the
   smallest angle that puts its Mo onto the larger one's Mo lattice (grain
   rotation; the Mo sublattice has 60° symmetry) and its atoms are re-knitted
   onto that lattice. When that angle maps the MoS₂ lattice onto its 60°-rotated
   (mirror) variant, the smaller grain keeps inverted S triads: a mirror-twin
   boundary (its 4|4P core is not modelled). A grain that reaches a trapped
   adatom absorbs it (attachment).
6. **Sulfur.** The electrons that record a frame displace the S atoms in its scanned
   field, each with probability :math:`\\sigma_d D` at the dose :math:`D` per frame
   (knock-on, :mod:`.beam`; given a :class:`.beam.BeamExposure`, so that the twin and the
   acquisition share one dose). Every S position of a grain also empties at
   :math:`k_\\mathrm{loss}` (thermal loss) and refills at :math:`k_\\mathrm{fill}` from the S
   that the precursor's decomposition releases, an exact two-state Markov update per
   frame. That this S reaches the grains' vacancies, and at these rates, is a model
   assumption, not a fact about the column.

Steps 1, 3 and 4 are simulated event by event (rejection-free,
Bortz-Kalos-Lebowitz); the walk of step 2 is resolved at once, as it is fast on
the time scale of the events; step 6 is exact for independent sites and draws its own random numbers, so the Mo history of a
seed is the same at every dose. Every parameter is in :class:`KineticParameters` or
:mod:`.beam` with its source or the word *assumption*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree
from tqdm.auto import tqdm

from ..core.constants import GRAPHENE_A
from ..physics.specimen import Sites
from .beam import BeamExposure, update_sulfur
from .kinetics import LATTICE_BASIS, NEIGHBOURS, Cluster, KineticParameters, neighbour_keys

__all__ = ["TwinFrame", "GrowthTwin", "simulate_growth"]


@dataclass
class TwinFrame:
    """The twin's state at the start of one frame: ground truth in specimen coordinates.

    Attributes
    ----------
    index : int
        Frame number.
    time : float
        Time since the start [s].
    sites : Sites
        Mo (``"Mo"``), S columns (``"S2"``, ``"S1"``, ``"vacancy"``) and adatoms (``"Mo_adatom"``).
    cluster : (n,) ndarray of int
        Grain id of every site (-1 for adatoms).
    adatom_id : (n,) ndarray of int
        Identity of every trapped adatom (-1 for other sites), kept while it stays in its trap.
    twin_variant : (n,) ndarray of int
        S-triad variant of every Mo (1 = mirror-twin domain; -1 for other sites).
    film : int
        Precursor units left in the film (over the whole simulated area).
    events : list of dict
        Releases, trappings, escapes, nucleations, attachments, detachments and mergers since the previous frame,
        and one ``"sulfur"`` record of the previous frame's S counts (:func:`.beam.update_sulfur`).
    graphene : (2, 2) ndarray
        Lattice vectors of the graphene hollow sites (columns) [Å].
    extent : (float, float)
        The simulated area [Å].
    dose : float
        The dose this frame is recorded with [e⁻/Å²]; 0 when the twin ran without a beam.
    scan : (float, float, float, float) or None
        The field this frame scans, ``(x0, y0, width, height)`` [Å] in specimen coordinates (None without a beam).
    """

    index: int
    time: float
    sites: Sites
    cluster: np.ndarray
    adatom_id: np.ndarray
    twin_variant: np.ndarray
    film: int
    events: list
    graphene: np.ndarray = None
    extent: tuple = (0.0, 0.0)
    dose: float = 0.0
    scan: tuple | None = None

    @property
    def n_mo(self) -> int:
        """Visible Mo atoms (in grains or trapped adatoms)."""
        return int(np.sum(np.isin(self.sites.species, ("Mo", "Mo_adatom"))))


class GrowthTwin:
    """The kinetic Monte Carlo model. Use :func:`simulate_growth` to run it.

    Parameters
    ----------
    extent : (float, float)
        Simulated area ``(width, height)`` [Å], periodic for the mobile Mo.
    film_units : int
        Precursor units in the film (each releases one Mo).
    parameters : KineticParameters, optional
    rng : Generator or int, optional
    graphene_rotation : float
        Orientation of the graphene lattice [rad].
    beam : BeamExposure, optional
        The dose and scanned field of every frame (S displaced by the beam); without it, none.
    """

    def __init__(self, extent, film_units: int, parameters: KineticParameters | None = None, rng=None,
                 graphene_rotation: float = 0.0, beam: BeamExposure | None = None):
        self.p = parameters or KineticParameters()
        self.rng = np.random.default_rng(rng)
        self.s_rng = np.random.default_rng(self.rng.integers(2**63))  # S draws apart: one Mo history at any dose
        self.beam = beam
        self.extent = np.array([float(e) for e in extent])
        self.film_units = self.film_initial = int(film_units)
        c, s = math.cos(graphene_rotation), math.sin(graphene_rotation)
        self._g = np.array([[c, -s], [s, c]]) @ LATTICE_BASIS * GRAPHENE_A
        n_traps = max(1, self.rng.poisson(self.p.trap_density * self.extent.prod()))
        self.traps = self.rng.random((n_traps, 2)) * self.extent
        self.strong = self.rng.random(n_traps) < self.p.nucleation_fraction
        self.strong[self.rng.integers(n_traps)] = True  # at least one nucleation site
        self.trapped: dict[int, int] = {}  # trap index -> adatom id (a new id for every stay)
        self.clusters: dict[int, Cluster] = {}
        self.time = 0.0
        self._next_adatom = 0
        self._next_cluster = 0
        self.events: list[dict] = []
        self.capture = 1.12 * self.p.mo_lattice  # a Mo arriving this close to another Mo bonds to it [Å]
        self.trap_radius = 1.5  # a mobile Mo passing this close to a free trap is caught [Å]

    def _wrap(self, xy) -> np.ndarray:
        return np.mod(xy, self.extent)

    def _image_near(self, xy, target) -> np.ndarray:
        """The periodic image of ``xy`` nearest ``target``."""
        d = np.asarray(xy, float) - target
        return target + d - self.extent * np.round(d / self.extent)

    # ------------------------------------------------------------- the fast walk of mobile Mo
    def _sinks(self):
        """Where a mobile Mo stops: grain Mo (kind 0), occupied strong traps (1), free traps (2)."""
        points, kinds, refs = [], [], []
        for cluster in self.clusters.values():
            pos = self._wrap(cluster.mo_positions())
            points.append(pos)
            kinds += [0] * len(pos)
            refs += [cluster.id] * len(pos)
        covered = np.zeros(len(self.traps), bool)
        if points:  # traps under a grain are no longer on the graphene surface
            grain = np.concatenate(points)
            d, _ = cKDTree(grain * (1 - 1e-12), boxsize=self.extent).query(self.traps)
            covered = d < self.capture
        for t, xy in enumerate(self.traps):
            if covered[t] or (t in self.trapped and not self.strong[t]):
                continue
            points.append(xy[None])
            kinds.append(1 if t in self.trapped else 2)
            refs.append(t)
        return np.concatenate(points), np.array(kinds), np.array(refs)

    def _walk(self, xy, exclude_trap: int = -1, max_steps: int = 10_000_000):
        """Random-walk a mobile Mo from ``xy`` until a sink takes it."""
        points, kinds, refs = self._sinks()
        tree = cKDTree(self._wrap(points) * (1 - 1e-12), boxsize=self.extent)
        radius = np.where(kinds == 2, self.trap_radius, self.capture)
        position = self._wrap(np.asarray(xy, float))
        directions = self._g @ np.array(NEIGHBOURS, float).T  # (2, 6) steps [Å]
        done, chunk = 0, 512
        while done < max_steps:
            steps = directions[:, self.rng.integers(0, 6, chunk)].T
            path = self._wrap(position + np.cumsum(steps, 0))
            dist, idx = tree.query(path, distance_upper_bound=self.capture)
            hit = np.isfinite(dist)
            hit[hit] = dist[hit] < radius[idx[hit]]
            if exclude_trap >= 0:
                hit[hit] &= ~((kinds[idx[hit]] != 0) & (refs[idx[hit]] == exclude_trap))
            if np.any(hit):
                k = int(np.argmax(hit))
                self._arrive(path[k], int(kinds[idx[k]]), int(refs[idx[k]]))
                return
            position = path[-1]
            done += chunk
        raise RuntimeError("a mobile Mo found no sink")

    def _arrive(self, xy, kind: int, ref: int):
        if kind == 0:  # a grain edge
            self._attach(xy, self.clusters[ref])
        elif kind == 2:  # a free trap: a visible adatom
            aid = self._next_adatom
            self._next_adatom += 1
            self.trapped[ref] = aid
            self.events.append({"time": self.time, "kind": "trap", "adatom": aid, "x": self.traps[ref][0],
                                "y": self.traps[ref][1]})
        else:  # an occupied strong trap: the two Mo nucleate a grain there
            self._nucleate(ref, xy)

    # ------------------------------------------------------------- events
    def _attach(self, xy, cluster: Cluster, adatom: int | None = None):
        centre = cluster.mo_positions().mean(0)
        xy = self._image_near(xy, centre)
        edge = cluster.free_edge()
        d = np.hypot(*(cluster.position(edge) - xy).T)
        near = [k for k, dist in zip(edge, d) if dist <= d.min() + 0.6 * cluster.a]
        key = max(near, key=lambda k: (cluster.coordination(k), -d[edge.index(k)]))
        variant = cluster.mo[next(k for k in neighbour_keys(key) if k in cluster.mo)]
        cluster.add_mo(key, variant)
        event = {"time": self.time, "kind": "attach", "cluster": cluster.id, "x": xy[0], "y": xy[1]}
        if adatom is not None:
            event["adatom"] = adatom
        self.events.append(event)
        self._check_contact(cluster)

    def _nucleate(self, trap: int, xy):
        aid = self.trapped.pop(trap)
        site = self.traps[trap]
        cluster = Cluster(self._next_cluster, site.copy(), float(self.rng.uniform(0, 2 * math.pi / 3)),
                          self.p.mo_lattice)
        self._next_cluster += 1
        cluster.add_mo((0, 0))
        edge = cluster.free_edge()
        d = np.hypot(*(cluster.position(edge) - self._image_near(xy, site)).T)
        cluster.add_mo(edge[int(np.argmin(d))])
        self.clusters[cluster.id] = cluster
        self.events.append({"time": self.time, "kind": "nucleation", "cluster": cluster.id, "adatom": aid,
                            "x": site[0], "y": site[1]})
        self._check_contact(cluster)

    def _check_contact(self, cluster: Cluster):
        """Merge ``cluster`` with any grain it touches; absorb a trapped adatom it reaches."""
        merged = True
        while merged:
            merged = False
            mine = cluster.mo_positions()
            for other in list(self.clusters.values()):
                if other.id == cluster.id:
                    continue
                theirs = other.mo_positions()
                d = np.hypot(mine[:, None, 0] - theirs[None, :, 0], mine[:, None, 1] - theirs[None, :, 1])
                if d.min() < self.capture:
                    cluster = self._merge(cluster, other)
                    merged = True
                    break
        mine = cluster.mo_positions()
        for trap in list(self.trapped):
            xy = self._image_near(self.traps[trap], mine.mean(0))
            if np.hypot(*(mine - xy).T).min() < self.capture:
                aid = self.trapped.pop(trap)
                self._attach(xy, cluster, adatom=aid)  # checks contact again
                return

    def _merge(self, one: Cluster, two: Cluster) -> Cluster:
        big, small = (one, two) if len(one.mo) >= len(two.mo) else (two, one)
        d = math.degrees(small.theta - big.theta) % 120.0
        if d < 30:
            turn, flip = -d, 0
        elif d > 90:
            turn, flip = 120.0 - d, 0
        else:
            turn, flip = 60.0 - d, 1
        pos = small.mo_positions()
        centre = pos.mean(0)
        c, s = math.cos(math.radians(turn)), math.sin(math.radians(turn))
        rot = np.array([[c, -s], [s, c]])
        pos = (pos - centre) @ rot.T + centre
        s_pos = (small.position(small.s.keys(), thirds=True) - centre) @ rot.T + centre
        before = set(big.s)
        for xy, variant in zip(pos, small.mo.values()):
            key = big.site_of(xy)
            if key in big.mo:  # the site is taken: the atom goes to the nearest free edge site
                edge = big.free_edge()
                key = edge[int(np.argmin(np.hypot(*(big.position(edge) - xy).T)))]
            big.add_mo(key, variant ^ flip)
        inv = np.linalg.inv(big._matrix())
        for xy, n in zip(s_pos, small.s.values()):  # the small grain's S columns keep their S
            f = inv @ (xy - big.origin) * 3
            key = (int(round(f[0])), int(round(f[1])))
            if key in big.s and key not in before:
                big.s[key] = n
        del self.clusters[small.id]
        centre = big.mo_positions().mean(0)
        self.events.append({"time": self.time, "kind": "merge", "cluster": big.id, "absorbed": small.id,
                            "turn_deg": turn, "mirror_twin": bool(flip), "x": centre[0], "y": centre[1]})
        return big

    def _detach(self, cluster: Cluster, key):
        xy = cluster.position([key])[0]
        cluster.remove_mo(key)
        self.events.append({"time": self.time, "kind": "detach", "cluster": cluster.id, "x": xy[0], "y": xy[1]})
        if not cluster.mo:
            del self.clusters[cluster.id]
        self._walk(xy)

    def _escape(self, trap: int):
        aid = self.trapped.pop(trap)
        self.events.append({"time": self.time, "kind": "escape", "adatom": aid, "x": self.traps[trap][0],
                            "y": self.traps[trap][1]})
        self._walk(self.traps[trap], exclude_trap=trap)

    def _release(self):
        self.film_units -= 1
        xy = self.rng.random(2) * self.extent
        self.events.append({"time": self.time, "kind": "release", "x": xy[0], "y": xy[1]})
        self._walk(xy)

    # ------------------------------------------------------------- time
    def _detach_rates(self):
        keys, rates = [], []
        p = self.p
        for cluster in self.clusters.values():
            if len(cluster.mo) < 2:
                continue
            for key in cluster.mo:
                n = cluster.coordination(key)
                if n < 6:
                    keys.append((cluster.id, key))
                    rates.append(p.rate(p.detach_barrier + n * p.bond_energy))
        return keys, np.asarray(rates, float)

    def run(self, duration: float, frame: int = 0):
        """Advance the Mo kinetics by ``duration`` [s] (event by event), then the S occupation exactly, with the
        beam of frame ``frame`` (its dose over its scanned field)."""
        end = self.time + duration
        while True:
            keys, detach = self._detach_rates()
            r_rel = self.p.release_rate * self.film_units
            r_esc = self.p.escape_rate * len(self.trapped)
            total = r_rel + r_esc + detach.sum()
            step = self.rng.exponential(1 / total) if total > 0 else np.inf
            if self.time + step > end:
                self.time = end
                break
            self.time += step
            x = self.rng.random() * total
            if x < r_rel:
                self._release()
            elif x < r_rel + r_esc:
                traps = list(self.trapped)
                self._escape(traps[min(int((x - r_rel) / self.p.escape_rate), len(traps) - 1)])
            else:
                k = int(np.searchsorted(np.cumsum(detach), x - r_rel - r_esc, side="right"))
                cid, key = keys[min(k, len(keys) - 1)]
                self._detach(self.clusters[cid], key)
        tally = update_sulfur(self.clusters.values(), duration, self.p, self.s_rng, self.beam, frame)
        self.events.append({"time": self.time, "kind": "sulfur", "frame": frame, "in_field": self.beam is not None,
                            **tally})

    def snapshot(self, index: int) -> TwinFrame:
        """The ground truth now, in specimen coordinates."""
        xs, ys, species, n_s, n_mo, cl, aid, var = [], [], [], [], [], [], [], []
        names = {2: "S2", 1: "S1", 0: "vacancy"}

        def add(pos, labels, mo, s, cluster, adatom, variant):
            xs.extend(pos[:, 0])
            ys.extend(pos[:, 1])
            species.extend(labels)
            n_mo.extend(mo)
            n_s.extend(s)
            cl.extend(cluster)
            aid.extend(adatom)
            var.extend(variant)

        for cluster in self.clusters.values():
            pos = cluster.mo_positions()
            n = len(pos)
            add(pos, ["Mo"] * n, [1] * n, [0] * n, [cluster.id] * n, [-1] * n, list(cluster.mo.values()))
            counts = list(cluster.s.values())
            n = len(counts)
            add(cluster.position(cluster.s.keys(), thirds=True), [names[c] for c in counts], [0] * n, counts,
                [cluster.id] * n, [-1] * n, [-1] * n)
        if self.trapped:
            traps = list(self.trapped)
            n = len(traps)
            add(self.traps[traps], ["Mo_adatom"] * n, [1] * n, [0] * n, [-1] * n,
                [self.trapped[t] for t in traps], [-1] * n)
        sites = Sites(np.array(xs, float), np.array(ys, float), np.array(species, dtype=object),
                               {"Mo": np.array(n_mo, float), "S": np.array(n_s, float)})
        events, self.events = self.events, []
        scan = None if self.beam is None else (*map(float, self.beam.offsets[index]), *map(float, self.beam.field))
        return TwinFrame(index, self.time, sites, np.array(cl, int), np.array(aid, int), np.array(var, int),
                         self.film_units, events, self._g, tuple(self.extent),
                         0.0 if self.beam is None else float(self.beam.dose), scan)


def simulate_growth(n_frames: int, frame_time: float = 0.6, extent=(120.0, 100.0), film_units: int = 1400,
                    parameters: KineticParameters | None = None, rng=None, progress: bool = False,
                    beam: BeamExposure | None = None) -> list[TwinFrame]:
    """Run the twin and record its state at the start of every frame.

    Parameters
    ----------
    n_frames : int
        Number of frames.
    frame_time : float
        Time from one frame to the next [s] (scan plus fly-back and read-out).
    extent : (float, float)
        Simulated area [Å] (larger than the field of view, so that drift stays inside).
    film_units : int
        MoS₃ units in the precursor film over the simulated area (assumption: 1400
        over 120 × 100 Å², enough MoS₂ to cover it: the grains must meet).
    parameters : KineticParameters, optional
    rng : Generator or int, optional
    progress : bool
        Show a progress bar.
    beam : BeamExposure, optional
        The dose and scanned field of every frame, so that the beam displaces S where and as much as the
        acquisition records (:func:`.acquisition.record_series` builds both); without it, no beam damage.

    Returns
    -------
    list of TwinFrame

    Examples
    --------
    >>> frames = simulate_growth(3, extent=(60.0, 60.0), film_units=200, rng=0)
    >>> len(frames), round(frames[-1].time, 6)
    (3, 1.2)
    """
    if n_frames < 1:
        raise ValueError("n_frames must be at least 1")
    if beam is not None and len(beam.offsets) < n_frames:
        raise ValueError(f"the beam has scanned fields for {len(beam.offsets)} frames, the twin runs {n_frames}")
    rng = np.random.default_rng(rng)
    twin = GrowthTwin(extent, film_units, parameters, rng, graphene_rotation=float(rng.uniform(0, math.pi / 3)),
                      beam=beam)
    frames = []
    for k in tqdm(range(n_frames), desc="kinetic twin", unit="frame", disable=not progress):
        frames.append(twin.snapshot(k))
        twin.run(frame_time, frame=k)
    return frames
