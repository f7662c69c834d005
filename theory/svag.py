"""SVAG: stochastic variance-amplified gradients, a practical test of the SDE regime
(Li, Malladi & Arora 2021, NeurIPS 34, "On the validity of modeling SGD with stochastic
differential equations (SDEs)", arXiv 2102.12470: SVAG eq. (5), weak convergence Theorem 4.3).

The update with amplification l (an integer >= 1), two independent minibatches B1, B2 of size S:

    theta_{k+1} = theta_k - (lr / l) [ r1 g_B1(theta_k) + r2 g_B2(theta_k) ],
    r1, r2 = (1 +- sqrt(2 l - 1)) / 2,                    so r1 + r2 = 1,  r1^2 + r2^2 = l,

run for l K steps to cover the time of K SGD steps.  Given theta, with Sigma_1(theta) the
per-sample gradient covariance and c = 1/S (with replacement) or (N - S)/(S (N - 1)) (without),

    E[step]   = -(lr / l) grad L                                   (r1 + r2 = 1)
    Cov[step] = (lr / l)^2 (r1^2 + r2^2) c Sigma_1 = (lr^2 / l) c Sigma_1,

so over l steps (one unit of SGD time) the drift is -lr grad L and the injected covariance
lr^2 c Sigma_1: the same per unit time as SGD's, for every l (l = 1 is SGD: r1 = 1, r2 = 0).
The step itself shrinks like 1/l, so as l -> inf SVAG is an Euler scheme with time step 1/l (in
SGD steps) for the paper's SDE (eq. 1), d theta = -lr grad L dt + lr sqrt(c Sigma_1) dW, and its
law converges to the SDE's at weak order 1 in 1/l on finite horizons (Li, Malladi & Arora,
Theorem 4.3; non-Gaussian increments do not change the order).  A network whose test accuracy
and sharpness do not change between l = 1, 2, 4 is in the SDE regime; one whose do is not.

Exact results here (derived; finite-sum quadratics l_i = 1/2 (theta - c_i)^T H_i (theta - c_i),
H = mean H_i, D_i = H_i - H, theta* the minimiser of L, Sigma_1(theta*) the gradient covariance there):

* one step maps mean m and covariance C of theta (independent of the batches) to
      m' = (I - (lr/l) H) m + (lr/l) b,       b = mean H_i c_i,
      C' = A C A + (lr^2 c / l) [ (1/N) sum_i D_i C D_i + Sigma_1(m) ],   A = I - (lr/l) H;
* stationary covariance (A-form divided by lr/l):
      [ H (+) H - (lr/l) H (x) H - lr c N_D ] vec C = lr c vec Sigma_1(theta*),   N_D = (1/N) sum D_i (x) D_i,
  whose l -> inf limit is the SDE's [H (+) H - lr c N_D] vec C = lr c vec Sigma_1(theta*): the
  difference is the single O(1/l) term (lr/l) H (x) H;
* 1-D, isotropic additive noise (all h_i = lam, per-sample gradient variance sigma2):
      Var_l = lr c sigma2 / (lam (2 - lr lam / l)),
  = n sigma2 / (lam (2 - lr lam)) at l = 1 (the SGD chain, theory.discrete.stationary_variance) and
  n sigma2 / (2 lam) as l -> inf (the SDE, Gibbs eq. 2), with
  Var_l - Var_inf = lr c sigma2 (lr lam / l) / (2 lam (2 - lr lam / l)) = O(1/l).
* at an interpolating minimum (all c_i equal, Sigma_1(theta*) = 0) SVAG is stable iff the spectral
  radius of (I - (lr/l)H) (x) (I - (lr/l)H) + (lr^2 c / l) N_D is <= 1; 1-D: lr <= 2a / (a^2 / l + c s^2),
  from SGD's boundary (l = 1, theory.stability) to the SDE's 2a / (c s^2) (l -> inf).
"""
from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from theory import _checks
from theory._types import FloatArray, FloatOrArray
from theory.gibbs import _out
from theory.stability import _critical_step, _kron_noise, _range_parts, noise_factor, per_sample_hessians

__all__ = [
    "coefficients",
    "step_moments",
    "quadratic_step",
    "stationary_moments",
    "sde_stationary_moments",
    "stationary_variance_isotropic",
    "isotropic_moments_1d",
    "sde_isotropic_moments_1d",
    "critical_lr",
]


