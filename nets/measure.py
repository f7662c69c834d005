"""Sharpness, gradient-noise and interpolation measurements on a trained network.

These are the measurements behind §4.1 and App. F of the seed paper ("Three Factors Influencing
Minima in SGD"): the Hessian norm of a minimum (Fig. 1a, Table 1), the top Hessian eigenvalues,
the structure of the gradient covariance C (the paper assumes C = σ²I, eq. 2-3; these functions
measure how far that is from true) and the loss along the line θ(α) = (1−α)θ_a + αθ_b,
α ∈ [−1, 2] (Figs. 2, 3, 10-12).

Public API: every function here works on any ``torch.nn.Module`` with a loss, on the model's own
device (CPU or CUDA), e.g.::

    import torch, nets.measure as M
    model = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    x, y = torch.randn(256, 10), torch.randint(0, 3, (256,))
    loss_fn = torch.nn.CrossEntropyLoss()
    top = M.hessian_top_eigenvalues(model, loss_fn, x, y, k=2, tol=1e-4, return_info=True)
    top.eigenvalues, top.converged, top.iterations          # never a silent non-converged result
    M.hessian_frobenius_hutchinson(model, loss_fn, x, y, n_samples=50)  # Estimate(value, stderr, n)
    M.gradient_noise_stats(model, loss_fn, x[:64], y[:64], k=3, n_probe=20)

Conventions shared by every function
------------------------------------
* Signature ``(model, loss_fn, inputs, targets, ...)``. ``inputs``/``targets`` are moved to the
  model's device; floating-point ones are converted to the dtype of the model's parameters (so
  float64 data may be passed to a float32 model) and integer targets to int64; NaN or inf in
  them is an error naming the argument. ``loss_fn(outputs, targets)`` must return the **mean**
  loss over the batch, L = (1/n) Σᵢ ℓᵢ (e.g. ``nn.CrossEntropyLoss()`` / ``nn.MSELoss()`` with
  ``reduction="mean"``), so that the loss of a chunk of size b, weighted by b/n and summed over
  chunks, is the full-data loss, and ``loss_fn`` on a batch of one sample is that sample's ℓᵢ.
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
  (PCG64 seeded by a ``SeedSequence``) and is generated on the host, in float64, then moved to
  the device once per vector: the same seed gives the same probes whatever the device or thread
  count.

Device and numerics policy
--------------------------
* Everything runs on the model's device in torch: Hessian- and Gauss-Newton-vector products in
  the parameters' dtype; probes, Lanczos bases and tridiagonal coefficients, per-sample gradient
  matrices and every sum of many terms (quadratic forms, Hutchinson samples, covariance traces)
  in float64. Per-probe results stay on the device; an estimator copies them to the host once,
  at its end (no host synchronisation per probe). Only the Lanczos convergence test reads two
  numbers per iteration. ``method="scipy"`` (ARPACK ``eigsh``, the host float64 reference) is
  kept as a cross-check.
* **TF32 is off during every measurement** (:func:`measurement_precision`): on Ampere-or-newer
  GPUs PyTorch may run float32 matmuls/convolutions in TF32 (10-bit mantissa, relative
  resolution ~1e-3), far too coarse for curvature, e.g. the finite-difference Hessian norm with
  ε = 1e-3 differences gradients that agree to ~1e-3. The previous TF32 settings are restored
  afterwards, also on error.
"""
from __future__ import annotations

import contextlib
import copy
import math
import threading
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
    "Eigenpairs",
    "GradientNoiseStats",
    "InterpolationResult",
    "measurement_precision",
    "eval_mode",
    "flatten_params",
    "unflatten_like",
    "trainable_parameters",
    "loss_and_gradient",
    "evaluate",
    "hessian_vector_product",
    "hessian_vector_product_fd",
    "lanczos",
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
]

_BN_TYPES = (nn.modules.batchnorm._BatchNorm,)
F64 = torch.float64


# ----------------------------------------------------------------------------------------------
# numerics policy: TF32 off while measuring
# ----------------------------------------------------------------------------------------------
_PRECISION_LOCK = threading.Lock()
_PRECISION_DEPTH = 0
_PRECISION_SAVED: tuple | None = None
# the per-backend precision switches of PyTorch's newer API (absent in older versions)
_NEW_API = (("cuda", "matmul"), ("cudnn", "conv"), ("cudnn", "rnn"))


def _save_and_disable_tf32() -> tuple:
    b = torch.backends
    try:
        saved = ("legacy", b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32, torch.get_float32_matmul_precision())
    except RuntimeError:
        # the process set TF32 through the per-backend API; PyTorch refuses to read (and then to
        # mix in) the legacy flags, so save and switch through that API instead
        saved = ("new",) + tuple(getattr(getattr(b, m), s).fp32_precision for m, s in _NEW_API)
        for m, s in _NEW_API:
            getattr(getattr(b, m), s).fp32_precision = "ieee"
        return saved
    torch.set_float32_matmul_precision("highest")
    b.cuda.matmul.allow_tf32 = False
    b.cudnn.allow_tf32 = False
    return saved


def _restore_tf32(saved: tuple) -> None:
    b = torch.backends
    if saved[0] == "legacy":
        _, matmul, cudnn, precision = saved
        torch.set_float32_matmul_precision(precision)   # sets matmul.allow_tf32 as a side effect,
        b.cuda.matmul.allow_tf32 = matmul                # so the flags are written after it
        b.cudnn.allow_tf32 = cudnn
    else:
        for (m, s), value in zip(_NEW_API, saved[1:]):
            getattr(getattr(b, m), s).fp32_precision = value


