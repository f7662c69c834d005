"""Finite-sum landscapes L(θ) = base(θ) + (1/N) Σ_j l(θ; x_j) + l2·‖θ‖², for exact minibatch SGD.

Per-sample functions take the sample's data row after ``theta``::

    sample_value(theta, row, *params) -> float
    sample_gradient(theta, row, *params[, out]) -> (dim,)
    sample_hessian(theta, row, *params[, out]) -> (dim, dim)     (optional)

``data`` is a float array (N, k) whose row j is x_j.  ``base`` (optional) is a landscape shared by
all samples (its gradient is computed once per minibatch, not once per sample); with
``centered=True`` the per-sample parts average to zero exactly (Σ_j l(θ; x_j) ≡ 0), so the
full-batch loss *is* base + L2 and is evaluated without looping over the data.

Minibatch gradient of the samples B: g_B = ∇base + 2·l2·θ + (1/|B|) Σ_{j∈B} ∇l(θ; x_j).
Gradient-noise covariance (population normalisation): C(θ) = (1/N) Σ_j (g_j − ḡ)(g_j − ḡ)ᵀ; a
minibatch of S drawn with replacement then has gradient covariance C/S, without replacement
C·(1/S − 1/N)·N/(N − 1).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from theory import _checks
from theory.landscapes import _compiled
from theory.landscapes.base import _PLAIN_HESSIAN_MAX_DIM, Functions, Landscape, _describe, call_plain, compile_user

if TYPE_CHECKING:
    from theory.landscapes.base import Minimum

__all__ = ["FiniteSumLandscape", "IsotropicNoiseFiniteSum", "ConstantNoiseFiniteSum"]


class FiniteSumLandscape(Landscape):
    """L = base + (1/N) Σ_j l(θ; data_j) + l2‖θ‖² from plain per-sample functions (module
    docstring).  Attributes as :class:`Landscape`, plus ``n_samples`` (N), ``data`` (N, k),
    ``base`` and ``sample_functions``."""

    n_samples: int
    data: np.ndarray

    def __init__(self, sample_value: Callable[..., Any], sample_gradient: Callable[..., Any],
                 sample_hessian: Callable[..., Any] | None = None, *, data: ArrayLike, dim: int,
                 minima_guesses: ArrayLike | Callable[[], ArrayLike], params: Sequence[Any] = (),
                 base: Landscape | None = None, centered: bool = False, l2: float = 0.0, name: str | None = None):
        self._setup(dim, l2, params, minima_guesses, name)
        if base is not None:
            if not isinstance(base, Landscape) or isinstance(base, FiniteSumLandscape):
                raise TypeError(f"base must be a plain (not finite-sum) Landscape, got {_describe(base)}")
            if base.dim != self.dim:
                raise ValueError(f"base must have dim = {self.dim}, got {base.dim}")
        self.base = base
        self.centered = bool(centered)
        try:
            data = np.ascontiguousarray(np.asarray(data, dtype=np.float64))
        except (TypeError, ValueError):
            raise TypeError(f"data must be a numeric array (N, k), got {_describe(data)}") from None
        if data.ndim == 1:
            data = data[:, None]
        if data.ndim != 2 or data.shape[0] < 1:
            raise ValueError(f"data must have shape (N, k) with N >= 1, got {data.shape}")
        _checks.check_finite("data", data)
        data.setflags(write=False)
        self.data = data
        self.n_samples = int(data.shape[0])
        self.sample_functions = Functions(sample_value, sample_gradient, sample_hessian)
        probe = self._probe_point()
        d = self.dim
        args = (data[0],) + self.params
        call_plain("sample_value", sample_value, probe, args, ())
        call_plain("sample_gradient", sample_gradient, probe, args, (d,))
        if sample_hessian is not None and d <= _PLAIN_HESSIAN_MAX_DIM:
            call_plain("sample_hessian", sample_hessian, probe, args, (d, d))
        sv = compile_user("sample_value", sample_value, probe, args, "scalar")
        sg = compile_user("sample_gradient", sample_gradient, probe, args, "vector")
        sh = compile_user("sample_hessian", sample_hessian, probe, args, "matrix") if sample_hessian is not None else None
        fns = _compiled.compile_finite_sum(sv, sg, sh, None if base is None else base.compiled, self.centered, self.l2)
        base_params = () if base is None else base.compiled.params
        self.compiled = _compiled.Compiled(params=(self.l2, self.params, self.data, base_params), **fns)
        self.functions = Functions(None, None, None)
        self._check_parity(probe)

    @classmethod
    def from_functions(cls, sample_value: Callable[..., Any], sample_gradient: Callable[..., Any],
                       sample_hessian: Callable[..., Any] | None = None, *, data: ArrayLike, dim: int,
                       minima_guesses: ArrayLike | Callable[[], ArrayLike], params: Sequence[Any] = (),
                       base: Landscape | None = None, centered: bool = False, l2: float = 0.0,
                       name: str | None = None) -> "FiniteSumLandscape":
        """A finite sum from plain per-sample functions (module docstring), compiled with numba;
        the full-batch Hessian is the mean of the sample Hessians, or central differences of the
        full-batch gradient when ``sample_hessian`` is not given."""
        return FiniteSumLandscape(sample_value, sample_gradient, sample_hessian, data=data, dim=dim,
                                  minima_guesses=minima_guesses, params=params, base=base, centered=centered,
                                  l2=l2, name=name)

    @classmethod
    def example(cls) -> "FiniteSumLandscape":
        """Logistic regression with a Gaussian prior: l_j = log(1 + exp(−y_j x_jᵀθ)), written with
        out-parameters (no allocation per call)."""
        rng = np.random.default_rng(0)
        x = rng.standard_normal((30, 2))
        y = np.where(x @ np.array([1.0, -0.5]) + 0.5 * rng.standard_normal(30) > 0, 1.0, -1.0)

        def value(theta, row):
            z = row[2] * (row[0] * theta[0] + row[1] * theta[1])
            return math.log1p(math.exp(-z)) if z > 0 else -z + math.log1p(math.exp(z))

        def gradient(theta, row, out):
            z = row[2] * (row[0] * theta[0] + row[1] * theta[1])
            s = -row[2] / (1.0 + math.exp(z))
            out[0] = s * row[0]
            out[1] = s * row[1]
            return out

        return cls.from_functions(value, gradient, data=np.column_stack([x, y]), dim=2,
                                  minima_guesses=[[0.0, 0.0]], l2=0.05, name="logistic regression")

    # ---- reference (interpreted) path ---------------------------------------------------------
    def _hessian_is_differenced(self) -> bool:
        return self.sample_functions.hessian is None and not self.centered

    def _sample_args(self, j):
        return (self.data[j],) + self.params

    def reference(self, theta: ArrayLike, hessian: bool = True) -> tuple:
        """(L, ∇L, ∇²L) at one point by the plain functions run in Python (see Landscape.reference)."""
        theta = np.asarray(theta, dtype=float).reshape(self.dim)
        d = self.dim
        if self.base is not None:
            v, g, h = self.base.reference(theta) if hessian else self.base.reference(theta, hessian=False) + (None,)
        else:
            v, g, h = 0.0, np.zeros(d), np.zeros((d, d))
        v += self.l2 * float(theta @ theta)
        g = g + 2 * self.l2 * theta
        if not self.centered:
            sv, sg, sh = self.sample_functions
            n = self.n_samples
            v += sum(call_plain("sample_value", sv, theta, self._sample_args(j), ()) for j in range(n)) / n
            g = g + sum(call_plain("sample_gradient", sg, theta, self._sample_args(j), (d,)) for j in range(n)) / n
        if not hessian:
            return float(v), g
        h = h + 2 * self.l2 * np.eye(d)
        if not self.centered:
            if sh is not None:
                h = h + sum(call_plain("sample_hessian", sh, theta, self._sample_args(j), (d, d)) for j in range(n)) / n
            else:
                h = self._reference_differences(theta)
        return float(v), g, h

    def reference_gradient(self, theta: ArrayLike) -> np.ndarray:
        return self.reference_sample_gradients(theta).mean(axis=0) if not self.centered else self.reference(theta)[1]

    def reference_sample_gradients(self, theta: ArrayLike) -> np.ndarray:
        """∇l_j(θ) of every sample (N, dim), including the shared part and the L2 term, by the plain functions."""
        theta = np.asarray(theta, dtype=float).reshape(self.dim)
        shared = 2 * self.l2 * theta + (self.base.reference(theta)[1] if self.base is not None else 0.0)
        return np.stack([shared + call_plain("sample_gradient", self.sample_functions.gradient, theta,
                                             self._sample_args(j), (self.dim,)) for j in range(self.n_samples)])

    # ---- per-sample vectorised API --------------------------------------------------------------
    def _evaluate_samples(self, flat, value=False, gradient=False):
        n, d = flat.shape
        v = np.empty((n if value else 0, self.n_samples))
        g = np.empty((n if gradient else 0, self.n_samples, d))
        self.compiled.evaluate_samples(flat, self.compiled.params, v, g)
        return v, g

    def sample_losses(self, theta: ArrayLike) -> np.ndarray:
        """Per-sample losses l_j(θ) (with the shared part and the L2 term), shape (..., N)."""
        flat, batch = self._flatten(theta)
        return self._evaluate_samples(flat, value=True)[0].reshape(batch + (self.n_samples,))

    def sample_gradients(self, theta: ArrayLike) -> np.ndarray:
        """Per-sample gradients ∇l_j(θ), shape (..., N, dim)."""
        flat, batch = self._flatten(theta)
        return self._evaluate_samples(flat, gradient=True)[1].reshape(batch + (self.n_samples, self.dim))

    def noise_covariance(self, theta: ArrayLike) -> np.ndarray:
        """Per-sample gradient covariance C(θ) = (1/N) Σ (g_j − ḡ)(g_j − ḡ)ᵀ, shape (..., dim, dim)."""
        flat, batch = self._flatten(theta)
        out = np.empty((flat.shape[0], self.dim, self.dim))
        for p in range(flat.shape[0]):
            self.compiled.noise_cov(flat[p], self.compiled.params, out[p])
        return out.reshape(batch + (self.dim, self.dim))


# --------------------------------------------------------------------------------------------
# Synthetic gradient noise around a base landscape: l_j(θ) = L(θ) + ξ_jᵀθ
# --------------------------------------------------------------------------------------------
def _noise_value(theta, row):
    s = 0.0
    for k in range(theta.shape[0]):
        s += row[k] * theta[k]
    return s


def _noise_gradient(theta, row):
    return row


def _noise_hessian(theta, row, out):
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = 0.0
    return out


def _whitened_draws(n_samples: int, dim: int, seed, symmetric: bool = False) -> np.ndarray:
    """Gaussian draws ξ_j (N, dim), centred and whitened: Σξ_j = 0, (1/N) Σ ξ_jξ_jᵀ = I exactly.
    ``symmetric``: N/2 draws and their negatives (N even), so that every odd moment of the samples
    vanishes exactly, not only the first."""
    # the draws, their whitened copy, the transpose solve and the landscape's own copy
    _checks.check_fits_memory("n_samples", n_samples, 4 * 8.0 * n_samples * dim,
                              f"the per-sample noise vectors (n_samples x dim = {dim} float64)",
                              advice="use fewer samples (the noise covariance is exact for any n_samples > dim)")
    rng = np.random.default_rng(seed)
    if symmetric:
        if n_samples % 2:
            raise ValueError(f"n_samples must be even for symmetric noise (pairs ±ξ), got {n_samples}")
        half = rng.standard_normal((n_samples // 2, dim))
        xi = np.concatenate([half, -half])
    else:
        xi = rng.standard_normal((n_samples, dim))
        xi -= xi.mean(axis=0)
    chol = np.linalg.cholesky(xi.T @ xi / n_samples)
    return np.linalg.solve(chol, xi.T).T


class IsotropicNoiseFiniteSum(FiniteSumLandscape):
    """l_j(θ) = L(θ) + ξ_jᵀθ with Σ_j ξ_j = 0 and (1/N) Σ_j ξ_j ξ_jᵀ = σ²I exactly.

    The ξ_j are Gaussian draws, centred and whitened, so the full-batch loss is exactly the base
    loss L and the per-sample gradient covariance is exactly σ²I at every θ: the setting of the
    paper's Theorem 1, now with real minibatches.  Needs N > dim.

    ``symmetric=True`` draws the ξ_j in pairs ±ξ (N even): every odd moment of the per-sample noise
    vanishes exactly.  A skewness γ₁ of the per-sample noise moves the stationary law of SGD at
    fixed n = η/S by O(γ₁√n), however small η (docs/beyond-the-paper.md); N Gaussian draws have
    |γ₁| ~ √(6/N) by chance, which symmetric pairs remove."""

    def __init__(self, base: Landscape, n_samples: int, sigma2: float, seed: int = 0, symmetric: bool = False):
        if isinstance(base, FiniteSumLandscape) or not isinstance(base, Landscape):
            raise TypeError("base must be a plain (non finite-sum) landscape")
        n_samples = _checks.check_int("n_samples", n_samples, minimum=2)
        if n_samples <= base.dim:
            raise ValueError(f"n_samples must be > dim = {base.dim} to whiten the per-sample noise, got {n_samples}")
        _checks.check_positive("sigma2", sigma2)
        self.sigma2 = float(sigma2)
        xi = _whitened_draws(n_samples, base.dim, seed, symmetric) * math.sqrt(self.sigma2)
        self._init_noise(base, xi)

    def _init_noise(self, base, xi):
        super().__init__(_noise_value, _noise_gradient, _noise_hessian, data=xi, dim=base.dim,
                         minima_guesses=lambda: np.stack([m.location for m in base.minima()]), base=base,
                         centered=True, name=f"{type(self).__name__}({base.name})")

    @classmethod
    def example(cls) -> IsotropicNoiseFiniteSum:
        from theory.landscapes.gaussian_wells import wells_2d

        return cls(wells_2d(), 50, 0.3, seed=1)

    # the full-batch loss is the base loss: its minima, basins and box are the base's
    def minima(self) -> list[Minimum]:
        return self.base.minima()

    def basin_index(self, theta: ArrayLike, **kw: Any) -> np.ndarray:
        return self.base.basin_index(theta, **kw)

    def bounds(self, temperature: float, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
        return self.base.bounds(temperature, **kw)


class ConstantNoiseFiniteSum(IsotropicNoiseFiniteSum):
    """l_j(θ) = L(θ) + ξ_jᵀθ with Σ_j ξ_j = 0 and (1/N) Σ_j ξ_jξ_jᵀ = C exactly, for any constant
    symmetric positive definite C: exact minibatch SGD with anisotropic constant gradient noise
    (whitened draws times the Cholesky factor of C)."""

    def __init__(self, base: Landscape, n_samples: int, noise_cov: ArrayLike, seed: int = 0):
        if isinstance(base, FiniteSumLandscape) or not isinstance(base, Landscape):
            raise TypeError("base must be a plain (non finite-sum) landscape")
        n_samples = _checks.check_int("n_samples", n_samples, minimum=2)
        if n_samples <= base.dim:
            raise ValueError(f"n_samples must be > dim = {base.dim} to whiten the per-sample noise, got {n_samples}")
        cov = _checks.check_positive_definite("noise_cov", np.atleast_2d(np.asarray(noise_cov, dtype=float)))
        if cov.shape != (base.dim, base.dim):
            raise ValueError(f"noise_cov must have shape ({base.dim}, {base.dim}), got {cov.shape}")
        self.noise_cov_const = 0.5 * (cov + cov.T)
        self.sigma2 = float(np.trace(cov) / base.dim)
        xi = _whitened_draws(n_samples, base.dim, seed) @ np.linalg.cholesky(self.noise_cov_const).T
        self._init_noise(base, xi)

    @classmethod
    def example(cls) -> ConstantNoiseFiniteSum:
        from theory.landscapes.gaussian_wells import wells_2d

        return cls(wells_2d(), 40, [[0.5, 0.2], [0.2, 0.3]], seed=2)

