"""The allocator setting: applied on glibc, a no-op elsewhere, and it changes no result."""

from __future__ import annotations

import platform
import sys

import numpy as np

from deepstem_utils.core.memory import keep_freed_memory


def test_keep_freed_memory_applies_on_glibc_and_changes_no_result():
    before = np.fft.irfft2(np.fft.rfft2(np.arange(4096.0).reshape(64, 64)))
    applied = keep_freed_memory()
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert applied == glibc     # applied where glibc is, a no-op reporting False elsewhere
    after = np.fft.irfft2(np.fft.rfft2(np.arange(4096.0).reshape(64, 64)))
    np.testing.assert_array_equal(before, after)