def _amplification(amplification) -> int:
    return _checks.check_int("amplification", amplification, minimum=1)


def coefficients(amplification: int) -> tuple[float, float]:
    """SVAG weights r1, r2 = (1 +- sqrt(2 l - 1)) / 2 (Li, Malladi & Arora 2021, eq. 5):
    r1 + r2 = 1 (same mean gradient), r1^2 + r2^2 = l (l times the variance per step)."""
    l = _amplification(amplification)
    root = math.sqrt(2.0 * l - 1.0)
    return 0.5 * (1.0 + root), 0.5 * (1.0 - root)


def _noise_c(batch_size, n_samples, replacement) -> float:
    if np.ndim(batch_size) != 0:
        raise ValueError(f"batch_size must be a scalar here, got shape {np.shape(batch_size)}")
    return float(noise_factor(batch_size, n_samples, replacement=replacement))


def step_moments(per_sample_gradients: ArrayLike, *, lr: ArrayLike, batch_size: ArrayLike, amplification: int,
                 replacement: bool = False) -> tuple[FloatArray, FloatArray]:
    """Exact mean and covariance of one SVAG step from a fixed theta, for any finite sum:

        E[theta' - theta] = -(lr / l) gbar,     Cov[theta' - theta] = (lr^2 / l) c Sigma_1,

    gbar and Sigma_1 = (1/N) sum (g_i - gbar)(g_i - gbar)^T from the per-sample gradients
    g_i = grad l_i(theta) (array (N, d)); c = 1/S with replacement, (N - S)/(S (N - 1)) without."""
    g = np.asarray(per_sample_gradients, dtype=float)
    if g.ndim == 1:
        g = g[:, None]
    if g.ndim != 2:
        raise ValueError(f"per_sample_gradients must have shape (N,) or (N, d), got {np.shape(per_sample_gradients)}")
    _checks.check_finite("per_sample_gradients", g)
    _checks.check_positive("lr", lr)
    l = _amplification(amplification)
    c = _noise_c(batch_size, g.shape[0], replacement)
    gbar = g.mean(axis=0)
    dev = g - gbar
    sigma1 = dev.T @ dev / g.shape[0]
    return -(float(lr) / l) * gbar, (float(lr) ** 2 * c / l) * sigma1


def _quadratic_parts(hessians, centers):
    arr = per_sample_hessians(hessians)
    n, d, _ = arr.shape
    ctr = np.asarray(centers, dtype=float).reshape(n, d) if np.size(centers) == n * d else None
    if ctr is None:
        raise ValueError(f"per_sample_centers must have shape ({n}, {d}) to match per_sample_hessians, "
                         f"got {np.shape(centers)}")
    _checks.check_finite("per_sample_centers", ctr)
    b = np.einsum("nij,nj->ni", arr, ctr)  # g_i(theta) = H_i theta - b_i
    return arr, b


def _gradient_covariance(arr, b, theta) -> np.ndarray:
    g = np.einsum("nij,j->ni", arr, theta) - b
    dev = g - g.mean(axis=0)
    return dev.T @ dev / arr.shape[0]


def quadratic_step(mean: ArrayLike, cov: ArrayLike, per_sample_hessians: ArrayLike, per_sample_centers: ArrayLike, *,
                   lr: ArrayLike, batch_size: ArrayLike, amplification: int,
                   replacement: bool = False) -> tuple[FloatArray, FloatArray]:
    """Exact mean and covariance of theta after one SVAG step on the finite-sum quadratic
    l_i = 1/2 (theta - c_i)^T H_i (theta - c_i), theta of mean ``mean`` and covariance ``cov``
    (independent of the minibatches):

        m' = m - (lr/l)(H m - b),
        C' = A C A + (lr^2 c / l) [ (1/N) sum_i D_i C D_i + Sigma_1(m) ],   A = I - (lr/l) H.

    (The noise -(lr/l) sum_k r_k (g_Bk - grad L) has zero mean given theta, hence no cross term;
    its covariance averages Sigma_1(theta) = (1/N) sum (D_i theta - e_i)(D_i theta - e_i)^T over theta.)"""
    arr, b = _quadratic_parts(per_sample_hessians, per_sample_centers)
    n, d, _ = arr.shape
    _checks.check_positive("lr", lr)
    l = _amplification(amplification)
    c = _noise_c(batch_size, n, replacement)
    m = np.asarray(mean, dtype=float).reshape(d)
    cv = np.asarray(cov, dtype=float).reshape(d, d)
    step = float(lr) / l
    h = arr.mean(axis=0)
    a = np.eye(d) - step * h
    dev = arr - h
    noise = np.einsum("nij,jk,nkl->il", dev, cv, dev) / n + _gradient_covariance(arr, b, m)
    m_new = a @ m + step * b.mean(axis=0)
    c_new = a @ cv @ a + (float(lr) ** 2 * c / l) * noise
    return m_new, 0.5 * (c_new + c_new.T)


