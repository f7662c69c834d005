"""Second-order stochastic modified equation of SGD: where the first-order SDE breaks at finite lr.

Setting (the paper's, Sec. 3.1): isotropic per-sample gradient noise C = sigma2 I, so one SGD
step is the chain

    theta' = theta - lr grad L(theta) + (lr / sqrt(S)) xi,   Cov xi = sigma2 I,

and at fixed noise n = lr / S the temperature T = lr sigma2 / (2 S) = n sigma2 / 2 is fixed while
lr -> 0.  Time is counted in SGD steps.  Per step the chain moves by lr grad L and diffuses by
lr^2 sigma2 / S = 2 lr T.

First order (the paper's SDE, eq. 1; stationary law eq. 2):

    d theta = -lr grad L dt + sqrt(2 lr T) dW,        p_1 ~ exp(-L / T).

Second order (derived here by backward error analysis of the chain's one-step generator, the
method of Li, Tai & E 2017, ICML, PMLR 70:2101-2110, and 2019, JMLR 20(40):1-47).  Write
h = lr, f = -grad L and L_0 = f.grad + T Laplacian for the generator of the first-order equation
in rescaled time t_lr = lr t.  Expanding E phi(theta') to O(h^2) (Gaussian moments of the step)
and matching exp(h L_h) = 1 + h L_h + h^2 L_h^2 / 2 gives L_h = L_0 + h L_1 with

    L_1 = -1/2 [ (f.grad) f + T Lap f ] . grad  -  T (grad f) : grad grad,

i.e., back in SGD steps,

    d theta = -lr [ grad L + (lr/4) grad |grad L|^2 - (lr T / 2) grad Lap L ] dt
              + sqrt(2 lr T (I + lr H)) dW,                           H = Hessian of L.

The drift correction -(lr/4) grad |grad L|^2 is Li, Tai & E's; the other two terms are the
O(lr T) terms of the same expansion.  Li, Tai & E state the second-order SME with the diffusion
unchanged, dX = -grad(f + (eta/4)|grad f|^2) dt + sqrt(eta Sigma) dW (ICML 2017, Theorem 1;
JMLR 2019, SGD section): their limit is lr -> 0 at fixed S and Sigma, where T = O(lr), so
lr T grad Lap L and lr T H are O(lr^2) and rightly dropped for second-order weak accuracy on
finite horizons.  At fixed n (fixed T, the paper's scaling and the stationary law's), they are
O(lr), as large as the kept term, and dropping them makes the stationary law wrong at O(lr),
even in the direction of the correction: on L = lam x^2 / 2 the drift-only SME has the Gibbs law
of L + (lr/4) L'^2, variance T / (lam (1 + lr lam / 2)) = n sigma2 / (lam (2 + lr lam)), while the
exact chain has n sigma2 / (lam (2 - lr lam)) (:func:`theory.discrete.stationary_variance`).
Available here as ``variant="li_tai_e"``.

Stationary law.  The one-step error of the second-order equation is O(h^3); over the O(1/h)
steps the chain needs to mix at fixed T it accumulates to O(h^2), so its stationary law matches
the chain's to O(lr^2) (Talay & Tubaro 1990, Stoch. Anal. Appl. 8:483; Mattingly, Stuart &
Tretyakov 2010, SIAM J. Numer. Anal. 48:552).  Expanded (checked symbolically in 2-D, any L):

    log p_2 = -L/T + lr ( |grad L|^2 / (4T) - Lap L / 2 ) + O(lr^2)              (any d)

(the invariant-measure correction of the Euler-Maruyama scheme for overdamped Langevin dynamics,
Abdulle, Vilmart & Zygalakis 2014, SIAM J. Numer. Anal. 52:1600).  In 1-D the second-order
equation's own Ito stationary density p ~ exp(int 2 b / D - log D) is, with the lr T L''' term
integrated exactly,

    log p_2 = -L/T - 1/2 log(1 + lr L'') + (lr / (2T)) int^x L' L'' / (1 + lr L'') dy,

computed here by cumulative Simpson quadrature in logs (``method="sde"``); ``method="expansion"``
is the O(lr) formula above.  Both are O(lr^2)-accurate; they differ at O(lr^2).  Measured against
the exact chain (docs/beyond-the-paper.md) the expansion's O(lr^2) constant is 2-4x smaller, and
at low T the sde law's log-odds between wells carry O(lr^2 L''^2 dL_barrier / T) terms from the
integral across the barrier: prefer "expansion" for predictions, "sde" for the equation's own law.

Basin probabilities.  Integrating the correction over a basin of gradient flow, whose boundary
L is tangent to (grad L . normal = 0), by parts: <|grad L|^2>_A / T = <Lap L>_A, so exactly

    d/d lr log(P_A / P_B) |_(lr -> 0, fixed T) = -( <Lap L>_A - <Lap L>_B ) / 4,

<.>_A the Gibbs average over basin A: finite lr penalises the basin of larger mean curvature.
Laplace level: <Lap L>_A ~ Tr H_A, i.e. the weight det(H_A)^(-1/2) of eq. 3 becomes
det(H_A (I + lr H_A / 2))^(-1/2) (the second-order equation's Gaussian mass), and the noise
threshold of eq. 4 moves to n* = 4 dL / (sigma2 [log det(H_B + lr H_B^2/2) - log det(H_A + lr H_A^2/2)]).

Where the expansion is defined.  (i) The corrected diffusion 2 lr T (1 + lr L'') must be
positive: lr * max(-L'') < 1 wherever the density lives (barrier tops have L'' < 0).  (ii) The
chain must have a stationary law in every well: lr * lam_max(H_A) < 2 at each minimum; this is
also the radius of convergence of the expansion in lr lam of the exact quadratic variance
1 / (1 - lr lam / 2).  Outside either, functions raise ValueError naming ``lr`` and the bound.
Accuracy needs lr * |L''| << 1; the error of the second-order law grows like (lr L'')^2.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize
from scipy.integrate import cumulative_simpson
from scipy.special import logsumexp

from theory import _checks
from theory._types import FloatArray, FloatOrArray
from theory.gibbs import _out, _temperature_array, _validate
from theory.minima import simpson_weights, spd_logdet
from theory.minima import threshold_noise as _threshold_noise_from_logdets

if TYPE_CHECKING:
    from theory.landscapes.base import Landscape, Minimum

__all__ = [
    "VARIANTS",
    "METHODS",
    "modified_drift",
    "modified_diffusion",
    "check_lr",
    "stationary_log_density",
    "quadratic_stationary_variance",
    "basin_probabilities",
    "basin_probability_slopes",
    "threshold_noise",
    "log_weight",
    "threshold_noise_laplace",
    "cell_masses",
]

VARIANTS = ("full", "li_tai_e")
METHODS = ("sde", "expansion")


# ---------------------------------------------------------------------------------- helpers
def _scalar_params(lr, batch_size, sigma2) -> tuple[float, float]:
    _validate(lr, batch_size, sigma2)
    temp = _temperature_array(lr, batch_size, sigma2)
    if temp.ndim != 0:
        raise ValueError("lr, batch_size and sigma2 must be scalars here (loop over hyper-parameters)")
    return float(lr), float(temp)


def _check_order(order, variant, method=None):
    if order not in (1, 2):
        raise ValueError(f"order must be 1 (the paper's SDE) or 2 (the modified equation), got {order!r}")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if method is not None and method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def _points(landscape, theta):
    """theta as (n, d) plus what is needed to restore the caller's shape; 1-D landscapes accept plain
    coordinates (shape (...)), as ``Landscape.gradient`` does."""
    arr = np.asarray(theta, dtype=float)
    _checks.check_finite("theta", arr)
    plain = landscape.dim == 1 and (arr.ndim == 0 or arr.shape[-1] != 1)
    flat, batch = landscape._flatten(arr)
    return flat, batch, plain


def _hessians(landscape, flat) -> np.ndarray:
    return np.asarray(landscape.hessian(flat), dtype=float).reshape(flat.shape[0], landscape.dim, landscape.dim)


def _grad_laplacian(landscape, flat) -> np.ndarray:
    """grad Lap L by central differences of Tr H along each axis; step 1e-4 max(1, |theta_k|):
    truncation ~1e-8 |L^(5)|, rounding ~1e-12 |H| (the term enters multiplied by lr^2 T)."""
    n, d = flat.shape
    out = np.empty((n, d))
    for k in range(d):
        step = 1e-4 * np.maximum(1.0, np.abs(flat[:, k]))
        plus, minus = flat.copy(), flat.copy()
        plus[:, k] += step
        minus[:, k] -= step
        tp = np.trace(_hessians(landscape, plus), axis1=1, axis2=2)
        tm = np.trace(_hessians(landscape, minus), axis1=1, axis2=2)
        out[:, k] = (tp - tm) / (plus[:, k] - minus[:, k])
    return out


def _check_stable_at(minimum, lr: float):
    lam = float(np.linalg.eigvalsh(np.asarray(minimum.hessian, dtype=float))[-1])
    if lr * lam >= 2.0:
        raise ValueError(
            f"lr = {lr:.6g} is outside the region where the modified equation is defined: the SGD chain "
            f"is unstable at a minimum of curvature {lam:.4g}; need lr < 2 / lam_max = {2.0 / lam:.6g}"
        )


def _check_diffusion(lr: float, min_curvature: float, where: str):
    if 1.0 + lr * min_curvature <= 0.0:
        raise ValueError(
            f"lr = {lr:.6g} is outside the region where the second-order equation is defined: its "
            f"diffusion 2 lr T (1 + lr L'') is not positive {where} (smallest curvature {min_curvature:.4g}); "
            f"need lr < 1 / max(-L'') = {1.0 / -min_curvature:.6g}"
        )


def check_lr(landscape: Landscape, *, lr: float, curvatures: ArrayLike | None = None) -> float:
    """Raise ValueError naming ``lr`` unless the second-order expansion is defined at this lr:

        lr * lam_max(H_A) < 2 at every minimum A   (the chain is stationary in every well; radius of
                                                    convergence of 1 / (1 - lr lam / 2) in lr lam)
        1 + lr * min L'' > 0 on ``curvatures``      (positive corrected diffusion; the Hessian
                                                    eigenvalues where the density lives, if given)
    Returns lr."""
    _checks.check_positive("lr", lr)
    lr = float(lr)
    for m in landscape.minima():
        _check_stable_at(m, lr)
    if curvatures is not None:
        curv = np.asarray(curvatures, dtype=float)
        if curv.size:
            _check_diffusion(lr, float(np.min(curv)), "on the integration box")
    return lr


# ---------------------------------------------------------------------------------- the equation
def modified_drift(landscape: Landscape, theta: ArrayLike, *, lr: float, batch_size: float, sigma2: float,
                   order: int = 2, variant: str = "full") -> FloatOrArray:
    """Drift per SGD step of the modified equation at theta (shape of ``landscape.gradient(theta)``):

        order 1:                    b = -lr grad L                                    (paper eq. 1)
        order 2, variant "full":    b = -lr [ grad L + (lr/2) H grad L - (lr T/2) grad Lap L ]
        order 2, variant "li_tai_e": b = -lr [ grad L + (lr/2) H grad L ]

    ((lr/4) grad |grad L|^2 = (lr/2) H grad L.)  Derived in the module docstring (backward error
    analysis of the SGD chain, Li, Tai & E 2017/2019); grad Lap L by central differences of the
    Hessian's trace.  T = lr sigma2 / (2 batch_size)."""
    _check_order(order, variant)
    lr, temp = _scalar_params(lr, batch_size, sigma2)
    flat, batch, plain = _points(landscape, theta)
    g = np.asarray(landscape.gradient(flat), dtype=float).reshape(flat.shape)
    if order == 1:
        b = -lr * g
    else:
        hg = np.einsum("nij,nj->ni", _hessians(landscape, flat), g)
        b = -lr * (g + 0.5 * lr * hg)
        if variant == "full":
            b = b + 0.5 * lr * lr * temp * _grad_laplacian(landscape, flat)
    if plain:
        return _out(b[:, 0].reshape(batch))
    return b.reshape(batch + (landscape.dim,))


