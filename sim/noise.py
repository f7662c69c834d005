"""Gradient-noise models of the SGD SDE (paper eq. 1): dθ = −η∇L dt + (η/√S)·B dW, C = BBᵀ.

A noise model turns the step's standard normals z ~ N(0, I) into B z:

* :class:`Isotropic` (σ²): C = σ²I, the setting of the paper's Theorem 1 (B z = σ z, σ folded
  into the step's noise scale);
* :class:`ConstantCovariance` (C): any constant symmetric positive semi-definite C, B its
  Cholesky factor (zero columns at zero pivots when C is only semi-definite);
* :class:`StateDependent`: C(θ) = the per-sample gradient covariance of a finite-sum landscape,
  factorised at every step.

Each model provides ``scale`` (a factor folded into the step's noise coefficient), ``kernel``
(a compiled function ``apply(theta, cparams, args, z)`` replacing z by B z / scale in place),
``args`` (the tuple it reads) and ``describe()``.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

import numba
import numpy as np
from numpy.typing import ArrayLike

from theory import _checks
from theory._numba import jit, specialise

if TYPE_CHECKING:
    from theory.landscapes.base import Landscape

__all__ = ["NoiseModel", "Isotropic", "ConstantCovariance", "StateDependent", "cholesky_psd"]


@numba.njit(nogil=True, inline="always", cache=True)
def cholesky_psd(c, lo):
    """Lower Cholesky factor of a symmetric PSD matrix; a zero pivot (up to round-off) gives a
    zero column, so lo @ lo.T == c for PSD c."""
    d = c.shape[0]
    scale = 0.0
    for j in range(d):
        if abs(c[j, j]) > scale:
            scale = abs(c[j, j])
    tol = 1e-13 * scale
    for j in range(d):
        s = c[j, j]
        for k in range(j):
            s -= lo[j, k] * lo[j, k]
        for i in range(j):
            lo[i, j] = 0.0
        if s <= tol:
            for i in range(j, d):
                lo[i, j] = 0.0
            continue
        ljj = math.sqrt(s)
        lo[j, j] = ljj
        for i in range(j + 1, d):
            s2 = c[i, j]
            for k in range(j):
                s2 -= lo[i, k] * lo[j, k]
            lo[i, j] = s2 / ljj


@numba.njit(nogil=True, inline="always")
def _lower_times(lo, z):
    """z ← lo z for a lower-triangular lo (from the last entry up: in place)."""
    d = z.shape[0]
    for k in range(d - 1, -1, -1):
        s = 0.0
        for j in range(k + 1):
            s += lo[k, j] * z[j]
        z[k] = s


class NoiseModel:
    """Base class (module docstring)."""

    scale = 1.0
    args: tuple = ()

    def kernel(self, landscape: Landscape) -> Callable[..., Any]:
        raise NotImplementedError

    def describe(self) -> dict:
        return {}


def _isotropic(theta, cparams, args, z):
    pass


class Isotropic(NoiseModel):
    """C = σ²I (``sigma2`` > 0)."""

    def __init__(self, sigma2: float):
        if np.ndim(sigma2) != 0:
            raise ValueError(f"sigma2 must be a scalar (use ConstantCovariance for a matrix), got shape {np.shape(sigma2)}")
        _checks.check_positive("sigma2", sigma2)
        self.sigma2 = float(sigma2)
        self.scale = math.sqrt(self.sigma2)

    def kernel(self, landscape: Landscape) -> Callable[..., Any]:
        return jit(_isotropic, "Isotropic noise")

    def describe(self) -> dict:
        return {"sigma2": self.sigma2}


def _constant(theta, cparams, args, z):
    _lower_times(args[0], z)


class ConstantCovariance(NoiseModel):
    """A constant symmetric positive semi-definite C (``noise_cov``, shape (d, d))."""

    def __init__(self, noise_cov: ArrayLike):
        c = _checks.check_positive_semidefinite("noise_cov", noise_cov)
        self.cov = 0.5 * (c + c.T)
        lo = np.zeros_like(self.cov)
        cholesky_psd(np.ascontiguousarray(self.cov), lo)
        self.args = (lo,)

    def kernel(self, landscape: Landscape) -> Callable[..., Any]:
        if self.cov.shape != (landscape.dim, landscape.dim):
            raise ValueError(f"noise_cov must have shape ({landscape.dim}, {landscape.dim}), got {self.cov.shape}")
        return jit(_constant, "ConstantCovariance noise")

    def describe(self) -> dict:
        return {"noise_cov": self.cov.tolist()}


def _state_dependent(theta, cparams, args, z):
    d = z.shape[0]
    cov = np.empty((d, d))
    lo = np.zeros((d, d))
    NOISE_COV(theta, cparams, cov)  # noqa: F821
    cholesky_psd(cov, lo)
    _lower_times(lo, z)


class StateDependent(NoiseModel):
    """C(θ) = (1/N) Σ (g_j − ḡ)(g_j − ḡ)ᵀ of a finite-sum landscape, recomputed at every step."""

    def kernel(self, landscape: Landscape) -> Callable[..., Any]:
        cov = getattr(landscape.compiled, "noise_cov", None)
        if cov is None:
            raise ValueError(f"noise StateDependent needs a finite-sum landscape (per-sample gradients); "
                             f"{type(landscape).__name__} has none")
        return specialise(_state_dependent, inline=True, NOISE_COV=cov)

    def describe(self) -> dict:
        return {"state_dependent": True}
