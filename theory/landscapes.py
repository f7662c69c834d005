"""Synthetic loss landscapes: one small object per loss, used by theory, sim and validation.

Every landscape offers

* vectorised NumPy ``value``, ``gradient`` and ``hessian`` on arrays of shape ``(..., dim)``;
* its local minima (location, loss, Hessian), found numerically once and cached;
* ``basin_index`` (which minimum's basin of attraction of gradient flow holds a point);
* ``bounds(temperature)`` (a box holding essentially all the Gibbs mass);
* Numba kernels with plain-array signatures (``kernels``), which the simulators in :mod:`sim`
  call from compiled code.  The kernels read the landscape's parameters from ``params`` so that
  new parameter values never trigger a recompilation.

Every loss may carry the L2 term ``l2 * ||theta||^2`` (the paper's τ‖θ‖², footnote 1 and eq. 22),
which makes the Gibbs density normalisable.

Finite-sum landscapes (:class:`FiniteSumLandscape`) also define per-sample losses
``l_i`` with ``L = (1/N) Σ l_i``, so that real minibatch SGD can be simulated.

Kernel signatures (all arrays float64 and C-contiguous unless stated)::

    value_kernel(theta (d,), params) -> float
    grad_kernel(theta (d,), params, out (d,)) -> None
    batch_grad_kernel(theta (d,), params, data (N, k), idx int64 (S,), out (d,)) -> None
    noise_cov_kernel(theta (d,), params, data (N, k), out (d, d)) -> None

``batch_grad_kernel`` is the mean of the per-sample gradients over ``idx``; ``noise_cov_kernel``
the per-sample gradient covariance ``C(θ) = (1/N) Σ (g_i − ḡ)(g_i − ḡ)ᵀ``.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Sequence

import numba
import numpy as np
from scipy import optimize

from theory import _checks

__all__ = [
    "Minimum",
    "Kernels",
    "Landscape",
    "Quadratic",
    "QuarticDoubleWell",
    "GaussianWells",
    "double_well_1d",
    "wells_2d",
    "multi_well",
    "FiniteSumLandscape",
    "IsotropicNoiseFiniteSum",
    "LeastSquares",
]


# --------------------------------------------------------------------------------------------
# Minimum record
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Minimum:
    """A strict local minimum: location θ_A, loss L_A and (positive definite) Hessian H_A."""

    location: np.ndarray
    loss: float
    hessian: np.ndarray
    _logdet: float = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        location = np.atleast_1d(np.asarray(self.location, dtype=float))
        hessian = np.atleast_2d(np.asarray(self.hessian, dtype=float))
        _checks.check_finite("location", location)
        _checks.check_finite("loss", self.loss)
        if hessian.shape != (location.size, location.size):
            raise ValueError(
                f"hessian must have shape ({location.size}, {location.size}) to match location, "
                f"got {hessian.shape}"
            )
        hessian = 0.5 * (hessian + hessian.T)
        _checks.check_positive_definite("hessian", hessian)
        object.__setattr__(self, "location", location)
        object.__setattr__(self, "loss", float(self.loss))
        object.__setattr__(self, "hessian", hessian)
        chol = np.linalg.cholesky(hessian)
        object.__setattr__(self, "_logdet", float(2.0 * np.sum(np.log(np.diag(chol)))))

    @property
    def dim(self) -> int:
        return self.location.size

    @property
    def logdet(self) -> float:
        """log det H_A (computed from the Cholesky factor, no overflow in high dimension)."""
        return self._logdet

    @property
    def eigenvalues(self) -> np.ndarray:
        return np.linalg.eigvalsh(self.hessian)


class Kernels(NamedTuple):
    """Numba-compiled kernels of one landscape (see the module docstring for signatures)."""

    value: Callable
    grad: Callable
    batch_grad: Callable | None = None
    noise_cov: Callable | None = None


@functools.lru_cache(maxsize=None)
def _flow_kernel(value_k, grad_k):
    """Compiled gradient-flow basin classifier for one landscape type (see Landscape.basin_index)."""

    @numba.njit(nogil=True)
    def flow(points, params, locs, capture, h0, h_max, max_len, max_iter, out):
        n, d = points.shape
        n_min = locs.shape[0]
        x = np.empty(d)
        g = np.empty(d)
        xn = np.empty(d)
        for p in range(n):
            for k in range(d):
                x[k] = points[p, k]
            h = h0
            v = value_k(x, params)
            label = -1
            best = 0
            for _ in range(max_iter):
                best = 0
                best_d2 = 1e300
                for m in range(n_min):
                    s = 0.0
                    for k in range(d):
                        s += (x[k] - locs[m, k]) ** 2
                    if s < best_d2:
                        best_d2 = s
                        best = m
                if math.sqrt(best_d2) < capture[best]:
                    label = best
                    break
                grad_k(x, params, g)
                gn2 = 0.0
                for k in range(d):
                    gn2 += g[k] * g[k]
                length = h * math.sqrt(gn2)
                scale = 1.0 if length <= max_len else max_len / length
                for k in range(d):
                    xn[k] = x[k] - h * scale * g[k]
                vn = value_k(xn, params)
                if vn <= v - 0.25 * h * scale * gn2:
                    for k in range(d):
                        x[k] = xn[k]
                    v = vn
                    h = min(2.0 * h, h_max)
                else:
                    h *= 0.5
            out[p] = label if label >= 0 else best

    return flow


# --------------------------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------------------------
class Landscape:
    """Base class.  Subclasses implement ``_value``, ``_gradient``, ``_hessian`` on arrays of
    shape (n, dim) *without* the L2 term (the base adds it), ``_minimum_guesses`` and ``kernels``."""

    dim: int
    l2: float
    params: np.ndarray

    def __init__(self, dim: int, l2: float = 0.0):
        self.dim = _checks.check_int("dim", dim, minimum=1)
        _checks.check_nonnegative("l2", l2)
        self.l2 = float(l2)
        self._minima_cache: list[Minimum] | None = None

    # ---- shape handling ------------------------------------------------------------------
    def _flatten(self, theta) -> tuple[np.ndarray, tuple]:
        arr = np.asarray(theta, dtype=float)
        if self.dim == 1 and (arr.ndim == 0 or arr.shape[-1] != 1):
            # 1-D landscapes accept plain arrays of coordinates as a convenience
            arr = arr[..., None]
        if arr.shape[-1] != self.dim:
            raise ValueError(f"theta must have last axis of length dim = {self.dim}, got shape {arr.shape}")
        batch = arr.shape[:-1]
        return arr.reshape(-1, self.dim), batch

    def _unflatten_like(self, theta, values: np.ndarray, batch: tuple, tail: tuple):
        out = values.reshape(batch + tail)
        return out

    # ---- public vectorised API -------------------------------------------------------------
    def value(self, theta) -> np.ndarray:
        """Loss L(θ) (including the L2 term) for θ of shape (..., dim); returns shape (...)."""
        flat, batch = self._flatten(theta)
        v = self._value(flat) + self.l2 * np.sum(flat * flat, axis=-1)
        return v.reshape(batch) if batch else float(v[0])

    def gradient(self, theta) -> np.ndarray:
        """∇L(θ), shape (..., dim) (for 1-D landscapes called with plain coordinates: shape (...))."""
        arr = np.asarray(theta, dtype=float)
        plain_1d = self.dim == 1 and (arr.ndim == 0 or arr.shape[-1] != 1)
        flat, batch = self._flatten(theta)
        g = self._gradient(flat) + 2.0 * self.l2 * flat
        if plain_1d:
            return g[:, 0].reshape(batch) if batch else float(g[0, 0])
        return g.reshape(batch + (self.dim,))

    def hessian(self, theta) -> np.ndarray:
        """∇²L(θ), shape (..., dim, dim)."""
        flat, batch = self._flatten(theta)
        h = self._hessian(flat) + 2.0 * self.l2 * np.eye(self.dim)
        return h.reshape(batch + (self.dim, self.dim))

    # ---- minima ----------------------------------------------------------------------------
    def _minimum_guesses(self) -> np.ndarray:
        raise NotImplementedError

    def minima(self) -> list[Minimum]:
        """Local minima found numerically from the landscape's starting guesses, cached.

        Sorted by location (lexicographically), so the order is stable across parameter tweaks."""
        if self._minima_cache is None:
            self._minima_cache = self._find_minima()
        return list(self._minima_cache)

    def _find_minima(self) -> list[Minimum]:
        found: list[np.ndarray] = []
        for guess in np.atleast_2d(self._minimum_guesses()):
            res = optimize.minimize(
                lambda x: float(self.value(x[None, :])[0]),
                guess,
                jac=lambda x: self.gradient(x[None, :])[0],
                hess=lambda x: self.hessian(x[None, :])[0],
                method="trust-exact",
                options={"gtol": 1e-12, "maxiter": 500},
            )
            x = res.x
            # polish with Newton steps: the minima are used as exact references
            for _ in range(20):
                g = self.gradient(x[None, :])[0]
                h = self.hessian(x[None, :])[0]
                try:
                    step = np.linalg.solve(h, g)
                except np.linalg.LinAlgError:
                    break
                x = x - step
                if np.linalg.norm(step) < 1e-15 * max(1.0, np.linalg.norm(x)):
                    break
            h = self.hessian(x[None, :])[0]
            if np.linalg.eigvalsh(h)[0] <= 0 or not np.all(np.isfinite(x)):
                continue
            scale = 1e-6 * max(1.0, float(np.max(np.abs(x))))
            if any(np.max(np.abs(x - y)) < scale for y in found):
                continue
            found.append(x)
        if not found:
            raise RuntimeError(f"{type(self).__name__}: no strict local minimum found")
        found.sort(key=lambda x: tuple(x))
        return [Minimum(x, float(self.value(x[None, :])[0]), self.hessian(x[None, :])[0]) for x in found]

    # ---- basins ----------------------------------------------------------------------------
    def basin_index(self, theta, *, max_iter: int = 20000) -> np.ndarray:
        """Index (into ``minima()``) of the basin of attraction of gradient flow containing θ.

        Generic method: follow gradient flow by descent steps (per-point adaptive step with an
        Armijo test, each step shorter than 5% of the smallest distance between minima), until each point is inside a small ball around
        a minimum, where the quadratic approximation makes the attribution certain.  Points left
        on a saddle's stable manifold after ``max_iter`` steps go to the nearest minimum."""
        flat, batch = self._flatten(theta)
        mins = self.minima()
        locs = np.stack([m.location for m in mins])
        if len(mins) == 1:
            return np.zeros(batch, dtype=np.int64) if batch else 0
        lam_max = max(float(m.eigenvalues[-1]) for m in mins)
        sep = min(
            np.linalg.norm(locs[i] - locs[j]) for i in range(len(locs)) for j in range(i + 1, len(locs))
        )
        capture = np.array([0.05 * sep * min(1.0, math.sqrt(float(m.eigenvalues[0]) / lam_max)) for m in mins])
        max_len = 0.05 * sep
        try:
            kern = self.kernels
        except NotImplementedError:
            kern = None
        if kern is not None:
            out = np.empty(flat.shape[0], dtype=np.int64)
            flow = _flow_kernel(kern.value, kern.grad)
            flow(np.ascontiguousarray(flat), self.params, np.ascontiguousarray(locs), capture,
                 0.5 / lam_max, 1e6 / lam_max, max_len, max_iter, out)
            return out.reshape(batch) if batch else int(out[0])
        x = flat.copy()
        h = np.full(x.shape[0], 0.5 / lam_max)
        value = np.asarray(self.value(x), dtype=float).reshape(-1)
        label = np.full(x.shape[0], -1, dtype=np.int64)
        active = np.arange(x.shape[0])
        for _ in range(max_iter):
            if active.size == 0:
                break
            xa = x[active]
            d2 = np.sum((xa[:, None, :] - locs[None, :, :]) ** 2, axis=-1)
            near = np.argmin(d2, axis=1)
            done = np.sqrt(d2[np.arange(active.size), near]) < capture[near]
            label[active[done]] = near[done]
            active = active[~done]
            xa = xa[~done]
            if active.size == 0:
                break
            # descent with a per-point step (Armijo test, grow on success, halve on failure),
            # each step shorter than max_len so that no step can jump over a ridge between basins
            g = self.gradient(xa)
            ha = h[active]
            step = -ha[:, None] * g
            norm = np.linalg.norm(step, axis=-1)
            scale = np.minimum(1.0, max_len / np.maximum(norm, 1e-300))
            step *= scale[:, None]
            x_new = xa + step
            v_new = np.asarray(self.value(x_new), dtype=float).reshape(-1)
            ok = v_new <= value[active] - 0.25 * np.sum(-step * g, axis=-1)
            acc = active[ok]
            x[acc] = x_new[ok]
            value[acc] = v_new[ok]
            h[acc] = np.minimum(ha[ok] * 2.0, 1e6 / lam_max)
            h[active[~ok]] = ha[~ok] * 0.5
        if active.size:
            d2 = np.sum((x[active][:, None, :] - locs[None, :, :]) ** 2, axis=-1)
            label[active] = np.argmin(d2, axis=1)
        return label.reshape(batch) if batch else int(label[0])

    # ---- integration box -------------------------------------------------------------------
    def bounds(self, temperature: float, *, n_sigma_loss: float = 40.0) -> tuple[np.ndarray, np.ndarray]:
        """A box (low, high) outside of which the Gibbs density exp(−L/T) is below
        exp(−n_sigma_loss) times its peak on every face (checked on a grid of each face for
        dim ≤ 3, along the axes through the minima otherwise)."""
        _checks.check_positive("temperature", temperature)
        mins = self.minima()
        locs = np.stack([m.location for m in mins])
        lmin = min(m.loss for m in mins)
        lam_min = min(float(m.eigenvalues[0]) for m in mins)
        pad = 3.0 * math.sqrt(temperature / lam_min) + 1e-3
        low = locs.min(axis=0) - pad
        high = locs.max(axis=0) + pad
        threshold = lmin + n_sigma_loss * temperature
        for _ in range(200):
            grew = False
            for axis in range(self.dim):
                for side, arr in ((0, low), (1, high)):
                    pts = self._face_points(low, high, axis, side, locs)
                    if np.min(self.value(pts)) < threshold:
                        width = high[axis] - low[axis]
                        arr[axis] += (-1 if side == 0 else 1) * 0.25 * width
                        grew = True
            if not grew:
                break
        return low, high

    def _face_points(self, low, high, axis, side, locs) -> np.ndarray:
        coord = low[axis] if side == 0 else high[axis]
        if self.dim <= 3:
            axes = [np.linspace(low[k], high[k], 41) if k != axis else np.array([coord]) for k in range(self.dim)]
            return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, self.dim)
        pts = locs.copy()
        pts[:, axis] = coord
        return pts

    # ---- kernels ---------------------------------------------------------------------------
    @property
    def kernels(self) -> Kernels:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, l2={self.l2})"


