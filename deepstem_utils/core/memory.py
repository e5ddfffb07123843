"""The allocator setting that keeps large freed buffers for reuse (see :mod:`deepstem_utils.timing`).

On Linux, glibc's ``malloc`` serves blocks above a threshold with fresh pages from
the kernel and hands them back when they are freed, so code that allocates and
frees many large buffers (FFTs, feature maps, sparse fits) pays a page fault for
every 4 kB it touches, and more so as the process ages. The series pipeline's
workers set it once; :mod:`deepstem_utils.timing` sets it before comparing methods.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import lru_cache

__all__ = ["keep_freed_memory"]

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
    mallopt = _mallopt()
    if mallopt is None:
        return False
    size = int(threshold_mib) << 20
    return bool(mallopt(_M_MMAP_THRESHOLD, size)) and bool(mallopt(_M_TRIM_THRESHOLD, 4 * size))


@lru_cache(maxsize=1)
def _mallopt():
    """glibc's ``mallopt``, looked up once per process (finding libc runs ``ldconfig``), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return None
