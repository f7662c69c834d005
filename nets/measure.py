"""Sharpness, gradient-noise and interpolation measurements on a trained network (issue 5).

These are the measurements behind §4.1 and App. F of the seed paper ("Three Factors Influencing
Minima in SGD"): the Hessian norm of a minimum (Fig. 1a, Table 1), the top Hessian eigenvalues,
the structure of the gradient covariance C (the paper assumes C = σ²I, eq. 2-3; these functions
measure how far that is from true) and the loss along the line θ(α) = (1−α)θ_a + αθ_b,
α ∈ [−1, 2] (Figs. 2, 3, 10-12).

Conventions shared by every function
------------------------------------
* Signature ``(model, loss_fn, inputs, targets, ...)``; tensors are already on the model's device.
  ``loss_fn(outputs, targets)`` must return the **mean** loss over the batch, L = (1/n) Σᵢ ℓᵢ
  (e.g. ``nn.CrossEntropyLoss()`` / ``nn.MSELoss()`` with ``reduction="mean"``), so that the
  loss of a chunk of size b, weighted by b/n and summed over chunks, is the full-data loss, and
  ``loss_fn`` on a batch of one sample is that sample's ℓᵢ.
* "The parameters" θ are the model's parameters with ``requires_grad=True``, in
  ``model.named_parameters()`` order, flattened with :func:`flatten_params` (p entries). Frozen
  parameters and buffers are held fixed.
* **BatchNorm convention: every measurement is taken with the model in eval mode** (BN uses its
  running statistics, dropout is off). In train mode a BN layer normalises with the statistics of
  the batch, so the loss of a sample depends on the other samples in its batch (and on the
  chunking), the loss is not a function of θ alone, and per-sample gradients are ill-defined.
  In eval mode L(θ) is a deterministic function of θ, per-sample gradients are well-defined, and
  chunking does not change any result. The train/eval flag of *every* submodule is restored
  afterwards (also on error), and running statistics are never updated by a measurement.
  BN layers with ``track_running_stats=False`` have no eval-mode statistics and are rejected.
* ``batch_size`` (or ``chunk``) only bounds memory: results do not depend on it beyond
  floating-point summation order.
* Randomness (probe vectors, start vectors) comes from ``numpy.random.default_rng(seed)``
  (a ``SeedSequence`` underneath) in float64, so the same seed gives the same probes whatever the
  thread count or device.
"""
from __future__ import annotations

import contextlib
import copy
import math
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from theory import _checks

__all__ = [
    "Estimate",
    "GradientNoiseStats",
    "InterpolationResult",
    "eval_mode",
    "flatten_params",
    "unflatten_like",
    "trainable_parameters",
    "loss_and_gradient",
    "evaluate",
    "hessian_vector_product",
    "hessian_vector_product_fd",
    "top_eigenpairs",
    "hessian_top_eigenvalues",
    "hutchinson_trace",
    "hutchinson_frobenius_sq",
    "hessian_trace_hutchinson",
    "hessian_frobenius_hutchinson",
    "hessian_norm_fd",
    "per_sample_gradients",
    "gradient_noise_stats",
    "recalibrate_bn",
    "interpolate",
    "MEASUREMENTS",
    "SPEC_OPTIONS",
    "SUBSET_DEFAULTS",
    "measurement_function",
    "check_measure_spec",
]

_BN_TYPES = (nn.modules.batchnorm._BatchNorm,)


