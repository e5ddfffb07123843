"""Fair CPU timings: interleaved repeats, and the memory-allocator setting that keeps them comparable.

NumPy and PyTorch allocate large temporaries (FFT buffers, feature maps) for
every call. On Linux, glibc's ``malloc`` serves blocks above a threshold with
fresh pages from the kernel and hands them back when they are freed, so code
that allocates and frees many large buffers pays a page fault for every 4 kB it
touches. The threshold adapts to the sizes freed so far, so the same function
can run up to about twice as fast or slow depending on what ran before it in
the process. :func:`keep_freed_memory` fixes the threshold high, so that every
method timed afterwards reuses its buffers: timings then compare the methods,
not the allocator's history.

Examples
--------
>>> import time
>>> table = compare({"short": lambda: time.sleep(0.002), "long": lambda: time.sleep(0.006)}, repeats=3)
>>> list(table.columns)
['median [s]', 'min [s]', 'per second']
>>> bool(table.loc["long", "median [s]"] > table.loc["short", "median [s]"])
True
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from .core.memory import keep_freed_memory

__all__ = ["keep_freed_memory", "compare"]


def compare(runs: Mapping[str, Callable[[], object]], repeats: int = 7, warmup: int = 1) -> pd.DataFrame:
    """Time each of ``runs`` ``repeats`` times, interleaved, after ``warmup`` untimed calls of each.

    Interleaving (A, B, C, A, B, C, ...) exposes every method to the same drift of a
    shared machine, so their ratio is steadier than that of back-to-back blocks.

    Parameters
    ----------
    runs : mapping of str to callable
        Name and a call without arguments.
    repeats : int
        Timed calls of each (at least 1).

    Returns
    -------
    pandas.DataFrame
        One row per run: ``median [s]``, ``min [s]`` and ``per second`` (1 / median).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    if not runs:
        raise ValueError("runs is empty: give at least one name -> callable")
    for _ in range(warmup):
        for run in runs.values():
            run()
    seconds = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    table = pd.DataFrame({"median [s]": {k: float(np.median(v)) for k, v in seconds.items()},
                          "min [s]": {k: float(np.min(v)) for k, v in seconds.items()}})
    table["per second"] = 1 / table["median [s]"]
    return table
