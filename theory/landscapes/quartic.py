"""Quartic tilted double well L(x) = (x² − 1)²/4 + tilt·x + τx²: the classic 1-D asymmetric
double well (the benchmark problem of the performance anchors)."""
from __future__ import annotations

import numpy as np

from theory import _checks
from theory.landscapes.base import Landscape

__all__ = ["QuarticDoubleWell"]


def value(theta, tilt):
    x = theta[0]
    u = x * x - 1.0
    return 0.25 * u * u + tilt * x


def gradient(theta, tilt, out):
    x = theta[0]
    out[0] = x * x * x - x + tilt
    return out


def hessian(theta, tilt, out):
    x = theta[0]
    out[0, 0] = 3.0 * x * x - 1.0
    return out


class QuarticDoubleWell(Landscape):
    """L(x) = (x² − 1)²/4 + tilt·x + τx².

    Depth and curvature of its two wells are tied together by ``tilt``; use
    :func:`theory.landscapes.double_well_1d` to choose them separately."""

    def __init__(self, tilt: float = 0.1, l2: float = 0.0):
        _checks.check_finite("tilt", tilt)
        self.tilt = float(tilt)
        super().__init__(value, gradient, hessian, dim=1, params=(self.tilt,), l2=l2,
                         minima_guesses=np.array([[-1.0], [1.0]]))

    @classmethod
    def example(cls) -> QuarticDoubleWell:
        return cls(0.1, l2=0.02)

    def __repr__(self) -> str:
        return f"QuarticDoubleWell(tilt={self.tilt}, l2={self.l2})"
