"""Noise geometry of SGD: alignment metrics and closed forms (seed 002, Wang & Wu 2023).

Sources and status of every definition
--------------------------------------
Paper: M. Wang, L. Wu, "A theoretical analysis of noise geometry in stochastic
gradient descent" (arXiv 2310.00692; earlier title "The noise geometry of
stochastic gradient descent: a quantitative and analytical characterization").
Predecessor: L. Wu, M. Wang, W. Su, "The alignment property of SGD noise and how
it helps select flat minima: a stability analysis", NeurIPS 2022 (arXiv 2207.02628).

The stored copies of the paper available to this project had their mathematics
stripped, so the formulas below could NOT be read first-hand.  What was found:

* the paper names two metrics, the *loss alignment* mu(theta) and the *directional
  alignment* g(theta, v) (public summary of 2310.00692), "derived from analysing how
  noise influences the loss and subspace projection dynamics" (abstract);
* the SGD iteration is written theta_{t+1} = theta_t - eta (grad L(theta_t) + xi_t),
  E xi = 0, E xi xi^T = Sigma(theta) (paper eq. 1), and the metric is motivated by
  the one-step loss update (paper eq. 2);
* the predecessor states the alignment as "the noise concentrates in sharp directions
  of the local landscape and its magnitude is proportional to the loss value", for
  the square loss (NeurIPS 2022 abstract);
* the explicit formulas mu = Tr(Sigma_1 G) / (2 L ||G||_F^2) and
  beta(v) = v^T Sigma_1 v / (2 L v^T G v) are quoted second hand in
  ``shared/notes/references.md`` (public reviews).  They agree with the derivation
  below, which is why they are used; treat the normalisation as *derived*.

Derivation (ours).  For the square loss L = (1/2N) sum_i (f(x_i; theta) - y_i)^2 with
residuals r_i and per-sample gradients g_i = r_i J_i (J_i = grad_theta f(x_i)), the
batch-size-1 noise covariance is

    Sigma_1 = (1/N) sum_i g_i g_i^T - gbar gbar^T,      gbar = grad L,

and the Gauss-Newton matrix is G = (1/N) sum_i J_i J_i^T.  If the residuals were
uniform, r_i^2 = 2L for all i, and gbar = 0, then Sigma_1 = 2L * G exactly: noise
"proportional to the loss and shaped like the curvature".  The loss alignment measures
how much of that ideal the noise achieves in the quantity that drives the loss
(the second-order term of E L(theta_{t+1}) is (eta^2/2S) Tr(Sigma_1 H) with H ~ G
near a minimum):

    mu(theta) = Tr(Sigma_1 G) / (2 L ||G||_F^2)          (= 1 in the ideal case),

and the directional alignment measures it along one direction v (the variance that
the noise injects into the projection v^T theta per step is eta^2 v^T Sigma_1 v / S):

    beta(theta; v) = v^T Sigma_1 v / (2 L v^T G v)        (= 1 in the ideal case).

Our subspace version (derived, not found in the paper's text) replaces v by the
orthogonal projector P onto a subspace U:  beta_U = Tr(P Sigma_1) / (2 L Tr(P G)).

Notation map (paper -> ours): eta -> ``lr``, B -> ``batch_size`` (S), Sigma(theta)
(the noise of batch size 1) -> ``noise_cov`` (Sigma_1), G(theta) -> ``gauss_newton``,
L(theta) -> ``loss``, mu(theta) -> :func:`average_alignment`, g(theta, v) ->
:func:`directional_alignment`.  The minibatch noise of batch size S is Sigma_1 / S
(with replacement) or Sigma_1 (N-S)/(S(N-1)) (without): :func:`minibatch_noise_covariance`.
The alignment metrics are always defined on Sigma_1 (they do not depend on S).

Closed forms for the linear (least-squares) model, f(x; theta) = x^T theta
(derived here; the paper proves bounds of the same kind, which we could not read):

* kernel (Gram) form, K = X X^T (N x N), valid for any N, d (no d x d matrix built):
      x_i^T G x_i = (K^2)_ii / N,  ||G||_F^2 = ||K||_F^2 / N^2,  gbar^T G gbar = r^T K^2 r / N^3,
      mu = [ sum_i r_i^2 (K^2)_ii / N^2 - r^T K^2 r / N^3 ] / (2 L ||K||_F^2 / N^2);
  :func:`linear_average_alignment`.
* deterministic bounds valid for EVERY theta and every target vector
  (:func:`linear_alignment_bounds`):
      (N min_i (K^2)_ii - lambda_max(K)^2) / ||K||_F^2  <=  mu  <=  N max_i (K^2)_ii / ||K||_F^2.
  For isotropic Gaussian inputs with d >> N the lower bound tends to 1 - 1/N: the
  alignment is bounded away from zero independently of the degree of
  over-parameterisation d/N.
* Gaussian population (N -> infinity) with inputs x ~ N(0, S), noiseless labels,
  delta = theta - theta*:  Sigma_1 = (delta^T S delta) S + S delta delta^T S, so
      mu_pop = 1 + delta^T S^3 delta / (delta^T S delta Tr S^2)  in [1, 1 + 1/d_eff],
      beta_pop(v) = 1 + (v^T S delta)^2 / (delta^T S delta v^T S v)  in [1, 2],
  with the effective dimension d_eff = Tr(S^2) / ||S||_2^2
  (:func:`linear_gaussian_population_alignment`, :func:`linear_gaussian_population_directional`).
* isotropic Gaussian inputs, finite N and d, theta independent of the data, labels
  y = x^T theta* + noise of variance rho ||theta - theta*||^2: the ratio of expectations
  E Tr(Sigma_1 G) / E[2 L ||G||_F^2] in closed form (Isserlis' theorem),
  :func:`linear_isotropic_expected_alignment`; limits 1 + 1/d (N -> inf, rho = 0) and
  1 - 1/N (d -> inf).

Any square-loss model (two-layer networks included): replace x_i by the per-sample model
gradient J_i = grad_theta f(x_i) and K by the tangent-kernel Gram matrix J J^T; the Gram form
of mu and the deterministic bounds hold verbatim (:func:`kernel_average_alignment`,
:func:`kernel_alignment_bounds`).

Escape (derived; the paper analyses L(w) = 1/2 w^T G(theta*) w, which we could not read in
detail): the second moment M_t = E[w_t w_t^T] of SGD near an interpolating minimum obeys an
exact linear recursion (least squares, i.i.d. minibatches: :func:`linear_sgd_second_moment_operator`);
its dominant mode is the escape mode (:func:`linear_sgd_escape_profile`).  With perfectly
aligned noise Sigma_1 = 2L H the mode has weights m_j ~ lambda_j / (rho - (1 - lr lambda_j)^2) on
the eigendirections (:func:`aligned_quadratic_escape_profile`): every curved direction is fed by
the noise, so SGD escapes with flat components, while GD (no noise) escapes along u_1 only.

Every public function validates its inputs (errors name the parameter); the metrics work on
stacks: matrices of shape (..., d, d), losses of shape (...).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from theory import _checks
from theory._types import FloatArray, FloatOrArray

__all__ = [
    "average_alignment",
    "directional_alignment",
    "subspace_alignment",
    "eigendirection_alignment",
    "noise_covariance_from_gradients",
    "gauss_newton_from_jacobians",
    "minibatch_noise_covariance",
    "LinearGeometry",
    "linear_model_geometry",
    "kernel_average_alignment",
    "kernel_alignment_bounds",
    "kernel_eigendirection_alignment",
    "linear_average_alignment",
    "linear_directional_alignment",
    "linear_alignment_bounds",
    "linear_gaussian_population_alignment",
    "linear_gaussian_population_directional",
    "linear_isotropic_expected_alignment",
    "effective_dimension",
    "EscapeProfile",
    "linear_sgd_second_moment_operator",
    "linear_sgd_escape_profile",
    "aligned_quadratic_escape_profile",
]


# ----------------------------------------------------------------------------- helpers

def _out(x: Any):
    arr = np.asarray(x, dtype=float)
    return float(arr) if arr.ndim == 0 else arr


def _check_psd_stack(name: str, matrix: Any, tol: float = 1e-9) -> np.ndarray:
    """Check a symmetric PSD matrix or stack (..., d, d); return it as float array."""
    mat = np.asarray(matrix, dtype=float)
    if mat.ndim < 2 or mat.shape[-1] != mat.shape[-2]:
        raise ValueError(f"{name} must be a square matrix or a stack (..., d, d), got shape {mat.shape}")
    if not np.all(np.isfinite(mat)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    scale = np.maximum(1e-300, np.max(np.abs(mat), axis=(-2, -1), keepdims=True))
    if np.any(np.abs(mat - np.swapaxes(mat, -1, -2)) > 1e-8 * scale):
        raise ValueError(f"{name} must be symmetric")
    eig = np.linalg.eigvalsh(mat)
    if np.any(eig[..., 0] < -tol * np.maximum(1e-300, np.max(np.abs(eig), axis=-1))):
        raise ValueError(
            f"{name} must be positive semi-definite; smallest eigenvalue {float(np.min(eig[..., 0])):.3g}"
        )
    return mat


def _check_loss(loss: Any) -> np.ndarray:
    _checks.check_positive("loss", loss)
    return np.asarray(loss, dtype=float)


def _check_same_dim(noise_cov: np.ndarray, gauss_newton: np.ndarray) -> None:
    if noise_cov.shape[-1] != gauss_newton.shape[-1]:
        raise ValueError(
            f"noise_cov and gauss_newton must have the same dimension d, got "
            f"{noise_cov.shape[-1]} and {gauss_newton.shape[-1]}"
        )


# ----------------------------------------------------------------------------- metrics

def average_alignment(noise_cov: ArrayLike, gauss_newton: ArrayLike, loss: ArrayLike) -> FloatOrArray:
    """Loss (average) alignment  mu = Tr(Sigma_1 G) / (2 L ||G||_F^2).

    Paper: mu(theta) of Wang & Wu 2023 (definition reconstructed, see module docstring).
    ``noise_cov`` is the batch-size-1 noise covariance Sigma_1 (..., d, d), PSD;
    ``gauss_newton`` the Gauss-Newton matrix G (..., d, d), PSD and nonzero;
    ``loss`` L > 0 (...).  Returns a float or an array of the broadcast batch shape.
    Invariances: mu(Sigma_1, c G, L) = mu(Sigma_1, G, L) / c and
    mu(c Sigma_1, G, c L) = mu(Sigma_1, G, L); Sigma_1 = 2L G gives mu = 1 exactly.
    """
    sig = _check_psd_stack("noise_cov", noise_cov)
    gn = _check_psd_stack("gauss_newton", gauss_newton)
    _check_same_dim(sig, gn)
    L = _check_loss(loss)
    fro2 = np.sum(gn * gn, axis=(-2, -1))
    if np.any(fro2 <= 0):
        raise ValueError("gauss_newton must be nonzero (||G||_F > 0)")
    tr = np.sum(sig * np.swapaxes(gn, -1, -2), axis=(-2, -1))
    return _out(tr / (2.0 * L * fro2))


def _check_direction(direction: Any, d: int) -> np.ndarray:
    v = np.asarray(direction, dtype=float)
    if v.ndim < 1 or v.shape[-1] != d:
        raise ValueError(f"direction must have last axis of length d = {d}, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("direction must be finite")
    norms = np.linalg.norm(v, axis=-1)
    if np.any(norms <= 0):
        raise ValueError("direction must be a nonzero vector (each row nonzero)")
    return v


def directional_alignment(noise_cov: ArrayLike, gauss_newton: ArrayLike, loss: ArrayLike,
                          direction: ArrayLike) -> FloatOrArray:
    """Directional alignment  beta(v) = v^T Sigma_1 v / (2 L v^T G v).

    Paper: g(theta, v) of Wang & Wu 2023 (reconstructed, see module docstring); it is
    scale invariant in v, so v need not be normalised.  ``direction`` has shape
    (..., d) and broadcasts against the matrix stacks; e.g. one (d, d) pair and a
    (p, d) array of directions gives p values.  Raises if v^T G v = 0 (v in the null
    space of G: no curvature to align with).
    """
    sig = _check_psd_stack("noise_cov", noise_cov)
    gn = _check_psd_stack("gauss_newton", gauss_newton)
    _check_same_dim(sig, gn)
    L = _check_loss(loss)
    v = _check_direction(direction, gn.shape[-1])
    num = np.einsum("...i,...ij,...j->...", v, sig, v)
    den = np.einsum("...i,...ij,...j->...", v, gn, v)
    scale = np.einsum("...i,...i->...", v, v) * np.max(np.abs(gn), axis=(-2, -1))
    if np.any(den <= 1e-14 * scale):
        raise ValueError("direction lies in the null space of gauss_newton (v^T G v = 0)")
    return _out(num / (2.0 * L * den))


def subspace_alignment(noise_cov: ArrayLike, gauss_newton: ArrayLike, loss: ArrayLike, *,
                       basis: ArrayLike | None = None, top_k: int | None = None) -> float:
    """Subspace alignment  beta_U = Tr(P Sigma_1) / (2 L Tr(P G)),  P the projector onto U.

    Derived (our generalisation of the directional alignment to the subspace
    projection dynamics named in the abstract; not read from the paper).  U is either
    the span of the columns of ``basis`` (d, k) or, with ``top_k=k``, the span of the
    top-k eigenvectors of G.  Only 2-D matrices (no stacks).  For k = 1 it equals
    :func:`directional_alignment`; for U = R^d it is Tr Sigma_1 / (2 L Tr G).
    """
    sig = _checks.check_positive_semidefinite("noise_cov", noise_cov, tol=1e-9)
    gn = _checks.check_positive_semidefinite("gauss_newton", gauss_newton, tol=1e-9)
    _check_same_dim(sig, gn)
    L = float(_check_loss(loss))
    d = gn.shape[0]
    if (basis is None) == (top_k is None):
        raise ValueError("give exactly one of basis (d, k) or top_k (int)")
    if top_k is not None:
        k = _checks.check_int("top_k", top_k, minimum=1)
        if k > d:
            raise ValueError(f"top_k must be <= d = {d}, got {k}")
        _, vecs = np.linalg.eigh(gn)
        q = vecs[:, ::-1][:, :k]
    else:
        b = np.asarray(basis, dtype=float)
        if b.ndim == 1:
            b = b[:, None]
        if b.ndim != 2 or b.shape[0] != d:
            raise ValueError(f"basis must have shape (d, k) with d = {d}, got {np.shape(basis)}")
        if not np.all(np.isfinite(b)):
            raise ValueError("basis must be finite")
        q, rr = np.linalg.qr(b)
        if np.any(np.abs(np.diag(rr)) <= 1e-12 * max(1.0, np.max(np.abs(b)))):
            raise ValueError("basis must have linearly independent columns")
    num = np.trace(q.T @ sig @ q)
    den = np.trace(q.T @ gn @ q)
    if den <= 1e-14 * max(1e-300, np.max(np.abs(gn))):
        raise ValueError("the subspace lies in the null space of gauss_newton (Tr(P G) = 0)")
    return float(num / (2.0 * L * den))


def eigendirection_alignment(noise_cov: ArrayLike, gauss_newton: ArrayLike, loss: ArrayLike, *,
                             rtol: float = 1e-10) -> tuple[FloatArray, FloatArray]:
    """beta along every eigenvector u_j of G with lambda_j > rtol * lambda_max.

    Returns (eigenvalues (descending), betas): beta_j = u_j^T Sigma_1 u_j / (2 L lambda_j).
    Eigenvectors of the null space of G are dropped (beta undefined there).
    """
    sig = _checks.check_positive_semidefinite("noise_cov", noise_cov, tol=1e-9)
    gn = _checks.check_positive_semidefinite("gauss_newton", gauss_newton, tol=1e-9)
    _check_same_dim(sig, gn)
    L = float(_check_loss(loss))
    lam, vecs = np.linalg.eigh(gn)
    lam, vecs = lam[::-1], vecs[:, ::-1]
    keep = lam > rtol * max(lam[0], 1e-300)
    lam, vecs = lam[keep], vecs[:, keep]
    num = np.einsum("ij,ik,kj->j", vecs, sig, vecs)
    return lam, num / (2.0 * L * lam)


# ----------------------------------------------------------------------------- covariances

def noise_covariance_from_gradients(per_sample_grads: ArrayLike) -> FloatArray:
    """Sigma_1 = (1/N) sum_i (g_i - gbar)(g_i - gbar)^T from per-sample gradients (..., N, d)."""
    g = np.asarray(per_sample_grads, dtype=float)
    if g.ndim < 2:
        raise ValueError(f"per_sample_grads must have shape (..., N, d), got {g.shape}")
    _checks.check_finite("per_sample_grads", g)
    c = g - g.mean(axis=-2, keepdims=True)
    return np.einsum("...ni,...nj->...ij", c, c) / g.shape[-2]


def gauss_newton_from_jacobians(jacobians: ArrayLike) -> FloatArray:
    """G = (1/N) sum_i J_i J_i^T from per-sample model gradients J_i = grad_theta f(x_i) (..., N, d)."""
    j = np.asarray(jacobians, dtype=float)
    if j.ndim < 2:
        raise ValueError(f"jacobians must have shape (..., N, d), got {j.shape}")
    _checks.check_finite("jacobians", j)
    return np.einsum("...ni,...nj->...ij", j, j) / j.shape[-2]


def minibatch_noise_covariance(noise_cov: ArrayLike, *, batch_size: ArrayLike, n_samples: int | None = None,
                               replacement: bool = True) -> FloatArray:
    """Covariance of the minibatch gradient noise for batch size S.

    With replacement: Sigma_S = Sigma_1 / S.  Without replacement from N samples:
    Sigma_S = Sigma_1 (N - S) / (S (N - 1))  (finite-population correction; zero at S = N).
    """
    sig = _check_psd_stack("noise_cov", noise_cov)
    if replacement:
        _checks.check_batch_size(batch_size)
        return sig / float(batch_size)
    if n_samples is None:
        raise ValueError("n_samples is required when replacement=False")
    n = _checks.check_int("n_samples", n_samples, minimum=2)
    _checks.check_batch_size(batch_size, n)
    s = float(batch_size)
    return sig * (n - s) / (s * (n - 1))


# ----------------------------------------------------------------------------- linear model

class LinearGeometry(NamedTuple):
    """Exact quantities of L(theta) = (1/2N) sum (x_i^T theta - y_i)^2 at one theta."""

    loss: float
    residuals: np.ndarray     # (N,)  r_i = x_i^T theta - y_i
    gradient: np.ndarray      # (d,)  gbar = (1/N) sum r_i x_i
    gauss_newton: np.ndarray  # (d, d) G = X^T X / N  (= Hessian)
    noise_cov: np.ndarray     # (d, d) Sigma_1 = (1/N) sum r_i^2 x_i x_i^T - gbar gbar^T


def _check_linear_data(inputs, targets=None):
    x = np.asarray(inputs, dtype=float)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"inputs must have shape (N, d) with N >= 1, got {x.shape}")
    _checks.check_finite("inputs", x)
    if targets is None:
        return x, None
    y = np.asarray(targets, dtype=float)
    if y.shape != (x.shape[0],):
        raise ValueError(f"targets must have shape (N,) = ({x.shape[0]},), got {y.shape}")
    _checks.check_finite("targets", y)
    return x, y


def _residuals(x, y, theta):
    th = np.asarray(theta, dtype=float)
    if th.shape != (x.shape[1],):
        raise ValueError(f"theta must have shape (d,) = ({x.shape[1]},), got {th.shape}")
    _checks.check_finite("theta", th)
    return x @ th - y


def linear_model_geometry(inputs: ArrayLike, targets: ArrayLike, theta: ArrayLike) -> LinearGeometry:
    """Explicit matrices (loss, residuals, gradient, G, Sigma_1) of the least-squares model."""
    x, y = _check_linear_data(inputs, targets)
    r = _residuals(x, y, theta)
    n = x.shape[0]
    gbar = x.T @ r / n
    gn = x.T @ x / n
    sig = (x * (r * r)[:, None]).T @ x / n - np.outer(gbar, gbar)
    return LinearGeometry(float(0.5 * np.mean(r * r)), r, gbar, gn, sig)


def _jacobian_inputs(jacobians, residuals, what: str):
    """Validated (J (N, D), r (N,), N, 2L = mean r²) for the Gram-matrix forms."""
    j = np.asarray(jacobians, dtype=float)
    if j.ndim != 2 or j.shape[0] < 1:
        raise ValueError(f"jacobians must have shape (N, D), got {j.shape}")
    _checks.check_finite("jacobians", j)
    r = np.asarray(residuals, dtype=float)
    if r.shape != (j.shape[0],):
        raise ValueError(f"residuals must have shape (N,) = ({j.shape[0]},), got {r.shape}")
    _checks.check_finite("residuals", r)
    n = j.shape[0]
    two_l = float(np.mean(r * r))
    if two_l <= 0:
        raise ValueError(f"loss must be > 0 (all residuals zero: {what} is 0/0)")
    return j, r, n, two_l


def kernel_average_alignment(jacobians: ArrayLike, residuals: ArrayLike) -> FloatOrArray:
    """mu for any square-loss model from per-sample model gradients J_i and residuals r_i.

    With K = J J^T (the N x N empirical tangent-kernel Gram matrix), Sigma_1 = (1/N) sum r_i^2
    J_i J_i^T - gbar gbar^T and G = J^T J / N give (derived)

        mu = [ (1/N^2) sum_i r_i^2 (K^2)_ii - (1/N^3) r^T K^2 r ] / (2L ||K||_F^2 / N^2),
        2L = (1/N) sum r_i^2.

    The linear model is J_i = x_i; the two-layer network has J_i from
    :meth:`theory.two_layer.TwoLayerRegression.jacobians`.  Cost O(N^2 D + N^3).
    """
    j, r, n, two_l = _jacobian_inputs(jacobians, residuals, "mu")
    k = j @ j.T
    k2 = k @ k
    fro2 = float(np.sum(k * k))
    if fro2 <= 0:
        raise ValueError("jacobians must not all be zero (G = 0)")
    num = float(np.sum(r * r * np.diag(k2))) / n**2 - float(r @ k2 @ r) / n**3
    return num / (two_l * fro2 / n**2)


def kernel_alignment_bounds(jacobians: ArrayLike) -> tuple[float, float]:
    """Bounds on mu valid for every residual vector, from the tangent-kernel Gram K = J J^T:

        (N min_i (K^2)_ii - lambda_max(K)^2) / ||K||_F^2  <=  mu  <=  N max_i (K^2)_ii / ||K||_F^2.

    See :func:`linear_alignment_bounds` for the proof (replace x_i by J_i).  For a network the
    bounds depend on the parameters only through K, whose normalised form converges as the
    width grows (tangent-kernel limit): a width-independent guarantee when the lower bound is
    positive.
    """
    j = np.asarray(jacobians, dtype=float)
    if j.ndim != 2 or j.shape[0] < 1:
        raise ValueError(f"jacobians must have shape (N, D), got {j.shape}")
    _checks.check_finite("jacobians", j)
    n = j.shape[0]
    k = j @ j.T
    fro2 = float(np.sum(k * k))
    if fro2 <= 0:
        raise ValueError("jacobians must not all be zero (G = 0)")
    diag_k2 = np.einsum("ij,ji->i", k, k)
    lam_max = float(np.linalg.eigvalsh(k)[-1])
    return (n * float(np.min(diag_k2)) - lam_max**2) / fro2, n * float(np.max(diag_k2)) / fro2


def kernel_eigendirection_alignment(jacobians: ArrayLike, residuals: ArrayLike, *,
                                    rtol: float = 1e-10) -> tuple[FloatArray, FloatArray]:
    """Directional alignment beta(u_j) along every curved eigendirection u_j of G = J^T J / N.

    With the thin SVD J = V S U^T (left singular vectors v_j in R^N), G u_j = (s_j^2 / N) u_j and
    J u_j = s_j v_j, so (derived)

        beta(u_j) = [ sum_i r_i^2 v_ij^2 - (r^T v_j)^2 / N ] / (2L),    2L = (1/N) sum r_i^2,

    i.e. a v_j^2-weighted average of the squared residuals relative to their plain average (minus
    the mean-gradient correction); it equals 1 for uniform |r_i| with gbar = 0.  Returns
    (eigenvalues lambda_j = s_j^2 / N descending, betas); directions with s_j <= rtol s_1 dropped.
    Cost O(N^2 D): no D x D matrix.
    """
    j, r, n, two_l = _jacobian_inputs(jacobians, residuals, "beta")
    v, sv, _ = np.linalg.svd(j, full_matrices=False)
    if sv.size == 0 or sv[0] <= 0:
        raise ValueError("jacobians must not all be zero (G = 0)")
    keep = sv > rtol * sv[0]
    v, sv = v[:, keep], sv[keep]
    beta = (np.sum((r * r)[:, None] * v * v, axis=0) - (r @ v) ** 2 / n) / two_l
    return sv**2 / n, beta


def linear_average_alignment(inputs: ArrayLike, targets: ArrayLike, theta: ArrayLike) -> FloatOrArray:
    """Closed-form mu for the least-squares model via the Gram matrix K = X X^T.

        mu = [ (1/N^2) sum_i r_i^2 (K^2)_ii - (1/N^3) r^T K^2 r ] / (2L ||K||_F^2 / N^2),

    derived from Sigma_1 = (1/N) sum r_i^2 x_i x_i^T - gbar gbar^T and G = X^T X / N;
    cost O(N^2 d + N^3), no d x d matrix (useful for d >> N).  Requires L > 0.
    """
    x, y = _check_linear_data(inputs, targets)
    r = _residuals(x, y, theta)
    if float(np.mean(r * r)) <= 0:
        raise ValueError("loss must be > 0 (theta interpolates the data: mu is 0/0)")
    if not np.any(x):
        raise ValueError("inputs must not all be zero (G = 0)")
    return kernel_average_alignment(x, r)


def linear_directional_alignment(inputs: ArrayLike, targets: ArrayLike, theta: ArrayLike,
                                 direction: ArrayLike) -> FloatOrArray:
    """Closed-form beta(v) = [ (1/N) sum r_i^2 (v^T x_i)^2 - (v^T gbar)^2 ] / (2L (1/N) sum (v^T x_i)^2).

    ``direction`` (..., d); returns (...).  Requires L > 0 and X v != 0.
    """
    x, y = _check_linear_data(inputs, targets)
    r = _residuals(x, y, theta)
    v = _check_direction(direction, x.shape[1])
    two_l = float(np.mean(r * r))
    if two_l <= 0:
        raise ValueError("loss must be > 0 (theta interpolates the data)")
    p = v @ x.T  # (..., N) projections v^T x_i
    den = np.mean(p * p, axis=-1)
    if np.any(den <= 1e-14 * np.sum(v * v, axis=-1) * np.max(x * x)):
        raise ValueError("direction lies in the null space of G (X v = 0)")
    num = np.mean(r * r * p * p, axis=-1) - np.mean(r * p, axis=-1) ** 2
    return _out(num / (two_l * den))


def linear_alignment_bounds(inputs: ArrayLike) -> tuple[float, float]:
    """Deterministic bounds on mu for the least-squares model, valid for every theta and targets.

        lower = (N min_i (K^2)_ii - lambda_max(K)^2) / ||K||_F^2,
        upper =  N max_i (K^2)_ii / ||K||_F^2,                     K = X X^T.

    Proof (derived): Tr(Sigma_1 G) = (1/N) sum r_i^2 x_i^T G x_i - gbar^T G gbar, with
    x_i^T G x_i = (K^2)_ii / N, so the first term lies between min and max of
    (K^2)_ii / N times 2L; and 0 <= gbar^T G gbar = r^T K^2 r / N^3 <= lambda_max(K)^2 2L / N^2.
    Divide by 2L ||G||_F^2 = 2L ||K||_F^2 / N^2.  For isotropic Gaussian inputs with
    d >> N, (K^2)_ii ~ d^2 + (N-1) d, lambda_max(K) ~ d, ||K||_F^2 ~ N d^2, so
    lower -> 1 - 1/N: bounded away from zero however large d/N is.
    Returns (lower, upper) as floats.
    """
    x, _ = _check_linear_data(inputs)
    if not np.any(x):
        raise ValueError("inputs must not all be zero (G = 0)")
    return kernel_alignment_bounds(x)


def effective_dimension(input_cov: ArrayLike) -> float:
    """d_eff = Tr(S^2) / ||S||_2^2 (in [1, d]) of an input covariance S."""
    s = _checks.check_positive_semidefinite("input_cov", input_cov, tol=1e-9)
    lam = np.linalg.eigvalsh(s)
    if lam[-1] <= 0:
        raise ValueError("input_cov must be nonzero")
    return float(np.sum(lam**2) / lam[-1] ** 2)


def _pop_parts(input_cov, delta):
    s = _checks.check_positive_semidefinite("input_cov", input_cov, tol=1e-9)
    dl = np.asarray(delta, dtype=float)
    if dl.shape[-1:] != (s.shape[0],):
        raise ValueError(f"delta must have last axis of length d = {s.shape[0]}, got shape {dl.shape}")
    _checks.check_finite("delta", dl)
    sd = dl @ s  # (..., d) = S delta (S symmetric)
    quad = np.einsum("...i,...i->...", dl, sd)
    if np.any(quad <= 0):
        raise ValueError("delta must satisfy delta^T S delta > 0 (population loss > 0)")
    return s, dl, sd, quad


def linear_gaussian_population_alignment(input_cov: ArrayLike, delta: ArrayLike) -> FloatOrArray:
    """Population mu for x ~ N(0, S), noiseless labels, delta = theta - theta*.

    Isserlis: E[r^2 x x^T] = (delta^T S delta) S + 2 S delta delta^T S, so
    Sigma_1 = (delta^T S delta) S + S delta delta^T S, G = S, 2L = delta^T S delta and

        mu_pop = 1 + delta^T S^3 delta / (delta^T S delta * Tr S^2)  in [1, 1 + 1/d_eff].

    (derived; the N -> infinity limit of the finite-sample alignment).  ``delta`` (..., d).
    """
    s, dl, sd, quad = _pop_parts(input_cov, delta)
    s3 = np.einsum("...i,ij,...j->...", sd, s, sd)
    return _out(1.0 + s3 / (quad * np.sum(s * s)))


def linear_gaussian_population_directional(input_cov: ArrayLike, delta: ArrayLike,
                                           direction: ArrayLike) -> FloatOrArray:
    """Population beta(v) = 1 + (v^T S delta)^2 / (delta^T S delta * v^T S v)  in [1, 2] (derived).

    The upper bound 2 is Cauchy-Schwarz in the S inner product; equality for v = delta.
    """
    s, dl, sd, quad = _pop_parts(input_cov, delta)
    v = _check_direction(direction, s.shape[0])
    vsv = np.einsum("...i,ij,...j->...", v, s, v)
    if np.any(vsv <= 0):
        raise ValueError("direction lies in the null space of input_cov")
    return _out(1.0 + np.einsum("...i,...i->...", v, sd) ** 2 / (quad * vsv))


def linear_isotropic_expected_alignment(n_samples: ArrayLike, dim: ArrayLike,
                                        label_noise: ArrayLike = 0.0) -> FloatOrArray:
    """Ratio of expectations E[Tr(Sigma_1 G)] / E[2L ||G||_F^2] for isotropic Gaussian inputs.

    Assumptions (derived here, Isserlis' theorem; an analogue of the paper's sample-size
    / dimension conditions, which we could not read): x_i ~ N(0, I_d) iid, theta fixed
    (independent of the data), residual r_i = x_i^T delta + e_i with label noise
    e_i ~ N(0, rho ||delta||^2) (``label_noise`` = rho >= 0).  With N = n_samples, d = dim:

        A = [(d+2)(d+4) + (N-1)(d+2) + rho (d(d+2) + (N-1)d)] / N
        B = [(d+2)(d+4) + 3(N-1)(d+2) + (N-1)(N-2) + rho (d(d+2) + (N-1)d)] / N^2
        D = [(d+2)(d+4) + (N-1)d(d+2) + (N-1)(2(d+2) + (N-2)d)] / N^2
            + rho (d(d+2) + (N-1)d) / N
        ratio = (A - B) / D     (all terms in units of ||delta||^4).

    Limits: N -> inf, rho = 0: 1 + 1/d (= population value); d -> inf: 1 - 1/N; rho -> inf:
    1 - 1/N.  The realised mu concentrates on this ratio when N d is large (ratio of
    expectations, not the expectation of the ratio).  Works on arrays (broadcast).
    """
    _checks.check_positive("n_samples", n_samples)
    _checks.check_positive("dim", dim)
    _checks.check_nonnegative("label_noise", label_noise)
    n = np.asarray(n_samples, dtype=float)
    d = np.asarray(dim, dtype=float)
    rho = np.asarray(label_noise, dtype=float)
    noise_term = rho * (d * (d + 2) + (n - 1) * d)
    a = ((d + 2) * (d + 4) + (n - 1) * (d + 2)) / n + noise_term / n
    b = ((d + 2) * (d + 4) + 3 * (n - 1) * (d + 2) + (n - 1) * (n - 2)) / n**2 + noise_term / n**2
    den = ((d + 2) * (d + 4) + (n - 1) * d * (d + 2) + (n - 1) * (2 * (d + 2) + (n - 2) * d)) / n**2
    den = den + noise_term / n
    return _out((a - b) / den)


# ----------------------------------------------------------------------------- escape theory

class EscapeProfile(NamedTuple):
    """Second-moment escape mode of SGD near a minimum.

    ``growth``: spectral radius rho of the second-moment map M -> E[M'] (rho > 1: the minimum is
    linearly unstable in mean square, E||w_t||^2 ~ rho^t); ``eigvals``: Hessian eigenvalues,
    descending; ``fractions``: u_j^T M* u_j / Tr M* for the dominant (Perron) mode M*, i.e. the
    share of E||w||^2 carried by each Hessian eigendirection once the growing mode dominates.
    """

    growth: float
    eigvals: np.ndarray
    fractions: np.ndarray


def _check_lr_batch(lr, batch_size, n_samples=None):
    _checks.check_positive("lr", lr)
    _checks.check_batch_size(batch_size, n_samples)


def linear_sgd_second_moment_operator(inputs: ArrayLike, *, lr: ArrayLike, batch_size: ArrayLike,
                                      replacement: bool = True) -> FloatArray:
    """Exact map vec(M) -> vec(E[M']) of SGD on least squares at an interpolating minimum.

    With consistent targets (y = X theta*) and w = theta - theta*, one SGD step is
    w' = (I - lr A_B) w with A_B = (1/S) sum_{i in B} x_i x_i^T, so M = E[w w^T] obeys

        M' = (I - lr G) M (I - lr G) + lr^2 c ( (1/N) sum_i A_i M A_i - G M G ),

    c = 1/S (batches drawn with replacement) or (N - S)/(S (N - 1)) (without replacement).
    Returns the (d^2, d^2) matrix (row-major vec).  Derived (exact, no approximation).
    """
    x, _ = _check_linear_data(inputs)
    n, d = x.shape
    _check_lr_batch(lr, batch_size, None if replacement else n)
    # the rows vec(x_i x_iᵀ) (n, d²), and four (d², d²) matrices: the two Kronecker products, Zᵀ Z, the sum
    _checks.check_fits_memory("inputs", f"{n} x {d} array", 8.0 * (n * d * d + 4.0 * float(d) ** 4),
                              f"the (d², d²) second-moment operator of d = {d} inputs",
                              advice="use linear_sgd_escape_profile, which applies the operator without forming it")
    s = float(batch_size)
    c = 1.0 / s if replacement else (n - s) / (s * (n - 1)) if n > 1 else 0.0
    g = x.T @ x / n
    a = np.eye(d) - lr * g
    z = np.einsum("ni,nj->nij", x, x).reshape(n, d * d)  # rows vec(x_i x_i^T)
    # vec(A M A) = (A kron A) vec(M) for symmetric A (row-major)
    quad = z.T @ z / n
    return np.kron(a, a) + lr**2 * c * (quad - np.kron(g, g))


def _linear_second_moment_apply(x, lr, c):
    n, d = x.shape
    g = x.T @ x / n
    a = np.eye(d) - lr * g

    def apply(vec):
        m = vec.reshape(d, d)
        q = np.einsum("ni,ij,nj->n", x, m, x)  # x_i^T M x_i
        out = a @ m @ a + lr**2 * c * ((x.T * q) @ x / n - g @ m @ g)
        return out.ravel()

    return apply


def linear_sgd_escape_profile(inputs: ArrayLike, *, lr: ArrayLike, batch_size: ArrayLike,
                              replacement: bool = True) -> EscapeProfile:
    """Dominant second-moment mode of SGD at an interpolating least-squares minimum (exact).

    The Perron eigenvector of :func:`linear_sgd_second_moment_operator` (a positive map on
    PSD matrices, so its spectral radius is an eigenvalue with a PSD eigenvector) gives M*;
    its shares along the eigenvectors of G = H are the predicted squared overlaps of the
    escape displacement with each Hessian eigendirection (ratio of means over an ensemble).
    Full-batch GD (c = 0) puts all weight on the top eigenvector when lr lambda_max > 2 and
    the rest of the spectrum is stable.  Computed matrix-free (ARPACK on the d^2-dimensional
    map, applied in O(N d^2 + d^3)).
    """
    from scipy.sparse.linalg import LinearOperator, eigs

    x, _ = _check_linear_data(inputs)
    n, d = x.shape
    _check_lr_batch(lr, batch_size, None if replacement else n)
    s = float(batch_size)
    c = 1.0 / s if replacement else ((n - s) / (s * (n - 1)) if n > 1 else 0.0)
    apply = _linear_second_moment_apply(x, float(lr), c)
    if d * d <= 400:
        op = np.stack([apply(e) for e in np.eye(d * d)], axis=1)
        vals, vecs = np.linalg.eig(op)
        i = int(np.argmax(vals.real))
        rho, vec = float(vals[i].real), vecs[:, i].real
    else:
        lo = LinearOperator((d * d, d * d), matvec=apply, dtype=float)
        v0 = np.eye(d).ravel()
        vals, vecs = eigs(lo, k=1, which="LR", v0=v0, tol=1e-10, maxiter=20000)
        rho, vec = float(vals[0].real), vecs[:, 0].real
    m = vec.reshape(d, d)
    m = 0.5 * (m + m.T)
    if np.trace(m) < 0:
        m = -m
    lam, u = np.linalg.eigh(x.T @ x / n)
    lam, u = lam[::-1], u[:, ::-1]
    frac = np.einsum("ij,ik,kj->j", u, m, u) / np.trace(m)
    return EscapeProfile(rho, lam, frac)


def aligned_quadratic_escape_profile(eigvals: ArrayLike, *, lr: ArrayLike, batch_size: ArrayLike,
                                     alignment: ArrayLike = 1.0) -> EscapeProfile:
    """Escape mode of SGD on L = 1/2 w^T H w with perfectly aligned noise Sigma_1 = alignment * 2L * H.

    In the eigenbasis of H (eigenvalues lambda_j) the diagonal of M = E[w w^T] obeys

        m_j' = (1 - lr lambda_j)^2 m_j + (lr^2 alignment / S) lambda_j sum_k lambda_k m_k,

    (derived: E[2L] = Tr(H M)); the Perron vector of this nonnegative map is the escape mode.
    Flat directions receive m_j ~ lambda_j / (rho - (1 - lr lambda_j)^2) > 0: SGD escapes with
    substantial flat components, GD (alignment = 0) only along lambda_max.  This is the
    mechanism of Wang & Wu 2023 Sec. on escaping (reconstructed, not read from the paper).
    """
    lam = np.sort(np.asarray(eigvals, dtype=float).ravel())[::-1]
    _checks.check_positive("eigvals", lam)
    _check_lr_batch(lr, batch_size)
    _checks.check_nonnegative("alignment", alignment)
    t = np.diag((1.0 - lr * lam) ** 2) + (lr**2 * alignment / float(batch_size)) * np.outer(lam, lam)
    vals, vecs = np.linalg.eig(t)
    i = int(np.argmax(vals.real))
    v = np.abs(vecs[:, i].real)
    return EscapeProfile(float(vals[i].real), lam, v / v.sum())