# --------------------------------------------------------------------------------------------
# Quadratic
# --------------------------------------------------------------------------------------------
@numba.njit(nogil=True, cache=True)
def _quad_value(theta, params):
    # params = [l2, d, center (d), H (d*d)]
    d = int(params[1])
    v = 0.0
    for i in range(d):
        yi = theta[i] - params[2 + i]
        for j in range(d):
            v += 0.5 * yi * params[2 + d + i * d + j] * (theta[j] - params[2 + j])
        v += params[0] * theta[i] * theta[i]
    return v


@numba.njit(nogil=True, cache=True)
def _quad_grad(theta, params, out):
    d = int(params[1])
    for i in range(d):
        s = 0.0
        for j in range(d):
            s += params[2 + d + i * d + j] * (theta[j] - params[2 + j])
        out[i] = s + 2.0 * params[0] * theta[i]


class Quadratic(Landscape):
    """L(θ) = ½(θ − c)ᵀH(θ − c) + τ‖θ‖², H symmetric positive definite.

    With isotropic noise this is the Ornstein–Uhlenbeck case, exactly solvable."""

    def __init__(self, hessian, center=None, l2: float = 0.0):
        hessian = _checks.check_positive_definite("hessian", np.atleast_2d(np.asarray(hessian, dtype=float)))
        super().__init__(hessian.shape[0], l2)
        self.H = 0.5 * (hessian + hessian.T)
        self.center = np.zeros(self.dim) if center is None else np.asarray(center, dtype=float).reshape(self.dim)
        _checks.check_finite("center", self.center)
        self.params = np.concatenate([[self.l2, self.dim], self.center, self.H.ravel()])

    def _value(self, x):
        y = x - self.center
        return 0.5 * np.einsum("ni,ij,nj->n", y, self.H, y)

    def _gradient(self, x):
        return (x - self.center) @ self.H

    def _hessian(self, x):
        return np.broadcast_to(self.H, (x.shape[0], self.dim, self.dim)).copy()

    def _minimum_guesses(self):
        full = self.H + 2 * self.l2 * np.eye(self.dim)
        return np.linalg.solve(full, self.H @ self.center)[None, :]

    @property
    def kernels(self) -> Kernels:
        return Kernels(_quad_value, _quad_grad)


