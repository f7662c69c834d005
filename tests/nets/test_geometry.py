"""Tests for nets.geometry: matrix-free noise-geometry metrics vs explicit matrices.

Explicit references (the explicit_gauss_newton fixture): per-sample Jacobians Jᵢ from
torch.autograd.functional.jacobian, G = (1/n)Σ JᵢᵀMᵢJᵢ, Σ₁ from the per-sample gradients
Jᵢᵀ∂ℓᵢ/∂f, and theory.noise_geometry's matrix formulas. Deterministic
parts must agree to rounding; Hutchinson parts within 4 exact standard errors (derived from the
explicit G: Rademacher Var(zᵀG²z) = 2(‖G²‖_F² − Σ(G²)ᵢᵢ²)).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nets import geometry as GM
from nets import measure as M

DT = torch.float64


def mlp(seed=0, k=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, k)).to(DT)


def data(n=30, k=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 5, generator=g, dtype=DT)
    return X, torch.randn(n, k, generator=g, dtype=DT), torch.randint(0, k, (n,), generator=g)


@pytest.fixture(scope="module", params=["mse", "ce"])
def case(request, explicit_gauss_newton):
    loss = request.param
    model = mlp()
    X, Y, y = data()
    T = Y if loss == "mse" else y
    G, S, L = explicit_gauss_newton(model, X, T, loss)
    return loss, model, X, T, G, S, L


def test_gn_vector_product_and_quadratic_forms(case):
    loss, model, X, T, G, S, L = case
    rng = torch.Generator().manual_seed(2)
    V = torch.randn(4, G.shape[0], generator=rng, dtype=DT)
    for bs in (None, 7):
        for v in V:
            gv = GM.gauss_newton_vector_product(model, X, v, loss=loss, batch_size=bs)
            np.testing.assert_allclose(gv.numpy(), G @ v.numpy(), rtol=0, atol=1e-13)
        q = GM.gauss_newton_quadratic_forms(model, X, V, loss=loss, batch_size=bs, chunk=3)
        np.testing.assert_allclose(q.numpy(), np.einsum("mp,pq,mq->m", V.numpy(), G, V.numpy()), rtol=1e-12)


def test_per_sample_gradients_match_loss_convention(case):
    loss, model, X, T, G, S, L = case
    fn = GM.network_loss_fn(loss)
    g = M.per_sample_gradients(model, fn, X, T)
    D = g - g.mean(0)
    np.testing.assert_allclose((D.T @ D / X.shape[0]).numpy(), S, rtol=0, atol=1e-13)
    assert M.evaluate(model, fn, X, T)[0] == pytest.approx(L, rel=1e-13)


def test_alignment_metrics_vs_explicit(case):
    loss, model, X, T, G, S, L = case
    N = 200
    rng = np.random.default_rng(3)
    dirs = rng.standard_normal((2, G.shape[0]))
    r = GM.alignment_metrics(model, X, T, loss=loss, n_probe=N, seed=4, directions=dirs, n_top=2,
                             n_random=2, eig_tol=1e-12)
    trSG = np.trace(S @ G)
    G2 = G @ G
    g2 = np.sum(G ** 2)
    # deterministic parts: exact up to rounding
    assert r.loss == pytest.approx(L, rel=1e-13)
    assert r.trace_sigma_g == pytest.approx(trSG, rel=1e-11) and r.trace_sigma_g_se == 0.0
    assert r.trace_sigma == pytest.approx(np.trace(S), rel=1e-12)
    assert r.sigma_frobenius == pytest.approx(np.linalg.norm(S, "fro"), rel=1e-10)
    # Hutchinson ‖G‖_F²: 4 exact SEs
    se_g2 = math.sqrt(2 * (np.sum(G2 ** 2) - np.sum(np.diag(G2) ** 2)) / N)
    assert abs(r.gn_frobenius_sq - g2) < 4 * se_g2
    assert se_g2 / 1.5 < r.gn_frobenius_sq_se < 1.5 * se_g2
    # μ = T/(2L ĝ2): first-order relative error = that of ĝ2; cosine: half of it
    # (tolerance 4·rel-SE, widened by 10% for the second-order term (4·rel)² ≲ 1%)
    mu = trSG / (2 * L * g2)
    cos = trSG / (np.linalg.norm(S, "fro") * math.sqrt(g2))
    rel = se_g2 / g2
    assert abs(r.mu - mu) < 1.1 * 4 * rel * mu
    assert abs(r.cosine - cos) < 1.1 * 4 * 0.5 * rel * cos
    assert 0 < r.cosine <= 1 + 4 * rel
    # theory's matrix formula gives the same μ with the exact ‖G‖_F²
    noise_geometry = pytest.importorskip("theory.noise_geometry")
    assert noise_geometry.average_alignment(S, G, L) == pytest.approx(mu, rel=1e-12)
    # directional β: exact given the direction
    beta = lambda v: (v @ S @ v) / (2 * L * (v @ G @ v))  # noqa: E731
    np.testing.assert_allclose(r.beta_directions, [beta(v) for v in dirs], rtol=1e-11)
    for v, b in zip(dirs, r.beta_directions):
        assert noise_geometry.directional_alignment(S, G, L, v) == pytest.approx(b, rel=1e-11)
    # along the top eigenvectors of G (Lanczos, tol 1e-12): eigenvector error ≤ residual/gap
    # ≈ 1e-12·λ/gap ≤ 1e-10 when the relative gaps exceed 1% (checked), so β agrees to ≪ 1e-6
    ev, U = np.linalg.eigh(G)
    assert ev[-1] - ev[-2] > 0.01 * ev[-1] and ev[-2] - ev[-3] > 0.01 * ev[-1]
    np.testing.assert_allclose(r.gn_top_eigenvalues, ev[::-1][:2], rtol=1e-9)
    np.testing.assert_allclose(r.beta_gn_top, [beta(U[:, -1]), beta(U[:, -2])], rtol=1e-6)
    assert r.hessian_top_eigenvalues.shape == (2,) and r.beta_random.shape == (2,)
    assert np.all(r.beta_random > 0)


def test_hessian_directions_use_the_same_loss(case):
    loss, model, X, T, G, S, L = case
    r = GM.alignment_metrics(model, X, T, loss=loss, n_probe=2, n_top=1, n_random=0,
                             top_from="hessian", eig_tol=1e-12)
    fn = GM.network_loss_fn(loss)
    vals, vecs = M.hessian_top_eigenvalues(model, fn, X, T, k=1, tol=1e-12, return_eigenvectors=True)
    np.testing.assert_allclose(r.hessian_top_eigenvalues, vals, rtol=1e-9)
    v = vecs[:, 0].numpy()
    np.testing.assert_allclose(r.beta_hessian_top, [(v @ S @ v) / (2 * L * (v @ G @ v))], rtol=1e-6)
    assert r.gn_top_eigenvalues.size == 0


def linear_equal_residuals(n_pairs=12, d=20, r=0.7, paired=True, seed=0):
    """f(x) = wᵀx (no bias), square loss, |rᵢ| = r for every sample.

    paired=True: samples come in pairs (x, −x) with the same residual, so ḡ = 0 exactly and
    Σ₁ = (1/n)Σ r² xᵢxᵢᵀ = 2L·G: μ = 1 and β(v) = 1 for every v (theory's ideal case).
    """
    rng = np.random.default_rng(seed)
    model = nn.Linear(d, 1, bias=False).to(DT)
    w = model.weight.detach().numpy()[0]
    xs = rng.standard_normal((n_pairs, d))
    signs = rng.choice([-1.0, 1.0], size=n_pairs)
    if paired:
        X = np.concatenate([xs, -xs])
        res = np.concatenate([signs, signs]) * r
    else:
        X = np.concatenate([xs, rng.standard_normal((n_pairs, d))])
        res = rng.choice([-1.0, 1.0], size=2 * n_pairs) * r
    y = X @ w - res                       # residual f − y = res
    return model, torch.from_numpy(X), torch.from_numpy(y[:, None]), X, y, w


def test_linear_equal_residuals_mu_is_one():
    model, Xt, Yt, X, y, w = linear_equal_residuals()
    N = 200
    r = GM.alignment_metrics(model, Xt, Yt, loss="mse", n_probe=N, seed=0, n_top=2, n_random=3,
                             directions=np.eye(20)[:2], eig_tol=1e-12)
    n = X.shape[0]
    G = X.T @ X / n
    G2 = G @ G
    se_g2 = math.sqrt(2 * (np.sum(G2 ** 2) - np.sum(np.diag(G2) ** 2)) / N)
    # Σ₁ = 2L·G exactly, so Tr(Σ₁G) = 2L‖G‖_F² and μ̂ = ‖G‖_F²/ĝ2: 1 within 4 relative SEs
    assert r.trace_sigma_g == pytest.approx(2 * r.loss * np.sum(G ** 2), rel=1e-12)
    assert abs(r.mu - 1.0) < 1.1 * 4 * se_g2 / np.sum(G ** 2)
    assert abs(r.cosine - 1.0) < 1.1 * 4 * 0.5 * se_g2 / np.sum(G ** 2)
    # β(v) = 1 for every direction (deterministic): eigen, random and given directions
    for b in (r.beta_gn_top, r.beta_hessian_top, r.beta_random, r.beta_directions):
        np.testing.assert_allclose(b, 1.0, rtol=1e-8)
    noise_geometry = pytest.importorskip("theory.noise_geometry")
    assert noise_geometry.linear_average_alignment(X, y, w) == pytest.approx(1.0, rel=1e-12)


def test_linear_random_residual_signs_mu_near_one():
    # ḡ ≠ 0 now: μ = 1 − ḡᵀGḡ/(2L‖G‖_F²), close to 1 (the correction is O(1/n))
    model, Xt, Yt, X, y, w = linear_equal_residuals(n_pairs=40, d=5, paired=False, seed=1)
    N = 200
    r = GM.alignment_metrics(model, Xt, Yt, loss="mse", n_probe=N, seed=1, n_top=0, n_random=0)
    n = X.shape[0]
    G = X.T @ X / n
    resid = X @ w - y
    gbar = X.T @ resid / n
    L = 0.5 * np.mean(resid ** 2)
    mu_exact = 1 - gbar @ G @ gbar / (2 * L * np.sum(G ** 2))
    assert 0.9 < mu_exact < 1.0
    G2 = G @ G
    rel = math.sqrt(2 * (np.sum(G2 ** 2) - np.sum(np.diag(G2) ** 2)) / N) / np.sum(G ** 2)
    assert abs(r.mu - mu_exact) < 1.1 * 4 * rel * mu_exact
    noise_geometry = pytest.importorskip("theory.noise_geometry")
    assert noise_geometry.linear_average_alignment(X, y, w) == pytest.approx(mu_exact, rel=1e-10)


def test_subsampled_trace_and_validation(explicit_gauss_newton):
    model = mlp()
    X, Y, _ = data()
    G, S, L = explicit_gauss_newton(model, X, Y, "mse")
    r = GM.alignment_metrics(model, X, Y, loss="mse", n_probe=4, max_samples=10, n_top=0, n_random=0, seed=2)
    fn = GM.network_loss_fn("mse")
    g = M.per_sample_gradients(model, fn, X, Y).numpy()
    D = g - g.mean(0)
    q = np.einsum("ip,pq,iq->i", D, G, D)
    n, m = X.shape[0], 10
    sd = q.std(ddof=0) / math.sqrt(m) * math.sqrt((n - m) / (n - 1))   # SRSWOR standard deviation
    assert abs(r.trace_sigma_g - q.mean()) < 4 * sd and r.trace_sigma_g_se > 0
    with pytest.raises(ValueError, match="loss"):
        GM.alignment_metrics(model, X, Y, loss="hinge")
    with pytest.raises(ValueError, match="directions"):
        GM.alignment_metrics(model, X, Y, n_probe=2, n_top=0, n_random=0, directions=np.ones((1, 3)))


def test_bn_model_eval_convention_and_modes(explicit_gauss_newton):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 3)).to(DT)
    X, Y, y = data(n=20)
    with torch.no_grad():
        model(X * 3 + 1)                 # non-trivial running statistics (train mode)
    model.train()
    bufs = {k: v.clone() for k, v in model.named_buffers()}
    G, S, L = explicit_gauss_newton(model, X, y, "ce")   # eval-mode reference
    r = GM.alignment_metrics(model, X, y, loss="ce", n_probe=4, n_top=1, n_random=1, batch_size=6)
    assert r.trace_sigma_g == pytest.approx(np.trace(S @ G), rel=1e-11)
    assert all(m.training for m in model.modules())
    for k, b in model.named_buffers():
        assert torch.equal(b, bufs[k])


def test_same_seed_same_numbers():
    model = mlp(1)
    X, Y, _ = data(n=12)
    kw = dict(loss="mse", n_probe=3, n_top=0, n_random=2)
    a = GM.alignment_metrics(model, X, Y, seed=5, **kw)
    b = GM.alignment_metrics(model, X, Y, seed=5, **kw)
    c = GM.alignment_metrics(model, X, Y, seed=6, **kw)
    assert a.gn_frobenius_sq == b.gn_frobenius_sq and np.array_equal(a.beta_random, b.beta_random)
    assert a.gn_frobenius_sq != c.gn_frobenius_sq
    assert a.trace_sigma_g == c.trace_sigma_g          # the deterministic part does not use the seed
