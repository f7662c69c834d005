"""The compiled side of a landscape: templates that turn plain loss functions into the fixed
signatures the simulators call (private; see :mod:`theory.landscapes.base`).

User functions have the signatures ``value(theta, *params) -> float``,
``gradient(theta, *params[, out]) -> (dim,)`` and ``hessian(theta, *params[, out]) -> (dim, dim)``
(finite sums: the same with the sample's data row after ``theta``).  A gradient or Hessian may
return an array, a tuple or (dim = 1) a float, or write into ``out`` when its signature has a
parameter named ``out`` (no allocation per call: the fast form).  The adapters below bring every
form to one in-place form, and the wrappers add the L2 term ``l2·‖θ‖²`` and, for finite sums, the
shared part and the sample mean.  Compiled signatures (``cparams`` is the landscape's
``compiled.params`` tuple, see :class:`Compiled`)::

    value(theta, cparams) -> float
    gradient(theta, cparams, out (dim,))
    hessian(theta, cparams, out (dim, dim))
    finite sums also:
    shared_gradient(theta, cparams, out)                  gradient of the part common to all samples
    add_sample_gradient(theta, cparams, j, w, out, tmp)   out += w·∇l_j(θ) (the sample's own part)
    noise_cov(theta, cparams, out (dim, dim))             (1/N) Σ (g_i − ḡ)(g_i − ḡ)ᵀ

Every name in CAPITALS inside a template is bound by :func:`theory._numba.specialise`.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
from numba.core import types
from numba.extending import overload

from theory._numba import generated, specialise

# Machine epsilon to the power 1/3: the step of central differences that balances truncation
# (∝ h²) against rounding (∝ ε/h); see hessian_by_differences.
FD_STEP = float(np.finfo(float).eps ** (1.0 / 3.0))


class Compiled(NamedTuple):
    """A landscape's compiled functions and the parameter tuple they read (``params``)."""

    value: Callable
    gradient: Callable
    hessian: Callable
    params: tuple
    evaluate: Callable
    shared_gradient: Callable | None = None
    add_sample_gradient: Callable | None = None
    noise_cov: Callable | None = None
    evaluate_samples: Callable | None = None


# ------------------------------------------------------------------------------ result storage
def store_vector(g, out):  # pragma: no cover - replaced by the overload in compiled code
    raise NotImplementedError


def store_matrix(h, out):  # pragma: no cover - replaced by the overload in compiled code
    raise NotImplementedError


@overload(store_vector, inline="always")
def _store_vector(g, out):
    if isinstance(g, (types.Float, types.Integer)):
        def impl(g, out):
            out[0] = g
        return impl
    if isinstance(g, (types.BaseTuple, types.Array)):
        def impl(g, out):
            for k in range(out.shape[0]):
                out[k] = g[k]
        return impl
    return None


@overload(store_matrix, inline="always")
def _store_matrix(h, out):
    if isinstance(h, (types.Float, types.Integer)):
        def impl(h, out):
            out[0, 0] = h
        return impl
    if isinstance(h, types.Array) and h.ndim == 2:
        def impl(h, out):
            for i in range(out.shape[0]):
                for j in range(out.shape[1]):
                    out[i, j] = h[i, j]
        return impl
    if isinstance(h, (types.BaseTuple, types.Array)):
        def impl(h, out):
            for i in range(out.shape[0]):
                row = h[i]
                for j in range(out.shape[1]):
                    out[i, j] = row[j]
        return impl
    return None


# ------------------------------------------------------------------------------ adapters
def _adapter_anchor():  # pragma: no cover - marks this module as the home of generated adapters
    pass


