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

import ctypes
import ctypes.util
import sys
import time
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

__all__ = ["keep_freed_memory", "compare"]

_M_TRIM_THRESHOLD = -1   # glibc malloc.h
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(threshold_mib: int = 64) -> bool:
    """Let glibc's allocator keep freed blocks up to ``threshold_mib`` [MiB] for reuse, in this process.

    Sets ``M_MMAP_THRESHOLD`` to ``threshold_mib`` and ``M_TRIM_THRESHOLD`` to four
    times that, so large temporaries come from (and return to) the heap instead of
    fresh kernel pages. The process then holds on to up to a few hundred MiB it
    has freed. Nothing else changes: results are the same to the bit.

    Returns
    -------
    bool
        True if the setting was applied (Linux with glibc); False elsewhere, where
        it does nothing (other allocators have their own policies).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    size = int(threshold_mib) << 20
    return bool(mallopt(_M_MMAP_THRESHOLD, size)) and bool(mallopt(_M_TRIM_THRESHOLD, 4 * size))


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