def modified_diffusion(landscape: Landscape, theta: ArrayLike, *, lr: float, batch_size: float, sigma2: float,
                       order: int = 2, variant: str = "full") -> FloatOrArray:
    """Diffusion matrix per SGD step, D = E[d theta d theta^T] / dt, of the modified equation:

        order 1 or variant "li_tai_e":  D = 2 lr T I = (lr^2 sigma2 / S) I            (paper eq. 1)
        order 2, variant "full":        D = 2 lr T (I + lr H(theta))

    Shape (..., d, d), or (...) for plain 1-D coordinates.  ValueError naming ``lr`` where
    I + lr H is not positive definite (lr >= 1 / max(-lambda_min(H))): the equation is undefined."""
    _check_order(order, variant)
    lr, temp = _scalar_params(lr, batch_size, sigma2)
    flat, batch, plain = _points(landscape, theta)
    d = landscape.dim
    eye = np.broadcast_to(np.eye(d), (flat.shape[0], d, d))
    if order == 1 or variant == "li_tai_e":
        out = 2.0 * lr * temp * eye
    else:
        hess = _hessians(landscape, flat)
        lam_min = np.linalg.eigvalsh(hess)[:, 0]
        worst = int(np.argmin(lam_min))
        _check_diffusion(lr, float(lam_min[worst]), f"at theta = {flat[worst]}")
        out = 2.0 * lr * temp * (eye + lr * hess)
    if plain:
        return _out(out[:, 0, 0].reshape(batch))
    return out.reshape(batch + (d, d))


