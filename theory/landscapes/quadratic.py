"""Quadratic L(θ) = ½(θ − c)ᵀH(θ − c) + τ‖θ‖²: with isotropic noise the Ornstein–Uhlenbeck case,
exactly solvable."""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from theory import _checks
from theory.landscapes.base import Landscape

__all__ = ["Quadratic"]


def value(theta, center, hess):
    v = 0.0
    d = theta.shape[0]
    for i in range(d):
        yi = theta[i] - center[i]
        for j in range(d):
            v += 0.5 * yi * hess[i, j] * (theta[j] - center[j])
    return v


def gradient(theta, center, hess, out):
    d = theta.shape[0]
    for i in range(d):
        s = 0.0
        for j in range(d):
            s += hess[i, j] * (theta[j] - center[j])
        out[i] = s
    return out


def hessian(theta, center, hess, out):
    d = theta.shape[0]
    for i in range(d):
        for j in range(d):
            out[i, j] = hess[i, j]
    return out


_FUNCTIONS = (value, gradient, hessian)


class Quadratic(Landscape):
    """L(θ) = ½(θ − c)ᵀH(θ − c) + τ‖θ‖², H symmetric positive definite."""

    def __init__(self, hessian: ArrayLike, center: ArrayLike | None = None, l2: float = 0.0):
        h = _checks.check_positive_definite("hessian", np.atleast_2d(np.asarray(hessian, dtype=float)))
        d = h.shape[0]
        self.H = 0.5 * (h + h.T)
        self.center = np.zeros(d) if center is None else np.asarray(center, dtype=float).reshape(d)
        _checks.check_finite("center", self.center)
        full = self.H + 2 * float(l2) * np.eye(d)
        super().__init__(*_FUNCTIONS, dim=d, params=(self.center, self.H), l2=l2,
                         minima_guesses=np.linalg.solve(full, self.H @ self.center)[None, :])

    @classmethod
    def example(cls) -> Quadratic:
        return cls([[2.0, 0.5], [0.5, 1.0]], center=[0.3, -0.2], l2=0.1)
