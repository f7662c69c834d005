"""Linear stability of SGD at an interpolating minimum (Wu, Ma & E 2018, NeurIPS 31:8279-8288,
"How SGD selects the global minima in over-parameterized learning: a dynamical stability perspective").

Model.  A finite sum of N quadratics that all have their minimum at the same point theta* = 0
(interpolation): l_i(theta) = 1/2 theta^T H_i theta with symmetric positive semi-definite H_i,
L = (1/N) sum_i l_i, H = (1/N) sum_i H_i.  One SGD step with a minibatch B of size S is

    theta' = (I - lr H_B) theta,      H_B = (1/S) sum_{i in B} H_i,

so there is no additive noise: the noise is multiplicative and vanishes at theta*.  The second
moment M = E[theta theta^T] obeys the exact linear recursion (derived here; Wu, Ma & E Sec. 3)

    M' = E[(I - lr H_B) M (I - lr H_B)] = (I - lr H) M (I - lr H) + lr^2 c (1/N) sum_i D_i M D_i,

D_i = H_i - H, because E[H_B] = H and E[(H_B - H) (x) (H_B - H)] = c (1/N) sum_i D_i (x) D_i with

    c = 1/S                      (the S samples drawn independently, with replacement),
    c = (N - S) / (S (N - 1))    (S distinct samples, uniformly, without replacement: the
                                  finite-population factor, theory.discrete.finite_data_noise_factor).

In Kronecker form (row-major vec, symmetric factors), vec M' = Op vec M with

    Op = (I - lr H) (x) (I - lr H) + lr^2 c (1/N) sum_i D_i (x) D_i.

E|theta_t|^2 stays bounded for every start iff the spectral radius rho(Op) <= 1 (on the range of
H: directions in the common null space of all H_i never move).  Op is a completely positive map,
so rho is an eigenvalue with a PSD eigenvector (Krein-Rutman), the Perron mode of the escape.

1-D (H_i = h_i): a = mean h_i (sharpness), s^2 = (1/N) sum (h_i - a)^2 (non-uniformity, population
variance), and

    stable  iff  (1 - lr a)^2 + lr^2 c s^2 <= 1  iff  lr <= lr* = 2 a / (a^2 + c s^2)

(Wu, Ma & E's 1-D condition, with c = (N - S)/(S (N - 1)) for their sampling without
replacement).  Limits: S = N without replacement (c = 0) and s = 0 give GD's lr* = 2 / a.

The stable set in lr is an interval [0, lr*]: for a certificate X > 0 with Op*(X) <= X at lr_2, the
matrix convexity of lr -> E[A_B X A_B] (A_B affine in lr) and Op* = identity at lr = 0 give
Op*(X) <= X on [0, lr_2].  And lr* <= 2 / lam_max(H), since the noise term is PSD.  In d-D lr*(S)
is found by Brent's method on rho(Op(lr)) - 1 over (0, 2 / lam_max(H)].

Mean-square vs almost-sure stability (1-D, derived here; what an ensemble of SGD runs shows).  The
iterate is a product theta_t = prod_k (1 - lr h_Bk) theta_0 of i.i.d. factors X = 1 - lr h_B, so a
single run behaves like exp(t gamma) with the Lyapunov exponent gamma = E log|X| (Furstenberg &
Kesten 1960, Ann. Math. Stat. 31:457), while E theta_t^2 = (E X^2)^t.  By Jensen gamma <= log E X^2 / 2:
at the boundary lr* (E X^2 = 1) gamma < 0 and almost every run still converges; E theta^2 diverges
through rare large excursions.  Their size is set by the tail exponent alpha > 0 with
E|X|^alpha = 1 (Kesten 1973, Acta Math. 131:207): P(sup_t |theta_t| > R |theta_0|) ~ R^(-alpha), and
alpha = 2 exactly at lr* (alpha > 2 below, < 2 above; alpha -> 0 at the almost-sure boundary
gamma = 0).  So counting runs that "escape" measures gamma or alpha, not the mean-square boundary
itself; :func:`lyapunov_exponent_1d` and :func:`tail_exponent_1d` give both exactly (enumerating
the minibatches, :func:`batch_mean_distribution`).

"Only eta/S matters" fails here.  The SDE of the paper (eq. 1) with this multiplicative noise has
d M / dt = -lr (H M + M H) + lr^2 c (1/N) sum D_i M D_i (time in steps), stable iff lr c <= kappa*
with kappa* the root of the spectral abscissa of -(H (+) H) + kappa N_D (1-D: kappa* = 2 a / s^2).
With c = 1/S this is lr / S <= kappa*: a function of lr/S alone, and the wrong prediction.  The
discrete boundary differs by the lr^2 H (x) H term: in 1-D lr* = 2a / (a^2 + s^2 / S) vs the SDE's
2 a S / s^2, a ratio 1 / (1 + a^2 S / s^2) that goes from ~1 (S << s^2/a^2) to 0 (large S, where
the true lr* saturates at GD's 2/a while the ratio rule grows without bound).
"""
from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize

