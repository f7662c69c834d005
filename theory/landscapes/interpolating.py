"""Interpolating finite-sum quadratics l_i(θ) = ½(θ − θ*)ᵀH_i(θ − θ*): every per-sample loss has
its minimum at the same θ* (the setting of Wu, Ma & E 2018's linear stability analysis,
:mod:`theory.stability`).  The gradient noise vanishes at θ* and is multiplicative elsewhere:
one SGD step is θ' − θ* = (I − ηH_B)(θ − θ*), H_B the minibatch mean of the H_i.

Data rows are the per-sample Hessians, flattened (row i = H_i.ravel(), d² entries).  In 1-D,
``LeastSquares(inputs=sqrt(h)[:, None], targets=0)`` is the same loss (l_i = ½(√h_i θ)²)."""
from __future__ import annotations

import numpy as np
from numba.extending import register_jitable
from numpy.typing import ArrayLike

from theory import _checks, stability
from theory.landscapes.finite_sum import FiniteSumLandscape

__all__ = ["InterpolatingQuadratics"]


@register_jitable
def _row_times(row, theta, center, k):
    """(H_i (θ − θ*))_k for H_i stored row-major in ``row``."""
    d = theta.shape[0]
    s = 0.0
    for j in range(d):
        s += row[k * d + j] * (theta[j] - center[j])
    return s


def sample_value(theta, row, center):
    v = 0.0
    for k in range(theta.shape[0]):
        v += 0.5 * (theta[k] - center[k]) * _row_times(row, theta, center, k)
    return v


def sample_gradient(theta, row, center, out):
    for k in range(theta.shape[0]):
        out[k] = _row_times(row, theta, center, k)
    return out


def sample_hessian(theta, row, center, out):
    d = theta.shape[0]
    for i in range(d):
        for j in range(d):
            out[i, j] = row[i * d + j]
    return out


class InterpolatingQuadratics(FiniteSumLandscape):
    """L = (1/N) Σ_i ½(θ − θ*)ᵀH_i(θ − θ*) from ``per_sample_hessians`` (N,) (1-D curvatures) or
    (N, d, d), symmetric positive semi-definite, N >= 2 (validated by
    :func:`theory.stability.per_sample_hessians`: the non-uniformity is their spread, which one
    sample does not have), and ``center`` θ* (default 0).  ``hessians`` holds the validated
    (N, d, d) array.  A mean Hessian that is singular leaves a flat valley: it can be simulated,
    but ``minima()`` says that there is no strict minimum."""

    def __init__(self, per_sample_hessians: ArrayLike, center: ArrayLike | None = None):
        arr = stability.per_sample_hessians(per_sample_hessians)
        n, d, _ = arr.shape
        self.hessians = arr
        self.center = np.zeros(d) if center is None else np.asarray(center, dtype=float).reshape(-1)
        if self.center.shape != (d,):
            raise ValueError(f"center must have shape ({d},) to match per_sample_hessians, got {np.shape(center)}")
        _checks.check_finite("center", self.center)
        super().__init__(sample_value, sample_gradient, sample_hessian, data=arr.reshape(n, d * d), dim=d,
                         params=(self.center,), minima_guesses=self._strict_minimum,
                         name=f"InterpolatingQuadratics(N={n}, d={d})")

    def _strict_minimum(self) -> np.ndarray:
        h = self.hessians.mean(axis=0)
        lam = np.linalg.eigvalsh(h)
        if lam[0] <= 1e-12 * lam[-1]:
            raise ValueError("the mean of per_sample_hessians is singular: no strict minimum (a flat valley "
                             "through center)")
        return self.center[None, :]

    @classmethod
    def example(cls) -> InterpolatingQuadratics:
        rng = np.random.default_rng(4)
        a = rng.standard_normal((6, 2, 2))
        return cls(np.einsum("nij,nkj->nik", a, a), center=[0.3, -0.1])