def adapt(jitted, kind: str, inplace: bool, n_args: int):
    """The in-place form ``f(theta, args, out)`` (``f(theta, args) -> float`` for values) of a
    compiled user function taking ``theta`` and ``n_args`` further arguments, given as the tuple
    ``args``.  The call spells the arguments out (``args[0], args[1], ...``): numba inlines it."""
    spelled = "".join(f", args[{i}]" for i in range(n_args))
    if kind == "scalar":
        name = f"_scalar_adapter_{n_args}"
        body = f"def {name}(theta, args):\n    return float(USER(theta{spelled}))\n"
    elif inplace:
        name = f"_inplace_adapter_{n_args}"
        body = f"def {name}(theta, args, out):\n    USER(theta{spelled}, out)\n"
    else:
        name = f"_{kind}_returning_adapter_{n_args}"
        body = f"def {name}(theta, args, out):\n    store_{kind}(USER(theta{spelled}), out)\n"
    return specialise(generated(name, body, _adapter_anchor), inline=True, USER=jitted)


# ------------------------------------------------------------------------------ plain landscapes
# cparams = (l2, params)
def _value(theta, cparams):
    s = 0.0
    for k in range(theta.shape[0]):
        s += theta[k] * theta[k]
    return VALUE(theta, cparams[1]) + cparams[0] * s  # noqa: F821


def _gradient(theta, cparams, out):
    GRADIENT(theta, cparams[1], out)  # noqa: F821
    if L2:  # noqa: F821 - a compile-time flag: no work in the simulators' inner loops when l2 = 0
        two_l2 = 2.0 * cparams[0]
        for k in range(out.shape[0]):
            out[k] += two_l2 * theta[k]


def _hessian(theta, cparams, out):
    HESSIAN(theta, cparams[1], out)  # noqa: F821
    two_l2 = 2.0 * cparams[0]
    for k in range(out.shape[0]):
        out[k, k] += two_l2


def _hessian_by_differences(theta, cparams, out):
    """Central differences of the compiled gradient, column k:
    (∇L(θ + h_k e_k) − ∇L(θ − h_k e_k)) / (2 h_k), h_k = ε^(1/3)·max(1, |θ_k|), symmetrised.

    Error per entry ≤ h_k²/6·max|∂_k³ ∂_i L| (truncation) + ε·max|∂_i L|/h_k (rounding of the
    two gradients) + the gradient's own rounding error over h_k: ≈ 4e-11·(|∂³L| + |∇L|) for
    O(1) coordinates and derivatives (ε = 2.2e-16)."""
    d = theta.shape[0]
    shifted = theta.copy()
    g_plus = np.empty(d)
    g_minus = np.empty(d)
    for k in range(d):
        scale = abs(theta[k])
        if scale < 1.0:
            scale = 1.0
        step = FD_STEP * scale
        up = theta[k] + step
        down = theta[k] - step
        shifted[k] = up
        GRADIENT(shifted, cparams, g_plus)  # noqa: F821
        shifted[k] = down
        GRADIENT(shifted, cparams, g_minus)  # noqa: F821
        shifted[k] = theta[k]
        width = up - down  # the step actually taken (exact in floating point)
        for i in range(d):
            out[i, k] = (g_plus[i] - g_minus[i]) / width
    for i in range(d):
        for k in range(i):
            m = 0.5 * (out[i, k] + out[k, i])
            out[i, k] = m
            out[k, i] = m


def _evaluate(points, cparams, values, gradients, hessians):
    """Value, gradient and Hessian at each row of ``points`` (each output skipped when it has no
    rows): the vectorised NumPy-facing path of every landscape."""
    n, d = points.shape
    theta = np.empty(d)
    for p in range(n):
        for k in range(d):
            theta[k] = points[p, k]
        if values.shape[0]:
            values[p] = LANDSCAPE_VALUE(theta, cparams)  # noqa: F821
        if gradients.shape[0]:
            LANDSCAPE_GRADIENT(theta, cparams, gradients[p])  # noqa: F821
        if hessians.shape[0]:
            LANDSCAPE_HESSIAN(theta, cparams, hessians[p])  # noqa: F821


