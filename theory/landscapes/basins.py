"""Basins of attraction of gradient flow dθ/dt = −∇L(θ): which minimum a point flows to.

* 1-D (:func:`saddles_1d`, :func:`basin_index_1d`): the basins are the intervals between the local
  maxima, located to machine precision; a point's basin is found by bisection on them.
* d ≥ 2 (:func:`basin_index_flow`): the flow is integrated from each point by the Dormand–Prince
  5(4) pair (Dormand & Prince 1980, the embedded pair of Hairer, Nørsett & Wanner, *Solving
  ODEs I*, §II.5) with the local error of every accepted step below ``tol`` (absolute, in units
  of θ), until the point enters the capture region of a minimum m: the ball of radius r_m around
  it *and* the sublevel set L < L_m + ½λ_min(H_m) r_m², an ellipsoid inside the ball to second
  order that the flow never leaves.  Step-size control keeps the computed path within
  O(tol) of the true one, so points farther than O(tol) from a separatrix are classified
  correctly and basin boundaries converge as tol → 0 (a fixed-step or line-search descent
  moves them by O(step), which does not vanish on refining a quadrature grid).
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
from scipy import optimize

from theory._numba import specialise

if TYPE_CHECKING:
    from theory.landscapes.base import Landscape

__all__ = ["saddles_1d", "basin_index_1d", "basin_index_flow", "FLOW_TOL"]

#: Local error tolerance of the flow integration, relative to the smallest distance between minima.
FLOW_TOL = 1e-7

# Dormand–Prince 5(4) tableau (c, a, 5th-order weights b, error weights e = b − b*)
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A21 = 1 / 5
_A31, _A32 = 3 / 40, 9 / 40
_A41, _A42, _A43 = 44 / 45, -56 / 15, 32 / 9
_A51, _A52, _A53, _A54 = 19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729
_A61, _A62, _A63, _A64, _A65 = 9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656
_B1, _B3, _B4, _B5, _B6 = 35 / 384, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84
_E1, _E3, _E4, _E5, _E6, _E7 = (71 / 57600, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)


def _flow_kernel(points, cparams, locs, levels, radii, tol, h0, max_steps, out):
    """Label of the capture region each point's gradient-flow path enters (see module docstring);
    a path still outside after ``max_steps`` accepted or rejected steps (it sits on a saddle's
    stable manifold to within tol) gets the nearest minimum."""
    n, d = points.shape
    n_min = locs.shape[0]
    y = np.empty(d)
    yt = np.empty(d)
    k1 = np.empty(d)
    k2 = np.empty(d)
    k3 = np.empty(d)
    k4 = np.empty(d)
    k5 = np.empty(d)
    k6 = np.empty(d)
    k7 = np.empty(d)
    for p in range(n):
        for i in range(d):
            y[i] = points[p, i]
        GRADIENT(y, cparams, k1)  # noqa: F821
        for i in range(d):
            k1[i] = -k1[i]
        h = h0
        label = -1
        best = 0
        for _ in range(max_steps):
            best = 0
            best_d2 = 1e300
            for m in range(n_min):
                s = 0.0
                for i in range(d):
                    s += (y[i] - locs[m, i]) ** 2
                if s < best_d2:
                    best_d2 = s
                    best = m
            if best_d2 < radii[best] ** 2 and VALUE(y, cparams) < levels[best]:  # noqa: F821
                label = best
                break
            for i in range(d):
                yt[i] = y[i] + h * _A21 * k1[i]
            GRADIENT(yt, cparams, k2)  # noqa: F821
            for i in range(d):
                k2[i] = -k2[i]
                yt[i] = y[i] + h * (_A31 * k1[i] + _A32 * k2[i])
            GRADIENT(yt, cparams, k3)  # noqa: F821
            for i in range(d):
                k3[i] = -k3[i]
                yt[i] = y[i] + h * (_A41 * k1[i] + _A42 * k2[i] + _A43 * k3[i])
            GRADIENT(yt, cparams, k4)  # noqa: F821
            for i in range(d):
                k4[i] = -k4[i]
                yt[i] = y[i] + h * (_A51 * k1[i] + _A52 * k2[i] + _A53 * k3[i] + _A54 * k4[i])
            GRADIENT(yt, cparams, k5)  # noqa: F821
            for i in range(d):
                k5[i] = -k5[i]
                yt[i] = y[i] + h * (_A61 * k1[i] + _A62 * k2[i] + _A63 * k3[i] + _A64 * k4[i] + _A65 * k5[i])
            GRADIENT(yt, cparams, k6)  # noqa: F821
            for i in range(d):
                k6[i] = -k6[i]
                yt[i] = y[i] + h * (_B1 * k1[i] + _B3 * k3[i] + _B4 * k4[i] + _B5 * k5[i] + _B6 * k6[i])
            GRADIENT(yt, cparams, k7)  # noqa: F821
            err = 0.0
            for i in range(d):
                k7[i] = -k7[i]
                e = abs(h * (_E1 * k1[i] + _E3 * k3[i] + _E4 * k4[i] + _E5 * k5[i] + _E6 * k6[i] + _E7 * k7[i]))
                if e > err:
                    err = e
            ratio = err / tol
            if ratio <= 1.0 and math.isfinite(ratio):
                for i in range(d):
                    y[i] = yt[i]
                    k1[i] = k7[i]  # first-same-as-last
            if not math.isfinite(ratio):
                h *= 0.2
            elif ratio == 0.0:
                h *= 5.0
            else:
                h *= min(5.0, max(0.2, 0.9 * ratio ** (-0.2)))
        out[p] = label if label >= 0 else best


def basin_index_flow(landscape: Landscape, flat: np.ndarray, *, max_steps: int = 200_000) -> np.ndarray:
    """Basin (index into ``landscape.minima()``) of each row of ``flat`` (n, dim) by the
    error-controlled gradient flow of the module docstring (threads over chunks of points)."""
    mins = landscape.minima()
    locs = np.ascontiguousarray(np.stack([m.location for m in mins]))
    if len(mins) == 1:
        return np.zeros(flat.shape[0], dtype=np.int64)
    lam_max = max(float(m.eigenvalues[-1]) for m in mins)
    sep = min(np.linalg.norm(locs[i] - locs[j]) for i in range(len(locs)) for j in range(i + 1, len(locs)))
    radii, levels = capture_regions(landscape, sep)
    comp = landscape.compiled
    kernel = specialise(_flow_kernel, VALUE=comp.value, GRADIENT=comp.gradient)
    pts = np.ascontiguousarray(flat, dtype=np.float64)
    out = np.empty(pts.shape[0], dtype=np.int64)
    args = (comp.params, locs, levels, radii, FLOW_TOL * sep, 0.1 / lam_max, int(max_steps))
    kernel(pts[:0], *args, out[:0])  # compile here, not racing in the worker threads
    n_threads = min(len(os.sched_getaffinity(0)), max(1, pts.shape[0] // 2000))
    if n_threads <= 1:
        kernel(pts, *args, out)
        return out
    chunks = np.array_split(np.arange(pts.shape[0]), 4 * n_threads)
    with ThreadPoolExecutor(n_threads) as pool:
        list(pool.map(lambda c: kernel(pts[c[0]:c[-1] + 1], *args, out[c[0]:c[-1] + 1]) if c.size else None, chunks))
    return out


def _sphere_directions(dim: int) -> np.ndarray:
    """Unit directions sampling the sphere: a fine circle in 2-D, else ± axes and fixed random ones."""
    if dim == 2:
        a = np.linspace(0.0, 2 * math.pi, 721)[:-1]
        return np.column_stack([np.cos(a), np.sin(a)])
    u = np.random.default_rng(0).standard_normal((64 * dim, dim))
    return np.concatenate([np.eye(dim), -np.eye(dim), u / np.linalg.norm(u, axis=1, keepdims=True)])


def capture_regions(landscape, sep: float) -> tuple[np.ndarray, np.ndarray]:
    """Radius r_m and level c_m of each minimum's capture region {|θ − m| < r_m, L(θ) < c_m}.

    The region is forward-invariant under the flow and holds no other critical point when L > c_m
    on the sphere |θ − m| = r_m (the flow decreases L, so it cannot reach the sphere) and ∇²L is
    positive definite inside the ball; both are checked on sampled directions (a 0.5° circle in
    2-D) and radii, starting from r = sep/4 and halving on failure.  c_m is set 10% of the
    sphere's minimum excess below it."""
    mins = landscape.minima()
    dirs = _sphere_directions(landscape.dim)
    fractions = np.linspace(0.1, 1.0, 10)
    radii, levels = [], []
    for m in mins:
        r = 0.25 * sep
        for _ in range(30):
            sphere = m.location + r * dirs
            inner = (m.location + r * fractions[:, None, None] * dirs[None, :, :]).reshape(-1, landscape.dim)
            excess = np.min(landscape.value(sphere)) - m.loss
            convex = np.all(np.linalg.eigvalsh(landscape.hessian(inner))[:, 0] > 0)
            if excess > 0 and convex:
                break
            r *= 0.5
        radii.append(r)
        levels.append(m.loss + 0.9 * excess)
    return np.array(radii), np.array(levels)


def saddles_1d(landscape: Landscape) -> np.ndarray:
    """Local maxima between consecutive minima of a 1-D landscape (bounded Brent search on −L,
    polished by Newton steps on L' to machine precision)."""
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


def basin_index_1d(saddles: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Basin of each coordinate in ``x``: the number of saddles to its left."""
    return np.searchsorted(saddles, x).astype(np.int64)