# ---------------------------------------------------------------------------------- stationary law
def stationary_log_density(landscape: Landscape, theta: ArrayLike, *, lr: float, batch_size: float, sigma2: float,
                           order: int = 2, variant: str = "full", method: str = "sde") -> FloatOrArray:
    """Unnormalised log stationary density of the modified equation, shifted so that its maximum is 0.

        order 1:                      -L / T                                   (Gibbs, paper eq. 2)
        variant "li_tai_e":           -(L + (lr/4) |grad L|^2) / T     (exact for that SME, any d)
        order 2, method "expansion":  -L/T + lr (|grad L|^2 / (4T) - Lap L / 2)      (any d)
        order 2, method "sde" (1-D):  -L/T - 1/2 log(1 + lr L'') + (lr/(2T)) int_{x_0}^x L'L''/(1 + lr L'') dy

    The last is the Ito stationary density exp(int 2b/D - log D) of the 1-D second-order equation
    (module docstring); ``theta`` must then be an increasing 1-D grid, fine enough for cumulative
    Simpson quadrature (error O(h^4)), and the density is relative to x_0 = theta[0].  For
    ``method="sde"`` ``check_lr`` is applied with the curvatures on the grid."""
    _check_order(order, variant, method)
    lr, temp = _scalar_params(lr, batch_size, sigma2)
    flat, batch, _ = _points(landscape, theta)
    logp = _log_density(landscape, flat, lr, temp, order, variant, method)
    logp = logp - np.max(logp)
    return _out(logp.reshape(batch)) if batch else float(logp[0])


