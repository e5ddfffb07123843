"""Where a network's object puts one S atom between an empty S site and S₂: measured, stored, read.

A network's object is not linear in the atoms (its prior pulls a lone S
towards the common S₂), so :func:`find_atoms` starts its mixture model at a
level measured on simulated frames (:func:`measure_one_atom_fraction`; stored
beside the weights by ``tools/calibrate_weights.py``).
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from ..atoms.find import find_atoms
from ..network.dataset import simulate_frame
from ..network.reconstruction import reconstruct
from ..network.weights import SUPERVISED_WEIGHTS, weights_calibration
from .metrics import match_sites

__all__ = ["one_atom_fraction", "measure_one_atom_fraction"]


def one_atom_fraction(method: str) -> float:
    """The one-S-atom level (0: empty site, 1: S₂) ``find_atoms`` starts from for ``method``'s objects.

    1/2 for the linear methods and the ``+fit`` ones; for the networks, the value measured on simulated
    frames and stored with their weights (:func:`measure_one_atom_fraction`).
    """
    weights = {"deepstem": None, "supervised_unet": SUPERVISED_WEIGHTS}
    if method in weights:
        return float(weights_calibration(weights[method]).get("one_atom_fraction", 0.5))
    return 0.5


def measure_one_atom_fraction(weights=None, doses=(3e3, 1e4, 3e4, 1e5), n_frames: int = 3, shape=(320, 320),
                              seed: int = 11, progress: bool = True) -> dict:
    """Measure where a network puts one S atom between an empty S site (0) and S₂ (1).

    A network's object is not linear in the atoms (its prior pulls a lone S towards
    the common S₂), so :func:`find_atoms` needs this level as its starting point
    when a frame holds too few S₁ sites to fit it. Measured on simulated frames
    (random instruments and pixel sizes, S vacancies 15 % and divacancies 5 % so
    that every class is well populated; seeds apart from training and evaluation),
    from the integrated intensities at the true sites:
    ``(median S₁ - median empty) / (median S₂ - median empty)`` per frame, median over frames.

    Returns
    -------
    dict
        ``one_atom_fraction``, its spread over frames (``iqr``), and the settings used.
    """
    values = []
    bar = tqdm(total=n_frames * len(doses), desc="calibration", unit="frame", disable=not progress)
    for i in range(n_frames):
        for dose in doses:
            frame = simulate_frame(shape, dose=float(dose), rng=np.random.default_rng([seed, i]), s_vacancy=0.15,
                                   s_divacancy=0.05)
            obj = reconstruct(frame.counts, frame.probe, sampling=frame.sampling, weights=weights)
            found = find_atoms(obj, frame.sampling, quiet=True)
            bar.update()
            if found.empty:
                continue
            i_found, i_true = match_sites(found, np.asarray(frame.sites.x), np.asarray(frame.sites.y), 0.6)
            species = np.asarray(frame.sites.species).astype(str)[i_true]
            level = {c: found.intensity.to_numpy()[i_found][species == c] for c in ("S2", "S1", "vacancy")}
            if min(len(level["S2"]), len(level["S1"])) >= 5 and len(level["vacancy"]) >= 3:
                empty = np.median(level["vacancy"])
                values.append(float((np.median(level["S1"]) - empty) / (np.median(level["S2"]) - empty)))
    bar.close()
    if not values:
        raise RuntimeError("no calibration frame had enough S1, S2 and empty sites")
    q1, q3 = np.percentile(values, [25, 75])
    return {"one_atom_fraction": float(np.clip(np.median(values), 0.3, 0.8)), "iqr": float(q3 - q1),
            "frames": len(values), "doses": [float(d) for d in doses], "shape": list(shape), "seed": seed}
