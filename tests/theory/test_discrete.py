"""Property tests for theory.discrete: exact stationary statistics of discrete SGD on a quadratic."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theory import discrete

SET = settings(max_examples=20, deadline=None)


def spd(rng, d, cond=30.0):
    """Random SPD matrix with eigenvalues in [1/cond, 1] (log-uniform) and random eigenvectors."""
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    ev = np.exp(rng.uniform(-math.log(cond), 0.0, d))
    h = q @ np.diag(ev) @ q.T
    return 0.5 * (h + h.T)


seeds = st.integers(0, 2**32 - 1)
dims = st.integers(1, 5)


@SET
@given(seeds, dims, st.floats(0.01, 0.99), st.floats(1.0, 1000.0))
def test_lyapunov_residuals(seed, d, frac, s):
    """Solutions satisfy their equations: ||Sigma - A Sigma A^T - lr^2 C/S|| and ||H Sigma + Sigma H - lr C/S||
    <= 1e-10 ||Sigma|| (relative; d <= 5, cond(H) <= 30, lr lambda_max <= 0.99 * 2)."""
    rng = np.random.default_rng(seed)
    h, c = spd(rng, d), spd(rng, d, cond=10.0)
    lr = frac * 2.0 / np.linalg.eigvalsh(h)[-1]
    sd = discrete.stationary_covariance(h, c, lr=lr, batch_size=s)
    a = np.eye(d) - lr * h
    assert np.linalg.norm(sd - a @ sd @ a.T - lr**2 * c / s) <= 1e-10 * np.linalg.norm(sd)
    sc = discrete.stationary_covariance(h, c, lr=lr, batch_size=s, discrete=False)
    assert np.linalg.norm(h @ sc + sc @ h - lr * c / s) <= 1e-10 * np.linalg.norm(sc) * np.linalg.norm(h)
    assert np.all(np.linalg.eigvalsh(sd) > 0) and np.allclose(sd, sd.T, rtol=0, atol=0)


@SET
@given(seeds, dims, st.floats(0.0, 0.95), st.floats(0.01, 0.99), st.floats(1.0, 100.0))
def test_momentum_lyapunov_residual(seed, d, mu, frac, s):
    """Heavy-ball augmented system: Sigma_z = M Sigma_z M^T + G (C/S) G^T with relative residual <= 1e-10,
    for lr up to 0.99 of the heavy-ball stability limit 2 (1 + mu) / lambda_max."""
    rng = np.random.default_rng(seed)
    h, c = spd(rng, d), spd(rng, d, cond=10.0)
    lr = frac * 2.0 * (1 + mu) / np.linalg.eigvalsh(h)[-1]
    sz = discrete.stationary_covariance_momentum(h, c, lr=lr, batch_size=s, momentum=mu, return_full=True)
    m, g = discrete.momentum_transition(h, lr=lr, momentum=mu)
    res = sz - m @ sz @ m.T - g @ (c / s) @ g.T
    assert np.linalg.norm(res) <= 1e-10 * np.linalg.norm(sz)
    np.testing.assert_array_equal(
        discrete.stationary_covariance_momentum(h, c, lr=lr, batch_size=s, momentum=mu), sz[:d, :d]
    )


@SET
@given(st.floats(0.01, 100.0), st.floats(0.001, 1.999), st.floats(1.0, 1000.0), st.floats(0.01, 10.0))
def test_1d_closed_forms(lam, x, s, s2):
    """1-D: Sigma_discrete = n sigma2/(lam (2 - lr lam)), Sigma_continuous = n sigma2/(2 lam) (= T/lam, eq. 2);
    the matrix solvers agree with the closed forms (rel 1e-10, conditioning 1/(2 - lr lam) <= 1e3)."""
    lr = x / lam
    n = lr / s
    vd = discrete.stationary_variance(lam, lr=lr, batch_size=s, sigma2=s2)
    vc = discrete.stationary_variance(lam, lr=lr, batch_size=s, sigma2=s2, discrete=False)
    assert vd == pytest.approx(n * s2 / (lam * (2 - x)), rel=1e-12)
    assert vc == pytest.approx(n * s2 / (2 * lam), rel=1e-12)
    md = discrete.stationary_covariance(np.array([[lam]]), np.array([[s2]]), lr=lr, batch_size=s)
    mc = discrete.stationary_covariance(np.array([[lam]]), np.array([[s2]]), lr=lr, batch_size=s, discrete=False)
    assert md[0, 0] == pytest.approx(vd, rel=1e-10)
    assert mc[0, 0] == pytest.approx(vc, rel=1e-10)
    # relative excess of the discrete over the continuous variance is exactly lr lam / (2 - lr lam)
    assert vd / vc - 1 == pytest.approx(x / (2 - x), rel=1e-9)


@SET
@given(seeds, dims, st.floats(1e-5, 1e-3))
def test_discrete_tends_to_continuous_at_rate_lr(seed, d, n):
    """At fixed noise n = lr/S (same Gibbs covariance), ||Sigma_d - Sigma_c|| / ||Sigma_c|| = O(lr lambda_max):
    halving lr (and S) halves the gap (ratio 2 +- 0.1 for lr lambda_max <= 0.02, where the O((lr lam)^2)
    term shifts it by <= 2 %), and the gap is <= lr lambda_max (1-D exact value: x/(2 - x) <= x).
    (n <= 1e-3 and lr >= 0.01 keep S = lr/n >= 10.)"""
    rng = np.random.default_rng(seed)
    h, c = spd(rng, d), spd(rng, d, cond=10.0)
    lam_max = np.linalg.eigvalsh(h)[-1]
    gaps = []
    for lr in (0.02 / lam_max, 0.01 / lam_max):
        s = lr / n
        sd = discrete.stationary_covariance(h, c, lr=lr, batch_size=s)
        sc = discrete.stationary_covariance(h, c, lr=lr, batch_size=s, discrete=False)
        gaps.append(np.linalg.norm(sd - sc) / np.linalg.norm(sc))
        assert gaps[-1] <= lr * lam_max
    assert gaps[0] / gaps[1] == pytest.approx(2.0, abs=0.1)


def test_discrete_diverges_at_stability_limit():
    """As lr lam -> 2 the stationary variance grows like 1/(2 - lr lam); at lr >= 2/lam_max: ValueError
    naming lr and the limit."""
    lam = 3.0
    lim = discrete.stability_limit(lam)
    assert lim == pytest.approx(2 / 3, rel=1e-15)
    v = [discrete.stationary_variance(lam, lr=lim * (1 - e), batch_size=1, sigma2=1.0) for e in (1e-2, 1e-4, 1e-6)]
    # Var = lr sigma2 / (S lam (2 - lr lam)) with lr = (2/lam)(1 - e): Var proportional to (1 - e)/e
    growth = lambda e: (1 - e) / e  # noqa: E731
    assert v[1] / v[0] == pytest.approx(growth(1e-4) / growth(1e-2), rel=1e-9)
    assert v[2] / v[1] == pytest.approx(growth(1e-6) / growth(1e-4), rel=1e-7)
    h = np.diag([1.0, lam])
    with pytest.raises(ValueError, match=r"lr.*0\.666667"):
        discrete.stationary_covariance(h, np.eye(2), lr=lim, batch_size=1)
    with pytest.raises(ValueError, match="lr"):
        discrete.stationary_variance(lam, lr=lim * 1.01, batch_size=1, sigma2=1.0)
    sd = discrete.stationary_covariance(h, np.eye(2), lr=lim * (1 - 1e-6), batch_size=1)
    assert sd[1, 1] > 1e5 * sd[0, 0]


@settings(max_examples=15, deadline=None)
@given(seeds, dims, st.floats(2.0, 64.0), st.floats(0.1, 0.9))
def test_rescaling_invariance_and_breaking_beta(seed, d, s, frac):
    """Under (lr, S) -> (beta lr, beta S): the continuous covariance is exactly invariant (depends on lr/S);
    the discrete one is not, and stops existing at beta* = 2/(lr lam_max) (breaking point, Sec. 4.4)."""
    rng = np.random.default_rng(seed)
    h, c = spd(rng, d), spd(rng, d, cond=10.0)
    lam_max = np.linalg.eigvalsh(h)[-1]
    lr = frac * 2 / lam_max / 10  # beta* = 10 / frac
    b_star = discrete.breaking_beta(lr, lam_max)
    assert b_star == pytest.approx(10 / frac, rel=1e-12)
    assert discrete.stability_limit(h) == pytest.approx(2 / lam_max, rel=1e-12)
    for beta in (0.5, 2.0, 0.99 * b_star):
        sc0 = discrete.stationary_covariance(h, c, lr=lr, batch_size=s, discrete=False)
        sc1 = discrete.stationary_covariance(h, c, lr=beta * lr, batch_size=beta * s, discrete=False)
        np.testing.assert_allclose(sc1, sc0, rtol=1e-9, atol=1e-12 * np.abs(sc0).max())
        discrete.stationary_covariance(h, c, lr=beta * lr, batch_size=beta * s)  # still stable
    with pytest.raises(ValueError, match="lr"):
        discrete.stationary_covariance(h, c, lr=b_star * lr * (1 + 1e-9), batch_size=b_star * s)


@pytest.mark.parametrize("n_samples", [2, 3, 5, 7])
def test_finite_data_noise_factor_by_enumeration(n_samples):
    """Variance of the mean of a batch drawn uniformly without replacement, computed by enumerating every
    subset, equals sigma2_pop * (1/S - 1/N) N/(N-1) with sigma2_pop the 1/N population variance
    (exact up to rounding, rel 1e-12).  Limits: 1 at S = 1, 0 at S = N, 1/S as N -> inf."""
    rng = np.random.default_rng(n_samples)
    g = rng.standard_normal(n_samples)
    pop_var = np.mean((g - g.mean()) ** 2)
    for s in range(1, n_samples + 1):
        means = np.array([g[list(idx)].mean() for idx in itertools.combinations(range(n_samples), s)])
        var = np.mean((means - g.mean()) ** 2)
        assert discrete.finite_data_noise_factor(s, n_samples) * pop_var == pytest.approx(var, rel=1e-12, abs=1e-15)
    assert discrete.finite_data_noise_factor(1, n_samples) == pytest.approx(1.0, rel=1e-15)
    assert discrete.finite_data_noise_factor(n_samples, n_samples) == 0.0
    assert discrete.finite_data_noise_factor(10, 10**12) == pytest.approx(0.1, rel=1e-10)
    np.testing.assert_allclose(
        discrete.finite_data_noise_factor(np.array([1, 2]), 4), [1.0, (0.5 - 0.25) * 4 / 3], rtol=1e-15
    )


@SET
@given(st.floats(0.01, 10.0), st.floats(0.0, 0.95), st.floats(0.001, 0.999), st.floats(1.0, 100.0), st.floats(0.1, 10.0))
def test_momentum_1d_closed_form(lam, mu, frac, s, s2):
    """1-D heavy ball (AR(2)): Var = (1+mu) n sigma2 / ((1-mu) lam (2(1+mu) - lr lam)), from the Lyapunov
    solver (rel 1e-9); mu = 0 reduces to plain SGD; as lr -> 0 it tends to n sigma2/(2 lam (1-mu)) with
    relative excess exactly lr lam / (2(1+mu) - lr lam)."""
    lr = frac * 2 * (1 + mu) / lam
    n = lr / s
    closed = discrete.stationary_variance_momentum(lam, lr=lr, batch_size=s, sigma2=s2, momentum=mu)
    lyap = discrete.stationary_covariance_momentum(np.array([[lam]]), np.array([[s2]]), lr=lr, batch_size=s, momentum=mu)
    assert lyap[0, 0] == pytest.approx(closed, rel=1e-9)
    assert closed == pytest.approx((1 + mu) * n * s2 / ((1 - mu) * lam * (2 * (1 + mu) - lr * lam)), rel=1e-12)
    limit = discrete.stationary_variance_momentum(lam, lr=lr, batch_size=s, sigma2=s2, momentum=mu, discrete=False)
    assert limit == pytest.approx(n * s2 / (2 * lam * (1 - mu)), rel=1e-12)
    x = lr * lam
    assert closed / limit - 1 == pytest.approx(x / (2 * (1 + mu) - x), rel=1e-8, abs=1e-12)
    if frac < 0.5:
        assert discrete.stationary_variance_momentum(lam, lr=lr, batch_size=s, sigma2=s2, momentum=0.0) == \
            pytest.approx(discrete.stationary_variance(lam, lr=lr, batch_size=s, sigma2=s2), rel=1e-12)


@pytest.mark.parametrize("mu", [0.0, 0.5, 0.9])
def test_stationary_covariance_matches_simulation(mu):
    """Monte-Carlo check of the heavy-ball / plain (mu = 0) stationary covariance in 2-D with non-commuting
    H and C: simulate v <- mu v - lr (H theta + xi), theta <- theta + v, xi ~ N(0, C/S).
    lr = 30 % of the heavy-ball stability limit 2 (1 + mu)/lambda_max: the discrete covariance then
    differs from the continuous (SDE) one by up to ~40 % (1-D: lr lam / (2(1+mu) - lr lam)), far more
    than the sampling error (~1 %).
    Slowest relaxation time tau <= 19 steps for all three mu (|AR(2) roots| <= 0.949); 2000 chains,
    burn-in 300 steps (> 15 tau), 30 snapshots 30 steps apart (snapshot correlation <= e^-1.6, so the
    covariance estimates correlate <= 0.04).  Entry-wise tolerance 6 standard errors,
    SE_ij = sqrt((S_ii S_jj + S_ij^2) / n_eff), n_eff = 2000*30/2 (halved for residual correlation)."""
    rng = np.random.default_rng(np.random.SeedSequence(1234 + int(10 * mu)))
    h = np.array([[1.0, 0.4], [0.4, 0.5]])
    c = np.array([[1.0, -0.3], [-0.3, 2.0]])
    lr, s = 0.3 * 2 * (1 + mu) / np.linalg.eigvalsh(h)[-1], 4.0  # 30 % of the stability limit
    exact = discrete.stationary_covariance_momentum(h, c, lr=lr, batch_size=s, momentum=mu)
    if mu == 0.0:
        np.testing.assert_allclose(exact, discrete.stationary_covariance(h, c, lr=lr, batch_size=s), rtol=1e-10)
    chol = np.linalg.cholesky(c / s)
    chains, burn, gap, snaps = 2000, 300, 30, 30
    theta = np.zeros((chains, 2))
    v = np.zeros((chains, 2))
    samples = []
    for k in range(burn + gap * snaps):
        xi = rng.standard_normal((chains, 2)) @ chol.T
        v = mu * v - lr * (theta @ h + xi)
        theta = theta + v
        if k >= burn and (k - burn) % gap == 0:
            samples.append(theta.copy())
    x = np.concatenate(samples)
    emp = x.T @ x / x.shape[0]
    n_eff = x.shape[0] / 2
    se = np.sqrt((np.outer(np.diag(exact), np.diag(exact)) + exact**2) / n_eff)
    assert np.all(np.abs(emp - exact) <= 6 * se), (emp, exact, se)
    # the simulation resolves the discretisation: the continuous-time (SDE) covariance is rejected
    # (heavy-ball SDE limit: Sigma_c with lr -> lr / (1 - mu))
    cont = discrete.stationary_covariance(h, c, lr=lr / (1 - mu), batch_size=s, discrete=False)
    assert np.max(np.abs(emp - cont) / se) > 6


def test_bad_inputs_raise():
    """Invalid inputs raise ValueError naming the parameter."""
    h = np.diag([1.0, 2.0])
    with pytest.raises(ValueError, match="hessian"):
        discrete.stationary_covariance(np.diag([1.0, -1.0]), np.eye(2), lr=0.1, batch_size=1)
    with pytest.raises(ValueError, match="noise_cov"):
        discrete.stationary_covariance(h, np.diag([1.0, -1.0]), lr=0.1, batch_size=1)
    with pytest.raises(ValueError, match="noise_cov"):
        discrete.stationary_covariance(h, np.eye(3), lr=0.1, batch_size=1)
    with pytest.raises(ValueError, match="lr"):
        discrete.stationary_covariance(h, np.eye(2), lr=0.0, batch_size=1)
    with pytest.raises(ValueError, match="batch_size"):
        discrete.stationary_covariance(h, np.eye(2), lr=0.1, batch_size=0.5)
    with pytest.raises(ValueError, match="lam"):
        discrete.stationary_variance(-1.0, lr=0.1, batch_size=1, sigma2=1.0)
    with pytest.raises(ValueError, match="sigma2"):
        discrete.stationary_variance(1.0, lr=0.1, batch_size=1, sigma2=np.nan)
    with pytest.raises(ValueError, match="momentum"):
        discrete.stationary_covariance_momentum(h, np.eye(2), lr=0.1, batch_size=1, momentum=1.0)
    with pytest.raises(ValueError, match="momentum"):
        discrete.stationary_variance_momentum(1.0, lr=0.1, batch_size=1, sigma2=1.0, momentum=-0.1)
    with pytest.raises(ValueError, match="lr"):
        discrete.stationary_covariance_momentum(h, np.eye(2), lr=2.0 * 1.5 / 2.0, batch_size=1, momentum=0.5)
    with pytest.raises(ValueError, match="lr"):
        discrete.stationary_variance_momentum(1.0, lr=3.1, batch_size=1, sigma2=1.0, momentum=0.5)
    with pytest.raises(ValueError, match="hessian"):
        discrete.stability_limit(np.diag([1.0, -1.0]))
    with pytest.raises(ValueError, match="lam"):
        discrete.stability_limit(0.0)
    with pytest.raises(ValueError, match="lam_max"):
        discrete.breaking_beta(0.1, 0.0)
    with pytest.raises(ValueError, match="batch_size"):
        discrete.finite_data_noise_factor(11, 10)
    with pytest.raises(ValueError, match="n_samples"):
        discrete.finite_data_noise_factor(1, 1)


@SET
@given(seeds, dims, st.floats(1e-4, 1.0), st.floats(1.0, 1000.0), st.floats(0.01, 10.0))
def test_continuous_covariance_is_gibbs_covariance(seed, d, lr, s, s2):
    """With isotropic C = sigma2 I the continuous Lyapunov solution is the covariance of the Gibbs
    density exp(-theta^T H theta / (2T)) of eq. 2: Sigma = T H^-1, T = lr sigma2 / (2 S) (rel 1e-9)."""
    rng = np.random.default_rng(seed)
    h = spd(rng, d)
    sc = discrete.stationary_covariance(h, s2 * np.eye(d), lr=lr, batch_size=s, discrete=False)
    t = lr * s2 / (2 * s)
    np.testing.assert_allclose(sc, t * np.linalg.inv(h), rtol=1e-9, atol=1e-12 * t * np.linalg.norm(np.linalg.inv(h)))
