"""Relative probabilities of minima (paper Theorem 2, eq. 3, App. D) and exact references.

Laplace weight of a minimum A with loss L_A and Hessian H_A (paper eq. 3 / eq. 31):

    p~_A = det(H_A)^(-1/2) * exp(-2 L_A / (n sigma2)),   n = lr / batch_size,

so that  log p~_A = -1/2 log det H_A - L_A / T  with T = n sigma2 / 2.  The full
Laplace integral of exp(-L/T) over the basin (App. D eq. 29-30) carries the extra
factor (2 pi T)^(d/2), common to all minima of equal dimension d.

Minimum objects: anything with attributes ``loss`` (float), ``hessian``
((d, d) SPD array) and ``logdet`` (float), e.g. ``theory.landscapes.Minimum``
(``from theory.landscapes import Minimum``; ``theory.minima.Minimum`` is a lazy
re-export of it).  This module only duck-types them and does not import
``theory.landscapes`` at import time (no import cycle).

Landscape objects (for :func:`basin_probabilities`): ``dim``, ``value(theta)``
with theta (..., dim) -> (...), ``minima()``, ``basin_index(theta)`` -> int (...),
``bounds(temperature)`` -> (low, high) arrays of shape (dim,).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy.special import logsumexp

from theory import _checks
from theory.gibbs import _out, _temperature_array, _validate

__all__ = [
    "spd_logdet",
    "log_weight",
    "log_ratio",
    "probabilities",
    "threshold_noise",
    "basin_probabilities",
    "simpson_weights",
]


def spd_logdet(hessian, name: str = "hessian"):
    """log det H of a symmetric positive-definite matrix (or a stack (..., d, d)) via Cholesky.

    Raises ValueError naming ``name`` if H is not square, not symmetric or not
    positive definite (a saddle or a flat direction has no Laplace weight).
    """
    mat = np.asarray(hessian, dtype=float)
    if mat.ndim == 2:
        mat = _checks.check_positive_definite(name, mat)
        chol = np.linalg.cholesky(mat)
        return float(2.0 * np.sum(np.log(np.diagonal(chol))))
    if mat.ndim < 2 or mat.shape[-1] != mat.shape[-2]:
        raise ValueError(f"{name} must be a square matrix or a stack (..., d, d), got shape {mat.shape}")
    _checks.check_finite(name, mat)
    scale = np.maximum(1.0, np.max(np.abs(mat), axis=(-2, -1), keepdims=True))
    if np.any(np.abs(mat - np.swapaxes(mat, -1, -2)) > 1e-10 * scale):
        raise ValueError(f"{name} must be symmetric")
    try:
        chol = np.linalg.cholesky(mat)
    except np.linalg.LinAlgError:
        raise ValueError(f"{name} must be symmetric positive definite") from None
    return 2.0 * np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)


def log_weight(
    loss_min,
    hessian=None,
    logdet=None,
    *,
    lr,
    batch_size,
    sigma2,
    include_gaussian_factor: bool = False,
    dim: int | None = None,
):
    """Log Laplace weight of a minimum (paper Theorem 2, eq. 3, in logs):

        log p~_A = -1/2 log det H_A - 2 L_A / (n sigma2),   n = lr / batch_size.

    Give exactly one of ``hessian`` (SPD (d, d) matrix or stack (..., d, d);
    ValueError otherwise) or ``logdet`` (= log det H_A).  With
    ``include_gaussian_factor=True`` the full Laplace normalisation of
    App. D eq. 29-30 is used,

        log p_A = -L_A/T - 1/2 log det H_A + (d/2) log(2 pi T),   T = n sigma2 / 2,

    i.e. the Laplace approximation of  int_{basin A} exp(-L/T) dtheta.  The extra
    term is a common factor for minima of equal dimension (it cancels in every
    ratio), but it matters for absolute basin masses; ``dim`` is then required
    when ``logdet`` is given (with ``hessian`` it is read off the shape).
    Broadcasts over array-valued loss_min / logdet / lr / batch_size / sigma2.
    """
    _validate(lr, batch_size, sigma2)
    _checks.check_finite("loss_min", loss_min)
    if (hessian is None) == (logdet is None):
        raise ValueError("give exactly one of hessian or logdet")
    if hessian is not None:
        ld = spd_logdet(hessian, "hessian")
        d = np.asarray(hessian).shape[-1]
        if dim is not None and dim != d:
            raise ValueError(f"dim = {dim} does not match the hessian's dimension {d}")
    else:
        _checks.check_finite("logdet", logdet)
        ld = np.asarray(logdet, dtype=float)
        d = dim
    temp = _temperature_array(lr, batch_size, sigma2)
    out = -0.5 * np.asarray(ld, dtype=float) - np.asarray(loss_min, dtype=float) / temp
    if include_gaussian_factor:
        if d is None:
            raise ValueError("dim is required with include_gaussian_factor=True and logdet")
        d = _checks.check_int("dim", d, minimum=1)
        out = out + 0.5 * d * np.log(2.0 * np.pi * temp)
    return _out(out)


def _minimum_parts(m: Any, name: str):
    try:
        loss, hess = m.loss, m.hessian
    except AttributeError:
        raise TypeError(f"{name} must be a Minimum (with .loss, .hessian, .logdet)") from None
    ld = getattr(m, "logdet", None)
    if ld is None:
        ld = spd_logdet(hess, f"{name}.hessian")
    _checks.check_finite(f"{name}.loss", loss)
    _checks.check_finite(f"{name}.logdet", ld)
    return float(loss), float(ld), int(np.asarray(hess).shape[-1])


def log_ratio(A, B, *, lr, batch_size, sigma2):
    """log(p_A / p_B) for two minima (paper Sec. 3.2, ratio below eq. 3):

        log(p_A/p_B) = 1/2 (log det H_B - log det H_A) - 2 (L_A - L_B) / (n sigma2).

    A and B must have the same dimension (otherwise the (2 pi T)^(d/2) factors
    of App. D do not cancel).  Broadcasts over array-valued hyper-parameters.
    """
    _validate(lr, batch_size, sigma2)
    la, lda, da = _minimum_parts(A, "A")
    lb, ldb, db = _minimum_parts(B, "B")
    if da != db:
        raise ValueError(f"A and B must have the same dimension, got {da} and {db}")
    temp = _temperature_array(lr, batch_size, sigma2)
    return _out(0.5 * (ldb - lda) - (la - lb) / temp)


def probabilities(minima: Sequence[Any], *, lr, batch_size, sigma2):
    """Normalised Laplace probabilities p_A = p~_A / sum_B p~_B (paper eq. 3).

    Normalised with log-sum-exp (no underflow).  Returns shape (len(minima),)
    for scalar hyper-parameters, (len(minima), *broadcast_shape) otherwise, in
    the order of ``minima``.  All minima must have the same dimension.
    """
    _validate(lr, batch_size, sigma2)
    minima = list(minima)
    if len(minima) == 0:
        raise ValueError("minima must contain at least one minimum")
    parts = [_minimum_parts(m, f"minima[{i}]") for i, m in enumerate(minima)]
    if len({p[2] for p in parts}) != 1:
        raise ValueError("all minima must have the same dimension")
    temp = _temperature_array(lr, batch_size, sigma2)
    l_min = min(p[0] for p in parts)  # shift before dividing by T: no cancellation at tiny T
    logw = np.stack([-0.5 * ld - (loss - l_min) / temp for loss, ld, _ in parts], axis=0)
    return np.exp(logw - logsumexp(logw, axis=0, keepdims=True))


def threshold_noise(loss_a, loss_b, logdet_a, logdet_b, sigma2):
    """Noise n* such that minimum A is strictly more probable than B  iff  n > n*.

    From the log-ratio (Sec. 3.2)

        log(p_A/p_B) = 1/2 (logdet_B - logdet_A) - 2 (L_A - L_B) / (n sigma2),

    which is increasing in n when L_A > L_B, setting it to zero gives

        n* = 4 (L_A - L_B) / (sigma2 (logdet_B - logdet_A))
           = (L_A - L_B) / ((sigma2 / 2) log sqrt(det H_B / det H_A)).

    The paper's eq. 4 as printed, n > (L_A - L_B) / (2 sigma2 log sqrt(det H_B/det H_A)),
    is a factor 4 smaller than this; the derivation from the paper's own ratio
    formula gives the expression above (likewise the paper's Y should read
    Y = sigma2 log sqrt(det H_B/det H_A) / (2 (L_A - L_B)), a factor 4 smaller
    than printed).

    Cases (elementwise, vectorised over arrays):

    * L_A > L_B and A flatter (logdet_A < logdet_B): the finite n* above.
    * L_A > L_B and A sharper or equally sharp: ``math.inf`` (A is never favoured,
      at any noise: "higher and sharper is never reached with higher probability").
    * L_A <= L_B and A flatter or equally flat, not both equal: 0.0 (A is
      favoured at every noise n > 0).
    * L_A == L_B and logdet_A == logdet_B: ``math.inf`` -- p_A == p_B at every
      noise, so A is never *strictly* more probable; the log-ratio never
      changes sign.
    * L_A < L_B and A sharper: here A is favoured *below* a noise level, so the
      statement "A favoured iff n > n*" has no n*; ValueError.  The crossing
      noise is threshold_noise(loss_b, loss_a, logdet_b, logdet_a, sigma2)
      (B is then the higher-but-flatter one, favoured above it).
    """
    _checks.check_finite("loss_a", loss_a)
    _checks.check_finite("loss_b", loss_b)
    _checks.check_finite("logdet_a", logdet_a)
    _checks.check_finite("logdet_b", logdet_b)
    _checks.check_positive("sigma2", sigma2)
    la, lb, da, db, s2 = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (loss_a, loss_b, logdet_a, logdet_b, sigma2))
    )
    dl = la - lb  # > 0: A higher
    dd = db - da  # > 0: A flatter
    if np.any((dl < 0) & (dd < 0)):
        raise ValueError(
            "loss_a < loss_b with logdet_a > logdet_b: A is lower but sharper and is favoured "
            "below a noise level, not above; call threshold_noise with A and B swapped"
        )
    out = np.full(dl.shape, math.inf)
    finite = (dl > 0) & (dd > 0)
    out[finite] = 4.0 * dl[finite] / (s2[finite] * dd[finite])
    always = (dl <= 0) & (dd >= 0) & ~((dl == 0) & (dd == 0))
    out[always] = 0.0
    return _out(out)


def simpson_weights(n: int, h: float) -> np.ndarray:
    """Composite Simpson weights h/3 * [1, 4, 2, 4, ..., 4, 1] for n (odd) equispaced nodes."""
    n = _checks.check_int("n_grid", n, minimum=3)
    if n % 2 == 0:
        raise ValueError(f"n_grid must be odd for Simpson's rule, got {n}")
    w = np.full(n, 2.0)
    w[1::2] = 4.0
    w[0] = w[-1] = 1.0
    return w * (h / 3.0)


def basin_probabilities(landscape, *, lr, batch_size, sigma2, n_grid: int | None = None):
    """Exact Gibbs mass of each basin of attraction, by direct quadrature (1-D and 2-D).

        p_A = int_{basin A} exp(-L/T) dtheta / int exp(-L/T) dtheta,   T = lr sigma2 / (2 S)

    (paper eq. 2 integrated over basins, App. D eq. 28 without the Laplace step).
    This is the reference the Laplace weights of eq. 3 approximate.

    Method: on the box ``landscape.bounds(T)``, integrated in logs
    (exp(-(L - L_min)/T), so nothing underflows at the modes).

    * 1-D: the basin boundaries are located to machine precision by bisection
      on ``basin_index`` (between the nodes of an n_grid scan whose basin
      differs); each segment between boundaries is integrated by composite
      Simpson with n_grid nodes.  Error O(h^4) (h = segment length/(n_grid-1)).
    * 2-D: n_grid x n_grid equispaced tensor grid, tensor-product Simpson
      weights, each node assigned to ``landscape.basin_index``.  Error O(h^4)
      for the smooth integrand plus the cut of the basin indicator,
      O(h * density on the basin boundary * boundary length) -- first order
      in h but weighted by exp(-(L_boundary - L_min)/T), exponentially small
      when the boundaries pass through saddles well above the minima.
      ``basin_index`` is only evaluated at nodes with exp(-(L-L_min)/T) w >= 1e-20 of
      the largest (the others change the result by < 1e-20 n_grid^2 relatively).

    Plus the mass outside the box, which ``bounds`` makes negligible.
    Default n_grid: 2001 in 1-D (per segment), 401 in 2-D.

    Nodes whose basin index is outside range(len(minima())) (e.g. -1 for
    "unassigned") are left out of the normalisation.

    Returns an array of probabilities in ``landscape.minima()`` order.
    """
    _validate(lr, batch_size, sigma2)
    temp_arr = _temperature_array(lr, batch_size, sigma2)
    if temp_arr.ndim != 0:
        raise ValueError("lr, batch_size and sigma2 must be scalars for basin_probabilities")
    temp = float(temp_arr)
    dim = int(landscape.dim)
    if dim not in (1, 2):
        raise ValueError(f"basin_probabilities supports dim 1 and 2, got landscape.dim = {dim}")
    if n_grid is None:
        n_grid = 2001 if dim == 1 else 401
    n_grid = _checks.check_int("n_grid", n_grid, minimum=3)
    if n_grid % 2 == 0:
        raise ValueError(f"n_grid must be odd for Simpson's rule, got {n_grid}")
    low, high = (np.asarray(b, dtype=float).reshape(dim) for b in landscape.bounds(temp))
    if np.any(~np.isfinite(low)) or np.any(~np.isfinite(high)) or np.any(high <= low):
        raise ValueError(f"landscape.bounds({temp}) must give finite low < high, got {low}, {high}")
    n_min = len(landscape.minima())
    if dim == 1:
        mass = _basin_masses_1d(landscape, float(low[0]), float(high[0]), n_grid, temp, n_min)
    else:
        axes = [np.linspace(low[k], high[k], n_grid) for k in range(dim)]
        weights = [simpson_weights(n_grid, (high[k] - low[k]) / (n_grid - 1)) for k in range(dim)]
        g0, g1 = np.meshgrid(axes[0], axes[1], indexing="ij")
        theta = np.stack([g0, g1], axis=-1)
        w = np.outer(weights[0], weights[1])
        loss = _landscape_values(landscape, theta, w.shape)
        f = (np.exp(-(loss - loss.min()) / temp) * w).ravel()
        # basin_index can be expensive (gradient flow): only ask it for nodes that carry mass.
        # Dropped nodes have f < 1e-20 max f <= 1e-20 * total, so their total share is
        # <= 1e-20 * n_grid^2 (< 1e-14 for n_grid <= 1001).
        keep = np.nonzero(f >= 1e-20 * f.max())[0]
        idx = np.asarray(landscape.basin_index(theta.reshape(-1, 2)[keep])).reshape(keep.shape)
        mass = np.zeros(n_min)
        valid = (idx >= 0) & (idx < n_min)
        np.add.at(mass, idx[valid], f[keep][valid])
    total = mass.sum()
    if not total > 0:
        raise ValueError("no Gibbs mass was assigned to any basin")
    return mass / total


def _landscape_values(landscape, theta, shape) -> np.ndarray:
    loss = np.asarray(landscape.value(theta), dtype=float).reshape(shape)
    if np.any(~np.isfinite(loss)):
        raise ValueError("landscape.value is not finite on the quadrature box")
    return loss


def _basin_masses_1d(landscape, low: float, high: float, n_grid: int, temp: float, n_min: int) -> np.ndarray:
    """1-D: locate every basin boundary to machine precision (bisection on basin_index between
    grid nodes whose basin differs), then integrate exp(-(L - L_ref)/T) over each segment
    between boundaries with its own n_grid-node composite Simpson rule: O(h^4), no cut error."""
    x = np.linspace(low, high, n_grid)
    idx = np.asarray(landscape.basin_index(x[:, None])).reshape(n_grid)
    change = np.nonzero(idx[1:] != idx[:-1])[0]
    a, b = x[change].copy(), x[change + 1].copy()
    ia = idx[change]
    for _ in range(200):
        if a.size == 0 or np.all(b - a <= 4 * np.finfo(float).eps * np.maximum(1.0, np.abs(a))):
            break
        mid = 0.5 * (a + b)
        im = np.asarray(landscape.basin_index(mid[:, None])).reshape(mid.shape)
        left = im == ia
        a = np.where(left, mid, a)
        b = np.where(left, b, mid)
    cuts = np.concatenate([[low], 0.5 * (a + b), [high]])
    seg_basin = np.concatenate([idx[change], [idx[-1]]])
    ref = float(np.min(_landscape_values(landscape, x[:, None], (n_grid,))))
    mass = np.zeros(n_min)
    for k in range(len(cuts) - 1):
        lo, hi = cuts[k], cuts[k + 1]
        j = seg_basin[k]
        if hi <= lo or not (0 <= j < n_min):
            continue
        xs = np.linspace(lo, hi, n_grid)
        loss = _landscape_values(landscape, xs[:, None], (n_grid,))
        mass[j] += float(np.sum(np.exp(-(loss - ref) / temp) * simpson_weights(n_grid, (hi - lo) / (n_grid - 1))))
    return mass


def __getattr__(name: str):
    # ``from theory.minima import Minimum`` re-exports theory.landscapes.Minimum lazily (no import cycle)
    if name == "Minimum":
        from theory.landscapes import Minimum

        return Minimum
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
