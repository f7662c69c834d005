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
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import logsumexp

from theory import _checks
from theory._types import FloatArray, FloatOrArray
from theory.gibbs import _out, _temperature_array, _validate

if TYPE_CHECKING:
    from theory.landscapes.base import Landscape, Minimum

__all__ = [
    "spd_logdet",
    "log_weight",
    "log_ratio",
    "probabilities",
    "threshold_noise",
    "basin_probabilities",
    "simpson_weights",
    "derivatives_1d",
    "laplace_correction_1d",
    "laplace_first_order_1d",
]


def spd_logdet(hessian: ArrayLike, name: str = "hessian") -> FloatOrArray:
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
    loss_min: ArrayLike,
    hessian: ArrayLike = None,
    logdet: ArrayLike = None,
    *,
    lr: ArrayLike,
    batch_size: ArrayLike,
    sigma2: ArrayLike,
    include_gaussian_factor: bool = False,
    dim: int | None = None,
) -> FloatOrArray:
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


def log_ratio(A: Minimum, B: Minimum, *, lr: ArrayLike, batch_size: ArrayLike, sigma2: ArrayLike) -> FloatOrArray:
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


def probabilities(minima: Sequence[Any], *, lr: ArrayLike, batch_size: ArrayLike, sigma2: ArrayLike) -> FloatArray:
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


def threshold_noise(loss_a: ArrayLike, loss_b: ArrayLike, logdet_a: ArrayLike, logdet_b: ArrayLike,
                    sigma2: ArrayLike) -> FloatOrArray:
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


def derivatives_1d(landscape: Landscape, x0: float, h: float = 1e-3) -> tuple[float, float, float]:
    """L2, L3, L4 = the 2nd, 3rd and 4th derivatives of a 1-D landscape at x0: its Hessian and
    fourth-order central differences of it (step h: errors O(h^4) and O(h^2), rounding ~ eps/h^2)."""
    def second(x):
        return float(landscape.hessian(np.array([[x]]))[0, 0, 0])

    f = [second(x0 + k * h) for k in (-2, -1, 0, 1, 2)]
    l3 = (f[0] - 8 * f[1] + 8 * f[3] - f[4]) / (12 * h)
    l4 = (-f[0] + 16 * f[1] - 30 * f[2] + 16 * f[3] - f[4]) / (12 * h * h)
    return f[2], l3, l4


def laplace_correction_1d(l2: float, l3: float, l4: float) -> float:
    """c in  int exp(-L/T) dx = sqrt(2 pi T / L2) e^{-L_0/T} [1 + c T + O(T^2)]  around a minimum
    with derivatives L2 > 0, L3, L4 (the next term of Laplace's method, e.g. Bender & Orszag,
    *Advanced Mathematical Methods*, eq. 6.4.35): c = 5 L3^2 / (24 L2^3) - L4 / (8 L2^2)."""
    return 5 * l3 ** 2 / (24 * l2 ** 3) - l4 / (8 * l2 ** 2)