from theory import _checks
from theory._types import FloatArray, FloatOrArray
from theory.discrete import finite_data_noise_factor
from theory.gibbs import _out

__all__ = [
    "per_sample_hessians",
    "noise_factor",
    "sharpness_nonuniformity",
    "growth_factor_1d",
    "critical_lr_1d",
    "sde_critical_lr_1d",
    "second_moment_operator",
    "growth_rate",
    "is_stable",
    "critical_lr",
    "sde_critical_lr",
    "batch_mean_distribution",
    "lyapunov_exponent_1d",
    "tail_exponent_1d",
]

_PSD_TOL = 1e-10


def per_sample_hessians(hessians: ArrayLike) -> np.ndarray:
    """Validate and return the per-sample Hessians as an (N, d, d) float array.

    Accepts (N,) curvatures (1-D) or (N, d, d) matrices; each H_i must be finite, symmetric and
    positive semi-definite (each per-sample loss has its minimum at theta*), N >= 2 (the
    non-uniformity is a spread over samples: one sample has none), and the mean H must not vanish."""
    arr = np.asarray(hessians, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None, None]
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
        raise ValueError(f"per_sample_hessians must have shape (N,) or (N, d, d), got {np.shape(hessians)}")
    _checks.check_finite("per_sample_hessians", arr)
    n = arr.shape[0]
    if n < 2:
        raise ValueError(
            f"per_sample_hessians must hold N >= 2 samples (the non-uniformity is their spread), got N = {n}")
    scale = max(1.0, float(np.max(np.abs(arr))))
    if np.any(np.abs(arr - np.swapaxes(arr, 1, 2)) > 1e-10 * scale):
        bad = int(np.argmax(np.max(np.abs(arr - np.swapaxes(arr, 1, 2)), axis=(1, 2))))
        raise ValueError(f"per_sample_hessians[{bad}] must be symmetric")
    arr = 0.5 * (arr + np.swapaxes(arr, 1, 2))
    eig = np.linalg.eigvalsh(arr)
    if np.any(eig[:, 0] < -_PSD_TOL * scale):
        bad = int(np.argmin(eig[:, 0]))
        raise ValueError(
            f"per_sample_hessians[{bad}] must be positive semi-definite (an interpolating minimum of every "
            f"per-sample loss); its smallest eigenvalue is {eig[bad, 0]:.3g}"
        )
    if np.max(np.abs(arr.mean(axis=0))) == 0.0:
        raise ValueError("per_sample_hessians average to zero: the minimum has no curved direction")
    return arr


def noise_factor(batch_size: ArrayLike, n_samples: int, *, replacement: bool = False) -> FloatOrArray:
    """c = E[(H_B - H)^2] / Var(H_i): 1/S with replacement, (N - S)/(S (N - 1)) without.

    Requires N >= 2 and 1 <= S <= N (vectorised over batch_size)."""
    n_samples = _checks.check_int("n_samples", n_samples, minimum=2)
    _checks.check_batch_size(batch_size, n_samples)
    if replacement:
        return _out(1.0 / np.asarray(batch_size, dtype=float))
    return finite_data_noise_factor(batch_size, n_samples)