def _stationary(per_sample_hessians, per_sample_centers, lr, batch_size, inv_l, replacement):
    arr, b = _quadratic_parts(per_sample_hessians, per_sample_centers)
    n, d, _ = arr.shape
    _checks.check_positive("lr", lr)
    c = _noise_c(batch_size, n, replacement)
    h = arr.mean(axis=0)
    if np.linalg.eigvalsh(h)[0] <= 1e-12 * np.linalg.eigvalsh(h)[-1]:
        raise ValueError("the mean Hessian must be positive definite for a unique stationary law")
    theta_star = np.linalg.solve(h, b.mean(axis=0))
    eye = np.eye(d)
    lr = float(lr)
    lhs = np.kron(h, eye) + np.kron(eye, h) - lr * inv_l * np.kron(h, h) - lr * c * _kron_noise(arr - h)
    rhs = lr * c * _gradient_covariance(arr, b, theta_star).ravel()
    # stationary iff the map (SVAG) / generator (SDE) is stable; lhs is then invertible and the
    # solution positive semi-definite
    step = lr * inv_l
    a = eye - step * h
    growth = (np.kron(a, a) + (lr * lr * c * inv_l) * _kron_noise(arr - h)) if inv_l > 0 else None
    if growth is not None and np.max(np.abs(np.linalg.eigvals(growth))) >= 1.0:
        raise ValueError(f"lr = {lr:.6g} is beyond the stability boundary of SVAG with amplification "
                         f"{round(1 / inv_l)}: no stationary law")
    if inv_l == 0 and np.max(np.linalg.eigvals(-lhs).real) >= 0:
        raise ValueError(f"lr = {lr:.6g} is beyond the stability boundary of the SDE: no stationary law")
    cov = np.linalg.solve(lhs, rhs).reshape(d, d)
    return theta_star, 0.5 * (cov + cov.T)


def stationary_moments(per_sample_hessians: ArrayLike, per_sample_centers: ArrayLike, *, lr: ArrayLike,
                       batch_size: ArrayLike, amplification: int,
                       replacement: bool = False) -> tuple[FloatArray, FloatArray]:
    """Stationary mean theta* = H^{-1} mean(H_i c_i) and covariance C_l of SVAG on a finite-sum quadratic:

        [ H (+) H - (lr/l) H (x) H - lr c N_D ] vec C_l = lr c vec Sigma_1(theta*)

    (the fixed point of :func:`quadratic_step`).  l = 1: SGD's exact stationary covariance.
    ValueError naming lr beyond the stability boundary."""
    l = _amplification(amplification)
    return _stationary(per_sample_hessians, per_sample_centers, lr, batch_size, 1.0 / l, replacement)


def sde_stationary_moments(per_sample_hessians: ArrayLike, per_sample_centers: ArrayLike, *, lr: ArrayLike,
                           batch_size: ArrayLike, replacement: bool = False) -> tuple[FloatArray, FloatArray]:
    """Stationary mean and covariance of the SDE d theta = -lr grad L dt + lr sqrt(c Sigma_1(theta)) dW
    (paper eq. 1 with the finite-sum noise; the l -> inf limit of SVAG):

        [ H (+) H - lr c N_D ] vec C = lr c vec Sigma_1(theta*)."""
    return _stationary(per_sample_hessians, per_sample_centers, lr, batch_size, 0.0, replacement)


def _isotropic_c(batch_size, n_samples):
    if n_samples is None:
        _checks.check_batch_size(batch_size)
        return 1.0 / np.asarray(batch_size, dtype=float)
    return np.asarray(noise_factor(batch_size, n_samples, replacement=False), dtype=float)


