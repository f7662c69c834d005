"""Two-layer network with a fixed second layer, square loss: the nonlinear model of Wang & Wu 2023.

Model (the paper's two-layer setting, notation ours; scaling 1/sqrt(m) chosen here):

    f(x; W) = (1/sqrt(m)) sum_{k=1}^m a_k phi(w_k^T x),     W = (w_1, ..., w_m)^T in R^{m x d},

with the second layer a in R^m fixed (not trained) and a smooth activation phi
(``"tanh"`` or ``"softplus"``).  Parameters theta = vec(W) row-major, theta[k*d + j] = W[k, j],
dim = m d.  Per-sample loss l_i = 1/2 (f(x_i; W) - y_i)^2 + tau ||theta||^2, L = (1/N) sum_i l_i.

Exact derivatives (r_i = f(x_i) - y_i, z_ik = w_k^T x_i):

    J_i   = grad_theta f(x_i):     block k = (a_k / sqrt(m)) phi'(z_ik) x_i
    g_i   = grad l_i = r_i J_i (+ 2 tau theta)
    G     = (1/N) sum_i J_i J_i^T                                  (Gauss-Newton, no L2 term)
    H     = G + (1/N) sum_i r_i grad^2 f(x_i) + 2 tau I,  grad^2 f(x_i) block-diagonal with
            block k = (a_k / sqrt(m)) phi''(z_ik) x_i x_i^T
    Sigma_1 = (1/N) sum_i (g_i - gbar)(g_i - gbar)^T  (the L2 term cancels).

At an interpolating point (all r_i = 0) H = G + 2 tau I and Sigma_1 = 0.

Written once as per-sample functions (the route of :mod:`theory.landscapes.finite_sum`): data
rows are (x_i, y_i), parameters (a, act) with act 0 = tanh, 1 = softplus.
"""
from __future__ import annotations

import math

import numpy as np
from numba.extending import register_jitable
from numpy.typing import ArrayLike

from theory import _checks
from theory._types import FloatArray
from theory.landscapes.finite_sum import FiniteSumLandscape

__all__ = ["TwoLayerRegression", "ACTIVATIONS"]

ACTIVATIONS = {"tanh": 0, "softplus": 1}


# ----------------------------------------------------------------------------- activations
def _phi_np(z, act):
    if act == 0:
        return np.tanh(z)
    return np.logaddexp(0.0, z)


def _dphi_np(z, act):
    if act == 0:
        t = np.tanh(z)
        return 1.0 - t * t
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # sigmoid, overflow-free


@register_jitable(inline="always")
def _phi(z, act):
    if act == 0:
        return math.tanh(z)
    if z > 0:
        return z + math.log1p(math.exp(-z))
    return math.log1p(math.exp(z))


@register_jitable(inline="always")
def _dphi(z, act):
    if act == 0:
        t = math.tanh(z)
        return 1.0 - t * t
    return 0.5 * (1.0 + math.tanh(0.5 * z))


@register_jitable(inline="always")
def _d2phi(z, act):
    if act == 0:
        t = math.tanh(z)
        return -2.0 * t * (1.0 - t * t)
    s = 0.5 * (1.0 + math.tanh(0.5 * z))
    return s * (1.0 - s)


@register_jitable(inline="always")
def _unit(theta, row, k, d):
    """Pre-activation z_k = w_k·x of hidden unit k."""
    z = 0.0
    for j in range(d):
        z += theta[k * d + j] * row[j]
    return z


@register_jitable(inline="always")
def _residual(theta, row, a, act):
    m = a.shape[0]
    d = row.shape[0] - 1
    f = 0.0
    for k in range(m):
        f += a[k] * _phi(_unit(theta, row, k, d), act)
    return f / math.sqrt(m) - row[d]


# ----------------------------------------------------------------------------- per-sample loss
def sample_value(theta, row, a, act):
    r = _residual(theta, row, a, act)
    return 0.5 * r * r


def sample_gradient(theta, row, a, act, out):
    """r_i J_i, block k of J_i = (a_k/√m) φ'(z_ik) x_i."""
    m = a.shape[0]
    d = row.shape[0] - 1
    r = _residual(theta, row, a, act)
    for k in range(m):
        c = r * a[k] / math.sqrt(m) * _dphi(_unit(theta, row, k, d), act)
        for j in range(d):
            out[k * d + j] = c * row[j]
    return out


def sample_hessian(theta, row, a, act, out):
    """J_i J_iᵀ + r_i ∇²f(x_i), ∇²f block-diagonal with block k = (a_k/√m) φ''(z_ik) x_i x_iᵀ."""
    m = a.shape[0]
    d = row.shape[0] - 1
    r = _residual(theta, row, a, act)
    inv = 1.0 / math.sqrt(m)
    for k in range(m):
        zk = _unit(theta, row, k, d)
        ck = a[k] * inv * _dphi(zk, act)
        c2 = r * a[k] * inv * _d2phi(zk, act)
        for q in range(m):
            cq = a[q] * inv * _dphi(_unit(theta, row, q, d), act)
            for i in range(d):
                for j in range(d):
                    # products grouped so that entries (a, b) and (b, a) round identically: exactly symmetric
                    out[k * d + i, q * d + j] = (ck * row[i]) * (cq * row[j]) + (c2 * (row[i] * row[j]) if k == q else 0.0)
    return out


