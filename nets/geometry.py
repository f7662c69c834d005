"""Noise geometry of SGD on networks: alignment of the gradient noise with the Gauss-Newton matrix.

Metrics of Wang & Wu (2023, arXiv 2310.00692), as quoted in the project reference notes
(shared/notes/references.md; not checked against the paper first-hand), for square loss:

    average alignment     μ(θ)    = Tr(Σ₁G) / (2L ‖G‖_F²)
    directional alignment β(θ; v) = vᵀΣ₁v / (2L · vᵀGv)

* Σ₁ = (1/n) Σᵢ (gᵢ − ḡ)(gᵢ − ḡ)ᵀ, the batch-size-1 noise covariance (gᵢ per-sample gradients,
  ḡ = ∇L); it is the C(θ) of the seed paper's SDE with S = 1 (the paper assumes C = σ²I).
* G = (1/n) Σᵢ Jᵢᵀ Mᵢ Jᵢ, Jᵢ = ∂f(xᵢ)/∂θ (k × p) the Jacobian of the network output, and
    - ``loss="mse"``: L = (1/2n) Σᵢ ‖f(xᵢ) − yᵢ‖² (note the ½ and the *sum* over outputs, not
      ``nn.MSELoss``'s mean), ℓᵢ = ½‖f(xᵢ) − yᵢ‖², Mᵢ = I: the Gauss-Newton / gradient-outer-product
      matrix; with equal-magnitude residuals Σ₁ ≈ 2L·G, so μ ≈ 1 (exactly 1 if also ḡ = 0);
    - ``loss="ce"``: L = (1/n) Σᵢ CE(f(xᵢ), yᵢ) (f = logits), Mᵢ = diag(pᵢ) − pᵢpᵢᵀ, pᵢ = softmax f(xᵢ):
      the cross-entropy Gauss-Newton matrix (= the Fisher of the model's predictive distribution).
      **The 2L normalisation of μ and β is the square-loss one** (for square loss E[rrᵀ] ↔ 2L);
      for CE it is kept for comparability only and μ has no "≈ 1" reference value. Use the
      scale-free cosine alignment below for CE.
* cosine alignment = Tr(Σ₁G) / (‖Σ₁‖_F ‖G‖_F) ∈ [0, 1] (both matrices are PSD), scale-free.

BatchNorm: as in :mod:`nets.measure`, everything is evaluated in eval mode (running statistics),
so f, per-sample gradients and G are well-defined functions of θ; modes are restored afterwards.
Device and numerics also as there: everything runs on the model's device with TF32 off
(:func:`nets.measure.measurement_precision`), products in the model's dtype, the per-sample
gradient matrix, probes, Lanczos bases and every sum in float64; inputs/targets are moved to the
model's device and dtype. These are public functions for any torch model, e.g.
``alignment_metrics(model, x, y, loss="ce", n_probe=50, n_top=2)``.

Estimators (matrix-free; nothing p × p is formed):
* per-sample gradients from :func:`nets.measure.per_sample_gradients` (exact); D = rows gᵢ − ḡ;
* vᵀGv = (1/n) Σⱼ (Jⱼv)ᵀ Mⱼ (Jⱼv) from one forward-mode product u = Jv (``torch.func.jvp``; exact);
* Tr(Σ₁G) = (1/n) Σᵢ dᵢᵀ G dᵢ with these exact quadratic forms (all samples: exact; or a uniform
  subsample of ``max_samples`` without replacement, SE with finite-population correction);
* vᵀΣ₁v = (1/n)‖Dv‖² (exact); ‖Σ₁‖_F exact from the n×n Gram matrix (1/n)DDᵀ;
* ‖G‖_F² = E‖Gz‖² by Hutchinson with ``n_probe`` Rademacher probes, Gz = (1/n) Jᵀ M J z by a jvp
  then a vjp (:func:`gauss_newton_vector_product`); unbiased, SE = sd/√N;
* μ and the cosine are ratios with one (or two) estimated factors; their SEs are by the delta
  method (relative errors added in quadrature). μ uses ‖G‖_F² in the denominator, which makes μ
  slightly biased (O(1/N_probe)), negligible next to the SE.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, jvp, vjp, vmap

from nets import measure as _m

__all__ = [
    "AlignmentMetrics",
    "network_loss_fn",
    "gauss_newton_vector_product",
    "gauss_newton_quadratic_forms",
    "alignment_metrics",
]

_LOSSES = ("mse", "ce")
F64 = torch.float64


def _check_loss(loss: str) -> str:
    if loss not in _LOSSES:
        raise ValueError(f"loss must be one of {_LOSSES}, got {loss!r}")
    return loss


def network_loss_fn(loss: str):
    """The batch-mean loss the metrics refer to: ``"mse"`` → (1/b)Σ ½‖f − y‖² (sum over outputs),
    ``"ce"`` → mean cross-entropy of logits. Usable with every :mod:`nets.measure` function."""
    _check_loss(loss)
    if loss == "mse":
        def mse(out, y):
            out2 = out.reshape(out.shape[0], -1)
            return 0.5 * ((out2 - y.reshape(out2.shape)) ** 2).sum(dim=1).mean()
        return mse
    return lambda out, y: F.cross_entropy(out, y)


def _output_fn(model, consts, x):
    def f(pd):
        out = functional_call(model, (pd, consts), (x,))
        return out.reshape(out.shape[0], -1)   # (b, k)
    return f


def _m_apply(loss: str, logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Mᵢuᵢ row-wise: identity (mse) or (diag(p) − ppᵀ)u (ce)."""
    if loss == "mse":
        return u
    p = torch.softmax(logits, dim=-1)
    return p * u - p * (p * u).sum(dim=-1, keepdim=True)