def _log_density(landscape, flat, lr: float, temp: float, order, variant, method) -> np.ndarray:
    loss = np.asarray(landscape.value(flat), dtype=float).reshape(-1)
    if order == 1:
        return -loss / temp
    g = np.asarray(landscape.gradient(flat), dtype=float).reshape(flat.shape)
    g2 = np.sum(g * g, axis=1)
    if variant == "li_tai_e":
        return -(loss + 0.25 * lr * g2) / temp
    if method == "expansion":
        check_lr(landscape, lr=lr)
        lap = np.trace(_hessians(landscape, flat), axis1=1, axis2=2)
        return -loss / temp + lr * (0.25 * g2 / temp - 0.5 * lap)
    return _sde_log_density_1d(landscape, flat, loss, g, lr, temp)


def _sde_log_density_1d(landscape, flat, loss, g, lr, temp) -> np.ndarray:
    if landscape.dim != 1:
        raise ValueError("method='sde' needs a 1-D landscape; use method='expansion' in higher dimension")
    x = flat[:, 0]
    if x.size < 3 or np.any(np.diff(x) <= 0):
        raise ValueError("theta must be an increasing grid of at least 3 points for method='sde'")
    curv = _hessians(landscape, flat)[:, 0, 0]
    check_lr(landscape, lr=lr, curvatures=curv)
    integral = cumulative_simpson(g[:, 0] * curv / (1.0 + lr * curv), x=x, initial=0.0)
    return -loss / temp - 0.5 * np.log1p(lr * curv) + (0.5 * lr / temp) * integral