def sharpness_nonuniformity(hessians: ArrayLike) -> tuple[float, float]:
    """Wu, Ma & E's sharpness a = lam_max(H) and non-uniformity s = lam_max(Sigma)^(1/2) with
    Sigma = (1/N) sum H_i^2 - H^2 (1-D: a = mean h_i, s = population standard deviation of h_i)."""
    arr = per_sample_hessians(hessians)
    h = arr.mean(axis=0)
    sigma = np.einsum("nij,njk->ik", arr, arr) / arr.shape[0] - h @ h
    return float(np.linalg.eigvalsh(h)[-1]), float(math.sqrt(max(0.0, np.linalg.eigvalsh(sigma)[-1])))


def _check_1d(sharpness, nonuniformity, batch_size, n_samples, replacement):
    _checks.check_positive("sharpness", sharpness)
    _checks.check_nonnegative("nonuniformity", nonuniformity)
    if replacement and n_samples is None:
        _checks.check_batch_size(batch_size)
        return 1.0 / np.asarray(batch_size, dtype=float)
    if n_samples is None:
        raise ValueError("n_samples is required without replacement (the factor (N - S)/(S (N - 1)))")
    return np.asarray(noise_factor(batch_size, n_samples, replacement=replacement), dtype=float)


def growth_factor_1d(sharpness: ArrayLike, nonuniformity: ArrayLike, *, lr: ArrayLike, batch_size: ArrayLike,
                     n_samples: int | None = None, replacement: bool = False) -> FloatOrArray:
    """Per-step factor of E theta^2 at a 1-D interpolating minimum (Wu, Ma & E 2018):

        q = (1 - lr a)^2 + lr^2 c s^2,   c = 1/S (replacement) or (N - S)/(S (N - 1)) (without);

    stable iff q <= 1.  a = ``sharpness`` (mean h_i), s = ``nonuniformity`` (population s.d. of h_i).
    ``n_samples`` may be omitted with replacement.  Vectorised."""
    _checks.check_positive("lr", lr)
    c = _check_1d(sharpness, nonuniformity, batch_size, n_samples, replacement)
    lr_a, a, s = (np.asarray(v, dtype=float) for v in (lr, sharpness, nonuniformity))
    return _out((1.0 - lr_a * a) ** 2 + lr_a**2 * c * s**2)


def critical_lr_1d(sharpness: ArrayLike, nonuniformity: ArrayLike, *, batch_size: ArrayLike,
                   n_samples: int | None = None, replacement: bool = False) -> FloatOrArray:
    """Largest stable learning rate at a 1-D interpolating minimum: lr* = 2 a / (a^2 + c s^2)
    (root of (1 - lr a)^2 + lr^2 c s^2 = 1).  S = N without replacement or s = 0: GD's 2 / a."""
    c = _check_1d(sharpness, nonuniformity, batch_size, n_samples, replacement)
    a, s = np.asarray(sharpness, dtype=float), np.asarray(nonuniformity, dtype=float)
    return _out(2.0 * a / (a * a + c * s * s))


def sde_critical_lr_1d(sharpness: ArrayLike, nonuniformity: ArrayLike, *, batch_size: ArrayLike,
                       n_samples: int | None = None, replacement: bool = True) -> FloatOrArray:
    """Stability boundary of the SDE (paper eq. 1) with the same noise: lr* = 2 a / (c s^2)
    (d E theta^2 / dt = (-2 lr a + lr^2 c s^2) E theta^2).  With replacement lr*/S = 2a/s^2: a
    function of lr/S only (the paper's "only eta/S matters"), the wrong prediction for SGD;
    inf when s = 0 (the SDE is then never unstable)."""
    c = _check_1d(sharpness, nonuniformity, batch_size, n_samples, replacement)
    a, s = np.asarray(sharpness, dtype=float), np.asarray(nonuniformity, dtype=float)
    with np.errstate(divide="ignore"):
        return _out(np.where(c * s * s > 0, 2.0 * a / np.maximum(c * s * s, 1e-300), np.inf))


