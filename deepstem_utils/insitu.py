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
6. **Sulfur.** Every S position of a grain empties at :math:`k_\\mathrm{loss}`
   (thermal and beam-induced loss) and refills at :math:`k_\\mathrm{fill}` from the
   S-rich atmosphere of the thermolysis: an exact two-state Markov update per frame.

Steps 1, 3 and 4 are simulated event by event (rejection-free,
Bortz-Kalos-Lebowitz); the walk of step 2 is resolved at once, as it is fast on
the time scale of the events; step 6 is exact for independent sites. Every
parameter is in :class:`KineticParameters` with its source or the word *assumption*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import specimen
from .imaging import Acquisition, acquire, linear_image
from .optics import Probe

__all__ = ["KineticParameters", "Cluster", "TwinFrame", "GrowthTwin", "simulate_growth",
           "SeriesAcquisition", "BOLTZMANN"]

#: Boltzmann constant [eV/K].
BOLTZMANN = 8.617333262e-5
_A1 = np.array([1.0, 0.0])
_A2 = np.array([0.5, math.sqrt(3) / 2])
_BASIS = np.stack([_A1, _A2], 1)  # columns: a1, a2 (unit lattice)
_NEIGHBOURS = ((1, 0), (0, 1), (-1, 1), (-1, 0), (0, -1), (1, -1))
# S columns of a Mo at (i, j), in thirds of the lattice vectors: variant 0 (up triangles), 1 (down)
_S_TRIAD = {0: ((1, 1), (-2, 1), (1, -2)), 1: ((-1, -1), (2, -1), (-1, 2))}


@dataclass
class KineticParameters:
    r"""Rates of the kinetic model. Energies [eV], frequencies [Hz], temperature [K].

    Attributes
    ----------
    temperature : float
        773.15 K: the paper's 500 °C.
    attempt_frequency : float
        1e13 Hz, a typical lattice vibration frequency (assumption, the usual choice).
    release_barrier : float
        Barrier of MoS₃ → MoS₂ + S per precursor unit (assumption: 2.22 eV, so the
        film decomposes with a time constant of about 30 s at 500 °C).
    trap_barrier : float
        Barrier for a Mo adatom to leave a trap (assumption: 2.05 eV: a trapped
        adatom stays about 2 s, a few frames, as the adatoms of the paper do).
    detach_barrier : float
        Barrier for an edge Mo with no Mo neighbour to leave a grain (assumption: 2.05 eV,
        as for a trap).
    bond_energy : float
        Energy of one Mo-Mo neighbour bond at a grain edge (assumption: 0.30 eV).
    trap_density : float
        Traps (defects, residue sites) per Å² of graphene (assumption: 1 per 300 Å²).
    nucleation_fraction : float
        Fraction of the traps strong enough to hold two Mo, where a grain can
        nucleate (assumption: 0.1); at the others a second Mo passes by.
    s_vacancy_fraction : float
        Steady-state fraction of empty S positions, :math:`k_\mathrm{loss}/(k_\mathrm{loss}+k_\mathrm{fill})`
        (assumption: 0.04).
    s_exchange_rate : float
        :math:`k_\mathrm{loss}+k_\mathrm{fill}` [1/s] (assumption: 0.1 /s).
    mo_lattice : float
        MoS₂ lattice parameter [Å] (3.16 Å).
    """

    temperature: float = 773.15
    attempt_frequency: float = 1e13
    release_barrier: float = 2.22
    trap_barrier: float = 2.05
    detach_barrier: float = 2.05
    bond_energy: float = 0.30
    trap_density: float = 1 / 300
    nucleation_fraction: float = 0.1
    s_vacancy_fraction: float = 0.04
    s_exchange_rate: float = 0.1
    mo_lattice: float = specimen.MOS2_A

    def rate(self, barrier: float) -> float:
        r"""Arrhenius rate :math:`\nu e^{-E/k_BT}` [1/s] of a barrier [eV]."""
        return self.attempt_frequency * math.exp(-barrier / (BOLTZMANN * self.temperature))

    @property
    def release_rate(self) -> float:
        """MoS₂ units released per precursor unit per second."""
        return self.rate(self.release_barrier)

    @property
    def escape_rate(self) -> float:
        """Escapes of one trapped adatom per second."""
        return self.rate(self.trap_barrier)


