"""Tests for nets.measure against explicit Hessians / covariances of a tiny float64 MLP.

Reference quantities are computed densely: H from torch.autograd.functional.hessian on the flat
parameter vector (the explicit_hessian fixture), per-sample gradients by a Python loop. Every
statistical tolerance is derived from the exact variance of the estimator (computed from the
explicit matrix) and is 4 standard errors (two-sided normal tail ≈ 6e-5; the seeds are fixed, so
the tests are deterministic).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from nets import measure as M

DT = torch.float64
N_SAMPLES = 40


def make_mlp(seed=0, act=nn.Tanh):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 4), act(), nn.Linear(4, 3)).to(DT)


def make_data(seed=1, n=N_SAMPLES):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 5, generator=g, dtype=DT)
    y = torch.randint(0, 3, (n,), generator=g)
    return X, y


LOSS = nn.CrossEntropyLoss()


@pytest.fixture(scope="module")
def setup(explicit_hessian):
    model = make_mlp()
    X, y = make_data()
    H = explicit_hessian(model, LOSS, X, y)
    return model, X, y, H


# ---------------------------------------------------------------------------------------------
def test_flatten_unflatten_roundtrip(setup):
    model, *_ = setup
    _, params = M.trainable_parameters(model)
    flat = M.flatten_params(model)
    assert flat.shape == (5 * 4 + 4 + 4 * 3 + 3,)
    back = M.unflatten_like(flat, params)
    for a, b in zip(back, params):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="flat"):
        M.unflatten_like(flat[:-1], params)


@pytest.mark.parametrize("batch_size", [None, 7])
def test_hvp_matches_explicit(setup, batch_size):
    model, X, y, H = setup
    v = torch.randn(H.shape[0], generator=torch.Generator().manual_seed(3), dtype=DT)
    hv = M.hessian_vector_product(model, LOSS, X, y, v, batch_size=batch_size)
    # exact algorithm, float64: rounding only (entries O(1), 40 samples) -> 1e-12
    torch.testing.assert_close(hv, H @ v, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="v must"):
        M.hessian_vector_product(model, LOSS, X, y, v[:-1])


def test_top_eigenvalues_lanczos(setup):
    model, X, y, H = setup
    ev = torch.linalg.eigvalsh(H).numpy()[::-1]
    vals, vecs = M.hessian_top_eigenvalues(model, LOSS, X, y, k=3, method="lanczos", tol=1e-12,
                                           return_eigenvectors=True)
    np.testing.assert_allclose(vals, ev[:3], rtol=1e-6)
    Hn, vecs = H.numpy(), vecs.numpy()
    for j in range(3):   # eigenvector residual ‖Hu − λu‖ small
        assert np.linalg.norm(Hn @ vecs[:, j] - vals[j] * vecs[:, j]) < 1e-6 * abs(vals[0])


def test_top_eigenvalues_power(setup):
    model, X, y, H = setup
    ev = torch.linalg.eigvalsh(H).numpy()
    top = ev[::-1]
    # precondition for power iteration to find the *largest* eigenvalues: they dominate in magnitude
    assert top[1] > abs(ev[0])
    vals = M.hessian_top_eigenvalues(model, LOSS, X, y, k=2, method="power", tol=1e-8, max_iter=20000)
    # symmetric operator: a residual ‖Hu − λu‖ ≤ 1e-8·|λ| puts an eigenvalue within 1e-8·|λ| of λ
    # (deflation with converged pairs adds ~1e-8 more), far inside the 1e-6 requirement
    np.testing.assert_allclose(vals, top[:2], rtol=1e-6)


def test_top_eigenvalues_validation(setup):
    model, X, y, H = setup
    with pytest.raises(ValueError, match="method"):
        M.hessian_top_eigenvalues(model, LOSS, X, y, method="arnoldi")
    with pytest.raises(ValueError, match="k must"):
        M.hessian_top_eigenvalues(model, LOSS, X, y, k=H.shape[0])


def test_power_nonconvergence_warns(setup):
    model, X, y, _ = setup
    with pytest.warns(RuntimeWarning, match="did not converge"):
        M.hessian_top_eigenvalues(model, LOSS, X, y, k=1, method="power", tol=1e-14, max_iter=3)


def test_hutchinson_trace_within_4se(setup):
    model, X, y, H = setup
    N = 200
    est = M.hessian_trace_hutchinson(model, LOSS, X, y, n_samples=N, seed=5)
    Hn = H.numpy()
    # Rademacher: Var(zᵀHz) = 2(‖H‖_F² − Σ H_ii²)  =>  tolerance = 4·sqrt(Var/N)
    var = 2.0 * (np.sum(Hn ** 2) - np.sum(np.diag(Hn) ** 2))
    sd_mean = math.sqrt(var / N)
    assert abs(est.value - np.trace(Hn)) < 4 * sd_mean
    # the reported SE estimates sd_mean; for N=200 its relative error is ~ a few percent ×
    # sqrt(kurtosis), so a factor-1.5 window only fails if the SE formula is wrong (e.g. missing √N)
    assert sd_mean / 1.5 < est.stderr < 1.5 * sd_mean
    # same seed -> same numbers
    assert M.hessian_trace_hutchinson(model, LOSS, X, y, n_samples=N, seed=5) == est


def test_hutchinson_unbiased():
    # (a) Rademacher probes make Hutchinson exact for every probe on a diagonal matrix (zᵢ² = 1):
    #     a wrongly scaled probe (e.g. Gaussian, or ±1/√p) fails this exactly.
    d = torch.arange(1.0, 8.0, dtype=DT)
    est = M.hutchinson_trace(lambda z: d * z, d.numel(), n_samples=10, seed=0)
    assert est.value == pytest.approx(float(d.sum()), rel=1e-15) and est.stderr == 0.0
    # (b) unbiasedness on a dense symmetric matrix: mean of many probes within 4 exact SEs
    rng = np.random.default_rng(0)
    A = rng.standard_normal((6, 6))
    A = A + A.T
    At = torch.from_numpy(A)
    N = 20000
    for probe, var in (("rademacher", 2 * (np.sum(A ** 2) - np.sum(np.diag(A) ** 2))),
                       ("gaussian", 2 * np.sum(A ** 2))):
        est = M.hutchinson_trace(lambda z: At @ z, 6, n_samples=N, seed=1, probe=probe)
        assert abs(est.value - np.trace(A)) < 4 * math.sqrt(var / N)
        # the reported SE estimates √(var/N): a wrong SE formula (no √N, or Gaussian variance for
        # Rademacher probes: a factor √(‖A‖_F²/(‖A‖_F² − ΣA_ii²)) > 1.1 here) falls outside ±10 %
        # (relative sampling error of a sample sd ≈ √((κ − 1)/4N) ≈ 1 % for kurtosis κ ≲ 10, N = 20000)
        assert 0.9 < est.stderr / math.sqrt(var / N) < 1.1
        # ‖A‖_F² = E‖Az‖²; per-probe variance of zᵀA²z by the same formulas with A² in place of A
        A2 = A @ A
        v2 = 2 * (np.sum(A2 ** 2) - np.sum(np.diag(A2) ** 2)) if probe == "rademacher" else 2 * np.sum(A2 ** 2)
        f2 = M.hutchinson_frobenius_sq(lambda z: At @ z, 6, n_samples=N, seed=2, probe=probe)
        assert abs(f2.value - np.sum(A ** 2)) < 4 * math.sqrt(v2 / N)
    assert np.sum(A ** 2) / (np.sum(A ** 2) - np.sum(np.diag(A) ** 2)) > 1.1 ** 2


def test_fd_hvp_is_second_order(setup):
    model, X, y, H = setup
    v = torch.randn(H.shape[0], generator=torch.Generator().manual_seed(4), dtype=DT)
    exact = H @ v
    epss = [0.2, 0.1, 0.05]
    errs = [float(torch.linalg.vector_norm(M.hessian_vector_product_fd(model, LOSS, X, y, v, eps=e) - exact))
            for e in epss]
    # central differences: err = c·ε² + O(ε⁴)  =>  halving ε divides the error by ≈ 4
    # (observed order log2(ratio) within ±0.25 of 2; rounding ~1e-16/ε is negligible here)
    for e1, e2 in zip(errs, errs[1:]):
        assert 1.75 < math.log2(e1 / e2) < 2.25
    # and small ε is accurate: error ≤ c·ε² (+ rounding)
    small = M.hessian_vector_product_fd(model, LOSS, X, y, v, eps=1e-4)
    assert float(torch.linalg.vector_norm(small - exact)) < errs[-1] * (1e-4 / 0.05) ** 2 * 2 + 1e-9


def test_hessian_norm_fd_within_4se(setup):
    model, X, y, H = setup
    N = 200
    est = M.hessian_norm_fd(model, LOSS, X, y, n_samples=N, eps=1e-4, seed=7)
    Hn = H.numpy()
    F = np.linalg.norm(Hn, "fro")
    # Gaussian v: Var(‖Hv‖²) = Var(vᵀH²v) = 2‖H²‖_F²; se(F²) = sqrt(that/N); delta method
    # se(F) = se(F²)/(2F). FD bias: relative O(ε²) = O(1e-8), far below se.
    se_F = math.sqrt(2 * np.sum((Hn @ Hn) ** 2) / N) / (2 * F)
    assert abs(est.value - F) < 4 * se_F
    assert se_F / 1.5 < est.stderr < 1.5 * se_F
    # the exact-HVP Hutchinson version agrees as well (Rademacher variance)
    H2 = Hn @ Hn
    se_R = math.sqrt(2 * (np.sum(H2 ** 2) - np.sum(np.diag(H2) ** 2)) / N) / (2 * F)
    ex = M.hessian_frobenius_hutchinson(model, LOSS, X, y, n_samples=N, seed=8)
    assert abs(ex.value - F) < 4 * se_R


def loop_grads(model, loss_fn, X, y):
    rows = []
    with M.eval_mode(model):
        for i in range(X.shape[0]):
            model.zero_grad()
            loss_fn(model(X[i:i + 1]), y[i:i + 1]).backward()
            rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.requires_grad]))
    model.zero_grad()
    return torch.stack(rows)


@pytest.mark.parametrize("chunk", [None, 9])
def test_per_sample_gradients_vs_loop(setup, chunk):
    model, X, y, _ = setup
    G = M.per_sample_gradients(model, LOSS, X, y, chunk=chunk)
    torch.testing.assert_close(G, loop_grads(model, LOSS, X, y), rtol=0, atol=1e-13)
    # their mean is the full gradient (mean loss)
    _, g = M.loss_and_gradient(model, LOSS, X, y)
    torch.testing.assert_close(G.mean(0), g, rtol=0, atol=1e-13)


def test_gradient_noise_stats_vs_explicit(setup):
    model, X, y, H = setup
    n = X.shape[0]
    N = 300
    st = M.gradient_noise_stats(model, LOSS, X, y, k=3, n_probe=N, seed=11)
    G = loop_grads(model, LOSS, X, y)
    gbar = G.mean(0)
    D = G - gbar
    C = (D.T @ D / n).numpy()
    evC = np.linalg.eigvalsh(C)[::-1]
    Hn = H.numpy()
    # deterministic parts: exact up to rounding
    assert st.trace_cov == pytest.approx(np.trace(C), rel=1e-12)
    np.testing.assert_allclose(st.top_cov_eigenvalues, evC[:3], rtol=1e-10)
    assert st.cov_frobenius == pytest.approx(np.linalg.norm(C, "fro"), rel=1e-10)
    assert st.mean_grad_sq_norm == pytest.approx(float(gbar @ gbar), rel=1e-12)
    assert st.b_simple == pytest.approx(np.trace(C) / float(gbar @ gbar), rel=1e-10)
    assert st.trace_cov_hessian == pytest.approx(np.trace(C @ Hn), rel=1e-10)
    assert st.trace_cov_hessian_se == 0.0
    # ‖H‖_F from Rademacher Hutchinson: se as in test_hessian_norm_fd_within_4se
    F = np.linalg.norm(Hn, "fro")
    H2 = Hn @ Hn
    se_F = math.sqrt(2 * (np.sum(H2 ** 2) - np.sum(np.diag(H2) ** 2)) / N) / (2 * F)
    assert abs(st.hessian_frobenius - F) < 4 * se_F
    # alignment = T/(‖C‖_F F̂): relative error equals that of F̂ (to first order)
    align = np.trace(C @ Hn) / (np.linalg.norm(C, "fro") * F)
    assert abs(st.alignment - align) < 4 * abs(align) * se_F / F * 1.01
    assert -1 <= st.alignment <= 1


def test_gradient_noise_stats_subsampled(setup):
    model, X, y, H = setup
    n = X.shape[0]
    G = loop_grads(model, LOSS, X, y)
    D = (G - G.mean(0)).numpy()
    q = np.einsum("ip,pq,iq->i", D, H.numpy(), D)
    m = 15
    st = M.gradient_noise_stats(model, LOSS, X, y, k=1, n_probe=10, max_alignment_samples=m, seed=3)
    # SRSWOR mean: sd = sd_pop/√m · sqrt((n−m)/(n−1)); 4 sd tolerance
    sd = q.std(ddof=1) / math.sqrt(m) * math.sqrt((n - m) / (n - 1)) * math.sqrt((n - 1) / n)
    assert abs(st.trace_cov_hessian - q.mean()) < 4 * sd
    assert st.trace_cov_hessian_se > 0


# ---------------------------------------------------------------------------------------------
# BatchNorm convention
# ---------------------------------------------------------------------------------------------
def make_bn_model(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 3)).to(DT)
    X, _ = make_data(seed=seed + 10, n=64)
    model.train()
    with torch.no_grad():   # non-trivial running statistics
        for _ in range(5):
            model(X * 2 + 1)
    return model


def test_bn_eval_mode_convention_and_mode_restored(explicit_hessian):
    model = make_bn_model()
    X, y = make_data(n=24)
    model.train()
    model[1].eval()          # a mixed state must survive exactly
    flags = [m.training for m in model.modules()]
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    H = explicit_hessian(model, LOSS, X, y)      # eval-mode reference
    v = torch.randn(H.shape[0], generator=torch.Generator().manual_seed(0), dtype=DT)
    # eval mode: the loss is a function of θ, so chunking does not change the HVP
    for bs in (None, 5):
        torch.testing.assert_close(M.hessian_vector_product(model, LOSS, X, y, v, batch_size=bs), H @ v,
                                   rtol=0, atol=1e-12)
    torch.testing.assert_close(M.per_sample_gradients(model, LOSS, X, y, chunk=7), loop_grads(model, LOSS, X, y),
                               rtol=0, atol=1e-13)
    M.hessian_top_eigenvalues(model, LOSS, X, y, k=1)
    M.gradient_noise_stats(model, LOSS, X, y, k=1, n_probe=4)
    M.hessian_norm_fd(model, LOSS, X, y, n_samples=4)
    assert [m.training for m in model.modules()] == flags
    for k, b in model.named_buffers():
        assert torch.equal(b, buffers[k]), k          # running stats never updated


def test_mode_restored_on_error():
    model = make_bn_model()
    model.train()
    X, y = make_data(n=8)
    with pytest.raises(Exception):
        M.hessian_vector_product(model, lambda out, t: out.sum() / 0 + undefined_name, X, y,  # noqa: F821
                                 torch.zeros(sum(p.numel() for p in model.parameters()), dtype=DT))
    assert all(m.training for m in model.modules())


def test_bn_without_running_stats_rejected():
    model = nn.Sequential(nn.Linear(5, 3), nn.BatchNorm1d(3, track_running_stats=False)).to(DT)
    X, y = make_data(n=8)
    with pytest.raises(ValueError, match="track_running_stats"):
        M.per_sample_gradients(model, LOSS, X, y)


# ---------------------------------------------------------------------------------------------
# interpolation
# ---------------------------------------------------------------------------------------------
def test_interpolation_endpoints_and_midpoint_mlp():
    ma, mb = make_mlp(0), make_mlp(1)
    X, y = make_data()
    alphas = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    res = M.interpolate(ma, mb, ma, LOSS, X, y, alphas)
    la, aa = M.evaluate(ma, LOSS, X, y)
    lb, ab = M.evaluate(mb, LOSS, X, y)
    assert res.loss[1] == la and res.accuracy[1] == aa      # exact: (1−0)a + 0·b == a
    assert res.loss[3] == lb and res.accuracy[3] == ab
    mid = copy.deepcopy(ma)
    with torch.no_grad():
        for pm, pa, pb in zip(mid.parameters(), ma.parameters(), mb.parameters()):
            pm.copy_(0.5 * pa + 0.5 * pb)
    lm, am = M.evaluate(mid, LOSS, X, y)
    assert res.loss[2] == pytest.approx(lm, rel=1e-14) and res.accuracy[2] == am
    # α = −1 and 2: 2a − b and 2b − a
    ext = copy.deepcopy(ma)
    with torch.no_grad():
        for pm, pa, pb in zip(ext.parameters(), ma.parameters(), mb.parameters()):
            pm.copy_(2 * pb - pa)
    assert res.loss[4] == pytest.approx(M.evaluate(ext, LOSS, X, y)[0], rel=1e-13)
    assert np.all(res.n_clamped_var == 0) and not res.bn_recalibrated
    # state dicts are accepted too; default α grid is the paper's [−1, 2]
    res2 = M.interpolate(ma.state_dict(), mb.state_dict(), ma, LOSS, X, y)
    assert res2.alphas[0] == -1.0 and res2.alphas[-1] == 2.0 and res2.loss.shape == (31,)
    with pytest.raises(ValueError, match="alphas"):
        M.interpolate(ma, mb, ma, LOSS, X, y, [0.0, float("nan")])


def test_interpolation_bn_buffers():
    ma, mb = make_bn_model(0), make_bn_model(1)
    ma.train()
    X, y = make_data(n=32)
    before = {k: v.clone() for k, v in ma.state_dict().items()}
    res = M.interpolate(ma, mb, ma, LOSS, X, y, [0.0, 0.5, 1.0])
    assert res.loss[0] == M.evaluate(ma, LOSS, X, y)[0]
    assert res.loss[2] == M.evaluate(mb, LOSS, X, y)[0]
    # default convention: running mean/var averaged along with the parameters
    mid = copy.deepcopy(ma)
    sd = {k: (0.5 * v + 0.5 * mb.state_dict()[k]) if torch.is_floating_point(v) else v
          for k, v in ma.state_dict().items()}
    mid.load_state_dict(sd)
    assert res.loss[1] == pytest.approx(M.evaluate(mid, LOSS, X, y)[0], rel=1e-14)
    # the model passed in is untouched (values and mode)
    for k, v in ma.state_dict().items():
        assert torch.equal(v, before[k])
    assert ma.training
    # an extrapolated negative running variance is clamped and counted, never silent
    mc = copy.deepcopy(ma)
    mc[1].running_var.fill_(1.0)
    mc[1].running_var[0] = 10.0                      # α=2: 2·1 − 10 < 0 for that entry
    md = copy.deepcopy(ma)
    md[1].running_var.fill_(1.0)
    r = M.interpolate(mc, md, ma, LOSS, X, y, [2.0])
    assert r.n_clamped_var[0] == 1 and np.isfinite(r.loss[0])


def test_recalibrate_bn_and_interpolation_with_recalibration():
    ma, mb = make_bn_model(0), make_bn_model(1)
    X, y = make_data(n=32)
    Xc, _ = make_data(seed=5, n=50)
    # single chunk: running stats = mean and unbiased variance of the BN input
    m = M.recalibrate_bn(copy.deepcopy(ma), Xc)
    with torch.no_grad():
        pre = ma[0](Xc)
    torch.testing.assert_close(m[1].running_mean, pre.mean(0), rtol=0, atol=1e-13)
    torch.testing.assert_close(m[1].running_var, pre.var(0, unbiased=True), rtol=0, atol=1e-13)
    assert m[1].momentum == ma[1].momentum and m.training == ma.training
    assert [mod.training for mod in m.modules()] == [mod.training for mod in ma.modules()]
    res = M.interpolate(ma, mb, ma, LOSS, X, y, [0.0, 1.0], bn_recalibrate=True, calibration_inputs=Xc)
    assert res.bn_recalibrated
    ref_a = M.recalibrate_bn(copy.deepcopy(ma), Xc)
    ref_b = M.recalibrate_bn(copy.deepcopy(mb), Xc)
    assert res.loss[0] == M.evaluate(ref_a, LOSS, X, y)[0]
    assert res.loss[1] == M.evaluate(ref_b, LOSS, X, y)[0]
    assert res.loss[0] != M.evaluate(ma, LOSS, X, y)[0]     # the statistics really changed
    with pytest.raises(ValueError, match="calibration_inputs"):
        M.interpolate(ma, mb, ma, LOSS, X, y, [0.0], bn_recalibrate=True)


# ---------------------------------------------------------------------------------------------
# frozen parameters, chunking invariance, determinism
# ---------------------------------------------------------------------------------------------
def test_frozen_parameters_are_held_fixed(explicit_hessian):
    model = make_mlp(2)
    model[0].bias.requires_grad_(False)
    X, y = make_data(n=16)
    names, params = M.trainable_parameters(model)
    assert "0.bias" not in names and M.flatten_params(model).numel() == 20 + 12 + 3
    H = explicit_hessian(model, LOSS, X, y)          # Hessian w.r.t. the trainable θ only
    v = torch.randn(H.shape[0], generator=torch.Generator().manual_seed(1), dtype=DT)
    torch.testing.assert_close(M.hessian_vector_product(model, LOSS, X, y, v), H @ v, rtol=0, atol=1e-12)
    G = M.per_sample_gradients(model, LOSS, X, y)
    assert G.shape == (16, H.shape[0])
    torch.testing.assert_close(G, loop_grads(model, LOSS, X, y), rtol=0, atol=1e-13)


def test_chunking_invariance_and_determinism(setup):
    model, X, y, _ = setup
    l1, g1 = M.loss_and_gradient(model, LOSS, X, y)
    l2, g2 = M.loss_and_gradient(model, LOSS, X, y, batch_size=6)
    assert l1 == pytest.approx(l2, rel=1e-14)
    torch.testing.assert_close(g1, g2, rtol=0, atol=1e-15)
    assert M.evaluate(model, LOSS, X, y)[0] == pytest.approx(M.evaluate(model, LOSS, X, y, batch_size=6)[0], rel=1e-14)
    a = M.hessian_norm_fd(model, LOSS, X, y, n_samples=5, seed=3)
    b = M.hessian_norm_fd(model, LOSS, X, y, n_samples=5, seed=3)
    c = M.hessian_norm_fd(model, LOSS, X, y, n_samples=5, seed=4)
    assert a == b and a != c