# --------------------------------------------------------------------------------------------
# Quartic tilted double well (the benchmark problem of the performance anchors)
# --------------------------------------------------------------------------------------------
@numba.njit(nogil=True, cache=True)
def _quartic_value(theta, params):
    # params = [l2, tilt]
    x = theta[0]
    u = x * x - 1.0
    return 0.25 * u * u + params[1] * x + params[0] * x * x


@numba.njit(nogil=True, cache=True)
def _quartic_grad(theta, params, out):
    x = theta[0]
    out[0] = x * x * x - x + params[1] + 2.0 * params[0] * x


class QuarticDoubleWell(Landscape):
    """L(x) = (x² − 1)²/4 + tilt·x + τx²: the classic 1-D asymmetric double well.

    Depth and curvature of its two wells are tied together by ``tilt``; use
    :func:`double_well_1d` to choose them separately."""

    def __init__(self, tilt: float = 0.1, l2: float = 0.0):
        super().__init__(1, l2)
        _checks.check_finite("tilt", tilt)
        self.tilt = float(tilt)
        self.params = np.array([self.l2, self.tilt])

    def _value(self, x):
        u = x[:, 0] ** 2 - 1.0
        return 0.25 * u * u + self.tilt * x[:, 0]

    def _gradient(self, x):
        return (x[:, 0] ** 3 - x[:, 0] + self.tilt)[:, None]

    def _hessian(self, x):
        return (3.0 * x[:, 0] ** 2 - 1.0)[:, None, None]

    def _minimum_guesses(self):
        return np.array([[-1.0], [1.0]])

    def basin_index(self, theta, **_):
        return _basin_index_1d(self, theta)

    @property
    def kernels(self) -> Kernels:
        return Kernels(_quartic_value, _quartic_grad)