def compile_plain(value, gradient, hessian, l2: float) -> tuple:
    """(value, gradient, hessian, evaluate) wrappers for adapted user functions; ``hessian`` None
    derives the Hessian by central differences of the gradient."""
    v = specialise(_value, inline=True, VALUE=value)
    g = specialise(_gradient, inline=True, GRADIENT=gradient, L2=l2 != 0.0)
    if hessian is None:
        h = specialise(_hessian_by_differences, inline=True, GRADIENT=g)
    else:
        h = specialise(_hessian, inline=True, HESSIAN=hessian)
    ev = specialise(_evaluate, LANDSCAPE_VALUE=v, LANDSCAPE_GRADIENT=g, LANDSCAPE_HESSIAN=h)
    return v, g, h, ev


# ------------------------------------------------------------------------------ finite sums
# cparams = (l2, params, data, base_cparams); the per-sample functions receive (data[j],) + params
def _zero_value(theta, cparams):
    return 0.0


def _zero_vector(theta, cparams, out):
    for k in range(out.shape[0]):
        out[k] = 0.0


def _zero_matrix(theta, cparams, out):
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = 0.0


def _fs_value(theta, cparams):
    s = 0.0
    for k in range(theta.shape[0]):
        s += theta[k] * theta[k]
    v = BASE_VALUE(theta, cparams[3]) + cparams[0] * s  # noqa: F821
    if not CENTERED:  # noqa: F821
        data = cparams[2]
        n = data.shape[0]
        acc = 0.0
        for j in range(n):
            acc += SAMPLE_VALUE(theta, (data[j],) + cparams[1])  # noqa: F821
        v += acc / n
    return v


def _fs_shared_gradient(theta, cparams, out):
    BASE_GRADIENT(theta, cparams[3], out)  # noqa: F821
    if L2:  # noqa: F821
        two_l2 = 2.0 * cparams[0]
        for k in range(out.shape[0]):
            out[k] += two_l2 * theta[k]


def _fs_add_sample_gradient(theta, cparams, j, weight, out, tmp):
    SAMPLE_GRADIENT(theta, (cparams[2][j],) + cparams[1], tmp)  # noqa: F821
    for k in range(out.shape[0]):
        out[k] += weight * tmp[k]


def _fs_gradient(theta, cparams, out):
    SHARED_GRADIENT(theta, cparams, out)  # noqa: F821
    if not CENTERED:  # noqa: F821
        n = cparams[2].shape[0]
        tmp = np.empty(out.shape[0])
        acc = np.zeros(out.shape[0])
        for j in range(n):
            ADD_SAMPLE_GRADIENT(theta, cparams, j, 1.0, acc, tmp)  # noqa: F821
        for k in range(out.shape[0]):
            out[k] += acc[k] / n


def _fs_hessian(theta, cparams, out):
    BASE_HESSIAN(theta, cparams[3], out)  # noqa: F821
    d = out.shape[0]
    two_l2 = 2.0 * cparams[0]
    for k in range(d):
        out[k, k] += two_l2
    if not CENTERED:  # noqa: F821
        data = cparams[2]
        n = data.shape[0]
        tmp = np.empty((d, d))
        acc = np.zeros((d, d))
        for j in range(n):
            SAMPLE_HESSIAN(theta, (data[j],) + cparams[1], tmp)  # noqa: F821
            for a in range(d):
                for b in range(d):
                    acc[a, b] += tmp[a, b]
        for a in range(d):
            for b in range(d):
                out[a, b] += acc[a, b] / n


def _fs_noise_cov(theta, cparams, out):
    """C(θ) = (1/N) Σ_j (g_j − ḡ)(g_j − ḡ)ᵀ over the samples' own gradients (the shared part and
    the L2 term are common to all samples and cancel)."""
    d = out.shape[0]
    n = cparams[2].shape[0]
    g = np.empty(d)
    tmp = np.empty(d)
    mean = np.zeros(d)
    for a in range(d):
        for b in range(d):
            out[a, b] = 0.0
    for j in range(n):
        for k in range(d):
            g[k] = 0.0
        ADD_SAMPLE_GRADIENT(theta, cparams, j, 1.0, g, tmp)  # noqa: F821
        for a in range(d):
            mean[a] += g[a]
            for b in range(d):
                out[a, b] += g[a] * g[b]
    for a in range(d):
        mean[a] /= n
    for a in range(d):
        for b in range(d):
            out[a, b] = out[a, b] / n - mean[a] * mean[b]