def _gn_operator(model, inputs, loss, batch_size):
    """v ↦ Gv (v flat in the parameters' dtype and device); eval mode, prepared inputs, no sync."""
    n = int(inputs.shape[0])
    names, params = _m.trainable_parameters(model)
    p = sum(t.numel() for t in params)
    pd = {nm: t.detach() for nm, t in zip(names, params)}
    consts = _m._constants(model)
    chunks = _m._chunks(n, batch_size)

    def gvp(v: torch.Tensor) -> torch.Tensor:
        vd = dict(zip(names, _m.unflatten_like(v, params)))
        out_vec = torch.zeros(p, dtype=params[0].dtype, device=params[0].device)
        for sl in chunks:
            f = _output_fn(model, consts, inputs[sl])
            logits, u = jvp(f, (pd,), (vd,))
            _, vjp_fn = vjp(f, pd)
            (gd,) = vjp_fn(_m_apply(loss, logits, u))
            out_vec += torch.cat([gd[nm].reshape(-1) for nm in names]) / n
        return out_vec

    return gvp


def gauss_newton_vector_product(model, inputs, v, *, loss="mse", batch_size=None) -> torch.Tensor:
    """G v with G = (1/n) Σᵢ JᵢᵀMᵢJᵢ (module docstring), by ``torch.func`` jvp (u = Jv) then vjp
    (Jᵀ M u); chunks of ``batch_size`` samples weighted by their size. Eval-mode BN. G depends on
    the inputs only (not the targets). ``v`` flat (p,), returns flat (p,)."""
    _check_loss(loss)
    with _m._measuring(model):
        inputs = _m._prepare(model, inputs)
        p, like = _m._num_params(model)
        return _gn_operator(model, inputs, loss, batch_size)(_m._as_vector(v, like, p))


def _gn_quadratic_forms(model, inputs, vectors, loss, batch_size, chunk) -> torch.Tensor:
    """(m,) float64 vᵀGv for the rows of ``vectors`` (any float dtype, on the device); eval mode."""
    n = int(inputs.shape[0])
    names, params = _m.trainable_parameters(model)
    vectors = vectors.to(dtype=params[0].dtype)
    pd = {nm: t.detach() for nm, t in zip(names, params)}
    consts = _m._constants(model)
    res = torch.zeros(vectors.shape[0], dtype=F64, device=params[0].device)
    for sl in _m._chunks(n, batch_size):
        f = _output_fn(model, consts, inputs[sl])

        def qf(vflat):
            vd = dict(zip(names, _m.unflatten_like(vflat, params)))
            logits, u = jvp(f, (pd,), (vd,))
            return (u * _m_apply(loss, logits, u)).sum()

        qf_v = vmap(qf)
        for vs in _m._chunks(vectors.shape[0], chunk):
            res[vs] += qf_v(vectors[vs]).to(F64) / n
    return res


