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

Numba kernels (signatures of :mod:`theory.landscapes`) read
``params = [l2, N, d, m, act, a (m), X (N*d), y (N)]`` (act 0 = tanh, 1 = softplus) and
``data = [X | y]`` (N, d + 1).
"""
from __future__ import annotations

import math

import numba
import numpy as np

from theory import _checks
from theory.landscapes import FiniteSumLandscape, Kernels

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


def _d2phi_np(z, act):
    if act == 0:
        t = np.tanh(z)
        return -2.0 * t * (1.0 - t * t)
    s = 0.5 * (1.0 + np.tanh(0.5 * z))
    return s * (1.0 - s)


@numba.njit(nogil=True, cache=True)
def _phi(z, act):
    if act == 0:
        return math.tanh(z)
    if z > 0:
        return z + math.log1p(math.exp(-z))
    return math.log1p(math.exp(z))


@numba.njit(nogil=True, cache=True)
def _dphi(z, act):
    if act == 0:
        t = math.tanh(z)
        return 1.0 - t * t
    return 0.5 * (1.0 + math.tanh(0.5 * z))


# ----------------------------------------------------------------------------- kernels
@numba.njit(nogil=True, cache=True)
def _residual_nb(theta, params, x_row, y, m, d, act, a_off):
    # forward pass for one sample, returns r = f(x) - y
    inv = 1.0 / math.sqrt(m)
    f = 0.0
    for k in range(m):
        z = 0.0
        for j in range(d):
            z += theta[k * d + j] * x_row[j]
        f += params[a_off + k] * _phi(z, act)
    return f * inv - y


@numba.njit(nogil=True, cache=True)
def _sample_grad_nb(theta, params, x_row, r, m, d, act, a_off, scale, out):
    # out += scale * r * J(x), J block k = a_k/sqrt(m) phi'(w_k.x) x
    inv = 1.0 / math.sqrt(m)
    for k in range(m):
        z = 0.0
        for j in range(d):
            z += theta[k * d + j] * x_row[j]
        c = scale * r * params[a_off + k] * inv * _dphi(z, act)
        for j in range(d):
            out[k * d + j] += c * x_row[j]


@numba.njit(nogil=True, cache=True)
def _tl_value(theta, params):
    l2 = params[0]
    N = int(params[1])
    d = int(params[2])
    m = int(params[3])
    act = int(params[4])
    a_off = 5
    x_off = 5 + m
    y_off = x_off + N * d
    v = 0.0
    for n in range(N):
        x_row = params[x_off + n * d: x_off + (n + 1) * d]
        r = _residual_nb(theta, params, x_row, params[y_off + n], m, d, act, a_off)
        v += 0.5 * r * r
    v /= N
    for k in range(theta.shape[0]):
        v += l2 * theta[k] * theta[k]
    return v


@numba.njit(nogil=True, cache=True)
def _tl_grad(theta, params, out):
    l2 = params[0]
    N = int(params[1])
    d = int(params[2])
    m = int(params[3])
    act = int(params[4])
    a_off = 5
    x_off = 5 + m
    y_off = x_off + N * d
    for k in range(theta.shape[0]):
        out[k] = 2.0 * l2 * theta[k]
    for n in range(N):
        x_row = params[x_off + n * d: x_off + (n + 1) * d]
        r = _residual_nb(theta, params, x_row, params[y_off + n], m, d, act, a_off)
        _sample_grad_nb(theta, params, x_row, r, m, d, act, a_off, 1.0 / N, out)


@numba.njit(nogil=True, cache=True)
def _tl_batch_grad(theta, params, data, idx, out):
    l2 = params[0]
    d = int(params[2])
    m = int(params[3])
    act = int(params[4])
    a_off = 5
    S = idx.shape[0]
    for k in range(theta.shape[0]):
        out[k] = 2.0 * l2 * theta[k]
    for s in range(S):
        n = idx[s]
        x_row = data[n, :d]
        r = _residual_nb(theta, params, x_row, data[n, d], m, d, act, a_off)
        _sample_grad_nb(theta, params, x_row, r, m, d, act, a_off, 1.0 / S, out)


@numba.njit(nogil=True, cache=True)
def _tl_noise_cov(theta, params, data, out):
    N = data.shape[0]
    d = int(params[2])
    m = int(params[3])
    act = int(params[4])
    a_off = 5
    D = theta.shape[0]
    mean = np.zeros(D)
    g = np.zeros(D)
    for i in range(D):
        for j in range(D):
            out[i, j] = 0.0
    for n in range(N):
        x_row = data[n, :d]
        r = _residual_nb(theta, params, x_row, data[n, d], m, d, act, a_off)
        for i in range(D):
            g[i] = 0.0
        _sample_grad_nb(theta, params, x_row, r, m, d, act, a_off, 1.0, g)
        for i in range(D):
            mean[i] += g[i] / N
            gi = g[i] / N
            for j in range(D):
                out[i, j] += gi * g[j]
    for i in range(D):
        for j in range(D):
            out[i, j] -= mean[i] * mean[j]


# ----------------------------------------------------------------------------- landscape
class TwoLayerRegression(FiniteSumLandscape):
    """Two-layer network f(x; W) = (1/sqrt(m)) sum_k a_k phi(w_k^T x), fixed a, square loss.

    Parameters: ``inputs`` (N, d), ``targets`` (N,), ``second_layer`` a (m,) (fixed),
    ``activation`` "tanh" (default) or "softplus", ``l2`` = tau >= 0.
    Over-parameterised (m d >= N) problems have manifolds of global minima, so
    :meth:`minima` is not available; use :meth:`teacher` to build a problem with a known
    interpolating minimum.
    """

    def __init__(self, inputs, targets, second_layer, activation: str = "tanh", l2: float = 0.0):
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
        super().__init__(self.width * self.input_dim, l2)
        self.inputs, self.targets, self.second_layer = x, y, a
        self.activation = activation
        self._act = ACTIVATIONS[activation]
        self.n_samples = x.shape[0]
        self.data = np.ascontiguousarray(np.column_stack([x, y]))
        self.params = np.concatenate(
            [[self.l2, self.n_samples, self.input_dim, self.width, self._act], a, x.ravel(), y]
        )

    # ---- constructors ---------------------------------------------------------------------
    @classmethod
    def teacher(cls, *, n_samples: int, input_dim: int, width: int, seed: int = 0,
                weight_scale: float = 1.0, activation: str = "tanh", l2: float = 0.0):
        """Problem whose labels are produced by the model itself at W* (a known global minimum).

        x_i ~ N(0, I_d / d), a_k = +-1 (random signs), W*_kj ~ N(0, weight_scale^2);
        y_i = f(x_i; W*).  Returns (landscape, theta_star).  Seeded by SeedSequence(seed).
        """
        n = _checks.check_int("n_samples", n_samples, minimum=1)
        d = _checks.check_int("input_dim", input_dim, minimum=1)
        m = _checks.check_int("width", width, minimum=1)
        _checks.check_positive("weight_scale", weight_scale)
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

    def predict(self, theta):
        """f(x_i; W) for the training inputs, shape (..., N)."""
        flat, batch = self._flatten(theta)
        z = self._pre(flat)
        f = _phi_np(z, self._act) @ self.second_layer / math.sqrt(self.width)
        return f.reshape(batch + (self.n_samples,))

    def residuals(self, theta):
        """r_i = f(x_i; W) - y_i, shape (..., N)."""
        return self.predict(theta) - self.targets

    def _jac_flat(self, flat):
        z = self._pre(flat)  # (n, N, m)
        c = _dphi_np(z, self._act) * self.second_layer / math.sqrt(self.width)
        j = c[:, :, :, None] * self.inputs[None, :, None, :]  # (n, N, m, d)
        return j.reshape(flat.shape[0], self.n_samples, self.dim)

    def jacobians(self, theta):
        """J_i = grad_theta f(x_i; W), shape (..., N, dim)."""
        flat, batch = self._flatten(theta)
        return self._jac_flat(flat).reshape(batch + (self.n_samples, self.dim))

    def gauss_newton(self, theta):
        """G(theta) = (1/N) sum_i J_i J_i^T (no L2 term), shape (..., dim, dim)."""
        flat, batch = self._flatten(theta)
        j = self._jac_flat(flat)
        g = np.einsum("nsi,nsj->nij", j, j) / self.n_samples
        return g.reshape(batch + (self.dim, self.dim))

    # ---- FiniteSumLandscape hooks -----------------------------------------------------------
    def _residuals_flat(self, flat):
        z = self._pre(flat)
        return _phi_np(z, self._act) @ self.second_layer / math.sqrt(self.width) - self.targets[None, :]

    def _sample_losses(self, x):
        return 0.5 * self._residuals_flat(x) ** 2

    def _sample_gradients(self, x):
        return self._residuals_flat(x)[:, :, None] * self._jac_flat(x)

    def _hessian(self, x):
        n = x.shape[0]
        z = self._pre(x)
        r = self._residuals_flat(x)  # (n, N)
        j = self._jac_flat(x)
        h = np.einsum("nsi,nsj->nij", j, j) / self.n_samples
        c2 = _d2phi_np(z, self._act) * self.second_layer / math.sqrt(self.width)  # (n, N, m)
        # block k: (1/N) sum_i r_i c2_ik x_i x_i^T
        blocks = np.einsum("ns,nsk,si,sj->nkij", r, c2, self.inputs, self.inputs) / self.n_samples
        d = self.input_dim
        h = h.reshape(n, self.width, d, self.width, d)
        for k in range(self.width):
            h[:, k, :, k, :] += blocks[:, k]
        h = h.reshape(n, self.dim, self.dim)
        return 0.5 * (h + np.swapaxes(h, -1, -2))  # exactly symmetric despite summation order

    def _minimum_guesses(self):
        raise NotImplementedError(
            "TwoLayerRegression has manifolds of global minima; use TwoLayerRegression.teacher "
            "for a known interpolating minimum"
        )

    @property
    def kernels(self) -> Kernels:
        return Kernels(_tl_value, _tl_grad, _tl_batch_grad, _tl_noise_cov)

    def __repr__(self) -> str:
        return (f"TwoLayerRegression(N={self.n_samples}, d={self.input_dim}, m={self.width}, "
                f"activation={self.activation!r}, l2={self.l2})")