def stationary_variance_isotropic(lam: ArrayLike, *, lr: ArrayLike, batch_size: ArrayLike, sigma2: ArrayLike,
                                  amplification: int, n_samples: int | None = None) -> FloatOrArray:
    """Stationary variance of SVAG on L = lam x^2 / 2 with additive per-sample noise of variance sigma2:

        Var_l = lr c sigma2 / (lam (2 - lr lam / l)),   c = 1/S (n_samples None) or (N - S)/(S (N - 1)),

    (AR(1): x' = (1 - lr lam / l) x + noise of variance lr^2 c sigma2 / l).  l = 1 gives the SGD chain's
    n sigma2 / (lam (2 - lr lam)); l -> inf the SDE's n sigma2 / (2 lam).  Needs lr lam < 2 l."""
    l = _amplification(amplification)
    _checks.check_positive("lam", lam)
    _checks.check_positive("lr", lr)
    _checks.check_positive("sigma2", sigma2)
    c = _isotropic_c(batch_size, n_samples)
    x = np.asarray(lr, dtype=float) * np.asarray(lam, dtype=float) / l
    if np.any(x >= 2.0):
        raise ValueError(f"lr * lam must be < 2 * amplification = {2 * l} for a stationary law, got lr = {lr!r}")
    return _out(np.asarray(lr, dtype=float) * c * np.asarray(sigma2, dtype=float)
                / (np.asarray(lam, dtype=float) * (2.0 - x)))


def isotropic_moments_1d(n_steps: int, *, mean0: float, var0: float, lam: float, lr: float, batch_size: float,
                         sigma2: float, amplification: int, n_samples: int | None = None) -> tuple[float, float]:
    """Mean and variance of SVAG on L = lam x^2/2 (additive noise sigma2) after the time of ``n_steps``
    SGD steps, i.e. l * n_steps SVAG steps from x_0 of mean mean0 and variance var0:

        mean = a^(l K) mean0,   var = a^(2 l K) var0 + Var_l (1 - a^(2 l K)),   a = 1 - lr lam / l."""
    l = _amplification(amplification)
    k = _checks.check_int("n_steps", n_steps, minimum=0)
    v_inf = stationary_variance_isotropic(lam, lr=lr, batch_size=batch_size, sigma2=sigma2, amplification=l,
                                          n_samples=n_samples)
    a = 1.0 - float(lr) * float(lam) / l
    decay = a ** (l * k)
    return float(mean0) * decay, float(var0) * decay**2 + v_inf * (1.0 - decay**2)


def sde_isotropic_moments_1d(t: float, *, mean0: float, var0: float, lam: float, lr: float, batch_size: float,
                             sigma2: float, n_samples: int | None = None) -> tuple[float, float]:
    """Ornstein-Uhlenbeck moments of the SDE d x = -lr lam x dt + lr sqrt(c sigma2) dW at time t (SGD steps):

        mean = e^(-lr lam t) mean0,   var = e^(-2 lr lam t) var0 + (lr c sigma2 / (2 lam)) (1 - e^(-2 lr lam t))."""
    _checks.check_nonnegative("t", t)
    _checks.check_positive("lam", lam)
    _checks.check_positive("lr", lr)
    _checks.check_positive("sigma2", sigma2)
    c = float(_isotropic_c(batch_size, n_samples))
    decay = math.exp(-float(lr) * float(lam) * float(t))
    v_inf = float(lr) * c * float(sigma2) / (2.0 * float(lam))
    return float(mean0) * decay, float(var0) * decay**2 + v_inf * (1.0 - decay**2)


def critical_lr(hessians: ArrayLike, *, batch_size: ArrayLike, amplification: int, replacement: bool = False) -> float:
    """Largest stable learning rate of SVAG at an interpolating minimum (all c_i equal): the root of
    rho[(I - (lr/l) H) (x) (I - (lr/l) H) + (lr^2 c / l) N_D] = 1 (1-D: 2 a / (a^2 / l + c s^2)).
    l = 1: SGD's (theory.stability.critical_lr); l -> inf: the SDE's (theory.stability.sde_critical_lr)."""
    l = _amplification(amplification)
    arr = per_sample_hessians(hessians)
    h, dev = _range_parts(arr)
    c = _noise_c(batch_size, arr.shape[0], replacement)
    return _critical_step(h, _kron_noise(dev), c, amplification=l)