def laplace_first_order_1d(landscape: Landscape, temperature: float) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Laplace basin weights of eq. 3 and their first finite-temperature correction (1-D).

    The basin integral of exp(-L/T) is sqrt(2 pi T / L2) e^{-L_0/T} [1 + c T + O(T^2)]
    (:func:`laplace_correction_1d`).  Returns (p_laplace, p_first_order, c) normalised over the
    minima (c per minimum)."""
    _checks.check_positive("temperature", temperature)
    mins = landscape.minima()
    logw = np.array([-0.5 * m.logdet - m.loss / temperature for m in mins])
    cs = np.array([laplace_correction_1d(*derivatives_1d(landscape, float(m.location[0]))) for m in mins])
    p0 = np.exp(logw - logsumexp(logw))
    w1 = np.exp(logw - logw.max()) * (1 + cs * temperature)
    return p0, w1 / w1.sum(), cs


def basin_probabilities(landscape: Landscape, *, lr: ArrayLike, batch_size: ArrayLike, sigma2: ArrayLike,
                        n_grid: int | None = None) -> FloatArray:
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
    * 2-D: (n_grid - 1)^2 cells, midpoint rule, second order.  A cell whose four
      corners lie in one basin counts whole; a cell cut by a basin boundary is
      split along the straight segment joining the boundary's crossings of the
      cell's edges (each located by bisection on ``basin_index``) and each part
      counts its area times the density at its centroid.  Errors: O(h^2) from
      the midpoint rule, O(h^3 * curvature) per cut cell from the straight
      segment, O(1/h) cut cells: O(h^2) in all (a node indicator alone is
      first order, with an erratic constant).  Cells with more than two basins
      or crossings (near a triple point) are split into 8 x 8 sub-cells.
      Only cells with exp(-(L-L_min)/T) >= 1e-20 of the largest are classified
      (the others change the result by < 1e-20 n_grid^2 relatively).

    Plus the mass outside the box, which ``bounds`` makes negligible.
    Default n_grid: 2001 in 1-D (per segment), 401 nodes per axis in 2-D.

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
    if dim == 1 and n_grid % 2 == 0:
        raise ValueError(f"n_grid must be odd for Simpson's rule, got {n_grid}")
    low, high = (np.asarray(b, dtype=float).reshape(dim) for b in landscape.bounds(temp))
    if np.any(~np.isfinite(low)) or np.any(~np.isfinite(high)) or np.any(high <= low):
        raise ValueError(f"landscape.bounds({temp}) must give finite low < high, got {low}, {high}")
    n_min = len(landscape.minima())
    # per node: 1-D the node, log-density and Simpson weight of each segment (a few segments);
    # 2-D the centres, loss, density, corner labels and masks of the cut-cell rule
    _checks.check_fits_memory("n_grid", n_grid, 4 * 32.0 * n_grid if dim == 1 else 100.0 * float(n_grid) ** 2,
                              f"the quadrature grid ({n_grid} nodes{' per segment' if dim == 1 else ' per axis'})",
                              advice="use a smaller n_grid (the default is accurate to ~1e-10 in 1-D, 1e-5 in 2-D)")
    if dim == 1:
        mass = _basin_masses_1d(landscape, float(low[0]), float(high[0]), n_grid, temp, n_min)
    else:
        mass = _basin_masses_2d(landscape, low, high, n_grid, temp, n_min)
    total = mass.sum()
    if not total > 0:
        raise ValueError("no Gibbs mass was assigned to any basin")
    return mass / total


def _bisect_boundary(landscape, a, b, label_a):
    """Points on the segments a -> b (rows) where the basin changes from ``label_a``, by
    bisection on ``basin_index`` to ~1e-13 of the segment length."""
    a, b = a.copy(), b.copy()
    for _ in range(44):
        mid = 0.5 * (a + b)
        same = np.asarray(landscape.basin_index(mid)).reshape(-1) == label_a
        a[same] = mid[same]
        b[~same] = mid[~same]
    return 0.5 * (a + b)


def _polygon_area_centroid(pts):
    """Area and centroid of polygons given as vertex arrays (m, k, 2) in order (shoelace)."""
    x, y = pts[..., 0], pts[..., 1]
    xn, yn = np.roll(x, -1, axis=-1), np.roll(y, -1, axis=-1)
    cross = x * yn - xn * y
    area = 0.5 * cross.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = ((x + xn) * cross).sum(axis=-1) / (6 * area)
        cy = ((y + yn) * cross).sum(axis=-1) / (6 * area)
    return np.abs(area), np.stack([cx, cy], axis=-1)


def _basin_masses_2d(landscape, low, high, n_nodes, temp, n_min):
    """Cut-cell midpoint rule of :func:`basin_probabilities` (2-D)."""
    xs = np.linspace(low[0], high[0], n_nodes)
    ys = np.linspace(low[1], high[1], n_nodes)
    hx, hy = xs[1] - xs[0], ys[1] - ys[0]
    cx, cy = 0.5 * (xs[1:] + xs[:-1]), 0.5 * (ys[1:] + ys[:-1])
    centres = np.stack(np.meshgrid(cx, cy, indexing="ij"), axis=-1)
    loss = _landscape_values(landscape, centres, centres.shape[:2])
    ref = float(loss.min())

    def density(pts):
        return np.exp(-(np.asarray(landscape.value(pts), dtype=float) - ref) / temp)

    f = np.exp(-(loss - ref) / temp)
    keep = f >= 1e-20 * f.max()
    need = np.zeros((n_nodes, n_nodes), dtype=bool)
    for di in (0, 1):
        for dj in (0, 1):
            need[di:n_nodes - 1 + di, dj:n_nodes - 1 + dj] |= keep
    nodes = np.stack(np.meshgrid(xs, ys, indexing="ij"), axis=-1)
    lab = np.full((n_nodes, n_nodes), -1, dtype=np.int64)
    lab[need] = np.asarray(landscape.basin_index(nodes[need])).reshape(-1)
    corner = np.stack([lab[:-1, :-1], lab[1:, :-1], lab[1:, 1:], lab[:-1, 1:]], axis=-1)  # counter-clockwise
    mass = np.zeros(n_min)
    uniform = keep & np.all(corner == corner[..., :1], axis=-1)
    valid = uniform & (corner[..., 0] >= 0) & (corner[..., 0] < n_min)
    np.add.at(mass, corner[..., 0][valid], f[valid] * hx * hy)

    cut_i, cut_j = np.nonzero(keep & ~uniform)
    if cut_i.size == 0:
        return mass
    c = corner[cut_i, cut_j]  # (m, 4) labels at corners 00, 10, 11, 01
    xy = np.stack([np.stack([xs[cut_i], ys[cut_j]], -1), np.stack([xs[cut_i + 1], ys[cut_j]], -1),
                   np.stack([xs[cut_i + 1], ys[cut_j + 1]], -1), np.stack([xs[cut_i], ys[cut_j + 1]], -1)], axis=1)
    differs = c != np.roll(c, -1, axis=1)  # edge k joins corner k and k + 1
    two = (differs.sum(axis=1) == 2) & np.array([len(set(r)) == 2 for r in c.tolist()])
    # straight-segment split of the cells with one boundary crossing two edges
    rows = np.nonzero(two)[0]
    if rows.size:
        edge_rows, edge_k = np.nonzero(differs[rows])
        start = xy[rows[edge_rows], edge_k]
        end = xy[rows[edge_rows], (edge_k + 1) % 4]
        cross = _bisect_boundary(landscape, start, end, c[rows[edge_rows], edge_k]).reshape(rows.size, 2, 2)
        ek = edge_k.reshape(rows.size, 2)
        for r in range(rows.size):
            ci = rows[r]
            verts_a, verts_b = [], []
            side_a = c[ci, 0]
            for k in range(4):
                (verts_a if c[ci, k] == side_a else verts_b).append(xy[ci, k])
                hit = np.nonzero(ek[r] == k)[0]
                if hit.size:
                    p = cross[r, hit[0]]
                    verts_a.append(p)
                    verts_b.append(p)
            for verts, label in ((verts_a, side_a), (verts_b, c[ci][c[ci] != side_a][0])):
                if not 0 <= label < n_min:
                    continue
                area, centroid = _polygon_area_centroid(np.array(verts)[None])
                mass[label] += area[0] * density(centroid)[0]
    # cells near a triple point (or with two boundaries): 8 x 8 sub-cells by their centres
    rest = np.nonzero(~two)[0]
    if rest.size:
        k = 8
        sub = (np.arange(k) + 0.5) / k
        su, sv = np.meshgrid(sub, sub, indexing="ij")
        pts = np.stack([xs[cut_i[rest]][:, None] + hx * su.ravel()[None, :],
                        ys[cut_j[rest]][:, None] + hy * sv.ravel()[None, :]], axis=-1).reshape(-1, 2)
        sub_lab = np.asarray(landscape.basin_index(pts)).reshape(-1)
        w = density(pts) * hx * hy / (k * k)
        ok = (sub_lab >= 0) & (sub_lab < n_min)
        np.add.at(mass, sub_lab[ok], w[ok])
    return mass


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
