"""Exact stationary statistics of discrete SGD on a quadratic (where the SDE of eq. 1 is exact-able).

Model: L(theta) = 1/2 theta^T H theta, gradient noise of covariance C/S (paper
Sec. 3.1 assumption 1):

    theta_{k+1} = A theta_k - lr xi_k,   A = I - lr H,   Cov xi_k = C / batch_size.

Stationary covariance (discrete Lyapunov equation)

    Sigma = A Sigma A^T + (lr^2 / S) C,

which exists iff the spectral radius of A is < 1, i.e. 0 < lr * lambda < 2 for
every eigenvalue lambda of SPD H.  Its continuous-time (SDE, eq. 1) limit solves

    H Sigma + Sigma H = (lr / S) C,

whose isotropic 1-D solution n sigma2 / (2 lambda) = T / lambda is the Gibbs
variance of eq. 2.  In 1-D the discrete result is n sigma2 / (lambda (2 - lr lambda)),
a relative excess lr lambda / (2 - lr lambda) = O(lr lambda) over the continuous one,
diverging at lr lambda -> 2: the "breaking point" of Sec. 4.4 / App. E in closed form.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike

from theory import _checks
from theory._types import FloatArray, FloatOrArray
from theory.gibbs import _out

if TYPE_CHECKING:
    from theory.landscapes.base import Landscape

__all__ = [
    "least_squares_stationary_covariance",
    "stationary_covariance",
    "stationary_variance",
    "stability_limit",
    "breaking_beta",
    "finite_data_noise_factor",
    "momentum_transition",
    "stationary_covariance_momentum",
    "stationary_variance_momentum",
]


def _check_scalar(name, value):
    if np.ndim(value) != 0:
        raise ValueError(f"{name} must be a scalar here, got shape {np.shape(value)}")
    return float(value)


def stationary_covariance(hessian: ArrayLike, noise_cov: ArrayLike, *, lr: ArrayLike, batch_size: ArrayLike,
                          discrete: bool = True) -> FloatArray:
    """Stationary covariance of theta for SGD on L = 1/2 theta^T H theta with gradient-noise covariance C/S.

    discrete=True: Sigma = A Sigma A^T + (lr^2/S) C,  A = I - lr H
                   (scipy.linalg.solve_discrete_lyapunov); requires lr < 2 / lambda_max(H),
                   otherwise ValueError naming lr and the limit.
    discrete=False: H Sigma + Sigma H = (lr/S) C  (stationary Fokker-Planck / Lyapunov
                   equation of the SDE eq. 1 with constant C; scipy.linalg.solve_continuous_lyapunov).

    For C = sigma2 I this is the Gibbs covariance T H^{-1} (eq. 2) in the continuous case.
    ``hessian`` must be SPD, ``noise_cov`` symmetric positive semi-definite, same shape.
    """
    h = _checks.check_positive_definite("hessian", hessian)
    c = _checks.check_positive_semidefinite("noise_cov", noise_cov)
    if c.shape != h.shape:
        raise ValueError(f"noise_cov must have the hessian's shape {h.shape}, got {c.shape}")
    _checks.check_positive("lr", lr)
    _checks.check_batch_size(batch_size)
    lr = _check_scalar("lr", lr)
    s = _check_scalar("batch_size", batch_size)
    d = h.shape[0]
    if discrete:
        lam_max = float(np.linalg.eigvalsh(h)[-1])
        limit = 2.0 / lam_max
        if lr >= limit:
            raise ValueError(
                f"lr = {lr:.6g} makes discrete SGD unstable: need lr < 2 / lambda_max(H) = {limit:.6g}"
            )
        a = np.eye(d) - lr * h
        sigma = scipy.linalg.solve_discrete_lyapunov(a, (lr * lr / s) * c)
    else:
        sigma = scipy.linalg.solve_continuous_lyapunov(h, (lr / s) * c)
    return 0.5 * (sigma + sigma.T)


def stationary_variance(lam: ArrayLike, *, lr: ArrayLike, batch_size: ArrayLike, sigma2: ArrayLike,
                        discrete: bool = True) -> FloatOrArray:
    """Stationary variance along a Hessian eigen-direction lambda with isotropic noise sigma2.

    discrete=True:  Var = n sigma2 / (lambda (2 - lr lambda))   (1-D discrete Lyapunov, exact;
                    needs lr lambda < 2 -- ValueError naming lr and the limit 2/lambda)
    discrete=False: Var = n sigma2 / (2 lambda) = T / lambda    (Gibbs, eq. 2)
    with n = lr / batch_size.  Vectorised (broadcasts).
    """
    _checks.check_positive("lam", lam)
    _checks.check_positive("lr", lr)
    _checks.check_batch_size(batch_size)
    _checks.check_positive("sigma2", sigma2)
    lam_a = np.asarray(lam, dtype=float)
    lr_a = np.asarray(lr, dtype=float)
    n = lr_a / np.asarray(batch_size, dtype=float)
    s2 = np.asarray(sigma2, dtype=float)
    if discrete:
        x = lr_a * lam_a
        if np.any(x >= 2.0):
            raise ValueError(
                f"lr * lam must be < 2 for a stationary discrete iteration (lr < 2/lam = "
                f"{_out(2.0 / lam_a)!r}), got lr = {lr!r}"
            )
        return _out(n * s2 / (lam_a * (2.0 - x)))
    return _out(n * s2 / (2.0 * lam_a))


def stability_limit(hessian_or_lam: ArrayLike) -> FloatOrArray:
    """Largest stable learning rate of GD/SGD on a quadratic: lr_max = 2 / lambda_max.

    Where the continuous approximation of eq. 1 (App. B, Sec. 4.4) breaks completely:
    theta_{k+1} = (I - lr H) theta_k - lr xi_k diverges for lr >= lr_max.

    Argument with ndim >= 2 is a Hessian (d, d) (or a stack (..., d, d)) that must be SPD:
    2 / lambda_max(H) per matrix.  ndim 0 or 1: values of lambda_max (> 0), elementwise
    2 / lambda.  Discrete SGD is stationary iff lr < lr_max (spectral radius of I - lr H < 1).
    """
    arr = np.asarray(hessian_or_lam, dtype=float)
    if arr.ndim >= 2:
        if arr.ndim == 2:
            _checks.check_positive_definite("hessian", arr)
        else:
            from theory.minima import spd_logdet

            spd_logdet(arr, "hessian")
        lam_max = np.linalg.eigvalsh(arr)[..., -1]
        return _out(2.0 / lam_max)
    _checks.check_positive("lam", arr)
    return _out(2.0 / arr)


def breaking_beta(lr: ArrayLike, lam_max: ArrayLike) -> FloatOrArray:
    """The rescaling factor beta at which (beta lr, beta S) hits the stability limit:

        beta lr lam_max = 2   =>   beta* = 2 / (lr lam_max).

    (Theory of Sec. 4.4 'breaking point' on a quadratic: for beta >= beta* discrete SGD
    diverges although n = beta lr / (beta S) is unchanged.)
    """
    _checks.check_positive("lr", lr)
    _checks.check_positive("lam_max", lam_max)
    return _out(2.0 / (np.asarray(lr, dtype=float) * np.asarray(lam_max, dtype=float)))


def finite_data_noise_factor(batch_size: ArrayLike, n_samples: ArrayLike) -> FloatOrArray:
    """Variance factor of a minibatch mean drawn without replacement from N samples:

        Var[mean of batch] = sigma2 * (1/S - 1/N) * N / (N - 1) = sigma2 * (N - S) / (S (N - 1)),

    where sigma2 = (1/N) sum_i (g_i - gbar)^2 is the *population* variance of the N
    per-sample gradients (1/N normalisation, not 1/(N-1)).  Equals 1/S as N -> inf (the
    paper's C/S, Sec. 3.1) and 0 at S = N (full batch: no noise) -- the finite-data
    effect of App. E.  Requires N >= 2 and 1 <= S <= N.  Vectorised over batch_size.
    """
    n_samples = _checks.check_int("n_samples", n_samples, minimum=2)
    _checks.check_batch_size(batch_size, n_samples)
    s = np.asarray(batch_size, dtype=float)
    return _out((1.0 / s - 1.0 / n_samples) * n_samples / (n_samples - 1.0))


def momentum_transition(hessian: ArrayLike, *, lr: ArrayLike, momentum: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Transition matrix M of heavy-ball SGD in the state z = (theta, v), z_{k+1} = M z_k + G xi_k:

        v_{k+1} = momentum v_k - lr (H theta_k + xi_k),   theta_{k+1} = theta_k + v_{k+1}
        M = [[I - lr H, momentum I], [-lr H, momentum I]],   G = [[-lr I], [-lr I]].
    """
    h = _checks.check_symmetric("hessian", hessian)
    _checks.check_positive("lr", lr)
    _checks.check_in_range("momentum", momentum, 0.0, 1.0, closed="left")
    lr, momentum = _check_scalar("lr", lr), _check_scalar("momentum", momentum)
    d = h.shape[0]
    eye = np.eye(d)
    m = np.block([[eye - lr * h, momentum * eye], [-lr * h, momentum * eye]])
    g = np.vstack([-lr * eye, -lr * eye])
    return m, g


def stationary_covariance_momentum(hessian: ArrayLike, noise_cov: ArrayLike, *, lr: ArrayLike, batch_size: ArrayLike,
                                   momentum: ArrayLike, return_full: bool = False) -> FloatArray:
    """Stationary covariance of heavy-ball SGD on L = 1/2 theta^T H theta, noise covariance C/S.

    Augmented linear system z = (theta, v) (see :func:`momentum_transition`):
        Sigma_z = M Sigma_z M^T + G (C/S) G^T     (discrete Lyapunov, 2d x 2d).
    Returns the theta block Sigma_theta (d, d), or the full Sigma_z if ``return_full``.
    Requires 0 <= momentum < 1 and spectral radius of M < 1 (for SPD H:
    0 < lr lambda < 2 (1 + momentum) for all eigenvalues); ValueError naming lr otherwise.
    Small-lr limit (C = sigma2 I): Sigma_theta -> n sigma2 / (2 (1 - momentum)) H^{-1},
    i.e. momentum raises the effective temperature to T / (1 - momentum).
    """
    h = _checks.check_positive_definite("hessian", hessian)
    c = _checks.check_positive_semidefinite("noise_cov", noise_cov)
    if c.shape != h.shape:
        raise ValueError(f"noise_cov must have the hessian's shape {h.shape}, got {c.shape}")
    _checks.check_positive("lr", lr)
    _checks.check_batch_size(batch_size)
    _checks.check_in_range("momentum", momentum, 0.0, 1.0, closed="left")
    lr = _check_scalar("lr", lr)
    s = _check_scalar("batch_size", batch_size)
    mu = _check_scalar("momentum", momentum)
    lam_max = float(np.linalg.eigvalsh(h)[-1])
    limit = 2.0 * (1.0 + mu) / lam_max
    if lr >= limit:
        raise ValueError(
            f"lr = {lr:.6g} makes heavy-ball SGD unstable: need lr < 2 (1 + momentum) / lambda_max(H) "
            f"= {limit:.6g}"
        )
    m, g = momentum_transition(h, lr=lr, momentum=mu)
    q = g @ (c / s) @ g.T
    sigma = scipy.linalg.solve_discrete_lyapunov(m, q)
    sigma = 0.5 * (sigma + sigma.T)
    d = h.shape[0]
    return sigma if return_full else sigma[:d, :d]


def stationary_variance_momentum(lam: ArrayLike, *, lr: ArrayLike, batch_size: ArrayLike, sigma2: ArrayLike,
                                 momentum: ArrayLike, discrete: bool = True) -> FloatOrArray:
    """Stationary variance of theta for heavy-ball SGD in 1-D (curvature lam, noise sigma2/S).

    theta obeys the AR(2) recursion theta_{k+1} = (1 + mu - a) theta_k - mu theta_{k-1} - lr xi_k,
    a = lr lam, mu = momentum, whose stationary variance is

    discrete=True:  Var = (1 + mu) n sigma2 / ((1 - mu) lam (2 (1 + mu) - lr lam))   (exact)
    discrete=False: Var = n sigma2 / (2 lam (1 - mu))                              (lr -> 0 limit)

    n = lr / batch_size.  At mu = 0 these reduce to :func:`stationary_variance`.  Needs
    0 <= mu < 1 and (discrete) lr lam < 2 (1 + mu).  Vectorised.
    """
    _checks.check_positive("lam", lam)
    _checks.check_positive("lr", lr)
    _checks.check_batch_size(batch_size)
    _checks.check_positive("sigma2", sigma2)
    _checks.check_in_range("momentum", momentum, 0.0, 1.0, closed="left")
    lam_a = np.asarray(lam, dtype=float)
    lr_a = np.asarray(lr, dtype=float)
    mu = np.asarray(momentum, dtype=float)
    n = lr_a / np.asarray(batch_size, dtype=float)
    s2 = np.asarray(sigma2, dtype=float)
    if discrete:
        a = lr_a * lam_a
        if np.any(a >= 2.0 * (1.0 + mu)):
            raise ValueError(f"lr * lam must be < 2 (1 + momentum) for stationarity, got lr = {lr!r}")
        return _out((1.0 + mu) * n * s2 / ((1.0 - mu) * lam_a * (2.0 * (1.0 + mu) - a)))
    return _out(n * s2 / (2.0 * lam_a * (1.0 - mu)))


def least_squares_stationary_covariance(landscape: Landscape, *, lr: ArrayLike,
                                        batch_size: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Exact stationary covariance of SGD with minibatches drawn with replacement on linear least
    squares l_i = (x_i^T theta - y_i)^2 / 2 (``theory.landscapes.LeastSquares``, no L2 term):

        Sigma = A Sigma A^T + (lr^2 / S) [C(theta*) + (1/N) sum_i (x_i^T Sigma x_i) x_i x_i^T - H Sigma H],

    A = I - lr H, H = (1/N) sum_i x_i x_i^T.  Closed because the gradient is affine in theta and
    E[theta] = theta* (App. E's state-dependent noise, without the linearisation C(theta) ~ C(theta*));
    solved as one linear system in vec(Sigma).  Returns (Sigma, C(theta*), H)."""
    _checks.check_positive("lr", lr)
    _checks.check_batch_size(batch_size)
    x = landscape.inputs
    n, d = x.shape
    star = landscape.minima()[0].location[None, :]
    h = landscape.hessian(star)[0]
    c_star = landscape.noise_covariance(star)[0]
    a = np.eye(d) - lr * h
    outer = np.einsum("ni,nj->nij", x, x).reshape(n, d * d)
    m_op = outer.T @ outer / n
    k = np.kron(a, a) + (lr ** 2 / batch_size) * (m_op - np.kron(h, h))
    vec = np.linalg.solve(np.eye(d * d) - k, (lr ** 2 / batch_size) * c_star.reshape(-1))
    s = vec.reshape(d, d)
    return 0.5 * (s + s.T), c_star, h