# ------------------------------------------------------------------------------------ d-D operator
def _range_parts(arr: np.ndarray):
    """Mean Hessian and deviations D_i = H_i - H restricted to the range of H (the common null space
    of the PSD H_i never moves)."""
    h = arr.mean(axis=0)
    lam, u = np.linalg.eigh(h)
    keep = lam > 1e-12 * lam[-1]
    q = u[:, keep]
    hr = q.T @ h @ q
    dev = np.einsum("ia,nij,jb->nab", q, arr - h, q)
    return 0.5 * (hr + hr.T), dev


def _kron_noise(dev: np.ndarray) -> np.ndarray:
    """(1/N) sum_i D_i (x) D_i (row-major vec of a symmetric M: vec(D M D) = (D (x) D) vec M)."""
    n, d, _ = dev.shape
    # this (d², d²) matrix, the operator built from it and the temporaries of both
    _checks.check_fits_memory("hessians", f"{n} Hessians of dimension {d}", 4 * 8.0 * float(d) ** 4,
                              f"the (d², d²) second-moment operator of d = {d} parameters",
                              advice="reduce the dimension (e.g. to the span of the Hessians' top eigenvectors)")
    return np.einsum("nij,nkl->ikjl", dev, dev).reshape(d * d, d * d) / n


def _operator(h: np.ndarray, noise_kron: np.ndarray, *, step: float, noise: float) -> np.ndarray:
    """(I - step H) (x) (I - step H) + noise * (1/N) sum D_i (x) D_i: the SGD map with step = lr and
    noise = lr^2 c, and the SVAG map with step = lr / l and noise = lr^2 c / l."""
    a = np.eye(h.shape[0]) - step * h
    return np.kron(a, a) + noise * noise_kron


def _spectral_radius(op: np.ndarray) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(op))))


def _scalar_batch(batch_size, n_samples):
    if np.ndim(batch_size) != 0:
        raise ValueError(f"batch_size must be a scalar here, got shape {np.shape(batch_size)}")
    _checks.check_batch_size(batch_size, n_samples)
    return float(batch_size)


def second_moment_operator(hessians: ArrayLike, *, lr: ArrayLike, batch_size: ArrayLike,
                           replacement: bool = False) -> np.ndarray:
    """The exact map vec M -> vec E[M'] of SGD at an interpolating finite-sum quadratic (module
    docstring): Op = (I - lr H) (x) (I - lr H) + lr^2 c (1/N) sum_i D_i (x) D_i, (d^2, d^2), row-major vec,
    in the original coordinates."""
    arr = per_sample_hessians(hessians)
    _checks.check_positive("lr", lr)
    s = _scalar_batch(batch_size, arr.shape[0])
    c = float(noise_factor(s, arr.shape[0], replacement=replacement))
    h = arr.mean(axis=0)
    return _operator(h, _kron_noise(arr - h), step=float(lr), noise=float(lr) ** 2 * c)


def growth_rate(hessians: ArrayLike, *, lr: ArrayLike, batch_size: ArrayLike, replacement: bool = False) -> float:
    """Spectral radius rho of :func:`second_moment_operator` on the range of H: E|theta_t|^2 ~ rho^t.
    1-D: (1 - lr a)^2 + lr^2 c s^2."""
    arr = per_sample_hessians(hessians)
    _checks.check_positive("lr", lr)
    s = _scalar_batch(batch_size, arr.shape[0])
    c = float(noise_factor(s, arr.shape[0], replacement=replacement))
    h, dev = _range_parts(arr)
    return _spectral_radius(_operator(h, _kron_noise(dev), step=float(lr), noise=float(lr) ** 2 * c))


def is_stable(hessians: ArrayLike, *, lr: ArrayLike, batch_size: ArrayLike, replacement: bool = False,
              rtol: float = 1e-12) -> bool:
    """True iff E|theta_t|^2 stays bounded: rho <= 1 (+ rtol for rounding)."""
    return growth_rate(hessians, lr=lr, batch_size=batch_size, replacement=replacement) <= 1.0 + rtol


