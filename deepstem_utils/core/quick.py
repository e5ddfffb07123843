"""Quick mode: one switch that makes every notebook small and fast.

Set the environment variable ``DEEPSTEM_QUICK=1`` (tests and CI do) to run the
book's notebooks with fewer epochs, fewer frames and smaller images. Without
it the notebooks run the full computation that the published book shows.
"""

from __future__ import annotations

import os

__all__ = ["quick_mode", "choose"]

_TRUE = {"1", "true", "yes", "on"}


def quick_mode() -> bool:
    """Return True when ``DEEPSTEM_QUICK`` is set to 1/true/yes/on."""
    return os.environ.get("DEEPSTEM_QUICK", "").strip().lower() in _TRUE


def choose(full, quick):
    """Return ``quick`` in quick mode, ``full`` otherwise.

    Examples
    --------
    >>> n_frames = choose(full=200, quick=4)
    """
    return quick if quick_mode() else full