def _saddles_1d(landscape: Landscape) -> np.ndarray:
    """Local maxima between consecutive minima of a 1-D landscape."""
    mins = [m.location[0] for m in landscape.minima()]
    out = []
    for a, b in zip(mins[:-1], mins[1:]):
        res = optimize.minimize_scalar(
            lambda x: -float(landscape.value(np.array([[x]]))[0]), bounds=(a, b), method="bounded",
            options={"xatol": 1e-12},
        )
        x = res.x
        # Brent on a flat top is limited to ~sqrt(machine eps) in x: polish with Newton on L'
        for _ in range(8):
            g = float(landscape.gradient(np.array([[x]]))[0, 0])
            h = float(landscape.hessian(np.array([[x]]))[0, 0, 0])
            if h >= 0 or g == 0:
                break
            x_new = x - g / h
            if not (a < x_new < b):
                break
            x = x_new
        out.append(x)
    return np.array(out)


def _basin_index_1d(landscape: Landscape, theta):
    flat, batch = landscape._flatten(theta)
    if not hasattr(landscape, "_saddle_cache"):
        landscape._saddle_cache = _saddles_1d(landscape)
    idx = np.searchsorted(landscape._saddle_cache, flat[:, 0]).astype(np.int64)
    return idx.reshape(batch) if batch else int(idx[0])