# ----------------------------------------------------------------------------- landscape
class TwoLayerRegression(FiniteSumLandscape):
    """Two-layer network f(x; W) = (1/sqrt(m)) sum_k a_k phi(w_k^T x), fixed a, square loss.

    Parameters: ``inputs`` (N, d), ``targets`` (N,), ``second_layer`` a (m,) (fixed),
    ``activation`` "tanh" (default) or "softplus", ``l2`` = tau >= 0.
    Over-parameterised (m d >= N) problems have manifolds of global minima, so
    :meth:`minima` is not available; use :meth:`teacher` to build a problem with a known
    interpolating minimum.
    """

    def __init__(self, inputs: ArrayLike, targets: ArrayLike, second_layer: ArrayLike, activation: str = "tanh",
                 l2: float = 0.0):
        x = np.atleast_2d(np.asarray(inputs, dtype=float))
        y = np.asarray(targets, dtype=float).reshape(-1)
        a = np.asarray(second_layer, dtype=float).reshape(-1)
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"inputs and targets must have the same number of rows, got {x.shape[0]} and {y.shape[0]}"
            )
        if a.size < 1:
            raise ValueError("second_layer must have at least one entry (width m >= 1)")
        _checks.check_finite("inputs", x)
        _checks.check_finite("targets", y)
        _checks.check_finite("second_layer", a)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.width = a.size
        self.input_dim = x.shape[1]
        self.inputs, self.targets, self.second_layer = x, y, a
        self.activation = activation
        self._act = ACTIVATIONS[activation]
        super().__init__(sample_value, sample_gradient, sample_hessian, data=np.column_stack([x, y]),
                         dim=self.width * self.input_dim, params=(a, float(self._act)), l2=l2,
                         minima_guesses=self._no_minima)

    @staticmethod
    def _no_minima():
        raise NotImplementedError("TwoLayerRegression has manifolds of global minima; use TwoLayerRegression.teacher "
                         "for a known interpolating minimum")

    @classmethod
    def example(cls) -> TwoLayerRegression:
        return cls.teacher(n_samples=6, input_dim=2, width=2, seed=1, l2=0.01)[0]

    # ---- constructors ---------------------------------------------------------------------
    @classmethod
    def teacher(cls, *, n_samples: int, input_dim: int, width: int, seed: int = 0, weight_scale: float = 1.0,
                activation: str = "tanh", l2: float = 0.0) -> tuple[TwoLayerRegression, FloatArray]:
        """Problem whose labels are produced by the model itself at W* (a known global minimum).

        x_i ~ N(0, I_d / d), a_k = +-1 (random signs), W*_kj ~ N(0, weight_scale^2);
        y_i = f(x_i; W*).  Returns (landscape, theta_star).  Seeded by SeedSequence(seed).
        """
        n = _checks.check_int("n_samples", n_samples, minimum=1)
        d = _checks.check_int("input_dim", input_dim, minimum=1)
        m = _checks.check_int("width", width, minimum=1)
        _checks.check_positive("weight_scale", weight_scale)
        # inputs (and the landscape's copies of them), targets and the teacher's weights
        _checks.check_fits_memory("n_samples", n, 8.0 * (3 * n * d + 2 * n + m * d),
                                  f"the inputs (n_samples x input_dim = {d} float64)",
                                  advice="use fewer samples or a smaller input_dim")
        rng = np.random.default_rng(np.random.SeedSequence(seed))
        x = rng.standard_normal((n, d)) / math.sqrt(d)
        a = rng.choice([-1.0, 1.0], size=m)
        w = weight_scale * rng.standard_normal((m, d))
        tmp = cls(x, np.zeros(n), a, activation=activation, l2=l2)
        theta_star = w.ravel()
        y = tmp.predict(theta_star)
        return cls(x, y, a, activation=activation, l2=l2), theta_star

    # ---- model pieces ---------------------------------------------------------------------
    def _pre(self, flat):
        w = flat.reshape(flat.shape[0], self.width, self.input_dim)
        return np.einsum("nkj,ij->nik", w, self.inputs)  # (n, N, m)

    def predict(self, theta: ArrayLike) -> np.ndarray:
        """f(x_i; W) for the training inputs, shape (..., N)."""
        flat, batch = self._flatten(theta)
        z = self._pre(flat)
        f = _phi_np(z, self._act) @ self.second_layer / math.sqrt(self.width)
        return f.reshape(batch + (self.n_samples,))

    def residuals(self, theta: ArrayLike) -> np.ndarray:
        """r_i = f(x_i; W) - y_i, shape (..., N)."""
        return self.predict(theta) - self.targets

    def _jac_flat(self, flat):
        z = self._pre(flat)  # (n, N, m)
        c = _dphi_np(z, self._act) * self.second_layer / math.sqrt(self.width)
        j = c[:, :, :, None] * self.inputs[None, :, None, :]  # (n, N, m, d)
        return j.reshape(flat.shape[0], self.n_samples, self.dim)

    def jacobians(self, theta: ArrayLike) -> np.ndarray:
        """J_i = grad_theta f(x_i; W), shape (..., N, dim)."""
        flat, batch = self._flatten(theta)
        return self._jac_flat(flat).reshape(batch + (self.n_samples, self.dim))

    def gauss_newton(self, theta: ArrayLike) -> np.ndarray:
        """G(theta) = (1/N) sum_i J_i J_i^T (no L2 term), shape (..., dim, dim)."""
        flat, batch = self._flatten(theta)
        j = self._jac_flat(flat)
        g = np.einsum("nsi,nsj->nij", j, j) / self.n_samples
        return g.reshape(batch + (self.dim, self.dim))

    def __repr__(self) -> str:
        return (f"TwoLayerRegression(N={self.n_samples}, d={self.input_dim}, m={self.width}, "
                f"activation={self.activation!r}, l2={self.l2})")