@dataclass
class Cluster:
    """A MoS₂ grain: Mo on its own lattice (origin, orientation) and its S columns.

    Attributes
    ----------
    id : int
        Identifier (kept by the larger grain of a merger).
    origin : (2,) ndarray
        Position of lattice site (0, 0) [Å].
    theta : float
        Orientation of the first lattice vector [rad].
    mo : dict[(int, int), int]
        Occupied Mo sites → S-triad variant (0, or 1 for the mirror-twin variant).
    s : dict[(int, int), int]
        S columns (in thirds of the lattice vectors) → number of S atoms (0-2).
    """

    id: int
    origin: np.ndarray
    theta: float
    a: float
    mo: dict = field(default_factory=dict)
    s: dict = field(default_factory=dict)

    def _matrix(self) -> np.ndarray:
        c, s = math.cos(self.theta), math.sin(self.theta)
        return np.array([[c, -s], [s, c]]) @ _BASIS * self.a

    def position(self, keys, thirds: bool = False) -> np.ndarray:
        """Positions [Å] of lattice sites (or S columns with ``thirds``), shape (n, 2)."""
        k = np.asarray(list(keys), float).reshape(-1, 2)
        if thirds:
            k = k / 3
        return self.origin + k @ self._matrix().T

    def site_of(self, xy) -> tuple[int, int]:
        """Nearest lattice site to a position [Å]."""
        f = np.linalg.solve(self._matrix(), np.asarray(xy, float) - self.origin)
        return int(round(f[0])), int(round(f[1]))

    def mo_positions(self) -> np.ndarray:
        return self.position(self.mo.keys())

    def free_edge(self) -> list[tuple[int, int]]:
        """Empty lattice sites next to the cluster."""
        out = set()
        for (i, j) in self.mo:
            for di, dj in _NEIGHBOURS:
                key = (i + di, j + dj)
                if key not in self.mo:
                    out.add(key)
        return sorted(out)

    def coordination(self, key) -> int:
        """Number of occupied Mo neighbours of a lattice site."""
        i, j = key
        return sum((i + di, j + dj) in self.mo for di, dj in _NEIGHBOURS)

    def add_mo(self, key, variant: int = 0, s_count: int = 2):
        """Occupy a Mo site; its new S columns start with ``s_count`` atoms."""
        self.mo[key] = variant
        for t in _triad(key, variant):
            self.s.setdefault(t, s_count)

    def remove_mo(self, key):
        """Empty a Mo site; S columns with no Mo left go with it."""
        variant = self.mo.pop(key)
        keep = {t for k, v in self.mo.items() for t in _triad(k, v)}
        for t in _triad(key, variant):
            if t not in keep:
                self.s.pop(t, None)


def _triad(key, variant):
    i, j = key
    return [(3 * i + di, 3 * j + dj) for di, dj in _S_TRIAD[variant]]


@dataclass
class TwinFrame:
    """The twin's state at the start of one frame: ground truth in specimen coordinates.

    Attributes
    ----------
    index : int
        Frame number.
    time : float
        Time since the start [s].
    sites : specimen.Sites
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
        Releases, trappings, escapes, nucleations, attachments, detachments and mergers since the previous frame.
    graphene : (2, 2) ndarray
        Lattice vectors of the graphene hollow sites (columns) [Å].
    extent : (float, float)
        The simulated area [Å].
    """

    index: int
    time: float
    sites: specimen.Sites
    cluster: np.ndarray
    adatom_id: np.ndarray
    twin_variant: np.ndarray
    film: int
    events: list
    graphene: np.ndarray = None
    extent: tuple = (0.0, 0.0)

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
    """

    def __init__(self, extent, film_units: int, parameters: KineticParameters | None = None, rng=None,
                 graphene_rotation: float = 0.0):
        self.p = parameters or KineticParameters()
        self.rng = np.random.default_rng(rng)
        self.extent = np.array([float(e) for e in extent])
        self.film_units = self.film_initial = int(film_units)
        c, s = math.cos(graphene_rotation), math.sin(graphene_rotation)
        self._g = np.array([[c, -s], [s, c]]) @ _BASIS * specimen.GRAPHENE_A
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
        from scipy.spatial import cKDTree

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
        from scipy.spatial import cKDTree

        points, kinds, refs = self._sinks()
        tree = cKDTree(self._wrap(points) * (1 - 1e-12), boxsize=self.extent)
        radius = np.where(kinds == 2, self.trap_radius, self.capture)
        position = self._wrap(np.asarray(xy, float))
        directions = self._g @ np.array(_NEIGHBOURS, float).T  # (2, 6) steps [Å]
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
        variant = cluster.mo[next(k for k in _neighbour_keys(key) if k in cluster.mo)]
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

    def run(self, duration: float):
        """Advance the Mo kinetics by ``duration`` [s] (event by event), then the S occupation exactly."""
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
        self._update_sulfur(duration)

    def _update_sulfur(self, duration: float):
        f = self.p.s_vacancy_fraction
        mix = 1 - math.exp(-self.p.s_exchange_rate * duration)
        lose, gain = f * mix, (1 - f) * mix
        for cluster in self.clusters.values():
            for key, n in cluster.s.items():
                cluster.s[key] = n - self.rng.binomial(n, lose) + self.rng.binomial(2 - n, gain)

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
        sites = specimen.Sites(np.array(xs, float), np.array(ys, float), np.array(species, dtype=object),
                               {"Mo": np.array(n_mo, float), "S": np.array(n_s, float)})
        events, self.events = self.events, []
        return TwinFrame(index, self.time, sites, np.array(cl, int), np.array(aid, int), np.array(var, int),
                         self.film_units, events, self._g, tuple(self.extent))


def _neighbour_keys(key):
    i, j = key
    return [(i + di, j + dj) for di, dj in _NEIGHBOURS]


def simulate_growth(n_frames: int, frame_time: float = 0.6, extent=(120.0, 100.0), film_units: int = 1400,
                    parameters: KineticParameters | None = None, rng=None, progress: bool = False) -> list[TwinFrame]:
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

    Returns
    -------
    list of TwinFrame

    Examples
    --------
    >>> frames = simulate_growth(3, extent=(60.0, 60.0), film_units=200, rng=0)
    >>> len(frames), round(frames[-1].time, 6)
    (3, 1.2)
    """
    from tqdm.auto import tqdm

    if n_frames < 1:
        raise ValueError("n_frames must be at least 1")
    rng = np.random.default_rng(rng)
    twin = GrowthTwin(extent, film_units, parameters, rng, graphene_rotation=float(rng.uniform(0, math.pi / 3)))
    frames = []
    for k in tqdm(range(n_frames), desc="kinetic twin", unit="frame", disable=not progress):
        frames.append(twin.snapshot(k))
        twin.run(frame_time)
    return frames