# --------------------------------------------------------------------------------------------
# Gaussian wells: 1-D, 2-D, d-D multi-well landscapes with chosen depths and Hessians
# --------------------------------------------------------------------------------------------
@numba.njit(nogil=True, cache=True)
def _wells_value(theta, params):
    # params = [l2, offset, K, d, D (K), centers (K*d), precisions (K*d*d)]
    K = int(params[2])
    d = int(params[3])
    base_c = 4 + K
    base_p = base_c + K * d
    v = params[1]
    for k in range(K):
        q = 0.0
        for i in range(d):
            yi = theta[i] - params[base_c + k * d + i]
            row = base_p + k * d * d + i * d
            for j in range(d):
                q += yi * params[row + j] * (theta[j] - params[base_c + k * d + j])
        v -= params[4 + k] * math.exp(-0.5 * q)
    for i in range(d):
        v += params[0] * theta[i] * theta[i]
    return v


@numba.njit(nogil=True, cache=True)
def _wells_grad(theta, params, out):
    K = int(params[2])
    d = int(params[3])
    base_c = 4 + K
    base_p = base_c + K * d
    for i in range(d):
        out[i] = 2.0 * params[0] * theta[i]
    for k in range(K):
        q = 0.0
        for i in range(d):
            yi = theta[i] - params[base_c + k * d + i]
            row = base_p + k * d * d + i * d
            for j in range(d):
                q += yi * params[row + j] * (theta[j] - params[base_c + k * d + j])
        w = params[4 + k] * math.exp(-0.5 * q)
        for i in range(d):
            row = base_p + k * d * d + i * d
            s = 0.0
            for j in range(d):
                s += params[row + j] * (theta[j] - params[base_c + k * d + j])
            out[i] += w * s


class GaussianWells(Landscape):
    """L(θ) = offset − Σ_k D_k exp(−½(θ − m_k)ᵀP_k(θ − m_k)) + τ‖θ‖².

    Each well k has depth D_k below ``offset`` and, when isolated, Hessian D_k P_k + 2τI at its
    centre; overlapping tails shift both slightly, which is why the minima are always found
    numerically (and why :meth:`from_targets` corrects the parameters iteratively).  The level
    ``offset`` is the plateau between well-separated wells, so barrier heights are
    ``offset − L_k`` (to leading order); the L2 term confines the density far away."""

    def __init__(self, centers, depths, precisions, offset: float = 0.0, l2: float = 0.0):
        centers = np.atleast_2d(np.asarray(centers, dtype=float))
        K, d = centers.shape
        super().__init__(d, l2)
        depths = np.asarray(depths, dtype=float).reshape(K)
        _checks.check_positive("depths", depths)
        precisions = np.asarray(precisions, dtype=float)
        if precisions.shape == (K, d):
            precisions = np.stack([np.diag(p) for p in precisions])
        if precisions.shape != (K, d, d):
            raise ValueError(f"precisions must have shape ({K}, {d}, {d}) or ({K}, {d}), got {precisions.shape}")
        for k in range(K):
            _checks.check_positive_definite(f"precisions[{k}]", precisions[k])
        _checks.check_finite("centers", centers)
        _checks.check_finite("offset", offset)
        self.centers, self.depths, self.precisions, self.offset = centers, depths, precisions, float(offset)
        self.params = np.concatenate(
            [[self.l2, self.offset, K, d], depths, centers.ravel(), precisions.ravel()]
        )

    @property
    def n_wells(self) -> int:
        return self.centers.shape[0]

    def _terms(self, x):
        y = x[:, None, :] - self.centers[None, :, :]  # (n, K, d)
        py = np.einsum("kij,nkj->nki", self.precisions, y)
        q = np.einsum("nki,nki->nk", y, py)
        w = self.depths[None, :] * np.exp(-0.5 * q)  # (n, K)
        return py, w

    def _value(self, x):
        _, w = self._terms(x)
        return self.offset - w.sum(axis=1)

    def _gradient(self, x):
        py, w = self._terms(x)
        return np.einsum("nk,nki->ni", w, py)

    def _hessian(self, x):
        py, w = self._terms(x)
        return np.einsum("nk,kij->nij", w, self.precisions) - np.einsum("nk,nki,nkj->nij", w, py, py)

    def _minimum_guesses(self):
        return self.centers

    def basin_index(self, theta, **kw):
        if self.dim == 1:
            return _basin_index_1d(self, theta)
        return super().basin_index(theta, **kw)

    @property
    def kernels(self) -> Kernels:
        return Kernels(_wells_value, _wells_grad)

    @classmethod
    def from_targets(
        cls,
        locations,
        losses,
        hessians,
        *,
        offset: float,
        l2: float = 0.0,
        n_iter: int = 50,
        rtol: float = 1e-10,
    ) -> "GaussianWells":
        """Wells whose numerically found minima have the given losses and Hessians (to ``rtol``).

        Starts from the isolated-well values D_k = offset − L_k, P_k = (H_k − 2τI)/D_k and corrects
        depths, precisions and centres by the measured mismatch until it is below ``rtol``.
        Requires every target loss below ``offset`` and every H_k − 2τI positive definite."""
        locations = np.atleast_2d(np.asarray(locations, dtype=float))
        K, d = locations.shape
        losses = np.asarray(losses, dtype=float).reshape(K)
        hessians = np.asarray(hessians, dtype=float)
        if hessians.shape == (K, d):
            hessians = np.stack([np.diag(h) for h in hessians])
        if hessians.shape != (K, d, d):
            raise ValueError(f"hessians must have shape ({K}, {d}, {d}) or ({K}, {d}), got {hessians.shape}")
        if np.any(losses >= offset):
            raise ValueError(f"losses must all lie below offset = {offset} (the plateau between wells), got {losses}")
        for k in range(K):
            _checks.check_positive_definite(f"hessians[{k}] - 2*l2*I", hessians[k] - 2 * l2 * np.eye(d))
        depths = offset - losses
        precisions = (hessians - 2 * l2 * np.eye(d)) / depths[:, None, None]
        centers = locations.copy()
        land = cls(centers, depths, precisions, offset, l2)
        for _ in range(n_iter):
            mins = land.minima()
            if len(mins) != K:
                raise ValueError(
                    f"wells overlap too much: found {len(mins)} minima instead of {K}; "
                    "increase the separation or the curvatures"
                )
            # match found minima to wells by proximity
            found = np.stack([m.location for m in mins])
            order = [int(np.argmin(np.sum((found - c) ** 2, axis=1))) for c in locations]
            err_l = np.array([mins[o].loss for o in order]) - losses
            err_h = np.stack([mins[o].hessian for o in order]) - hessians
            err_x = found[order] - locations
            scale = max(1.0, float(np.max(np.abs(hessians))))
            if np.max(np.abs(err_l)) < rtol * max(1.0, np.max(np.abs(losses))) and np.max(np.abs(err_h)) < rtol * scale \
                    and np.max(np.abs(err_x)) < rtol * max(1.0, np.max(np.abs(locations))):
                break
            depths = depths + err_l
            precisions = precisions - err_h / depths[:, None, None]
            precisions = 0.5 * (precisions + np.transpose(precisions, (0, 2, 1)))
            centers = centers - err_x
            land = cls(centers, depths, precisions, offset, l2)
        else:
            raise RuntimeError("GaussianWells.from_targets did not converge; wells overlap too much")
        return land


