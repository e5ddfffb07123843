"""Timing helpers: interleaved comparison and the allocator setting."""

from __future__ import annotations

import time

import numpy as np
import pytest

from deepstem_utils import timing


def test_compare_orders_known_durations_and_interleaves():
    calls = []
    runs = {"a": lambda: (calls.append("a"), time.sleep(0.01)),
            "b": lambda: (calls.append("b"), time.sleep(0.04))}
    table = timing.compare(runs, repeats=4, warmup=1)
    assert calls == ["a", "b"] * 5                 # warm-up, then interleaved
    ratio = table.loc["b", "median [s]"] / table.loc["a", "median [s]"]
    assert 2.0 < ratio < 6.0     # 4 asleep; scheduler latency on a busy machine adds a few ms to each
    assert np.allclose(table["per second"], 1 / table["median [s]"])
    assert (table["min [s]"] <= table["median [s]"]).all()
    with pytest.raises(ValueError, match="repeats"):
        timing.compare(runs, repeats=0)
    with pytest.raises(ValueError, match="empty"):
        timing.compare({})


def test_timing_offers_the_allocator_setting_of_core():
    from deepstem_utils.core.memory import keep_freed_memory

    assert timing.keep_freed_memory is keep_freed_memory