def quadratic_stationary_variance(lam: ArrayLike, *, lr: ArrayLike, batch_size: ArrayLike, sigma2: ArrayLike,
                                  order: int = 2, variant: str = "full") -> FloatOrArray:
    """Stationary variance of the modified equation on L = lam x^2 / 2 (closed forms, n = lr / S):

        order 1:              T / lam                           = n sigma2 / (2 lam)         (eq. 2)
        order 2, "full":      T (1 + lr lam) / (lam (1 + lr lam / 2))
        order 2, "li_tai_e":  T / (lam (1 + lr lam / 2))        = n sigma2 / (lam (2 + lr lam))

    (Ornstein-Uhlenbeck: variance = D / (2 x drift rate)).  The exact SGD chain has
    n sigma2 / (lam (2 - lr lam)) = (T/lam)(1 + lr lam/2 + (lr lam)^2/4 + ...); order 2 "full"
    matches it through O(lr) with relative residual -(lr lam)^2 / (2 (1 + lr lam / 2)); order 1 is
    off by -lr lam / 2 and "li_tai_e" by -lr lam (twice as far, the wrong way).  Vectorised."""
    _check_order(order, variant)
    _validate(lr, batch_size, sigma2)
    _checks.check_positive("lam", lam)
    lam_a = np.asarray(lam, dtype=float)
    x = np.asarray(lr, dtype=float) * lam_a
    base = _temperature_array(lr, batch_size, sigma2) / lam_a
    if np.any(x >= 2.0):
        raise ValueError(f"lr * lam must be < 2 (SGD is unstable beyond: no stationary law), got lr = {lr!r}")
    if order == 1:
        return _out(base)
    if variant == "li_tai_e":
        return _out(base / (1.0 + 0.5 * x))
    return _out(base * (1.0 + x) / (1.0 + 0.5 * x))


# ---------------------------------------------------------------------------------- basins (1-D)
def _segments_1d(landscape, temp: float):
    """Integration box of ``landscape.bounds(temp)`` cut at the basin boundaries (the local maxima
    between consecutive minima of a 1-D landscape), with the basin index of each segment."""
    from theory.landscapes.basins import saddles_1d

    if landscape.dim != 1:
        raise ValueError(f"basin quadrature of the modified equation is 1-D only, got landscape.dim = {landscape.dim}")
    low, high = (float(np.asarray(v, dtype=float).reshape(-1)[0]) for v in landscape.bounds(temp))
    saddles = np.asarray(saddles_1d(landscape), dtype=float) if len(landscape.minima()) > 1 else np.zeros(0)
    cuts = np.concatenate([[low], saddles[(saddles > low) & (saddles < high)], [high]])
    return cuts, np.arange(cuts.size - 1)


