"""A sharp and a flat global minimum joined by a flat coordinate (the cyclical-learning-rate test
problem of the noise-geometry experiments, Wang & Wu 2023).

θ = (s, z) ∈ R × R^k; per-sample residual and loss, data rows (x_j, b_j)::

    r_j(θ) = a(s)·x_jᵀz + b_j (s² − 1)/2,      l_j = r_j²/2 (+ τ‖θ‖²),
    a(s) = a_flat + (a_sharp − a_flat) / (1 + exp(κ s)).

For N > k + 1 the global minima (L = 0) are A = (−1, 0) and B = (+1, 0): at A the transverse
curvature is ~ a_sharp² (sharp), at B ~ a_flat² (flat); the direction s joining them has
curvature E b² s² (small).  The noise is that of a square loss at interpolation:
Σ₁ ~ 2L·G near the minima (aligned with the Gauss–Newton matrix G, vanishing at the minima).
Per-sample derivatives: ∇l = r J with J = (a'(s) xᵀz + b s, a(s) x), and
∇²l = J Jᵀ + r ∇²r with ∂²r/∂s² = a''(s) xᵀz + b, ∂²r/∂s∂z = a'(s) x, ∂²r/∂z² = 0.
"""
from __future__ import annotations

import math

import numpy as np
from numba.extending import register_jitable
from numpy.typing import ArrayLike

from theory import _checks
from theory.landscapes.finite_sum import FiniteSumLandscape

__all__ = ["SharpFlatValley"]


@register_jitable(inline="always")
def _profile(s, a_sharp, a_flat, kappa):
    """a(s), a'(s), a''(s) with σ = 1/(1 + exp(κ s)) (exp overflow gives σ = 0: no NaN)."""
    e = math.exp(min(kappa * s, 700.0))
    sg = 1.0 / (1.0 + e)
    da = a_sharp - a_flat
    return (a_flat + da * sg, -kappa * da * sg * (1.0 - sg), kappa * kappa * da * sg * (1.0 - sg) * (1.0 - 2.0 * sg))


@register_jitable(inline="always")
def _residual(theta, row):
    """xᵀz for θ = (s, z) and the row (x, b)."""
    k = theta.shape[0] - 1
    xz = 0.0
    for j in range(k):
        xz += row[j] * theta[1 + j]
    return xz


def sample_value(theta, row, a_sharp, a_flat, kappa):
    s = theta[0]
    a, _, _ = _profile(s, a_sharp, a_flat, kappa)
    r = a * _residual(theta, row) + row[theta.shape[0] - 1] * 0.5 * (s * s - 1.0)
    return 0.5 * r * r


def sample_gradient(theta, row, a_sharp, a_flat, kappa, out):
    s = theta[0]
    k = theta.shape[0] - 1
    a, a1, _ = _profile(s, a_sharp, a_flat, kappa)
    xz = _residual(theta, row)
    r = a * xz + row[k] * 0.5 * (s * s - 1.0)
    out[0] = r * (a1 * xz + row[k] * s)
    for j in range(k):
        out[1 + j] = r * a * row[j]
    return out


def sample_hessian(theta, row, a_sharp, a_flat, kappa, out):
    s = theta[0]
    k = theta.shape[0] - 1
    a, a1, a2 = _profile(s, a_sharp, a_flat, kappa)
    xz = _residual(theta, row)
    b = row[k]
    r = a * xz + b * 0.5 * (s * s - 1.0)
    js = a1 * xz + b * s
    out[0, 0] = js * js + r * (a2 * xz + b)
    for j in range(k):
        cross = js * a * row[j] + r * a1 * row[j]
        out[0, 1 + j] = cross
        out[1 + j, 0] = cross
        for m in range(k):
            out[1 + j, 1 + m] = a * a * row[j] * row[m]
    return out


class SharpFlatValley(FiniteSumLandscape):
    """Interpolating finite sum with a sharp minimum A (s = −1) and a flat one B (s = +1) joined by
    a flat coordinate (module docstring); x_j ~ N(0, I_k), b_j ~ N(0, b_scale²) drawn from ``seed``."""

    def __init__(self, *, n_samples: int = 40, k: int = 5, a_sharp: float = 2.5, a_flat: float = 1.0,
                 kappa: float = 4.0, b_scale: float = 0.5, seed: int = 0, l2: float = 0.0):
        n = _checks.check_int("n_samples", n_samples, minimum=2)
        k = _checks.check_int("k", k, minimum=1)
        if n <= k + 1:
            raise ValueError(f"n_samples must be > k + 1 = {k + 1} for strict minima, got {n}")
        for name, v in (("a_sharp", a_sharp), ("a_flat", a_flat), ("kappa", kappa), ("b_scale", b_scale)):
            _checks.check_positive(name, v)
        rng = np.random.default_rng(np.random.SeedSequence(seed))
        x = rng.standard_normal((n, k))
        b = b_scale * rng.standard_normal(n)
        self.k = k
        self.a_sharp, self.a_flat, self.kappa = float(a_sharp), float(a_flat), float(kappa)
        super().__init__(sample_value, sample_gradient, sample_hessian, data=np.column_stack([x, b]), dim=k + 1,
                         params=(self.a_sharp, self.a_flat, self.kappa), l2=l2,
                         minima_guesses=np.array([np.r_[-1.0, np.zeros(k)], np.r_[1.0, np.zeros(k)]]))

    @classmethod
    def example(cls) -> SharpFlatValley:
        return cls(n_samples=12, k=2, seed=1)

    def gauss_newton(self, theta: ArrayLike) -> np.ndarray:
        """G(θ) = (1/N) Σ_j J_j J_jᵀ (the Hessian without the residual term), shape (..., dim, dim)."""
        flat, batch = self._flatten(theta)
        out = np.empty((flat.shape[0], self.dim, self.dim))
        x, b = self.data[:, :-1], self.data[:, -1]
        for p, th in enumerate(flat):
            a, a1, _ = _profile(th[0], self.a_sharp, self.a_flat, self.kappa)
            jac = np.column_stack([a1 * (x @ th[1:]) + b * th[0], a * x])  # (N, dim)
            out[p] = jac.T @ jac / self.n_samples
        return out.reshape(batch + (self.dim, self.dim))

    def __repr__(self) -> str:
        return (f"SharpFlatValley(N={self.n_samples}, k={self.k}, a_sharp={self.a_sharp}, "
                f"a_flat={self.a_flat}, kappa={self.kappa}, l2={self.l2})")