def _critical_step(h, noise_kron, c: float, amplification: int = 1, rtol: float = 1e-12) -> float:
    """Root of rho(Op(lr)) = 1 on (0, 2 l / lam_max(H)] for the map with step lr / l and noise lr^2 c / l."""
    lam_max = float(np.linalg.eigvalsh(h)[-1])
    hi = 2.0 * amplification / lam_max

    def excess(lr):
        return _spectral_radius(_operator(h, noise_kron, step=lr / amplification,
                                          noise=lr * lr * c / amplification)) - 1.0

    if excess(hi) <= 1e-13:
        return hi  # no effective noise: the GD boundary
    lo = 1e-6 * hi
    return float(optimize.brentq(excess, lo, hi, xtol=1e-15, rtol=max(rtol, 4 * np.finfo(float).eps)))


def critical_lr(hessians: ArrayLike, *, batch_size: ArrayLike, replacement: bool = False) -> FloatOrArray:
    """Largest stable learning rate lr*(S) of SGD at the interpolating minimum (d-D; vectorised over
    ``batch_size``): the root of rho(Op(lr)) = 1, by Brent's method on (0, 2 / lam_max(H)].
    1-D it equals :func:`critical_lr_1d`."""
    arr = per_sample_hessians(hessians)
    h, dev = _range_parts(arr)
    kron = _kron_noise(dev)
    sizes = np.atleast_1d(np.asarray(batch_size, dtype=float))
    out = np.array([_critical_step(h, kron, float(noise_factor(_scalar_batch(s, arr.shape[0]), arr.shape[0],
                                                               replacement=replacement)))
                    for s in sizes.ravel()]).reshape(sizes.shape)
    return _out(out.reshape(np.shape(batch_size)))


def sde_critical_lr(hessians: ArrayLike, *, batch_size: ArrayLike, replacement: bool = True) -> FloatOrArray:
    """Stability boundary of the SDE (paper eq. 1) with the same multiplicative noise (d-D):
    lr* = kappa* / c, kappa* the root of the spectral abscissa of -(H (+) H) + kappa (1/N) sum D_i (x) D_i
    (the l -> inf limit of the SVAG map; inf if the noise vanishes).  With replacement lr*/S = kappa*:
    the "only eta/S matters" boundary.  Vectorised over ``batch_size``."""
    arr = per_sample_hessians(hessians)
    h, dev = _range_parts(arr)
    kron = _kron_noise(dev)
    d = h.shape[0]
    gen0 = -(np.kron(h, np.eye(d)) + np.kron(np.eye(d), h))

    def abscissa(kappa):
        return float(np.max(np.linalg.eigvals(gen0 + kappa * kron).real))

    if np.max(np.abs(kron)) == 0.0:
        kappa = math.inf
    else:
        hi = 1.0 / max(float(np.max(np.abs(np.linalg.eigvals(kron)))), 1e-300)
        for _ in range(200):
            if abscissa(hi) > 0:
                break
            hi *= 2.0
        else:
            hi = math.inf
        kappa = math.inf if hi == math.inf else float(optimize.brentq(abscissa, 0.0, hi, xtol=1e-15 * hi,
                                                                       rtol=4 * np.finfo(float).eps))
    sizes = np.atleast_1d(np.asarray(batch_size, dtype=float))
    c = np.array([float(noise_factor(_scalar_batch(s, arr.shape[0]), arr.shape[0], replacement=replacement))
                  for s in sizes.ravel()]).reshape(sizes.shape)
    with np.errstate(divide="ignore"):
        out = np.where(c > 0, kappa / np.maximum(c, 1e-300), np.inf)
    return _out(out.reshape(np.shape(batch_size)))