def double_well_1d(
    loss_a: float = 0.0,
    curvature_a: float = 1.0,
    loss_b: float = 0.2,
    curvature_b: float = 4.0,
    *,
    separation: float = 3.0,
    barrier: float = 1.0,
    l2: float = 0.05,
) -> GaussianWells:
    """1-D asymmetric double well: minimum A at −separation/2 with loss ``loss_a`` and curvature
    ``curvature_a``, minimum B at +separation/2 likewise; the plateau between them at ``barrier``."""
    return GaussianWells.from_targets(
        [[-separation / 2], [separation / 2]],
        [loss_a, loss_b],
        [[[curvature_a]], [[curvature_b]]],
        offset=barrier,
        l2=l2,
    )


def wells_2d(
    locations=((-1.5, 0.0), (1.5, 0.0)),
    losses=(0.0, 0.1),
    hessians=(((1.0, 0.3), (0.3, 0.5)), ((4.0, 0.0), (0.0, 3.0))),
    *,
    barrier: float = 1.0,
    l2: float = 0.05,
) -> GaussianWells:
    """2-D landscape with two or more minima of chosen depth and (anisotropic) Hessian."""
    return GaussianWells.from_targets(locations, losses, hessians, offset=barrier, l2=l2)


def multi_well(
    dim: int = 10,
    n_wells: int = 3,
    *,
    losses=None,
    curvatures=None,
    spacing: float = 3.0,
    barrier: float = 1.0,
    l2: float = 0.01,
    seed: int = 0,
) -> GaussianWells:
    """d-dimensional multi-well landscape (d up to ~20): well k sits at spacing·k·e₁ (shifted to be
    centred) and has diagonal Hessian ``curvatures[k]`` (one value per direction), so det H_k is set
    per direction.  Defaults draw curvatures log-uniformly in [0.5, 4] from ``seed``."""
    dim = _checks.check_int("dim", dim, minimum=1)
    n_wells = _checks.check_int("n_wells", n_wells, minimum=1)
    rng = np.random.default_rng(seed)
    if losses is None:
        losses = np.linspace(0.0, 0.2, n_wells)
    if curvatures is None:
        curvatures = np.exp(rng.uniform(np.log(0.5), np.log(4.0), size=(n_wells, dim)))
    curvatures = np.asarray(curvatures, dtype=float).reshape(n_wells, dim)
    locations = np.zeros((n_wells, dim))
    locations[:, 0] = spacing * (np.arange(n_wells) - (n_wells - 1) / 2)
    return GaussianWells.from_targets(locations, losses, curvatures, offset=barrier, l2=l2)