def gauss_newton_quadratic_forms(model, inputs, vectors, *, loss="mse", batch_size=None, chunk=16) -> torch.Tensor:
    """vᵀGv for each row v of ``vectors`` (m, p): (1/n)Σⱼ (Jⱼv)ᵀMⱼ(Jⱼv), forward mode only (exact).

    ``chunk`` vectors are pushed through one vmapped jvp at a time. Returns (m,) float64 on the
    model's device.
    """
    _check_loss(loss)
    with _m._measuring(model):
        inputs = _m._prepare(model, inputs)
        p, like = _m._num_params(model)
        vectors = torch.as_tensor(vectors)
        if vectors.ndim != 2 or vectors.shape[1] != p:
            raise ValueError(f"vectors must have shape (m, {p}), got {tuple(vectors.shape)}")
        return _gn_quadratic_forms(model, inputs, vectors.to(like.device), loss, batch_size, chunk)


@dataclass
class AlignmentMetrics:
    """Output of :func:`alignment_metrics` (float64). ``*_se`` are standard errors (0 = exact)."""

    loss_kind: str
    n_samples: int
    loss: float                       # L(θ) in the module's convention for ``loss_kind``
    trace_sigma_g: float              # Tr(Σ₁G)
    trace_sigma_g_se: float
    gn_frobenius_sq: float            # ‖G‖_F² (Hutchinson)
    gn_frobenius_sq_se: float
    sigma_frobenius: float            # ‖Σ₁‖_F (exact)
    trace_sigma: float                # Tr Σ₁ (exact)
    mu: float                         # Tr(Σ₁G)/(2L‖G‖_F²)
    mu_se: float
    cosine: float                     # Tr(Σ₁G)/(‖Σ₁‖_F‖G‖_F)
    cosine_se: float
    gn_top_eigenvalues: np.ndarray = field(default_factory=lambda: np.zeros(0))
    beta_gn_top: np.ndarray = field(default_factory=lambda: np.zeros(0))
    hessian_top_eigenvalues: np.ndarray = field(default_factory=lambda: np.zeros(0))
    beta_hessian_top: np.ndarray = field(default_factory=lambda: np.zeros(0))
    beta_random: np.ndarray = field(default_factory=lambda: np.zeros(0))
    beta_directions: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # Lanczos convergence record per eigenvector source ("gauss_newton", "hessian"):
    # nets.measure.Eigenpairs.summary(), so that a non-converged direction is visible
    eig_info: dict = field(default_factory=dict)