@contextlib.contextmanager
def measurement_precision() -> Iterator[None]:
    """Run the block with TF32 off for CUDA matmuls and cuDNN (module docstring).

    Sets ``torch.backends.cuda.matmul.allow_tf32 = False``, ``torch.backends.cudnn.allow_tf32 =
    False`` and ``torch.set_float32_matmul_precision("highest")`` (or, where the process uses
    PyTorch's per-backend ``fp32_precision`` API, ``"ieee"`` for CUDA matmul and cuDNN conv/rnn),
    and restores the previous values when the block ends, also on error. Re-entrant and
    thread-safe: nested or concurrent blocks share one setting, restored when the last one ends
    (so code running in another thread meanwhile also gets full float32, never less).
    Every measurement function of this module runs under it.
    """
    global _PRECISION_DEPTH, _PRECISION_SAVED
    with _PRECISION_LOCK:
        if _PRECISION_DEPTH == 0:
            _PRECISION_SAVED = _save_and_disable_tf32()
        _PRECISION_DEPTH += 1
    try:
        yield
    finally:
        with _PRECISION_LOCK:
            _PRECISION_DEPTH -= 1
            if _PRECISION_DEPTH == 0:
                _restore_tf32(_PRECISION_SAVED)
                _PRECISION_SAVED = None


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


@contextlib.contextmanager
def _measuring(model: nn.Module) -> Iterator[None]:
    """The context of every measurement: TF32 off and the model in eval mode."""
    with measurement_precision(), eval_mode(model):
        yield


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


def _as_tensor(name: str, value, like: torch.Tensor, *, targets: bool = False) -> torch.Tensor:
    """``value`` on ``like``'s device; floating point in ``like``'s dtype, integer targets int64."""
    if not torch.is_tensor(value):
        try:
            value = torch.as_tensor(np.asarray(value))
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"{name} must be a tensor or an array of numbers, got {type(value).__name__}") from exc
    if value.is_floating_point():
        value = value.to(device=like.device, dtype=like.dtype)
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name} contains NaN or inf; expected finite values")
        return value
    if targets and not value.is_complex() and value.dtype != torch.bool:
        return value.to(device=like.device, dtype=torch.int64)
    return value.to(device=like.device)


def _prepare(model: nn.Module, inputs, targets=None):
    """Inputs (and targets) on the model's device and in its dtype (that of its first parameter),
    with matching sample counts.

    Returns ``(inputs, targets)``, or ``inputs`` alone when ``targets`` is None.
    """
    like = next(iter(model.parameters()), None)
    if like is None:
        like = next(iter(model.buffers()), torch.empty(0))
    inputs = _as_tensor("inputs", inputs, like)
    if inputs.ndim < 1 or inputs.shape[0] < 1:
        raise ValueError(f"inputs must have a leading sample dimension of size >= 1, got {tuple(inputs.shape)}")
    if targets is None:
        return inputs
    targets = _as_tensor("targets", targets, like, targets=True)
    if targets.ndim < 1 or targets.shape[0] != inputs.shape[0]:
        raise ValueError(
            f"targets must have as many samples as inputs ({inputs.shape[0]}), got shape {tuple(targets.shape)}"
        )
    return inputs, targets


def _as_vector(v, like: torch.Tensor, p: int, name: str = "v") -> torch.Tensor:
    v = torch.as_tensor(v)
    if v.ndim != 1 or v.numel() != p:
        raise ValueError(f"{name} must be a 1-D vector with {p} entries (number of parameters), got shape {tuple(v.shape)}")
    return v.to(device=like.device, dtype=like.dtype)