# --------------------------------------------------------------------------------------------
# Finite sums: L = (1/N) Σ l_i, for exact minibatch SGD
# --------------------------------------------------------------------------------------------
class FiniteSumLandscape(Landscape):
    """A landscape L = (1/N) Σ_i l_i(θ) with per-sample losses (the L2 term is in every l_i).

    Attributes: ``n_samples`` (N), ``data`` (float64 (N, k) per-sample data read by the kernels).
    Subclasses implement ``_sample_losses`` (n, N) and ``_sample_gradients`` (n, N, dim) without
    the L2 term, and provide ``kernels`` including ``batch_grad`` and ``noise_cov``."""

    n_samples: int
    data: np.ndarray

    def sample_losses(self, theta) -> np.ndarray:
        """Per-sample losses l_i(θ), shape (..., N)."""
        flat, batch = self._flatten(theta)
        v = self._sample_losses(flat) + self.l2 * np.sum(flat * flat, axis=-1)[:, None]
        return v.reshape(batch + (self.n_samples,))

    def sample_gradients(self, theta) -> np.ndarray:
        """Per-sample gradients ∇l_i(θ), shape (..., N, dim)."""
        flat, batch = self._flatten(theta)
        g = self._sample_gradients(flat) + 2.0 * self.l2 * flat[:, None, :]
        return g.reshape(batch + (self.n_samples, self.dim))

    def noise_covariance(self, theta) -> np.ndarray:
        """Per-sample gradient covariance C(θ) = (1/N) Σ (g_i − ḡ)(g_i − ḡ)ᵀ, shape (..., dim, dim).

        With this (population, 1/N) normalisation a minibatch of S drawn with replacement has
        gradient covariance C/S; without replacement C·(1/S − 1/N)·N/(N − 1)."""
        flat, batch = self._flatten(theta)
        g = self._sample_gradients(flat)
        gc = g - g.mean(axis=1, keepdims=True)
        c = np.einsum("nsi,nsj->nij", gc, gc) / self.n_samples
        return c.reshape(batch + (self.dim, self.dim))

    def _value(self, x):
        return self._sample_losses(x).mean(axis=1)

    def _gradient(self, x):
        return self._sample_gradients(x).mean(axis=1)


@functools.lru_cache(maxsize=None)
def _isotropic_finite_sum_kernels(base_value, base_grad):
    @numba.njit(nogil=True)
    def batch_grad(theta, params, data, idx, out):
        base_grad(theta, params, out)
        S = idx.shape[0]
        d = out.shape[0]
        inv = 1.0 / S
        for s in range(S):
            row = idx[s]
            for k in range(d):
                out[k] += inv * data[row, k]

    @numba.njit(nogil=True)
    def noise_cov(theta, params, data, out):
        N = data.shape[0]
        d = out.shape[0]
        for i in range(d):
            for j in range(d):
                s = 0.0
                for n in range(N):
                    s += data[n, i] * data[n, j]
                out[i, j] = s / N

    return Kernels(base_value, base_grad, batch_grad, noise_cov)


class IsotropicNoiseFiniteSum(FiniteSumLandscape):
    """l_i(θ) = L(θ) + ξ_iᵀθ with Σ_i ξ_i = 0 and (1/N) Σ_i ξ_i ξ_iᵀ = σ²I exactly.

    The ξ_i are Gaussian draws, centred and whitened, so the full-batch loss is exactly the base
    loss L and the per-sample gradient covariance is exactly σ²I at every θ: the setting of the
    paper's Theorem 1, now with real minibatches.  Needs N > dim."""

    def __init__(self, base: Landscape, n_samples: int, sigma2: float, seed: int = 0):
        if isinstance(base, FiniteSumLandscape):
            raise TypeError("base must be a plain (non finite-sum) landscape")
        super().__init__(base.dim, base.l2)
        self.base = base
        self.n_samples = _checks.check_int("n_samples", n_samples, minimum=2)
        if self.n_samples <= base.dim:
            raise ValueError(f"n_samples must be > dim = {base.dim} to whiten the per-sample noise, got {n_samples}")
        _checks.check_positive("sigma2", sigma2)
        self.sigma2 = float(sigma2)
        rng = np.random.default_rng(seed)
        xi = rng.standard_normal((self.n_samples, base.dim))
        xi -= xi.mean(axis=0)
        cov = xi.T @ xi / self.n_samples
        chol = np.linalg.cholesky(cov)
        xi = np.linalg.solve(chol, xi.T).T * math.sqrt(self.sigma2)
        self.data = np.ascontiguousarray(xi)
        self.params = base.params

    # the L2 term lives in the base landscape: do not add it twice
    def value(self, theta):
        return self.base.value(theta)

    def gradient(self, theta):
        return self.base.gradient(theta)

    def hessian(self, theta):
        return self.base.hessian(theta)

    def minima(self):
        return self.base.minima()

    def basin_index(self, theta, **kw):
        return self.base.basin_index(theta, **kw)

    def bounds(self, temperature, **kw):
        return self.base.bounds(temperature, **kw)

    def sample_losses(self, theta):
        flat, batch = self._flatten(theta)
        v = np.atleast_1d(self.base.value(flat))[:, None] + flat @ self.data.T
        return v.reshape(batch + (self.n_samples,))

    def sample_gradients(self, theta):
        flat, batch = self._flatten(theta)
        g = self.base.gradient(flat)[:, None, :] + self.data[None, :, :]
        return g.reshape(batch + (self.n_samples, self.dim))

    def noise_covariance(self, theta):
        flat, batch = self._flatten(theta)
        c = np.broadcast_to(self.data.T @ self.data / self.n_samples, (flat.shape[0], self.dim, self.dim))
        return c.reshape(batch + (self.dim, self.dim)).copy()

    @property
    def kernels(self) -> Kernels:
        k = self.base.kernels
        return _isotropic_finite_sum_kernels(k.value, k.grad)