def alignment_metrics(model, inputs, targets, *, loss="mse", n_probe=100, seed=0, directions=None,
                      n_top=3, n_random=3, top_from=("gauss_newton", "hessian"), eig_tol=1e-6,
                      max_samples=None, batch_size=None, chunk=None) -> AlignmentMetrics:
    """Average, directional and cosine alignment of the SGD noise with G at the model's θ.

    See the module docstring for definitions and estimators. Directional β(θ; v) is reported along
    the top-``n_top`` eigenvectors of G (device Lanczos on :func:`gauss_newton_vector_product`)
    and/or of the loss Hessian (:func:`nets.measure.hessian_top_eigenvalues`), as chosen by
    ``top_from``, along ``n_random`` Gaussian random directions, and along the rows of
    ``directions`` (m, p) if given. β is scale-invariant in v. All β values and vᵀΣ₁v are exact
    given the direction; the eigenvectors come from Lanczos to relative accuracy ``eig_tol``
    (its convergence record is in ``eig_info``).

    ``batch_size`` chunks the data in every network evaluation; ``chunk`` bounds the number of
    samples (per-sample gradients) and of vectors (quadratic forms, default 16) vmapped at once.

    Cost: n (or ``max_samples``) + m forward-mode products (vmapped, ``chunk`` at a time via
    :func:`gauss_newton_quadratic_forms`), ``n_probe`` + Lanczos GN products, and the per-sample
    gradient matrix (n, p) in float64 on the device: subsample the inputs for large networks.
    """
    _check_loss(loss)
    if int(n_probe) < 2:
        raise ValueError(f"n_probe must be >= 2, got {n_probe}")
    if isinstance(top_from, str):
        top_from = (top_from,)
    for t in top_from:
        if t not in ("gauss_newton", "hessian"):
            raise ValueError(f"top_from entries must be 'gauss_newton' or 'hessian', got {t!r}")
    loss_fn = network_loss_fn(loss)
    with _m._measuring(model):
        inputs, targets = _m._prepare(model, inputs, targets)
        n = int(inputs.shape[0])
        p, like = _m._num_params(model)
        device, dtype = like.device, like.dtype
        ss = np.random.SeedSequence(seed).spawn(4)
        vchunk = 16 if chunk is None else chunk
        if directions is not None:
            V_dir = torch.as_tensor(directions)
            if V_dir.ndim == 1:
                V_dir = V_dir[None]
            if V_dir.ndim != 2 or V_dir.shape[1] != p:
                raise ValueError(f"directions must have shape (m, {p}), got {tuple(V_dir.shape)}")

        D, _ = _m._centred_gradients(model, loss_fn, inputs, targets, chunk)
        spectrum = _m._cov_spectrum(D)
        L_t, _ = _m._gradient_operator(model, loss_fn, inputs, targets, batch_size)()
        tr_sigma, sigma_fro, L = torch.stack([(D * D).sum() / n, torch.sqrt((spectrum ** 2).sum()), L_t]).tolist()

        # Tr(Σ₁G) = (1/n) Σᵢ dᵢᵀ G dᵢ
        idx = _m._subsample(n, max_samples, "max_samples", ss[0])
        q = _gn_quadratic_forms(model, inputs, D[torch.as_tensor(idx, device=device)], loss, batch_size, vchunk)
        t, t_se = _m._mean_fpc(q, n)

        # ‖G‖_F² by Hutchinson
        gvp = _gn_operator(model, inputs, loss, batch_size)
        gf2 = _m.hutchinson_frobenius_sq(gvp, p, n_samples=n_probe, seed=ss[1], probe="rademacher",
                                         device=device, dtype=dtype)

        rel_t = t_se / abs(t) if t != 0 else 0.0
        rel_g2 = gf2.stderr / gf2.value if gf2.value > 0 else float("nan")
        mu = t / (2.0 * L * gf2.value) if L > 0 and gf2.value > 0 else float("nan")
        mu_se = abs(mu) * np.hypot(rel_t, rel_g2)
        gfro = np.sqrt(max(gf2.value, 0.0))
        cos = t / (sigma_fro * gfro) if sigma_fro > 0 and gfro > 0 else float("nan")
        cos_se = abs(cos) * np.hypot(rel_t, 0.5 * rel_g2)

        def betas(V: torch.Tensor) -> np.ndarray:
            if V.shape[0] == 0:
                return np.zeros(0)
            V = V.to(device=device, dtype=F64)
            vsv = ((D @ V.T) ** 2).sum(dim=0) / n                   # vᵀΣ₁v
            vgv = _gn_quadratic_forms(model, inputs, V, loss, batch_size, vchunk)
            return (vsv / (2.0 * L * vgv)).cpu().numpy()

        out = AlignmentMetrics(
            loss_kind=loss, n_samples=n, loss=L, trace_sigma_g=t, trace_sigma_g_se=t_se,
            gn_frobenius_sq=gf2.value, gn_frobenius_sq_se=gf2.stderr, sigma_frobenius=sigma_fro,
            trace_sigma=tr_sigma, mu=float(mu), mu_se=float(mu_se), cosine=float(cos), cosine_se=float(cos_se),
        )
        n_top = int(n_top)
        if n_top > 0 and "gauss_newton" in top_from:
            eig = _m.top_eigenpairs(gvp, p, k=n_top, method="lanczos", tol=eig_tol, seed=ss[2],
                                    device=device, dtype=dtype)
            out.gn_top_eigenvalues = eig.eigenvalues
            out.beta_gn_top = betas(eig.eigenvectors.T)
            out.eig_info["gauss_newton"] = eig.summary()
        if n_top > 0 and "hessian" in top_from:
            eig = _m.hessian_top_eigenvalues(model, loss_fn, inputs, targets, k=n_top, tol=eig_tol, seed=ss[3],
                                             batch_size=batch_size, return_info=True)
            out.hessian_top_eigenvalues = eig.eigenvalues
            out.beta_hessian_top = betas(eig.eigenvectors.T)
            out.eig_info["hessian"] = eig.summary()
        if int(n_random) > 0:
            probes = _m._Probes(ss[0].spawn(1)[0], p, device)
            out.beta_random = betas(torch.stack([probes.gaussian() for _ in range(int(n_random))]))
        if directions is not None:
            out.beta_directions = betas(V_dir)
    return out
