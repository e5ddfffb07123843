"""The in situ case study (chapter 7): a kinetic twin of MoS₂ growth, its acquisition, the series pipeline.

* :mod:`.kinetics` — Arrhenius rates and a MoS₂ grain on its own lattice.
* :mod:`.twin` — the kinetic Monte Carlo model of MoS₂ forming from (NH₄)₂MoS₄ at 500 °C.
* :mod:`.beam` — the electrons that record a frame displace S (knock-on, one dose for twin and acquisition).
* :mod:`.acquisition` — the twin's frames as a microscope records them, with ground truth
  (:func:`record_series`: the twin under the beam that records it).
* :mod:`.drift` — frame-to-frame registration and the cumulative stage drift.
* :mod:`.pipeline` — a series on dask.distributed: register, reconstruct, find atoms, resume.
* :mod:`.tracking` — adatom tracks, grains and events (nucleation, coalescence, attachment).
"""

from .acquisition import SeriesAcquisition, record_series
from .beam import BeamExposure
from .drift import register_drift
from .kinetics import KineticParameters
from .pipeline import load_atoms, process_series
from .tracking import detect_events, grains, link_adatoms, track_grains
from .twin import GrowthTwin, simulate_growth

__all__ = ["SeriesAcquisition", "record_series", "BeamExposure", "register_drift", "KineticParameters",
           "load_atoms", "process_series", "detect_events", "grains", "link_adatoms", "track_grains", "GrowthTwin",
           "simulate_growth"]
