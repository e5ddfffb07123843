"""Following atoms and grains through an in situ series: adatom tracks, grains, events.

Input is the table of sites of every frame (what :func:`series.process_series`
writes, read back with :func:`series.load_atoms`): ``frame``, positions in the
frame of the first image (``x_registered``, ``y_registered`` [Å], drift removed)
and ``species``.

* **Adatoms** are linked from frame to frame with trackpy (Crocker-Grier
  linking: the assignment that minimises the total squared displacement
  within a search range), allowing an adatom to vanish for a frame.
* **Grains** are the connected groups of Mo columns (neighbours closer than
  1.25 lattice constants) with at least ``min_size`` Mo. A grain is linked to the
  grains of the previous frame it overlaps.
* **Events**: *nucleation* (a grain with no predecessor), *coalescence* (a grain
  with two or more predecessors) and *attachment* (an adatom track that ends
  next to a grain).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ..core.constants import MOS2_A

__all__ = ["grains", "link_adatoms", "track_grains", "detect_events", "link_recovery", "truth_links"]

def _xy(table: pd.DataFrame, registered: bool = True) -> np.ndarray:
    if registered and "x_registered" in table:
        return table[["x_registered", "y_registered"]].to_numpy(float)
    return table[["x", "y"]].to_numpy(float)


def grains(atoms: pd.DataFrame, lattice_constant: float = MOS2_A, min_size: int = 4,
           registered: bool = True) -> np.ndarray:
    """Grain label of every row of one frame's sites (``-1``: not a Mo of a grain).

    Parameters
    ----------
    atoms : DataFrame
        Sites of one frame: ``species`` and positions [Å].
    lattice_constant : float
        Mo-Mo distance [Å]; Mo closer than 1.25 times it are bonded.
    min_size : int
        Fewest Mo in a grain; smaller groups are labelled ``-1``.

    Returns
    -------
    (n,) ndarray of int
        Labels 0, 1, ... ordered by decreasing grain size.

    Examples
    --------
    >>> table = pd.DataFrame({"x": [0.0, 3.16, 1.58, 20.0], "y": [0.0, 0.0, 2.74, 0.0],
    ...                       "species": ["Mo", "Mo", "Mo", "Mo"]})
    >>> grains(table, min_size=3).tolist()
    [0, 0, 0, -1]
    """
    labels = np.full(len(atoms), -1, int)
    mo = np.flatnonzero(np.asarray(atoms["species"]) == "Mo")
    if len(mo) == 0:
        return labels
    xy = _xy(atoms, registered)[mo]
    pairs = cKDTree(xy).query_pairs(1.25 * lattice_constant, output_type="ndarray")
    graph = sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(mo), len(mo)))
    _, comp = connected_components(graph, directed=False)
    sizes = np.bincount(comp)
    order = [c for c in np.argsort(-sizes, kind="stable") if sizes[c] >= min_size]
    rank = {c: k for k, c in enumerate(order)}
    labels[mo] = [rank.get(c, -1) for c in comp]
    return labels


def link_adatoms(atoms: pd.DataFrame, search_range: float = 2.0, memory: int = 1,
                 species: str = "Mo_adatom") -> pd.DataFrame:
    """Link the adatoms of a series into tracks (trackpy).

    Parameters
    ----------
    atoms : DataFrame
        Sites of all frames: ``frame``, ``species``, ``x_registered``/``y_registered`` (or ``x``/``y``) [Å].
    search_range : float
        Largest displacement between linked frames [Å].
    memory : int
        Frames an adatom may be missed and still keep its track.

    Returns
    -------
    DataFrame
        The adatom rows with ``x``, ``y`` (registered, [Å]), ``frame`` and ``particle`` (track id).
    """
    import trackpy

    trackpy.quiet()
    rows = atoms[atoms["species"] == species]
    xy = _xy(rows)
    table = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "frame": rows["frame"].to_numpy(int)})
    if table.empty:
        return table.assign(particle=pd.Series(dtype=int))
    return trackpy.link(table, search_range, memory=memory).reset_index(drop=True)


def track_grains(atoms: pd.DataFrame, lattice_constant: float = MOS2_A, min_size: int = 4,
                 overlap: float = 1.5) -> pd.DataFrame:
    """Grains of every frame and their predecessors.

    Parameters
    ----------
    atoms : DataFrame
        Sites of all frames (``frame``, ``species``, registered positions [Å]).
    overlap : float
        A grain's predecessors are the previous frame's grains with a Mo within this distance of one of its Mo [Å].

    Returns
    -------
    DataFrame
        One row per grain and frame: ``frame``, ``grain`` (label within the frame), ``size`` (Mo count),
        ``x``, ``y`` (centroid [Å]), ``parents`` (labels in the previous frame, a tuple), ``parent_sizes``.
    """
    rows, previous = [], None
    for frame, table in atoms.groupby("frame", sort=True):
        table = table.reset_index(drop=True)
        labels = grains(table, lattice_constant, min_size)
        xy = _xy(table)
        current = {g: xy[labels == g] for g in range(labels.max() + 1)} if (labels >= 0).any() else {}
        for g, pts in current.items():
            parents, sizes = (), ()
            if previous is not None:
                found = [p for p, old in previous.items() if cKDTree(old).query(pts, distance_upper_bound=overlap)[0].min()
                         < overlap]
                parents, sizes = tuple(found), tuple(len(previous[p]) for p in found)
            rows.append({"frame": int(frame), "grain": g, "size": len(pts), "x": pts[:, 0].mean(), "y": pts[:, 1].mean(),
                         "parents": parents, "parent_sizes": sizes})
        previous = current
    return pd.DataFrame(rows, columns=["frame", "grain", "size", "x", "y", "parents", "parent_sizes"])


def detect_events(atoms: pd.DataFrame, tracks: pd.DataFrame | None = None, grain_table: pd.DataFrame | None = None,
                  attach_distance: float = 5.0, lattice_constant: float = MOS2_A, min_size: int = 4,
                  field: tuple[float, float] | None = None, border: float = 3.0,
                  first_frame: int | None = None) -> pd.DataFrame:
    """Nucleation, coalescence and adatom attachment events of a series (and grains entering the field).

    Parameters
    ----------
    atoms : DataFrame
        Sites of all frames (``frame``, ``species``, ``x``/``y`` in the frame and registered positions [Å]).
    tracks : DataFrame, optional
        From :func:`link_adatoms` (computed if not given).
    grain_table : DataFrame, optional
        From :func:`track_grains` (computed if not given).
    attach_distance : float
        An adatom track that ends this close to a grain Mo of the next frame has attached [Å]; the
        adatom must have been free (farther than 1.25 lattice constants from any grain Mo) in its last frame.
    field : (float, float), optional
        Field of view ``(width, height)`` [Å]. A new grain counts as nucleated only if most of its Mo
        lie more than ``border`` inside the *previous* frame's field (drift from the registered
        positions); otherwise it is an ``entry``: it drifted into view. (A grain that nucleated
        outside the field and grows across its edge cannot be told from one nucleated at the
        edge: it counts as a nucleation.)
    first_frame : int, optional
        The first frame of the series (nothing happens "before" it); default: the first frame
        in ``atoms``. Give it when the first frames have no sites at all (bare support), so that
        a grain in the first frame with sites counts as nucleated.

    Returns
    -------
    DataFrame
        ``frame`` (the first frame that shows the result), ``kind``, ``x``, ``y`` (registered [Å]), ``detail``.
    """
    if grain_table is None:
        grain_table = track_grains(atoms, lattice_constant, min_size)
    if tracks is None:
        tracks = link_adatoms(atoms)
    first = atoms["frame"].min() if first_frame is None else first_frame
    grain_mo, grain_xy, offset = {}, {}, {}
    for frame, table in atoms.groupby("frame"):
        table = table.reset_index(drop=True)
        labels = grains(table, lattice_constant, min_size)
        grain_mo[frame] = _xy(table)[labels >= 0]
        grain_xy[frame] = {g: _xy(table)[labels == g] for g in np.unique(labels[labels >= 0])}
        # where this frame sits in the registered coordinates (drift): registered minus frame position
        offset[frame] = np.median(_xy(table) - _xy(table, registered=False), axis=0) if len(table) else np.zeros(2)
    events = []
    frames = sorted(offset)
    for row in grain_table.itertuples():
        if row.frame == first:
            continue
        if len(row.parents) == 0:
            pts = grain_xy[row.frame][row.grain]
            if field is None or _was_in_view(pts, row.frame, offset, frames, field, border):
                events.append({"frame": row.frame, "kind": "nucleation", "x": row.x, "y": row.y,
                               "detail": f"new grain of {row.size} Mo"})
            else:
                events.append({"frame": row.frame, "kind": "entry", "x": row.x, "y": row.y,
                               "detail": f"new grain of {row.size} Mo where the previous frame could not see: "
                                         "it drifted into view"})
        elif len(row.parents) >= 2:
            events.append({"frame": row.frame, "kind": "coalescence", "x": row.x, "y": row.y,
                           "detail": "grains of " + " + ".join(str(s) for s in row.parent_sizes) + f" Mo -> {row.size}"})
    last_frame = atoms["frame"].max()
    if len(tracks):
        for _, track in tracks.groupby("particle"):
            end = track.loc[track["frame"].idxmax()]
            here, nxt = int(end["frame"]), int(end["frame"]) + 1
            if nxt > last_frame or len(grain_mo.get(nxt, [])) == 0:
                continue
            xy = np.array([end["x"], end["y"]])
            if len(grain_mo[here]) and np.hypot(*(grain_mo[here] - xy).T).min() < 1.25 * lattice_constant:
                continue  # it was part of a grain edge already: not a free adatom
            if np.hypot(*(grain_mo[nxt] - xy).T).min() < attach_distance:
                events.append({"frame": nxt, "kind": "attachment", "x": float(xy[0]), "y": float(xy[1]),
                               "detail": f"adatom track of {len(track)} frames"})
    return pd.DataFrame(events, columns=["frame", "kind", "x", "y", "detail"]).sort_values(
        ["frame", "kind"], kind="stable").reset_index(drop=True)


def _was_in_view(pts: np.ndarray, frame: int, offset: dict, frames: list, field, border: float) -> bool:
    """Was the place of a new grain (its Mo ``pts``, registered [Å]) inside the previous frame's field of view
    (so it grew there, rather than drifting in across the edge)? True when most of its Mo lie more than
    ``border`` inside that field."""
    earlier = [f for f in frames if f < frame]
    previous = offset[earlier[-1]] if earlier else offset[frame]  # no earlier sites: the drift is that small
    x, y = (pts - previous).T  # in the previous frame's own coordinates
    inside = (x > border) & (y > border) & (x < field[0] - border) & (y < field[1] - border)
    return bool(inside.mean() >= 0.5)


def truth_links(ids_per_frame) -> set:
    """Ground-truth links ``(frame, id)`` → ``(frame + 1, id)`` of adatoms present in consecutive frames.

    Parameters
    ----------
    ids_per_frame : list of 1-D arrays
        Adatom identities present (and scored) in every frame.
    """
    links = set()
    for t in range(len(ids_per_frame) - 1):
        both = set(np.asarray(ids_per_frame[t]).tolist()) & set(np.asarray(ids_per_frame[t + 1]).tolist())
        links |= {(t, int(a)) for a in both if a >= 0}
    return links


def link_recovery(tracks: pd.DataFrame, truth_xy, truth_ids, radius: float = 1.0) -> dict:
    """Fraction of ground-truth adatom links that the tracks recover.

    A true link (adatom *a* in frames *t* and *t+1*) is recovered when detected
    adatoms within ``radius`` of *a* in both frames belong to the same track.

    Parameters
    ----------
    tracks : DataFrame
        From :func:`link_adatoms` (``frame``, ``x``, ``y``, ``particle``), in the coordinates of ``truth_xy``.
    truth_xy : list of (n_t, 2) arrays
        True adatom positions in every frame [Å], same coordinates as ``tracks``.
    truth_ids : list of (n_t,) arrays
        Their identities.
    radius : float
        Match radius [Å].

    Returns
    -------
    dict
        ``links`` (true links), ``recovered``, ``fraction``.
    """
    matched = []  # per frame: true id -> track id
    for t, (xy, ids) in enumerate(zip(truth_xy, truth_ids)):
        det = tracks[tracks["frame"] == t]
        mapping = {}
        if len(det) and len(xy):
            d = np.hypot(np.asarray(xy)[:, None, 0] - det["x"].to_numpy()[None, :],
                         np.asarray(xy)[:, None, 1] - det["y"].to_numpy()[None, :])
            r, c = linear_sum_assignment(np.where(d < radius, d, 1e6))
            for i, j in zip(r, c):
                if d[i, j] < radius:
                    mapping[int(ids[i])] = int(det["particle"].iloc[j])
        matched.append(mapping)
    links = truth_links(truth_ids)
    recovered = sum(1 for t, a in links if a in matched[t] and a in matched[t + 1]
                    and matched[t][a] == matched[t + 1][a])
    return {"links": len(links), "recovered": recovered, "fraction": recovered / len(links) if links else float("nan")}
