"""Every measurement in float32 on a device against the float64 CPU reference of the same model,
data and seeds.

Parametrised over ``"cpu"`` and ``"cuda"`` (marked ``gpu``, skipped without CUDA): the CPU case is
the same comparison (float32 vs float64), so its logic runs on every CI machine. The reference is
the float64 model on the CPU, whose values test_measure, test_geometry and test_lanczos check
against explicit matrices; the subject is that model cast to float32 on the device, given the
float64 CPU data (the functions convert it). Probes and start vectors are generated on the host
from the seed, identical on both sides, so no sampling error enters the differences.

Tolerance: a first-order rounding-error bound. u = 2⁻²⁴ is float32's unit roundoff; a sum of at
most L rounded terms is in error by at most γ_L·Σ|terms|, γ_L = Lu/(1 − Lu) (Higham, Accuracy and
Stability of Numerical Algorithms, 2nd ed., §3.1). Here L = 128 bounds every accumulation (40
samples, widths ≤ 32, 3×3 conv windows), so γ = γ₁₂₈ ≈ 7.6e-6. Propagated with this model's
explicit float64 matrices (H, G, per-sample gradients gᵢ, dᵢ = gᵢ − ḡ, |δdᵢ| ≤ γaᵢ with
aᵢ = |gᵢ| + mean|g|), each quantity's bound is:

* Hv: ‖δ‖ ≤ γ‖|H||v|‖;  Lanczos λᵢ: γ‖|H|‖₂ + 2·tol·|λᵢ| (Weyl; both runs stop within tol·|λᵢ|);
* Hutchinson tr H: γ·1ᵀ|H|1 (Rademacher: |δzᵀHz| ≤ γ|z|ᵀ|H||z|), its SE: that over √(N − 1);
* ‖H‖_F: γ‖|H|1‖ (δ‖Hz‖² ≤ 2‖Hz‖γ‖|H|1‖, mean‖Hz‖ ≤ RMS‖Hz‖ = ‖H‖_F estimate, δ√X = δX/2√X);
  ‖G‖_F²: 2γ‖|G|1‖·√(‖G‖_F² estimate);
* FD ‖H‖_F with step ε: maxⱼ‖vⱼ‖·(γ‖mean|g|‖ + u‖H‖₂(‖θ‖ + ε))/ε (rounding of the two
  gradients, and of θ ± εu to float32, divided by the step);
* tr C, ‖C‖_F, λ(C): (2/n)‖D‖_F·γ‖a‖_F (δC = (DᵀδD + δDᵀD)/n; Weyl); ‖ḡ‖²: 2γ‖ḡ‖‖mean|g|‖;
* Tr(CH) = (1/n)Σ dᵢᵀHdᵢ: (1/n)Σ(2‖Hdᵢ‖γ‖aᵢ‖ + γ|dᵢ|ᵀ|H||dᵢ|), likewise with G;
* the loss: γL (every ℓᵢ ≥ 0); ratios (b_simple, alignment, μ, cosine, β): relative bounds add.

Evaluating the float32 model at its rounded parameters adds a change of relative size ~u, far
below γ. β along Lanczos eigenvectors is not compared: float32 fixes those directions only to
residual/gap (test_geometry checks them against explicit eigenvectors in float64).

The bounds are tight enough to matter: bfloat16 products (u = 2⁻⁸, eight times TF32's 2⁻¹¹) must
exceed 8× the bound on the Hessian quantities, so errors of TF32's size would fail them too.
"""
from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from nets import geometry as GM
from nets import measure as M