# ----------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------
class Estimate(NamedTuple):
    """A Monte-Carlo estimate: ``value`` ± ``stderr`` (standard error) from ``n_samples`` probes."""

    value: float
    stderr: float
    n_samples: int


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block; restore every submodule's own flag afterwards.

    Restoring per submodule (not just ``model.train(was_training)``) keeps mixed states intact,
    e.g. a frozen BN layer kept in eval inside a model in train mode.
    """
    for m in model.modules():
        if isinstance(m, _BN_TYPES) and not m.track_running_stats:
            raise ValueError(
                f"model: BatchNorm layer {m!r} has track_running_stats=False; the eval-mode "
                "convention needs running statistics (see the module docstring)"
            )
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


def trainable_parameters(model: nn.Module) -> tuple[list[str], list[torch.Tensor]]:
    """Names and tensors of the parameters with ``requires_grad=True`` (the θ of this module)."""
    names, params = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            names.append(name)
            params.append(p)
    if not params:
        raise ValueError("model: has no parameter with requires_grad=True")
    return names, params


def _constants(model: nn.Module) -> dict[str, torch.Tensor]:
    """Frozen parameters and buffers: the part of the state held fixed in functional calls."""
    consts = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    consts.update({n: b for n, b in model.named_buffers()})
    return consts


def flatten_params(params: nn.Module | Iterable[torch.Tensor]) -> torch.Tensor:
    """Concatenate tensors (or a module's trainable parameters) into one detached 1-D vector."""
    if isinstance(params, nn.Module):
        params = trainable_parameters(params)[1]
    return torch.cat([t.detach().reshape(-1) for t in params])


def unflatten_like(flat: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Split a flat vector into tensors shaped like ``like`` (inverse of :func:`flatten_params`)."""
    total = sum(t.numel() for t in like)
    if flat.ndim != 1 or flat.numel() != total:
        raise ValueError(f"flat must be a 1-D tensor with {total} entries, got shape {tuple(flat.shape)}")
    out, i = [], 0
    for t in like:
        out.append(flat[i:i + t.numel()].view_as(t))
        i += t.numel()
    return out


def _chunks(n: int, batch_size: int | None) -> list[slice]:
    if batch_size is None:
        return [slice(0, n)]
    _checks.check_batch_size(batch_size)
    b = int(batch_size)
    return [slice(i, min(i + b, n)) for i in range(0, n, b)]


def _check_data(inputs: torch.Tensor, targets: torch.Tensor) -> int:
    if inputs.ndim < 1 or inputs.shape[0] < 1:
        raise ValueError(f"inputs must have a leading sample dimension of size >= 1, got {tuple(inputs.shape)}")
    if targets.shape[0] != inputs.shape[0]:
        raise ValueError(
            f"targets must have as many samples as inputs ({inputs.shape[0]}), got {targets.shape[0]}"
        )
    return int(inputs.shape[0])


def _as_vector(v, like: torch.Tensor, p: int, name: str = "v") -> torch.Tensor:
    v = torch.as_tensor(v)
    if v.ndim != 1 or v.numel() != p:
        raise ValueError(f"{name} must be a 1-D vector with {p} entries (number of parameters), got shape {tuple(v.shape)}")
    return v.to(device=like.device, dtype=like.dtype)


def _rng(seed) -> np.random.Generator:
    return np.random.default_rng(seed)


def _probe(rng: np.random.Generator, p: int, kind: str) -> np.ndarray:
    if kind == "rademacher":
        return rng.integers(0, 2, size=p).astype(np.float64) * 2.0 - 1.0
    if kind == "gaussian":
        return rng.standard_normal(p)
    raise ValueError(f"probe must be 'rademacher' or 'gaussian', got {kind!r}")


def _mean_se(samples: np.ndarray) -> tuple[float, float]:
    samples = np.asarray(samples, dtype=np.float64)
    m = float(samples.mean())
    se = float(samples.std(ddof=1) / math.sqrt(samples.size)) if samples.size > 1 else float("nan")
    return m, se


# ----------------------------------------------------------------------------------------------
# loss, gradient, Hessian-vector products
# ----------------------------------------------------------------------------------------------
def _params_dict(names, tensors) -> dict[str, torch.Tensor]:
    return dict(zip(names, tensors))


def loss_and_gradient(model, loss_fn, inputs, targets, *, flat_params=None, batch_size=None):
    """Full-data loss L(θ) and flat gradient ∇L(θ) (eval-mode BN, see module docstring).

    ``flat_params`` evaluates at another point θ' without touching the model (functional call).
    Returns ``(loss: float, grad: 1-D tensor of the parameters' dtype)``.
    """
    n = _check_data(inputs, targets)
    names, params = trainable_parameters(model)
    if flat_params is None:
        base = [p.detach() for p in params]
    else:
        base = unflatten_like(_as_vector(flat_params, params[0], sum(p.numel() for p in params), "flat_params"), params)
    consts = _constants(model)
    total_loss = 0.0
    total_grad = None
    with eval_mode(model):
        for sl in _chunks(n, batch_size):
            leaves = [t.detach().clone().requires_grad_(True) for t in base]
            w = (sl.stop - sl.start) / n
            out = functional_call(model, (_params_dict(names, leaves), consts), (inputs[sl],))
            loss = loss_fn(out, targets[sl]) * w
            g = torch.autograd.grad(loss, leaves, allow_unused=True)
            gflat = torch.cat([(torch.zeros_like(l) if t is None else t).reshape(-1) for t, l in zip(g, leaves)])
            total_grad = gflat if total_grad is None else total_grad + gflat
            total_loss += float(loss.detach())
    return total_loss, total_grad


def hessian_vector_product(model, loss_fn, inputs, targets, v, *, batch_size=None) -> torch.Tensor:
    """Exact Hessian-vector product H v, H = ∇²L(θ), by double backward (Pearlmutter's trick).

    Per chunk: g = ∇L_chunk (graph kept), then ∇(gᵀv); chunks are weighted by size/n and summed,
    so memory is bounded by one chunk. Eval-mode BN (module docstring). ``v`` is a flat vector
    (any float dtype; converted to the parameters' dtype); returns a flat tensor.
    """
    n = _check_data(inputs, targets)
    names, params = trainable_parameters(model)
    p = sum(t.numel() for t in params)
    v = _as_vector(v, params[0], p)
    vs = unflatten_like(v, params)
    consts = _constants(model)
    out_vec = torch.zeros(p, dtype=params[0].dtype, device=params[0].device)
    with eval_mode(model):
        for sl in _chunks(n, batch_size):
            leaves = [t.detach().clone().requires_grad_(True) for t in params]
            w = (sl.stop - sl.start) / n
            out = functional_call(model, (_params_dict(names, leaves), consts), (inputs[sl],))
            loss = loss_fn(out, targets[sl]) * w
            g = torch.autograd.grad(loss, leaves, create_graph=True, allow_unused=True)
            gv = sum((gi * vi).sum() for gi, vi in zip(g, vs) if gi is not None)
            if not (torch.is_tensor(gv) and gv.requires_grad):
                continue   # loss at most linear in θ on this chunk: zero Hessian contribution
            hv = torch.autograd.grad(gv, leaves, allow_unused=True)
            hv = [torch.zeros_like(l) if h is None else h for h, l in zip(hv, leaves)]
            out_vec += torch.cat([h.reshape(-1) for h in hv])
    return out_vec


def hessian_vector_product_fd(model, loss_fn, inputs, targets, v, *, eps=1e-3, batch_size=None) -> torch.Tensor:
    """Central finite-difference Hessian-vector product (first-order gradients only).

    With u = v/‖v‖ (a unit direction, so ``eps`` is the Euclidean length of the step in parameter
    space, independent of the number of parameters p):

        H v ≈ ‖v‖ · (∇L(θ + εu) − ∇L(θ − εu)) / (2ε),

    error = ‖v‖·ε²/6 · ∂³L[u, u, ·] + O(ε⁴) (second order in ε), plus rounding ~ macheps/ε.
    """
    _checks.check_positive("eps", eps)
    names, params = trainable_parameters(model)
    theta = flatten_params(params)
    v = _as_vector(v, theta, theta.numel())
    nv = torch.linalg.vector_norm(v)
    if float(nv) == 0.0:
        return torch.zeros_like(theta)
    u = v / nv
    _, gp = loss_and_gradient(model, loss_fn, inputs, targets, flat_params=theta + eps * u, batch_size=batch_size)
    _, gm = loss_and_gradient(model, loss_fn, inputs, targets, flat_params=theta - eps * u, batch_size=batch_size)
    return nv * (gp - gm) / (2.0 * eps)


def _num_params(model) -> tuple[int, torch.Tensor]:
    _, params = trainable_parameters(model)
    return sum(t.numel() for t in params), params[0]


def _numpy_matvec(torch_matvec: Callable[[torch.Tensor], torch.Tensor], like: torch.Tensor):
    def mv(x):
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        y = torch_matvec(torch.from_numpy(x).to(device=like.device, dtype=like.dtype))
        return y.detach().to("cpu", torch.float64).numpy()
    return mv


# ----------------------------------------------------------------------------------------------
# eigenvalues
# ----------------------------------------------------------------------------------------------
def top_eigenpairs(matvec: Callable[[np.ndarray], np.ndarray], dim: int, *, k=1, method="lanczos",
                   tol=1e-6, max_iter=None, seed=0):
    """Top-k eigenpairs of a symmetric operator given by ``matvec`` (float64 numpy in and out).

    * ``method="lanczos"``: implicitly restarted Lanczos, ``scipy.sparse.linalg.eigsh`` with
      ``which="LA"`` (the k algebraically largest eigenvalues), relative accuracy ``tol``,
      start vector from ``seed``.
    * ``method="power"``: power iteration with deflation (PyHessian's method): the j-th
      eigenpair is the dominant one of H − Σ_{i<j} λᵢuᵢuᵢᵀ. It finds the eigenvalues of
      **largest magnitude**, which coincide with the largest ones when the top of the spectrum
      dominates the most negative eigenvalue (true near a minimum). Stops when the residual
      ‖Hu − λu‖ ≤ tol·|λ|, which guarantees an eigenvalue of the deflated operator within
      tol·|λ| of λ. Non-convergence within ``max_iter`` (default 1000) raises a RuntimeWarning.

    Returns ``(eigenvalues (k,), eigenvectors (dim, k))`` as float64 numpy, eigenvalues sorted
    in decreasing order.
    """
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    _checks.check_positive("tol", tol)
    rng = _rng(seed)
    if method == "lanczos":
        if k >= dim:
            raise ValueError(f"k must be < number of parameters ({dim}) for Lanczos, got {k}")
        from scipy.sparse.linalg import LinearOperator, eigsh

        op = LinearOperator((dim, dim), matvec=matvec, dtype=np.float64)
        vals, vecs = eigsh(op, k=k, which="LA", tol=tol, maxiter=max_iter, v0=rng.standard_normal(dim))
        order = np.argsort(vals)[::-1]
        return vals[order], vecs[:, order]
    if method == "power":
        if k > dim:
            raise ValueError(f"k must be <= number of parameters ({dim}), got {k}")
        max_iter = 1000 if max_iter is None else int(max_iter)
        if max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {max_iter}")
        vals, vecs = [], []
        for j in range(k):
            u = rng.standard_normal(dim)
            u /= np.linalg.norm(u)
            lam = 0.0
            converged = False
            for _ in range(max_iter):
                w = matvec(u)
                for lam_i, u_i in zip(vals, vecs):
                    w = w - lam_i * u_i * (u_i @ u)
                lam = float(u @ w)
                res = np.linalg.norm(w - lam * u)
                nw = np.linalg.norm(w)
                if res <= tol * abs(lam) or nw == 0.0:
                    converged = True
                    break
                u = w / nw
            if not converged:
                warnings.warn(
                    f"power iteration for eigenpair {j + 1} did not converge in {max_iter} iterations "
                    f"(relative residual {res / max(abs(lam), 1e-300):.2e} > tol={tol})",
                    RuntimeWarning,
                    stacklevel=2,
                )
            vals.append(lam)
            vecs.append(u)
        vals = np.array(vals)
        vecs = np.stack(vecs, axis=1)
        order = np.argsort(vals)[::-1]
        return vals[order], vecs[:, order]
    raise ValueError(f"method must be 'lanczos' or 'power', got {method!r}")


def hessian_top_eigenvalues(model, loss_fn, inputs, targets, *, k=1, method="lanczos", tol=1e-6,
                            max_iter=None, seed=0, batch_size=None, return_eigenvectors=False):
    """Top-k eigenvalues of the loss Hessian H = ∇²L(θ) (sharpness, paper §4.1).

    Matrix-free: the operator v ↦ Hv (:func:`hessian_vector_product`, eval-mode BN) is wrapped in
    a float64 ``scipy.sparse.linalg.LinearOperator``; see :func:`top_eigenpairs` for the
    ``"lanczos"`` (``eigsh``, algebraically largest) and ``"power"`` (deflated power iteration,
    largest magnitude) methods. Returns eigenvalues (k,) in decreasing order, and with
    ``return_eigenvectors=True`` also the (p, k) float64 eigenvector matrix.

    ``tol`` (default 1e-6) should not be below the relative accuracy of one HVP: ~1e-6 for a
    float32 model (smaller values make Lanczos/power fail to converge), ~1e-14 for float64.
    """
    p, like = _num_params(model)
    mv = _numpy_matvec(lambda x: hessian_vector_product(model, loss_fn, inputs, targets, x, batch_size=batch_size), like)
    vals, vecs = top_eigenpairs(mv, p, k=k, method=method, tol=tol, max_iter=max_iter, seed=seed)
    return (vals, vecs) if return_eigenvectors else vals


# ----------------------------------------------------------------------------------------------
# stochastic trace / Frobenius norms
# ----------------------------------------------------------------------------------------------
def hutchinson_trace(matvec, dim: int, *, n_samples=100, seed=0, probe="rademacher") -> Estimate:
    """Hutchinson's estimator tr(A) ≈ (1/N) Σⱼ zⱼᵀAzⱼ, E[zzᵀ] = I (Rademacher or Gaussian z).

    Unbiased; the standard error is the sample standard deviation / √N. For Rademacher probes the
    per-probe variance is 2(‖A‖_F² − Σᵢ Aᵢᵢ²) (symmetric A), for Gaussian 2‖A‖_F².
    """
    n_samples = int(n_samples)
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2 (for a standard error), got {n_samples}")
    rng = _rng(seed)
    s = np.empty(n_samples)
    for j in range(n_samples):
        z = _probe(rng, dim, probe)
        s[j] = z @ matvec(z)
    return Estimate(*_mean_se(s), n_samples)


def hutchinson_frobenius_sq(matvec, dim: int, *, n_samples=100, seed=0, probe="rademacher") -> Estimate:
    """‖A‖_F² = tr(AᵀA) ≈ (1/N) Σⱼ ‖Azⱼ‖², E[zzᵀ] = I. Unbiased for ‖A‖_F²; SE = sd/√N."""
    n_samples = int(n_samples)
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2 (for a standard error), got {n_samples}")
    rng = _rng(seed)
    s = np.empty(n_samples)
    for j in range(n_samples):
        y = matvec(_probe(rng, dim, probe))
        s[j] = y @ y
    return Estimate(*_mean_se(s), n_samples)


def _sqrt_estimate(est: Estimate) -> Estimate:
    """√ of a positive estimate; SE by the delta method, se(√X) = se(X)/(2√X)."""
    val = math.sqrt(max(est.value, 0.0))
    se = est.stderr / (2.0 * val) if val > 0 else float("nan")
    return Estimate(val, se, est.n_samples)


def hessian_trace_hutchinson(model, loss_fn, inputs, targets, *, n_samples=100, seed=0,
                             batch_size=None) -> Estimate:
    """Tr H by Hutchinson with Rademacher probes and exact HVPs: Tr H ≈ (1/N)Σ zⱼᵀHzⱼ.

    Unbiased; returns ``Estimate(value, stderr, n_samples)``, stderr = sample sd/√N. Eval-mode BN.
    (For an OU process with C = H, E[L − L*] = (η/4S)·Tr H, see references.)
    """
    p, like = _num_params(model)
    mv = _numpy_matvec(lambda x: hessian_vector_product(model, loss_fn, inputs, targets, x, batch_size=batch_size), like)
    return hutchinson_trace(mv, p, n_samples=n_samples, seed=seed, probe="rademacher")


def hessian_frobenius_hutchinson(model, loss_fn, inputs, targets, *, n_samples=100, seed=0,
                                 batch_size=None) -> Estimate:
    """‖H‖_F from exact HVPs: ‖H‖_F² ≈ (1/N)Σ‖Hzⱼ‖² (Rademacher z), then √ (delta-method SE).

    The square root of the unbiased ‖H‖_F² estimate is biased low by O(1/N) (Jensen),
    negligible next to its O(1/√N) standard error.
    """
    p, like = _num_params(model)
    mv = _numpy_matvec(lambda x: hessian_vector_product(model, loss_fn, inputs, targets, x, batch_size=batch_size), like)
    return _sqrt_estimate(hutchinson_frobenius_sq(mv, p, n_samples=n_samples, seed=seed, probe="rademacher"))


def hessian_norm_fd(model, loss_fn, inputs, targets, *, n_samples=100, eps=1e-3, seed=0,
                    batch_size=None) -> Estimate:
    """The paper's "finite-difference Hessian norm" (§4.1, Fig. 1a, Table 1; after Wu et al. 2017).

    Wu et al. do not specify the estimator further; this project's choice is the Frobenius norm

        ‖H‖_F² = E_v ‖Hv‖²,  v ~ N(0, I),
        Hv ≈ ‖v‖ (∇L(θ + εu) − ∇L(θ − εu)) / (2ε),  u = v/‖v‖,

    i.e. only first-order gradients (two per probe), with the step of Euclidean length ``eps``
    along the probe direction (:func:`hessian_vector_product_fd`; the bias is O(ε²)). Returns
    ``Estimate(‖H‖_F, se)`` with the square root of the mean of ‖Hv‖² and the delta-method
    standard error se(√X) = se(X)/(2√X); the per-probe variance of ‖Hv‖² is 2‖H²‖_F².
    Eval-mode BN (module docstring). Choice of ``eps``: bias ∝ ε², rounding ∝ macheps·‖∇L‖/ε;
    1e-3 suits float32 models of O(1) curvature, float64 allows 1e-4 or less.
    :func:`hessian_frobenius_hutchinson` is the analogous estimator with exact HVPs (Rademacher).

    **Caveat for piecewise-linear activations (ReLU, the paper's Fig. 1 MLP).** The difference
    quotient crosses activation kinks: each crossing adds a gradient jump of O(1) divided by 2ε,
    and the chance of a crossing is O(ε), so E‖Ĥv‖² grows like 1/ε and the estimate like ε^(−1/2)
    instead of converging to the (almost-everywhere) Hessian that double backward gives.
    Measured on a 784-64-64-10 BN-ReLU MLP (256 samples, float64): exact ‖H‖_F ≈ 8.9, FD ≈ 88,
    253, 979, 5120 for ε = 1e-1, 1e-2, 1e-3, 1e-4 (tanh: FD = exact to 3 digits for every ε).
    So for ReLU networks the FD value is a smoothed curvature at scale ε, meaningful only at a
    fixed, reported ε; prefer :func:`hessian_frobenius_hutchinson` / Lanczos for the Hessian.
    """
    p, like = _num_params(model)
    mv = _numpy_matvec(
        lambda x: hessian_vector_product_fd(model, loss_fn, inputs, targets, x, eps=eps, batch_size=batch_size), like
    )
    return _sqrt_estimate(hutchinson_frobenius_sq(mv, p, n_samples=n_samples, seed=seed, probe="gaussian"))


# ----------------------------------------------------------------------------------------------
# per-sample gradients and gradient noise
# ----------------------------------------------------------------------------------------------
def per_sample_gradients(model, loss_fn, inputs, targets, *, chunk=None) -> torch.Tensor:
    """Per-sample gradients gᵢ = ∇ℓᵢ(θ) as an (n, p) tensor, via ``torch.func`` (vmap of grad).

    ℓᵢ is ``loss_fn`` applied to the single-sample batch (xᵢ, yᵢ). Eval-mode BN, so gᵢ depends on
    sample i only (module docstring). ``chunk`` samples are vmapped at a time (memory bound).
    """
    n = _check_data(inputs, targets)
    names, params = trainable_parameters(model)
    consts = _constants(model)
    pdict = {nm: t.detach() for nm, t in zip(names, params)}

    def loss_one(pd, x, y):
        out = functional_call(model, (pd, consts), (x.unsqueeze(0),))
        return loss_fn(out, y.unsqueeze(0))

    g_fn = vmap(grad(loss_one), in_dims=(None, 0, 0))
    rows = []
    with eval_mode(model):
        for sl in _chunks(n, chunk):
            gd = g_fn(pdict, inputs[sl], targets[sl])
            rows.append(torch.cat([gd[nm].reshape(sl.stop - sl.start, -1) for nm in names], dim=1))
    return torch.cat(rows, dim=0)


def _top_cov_eigs(D: torch.Tensor, k: int) -> tuple[np.ndarray, float]:
    """Top-k eigenvalues and Frobenius norm of C = (1/n) DᵀD from the smaller Gram matrix."""
    n, p = D.shape
    Dd = D.to(torch.float64)
    gram = (Dd @ Dd.T) / n if n <= p else (Dd.T @ Dd) / n   # same non-zero spectrum as C
    eig = torch.linalg.eigvalsh(gram).flip(0).cpu().numpy()
    eig = np.clip(eig, 0.0, None)
    return eig[:k], float(np.sqrt(np.sum(eig ** 2)))


@dataclass
class GradientNoiseStats:
    """Output of :func:`gradient_noise_stats` (all float64; see that docstring for definitions)."""

    n_samples: int
    loss: float
    trace_cov: float                 # tr C
    top_cov_eigenvalues: np.ndarray  # top-k eigenvalues of C, decreasing
    cov_frobenius: float             # ‖C‖_F (exact, from the Gram matrix)
    mean_grad_sq_norm: float         # ‖ḡ‖²
    b_simple: float                  # tr C / ‖ḡ‖²
    trace_cov_hessian: float = float("nan")      # Tr(C H)
    trace_cov_hessian_se: float = float("nan")   # 0 when every sample is used
    hessian_frobenius: float = float("nan")      # ‖H‖_F (Hutchinson)
    hessian_frobenius_se: float = float("nan")
    alignment: float = float("nan")              # Tr(CH)/(‖C‖_F‖H‖_F)
    alignment_se: float = float("nan")


def gradient_noise_stats(model, loss_fn, inputs, targets, *, k=5, alignment=True, n_probe=100,
                         max_alignment_samples=None, seed=0, chunk=None, batch_size=None) -> GradientNoiseStats:
    """Statistics of the per-sample gradient noise at θ (the C(θ) of the paper's SDE, §2).

    With gᵢ the per-sample gradients (:func:`per_sample_gradients`, eval-mode BN), ḡ = (1/n)Σgᵢ = ∇L
    and dᵢ = gᵢ − ḡ:

    * C = (1/n) Σ dᵢdᵢᵀ (population normalisation; the batch-size-1 noise covariance; the paper
      assumes C = σ²I, so tr C / p is the effective σ²);
    * ``trace_cov`` = tr C = (1/n)Σ‖dᵢ‖² (exact);
    * ``top_cov_eigenvalues``: top-k eigenvalues of C from the n×n Gram matrix (1/n)DDᵀ
      (or the p×p matrix when p < n), which has the same non-zero spectrum; ``cov_frobenius`` =
      ‖C‖_F from the same spectrum (exact);
    * ``mean_grad_sq_norm`` = ‖ḡ‖² and ``b_simple`` = tr C/‖ḡ‖², the simple gradient noise scale of
      McCandlish et al. (2018), here the plug-in value on the full data (their two-batch-size
      unbiased estimator is for when the full gradient is not available);
    * with ``alignment=True``: Tr(CH) = (1/n)Σ dᵢᵀHdᵢ by exact HVPs (all samples, or a uniform
      subsample of ``max_alignment_samples`` without replacement, SE with the finite-population
      correction); ‖H‖_F by Hutchinson (:func:`hessian_frobenius_hutchinson`, ``n_probe``
      Rademacher probes); ``alignment`` = Tr(CH)/(‖C‖_F‖H‖_F) ∈ [−1, 1] (cosine between C and H
      in the Frobenius inner product; 1 iff C ∝ H), SE by the delta method (relative errors of the
      two estimated factors added in quadrature). Cost: n (or m) + ``n_probe`` HVPs.

    Memory: the (n, p) per-sample gradient matrix is held in float64 (n·p·8 bytes, e.g. 1.2 GB for
    n = 128 and the 1.2M-parameter Fig. 1 MLP), so pass a subsample of the training set for large p.
    """
    n = _check_data(inputs, targets)
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    D = per_sample_gradients(model, loss_fn, inputs, targets, chunk=chunk).to(torch.float64)
    gbar = D.mean(dim=0)
    D -= gbar           # in place: one (n, p) float64 matrix, not two
    tr_c = float((D * D).sum() / n)
    top, fro_c = _top_cov_eigs(D, k)
    gsq = float(gbar @ gbar)
    loss, _ = loss_and_gradient(model, loss_fn, inputs, targets, batch_size=batch_size)
    res = GradientNoiseStats(
        n_samples=n, loss=loss, trace_cov=tr_c, top_cov_eigenvalues=top, cov_frobenius=fro_c,
        mean_grad_sq_norm=gsq, b_simple=tr_c / gsq if gsq > 0 else float("inf"),
    )
    if not alignment:
        return res
    seeds = np.random.SeedSequence(seed).spawn(2)
    if max_alignment_samples is None or int(max_alignment_samples) >= n:
        idx = np.arange(n)
    else:
        m = int(max_alignment_samples)
        if m < 2:
            raise ValueError(f"max_alignment_samples must be >= 2, got {max_alignment_samples}")
        idx = np.sort(np.random.default_rng(seeds[0]).choice(n, size=m, replace=False))
    _, params = trainable_parameters(model)
    q = np.empty(idx.size)
    for j, i in enumerate(idx):
        d = D[i].to(params[0].dtype)
        q[j] = float(d.to(torch.float64) @ hessian_vector_product(model, loss_fn, inputs, targets, d,
                                                                   batch_size=batch_size).to(torch.float64))
    t = float(q.mean())
    t_se = 0.0 if idx.size == n else float(q.std(ddof=1) / math.sqrt(idx.size) * math.sqrt(1 - idx.size / n))
    hf = hessian_frobenius_hutchinson(model, loss_fn, inputs, targets, n_samples=n_probe,
                                      seed=seeds[1], batch_size=batch_size)
    align = t / (fro_c * hf.value) if fro_c > 0 and hf.value > 0 else float("nan")
    rel = math.hypot(t_se / abs(t) if t != 0 else 0.0, hf.stderr / hf.value if hf.value > 0 else float("nan"))
    res.trace_cov_hessian, res.trace_cov_hessian_se = t, t_se
    res.hessian_frobenius, res.hessian_frobenius_se = hf.value, hf.stderr
    res.alignment, res.alignment_se = align, abs(align) * rel
    return res


# ----------------------------------------------------------------------------------------------
# evaluation and interpolation
# ----------------------------------------------------------------------------------------------
def _default_accuracy(out: torch.Tensor, targets: torch.Tensor) -> float:
    """Top-1 accuracy for classification (integer targets, (b, C) outputs); NaN otherwise."""
    if targets.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8) and out.ndim == 2:
        return float((out.argmax(dim=1) == targets).sum())
    return float("nan")


@torch.no_grad()
def evaluate(model, loss_fn, inputs, targets, *, batch_size=None) -> tuple[float, float]:
    """Mean loss and accuracy (NaN unless classification) on (inputs, targets) in eval mode."""
    n = _check_data(inputs, targets)
    total, correct = 0.0, 0.0
    with eval_mode(model):
        for sl in _chunks(n, batch_size):
            out = model(inputs[sl])
            total += float(loss_fn(out, targets[sl])) * (sl.stop - sl.start) / n
            correct += _default_accuracy(out, targets[sl])
    return total, correct / n


@torch.no_grad()
def recalibrate_bn(model: nn.Module, inputs: torch.Tensor, *, batch_size=None) -> nn.Module:
    """Recompute every BN layer's running statistics on ``inputs`` (in place; returns ``model``).

    Running statistics are reset, momentum is set to ``None`` (cumulative average over the
    chunks, PyTorch's convention), and the data are passed forward with only the BN layers in
    train mode (dropout etc. stay in eval). With one chunk the running mean/var are exactly the
    mean and the unbiased variance of each BN layer's input over ``inputs``; with several chunks,
    the averages of the per-chunk statistics. Momenta and train/eval flags are restored.
    """
    bns = [m for m in model.modules() if isinstance(m, _BN_TYPES)]
    if not bns:
        return model
    momenta = [m.momentum for m in bns]
    with eval_mode(model):
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        try:
            for sl in _chunks(int(inputs.shape[0]), batch_size):
                model(inputs[sl])
        finally:
            for m, mom in zip(bns, momenta):
                m.momentum = mom
    return model


@dataclass
class InterpolationResult:
    """Loss / accuracy along θ(α) = (1−α)θ_a + αθ_b (paper Figs. 2, 3, 10-12)."""

    alphas: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    n_clamped_var: np.ndarray  # per α: running-variance entries that were < 0 and set to 0
    bn_recalibrated: bool


def _state(x) -> Mapping[str, torch.Tensor]:
    return x.state_dict() if isinstance(x, nn.Module) else x


def interpolate(params_a, params_b, model, loss_fn, inputs, targets, alphas=None, *,
                bn_recalibrate=False, calibration_inputs=None, batch_size=None) -> InterpolationResult:
    """Loss and accuracy along the line θ(α) = (1−α)θ_a + αθ_b (Goodfellow et al. 2014; paper
    §4.1, Figs. 2-3: α ∈ [−1, 2], default ``np.linspace(-1, 2, 31)``; any finite α is allowed).

    ``params_a``/``params_b`` are state dicts (or modules, whose ``state_dict()`` is taken) for
    ``model``'s architecture; ``model`` itself is not modified (a deep copy is used).

    BatchNorm buffers (convention):
      * default: every floating-point entry of the state dict is interpolated with the same α —
        the parameters **and** the BN running mean/var (loss-landscapes keeps them fixed).
        Outside [0, 1] an extrapolated running variance can be negative; such entries are set
        to 0 (the layer's eps keeps the normalisation finite) and counted per α in
        ``n_clamped_var`` so that it is never silent. Integer buffers (``num_batches_tracked``)
        are taken from ``params_a``.
      * ``bn_recalibrate=True``: at each α the running statistics are recomputed on
        ``calibration_inputs`` (a subset of the training inputs; required) with
        :func:`recalibrate_bn`; the interpolated buffers are discarded.

    Evaluation is in eval mode (:func:`evaluate`). α = 0 and α = 1 reproduce the two models
    exactly, since (1−0)·a + 0·b = a and 0·a + 1·b = b in floating point.
    """
    _check_data(inputs, targets)
    if alphas is None:
        alphas = np.linspace(-1.0, 2.0, 31)
    alphas = np.atleast_1d(np.asarray(_checks.check_finite("alphas", alphas), dtype=np.float64))
    if bn_recalibrate and calibration_inputs is None:
        raise ValueError("calibration_inputs is required when bn_recalibrate=True (a training subset)")
    sa, sb = _state(params_a), _state(params_b)
    if set(sa) != set(sb):
        raise ValueError(f"params_a and params_b must have the same keys; differ in {sorted(set(sa) ^ set(sb))}")
    work = copy.deepcopy(model)
    ref = work.state_dict()
    if set(ref) != set(sa):
        raise ValueError(f"params_a does not match model's state dict; keys differ in {sorted(set(ref) ^ set(sa))}")
    losses, accs, clamped = [], [], []
    for a in alphas:
        a = float(a)
        new, nclamp = {}, 0
        for key, ta in sa.items():
            tb = sb[key]
            if torch.is_floating_point(ta):
                t = (1.0 - a) * ta + a * tb
                if key.endswith("running_var"):
                    neg = t < 0
                    nclamp += int(neg.sum())
                    t = torch.where(neg, torch.zeros_like(t), t)
                new[key] = t
            else:
                new[key] = ta.clone()
        work.load_state_dict(new)
        if bn_recalibrate:
            recalibrate_bn(work, calibration_inputs, batch_size=batch_size)
            nclamp = 0
        loss, acc = evaluate(work, loss_fn, inputs, targets, batch_size=batch_size)
        losses.append(loss)
        accs.append(acc)
        clamped.append(nclamp)
    return InterpolationResult(alphas, np.array(losses), np.array(accs), np.array(clamped), bool(bn_recalibrate))


# ----------------------------------------------------------------------------------------------
# measurement specs (``RunConfig.measure``, dispatched by ``nets.train.measure_model``)
# ----------------------------------------------------------------------------------------------
#: Measurement keys of a spec, in the order ``measure_model`` runs them. Each maps to a dict of
#: keyword arguments of the function of the same name (``hessian_top_eigenvalue`` is an alias of
#: ``hessian_top_eigenvalues``; ``alignment`` is :func:`nets.geometry.alignment_metrics` with the
#: cross-entropy loss).
MEASUREMENTS = (
    "hessian_frobenius_hutchinson",
    "hessian_trace_hutchinson",
    "hessian_top_eigenvalue",
    "hessian_top_eigenvalues",
    "hessian_norm_fd",
    "gradient_noise_stats",
    "alignment",
)
#: Spec keys that are options, not measurements: ``samples`` (size of the training subset, default
#: 1024), ``seed`` (which subset), ``at_best_val`` (also measure the best-validation state, Fig. 15).
SPEC_OPTIONS = ("samples", "seed", "at_best_val")
#: Measurements that hold the (n, p) per-sample gradient matrix in float64 run on the first
#: ``samples`` points of the subset (their own ``samples`` keyword), by default this many.
SUBSET_DEFAULTS = {"gradient_noise_stats": 128, "alignment": 128}
# keyword arguments a spec may not set: the data, the loss (cross-entropy) and JSON-unfriendly outputs
_FIXED_KWARGS = {"model", "loss_fn", "inputs", "targets", "loss", "return_eigenvectors"}


def _alignment(model, loss_fn, inputs, targets, **kw):
    from .geometry import alignment_metrics   # geometry imports this module: import lazily

    return alignment_metrics(model, inputs, targets, loss="ce", **kw)


def measurement_function(key: str) -> Callable:
    """The function a measurement key of a spec runs, called as ``fn(model, loss_fn, x, y, **kw)``."""
    if key not in MEASUREMENTS:
        raise ValueError(f"unknown measurement {key!r}; valid measurements: {', '.join(MEASUREMENTS)}")
    if key == "alignment":
        return _alignment
    if key == "hessian_top_eigenvalue":
        return hessian_top_eigenvalues
    return globals()[key]


def _keywords(key: str) -> set[str]:
    import inspect

    if key == "alignment":
        from .geometry import alignment_metrics
        fn = alignment_metrics
    else:
        fn = measurement_function(key)
    names = {n for n, prm in inspect.signature(fn).parameters.items()
             if prm.kind in (prm.KEYWORD_ONLY, prm.POSITIONAL_OR_KEYWORD)} - _FIXED_KWARGS
    return names | ({"samples"} if key in SUBSET_DEFAULTS else set())


def _check_samples(where: str, v) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{where} must be an integer >= 1, got {v!r}")


def check_measure_spec(spec) -> None:
    """Raise ``ValueError`` unless ``spec`` is a valid measurement spec (``RunConfig.measure``).

    Valid top-level keys are :data:`SPEC_OPTIONS` and :data:`MEASUREMENTS`; each measurement maps
    to ``None`` or a dict of keyword arguments of its function (checked by name against the
    signature, so a misspelt keyword is an error too). Call it when a run config is validated, so
    that a typo fails before training rather than after it (``measure_model`` calls it as well).
    """
    if not isinstance(spec, Mapping):
        raise ValueError(f"measure spec must be a dict, got {type(spec).__name__}")
    valid = SPEC_OPTIONS + MEASUREMENTS
    unknown = [k for k in spec if k not in valid]
    if unknown:
        import difflib

        hints = []
        for k in unknown:
            close = difflib.get_close_matches(str(k), valid, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(f"measure spec: unknown key(s) {', '.join(hints)}; valid keys: {', '.join(valid)}")
    if "samples" in spec:
        _check_samples("measure spec 'samples'", spec["samples"])
    if "seed" in spec and (isinstance(spec["seed"], bool) or not isinstance(spec["seed"], (int, np.integer))):
        raise ValueError(f"measure spec 'seed' must be an integer, got {spec['seed']!r}")
    for key in MEASUREMENTS:
        if key not in spec or spec[key] is None:
            continue
        kw = spec[key]
        if not isinstance(kw, Mapping):
            raise ValueError(f"measure spec {key!r} must be a dict of keyword arguments (or None), got {kw!r}")
        allowed = _keywords(key)
        bad = sorted(set(kw) - allowed)
        if bad:
            raise ValueError(f"measure spec {key!r}: unknown keyword(s) {', '.join(map(repr, bad))}; "
                             f"valid: {', '.join(sorted(allowed))}")
        if "samples" in kw:
            _check_samples(f"measure spec {key!r} 'samples'", kw["samples"])