@numba.njit(nogil=True, cache=True)
def _lsq_value(theta, params):
    # params = [l2, N, d, X (N*d), y (N)]  (value kernel needs the data: it is packed in params)
    N = int(params[1])
    d = int(params[2])
    v = 0.0
    for n in range(N):
        r = -params[3 + N * d + n]
        for k in range(d):
            r += params[3 + n * d + k] * theta[k]
        v += 0.5 * r * r
    v /= N
    for k in range(d):
        v += params[0] * theta[k] * theta[k]
    return v


@numba.njit(nogil=True, cache=True)
def _lsq_grad(theta, params, out):
    N = int(params[1])
    d = int(params[2])
    for k in range(d):
        out[k] = 2.0 * params[0] * theta[k]
    for n in range(N):
        r = -params[3 + N * d + n]
        for k in range(d):
            r += params[3 + n * d + k] * theta[k]
        for k in range(d):
            out[k] += r * params[3 + n * d + k] / N


@numba.njit(nogil=True, cache=True)
def _lsq_batch_grad(theta, params, data, idx, out):
    # data = [X | y], shape (N, d + 1)
    d = out.shape[0]
    S = idx.shape[0]
    for k in range(d):
        out[k] = 2.0 * params[0] * theta[k]
    for s in range(S):
        n = idx[s]
        r = -data[n, d]
        for k in range(d):
            r += data[n, k] * theta[k]
        for k in range(d):
            out[k] += r * data[n, k] / S


@numba.njit(nogil=True, cache=True)
def _lsq_noise_cov(theta, params, data, out):
    N = data.shape[0]
    d = out.shape[0]
    mean = np.zeros(d)
    for i in range(d):
        for j in range(d):
            out[i, j] = 0.0
    for n in range(N):
        r = -data[n, d]
        for k in range(d):
            r += data[n, k] * theta[k]
        for i in range(d):
            gi = r * data[n, i]
            mean[i] += gi / N
            for j in range(d):
                out[i, j] += gi * r * data[n, j] / N
    for i in range(d):
        for j in range(d):
            out[i, j] -= mean[i] * mean[j]


class LeastSquares(FiniteSumLandscape):
    """Linear least squares l_i(θ) = ½(x_iᵀθ − y_i)² + τ‖θ‖²: state-dependent gradient noise
    C(θ) = (1/N) Σ r_i² x_i x_iᵀ − ḡḡᵀ with residuals r_i = x_iᵀθ − y_i."""

    def __init__(self, inputs, targets, l2: float = 0.0):
        inputs = np.atleast_2d(np.asarray(inputs, dtype=float))
        targets = np.asarray(targets, dtype=float).reshape(-1)
        if inputs.shape[0] != targets.shape[0]:
            raise ValueError(f"inputs and targets must have the same number of rows, got {inputs.shape[0]} and {targets.shape[0]}")
        _checks.check_finite("inputs", inputs)
        _checks.check_finite("targets", targets)
        super().__init__(inputs.shape[1], l2)
        self.inputs, self.targets = inputs, targets
        self.n_samples = inputs.shape[0]
        self.data = np.ascontiguousarray(np.column_stack([inputs, targets]))
        self.params = np.concatenate([[self.l2, self.n_samples, self.dim], inputs.ravel(), targets])
        gram = inputs.T @ inputs / self.n_samples + 2 * self.l2 * np.eye(self.dim)
        if np.linalg.eigvalsh(gram)[0] <= 1e-12 * max(1.0, np.max(np.abs(gram))):
            # an over-parameterised problem without L2 has a flat valley of minima, not a strict minimum
            self._degenerate = True
        else:
            self._degenerate = False

    def _residuals(self, x):
        return x @ self.inputs.T - self.targets[None, :]

    def _sample_losses(self, x):
        return 0.5 * self._residuals(x) ** 2

    def _sample_gradients(self, x):
        return self._residuals(x)[:, :, None] * self.inputs[None, :, :]

    def _hessian(self, x):
        h = self.inputs.T @ self.inputs / self.n_samples
        return np.broadcast_to(h, (x.shape[0], self.dim, self.dim)).copy()

    def _minimum_guesses(self):
        if self._degenerate:
            raise ValueError(
                "this least-squares problem has no strict minimum (inputs rank-deficient and l2 = 0); "
                "set l2 > 0"
            )
        gram = self.inputs.T @ self.inputs / self.n_samples + 2 * self.l2 * np.eye(self.dim)
        return np.linalg.solve(gram, self.inputs.T @ self.targets / self.n_samples)[None, :]

    @property
    def kernels(self) -> Kernels:
        return Kernels(_lsq_value, _lsq_grad, _lsq_batch_grad, _lsq_noise_cov)
