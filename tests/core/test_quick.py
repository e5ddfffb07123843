"""The quick-mode switch."""

from __future__ import annotations

import pytest

from deepstem_utils.core.quick import choose, quick_mode


@pytest.mark.parametrize("value, quick", [("1", True), ("true", True), (" Yes ", True), ("0", False), ("", False),
                                          ("no", False)])
def test_quick_mode_reads_the_environment(monkeypatch, value, quick):
    monkeypatch.setenv("DEEPSTEM_QUICK", value)
    assert quick_mode() is quick
    assert choose(full="big", quick="small") == ("small" if quick else "big")


def test_unset_means_full(monkeypatch):
    monkeypatch.delenv("DEEPSTEM_QUICK", raising=False)
    assert not quick_mode()