def cell_masses(landscape: Landscape, edges: ArrayLike, *, lr: float, batch_size: float, sigma2: float, order: int = 2,
                variant: str = "full", method: str = "sde") -> FloatArray:
    """Stationary mass of each cell [e_k, e_(k+1)] of a uniform 1-D grid ``edges`` under the modified
    equation's law (:func:`stationary_log_density`), by Simpson's rule on each cell (its ends and
    midpoint: error O(h^5) per cell), normalised over the cells: the form in which to compare the law
    with the exact chain's cell masses (:func:`sim.chain.stationary_law`)."""
    edges = np.asarray(edges, dtype=float)
    if edges.ndim != 1 or edges.size < 2 or not np.allclose(np.diff(edges), edges[1] - edges[0], rtol=1e-9, atol=0):
        raise ValueError("edges must be a uniform increasing 1-D grid of at least 2 values")
    nodes = np.linspace(edges[0], edges[-1], 2 * (edges.size - 1) + 1)
    p = np.exp(stationary_log_density(landscape, nodes, lr=lr, batch_size=batch_size, sigma2=sigma2, order=order,
                                      variant=variant, method=method))
    cells = (edges[1] - edges[0]) / 6.0 * (p[0:-1:2] + 4.0 * p[1::2] + p[2::2])
    return cells / cells.sum()


def basin_probabilities(landscape: Landscape, *, lr: float, batch_size: float, sigma2: float, order: int = 2,
                        variant: str = "full", method: str = "sde", n_grid: int = 2001) -> FloatArray:
    """Stationary mass of each basin of gradient flow under the modified equation (1-D), in
    ``landscape.minima()`` order:

        P_A = int_A p(x) dx / int p(x) dx,    p from :func:`stationary_log_density`.

    The box ``landscape.bounds(T)`` is cut at the basin boundaries (local maxima of L); each
    segment gets its own composite Simpson rule with ``n_grid`` nodes (error O(h^4)); the
    cumulative integral of method "sde" is carried across segments.  order 1 reproduces
    :func:`theory.minima.basin_probabilities` (exact Gibbs, eq. 2)."""
    _check_order(order, variant, method)
    lr_f, temp = _scalar_params(lr, batch_size, sigma2)
    return _basin_probabilities(landscape, lr_f, temp, order, variant, method, n_grid)


def _check_n_grid(n_grid) -> int:
    n_grid = _checks.check_int("n_grid", n_grid, minimum=3)
    # per node of each segment: the node, its Hessian/gradient terms and log-density (a lower bound)
    _checks.check_fits_memory("n_grid", n_grid, 4 * 64.0 * n_grid, f"the quadrature grid ({n_grid} nodes per segment)",
                              advice="use a smaller n_grid")
    if n_grid % 2 == 0:
        raise ValueError(f"n_grid must be odd for Simpson's rule, got {n_grid}")
    return n_grid


def _basin_probabilities(landscape, lr: float, temp: float, order, variant, method, n_grid) -> np.ndarray:
    n_grid = _check_n_grid(n_grid)
    cuts, seg_basin = _segments_1d(landscape, temp)
    xs = [np.linspace(cuts[k], cuts[k + 1], n_grid) for k in range(cuts.size - 1)]
    # one increasing grid (segment ends repeated once) so that method "sde" integrates across segments
    nodes = np.concatenate([xs[0]] + [x[1:] for x in xs[1:]])
    logp = _log_density(landscape, nodes[:, None], lr, temp, order, variant, method)
    n_min = len(landscape.minima())
    log_mass = np.full(n_min, -np.inf)
    start = 0
    for k, x in enumerate(xs):
        seg = logp[start:start + n_grid]
        start += n_grid - 1
        w = simpson_weights(n_grid, (x[-1] - x[0]) / (n_grid - 1))
        log_mass[seg_basin[k]] = np.logaddexp(log_mass[seg_basin[k]], logsumexp(seg + np.log(w)))
    return np.exp(log_mass - logsumexp(log_mass))


