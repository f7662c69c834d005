"""Property tests of theory.noise_geometry (alignment metrics, linear-model closed forms, escape theory).

Each test's docstring states the law it checks.  Floating-point tolerances: the metrics are
ratios of O(d^2) sums of products of O(1) numbers, so their relative rounding error is a few
hundred ulps at most; 1e-9 relative leaves a wide margin while any algebraic error (a factor,
a missing term) would be O(1e-2) or larger.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theory import noise_geometry as ng

RTOL = 1e-9  # rounding only; see module docstring

seeds = st.integers(min_value=0, max_value=2**32 - 1)


def _random_problem(seed, n=None, d=None, label_noise=True):
    rng = np.random.default_rng(seed)
    n = n or int(rng.integers(2, 12))
    d = d or int(rng.integers(1, 15))
    x = rng.standard_normal((n, d)) * rng.uniform(0.2, 3.0, size=d)
    theta_star = rng.standard_normal(d)
    y = x @ theta_star + (0.3 * rng.standard_normal(n) if label_noise else 0.0)
    theta = theta_star + rng.standard_normal(d)
    return x, y, theta, rng


def _random_psd(rng, d, rank=None):
    a = rng.standard_normal((d, rank or d))
    return a @ a.T


# ----------------------------------------------------------------------------- metrics
@settings(max_examples=40, deadline=None)
@given(seed=seeds, c=st.floats(0.01, 100.0))
def test_average_alignment_scale_invariance(seed, c):
    """mu(c Sigma, G, c L) = mu(Sigma, G, L) and mu(Sigma, c G, L) = mu(Sigma, G, L) / c."""
    rng = np.random.default_rng(seed)
    d = int(rng.integers(1, 8))
    sig, gn, loss = _random_psd(rng, d), _random_psd(rng, d), float(rng.uniform(0.1, 5))
    mu = ng.average_alignment(sig, gn, loss)
    assert ng.average_alignment(c * sig, gn, c * loss) == pytest.approx(mu, rel=RTOL)
    assert ng.average_alignment(sig, c * gn, loss) == pytest.approx(mu / c, rel=RTOL)
    # mu(c Sigma, c G, c L) is invariant too when c = 1 only; check the ratio law for G and Sigma together
    assert ng.average_alignment(c * sig, c * gn, c * loss) == pytest.approx(mu / c, rel=RTOL)


@settings(max_examples=40, deadline=None)
@given(seed=seeds, c=st.floats(0.01, 100.0), k=st.floats(0.05, 20.0))
def test_directional_alignment_scale_invariance(seed, c, k):
    """beta(v) is invariant under v -> k v and (Sigma, L) -> (c Sigma, c L); beta(Sigma, cG) = beta / c."""
    rng = np.random.default_rng(seed)
    d = int(rng.integers(1, 8))
    sig, gn, loss = _random_psd(rng, d), _random_psd(rng, d), float(rng.uniform(0.1, 5))
    v = rng.standard_normal(d)
    b = ng.directional_alignment(sig, gn, loss, v)
    assert ng.directional_alignment(sig, gn, loss, k * v) == pytest.approx(b, rel=RTOL)
    assert ng.directional_alignment(c * sig, gn, c * loss, v) == pytest.approx(b, rel=RTOL)
    assert ng.directional_alignment(sig, c * gn, loss, v) == pytest.approx(b / c, rel=RTOL)


@settings(max_examples=40, deadline=None)
@given(seed=seeds, c=st.floats(0.01, 100.0))
def test_equality_case_proportional_noise(seed, c):
    """Sigma_1 = c * 2L * G  =>  mu = c and beta(v) = c for every v with v^T G v > 0, subspace too."""
    rng = np.random.default_rng(seed)
    d = int(rng.integers(1, 8))
    gn, loss = _random_psd(rng, d), float(rng.uniform(0.1, 5))
    sig = c * 2.0 * loss * gn
    assert ng.average_alignment(sig, gn, loss) == pytest.approx(c, rel=RTOL)
    v = rng.standard_normal((5, d))
    np.testing.assert_allclose(ng.directional_alignment(sig, gn, loss, v), c, rtol=RTOL)
    k = int(rng.integers(1, d + 1))
    assert ng.subspace_alignment(sig, gn, loss, top_k=k) == pytest.approx(c, rel=RTOL)
    _, betas = ng.eigendirection_alignment(sig, gn, loss)
    np.testing.assert_allclose(betas, c, rtol=1e-7)  # eigen-decomposition rounding


@settings(max_examples=30, deadline=None)
@given(seed=seeds)
def test_uniform_residuals_give_mu_one(seed):
    """Least squares with |r_i| = r constant and gbar = sum r_i x_i / N = 0 has Sigma_1 = 2L G, so mu = 1.

    Construction: pick residual signs s_i, make the inputs satisfy sum_i s_i x_i = 0 by
    projecting out the component along s of X (columns), then set y = X theta - r s."""
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(3, 12)), int(rng.integers(1, 10))
    s = rng.choice([-1.0, 1.0], size=n)
    x = rng.standard_normal((n, d))
    x -= np.outer(s, s @ x) / n  # now s^T X = 0
    theta = rng.standard_normal(d)
    r = float(rng.uniform(0.1, 3.0))
    y = x @ theta - r * s
    geo = ng.linear_model_geometry(x, y, theta)
    np.testing.assert_allclose(geo.gradient, 0.0, atol=1e-12)
    np.testing.assert_allclose(geo.noise_cov, 2 * geo.loss * geo.gauss_newton, rtol=0, atol=1e-10 * np.max(np.abs(geo.noise_cov)))
    assert ng.linear_average_alignment(x, y, theta) == pytest.approx(1.0, rel=1e-9)


def test_subspace_alignment_special_cases():
    """Subspace alignment with k = 1 equals beta(u_1); with U = R^d it equals Tr Sigma / (2L Tr G)."""
    rng = np.random.default_rng(3)
    d = 6
    sig, gn, loss = _random_psd(rng, d), _random_psd(rng, d), 0.7
    lam, u = np.linalg.eigh(gn)
    assert ng.subspace_alignment(sig, gn, loss, top_k=1) == pytest.approx(
        ng.directional_alignment(sig, gn, loss, u[:, -1]), rel=RTOL)
    assert ng.subspace_alignment(sig, gn, loss, basis=rng.standard_normal((d, d))) == pytest.approx(
        np.trace(sig) / (2 * loss * np.trace(gn)), rel=RTOL)


def test_vectorised_over_stacks():
    """A stack of (Sigma, G, L) gives the stack of the individual metrics."""
    rng = np.random.default_rng(4)
    sig = np.stack([_random_psd(rng, 4) for _ in range(5)])
    gn = np.stack([_random_psd(rng, 4) for _ in range(5)])
    loss = rng.uniform(0.1, 2, size=5)
    v = rng.standard_normal((5, 4))
    mus = ng.average_alignment(sig, gn, loss)
    betas = ng.directional_alignment(sig, gn, loss, v)
    for i in range(5):
        assert mus[i] == pytest.approx(ng.average_alignment(sig[i], gn[i], loss[i]), rel=RTOL)
        assert betas[i] == pytest.approx(ng.directional_alignment(sig[i], gn[i], loss[i], v[i]), rel=RTOL)


@pytest.mark.parametrize(
    "call, param",
    [
        (lambda s, g: ng.average_alignment(s, g, 0.0), "loss"),
        (lambda s, g: ng.average_alignment(s, g, -1.0), "loss"),
        (lambda s, g: ng.average_alignment(-s, g, 1.0), "noise_cov"),
        (lambda s, g: ng.average_alignment(s, -g, 1.0), "gauss_newton"),
        (lambda s, g: ng.average_alignment(s[:2, :3], g, 1.0), "noise_cov"),
        (lambda s, g: ng.average_alignment(s, np.zeros_like(g), 1.0), "gauss_newton"),
        (lambda s, g: ng.directional_alignment(s, g, 1.0, np.zeros(3)), "direction"),
        (lambda s, g: ng.directional_alignment(s, g, 1.0, np.ones(4)), "direction"),
        (lambda s, g: ng.subspace_alignment(s, g, 1.0, top_k=5), "top_k"),
        (lambda s, g: ng.minibatch_noise_covariance(s, batch_size=0), "batch_size"),
        (lambda s, g: ng.minibatch_noise_covariance(s, batch_size=5, n_samples=4, replacement=False), "batch_size"),
    ],
)
def test_input_validation_names_parameter(call, param):
    """Invalid inputs raise ValueError whose message names the offending parameter."""
    rng = np.random.default_rng(0)
    s, g = _random_psd(rng, 3), _random_psd(rng, 3)
    with pytest.raises(ValueError, match=param):
        call(s, g)


def test_null_direction_rejected():
    """beta(v) is undefined (0/0) for v in the null space of G: a ValueError, not NaN."""
    g = np.diag([1.0, 0.0])
    with pytest.raises(ValueError, match="null space"):
        ng.directional_alignment(np.eye(2), g, 1.0, [0.0, 1.0])


def test_minibatch_covariance_factors():
    """Sigma_S = Sigma_1 / S with replacement, Sigma_1 (N-S)/(S(N-1)) without (zero at S = N)."""
    s = np.eye(2)
    np.testing.assert_allclose(ng.minibatch_noise_covariance(s, batch_size=4), s / 4)
    np.testing.assert_allclose(
        ng.minibatch_noise_covariance(s, batch_size=4, n_samples=10, replacement=False), s * 6 / 36)
    np.testing.assert_allclose(
        ng.minibatch_noise_covariance(s, batch_size=10, n_samples=10, replacement=False), 0.0)


# ----------------------------------------------------------------------------- linear model
@settings(max_examples=40, deadline=None)
@given(seed=seeds)
def test_linear_closed_forms_match_explicit_matrices(seed):
    """Gram-matrix closed forms of mu and beta(v) equal the metrics of the explicit d x d matrices,
    and the explicit Sigma_1 equals the covariance of the per-sample gradients r_i x_i."""
    x, y, theta, rng = _random_problem(seed)
    geo = ng.linear_model_geometry(x, y, theta)
    r = x @ theta - y
    np.testing.assert_allclose(
        geo.noise_cov, ng.noise_covariance_from_gradients(r[:, None] * x), atol=1e-10 * (1 + np.max(np.abs(geo.noise_cov))))
    # Two summation orders of G_ij = (1/N) sum_k x_ki x_kj: each, with its division by N, is within
    # gamma_{N+1} (|x|^T|x|)_ij / N of the exact value (gamma_m = m u / (1 - m u), Higham, Accuracy and
    # Stability of Numerical Algorithms, eq. 3.5), so they differ by at most twice that. Elementwise,
    # not relative to G_ij, which may be a cancellation near zero.
    n_samples, eps = x.shape[0], np.finfo(float).eps / 2
    gamma = (n_samples + 1) * eps / (1 - (n_samples + 1) * eps)
    bound = 2 * gamma * (np.abs(x).T @ np.abs(x)) / n_samples
    assert np.all(np.abs(geo.gauss_newton - ng.gauss_newton_from_jacobians(x)) <= bound)
    mu = ng.average_alignment(geo.noise_cov, geo.gauss_newton, geo.loss)
    assert ng.linear_average_alignment(x, y, theta) == pytest.approx(mu, rel=1e-8, abs=1e-12)
    v = rng.standard_normal((3, x.shape[1]))
    if np.all(np.linalg.norm(x @ v.T, axis=0) > 1e-6):
        np.testing.assert_allclose(
            ng.linear_directional_alignment(x, y, theta, v),
            ng.directional_alignment(geo.noise_cov, geo.gauss_newton, geo.loss, v), rtol=1e-8, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=seeds)
def test_kernel_eigendirection_alignment_matches_explicit(seed):
    """SVD closed form of beta(u_j) along the curved eigendirections of G equals the explicit
    u_j^T Sigma_1 u_j / (2L lambda_j) (same eigenvalues, same betas)."""
    x, y, theta, _ = _random_problem(seed)
    geo = ng.linear_model_geometry(x, y, theta)
    lam_e, beta_e = ng.eigendirection_alignment(geo.noise_cov, geo.gauss_newton, geo.loss, rtol=1e-8)
    lam_k, beta_k = ng.kernel_eigendirection_alignment(x, x @ theta - y, rtol=1e-8)
    # eigenvalues well separated from the cut-off in both: compare the common leading part
    k = min(lam_e.size, lam_k.size)
    np.testing.assert_allclose(lam_k[:k], lam_e[:k], rtol=1e-8, atol=1e-12 * lam_e[0])
    gap_ok = np.ones(k, dtype=bool)
    gaps = np.abs(np.diff(lam_e[:k]))
    gap_ok[:-1] &= gaps > 1e-3 * lam_e[0]
    gap_ok[1:] &= gaps > 1e-3 * lam_e[0]
    # eigenvectors (hence betas) are only defined for non-degenerate eigenvalues; with a relative gap
    # > 1e-3 the eigenvector rounding error is ~ 1e-16 / 1e-3, far below rtol 1e-6
    np.testing.assert_allclose(beta_k[:k][gap_ok], beta_e[:k][gap_ok], rtol=1e-6, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(seed=seeds)
def test_linear_deterministic_bounds_hold(seed):
    """For every theta and targets: (N min (K^2)_ii - lambda_max(K)^2)/||K||_F^2 <= mu <= N max (K^2)_ii/||K||_F^2."""
    x, y, theta, rng = _random_problem(seed)
    lo, hi = ng.linear_alignment_bounds(x)
    for _ in range(5):
        th = theta + rng.standard_normal(theta.size) * rng.uniform(0.01, 10)
        yy = y + rng.standard_normal(y.size) * rng.uniform(0, 3)
        mu = ng.linear_average_alignment(x, yy, th)
        assert lo - 1e-9 <= mu <= hi + 1e-9


@settings(max_examples=40, deadline=None)
@given(seed=seeds)
def test_population_formulas_match_isserlis_and_bounds(seed):
    """x ~ N(0, S): Sigma_1 = (d^T S d) S + S d d^T S, so mu_pop = Tr(Sigma_1 S)/(d^T S d ||S||_F^2) and
    beta_pop(v) = v^T Sigma_1 v / (d^T S d v^T S v); 1 <= mu_pop <= 1 + 1/d_eff, 1 <= beta_pop <= 2."""
    rng = np.random.default_rng(seed)
    d = int(rng.integers(1, 8))
    s = _random_psd(rng, d) + 0.01 * np.eye(d)
    delta = rng.standard_normal(d)
    sd = s @ delta
    q = delta @ sd
    sigma1 = q * s + np.outer(sd, sd)
    mu = ng.linear_gaussian_population_alignment(s, delta)
    assert mu == pytest.approx(ng.average_alignment(sigma1, s, q / 2), rel=1e-9)
    assert 1.0 - 1e-12 <= mu <= 1.0 + 1.0 / ng.effective_dimension(s) + 1e-12
    v = rng.standard_normal((4, d))
    beta = ng.linear_gaussian_population_directional(s, delta, v)
    np.testing.assert_allclose(beta, ng.directional_alignment(sigma1, s, q / 2, v), rtol=1e-9)
    assert np.all(beta >= 1 - 1e-12) and np.all(beta <= 2 + 1e-12)
    assert ng.linear_gaussian_population_directional(s, delta, delta) == pytest.approx(2.0, rel=1e-12)


def test_population_sigma_against_sampling():
    """Isserlis covariance E[(x^T d)^2 x x^T] - S d d^T S = (d^T S d) S + S d d^T S, against 2e5 samples.

    Tolerance: entries are means of products of four Gaussians with standard deviation
    <= ~4 ||S||^2 ||d||^2; with 2e5 samples the standard error is <= 0.01 of that scale;
    we allow 6 standard errors (0.06 relative to the max entry)."""
    rng = np.random.default_rng(11)
    d = 3
    s = np.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 0.5]])
    delta = np.array([0.5, -1.0, 0.7])
    x = rng.multivariate_normal(np.zeros(d), s, size=200_000)
    r = x @ delta
    emp = ng.noise_covariance_from_gradients(r[:, None] * x)
    sd = s @ delta
    exact = (delta @ sd) * s + np.outer(sd, sd)
    assert np.max(np.abs(emp - exact)) < 0.06 * np.max(np.abs(exact))


@pytest.mark.parametrize("n, d, rho", [(5, 3, 0.0), (10, 40, 0.0), (20, 5, 0.5), (4, 100, 0.0), (8, 8, 2.0)])
def test_isotropic_expected_alignment_against_monte_carlo(n, d, rho):
    """Closed-form E[Tr(Sigma_1 G)] / E[2L ||G||_F^2] (Isserlis) equals the Monte-Carlo ratio of means.

    Tolerance: 4 standard errors of the numerator mean (divided by the denominator mean),
    plus the (smaller) denominator error bounded by the same factor; 3000 draws."""
    rng = np.random.default_rng(1000 + n * d)
    reps = 3000
    num = np.empty(reps)
    den = np.empty(reps)
    for t in range(reps):
        x = rng.standard_normal((n, d))
        delta = rng.standard_normal(d)
        delta /= np.linalg.norm(delta)
        r = x @ delta + np.sqrt(rho) * rng.standard_normal(n)
        geo = ng.linear_model_geometry(x, -r, np.zeros(d))  # theta = 0 so residuals = r
        num[t] = np.sum(geo.noise_cov * geo.gauss_newton)
        den[t] = 2 * geo.loss * np.sum(geo.gauss_newton**2)
    ratio = num.mean() / den.mean()
    se = (np.std(num) / num.mean() + np.std(den) / den.mean()) / np.sqrt(reps) * ratio
    assert abs(ratio - ng.linear_isotropic_expected_alignment(n, d, rho)) < 4 * se


def test_isotropic_expected_alignment_limits():
    """Limits of the closed form: N -> inf gives 1 + 1/d; d -> inf gives 1 - 1/N; N = 1 gives 0."""
    assert ng.linear_isotropic_expected_alignment(1e9, 7) == pytest.approx(1 + 1 / 7, rel=1e-6)
    assert ng.linear_isotropic_expected_alignment(10, 1e9) == pytest.approx(0.9, rel=1e-6)
    assert ng.linear_isotropic_expected_alignment(1, 5) == pytest.approx(0.0, abs=1e-12)
    assert ng.linear_isotropic_expected_alignment(10, 50, label_noise=1e9) == pytest.approx(0.9, rel=1e-6)


def test_linear_alignment_bounded_away_from_zero_across_overparameterisation():
    """Paper's claim for linear models: alignment stays bounded away from 0 as d/N grows.

    Criterion (stated): for N = 20 isotropic Gaussian samples and d/N in {0.5, 1, 2, 8, 32},
    (i) the closed-form expected alignment is >= 1 - 1/N - 0.01 = 0.94 at every width, and
    (ii) the realised mu at 5 random points per width is >= 0.5; (iii) the deterministic
    lower bound is positive for d/N >= 8 (it tends to 1 - 1/N)."""
    n = 20
    rng = np.random.default_rng(5)
    for ratio in (0.5, 1, 2, 8, 32):
        d = int(ratio * n)
        assert ng.linear_isotropic_expected_alignment(n, d) >= 1 - 1 / n - 0.01
        x = rng.standard_normal((n, d))
        y = x @ rng.standard_normal(d)
        for _ in range(5):
            assert ng.linear_average_alignment(x, y, rng.standard_normal(d)) >= 0.5
        if ratio >= 8:
            assert ng.linear_alignment_bounds(x)[0] > 0.0


# ----------------------------------------------------------------------------- escape theory
def test_second_moment_operator_matches_explicit_batches():
    """The operator equals the exact average over all batches of (I - lr A_B) M (I - lr A_B),
    enumerated explicitly (N = 4, S = 2, with and without replacement)."""
    import itertools

    rng = np.random.default_rng(2)
    n, d, lr = 4, 3, 0.3
    x = rng.standard_normal((n, d))
    m = _random_psd(rng, d)
    for replacement in (True, False):
        batches = (list(itertools.product(range(n), repeat=2)) if replacement
                   else list(itertools.combinations(range(n), 2)))
        acc = np.zeros((d, d))
        for b in batches:
            a = np.eye(d) - lr * x[list(b)].T @ x[list(b)] / 2
            acc += a @ m @ a
        acc /= len(batches)
        op = ng.linear_sgd_second_moment_operator(x, lr=lr, batch_size=2, replacement=replacement)
        np.testing.assert_allclose(op @ m.ravel(), acc.ravel(), rtol=1e-10, atol=1e-12)


def test_escape_profiles_gd_top_sgd_flat():
    """GD (no noise) escapes only along the top eigenvector; SGD's escape mode carries a
    substantial share (> 30 %) of E||w||^2 outside it, both in the exact least-squares
    operator and in the aligned quadratic model (Sigma_1 = 2L H)."""
    rng = np.random.default_rng(0)
    n, d = 20, 40
    scales = np.ones(d)
    scales[0] = 3.0
    x = rng.standard_normal((n, d)) * scales
    lam = np.linalg.eigvalsh(x.T @ x / n)[::-1]
    lr = 2.1 / lam[0]
    gd = ng.aligned_quadratic_escape_profile(lam[:n], lr=lr, batch_size=1, alignment=0.0)
    assert gd.fractions[0] == pytest.approx(1.0, abs=1e-12)
    assert gd.growth == pytest.approx(1.1**2, rel=1e-12)
    sgd = ng.linear_sgd_escape_profile(x, lr=lr, batch_size=4, replacement=False)
    aligned = ng.aligned_quadratic_escape_profile(lam[:n], lr=lr, batch_size=4)
    assert sgd.growth > 1.0 and aligned.growth > 1.0
    assert sgd.fractions[0] < 0.7 and aligned.fractions[0] < 0.7
    np.testing.assert_allclose(sgd.fractions.sum(), 1.0, rtol=1e-8)
    assert np.all(sgd.fractions > -1e-8)