# ------------------------------------------------------------------------------ 1-D: single runs
def batch_mean_distribution(curvatures: ArrayLike, batch_size: ArrayLike, *, replacement: bool = False,
                            max_batches: int = 2_000_000) -> tuple[FloatArray, FloatArray]:
    """Exact law of the minibatch curvature h_B = (1/S) sum_{i in B} h_i (1-D), by enumeration:

    without replacement all C(N, S) subsets, equally likely; with replacement all multisets, with the
    multinomial weights S! / (prod_j k_j!) N^(-S) of S independent uniform draws.
    Returns (values, probabilities); ValueError if more than ``max_batches`` batches would be listed."""
    from itertools import combinations, combinations_with_replacement

    arr = per_sample_hessians(curvatures)
    if arr.shape[1] != 1:
        raise ValueError("batch_mean_distribution is 1-D: give per-sample curvatures of shape (N,)")
    h = arr[:, 0, 0]
    n = h.size
    size = _checks.check_int("batch_size", batch_size, minimum=1)
    _checks.check_batch_size(size, n)
    count = math.comb(n + size - 1, size) if replacement else math.comb(n, size)
    if count > max_batches:
        raise ValueError(f"batch_size = {size} with N = {n} gives {count} batches to enumerate (> max_batches = "
                         f"{max_batches}); use fewer samples or a smaller batch")
    if replacement:
        idx = np.array(list(combinations_with_replacement(range(n), size)), dtype=np.int64).reshape(-1, size)
        # multinomial weight of each multiset: S! / prod(k_j!) / N^S (log space: no overflow)
        log_w = np.full(idx.shape[0], math.lgamma(size + 1) - size * math.log(n))
        for j in range(size):
            run = np.ones(idx.shape[0], dtype=np.int64)
            for k in range(j):
                run += idx[:, k] == idx[:, j]
            log_w -= np.log(run)  # divides by k! incrementally: the m-th repeat contributes 1/m
        probs = np.exp(log_w)
    else:
        idx = np.array(list(combinations(range(n), size)), dtype=np.int64).reshape(-1, size)
        probs = np.full(idx.shape[0], 1.0 / idx.shape[0])
    return h[idx].mean(axis=1), probs


def _factors(curvatures, lr, batch_size, replacement):
    _checks.check_positive("lr", lr)
    values, probs = batch_mean_distribution(curvatures, batch_size, replacement=replacement)
    return np.abs(1.0 - float(lr) * values), probs


def lyapunov_exponent_1d(curvatures: ArrayLike, *, lr: ArrayLike, batch_size: ArrayLike,
                         replacement: bool = False) -> float:
    """Almost-sure growth rate of a single SGD run at a 1-D interpolating minimum:
    gamma = E log|1 - lr h_B| (log|theta_t| / t -> gamma a.s.; module docstring).  gamma <= log(q)/2 with
    q = growth_factor_1d, so runs converge a.s. (gamma < 0) beyond the mean-square boundary lr*."""
    x, p = _factors(curvatures, lr, batch_size, replacement)
    with np.errstate(divide="ignore"):
        return float(np.sum(p * np.log(x)))


def tail_exponent_1d(curvatures: ArrayLike, *, lr: ArrayLike, batch_size: ArrayLike,
                     replacement: bool = False) -> float:
    """Tail exponent alpha > 0 of sup_t |theta_t|: the root of E|1 - lr h_B|^alpha = 1 (Kesten 1973), so that
    P(sup_t |theta_t| > R |theta_0|) ~ R^(-alpha).  alpha = 2 exactly at the mean-square boundary lr*.
    Returns inf if no factor exceeds 1 (no run can grow) and 0 if gamma >= 0 (runs grow a.s.)."""
    from scipy.special import logsumexp

    x, p = _factors(curvatures, lr, batch_size, replacement)
    keep = p > 0
    x, p = x[keep], p[keep]
    if np.max(x) <= 1.0:
        return math.inf
    with np.errstate(divide="ignore"):
        logx, logp = np.log(x), np.log(p)
    if np.sum(p * logx) >= 0.0:
        return 0.0

    def log_moment(alpha):
        return float(logsumexp(logp + alpha * logx))

    hi = 1.0
    while log_moment(hi) < 0.0:
        hi *= 2.0
    return float(optimize.brentq(log_moment, 1e-12 * hi, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps))