def basin_probability_slopes(landscape: Landscape, *, noise: float, sigma2: float,
                             n_grid: int = 2001) -> tuple[FloatArray, FloatArray]:
    """Exact first-order effect of a finite learning rate on the basin probabilities at fixed noise:

        dP_A / d lr |_(lr -> 0, n fixed) = -(P_A / 4) ( <L''>_A - <L''> ),

    with P_A and the Gibbs averages <L''>_A (over basin A) and <L''> (global) at T = noise sigma2 / 2
    (module docstring: the integral of the O(lr) density correction over a basin, by parts).
    1-D, by Simpson quadrature as :func:`basin_probabilities`.  Returns (slopes, P) in minima order."""
    _checks.check_positive("noise", noise)
    _checks.check_positive("sigma2", sigma2)
    temp = 0.5 * float(noise) * float(sigma2)
    cuts, seg_basin = _segments_1d(landscape, temp)
    n_grid = _check_n_grid(n_grid)
    n_min = len(landscape.minima())
    mass = np.zeros(n_min)
    curv_mass = np.zeros(n_min)
    ref = min(m.loss for m in landscape.minima())
    for k in range(cuts.size - 1):
        x = np.linspace(cuts[k], cuts[k + 1], n_grid)
        w = simpson_weights(x.size, (x[-1] - x[0]) / (x.size - 1))
        p = np.exp(-(np.asarray(landscape.value(x), dtype=float) - ref) / temp) * w
        curv = _hessians(landscape, x[:, None])[:, 0, 0]
        mass[seg_basin[k]] += p.sum()
        curv_mass[seg_basin[k]] += (p * curv).sum()
    prob = mass / mass.sum()
    mean_curv = curv_mass / mass
    return -0.25 * prob * (mean_curv - curv_mass.sum() / mass.sum()), prob


def threshold_noise(landscape: Landscape, *, lr: float, sigma2: float, order: int = 2, variant: str = "full",
                    method: str = "sde", a: int = 0, b: int = 1, bracket: tuple[float, float] | None = None,
                    n_grid: int = 2001, rtol: float = 1e-10) -> float:
    """Noise n* = lr / S at which minima ``a`` and ``b`` are equally probable, at finite ``lr``:

        P_a(n*; lr) = P_b(n*; lr),   P from :func:`basin_probabilities` (batch_size = lr / n, real).

    At order 1 n* does not depend on lr (the exact-quadrature version of the paper's eq. 4); at
    order 2 it moves by O(lr) (module docstring).  Root of log(P_a / P_b) in log n by Brent's
    method, within ``bracket`` (n_lo, n_hi) or, by default, a bracket grown by factors of 2 around
    the Laplace estimate; ValueError if the log-odds do not change sign."""
    _checks.check_positive("lr", lr)
    _checks.check_positive("sigma2", sigma2)
    mins = landscape.minima()
    for name, idx in (("a", a), ("b", b)):
        if not (0 <= idx < len(mins)):
            raise ValueError(f"{name} must index landscape.minima() (0..{len(mins) - 1}), got {idx!r}")
    if a == b:
        raise ValueError("a and b must be different minima")

    _check_order(order, variant, method)
    lr = float(lr)

    def log_odds(log_n):
        # the law depends on (lr, T) only, so batch_size = lr / n need not be >= 1 inside the search
        p = _basin_probabilities(landscape, lr, 0.5 * math.exp(log_n) * float(sigma2), order, variant, method, n_grid)
        return math.log(p[a]) - math.log(p[b])

    if bracket is None:
        guess = threshold_noise_laplace(mins[a], mins[b], lr=lr, sigma2=sigma2, order=order)
        if not (0.0 < guess < math.inf):
            guess = threshold_noise_laplace(mins[b], mins[a], lr=lr, sigma2=sigma2, order=order)
        if not (0.0 < guess < math.inf):
            raise ValueError("the Laplace weights of a and b never cross; give a bracket (n_lo, n_hi)")
        lo, hi = math.log(guess) - math.log(2.0), math.log(guess) + math.log(2.0)
        f_lo, f_hi = log_odds(lo), log_odds(hi)
        for _ in range(8):
            if f_lo * f_hi < 0:
                break
            lo, hi = lo - math.log(2.0), hi + math.log(2.0)
            f_lo, f_hi = log_odds(lo), log_odds(hi)
    else:
        n_lo, n_hi = (float(v) for v in bracket)
        _checks.check_positive("bracket", [n_lo, n_hi])
        lo, hi = math.log(n_lo), math.log(n_hi)
        f_lo, f_hi = log_odds(lo), log_odds(hi)
    if not f_lo * f_hi < 0:
        raise ValueError(
            f"log(P_a/P_b) does not change sign on n in [{math.exp(lo):.4g}, {math.exp(hi):.4g}] "
            f"({f_lo:.3g}, {f_hi:.3g}): no threshold there"
        )
    return math.exp(optimize.brentq(log_odds, lo, hi, xtol=1e-14, rtol=rtol))


