"""Tests of sim.sde.simulate_sde (Euler–Maruyama ensembles of eq. 1) against exact answers.

Tolerance policy: ensemble statistics are computed from the *final states of independent
particles*, so their standard errors follow from the sample size alone:
SE(mean) = sqrt(var/M), SE(var) = var·sqrt(2/(M−1)) (the EM chain on a quadratic with Gaussian
noise is exactly Gaussian), SE(cov_ij) = sqrt((Σ_ii Σ_jj + Σ_ij²)/(M−1)).  We accept within
Z = 4.5 standard errors (two-sided false-alarm probability 7e-6 per comparison); every seed is
fixed, so the suite is deterministic anyway.  Transients are removed by running for enough
steps that the start's residual ((1 − ηλ)^{2T}, etc.) is below 1e-12.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.linalg
from scipy import stats

from sim import rng as _rng
from sim.chain import EulerChain1D
from sim.noise import ConstantCovariance, StateDependent
from sim.observers import Basins, FirstPassage, Histogram, Record
from sim.results import SimResult
from sim.rng import block_generators, block_states
from sim.sde import simulate_sde
from theory.landscapes import IsotropicNoiseFiniteSum, Landscape, LeastSquares, Quadratic, QuarticDoubleWell

Z = 4.5


def ar1_var(lam, lr, S, sigma2, dt=1.0):
    """Exact stationary variance of the EM chain θ ← (1 − ηλdt)θ + η√dt σ/√S ξ:
    (η² dt σ²/S) / (1 − (1 − ηλdt)²) = nσ²/(λ(2 − ηλdt)), n = η/S."""
    n = lr / S
    return n * sigma2 / (lam * (2.0 - lr * lam * dt))


# ------------------------------------------------------------------------------------------
# OU process: exact discrete AR(1) and continuous limit
# ------------------------------------------------------------------------------------------
def test_ou_stationary_matches_exact_ar1():
    lam, lr, S, s2 = 2.0, 0.2, 2, 1.5  # ηλ = 0.4: discrete variance 25% above the continuous one
    M, T = 20000, 60  # (1-ηλ)^{2T} = 0.36^60 < 1e-26
    res = simulate_sde(Quadratic([[lam]]), lr=lr, batch_size=S, sigma2=s2, n_steps=T, n_particles=M,
                       theta0=0.0, seed=11)
    x = res.final[:, 0]
    v_exact = ar1_var(lam, lr, S, s2)
    v_cont = (lr / S) * s2 / (2 * lam)
    se_var = v_exact * math.sqrt(2.0 / (M - 1))
    assert res.n_diverged == 0
    assert abs(x.mean()) < Z * math.sqrt(v_exact / M)
    assert abs(x.var(ddof=1) - v_exact) < Z * se_var
    # the continuous (Gibbs) variance is rejected at this ηλ: the O(ηλ) gap is resolved
    assert abs(x.var(ddof=1) - v_cont) > Z * se_var


def test_ou_substepping_converges_to_continuous_with_O_dt_gap():
    # With sub-step dt the chain is AR(1) with variance nσ²/(λ(2 − ηλ dt)): relative excess over
    # the continuous nσ²/(2λ) is ηλdt/(2 − ηλdt) = O(ηλ dt).  ηλ = 1: excess 100%, 14.3%, 3.2%.
    lam, lr, S, s2 = 2.0, 0.5, 1, 1.0
    M, T = 12000, 25  # continuous relaxation exp(-2ηλ T) = e^-50
    v_cont = lr / S * s2 / (2 * lam)
    excess = []
    for dt in (1.0, 1 / 4, 1 / 16):
        res = simulate_sde(Quadratic([[lam]]), lr=lr, batch_size=S, sigma2=s2, n_steps=T, n_particles=M,
                           theta0=0.0, seed=5, dt=dt)
        v = res.final[:, 0].var(ddof=1)
        v_exact = ar1_var(lam, lr, S, s2, dt=dt)
        assert abs(v - v_exact) < Z * v_exact * math.sqrt(2.0 / (M - 1)), dt
        excess.append(v / v_cont - 1.0)
        # the measured excess is the O(ηλ dt) value, within the sampling error
        assert abs(excess[-1] - lr * lam * dt / (2 - lr * lam * dt)) < Z * (v_exact / v_cont) * math.sqrt(2.0 / (M - 1))
    assert excess[0] > excess[1] > excess[2]


def test_anisotropic_constant_noise_matches_discrete_lyapunov():
    H = np.array([[2.0, 0.5], [0.5, 1.0]])
    C = np.array([[1.0, 0.3], [0.3, 0.5]])
    lr, S = 0.3, 2
    M, T = 20000, 120  # spectral radius of I - ηH ≈ 0.84: 0.84^240 ≈ 1e-18
    res = simulate_sde(Quadratic(H), lr=lr, batch_size=S, noise=ConstantCovariance(C), n_steps=T, n_particles=M,
                       theta0=[0.0, 0.0], seed=3)
    A = np.eye(2) - lr * H
    sigma = scipy.linalg.solve_discrete_lyapunov(A, lr**2 / S * C)
    cov = res.cov()
    for i in range(2):
        for j in range(2):
            se = math.sqrt((sigma[i, i] * sigma[j, j] + sigma[i, j] ** 2) / (M - 1))
            assert abs(cov[i, j] - sigma[i, j]) < Z * se, (i, j, cov, sigma)
    se_mean = np.sqrt(np.diag(sigma) / M)
    assert np.all(np.abs(res.mean()) < Z * se_mean)


def test_psd_noise_cov_accepted_and_non_psd_rejected():
    H = np.eye(2)
    C_singular = np.array([[1.0, 1.0], [1.0, 1.0]])  # rank 1: noise only along (1, 1)
    res = simulate_sde(Quadratic(H), lr=0.1, batch_size=1, noise=ConstantCovariance(C_singular), n_steps=50, n_particles=200,
                       theta0=[0.0, 0.0], seed=0)
    # the noise never leaves the (1, 1) direction, so θ_0 − θ_1 stays exactly 0
    np.testing.assert_allclose(res.final[:, 0], res.final[:, 1], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="noise_cov"):
        simulate_sde(Quadratic(H), lr=0.1, batch_size=1, noise=ConstantCovariance([[1.0, 2.0], [2.0, 1.0]]), n_steps=5,
                     n_particles=4, theta0=[0.0, 0.0], seed=0)


def test_state_dependent_noise_one_step_covariance():
    # One EM step from a fixed θ0: θ1 − θ0 + η∇L(θ0) = (η/√S) chol(C(θ0)) ξ, so its covariance is
    # (η²/S) C(θ0) with the least-squares per-sample covariance C(θ) (state dependent).
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 2))
    y = X @ np.array([1.0, -0.5]) + 0.3 * rng.standard_normal(40)
    land = LeastSquares(X, y, l2=0.01)
    th0 = np.array([0.4, 0.2])
    lr, S, M = 0.1, 4, 20000
    res = simulate_sde(land, lr=lr, batch_size=S, noise=StateDependent(), n_steps=1, n_particles=M, theta0=th0, seed=9)
    inc = res.final - (th0 - lr * land.gradient(th0))
    expect = lr**2 / S * land.noise_covariance(th0)
    cov = np.cov(inc, rowvar=False)
    for i in range(2):
        for j in range(2):
            se = math.sqrt((expect[i, i] * expect[j, j] + expect[i, j] ** 2) / (M - 1))
            assert abs(cov[i, j] - expect[i, j]) < Z * se
    assert np.all(np.abs(inc.mean(axis=0)) < Z * np.sqrt(np.diag(expect) / M))


def test_state_dependent_equals_isotropic_when_C_is_constant():
    # IsotropicNoiseFiniteSum has C(θ) = σ²I exactly: state-dependent mode (Cholesky of C each
    # step) consumes the same normals as the isotropic mode, so paths agree to round-off.
    land = IsotropicNoiseFiniteSum(Quadratic(np.diag([1.0, 2.0])), 50, 0.7, seed=1)
    kw = dict(lr=0.1, batch_size=2, n_steps=40, n_particles=64, theta0=[0.5, -0.5], seed=4)
    a = simulate_sde(land, noise=StateDependent(), **kw)
    b = simulate_sde(land, sigma2=0.7, **kw)
    np.testing.assert_allclose(a.final, b.final, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------
# double well: long-run histogram vs Gibbs
# ------------------------------------------------------------------------------------------
def test_double_well_histogram_matches_gibbs():
    land = QuarticDoubleWell(tilt=0.1)
    lr, S, T_temp = 0.02, 1, 0.1
    sigma2 = 2 * T_temp * S / lr  # temperature T = nσ²/2 = 0.1
    M, steps = 16000, 400  # within-well relaxation (1 - ηλ)^{steps} with λ ≈ 2: e^-16
    # start from Gibbs samples so no slow barrier crossing is needed: the test checks that the
    # dynamics keep the Gibbs law invariant (up to the O(η) discretisation bias).
    fine = np.linspace(-2.6, 2.6, 20001)
    logp = -land.value(fine) / T_temp
    p = np.exp(logp - logp.max())
    cdf = np.cumsum(p)
    cdf /= cdf[-1]
    x0 = np.interp(np.random.default_rng(1).random(M), cdf, fine)
    edges = np.linspace(-2.0, 2.0, 41)
    res = simulate_sde(land, lr=lr, batch_size=S, sigma2=sigma2, n_steps=steps, n_particles=M, theta0=x0,
                       seed=2, observers=[Histogram(edges, burn_in=200, every=50)])
    assert res.n_diverged == 0
    # Gibbs bin probabilities (quadrature on the fine grid), and of the chain itself
    centers = 0.5 * (fine[1:] + fine[:-1])
    w = 0.5 * (p[1:] + p[:-1])
    w /= w.sum()
    pg = np.histogram(centers, bins=edges, weights=w)[0]
    chain = EulerChain1D.on_nodes(land, -2.6, 2.6, lr=lr, step_sd=lr * math.sqrt(sigma2 / S), n=1500)
    grid, pc_grid = chain.x, chain.stationary()
    pc = np.histogram(grid, bins=edges, weights=pc_grid)[0]
    keep = pg > 5.0 / M
    # discretisation bias: TV(chain, Gibbs) and its chi-square weight are far below the
    # sampling resolution (chi-square statistic of the bias at this M << number of bins)
    tv_bias = 0.5 * np.abs(pc - pg).sum()
    bias_chi2 = M * np.sum((pc[keep] - pg[keep]) ** 2 / pg[keep])
    assert tv_bias < 0.01 and bias_chi2 < 0.2 * keep.sum(), (tv_bias, bias_chi2)
    # Pearson chi-square on the final states (M independent particles)
    f = np.histogram(res.final[:, 0], bins=edges)[0] / M
    chi2 = M * np.sum((f[keep] - pg[keep]) ** 2 / pg[keep])
    assert chi2 < stats.chi2.ppf(1 - 1e-5, keep.sum() - 1), chi2
    # running histogram: each particle contributes n_times correlated samples; the variance of a
    # time average is at most that of one sample, so M is a conservative sample size.
    n_times = res.params["histogram"]["n_times"]
    assert res.histogram_samples == M * n_times
    fh = res.histogram / res.histogram_samples
    chi2h = M * np.sum((fh[keep] - pg[keep]) ** 2 / pg[keep])
    assert chi2h < stats.chi2.ppf(1 - 1e-5, keep.sum() - 1), chi2h
    # time-and-ensemble mean vs the Gibbs mean (quadrature): conservative SE from M particles
    # (averaging a particle's correlated samples does not increase the variance) plus the
    # discretisation bias |mean(chain) − mean(Gibbs)| from the transfer operator
    gibbs_mean = np.sum(w * centers)
    gibbs_var = np.sum(w * centers**2) - gibbs_mean**2
    chain_bias = abs(np.sum(pc_grid * grid) - gibbs_mean)
    assert abs(res.time_mean[0] - gibbs_mean) < Z * math.sqrt(gibbs_var / M) + chain_bias
    # density helper integrates to the inside fraction
    dens = res.histogram_density()
    assert abs((dens * np.diff(edges)).sum() - res.histogram.sum() / res.histogram_samples) < 1e-12


# ------------------------------------------------------------------------------------------
# sdeint cross-check
# ------------------------------------------------------------------------------------------
def test_in_kernel_generator_matches_numpy_sfc64():
    # the raw stream is NumPy's SFC64 bit for bit; the ziggurat normals equal NumPy's
    # Generator.standard_normal on that stream to a few ulp (tables recomputed here)
    st = block_states(7, 3)[2]
    ref_gen = block_generators(7, 3)[2]
    np.testing.assert_array_equal(_rng.raw_uint64(st.copy(), 1000), ref_gen.bit_generator.random_raw(1000))
    z = _rng.standard_normals(st.copy(), 200000)
    np.testing.assert_allclose(z, block_generators(7, 3)[2].standard_normal(200000), rtol=1e-13, atol=1e-13)
    u = _rng.uniforms(st.copy(), 1000)
    np.testing.assert_array_equal(u, block_generators(7, 3)[2].random(1000))
    # and the state advances in place: two halves equal the whole
    s2 = st.copy()
    halves = np.concatenate([_rng.standard_normals(s2, 500), _rng.standard_normals(s2, 500)])
    np.testing.assert_array_equal(halves, _rng.standard_normals(st.copy(), 1000))


def test_strong_agreement_with_sdeint_same_increments():
    sdeint = pytest.importorskip("sdeint")
    lam, lr, S, s2, dt = 1.5, 0.2, 2, 1.0, 0.5
    M, T = 40, 30  # one block (M <= block_size): its generator draws normals step-major
    land = Quadratic([[lam]], center=[0.3])
    x0 = np.linspace(-1, 1, M)
    seed = 123
    res = simulate_sde(land, lr=lr, batch_size=S, sigma2=s2, n_steps=T, n_particles=M, theta0=x0, seed=seed,
                       dt=dt, observers=[Record(1)])
    n_em = int(T / dt)
    # sim's normals, reproduced outside the simulator from the block's SFC64 state
    dW = math.sqrt(dt) * _rng.standard_normals(block_states(seed, 1)[0], n_em * M).reshape(n_em, M)
    g = lr * math.sqrt(s2 / S)
    tspan = np.arange(n_em + 1) * dt
    y = sdeint.itoEuler(lambda x, t: -lr * lam * (x - 0.3), lambda x, t: g * np.eye(M), x0, tspan, dW=dW)
    # paths agree to round-off (the two codes round η·dt·∇L differently: ~1e-16 per step)
    np.testing.assert_allclose(res.trajectory[:, :, 0], y[:: int(1 / dt)], rtol=0, atol=1e-12)


def test_weak_agreement_with_sdeint_statistics():
    sdeint = pytest.importorskip("sdeint")
    lam, lr, S, s2 = 1.0, 0.25, 1, 2.0
    M, T = 1500, 80  # (1-ηλ)^{2T} = 0.75^160 ~ 1e-20
    land = Quadratic([[lam]])
    res = simulate_sde(land, lr=lr, batch_size=S, sigma2=s2, n_steps=T, n_particles=M, theta0=1.0, seed=8)
    g = lr * math.sqrt(s2 / S)
    y = sdeint.itoEuler(lambda x, t: -lr * lam * x, lambda x, t: g * np.eye(M), np.ones(M),
                        np.arange(T + 1.0), generator=np.random.default_rng(99))
    v_exact = ar1_var(lam, lr, S, s2)
    va, vb = res.final[:, 0].var(ddof=1), y[-1].var(ddof=1)
    se_diff = v_exact * math.sqrt(2.0 / (M - 1) + 2.0 / (M - 1))
    assert abs(va - vb) < Z * se_diff
    assert abs(res.final[:, 0].mean() - y[-1].mean()) < Z * math.sqrt(2 * v_exact / M)
    for v in (va, vb):
        assert abs(v - v_exact) < Z * v_exact * math.sqrt(2.0 / (M - 1))


# ------------------------------------------------------------------------------------------
# determinism, divergence, observables
# ------------------------------------------------------------------------------------------
def test_bit_identical_across_thread_counts():
    land = QuarticDoubleWell(0.1)
    kw = dict(lr=0.1, batch_size=1, sigma2=3.0, n_steps=300, n_particles=1000, theta0=-1.0, seed=42,
              block_size=100, observers=[Record(100), Basins(150), Histogram(np.linspace(-2, 2, 21), burn_in=100, every=10),
                                         FirstPassage(target=1, radius=0.2)])  # target: index of the right minimum
    a = simulate_sde(land, n_threads=1, **kw)
    b = simulate_sde(land, n_threads=2, **kw)
    for name in ("final", "diverged_step", "trajectory", "histogram", "basin_counts", "first_passage_steps",
                 "time_mean", "time_cov"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.histogram_outside == b.histogram_outside
    # a different seed gives different numbers
    c = simulate_sde(land, n_threads=2, **{**kw, "seed": 43})
    assert not np.array_equal(a.final, c.final)
    # observables are consistent with each other
    assert a.trajectory.shape == (4, 1000, 1)
    np.testing.assert_array_equal(a.trajectory[-1], a.final)
    np.testing.assert_array_equal(a.record_steps, [0, 100, 200, 300])
    np.testing.assert_array_equal(a.basin_steps, [0, 150, 300])
    np.testing.assert_allclose(a.basin_occupancy.sum(axis=1), 1.0)
    assert a.basin_occupancy[0, 0] == 1.0  # all start in the left well
    labels = land.basin_index(a.final[:, 0])
    np.testing.assert_array_equal(a.basin_counts[-1], np.bincount(labels, minlength=2))
    assert a.params["first_passage"]["target"] == [land.minima()[1].location[0]]
    fp = a.first_passage_steps
    reached = np.isfinite(fp)
    assert reached.any() and (~reached).any()
    # particles that are in the right well at the end and never visited the target ball are rare,
    # but every particle that reached it has a time in (0, n_steps]
    assert np.all((fp[reached] > 0) & (fp[reached] <= 300))


def test_divergence_detected_frozen_and_excluded():
    land = QuarticDoubleWell(0.1)
    M = 200
    x0 = np.where(np.arange(M) % 2 == 0, 4.0, -1.0)
    # at lr = 0.5 the well at -1 (curvature 2, ηλ = 1) is stable; from x = 4 the cubic drift
    # overshoots: 4 -> -26.05 -> ~8.8e3 -> ~-3.4e11, beyond the bound at step index 2
    with pytest.warns(RuntimeWarning, match="diverged"):
        res = simulate_sde(land, lr=0.5, batch_size=1, sigma2=1e-12, n_steps=50, n_particles=M, theta0=x0, seed=0)
    np.testing.assert_array_equal(res.diverged, x0 == 4.0)
    assert res.n_diverged == M // 2 and res.params["n_diverged"] == M // 2
    np.testing.assert_array_equal(res.diverged_step[res.diverged], 2)
    np.testing.assert_array_equal(res.diverged_step[~res.diverged], -1)
    # frozen at the last finite state (after 2 steps)
    x1 = 4.0 - 0.5 * (4.0**3 - 4.0 + 0.1)
    x2 = x1 - 0.5 * (x1**3 - x1 + 0.1)
    np.testing.assert_allclose(res.final[res.diverged, 0], x2, rtol=1e-6)
    assert np.all(np.isfinite(res.final))
    fin = res.finite()
    assert fin.shape == (M // 2, 1)
    assert abs(res.mean()[0] - land.minima()[0].location[0]) < 0.01


def test_non_finite_state_counts_as_divergence():
    land = QuarticDoubleWell(0.1)
    with pytest.warns(RuntimeWarning):
        res = simulate_sde(land, lr=0.5, batch_size=1, sigma2=1e-6, n_steps=10, n_particles=2, theta0=4.0, seed=0,
                           divergence_bound=np.inf)
    assert res.diverged.all()
    assert np.all(np.isfinite(res.final))


# ------------------------------------------------------------------------------------------
# schedules and momentum
# ------------------------------------------------------------------------------------------
def _var_recursion(lam, lrs, ss, sigma2, v0=0.0):
    v = v0
    for eta, s in zip(lrs, ss):
        v = (1 - eta * lam) ** 2 * v + eta**2 * sigma2 / s
    return v


def test_schedules_follow_exact_variance_recursion():
    # OU with per-step η_t, S_t: v_{t+1} = (1 − η_tλ)² v_t + η_t² σ²/S_t exactly (Gaussian chain).
    lam, s2, T, M = 1.0, 1.0, 400, 20000
    t = np.arange(T)
    u = (t % 100) / 100
    lr_t = 0.01 + (0.04 - 0.01) * (1 - np.abs(2 * u - 1))  # cyclic triangular 0.01 -> 0.04 -> 0.01
    lr0 = 0.04
    bs_t = lr0 / lr_t  # cyclic batch S_t in [1, 4] with the same η/S per step
    land = Quadratic([[lam]])
    a = simulate_sde(land, lr=lr_t, batch_size=1, sigma2=s2, n_steps=T, n_particles=M, theta0=0.0, seed=1)
    b = simulate_sde(land, lr=lr0, batch_size=bs_t, sigma2=s2, n_steps=T, n_particles=M, theta0=0.0, seed=2)
    va_exact = _var_recursion(lam, lr_t, np.ones(T), s2)
    vb_exact = _var_recursion(lam, np.full(T, lr0), bs_t, s2)
    va, vb = a.final[:, 0].var(ddof=1), b.final[:, 0].var(ddof=1)
    assert abs(va - va_exact) < Z * va_exact * math.sqrt(2 / (M - 1))
    assert abs(vb - vb_exact) < Z * vb_exact * math.sqrt(2 / (M - 1))
    # a constant schedule equals the scalar argument bit for bit; callables are accepted
    kw = dict(batch_size=2, sigma2=s2, n_steps=50, n_particles=300, theta0=0.5, seed=3)
    c1 = simulate_sde(land, lr=0.05, **kw)
    c2 = simulate_sde(land, lr=np.full(50, 0.05), **kw)
    c3 = simulate_sde(land, lr=lambda k: 0.05 + 0 * np.asarray(k, dtype=float), **kw)
    np.testing.assert_array_equal(c1.final, c2.final)
    np.testing.assert_array_equal(c1.final, c3.final)
    from theory.scaling import Schedule

    c4 = simulate_sde(land, lr=Schedule("constant", base=0.05), **kw)
    np.testing.assert_array_equal(c1.final, c4.final)


def test_cyclic_lr_equals_cyclic_batch_at_equal_noise():
    # cyclic (discrete) lr at S = 1 vs cyclic batch at fixed η0 with η0/S_t = η_t every step (paper
    # Fig. 4).  Half-periods (1000 steps) are long against the relaxation time 1/(η_min λ) = 200,
    # so both ensembles end at the stationary variance of the same n; the remaining exact
    # difference is the O(ηλ) discretisation term nσ²/λ·[1/(2 − η_tλ) − 1/(2 − η0λ)] ≈ 0.75%,
    # below one standard error of the measured difference (≈ 2.2% at M = 8000).
    lam, s2, T, M = 0.5, 1.0, 3000, 8000
    t = np.arange(T)
    lr_t = np.where((t % 2000) < 1000, 0.01, 0.04)
    lr0 = 0.04
    bs_t = lr0 / lr_t
    land = Quadratic([[lam]])
    a = simulate_sde(land, lr=lr_t, batch_size=1, sigma2=s2, n_steps=T, n_particles=M, theta0=0.0, seed=1)
    b = simulate_sde(land, lr=lr0, batch_size=bs_t, sigma2=s2, n_steps=T, n_particles=M, theta0=0.0, seed=2)
    va_exact = _var_recursion(lam, lr_t, np.ones(T), s2)
    vb_exact = _var_recursion(lam, np.full(T, lr0), bs_t, s2)
    va, vb = a.final[:, 0].var(ddof=1), b.final[:, 0].var(ddof=1)
    se_diff = math.sqrt(2 / (M - 1)) * math.hypot(va_exact, vb_exact)
    assert abs(va_exact - vb_exact) < se_diff
    assert abs(va - vb) < Z * se_diff
    assert abs(va - va_exact) < Z * va_exact * math.sqrt(2 / (M - 1))


def test_momentum_stationary_variance_matches_heavy_ball_lyapunov():
    # z = (θ, v): v' = μv − ηλθ + ηs ξ, θ' = θ + v' = (1 − ηλ)θ + μv + ηs ξ, s = σ/√S.
    # Stationary Σ_z = F Σ_z Fᵀ + g gᵀ with F = [[1 − ηλ, μ], [−ηλ, μ]], g = ηs (1, 1)ᵀ.
    lam, lr, mu, S, s2 = 2.0, 0.1, 0.8, 1, 1.0
    M, T = 20000, 400  # spectral radius of F ≈ sqrt(μ) ≈ 0.894: 0.894^800 < 1e-38
    F = np.array([[1 - lr * lam, mu], [-lr * lam, mu]])
    gvec = lr * math.sqrt(s2 / S) * np.ones((2, 1))
    sig = scipy.linalg.solve_discrete_lyapunov(F, gvec @ gvec.T)
    res = simulate_sde(Quadratic([[lam]]), lr=lr, batch_size=S, sigma2=s2, momentum=mu, n_steps=T, n_particles=M,
                       theta0=0.0, seed=21)
    v = res.final[:, 0].var(ddof=1)
    assert abs(v - sig[0, 0]) < Z * sig[0, 0] * math.sqrt(2 / (M - 1))
    vv = res.final_velocity[:, 0].var(ddof=1)
    assert abs(vv - sig[1, 1]) < Z * sig[1, 1] * math.sqrt(2 / (M - 1))
    # momentum raises the temperature: far above the μ = 0 value
    assert v > 3 * ar1_var(lam, lr, S, s2)


# ------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------
def _nan_value(theta):
    return 0.5 * theta[0] * theta[0]


def _nan_grad(theta):
    return theta[0] if theta[0] >= 0 else np.nan


def _nan_loss():
    """A user loss whose gradient is NaN for θ < 0."""
    return Landscape.from_functions(_nan_value, _nan_grad, dim=1, minima_guesses=[[0.0]], name="_NaNLoss")


BASE = dict(lr=0.1, batch_size=2, sigma2=1.0, n_steps=5, n_particles=4, theta0=0.0, seed=0)


@pytest.mark.parametrize(
    "override, name",
    [
        (dict(lr=0.0), "lr"),
        (dict(lr=-1.0), "lr"),
        (dict(batch_size=0.5), "batch_size"),
        (dict(sigma2=0.0), "sigma2"),
        (dict(sigma2=-1.0), "sigma2"),
        (dict(theta0=np.nan), "theta0"),
        (dict(n_steps=0), "n_steps"),
        (dict(n_particles=0), "n_particles"),
        (dict(momentum=1.0), "momentum"),
        (dict(momentum=-0.1), "momentum"),
        (dict(lr=np.full(4, 0.1)), "lr"),
        (dict(lr=np.array([0.1, 0.1, -0.1, 0.1, 0.1])), "lr"),
        (dict(lr=np.array([0.1, 0.1, np.nan, 0.1, 0.1])), "lr"),
        (dict(batch_size=np.full(6, 2.0)), "batch_size"),
        (dict(batch_size=np.array([2.0, 2.0, 0.0, 2.0, 2.0])), "batch_size"),
        (dict(dt=0.3), "dt"),
        (dict(dt=0.0), "dt"),
        (dict(noise=ConstantCovariance([[1.0]])), "sigma2"),  # two noise options at once
        (dict(observers=[Histogram([-1.0, 1.0], dims=(3,))]), "Histogram dims"),
        (dict(observers=[FirstPassage(target=[0.0, 1.0], radius=0.1)]), "FirstPassage target"),
        (dict(observers=[Record(2), Record(3)]), "observers"),
        (dict(observers=["histogram"]), "observers"),
        (dict(seed=-3), "seed"),
    ],
)
def test_bad_input_raises_naming_parameter(override, name):
    with pytest.raises((ValueError, TypeError), match=name):
        simulate_sde(Quadratic([[1.0]]), **{**BASE, **override})


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: Histogram([1.0, 0.0]), "Histogram edges"),
        (lambda: Histogram([0.0, np.nan, 1.0]), "Histogram edges"),
        (lambda: Histogram([0.0]), "Histogram edges"),
        (lambda: Histogram([[0.0, 1.0], [1.0, 0.5]]), r"Histogram edges\[1\]"),
        (lambda: Histogram([0.0, 1.0], every=0), "Histogram every"),
        (lambda: FirstPassage(target=[0.0], radius=-1.0), "FirstPassage radius"),
        (lambda: Record(0), "Record every"),
        (lambda: Basins(-2), "Basins every"),
    ],
)
def test_bad_observer_raises_naming_parameter(make, name):
    """Observers check their own parameters: edges not strictly increasing, a non-positive radius
    or interval."""
    with pytest.raises(ValueError, match=name):
        make()


def test_bad_noise_input():
    with pytest.raises(ValueError, match="noise_cov"):
        simulate_sde(Quadratic(np.eye(2)), **{**BASE, "sigma2": None, "theta0": [0.0, 0.0]},
                     noise=ConstantCovariance([[1.0, 0.0], [0.0, -0.5]]))
    with pytest.raises(ValueError, match="noise_cov"):
        simulate_sde(Quadratic(np.eye(2)), **{**BASE, "sigma2": None, "theta0": [0.0, 0.0]},
                     noise=ConstantCovariance(np.eye(3)))
    with pytest.raises(ValueError, match="sigma2"):
        simulate_sde(Quadratic([[1.0]]), **{**BASE, "sigma2": None})
    with pytest.raises(ValueError, match="StateDependent"):
        simulate_sde(Quadratic([[1.0]]), **{**BASE, "sigma2": None}, noise=StateDependent())
    with pytest.raises(TypeError, match="noise"):
        simulate_sde(Quadratic([[1.0]]), **{**BASE, "sigma2": None}, noise="isotropic")


def test_nan_loss_at_theta0_is_reported():
    with pytest.raises(ValueError, match="_NaNLoss"):
        simulate_sde(_nan_loss(), **{**BASE, "theta0": -1.0})
    res = simulate_sde(_nan_loss(), **{**BASE, "theta0": 1.0, "sigma2": 1e-8})
    assert isinstance(res, SimResult)


def test_first_passage_and_progress():
    land = Quadratic([[1.0]])
    res = simulate_sde(land, lr=0.5, batch_size=1, sigma2=1e-12, n_steps=20, n_particles=3, theta0=[[1.0], [0.05], [-1.0]],
                       seed=0, observers=[FirstPassage(target=[0.0], radius=0.1)], progress=True)
    # deterministic GD x_t = 0.5^t x_0: |x| < 0.1 first at t = 4 (0.0625); 0.05 is inside at t = 0
    np.testing.assert_array_equal(res.first_passage_steps, [4.0, 0.0, 4.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        simulate_sde(land, lr=0.5, batch_size=1, sigma2=1.0, n_steps=5, n_particles=3, theta0=0.0, seed=0, dt=0.5,
                     observers=[FirstPassage(target=[5.0], radius=0.1)])


def test_running_histogram_counts_are_exact():
    # with burn_in = n_steps only the final states are counted: the running histogram must equal
    # numpy's histogram of them exactly (uniform 2-D edges and non-uniform 1-D edges).
    land = Quadratic(np.array([[1.0, 0.2], [0.2, 0.5]]))
    e0 = np.linspace(-1.0, 1.0, 9)
    e1 = np.array([-1.5, -0.4, -0.1, 0.0, 0.3, 1.2])
    T = 30
    res = simulate_sde(land, lr=0.2, batch_size=1, sigma2=1.0, n_steps=T, n_particles=3000, theta0=[0.0, 0.0], seed=6,
                       observers=[Histogram([e0, e1], burn_in=T)])
    h2, _, _ = np.histogram2d(res.final[:, 0], res.final[:, 1], bins=[e0, e1])
    np.testing.assert_array_equal(res.histogram, h2.astype(np.int64))
    assert res.histogram_samples == 3000
    assert res.histogram_outside == 3000 - h2.sum()
    # time averages over the same samples (all particles, inside or outside the edges)
    np.testing.assert_allclose(res.time_mean, res.final.mean(axis=0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res.time_cov, np.cov(res.final, rowvar=False, ddof=0), rtol=1e-10, atol=1e-14)
    res1 = simulate_sde(land, lr=0.2, batch_size=1, sigma2=1.0, n_steps=T, n_particles=3000, theta0=[0.0, 0.0], seed=6,
                        observers=[Histogram(e1, burn_in=T, dims=(1,))])
    np.testing.assert_array_equal(res1.histogram, np.histogram(res1.final[:, 1], bins=e1)[0])
    # burn_in / every: the number of sampled times is as documented
    res2 = simulate_sde(land, lr=0.2, batch_size=1, sigma2=1.0, n_steps=T, n_particles=10, theta0=[0.0, 0.0], seed=6,
                        observers=[Histogram(e1, burn_in=7, every=5, dims=(1,))])
    assert res2.params["histogram"]["n_times"] == len(range(7, T + 1, 5))
    assert res2.histogram_samples == 10 * len(range(7, T + 1, 5))