#: Chapter 6's acquisition settings per frame (the defaults of :class:`SeriesAcquisition`): dose [e⁻/Å²],
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
        The probe (chapter 6 uses the probe measured in chapter 2).
    shape : (int, int)
        ``(ny, nx)`` of every frame [px].
    sampling : float
        Pixel size [Å].
    dose : float
        Dose per frame [e⁻/Å²].
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
                 dose: float = SERIES_DOSE, dwell_time: float = SERIES_DWELL_TIME, drift=(0.25, -0.15), drift_wander: float = 0.05, jitter: float = 0.03,
                 frame_time: float = 0.6, start=None, seed: int = 0, gamma: float = 1.7):
        self.frames, self.probe = frames, probe
        self.shape, self.sampling, self.dose = tuple(shape), float(sampling), float(dose)
        self.acquisition = Acquisition(dose=dose, sampling=sampling, dwell_time=dwell_time, jitter=jitter,
                                       drift=tuple(drift))
        self.gamma, self.seed = gamma, seed
        ny, nx = self.shape
        self.field = (nx * sampling, ny * sampling)
        rng = np.random.default_rng([seed, 10**6])
        extent = frames[0].extent
        if start is None:
            start = ((extent[0] - self.field[0]) / 2 - 0.5 * len(frames) * drift[0] * frame_time,
                     (extent[1] - self.field[1]) / 2 - 0.5 * len(frames) * drift[1] * frame_time)
        steps = np.asarray(drift, float) * frame_time + rng.normal(0, drift_wander, (len(frames), 2))
        steps[0] = 0
        #: specimen position of every frame's pixel (0, 0) [Å], shape (n, 2)
        self.offsets = np.asarray(start, float) + np.cumsum(steps, 0)
        low, high = self.offsets.min(0), self.offsets.max(0) + self.field
        if np.any(low < -1.0) or np.any(high > np.asarray(extent) + 1.0):
            raise ValueError(f"the field of view ({self.field[0]:.0f} × {self.field[1]:.0f} Å) and its drift over "
                             f"{len(frames)} frames ({np.ptp(self.offsets, 0).round(1).tolist()} Å) do not fit in the "
                             f"simulated area ({extent[0]:.0f} × {extent[1]:.0f} Å): use a smaller frame, less drift, "
                             "or simulate_growth(..., extent=...) with a larger area")
        psf_size = 64
        while psf_size * sampling < 8.0:
            psf_size *= 2
        self.psf = probe.intensity((psf_size, psf_size), sampling)
        self._film_waves = _film_waves(np.random.default_rng([seed, 10**6 + 1]))
        g = frames[0].graphene
        self._graphene = _graphene_columns(g, extent) if g is not None else None

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

    def truth(self, i: int, margin: float = 0.0, min_grain: int = 4) -> specimen.Sites:
        """Ground truth of frame ``i`` in frame coordinates [Å] (sites inside the field plus ``margin``).

        A group of fewer than ``min_grain`` Mo has no lattice yet: its Mo count as
        ``"Mo_adatom"`` and its S columns are left out.
        """
        x, y, species, keep = self._keep(i, margin, min_grain)
        counts = self.frames[i].sites.counts
        return specimen.Sites(x[keep], y[keep], species[keep], {e: c[keep] for e, c in counts.items()})

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

    def truth_events(self) -> "pd.DataFrame":
        """The twin's nucleations, mergers and attachments of trapped adatoms, with frame-0 positions [Å]
        (``in_field``: the event happened inside that frame's field of view)."""
        import pandas as pd

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

    def score(self, atoms: "pd.DataFrame", radius: float = 0.7) -> "pd.DataFrame":
        """Score the sites found in every frame against the twin's ground truth.

        Parameters
        ----------
        atoms : DataFrame
            Sites of all frames (``frame``, ``x``, ``y`` in frame coordinates [Å], ``species``), e.g.
            :func:`series.load_atoms`.
        radius : float
            Match radius [Å].

        Returns
        -------
        DataFrame
            Per frame: ``s_accuracy`` (balanced over S₂/S₁/vacancy), ``mo_rmse`` [pm], F1 of ``Mo``,
            ``S2``, ``S1`` and ``Mo_adatom``, and the true numbers of Mo, S₁ and vacancies in the field.
        """
        import pandas as pd

        from .metrics import score_sites

        rows = []
        for i in range(len(self)):
            truth = self.truth(i)
            result = score_sites(atoms[atoms["frame"] == i], truth, extent=self.field, radius=radius)
            f1 = result["per_species"]["F1"]
            rows.append({"frame": i, "time_s": self.frames[i].time, "s_accuracy": result["s_site_accuracy"],
                         "mo_rmse": result["mo_rmse"], "F1_Mo": f1["Mo"], "F1_S2": f1["S2"], "F1_S1": f1["S1"],
                         "F1_adatom": f1["Mo_adatom"], "true_Mo": int(np.sum(truth.species == "Mo")),
                         "true_S1": int(np.sum(truth.species == "S1")),
                         "true_vacancy": int(np.sum(truth.species == "vacancy")),
                         "true_adatoms": int(np.sum(truth.species == "Mo_adatom"))})
        return pd.DataFrame(rows)

    def film(self, i: int) -> np.ndarray:
        """The precursor film of frame ``i`` as a smooth object background (dimensionless per pixel).

        The film holds its atoms' scattering (1 Mo + 3 S per MoS₃ unit) spread over the
        area with a smooth amorphous texture (correlation length about 5 Å) fixed to the specimen.
        """
        frame = self.frames[i]
        area = frame.extent[0] * frame.extent[1]
        energy = self.probe.energy
        unit = (specimen.haadf_cross_section(specimen.Z["Mo"], energy, gamma=self.gamma)
                + 3 * specimen.haadf_cross_section(specimen.Z["S"], energy, gamma=self.gamma))
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
            sites = sites + specimen.Sites(gx[keep], gy[keep], np.array(["C"] * n, dtype=object), {"C": np.ones(n)})
        obj = specimen.object_function(sites, self.shape, self.sampling, energy=self.probe.energy, gamma=self.gamma)
        return obj + self.film(i)

    def __getitem__(self, i: int) -> np.ndarray:
        if not -len(self) <= i < len(self):
            raise IndexError(f"frame {i} of a series of {len(self)}")
        i = i % len(self)
        image = linear_image(self.object(i), self.psf)
        return acquire(image, self.acquisition, np.random.default_rng([self.seed, i]))


def _film_waves(rng, n: int = 24, correlation: float = 5.0):
    """Random plane waves of a smooth amorphous texture (wavelengths around ``2π·correlation`` [Å])."""
    k = rng.normal(0, 1 / correlation, (n, 2))
    return k, rng.uniform(0, 2 * np.pi, n), np.full(n, 0.5 / np.sqrt(n / 2))


def _graphene_columns(g: np.ndarray, extent) -> np.ndarray:
    """C columns of the graphene whose hollow sites are the lattice ``g`` (columns: lattice vectors [Å])."""
    w, h = extent
    reach = 2 * max(w, h) / specimen.GRAPHENE_A + 4
    n = int(reach)
    i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    cells = np.stack([i.ravel(), j.ravel()], 1).astype(float)
    atoms = np.concatenate([(cells + 1 / 3) @ g.T, (cells + 2 / 3) @ g.T])
    keep = (atoms[:, 0] > -5) & (atoms[:, 0] < w + 5) & (atoms[:, 1] > -5) & (atoms[:, 1] < h + 5)
    return atoms[keep]