class _Probes:
    """Probe and start vectors: numpy's PCG64 stream from ``seed`` (int or ``SeedSequence``),
    generated on the host in float64 and moved to ``device`` once each, so the same seed gives
    the same vectors on every device. Rademacher signs are the stream's bits (one bit per entry,
    copied as bytes); Gaussian entries are ``Generator.standard_normal``."""

    def __init__(self, seed, dim: int, device):
        self.rng = np.random.default_rng(seed)
        self.dim = int(dim)
        self.device = torch.device(device)

    def _to_device(self, host: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(host)
        if self.device.type == "cuda":
            # a plain copy from pageable memory would wait for the queued device work (a host
            # synchronisation per probe); a pinned staging copy lets it run asynchronously
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def rademacher(self) -> torch.Tensor:
        bits = np.unpackbits(np.frombuffer(self.rng.bytes((self.dim + 7) // 8), dtype=np.uint8), count=self.dim)
        return self._to_device(bits).to(F64) * 2.0 - 1.0

    def gaussian(self) -> torch.Tensor:
        return self._to_device(self.rng.standard_normal(self.dim))

    def draw(self, kind: str) -> torch.Tensor:
        if kind == "rademacher":
            return self.rademacher()
        if kind == "gaussian":
            return self.gaussian()
        raise ValueError(f"probe must be 'rademacher' or 'gaussian', got {kind!r}")


def _mean_se(samples: torch.Tensor) -> tuple[float, float]:
    """Mean and standard error (sample sd/√N) of float64 samples; one host copy."""
    s = samples.detach().to("cpu", F64).numpy()
    m = float(s.mean())
    se = float(s.std(ddof=1) / math.sqrt(s.size)) if s.size > 1 else float("nan")
    return m, se


def _device_of(device, default="cpu") -> torch.device:
    return torch.device(default if device is None else device)


# ----------------------------------------------------------------------------------------------
# loss, gradient, Hessian-vector products (operators: no checks and no host sync inside)
# ----------------------------------------------------------------------------------------------
def _gradient_operator(model, loss_fn, inputs, targets, batch_size):
    """θ' ↦ (L(θ'), ∇L(θ')) as (float64 device scalar, flat tensor); θ' flat, None for the model's θ.
    To be called in eval mode (:func:`_measuring`)."""
    names, params = trainable_parameters(model)
    consts = _constants(model)
    n = int(inputs.shape[0])
    chunks = _chunks(n, batch_size)

    def gradient(flat_params=None):
        base = [t.detach() for t in params] if flat_params is None else unflatten_like(flat_params, params)
        total_loss = torch.zeros((), dtype=F64, device=params[0].device)
        total_grad = None
        for sl in chunks:
            leaves = [t.detach().requires_grad_(True) for t in base]
            out = functional_call(model, (dict(zip(names, leaves)), consts), (inputs[sl],))
            loss = loss_fn(out, targets[sl]) * ((sl.stop - sl.start) / n)
            g = torch.autograd.grad(loss, leaves, allow_unused=True)
            gflat = torch.cat([(torch.zeros_like(l) if t is None else t).reshape(-1) for t, l in zip(g, leaves)])
            total_grad = gflat if total_grad is None else total_grad + gflat
            total_loss += loss.detach().to(F64)
        return total_loss, total_grad

    return gradient


def _hvp_operator(model, loss_fn, inputs, targets, batch_size):
    """v ↦ Hv (v flat, in the parameters' dtype and device) by double backward; eval mode."""
    names, params = trainable_parameters(model)
    consts = _constants(model)
    n = int(inputs.shape[0])
    p = sum(t.numel() for t in params)
    chunks = _chunks(n, batch_size)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        vs = unflatten_like(v, params)
        out_vec = torch.zeros(p, dtype=params[0].dtype, device=params[0].device)
        for sl in chunks:
            leaves = [t.detach().requires_grad_(True) for t in params]
            out = functional_call(model, (dict(zip(names, leaves)), consts), (inputs[sl],))
            loss = loss_fn(out, targets[sl]) * ((sl.stop - sl.start) / n)
            g = torch.autograd.grad(loss, leaves, create_graph=True, allow_unused=True)
            gv = sum((gi * vi).sum() for gi, vi in zip(g, vs) if gi is not None)
            if not (torch.is_tensor(gv) and gv.requires_grad):
                continue   # loss at most linear in θ on this chunk: zero Hessian contribution
            hv = torch.autograd.grad(gv, leaves, allow_unused=True)
            out_vec += torch.cat([(torch.zeros_like(l) if h is None else h).reshape(-1) for h, l in zip(hv, leaves)])
        return out_vec

    return hvp


def _fd_hvp_operator(model, loss_fn, inputs, targets, eps, batch_size):
    """v ↦ ‖v‖ (∇L(θ + εu) − ∇L(θ − εu)) / (2ε), u = v/‖v‖ (v in the parameters' dtype); eval mode."""
    gradient = _gradient_operator(model, loss_fn, inputs, targets, batch_size)
    theta = flatten_params(model)

    def fd_hvp(v: torch.Tensor) -> torch.Tensor:
        nv = torch.linalg.vector_norm(v)
        u = v / torch.clamp(nv, min=torch.finfo(v.dtype).tiny)   # v = 0 gives u = 0 and Hv = 0, no sync
        _, gp = gradient(theta + eps * u)
        _, gm = gradient(theta - eps * u)
        return nv * (gp - gm) / (2.0 * eps)

    return fd_hvp


def loss_and_gradient(model, loss_fn, inputs, targets, *, flat_params=None, batch_size=None):
    """Full-data loss L(θ) and flat gradient ∇L(θ) (eval-mode BN, see module docstring).

    ``flat_params`` evaluates at another point θ' without touching the model (functional call).
    Returns ``(loss: float, grad: 1-D tensor of the parameters' dtype)``.
    """
    with _measuring(model):
        inputs, targets = _prepare(model, inputs, targets)
        if flat_params is not None:
            theta = flatten_params(model)
            flat_params = _as_vector(flat_params, theta, theta.numel(), "flat_params")
        loss, g = _gradient_operator(model, loss_fn, inputs, targets, batch_size)(flat_params)
    return float(loss), g


def hessian_vector_product(model, loss_fn, inputs, targets, v, *, batch_size=None) -> torch.Tensor:
    """Exact Hessian-vector product H v, H = ∇²L(θ), by double backward (Pearlmutter 1994).

    Per chunk: g = ∇L_chunk (graph kept), then ∇(gᵀv); chunks are weighted by size/n and summed,
    so memory is bounded by one chunk. Eval-mode BN (module docstring). ``v`` is a flat vector
    (any float dtype; converted to the parameters' dtype); returns a flat tensor.
    """
    with _measuring(model):
        inputs, targets = _prepare(model, inputs, targets)
        theta = flatten_params(model)
        v = _as_vector(v, theta, theta.numel())
        return _hvp_operator(model, loss_fn, inputs, targets, batch_size)(v)


def hessian_vector_product_fd(model, loss_fn, inputs, targets, v, *, eps=1e-3, batch_size=None) -> torch.Tensor:
    """Central finite-difference Hessian-vector product (first-order gradients only).

    With u = v/‖v‖ (a unit direction, so ``eps`` is the Euclidean length of the step in parameter
    space, independent of the number of parameters p):

        H v ≈ ‖v‖ · (∇L(θ + εu) − ∇L(θ − εu)) / (2ε),

    error = ‖v‖·ε²/6 · ∂³L[u, u, ·] + O(ε⁴) (second order in ε), plus rounding ~ macheps/ε.
    """
    _checks.check_positive("eps", eps)
    with _measuring(model):
        inputs, targets = _prepare(model, inputs, targets)
        theta = flatten_params(model)
        v = _as_vector(v, theta, theta.numel())
        return _fd_hvp_operator(model, loss_fn, inputs, targets, eps, batch_size)(v)


def _num_params(model) -> tuple[int, torch.Tensor]:
    _, params = trainable_parameters(model)
    return sum(t.numel() for t in params), params[0]


# ----------------------------------------------------------------------------------------------
# eigenvalues
# ----------------------------------------------------------------------------------------------
@dataclass
class Eigenpairs:
    """Top eigenpairs of a symmetric operator and how they were obtained.

    ``eigenvalues`` (k,) float64, decreasing; ``eigenvectors`` (p, k) float64 on the operator's
    device, orthonormal columns; ``converged``: every requested pair met the stated test;
    ``iterations``: Lanczos steps, power steps (all pairs), or operator applications (ARPACK);
    ``residuals`` (k,): ‖A y_i − θ_i y_i‖ (for Lanczos the Ritz estimate |β_m s_mi|, exact up to
    the rounding of the products); ``method``: ``"lanczos"``, ``"scipy"`` or ``"power"``.
    """

    eigenvalues: np.ndarray
    eigenvectors: torch.Tensor
    converged: bool
    iterations: int
    residuals: np.ndarray
    method: str

    def summary(self) -> dict:
        """The convergence record without the vectors (JSON-friendly)."""
        return dict(method=self.method, converged=bool(self.converged), iterations=int(self.iterations),
                    residuals=[float(r) for r in self.residuals])


class _Basis:
    """Rows of orthonormal float64 vectors on a device, grown by doubling (no max_iter×p upfront)."""

    def __init__(self, dim: int, device, capacity: int):
        self.data = torch.empty((max(1, min(capacity, 32)), dim), dtype=F64, device=device)
        self.capacity = capacity
        self.m = 0

    def append(self, q: torch.Tensor) -> None:
        if self.m == self.data.shape[0]:
            rows = min(2 * self.m, self.capacity)
            grown = torch.empty((rows, self.data.shape[1]), dtype=F64, device=self.data.device)
            grown[:self.m] = self.data
            self.data = grown
        self.data[self.m] = q
        self.m += 1

    def rows(self) -> torch.Tensor:
        return self.data[:self.m]

    def project_out(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(w − V Vᵀw, Vᵀw): one classical Gram-Schmidt pass against every row."""
        V = self.rows()
        h = V @ w
        return w - V.T @ h, h

    def orthogonalise(self, w: torch.Tensor) -> torch.Tensor:
        """w made orthogonal to the rows by two passes (twice is enough: Giraud et al. 2005)."""
        return self.project_out(self.project_out(w)[0])[0]


def lanczos(matvec: Callable[[torch.Tensor], torch.Tensor], dim: int, *, k=1, tol=1e-6, max_iter=None, seed=0,
            device=None, dtype=F64) -> Eigenpairs:
    """The k algebraically largest eigenpairs of a symmetric operator by Lanczos on the device.

    Lanczos (Golub & Van Loan, Matrix Computations, 4th ed., §10.1) with full reorthogonalisation
    (§10.3.1): the basis q₁, q₂, … and the tridiagonal T_m (αⱼ = qⱼᵀAqⱼ, βⱼ = ‖rⱼ‖) are kept in
    float64 on ``device``; after the three-term recurrence each new vector is orthogonalised
    against the whole basis, a second time when that pass cancels more than half of its norm
    (Kahan's criterion, Parlett, The Symmetric Eigenvalue Problem, §6.9), so the basis stays
    orthonormal to float64 precision and no spurious copies of converged eigenvalues appear.
    ``matvec`` receives a (dim,) tensor of ``dtype`` on ``device`` (the model's dtype, so the
    products run at the model's precision) and returns a (dim,) tensor of any float dtype.

    Convergence test (that of ARPACK): with T_m = S diag(θ) Sᵀ, the Ritz pair (θᵢ, V_m sᵢ) has
    residual ‖A V_m sᵢ − θᵢ V_m sᵢ‖ = β_m |s_mi|; the top k pairs are converged when every one has

        β_m |s_mi| ≤ tol · max(|θᵢ|, ε₆₄^(2/3) ‖T_m‖₂),

    the floor only mattering for eigenvalues ~1e-11 of the spectral norm. Then each θᵢ lies within
    tol·|θᵢ| of an eigenvalue of A (and within (β_m s_mi)²/gap when separated by ``gap``). The
    test is made after every step; ``max_iter`` (default min(dim, 200)) caps the steps, and so the
    basis memory, (max_iter + 1)·dim·8 bytes. If β_m vanishes (β_m ≤ 1e3·ε₆₄‖T_m‖: an invariant
    subspace, e.g. of an operator with repeated eigenvalues or of rank < k) the iteration restarts
    from a fresh random vector orthogonal to the basis, and stops when a restarted block adds no
    eigenvalue to the top k: this finds the copies of a repeated eigenvalue that one Krylov space
    cannot hold (without such an exact breakdown a single-vector method, ARPACK included, may
    miss copies of an exactly repeated eigenvalue). A result that does not meet the test within
    ``max_iter`` steps has ``converged=False`` and a ``RuntimeWarning`` is issued, never silently.

    The start vector is Gaussian from ``seed`` (:class:`_Probes`), the one ``method="scipy"``
    of :func:`top_eigenpairs` uses as well. Host synchronisation: one read of (αⱼ, βⱼ) per step
    (two when a second orthogonalisation pass is needed).
    """
    k, dim = int(k), int(dim)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k >= dim:
        raise ValueError(f"k must be < number of parameters ({dim}) for Lanczos, got {k}")
    _checks.check_positive("tol", tol)
    max_iter = min(dim, 200) if max_iter is None else min(int(max_iter), dim)
    if max_iter < k:
        raise ValueError(f"max_iter must be >= k = {k} (one Lanczos step per Ritz value at least), got {max_iter}")
    from scipy.linalg import eigh_tridiagonal

    device = _device_of(device)
    probes = _Probes(seed, dim, device)
    eps = np.finfo(np.float64).eps
    floor_rel = eps ** (2.0 / 3.0)
    basis = _Basis(dim, device, max_iter + 1)
    q = probes.gaussian()
    basis.append(q / torch.linalg.vector_norm(q))
    alphas: list[float] = []
    betas: list[float] = []
    converged = False
    earlier_theta = None   # Ritz values of the Krylov blocks before the latest restart
    dropped = 0.0          # largest β set to 0 at a restart: a perturbation of A of that norm
    for j in range(max_iter):
        q = basis.rows()[j]
        w = matvec(q.to(dtype)).to(F64)
        alpha_t = q @ w
        w = w - alpha_t * q                         # three-term recurrence ...
        if j > 0:
            w = w - betas[-1] * basis.rows()[j - 1]
        norm_before = torch.linalg.vector_norm(w)
        w, h = basis.project_out(w)                 # ... then full reorthogonalisation
        beta_t = torch.linalg.vector_norm(w)
        alpha, beta, before = torch.stack([alpha_t + h[j], beta_t, norm_before]).tolist()   # one sync
        if beta < before / math.sqrt(2.0):
            # the pass cancelled much of w, so rounding may have left components along the
            # basis: a second pass (Kahan's criterion, Parlett §6.9)
            w, h = basis.project_out(w)
            beta_t = torch.linalg.vector_norm(w)
            alpha, beta = alpha + float(h[j]), float(beta_t)
        alphas.append(alpha)
        m = j + 1
        theta, S = eigh_tridiagonal(np.array(alphas), np.array(betas))
        tnorm = float(np.max(np.abs(theta)))
        top = np.argsort(theta)[::-1][:k]
        residuals = beta * np.abs(S[-1, top]) + dropped
        bound = tol * np.maximum(np.abs(theta[top]), floor_rel * tnorm)
        if m == dim:                       # the whole space: T is A in the Lanczos basis
            converged = True
            break
        if beta <= 1e3 * eps * tnorm:
            # invariant subspace. A random start vector has a component along every eigenspace,
            # so only further copies of repeated eigenvalues can be missing: restart from a
            # fresh direction orthogonal to the basis (β = 0 splits T into blocks) until a block
            # adds nothing to the top k.
            if m >= k and earlier_theta is not None and _same_top(earlier_theta, theta, k, bound):
                converged = True
                break
            if m == max_iter:
                break
            earlier_theta, dropped = theta, max(dropped, beta)
            w = basis.orthogonalise(probes.gaussian())
            beta_t, beta = torch.linalg.vector_norm(w), 0.0
        elif m >= k and np.all(residuals <= bound):
            converged = True
            break
        elif m == max_iter:
            break
        betas.append(beta)
        basis.append(w / beta_t)
    order = top
    vecs = basis.rows()[:m].T @ torch.from_numpy(np.ascontiguousarray(S[:, order])).to(device)
    res = Eigenpairs(theta[order].copy(), vecs, converged, m, np.asarray(residuals, dtype=np.float64), "lanczos")
    if not converged:
        _warn_not_converged(res, tol)
    return res


def _same_top(earlier: np.ndarray, theta: np.ndarray, k: int, bound: np.ndarray) -> bool:
    """Whether the top k of ``theta`` equal those of ``earlier`` (padded with −∞) within ``bound``."""
    a = np.concatenate([np.sort(earlier)[::-1][:k], np.full(max(0, k - earlier.size), -np.inf)])
    return bool(np.all(np.abs(np.sort(theta)[::-1][:k] - a) <= bound))


def _warn_not_converged(res: Eigenpairs, tol: float) -> None:
    rel = np.max(res.residuals / np.maximum(np.abs(res.eigenvalues), 1e-300)) if res.residuals.size else float("nan")
    warnings.warn(
        f"{res.method} did not converge in {res.iterations} iterations "
        f"(largest relative residual {rel:.2e} > tol={tol}); eigenvalues are approximate",
        RuntimeWarning,
        stacklevel=3,
    )


def _scipy_eigsh(matvec, dim, k, tol, max_iter, seed, device, dtype) -> Eigenpairs:
    """ARPACK (``scipy.sparse.linalg.eigsh``, which="LA") on the host in float64: the reference."""
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    if k >= dim:
        raise ValueError(f"k must be < number of parameters ({dim}) for Lanczos, got {k}")
    count = [0]

    def mv(x):
        count[0] += 1
        y = matvec(torch.from_numpy(np.asarray(x, dtype=np.float64).reshape(-1)).to(device=device, dtype=dtype))
        return y.detach().to("cpu", F64).numpy()

    op = LinearOperator((dim, dim), matvec=mv, dtype=np.float64)
    v0 = _Probes(seed, dim, "cpu").gaussian().numpy()
    try:
        vals, vecs = eigsh(op, k=k, which="LA", tol=tol, maxiter=max_iter, v0=v0)
        converged = True
    except ArpackNoConvergence as exc:
        vals, vecs, converged = exc.eigenvalues, exc.eigenvectors, False
    order = np.argsort(vals)[::-1]
    vals = np.concatenate([vals[order], np.full(k - vals.size, np.nan)])
    vecs = np.concatenate([vecs[:, order], np.full((dim, k - vecs.shape[1]), np.nan)], axis=1)
    n_matvec = count[0]
    V = torch.from_numpy(vecs).to(device)
    # explicit residuals ‖A y − θ y‖ (k more products): ARPACK does not return its estimates
    residuals = np.array([float(torch.linalg.vector_norm(matvec(V[:, i].to(dtype)).to(F64) - vals[i] * V[:, i]))
                          for i in range(k)])
    res = Eigenpairs(vals, V, converged, n_matvec, residuals, "scipy")
    if not converged:
        _warn_not_converged(res, tol)
    return res


def _power(matvec, dim, k, tol, max_iter, seed, device, dtype) -> Eigenpairs:
    """Power iteration with deflation, on the device in float64 (see :func:`top_eigenpairs`)."""
    if k > dim:
        raise ValueError(f"k must be <= number of parameters ({dim}), got {k}")
    max_iter = 1000 if max_iter is None else int(max_iter)
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    probes = _Probes(seed, dim, device)
    vals, vecs, residuals = [], [], []
    total, all_converged = 0, True
    for _ in range(k):
        u = probes.gaussian()
        u = u / torch.linalg.vector_norm(u)
        converged = False
        for _ in range(max_iter):
            total += 1
            w = matvec(u.to(dtype)).to(F64)
            for lam_i, u_i in zip(vals, vecs):
                w = w - lam_i * u_i * (u_i @ u)
            lam_t = u @ w
            nw_t = torch.linalg.vector_norm(w)
            lam, r, nw = torch.stack([lam_t, torch.linalg.vector_norm(w - lam_t * u), nw_t]).tolist()
            if r <= tol * abs(lam) or nw == 0.0:
                converged = True
                break
            u = w / nw_t
        all_converged &= converged
        vals.append(lam)
        vecs.append(u)
        residuals.append(r)
    vals_a = np.array(vals)
    order = np.argsort(vals_a)[::-1]
    res = Eigenpairs(vals_a[order], torch.stack(vecs, dim=1)[:, torch.from_numpy(order.copy()).to(device)],
                     all_converged, total, np.array(residuals)[order], "power")
    if not all_converged:
        _warn_not_converged(res, tol)
    return res


def top_eigenpairs(matvec: Callable[[torch.Tensor], torch.Tensor], dim: int, *, k=1, method="lanczos",
                   tol=1e-6, max_iter=None, seed=0, device=None, dtype=F64) -> Eigenpairs:
    """Top-k eigenpairs of a symmetric operator given by ``matvec`` (a (dim,) tensor of ``dtype``
    on ``device`` in, a (dim,) tensor out). Returns :class:`Eigenpairs`.

    * ``method="lanczos"``: :func:`lanczos` on the device (the algebraically largest k;
      ``max_iter`` caps the Lanczos steps, default min(dim, 200)).
    * ``method="scipy"``: ARPACK's implicitly restarted Lanczos (``scipy.sparse.linalg.eigsh``,
      ``which="LA"``) on the host in float64, each product copied to and from the device: the
      reference the device Lanczos is tested against. Same start vector and the same relative
      test (ARPACK's: Ritz residual ≤ tol·|θᵢ|); ``max_iter`` is ARPACK's number of restarts.
    * ``method="power"``: power iteration with deflation (PyHessian's method): the j-th
      eigenpair is the dominant one of A − Σ_{i<j} λᵢuᵢuᵢᵀ. It finds the eigenvalues of
      **largest magnitude**, which coincide with the largest ones when the top of the spectrum
      dominates the most negative eigenvalue (true near a minimum). Stops when the residual
      ‖Au − λu‖ ≤ tol·|λ|, which guarantees an eigenvalue of the deflated operator within
      tol·|λ| of λ; ``max_iter`` (default 1000) caps the steps per pair.

    Non-convergence within ``max_iter`` gives ``converged=False`` and a ``RuntimeWarning``.
    ``tol`` should not be below the relative accuracy of one product: ~1e-6 for a float32 model,
    ~1e-14 for float64 (smaller values cannot be met and end at ``max_iter``).
    """
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    _checks.check_positive("tol", tol)
    device = _device_of(device)
    if method == "lanczos":
        return lanczos(matvec, dim, k=k, tol=tol, max_iter=max_iter, seed=seed, device=device, dtype=dtype)
    if method == "scipy":
        return _scipy_eigsh(matvec, int(dim), k, tol, max_iter, seed, device, dtype)
    if method == "power":
        return _power(matvec, int(dim), k, tol, max_iter, seed, device, dtype)
    raise ValueError(f"method must be 'lanczos', 'scipy' or 'power', got {method!r}")


def hessian_top_eigenvalues(model, loss_fn, inputs, targets, *, k=1, method="lanczos", tol=1e-6,
                            max_iter=None, seed=0, batch_size=None, return_eigenvectors=False,
                            return_info=False):
    """Top-k eigenvalues of the loss Hessian H = ∇²L(θ) (sharpness, paper §4.1).

    Matrix-free: :func:`top_eigenpairs` on v ↦ Hv (:func:`hessian_vector_product`, eval-mode BN,
    in the model's dtype on its device); ``method`` ``"lanczos"`` (device, default), ``"scipy"``
    (ARPACK on the host, reference) or ``"power"``. Returns the eigenvalues (k,) in decreasing
    order; with ``return_eigenvectors=True`` also the (p, k) float64 eigenvectors (a tensor on the
    model's device); with ``return_info=True`` the whole :class:`Eigenpairs` (convergence flag,
    iterations, residuals). Non-convergence also issues a ``RuntimeWarning``.

    ``tol`` (default 1e-6) should not be below the relative accuracy of one HVP: ~1e-6 for a
    float32 model, ~1e-14 for float64.
    """
    with _measuring(model):
        inputs, targets = _prepare(model, inputs, targets)
        p, like = _num_params(model)
        hvp = _hvp_operator(model, loss_fn, inputs, targets, batch_size)
        res = top_eigenpairs(hvp, p, k=k, method=method, tol=tol, max_iter=max_iter, seed=seed,
                             device=like.device, dtype=like.dtype)
    if return_info:
        return res
    return (res.eigenvalues, res.eigenvectors) if return_eigenvectors else res.eigenvalues


# ----------------------------------------------------------------------------------------------
# stochastic trace / Frobenius norms
# ----------------------------------------------------------------------------------------------
def _check_n_samples(n_samples) -> int:
    n_samples = int(n_samples)
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2 (for a standard error), got {n_samples}")
    return n_samples


def _probe_samples(matvec, dim, n_samples, seed, probe, device, dtype, statistic) -> torch.Tensor:
    """(N,) float64 device tensor of statistic(z, Az) over N probes z (no host sync)."""
    probes = _Probes(seed, dim, device)
    s = torch.empty(n_samples, dtype=F64, device=probes.device)
    for j in range(n_samples):
        z = probes.draw(probe).to(dtype)          # the probe exactly as applied
        s[j] = statistic(z.to(F64), matvec(z).to(F64))
    return s


def _quadratic_form(z, az):
    return z @ az


def _squared_norm(z, az):
    return az @ az


def hutchinson_trace(matvec, dim: int, *, n_samples=100, seed=0, probe="rademacher", device=None,
                     dtype=F64) -> Estimate:
    """Hutchinson's estimator tr(A) ≈ (1/N) Σⱼ zⱼᵀAzⱼ, E[zzᵀ] = I (Rademacher or Gaussian z)
    (Hutchinson 1990). ``matvec`` maps a (dim,) tensor of ``dtype`` on ``device`` to a tensor.

    Unbiased; the standard error is the sample standard deviation / √N. For Rademacher probes the
    per-probe variance is 2(‖A‖_F² − Σᵢ Aᵢᵢ²) (symmetric A), for Gaussian 2‖A‖_F². The products
    zᵀAz are formed and kept in float64 on the device and copied to the host once.
    """
    n_samples = _check_n_samples(n_samples)
    s = _probe_samples(matvec, dim, n_samples, seed, probe, _device_of(device), dtype, _quadratic_form)
    return Estimate(*_mean_se(s), n_samples)


def hutchinson_frobenius_sq(matvec, dim: int, *, n_samples=100, seed=0, probe="rademacher", device=None,
                            dtype=F64) -> Estimate:
    """‖A‖_F² = tr(AᵀA) ≈ (1/N) Σⱼ ‖Azⱼ‖², E[zzᵀ] = I. Unbiased for ‖A‖_F²; SE = sd/√N.
    Per-probe variance for symmetric A: that of :func:`hutchinson_trace` with A² in place of A."""
    n_samples = _check_n_samples(n_samples)
    s = _probe_samples(matvec, dim, n_samples, seed, probe, _device_of(device), dtype, _squared_norm)
    return Estimate(*_mean_se(s), n_samples)


def _sqrt_estimate(est: Estimate) -> Estimate:
    """√ of a positive estimate; SE by the delta method, se(√X) = se(X)/(2√X)."""
    val = math.sqrt(max(est.value, 0.0))
    se = est.stderr / (2.0 * val) if val > 0 else float("nan")
    return Estimate(val, se, est.n_samples)


def _model_estimate(model, loss_fn, inputs, targets, operator, estimator, **kw) -> Estimate:
    with _measuring(model):
        inputs, targets = _prepare(model, inputs, targets)
        p, like = _num_params(model)
        return estimator(operator(inputs, targets), p, device=like.device, dtype=like.dtype, **kw)


def hessian_trace_hutchinson(model, loss_fn, inputs, targets, *, n_samples=100, seed=0,
                             batch_size=None) -> Estimate:
    """Tr H by Hutchinson with Rademacher probes and exact HVPs: Tr H ≈ (1/N)Σ zⱼᵀHzⱼ.

    Unbiased; returns ``Estimate(value, stderr, n_samples)``, stderr = sample sd/√N. Eval-mode BN.
    (For an OU process with C = H, E[L − L*] = (η/4S)·Tr H, see references.)
    """
    return _model_estimate(model, loss_fn, inputs, targets,
                           lambda x, y: _hvp_operator(model, loss_fn, x, y, batch_size), hutchinson_trace,
                           n_samples=n_samples, seed=seed, probe="rademacher")


def hessian_frobenius_hutchinson(model, loss_fn, inputs, targets, *, n_samples=100, seed=0,
                                 batch_size=None) -> Estimate:
    """‖H‖_F from exact HVPs: ‖H‖_F² ≈ (1/N)Σ‖Hzⱼ‖² (Rademacher z), then √ (delta-method SE).

    The square root of the unbiased ‖H‖_F² estimate is biased low by O(1/N) (Jensen),
    negligible next to its O(1/√N) standard error.
    """
    return _sqrt_estimate(_model_estimate(model, loss_fn, inputs, targets,
                                          lambda x, y: _hvp_operator(model, loss_fn, x, y, batch_size),
                                          hutchinson_frobenius_sq, n_samples=n_samples, seed=seed, probe="rademacher"))


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
    1e-3 suits float32 models of O(1) curvature (with TF32 off: :func:`measurement_precision`),
    float64 allows 1e-4 or less. :func:`hessian_frobenius_hutchinson` is the analogous estimator
    with exact HVPs (Rademacher).

    **Caveat for piecewise-linear activations (ReLU, the paper's Fig. 1 MLP).** The difference
    quotient crosses activation kinks: each crossing adds a gradient jump of O(1) divided by 2ε,
    and the chance of a crossing is O(ε), so E‖Ĥv‖² grows like 1/ε and the estimate like ε^(−1/2)
    instead of converging to the (almost-everywhere) Hessian that double backward gives.
    Measured on a 784-64-64-10 BN-ReLU MLP (256 samples, float64): exact ‖H‖_F ≈ 8.9, FD ≈ 88,
    253, 979, 5120 for ε = 1e-1, 1e-2, 1e-3, 1e-4 (tanh: FD = exact to 3 digits for every ε).
    So for ReLU networks the FD value is a smoothed curvature at scale ε, meaningful only at a
    fixed, reported ε; prefer :func:`hessian_frobenius_hutchinson` / Lanczos for the Hessian.
    """
    _checks.check_positive("eps", eps)
    return _sqrt_estimate(_model_estimate(model, loss_fn, inputs, targets,
                                          lambda x, y: _fd_hvp_operator(model, loss_fn, x, y, eps, batch_size),
                                          hutchinson_frobenius_sq, n_samples=n_samples, seed=seed, probe="gaussian"))


# ----------------------------------------------------------------------------------------------
# per-sample gradients and gradient noise
# ----------------------------------------------------------------------------------------------
def _per_sample_gradients(model, loss_fn, inputs, targets, chunk) -> torch.Tensor:
    """(n, p) per-sample gradients in the parameters' dtype; eval mode, prepared data."""
    names, params = trainable_parameters(model)
    consts = _constants(model)
    pdict = {nm: t.detach() for nm, t in zip(names, params)}

    def loss_one(pd, x, y):
        out = functional_call(model, (pd, consts), (x.unsqueeze(0),))
        return loss_fn(out, y.unsqueeze(0))

    g_fn = vmap(grad(loss_one), in_dims=(None, 0, 0))
    rows = []
    for sl in _chunks(int(inputs.shape[0]), chunk):
        gd = g_fn(pdict, inputs[sl], targets[sl])
        rows.append(torch.cat([gd[nm].reshape(sl.stop - sl.start, -1) for nm in names], dim=1))
    return torch.cat(rows, dim=0)


def per_sample_gradients(model, loss_fn, inputs, targets, *, chunk=None) -> torch.Tensor:
    """Per-sample gradients gᵢ = ∇ℓᵢ(θ) as an (n, p) tensor, via ``torch.func`` (vmap of grad).

    ℓᵢ is ``loss_fn`` applied to the single-sample batch (xᵢ, yᵢ). Eval-mode BN, so gᵢ depends on
    sample i only (module docstring). ``chunk`` samples are vmapped at a time (memory bound).
    """
    with _measuring(model):
        inputs, targets = _prepare(model, inputs, targets)
        return _per_sample_gradients(model, loss_fn, inputs, targets, chunk)


def _centred_gradients(model, loss_fn, inputs, targets, chunk) -> tuple[torch.Tensor, torch.Tensor]:
    """(D, ḡ): rows dᵢ = gᵢ − ḡ of the per-sample gradients and their mean ḡ, float64 on the device."""
    D = _per_sample_gradients(model, loss_fn, inputs, targets, chunk).to(F64)
    gbar = D.mean(dim=0)
    D -= gbar           # in place: one (n, p) float64 matrix, not two
    return D, gbar


def _cov_spectrum(D: torch.Tensor) -> torch.Tensor:
    """Eigenvalues (decreasing, ≥ 0) of C = (1/n) DᵀD from the smaller Gram matrix, on the device."""
    n, p = D.shape
    gram = (D @ D.T) / n if n <= p else (D.T @ D) / n   # same non-zero spectrum as C
    return torch.clamp(torch.linalg.eigvalsh(gram).flip(0), min=0.0)


def _subsample(n: int, max_samples, name: str, seed) -> np.ndarray:
    """All indices, or a sorted uniform subsample of ``max_samples`` without replacement."""
    if max_samples is None or int(max_samples) >= n:
        return np.arange(n)
    m = int(max_samples)
    if m < 2:
        raise ValueError(f"{name} must be >= 2, got {max_samples}")
    return np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))


def _mean_fpc(q: torch.Tensor, n: int) -> tuple[float, float]:
    """Mean of m values sampled without replacement from n, and its SE with the finite-population
    correction √(1 − m/n) (0 when every one of the n is used)."""
    m = int(q.numel())
    if m == n:
        return float(q.mean()), 0.0
    mean, se = _mean_se(q)
    return mean, se * math.sqrt(1 - m / n)


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

    Memory: the (n, p) per-sample gradient matrix is held in float64 on the model's device
    (n·p·8 bytes, e.g. 1.2 GB for n = 128 and the 1.2M-parameter Fig. 1 MLP), so pass a subsample
    of the training set for large p. Everything is computed on the device; sums in float64.
    """
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    with _measuring(model):
        inputs, targets = _prepare(model, inputs, targets)
        n = int(inputs.shape[0])
        p, like = _num_params(model)
        D, gbar = _centred_gradients(model, loss_fn, inputs, targets, chunk)
        spectrum = _cov_spectrum(D)
        loss, _ = _gradient_operator(model, loss_fn, inputs, targets, batch_size)()
        tr_c, fro_c, gsq, loss = torch.stack([(D * D).sum() / n, torch.sqrt((spectrum ** 2).sum()),
                                              gbar @ gbar, loss]).tolist()
        top = spectrum[:k].cpu().numpy()
        res = GradientNoiseStats(
            n_samples=n, loss=loss, trace_cov=tr_c, top_cov_eigenvalues=top, cov_frobenius=fro_c,
            mean_grad_sq_norm=gsq, b_simple=tr_c / gsq if gsq > 0 else float("inf"),
        )
        if not alignment:
            return res
        seeds = np.random.SeedSequence(seed).spawn(2)
        idx = _subsample(n, max_alignment_samples, "max_alignment_samples", seeds[0])
        hvp = _hvp_operator(model, loss_fn, inputs, targets, batch_size)
        q = torch.empty(idx.size, dtype=F64, device=like.device)
        for j, i in enumerate(idx):
            d = D[int(i)].to(like.dtype)
            q[j] = d.to(F64) @ hvp(d).to(F64)
        t, t_se = _mean_fpc(q, n)
        hf = _sqrt_estimate(hutchinson_frobenius_sq(hvp, p, n_samples=n_probe, seed=seeds[1], probe="rademacher",
                                                    device=like.device, dtype=like.dtype))
    align = t / (fro_c * hf.value) if fro_c > 0 and hf.value > 0 else float("nan")
    rel = math.hypot(t_se / abs(t) if t != 0 else 0.0, hf.stderr / hf.value if hf.value > 0 else float("nan"))
    res.trace_cov_hessian, res.trace_cov_hessian_se = t, t_se
    res.hessian_frobenius, res.hessian_frobenius_se = hf.value, hf.stderr
    res.alignment, res.alignment_se = align, abs(align) * rel
    return res


# ----------------------------------------------------------------------------------------------
# evaluation and interpolation
# ----------------------------------------------------------------------------------------------
def _correct(out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor | None:
    """Number of top-1 hits (classification: integer targets, (b, C) outputs); None otherwise."""
    if not targets.is_floating_point() and out.ndim == 2:
        return (out.argmax(dim=1) == targets).sum()
    return None


@torch.no_grad()
def evaluate(model, loss_fn, inputs, targets, *, batch_size=None) -> tuple[float, float]:
    """Mean loss and accuracy (NaN unless classification) on (inputs, targets) in eval mode."""
    with _measuring(model):
        inputs, targets = _prepare(model, inputs, targets)
        n = int(inputs.shape[0])
        total = torch.zeros((), dtype=F64, device=inputs.device)
        correct = torch.zeros((), dtype=F64, device=inputs.device)
        classification = True
        for sl in _chunks(n, batch_size):
            out = model(inputs[sl])
            total += loss_fn(out, targets[sl]).to(F64) * ((sl.stop - sl.start) / n)
            hits = _correct(out, targets[sl])
            if hits is None:
                classification = False
            else:
                correct += hits
        loss, hits = torch.stack([total, correct]).tolist()
    return loss, (hits / n if classification else float("nan"))


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
    with _measuring(model):
        inputs = _prepare(model, inputs)
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
    inputs, targets = _prepare(model, inputs, targets)
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