LOSS = nn.CrossEntropyLoss()
U32 = 2.0 ** -24
GAMMA = 128 * U32 / (1 - 128 * U32)
DEVICES = ["cpu", pytest.param("cuda", marks=[
    pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")])]
N_PROBE = 10
KW = dict(
    eig=dict(k=2, tol=1e-5),
    trace=dict(n_samples=N_PROBE, seed=2),
    frob=dict(n_samples=N_PROBE, seed=3),
    fd=dict(n_samples=N_PROBE, eps=1e-3, seed=4),
    noise=dict(k=2, n_probe=N_PROBE, seed=6),
    align=dict(loss="ce", n_probe=N_PROBE, n_top=1, n_random=2, seed=7, eig_tol=1e-5),
)


def measure_all(model, X, y, v):
    """Every measurement, with the seeds and settings of KW (the function under comparison)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # bfloat16 Lanczos cannot reach tol
        return dict(
            hvp=M.hessian_vector_product(model, LOSS, X, y, v).cpu().double(),
            eig=M.hessian_top_eigenvalues(model, LOSS, X, y, return_info=True, **KW["eig"]),
            trace=M.hessian_trace_hutchinson(model, LOSS, X, y, **KW["trace"]),
            frob=M.hessian_frobenius_hutchinson(model, LOSS, X, y, **KW["frob"]),
            fd=M.hessian_norm_fd(model, LOSS, X, y, **KW["fd"]),
            noise=M.gradient_noise_stats(model, LOSS, X, y, **KW["noise"]),
            align=GM.alignment_metrics(model, X, y, **KW["align"]),
        )


@pytest.fixture(scope="module", params=["bn_mlp", "tiny_conv"])
def reference(request, make_small_model, explicit_hessian, explicit_gauss_newton):
    """The float64 CPU model, its measurements, and the bounds derived from its explicit matrices."""
    make, shapes = make_small_model
    model = make(request.param)
    g = torch.Generator().manual_seed(1)
    X = torch.randn(40, *shapes[request.param], generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=g)
    p = sum(t.numel() for t in model.parameters())
    v = torch.randn(p, generator=g, dtype=torch.float64)
    ref = measure_all(model, X, y, v)

    H = explicit_hessian(model, LOSS, X, y).numpy()
    G, _, L = explicit_gauss_newton(model, X, y, "ce")
    gs = M.per_sample_gradients(model, LOSS, X, y).numpy()
    n = gs.shape[0]
    gbar, gabs = gs.mean(0), np.abs(gs).mean(0)
    D, a = gs - gbar, np.abs(gs) + gabs
    absH, absG, ones = np.abs(H), np.abs(G), np.ones(p)
    theta = M.flatten_params(model).numpy()
    vn = v.numpy()
    probes = M._Probes(KW["fd"]["seed"], p, "cpu")
    fd_norms = [float(torch.linalg.vector_norm(probes.gaussian())) for _ in range(N_PROBE)]
    a_norm = np.linalg.norm(a, axis=1)

    def quad_bound(A, absA):   # bound on δ of (1/n)Σ dᵢᵀAdᵢ
        return float(np.mean([2 * np.linalg.norm(A @ d) * GAMMA * an + GAMMA * np.abs(d) @ absA @ np.abs(d)
                              for d, an in zip(D, a_norm)]))

    b = dict(
        hvp=GAMMA * np.linalg.norm(absH @ np.abs(vn)),
        eig=GAMMA * np.linalg.norm(absH, 2) + 2 * KW["eig"]["tol"] * np.abs(ref["eig"].eigenvalues),
        trace=GAMMA * absH.sum(),
        frob=GAMMA * np.linalg.norm(absH @ ones),
        fd=max(fd_norms) * (GAMMA * np.linalg.norm(gabs) + U32 * np.linalg.norm(H, 2)
                            * (np.linalg.norm(theta) + KW["fd"]["eps"])) / KW["fd"]["eps"],
        cov=2 / n * np.linalg.norm(D) * GAMMA * np.linalg.norm(a),
        gsq=2 * GAMMA * np.linalg.norm(gbar) * np.linalg.norm(gabs),
        loss=GAMMA * L,
        tr_ch=quad_bound(H, absH),
        tr_cg=quad_bound(G, absG),
        gn_f2=2 * GAMMA * np.linalg.norm(absG @ ones) * np.sqrt(ref["align"].gn_frobenius_sq),
        gn_eig=(GAMMA * np.linalg.norm(absG, 2)
                + 2 * KW["align"]["eig_tol"] * np.abs(ref["align"].gn_top_eigenvalues)),
        h_eig=(GAMMA * np.linalg.norm(absH, 2)
               + 2 * KW["align"]["eig_tol"] * np.abs(ref["align"].hessian_top_eigenvalues)),
    )
    # β = vᵀΣv/(2L·vᵀGv) along the random directions (regenerated: the same host stream)
    ss = np.random.SeedSequence(KW["align"]["seed"]).spawn(4)
    rp = M._Probes(ss[0].spawn(1)[0], p, "cpu")
    rel_beta = []
    for _ in range(KW["align"]["n_random"]):
        r = rp.gaussian().numpy()
        vsv, vgv = np.mean((D @ r) ** 2), r @ G @ r
        d_vsv = 2 / n * np.sum(np.abs(D @ r) * GAMMA * (a @ np.abs(r)))
        rel_beta.append(d_vsv / vsv + GAMMA * np.abs(r) @ absG @ np.abs(r) / vgv + b["loss"] / L)
    b["beta_rel"] = np.array(rel_beta)
    return model, X, y, v, ref, b


def _close(name, got, want, bound, ratios):
    got, want, bound = (np.atleast_1d(np.asarray(x, dtype=np.float64)) for x in (got, want, bound))
    err = np.abs(got - want)
    ratios[name] = float(np.max(err / bound))
    assert np.all(err <= bound), f"{name}: |{got} - {want}| = {err} > {bound}"


def compare(sub, ref, b):
    """Check every compared quantity of ``sub`` against ``ref``; returns error/bound per name."""
    ratios = {}
    hv = ref["hvp"]
    _close("hvp", float(torch.linalg.vector_norm(sub["hvp"] - hv)), 0.0, b["hvp"], ratios)
    _close("eig", sub["eig"].eigenvalues, ref["eig"].eigenvalues, b["eig"], ratios)
    _close("trace", sub["trace"].value, ref["trace"].value, b["trace"], ratios)
    _close("trace_se", sub["trace"].stderr, ref["trace"].stderr, b["trace"] / np.sqrt(N_PROBE - 1), ratios)
    _close("frob", sub["frob"].value, ref["frob"].value, b["frob"], ratios)
    _close("fd", sub["fd"].value, ref["fd"].value, b["fd"], ratios)
    s, r = sub["noise"], ref["noise"]
    _close("noise.loss", s.loss, r.loss, b["loss"], ratios)
    for f in ("trace_cov", "cov_frobenius", "top_cov_eigenvalues"):
        _close(f"noise.{f}", getattr(s, f), getattr(r, f), b["cov"], ratios)
    _close("noise.mean_grad_sq_norm", s.mean_grad_sq_norm, r.mean_grad_sq_norm, b["gsq"], ratios)
    _close("noise.b_simple", s.b_simple, r.b_simple,
           r.b_simple * (b["cov"] / r.trace_cov + b["gsq"] / r.mean_grad_sq_norm), ratios)
    _close("noise.trace_cov_hessian", s.trace_cov_hessian, r.trace_cov_hessian, b["tr_ch"], ratios)
    _close("noise.hessian_frobenius", s.hessian_frobenius, r.hessian_frobenius, b["frob"], ratios)
    _close("noise.alignment", s.alignment, r.alignment, abs(r.alignment) * (
        b["tr_ch"] / abs(r.trace_cov_hessian) + b["cov"] / r.cov_frobenius + b["frob"] / r.hessian_frobenius), ratios)
    s, r = sub["align"], ref["align"]
    _close("align.loss", s.loss, r.loss, b["loss"], ratios)
    _close("align.trace_sigma", s.trace_sigma, r.trace_sigma, b["cov"], ratios)
    _close("align.sigma_frobenius", s.sigma_frobenius, r.sigma_frobenius, b["cov"], ratios)
    _close("align.trace_sigma_g", s.trace_sigma_g, r.trace_sigma_g, b["tr_cg"], ratios)
    _close("align.gn_frobenius_sq", s.gn_frobenius_sq, r.gn_frobenius_sq, b["gn_f2"], ratios)
    rel = b["tr_cg"] / abs(r.trace_sigma_g) + b["gn_f2"] / r.gn_frobenius_sq
    _close("align.mu", s.mu, r.mu, abs(r.mu) * (rel + b["loss"] / r.loss), ratios)
    rel = b["tr_cg"] / abs(r.trace_sigma_g) + b["cov"] / r.sigma_frobenius + 0.5 * b["gn_f2"] / r.gn_frobenius_sq
    _close("align.cosine", s.cosine, r.cosine, abs(r.cosine) * rel, ratios)
    _close("align.gn_top_eigenvalues", s.gn_top_eigenvalues, r.gn_top_eigenvalues, b["gn_eig"], ratios)
    _close("align.hessian_top_eigenvalues", s.hessian_top_eigenvalues, r.hessian_top_eigenvalues, b["h_eig"], ratios)
    _close("align.beta_random", s.beta_random, r.beta_random, np.abs(r.beta_random) * b["beta_rel"], ratios)
    return ratios


@pytest.mark.parametrize("device", DEVICES)
def test_float32_on_device_matches_float64_reference(reference, device):
    model64, X, y, v, ref, b = reference
    model = copy.deepcopy(model64).to(device=device, dtype=torch.float32)
    sub = measure_all(model, X, y, v)
    assert sub["eig"].converged and all(e["converged"] for e in sub["align"].eig_info.values())
    assert sub["hvp"].dtype == torch.float64 and ref["eig"].converged
    ratios = compare(sub, ref, b)
    print({k: f"{r:.1e}" for k, r in ratios.items()})   # error/bound per quantity (pytest -s)


@pytest.mark.parametrize("device", DEVICES)
def test_bounds_reject_bfloat16_products(reference, device):
    model64, X, y, v, ref, b = reference
    model = copy.deepcopy(model64).to(device=device, dtype=torch.bfloat16)
    with M.measurement_precision():
        sub = dict(hvp=M.hessian_vector_product(model, LOSS, X, y, v).cpu().double())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sub["eig"] = M.hessian_top_eigenvalues(model, LOSS, X, y, max_iter=30, **KW["eig"])
    sub["frob"] = M.hessian_frobenius_hutchinson(model, LOSS, X, y, **KW["frob"]).value
    sub["fd"] = M.hessian_norm_fd(model, LOSS, X, y, **KW["fd"]).value
    err = dict(hvp=float(torch.linalg.vector_norm(sub["hvp"] - ref["hvp"])),
               eig=np.max(np.abs(sub["eig"] - ref["eig"].eigenvalues) / b["eig"]) * 1.0,
               frob=abs(sub["frob"] - ref["frob"].value), fd=abs(sub["fd"] - ref["fd"].value))
    print({k: f"{err[k] / (1.0 if k == 'eig' else b[k]):.0f}" for k in err})   # error/bound (pytest -s)
    assert err["hvp"] > 8 * b["hvp"]
    assert err["eig"] > 8
    assert err["frob"] > 8 * b["frob"]
    assert err["fd"] > 8 * b["fd"]