def _fs_evaluate_samples(points, cparams, values, gradients):
    """Per-sample losses l_j (values (n, N)) and gradients ∇l_j (gradients (n, N, d)) at each row
    of ``points``, including the shared part and the L2 term (outputs without rows are skipped)."""
    n, d = points.shape
    data = cparams[2]
    n_samples = data.shape[0]
    theta = np.empty(d)
    shared = np.empty(d)
    tmp = np.empty(d)
    for p in range(n):
        for k in range(d):
            theta[k] = points[p, k]
        if values.shape[0]:
            s = 0.0
            for k in range(d):
                s += theta[k] * theta[k]
            base = BASE_VALUE(theta, cparams[3]) + cparams[0] * s  # noqa: F821
            for j in range(n_samples):
                values[p, j] = base + SAMPLE_VALUE(theta, (data[j],) + cparams[1])  # noqa: F821
        if gradients.shape[0]:
            SHARED_GRADIENT(theta, cparams, shared)  # noqa: F821
            for j in range(n_samples):
                for k in range(d):
                    gradients[p, j, k] = shared[k]
                ADD_SAMPLE_GRADIENT(theta, cparams, j, 1.0, gradients[p, j], tmp)  # noqa: F821


def compile_finite_sum(sample_value, sample_gradient, sample_hessian, base, centered: bool, l2: float) -> dict:
    """Compiled functions of L = base + (1/N) Σ_j l_j + l2‖θ‖² from adapted per-sample functions;
    ``base`` is the compiled base landscape or None; ``centered``: Σ_j l_j ≡ 0 (the samples only
    add noise), so the full-batch loss is base + L2 and never loops over the data."""
    zero_matrix = specialise(_zero_matrix, inline=True)
    bv, bg, bh = (base.value, base.gradient, base.hessian) if base is not None else (
        specialise(_zero_value, inline=True), specialise(_zero_vector, inline=True), zero_matrix)
    shared = specialise(_fs_shared_gradient, inline=True, BASE_GRADIENT=bg, L2=l2 != 0.0)
    add = specialise(_fs_add_sample_gradient, inline=True, SAMPLE_GRADIENT=sample_gradient)
    v = specialise(_fs_value, inline=True, BASE_VALUE=bv, SAMPLE_VALUE=sample_value, CENTERED=centered)
    g = specialise(_fs_gradient, inline=True, SHARED_GRADIENT=shared, ADD_SAMPLE_GRADIENT=add, CENTERED=centered)
    if sample_hessian is None and not centered:
        h = specialise(_hessian_by_differences, inline=True, GRADIENT=g)
    else:
        h = specialise(_fs_hessian, inline=True, BASE_HESSIAN=bh, SAMPLE_HESSIAN=sample_hessian or zero_matrix,
                       CENTERED=centered)
    ev = specialise(_evaluate, LANDSCAPE_VALUE=v, LANDSCAPE_GRADIENT=g, LANDSCAPE_HESSIAN=h)
    cov = specialise(_fs_noise_cov, inline=True, ADD_SAMPLE_GRADIENT=add)
    ev_s = specialise(_fs_evaluate_samples, BASE_VALUE=bv, SAMPLE_VALUE=sample_value, SHARED_GRADIENT=shared,
                      ADD_SAMPLE_GRADIENT=add)
    return dict(value=v, gradient=g, hessian=h, evaluate=ev, shared_gradient=shared, add_sample_gradient=add,
                noise_cov=cov, evaluate_samples=ev_s)


__all__ = ["Compiled", "adapt", "compile_plain", "compile_finite_sum", "FD_STEP", "store_vector",
           "store_matrix"]