# ---------------------------------------------------------------------------------- Laplace level
def _effective_logdet(minimum, lr, order) -> float:
    h = np.asarray(minimum.hessian, dtype=float)
    if order == 1:
        return float(spd_logdet(h))
    return float(spd_logdet(h + 0.5 * float(lr) * (h @ h)))


def log_weight(minimum: Minimum, *, lr: float, batch_size: float, sigma2: float, order: int = 2) -> float:
    """Laplace log-weight of a minimum under the modified equation's stationary law:

        order 1:  -L_A / T - 1/2 log det H_A                                  (paper eq. 3)
        order 2:  -L_A / T - 1/2 log det H_A - 1/2 log det(I + lr H_A / 2)

    The extra factor is the Gaussian mass of the second-order law in the well (1-D: variance
    T(1 + lr lam)/(lam(1 + lr lam/2)), peak factor (1 + lr lam)^(-1/2)); to O(lr) it is
    -(lr/4) Tr H_A, the Laplace value of the exact basin correction -(lr/4) <Lap L>_A."""
    _check_order(order, "full")
    lr_f, temp = _scalar_params(lr, batch_size, sigma2)
    if order == 2:
        _check_stable_at(minimum, lr_f)
    return -float(minimum.loss) / temp - 0.5 * _effective_logdet(minimum, lr_f, order)


def threshold_noise_laplace(minimum_a: Minimum, minimum_b: Minimum, *, lr: float, sigma2: float,
                            order: int = 2) -> float:
    """Laplace noise threshold with the second-order weights: A favoured iff n > n*,

        n* = 4 (L_A - L_B) / (sigma2 [log det(H_B + lr H_B^2/2) - log det(H_A + lr H_A^2/2)])

    (order 1: the derived eq. 4, :func:`theory.minima.threshold_noise`; the same case analysis:
    inf where A is never favoured, 0 where always, ValueError where A is favoured below a noise)."""
    _check_order(order, "full")
    _checks.check_positive("lr", lr)
    if order == 2:
        _check_stable_at(minimum_a, float(lr))
        _check_stable_at(minimum_b, float(lr))
    return _threshold_noise_from_logdets(minimum_a.loss, minimum_b.loss, _effective_logdet(minimum_a, lr, order),
                                         _effective_logdet(minimum_b, lr, order), sigma2)
