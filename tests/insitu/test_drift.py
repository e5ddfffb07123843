"""Frame-to-frame registration of a drifting series."""

from __future__ import annotations

import pytest

from deepstem_utils.insitu.drift import register_drift


def test_register_drift_finds_a_known_shift(drifting):
    dy, dx = register_drift(drifting[0], drifting[1])
    assert dy == pytest.approx(-1.5, abs=0.3) and dx == pytest.approx(1.0, abs=0.3)
