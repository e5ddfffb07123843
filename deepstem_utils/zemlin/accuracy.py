"""Evaluation aids for the Zemlin measurement: random aberration sets of a tuned instrument and error sizes.

Used by the tests, the accuracy benchmark (``benchmarks/zemlin_accuracy.py``) and chapter 2.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["CORRECTED_LIMITS", "random_aberrations", "aberration_error", "standard_error"]

#: Limits of a tuned aberration-corrected 80 kV instrument used for random test sets [Å]:
#: |C1| <= 20 nm, |A1| <= 20 nm, |B2| <= 200 nm, |A2| <= 200 nm, |C3| <= 5 µm.
CORRECTED_LIMITS = {"C10": 200.0, "C12": 200.0, "C21": 2000.0, "C23": 2000.0, "C30": 5e4}


def random_aberrations(rng, limits: dict | None = None) -> dict:
    """Random aberrations within ``limits`` (default :data:`CORRECTED_LIMITS`) [Å, rad].

    Round aberrations are uniform in ±limit; the others are uniform over the
    disc of radius limit in the complex plane (random magnitude and angle).
    """
    rng = np.random.default_rng(rng)
    limits = dict(CORRECTED_LIMITS if limits is None else limits)
    ab = {}
    for symbol, limit in limits.items():
        n, m = int(symbol[1]), int(symbol[2])
        if m == 0:
            ab[symbol] = float(rng.uniform(-limit, limit))
        else:
            ab[symbol] = float(limit * math.sqrt(rng.uniform()))
            ab[f"phi{n}{m}"] = float(rng.uniform(-math.pi, math.pi) / m)
    return ab


def aberration_error(true: dict, measured: dict, symbol: str) -> float:
    """Size of the difference between two values of one aberration [Å].

    For an aberration with an angle the difference of the complex values
    ``C exp(i m phi)`` is used, so that magnitude and angle errors both count.
    """
    n, m = int(symbol[1]), int(symbol[2])
    if m == 0:
        return abs(measured.get(symbol, 0.0) - true.get(symbol, 0.0))
    angle = f"phi{n}{m}"
    z_true = true.get(symbol, 0.0) * np.exp(1j * m * true.get(angle, 0.0))
    z_meas = measured.get(symbol, 0.0) * np.exp(1j * m * measured.get(angle, 0.0))
    return float(abs(z_meas - z_true))


def standard_error(true: dict, measured: dict, uncertainties: dict, symbol: str) -> float:
    """Error of one measured aberration in units of its reported standard error.

    For an aberration with an angle, the difference of the complex values ``C exp(i m φ)`` is split into its
    radial and tangential parts, each divided by its own standard error (``σ_C`` and ``m C σ_φ``); the larger
    of the two is returned, so that "within 3 standard errors" holds for the magnitude and the angle.
    """
    n, m = int(symbol[1]), int(symbol[2])
    if m == 0:
        return abs(measured.get(symbol, 0.0) - true.get(symbol, 0.0)) / max(uncertainties[symbol], 1e-300)
    angle = f"phi{n}{m}"
    c, phi = measured.get(symbol, 0.0), measured.get(angle, 0.0)
    diff = true.get(symbol, 0.0) * np.exp(1j * m * true.get(angle, 0.0)) - c * np.exp(1j * m * phi)
    radial = abs((diff * np.exp(-1j * m * phi)).real) / max(uncertainties[symbol], 1e-300)
    s_t = m * c * uncertainties[angle]
    tangential = abs((diff * np.exp(-1j * m * phi)).imag) / max(s_t, 1e-300)
    return float(max(radial, tangential))
