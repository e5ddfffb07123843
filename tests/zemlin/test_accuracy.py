"""Evaluation aids: random aberration sets within limits, error sizes and errors in standard errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepstem_utils import zemlin
from deepstem_utils.zemlin import accuracy


def test_random_aberrations_stay_within_the_limits():
    rng = np.random.default_rng(0)
    for _ in range(200):
        ab = accuracy.random_aberrations(rng)
        for symbol, limit in accuracy.CORRECTED_LIMITS.items():
            assert abs(ab[symbol]) <= limit
        assert all(abs(ab[f"phi{s[1:]}"]) <= math.pi / int(s[2]) for s in ("C12", "C21", "C23"))


def test_aberration_error_counts_magnitude_and_angle():
    true = {"C21": 1000.0, "phi21": 0.5}
    assert accuracy.aberration_error(true, {"C21": 1010.0, "phi21": 0.5}, "C21") == pytest.approx(10.0)
    # a 0.01 rad angle error at 1000 Å is a 10 Å error; the same angle one period (2π/m) on is none
    assert accuracy.aberration_error(true, {"C21": 1000.0, "phi21": 0.51}, "C21") == pytest.approx(10.0, rel=1e-3)
    three = {"C23": 500.0, "phi23": 0.2}
    assert accuracy.aberration_error(three, {"C23": 500.0, "phi23": 0.2 + 2 * math.pi / 3}, "C23") < 1e-9


def test_standard_error_splits_radial_and_tangential():
    true = {"C21": 1000.0, "phi21": 0.0}
    measured = {"C21": 1006.0, "phi21": 0.004}
    sigma = {"C21": 2.0, "phi21": 0.001}
    # radial 6 Å / 2 Å = 3; tangential 1006 * 0.004 ≈ 4 Å / (1006 * 0.001) ≈ 4
    assert accuracy.standard_error(true, measured, sigma, "C21") == pytest.approx(4.0, rel=0.01)
    assert accuracy.standard_error({"C10": -5.0}, {"C10": -2.0}, {"C10": 1.5}, "C10") == pytest.approx(2.0)
    assert zemlin.standard_error is accuracy.standard_error
