"""Tests of sim.sgd.simulate_sgd (exact minibatch SGD ensembles) against exact answers.

Setting: IsotropicNoiseFiniteSum(Quadratic λ) — l_i(θ) = ½λθ² + ξ_iθ with Σξ_i = 0 and
(1/N)Σξ_i² = σ² exactly — so SGD is the linear recursion θ' = aθ − η ξ̄_t, a = 1 − ηλ, with ξ̄_t
the mean of the minibatch's ξ_i.  Its variance after T steps from θ_0 = 0 is exactly

    Var θ_T = η² Σ_{j,k} a^{j+k} Cov(ξ̄_{T−1−j}, ξ̄_{T−1−k}),

* with replacement: Cov = δ_jk σ²/S;
* without replacement: Var ξ̄ = σ²(1/S − 1/N)·N/(N − 1) (finite-data factor), two distinct
  batches of the *same* epoch are disjoint samples of one permutation, Cov = −σ²/(N − 1), and
  batches of different epochs are independent.  These within-epoch anticorrelations change the
  variance by O(S/N·(1 + a)/(1 − a)) (here ≈ 9%, far beyond the sampling error), so the test
  uses the exact double sum, not the independent-noise AR(1) value.

Tolerance: final states of M independent particles; SE(var) from the sample's own fourth
moment, sqrt((m4 − var²)/M) (θ is close to, but not exactly, Gaussian); Z = 4.5.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg

from sim.observers import Basins, FirstPassage, Histogram, Record
from sim.sgd import simulate_sgd
from theory.landscapes import IsotropicNoiseFiniteSum, Quadratic, QuarticDoubleWell

Z = 4.5


def exact_var_sgd(lam, lr, S, N, sigma2, T, replacement):
    a = 1.0 - lr * lam
    j = np.arange(T)
    w = a**j  # weight of the noise of step T-1-j
    if replacement:
        return lr**2 * sigma2 / S * np.sum(w**2)
    K = N // S  # steps per epoch (left-over N mod S samples are skipped)
    v = sigma2 * (1.0 / S - 1.0 / N) * N / (N - 1.0)
    c = -sigma2 / (N - 1.0)
    epoch = (T - 1 - j) // K
    total = v * np.sum(w**2)
    for e in np.unique(epoch):
        we = w[epoch == e]
        total += c * (we.sum() ** 2 - np.sum(we**2))
    return lr**2 * total


def var_and_se(x):
    m = x.mean()
    v = x.var(ddof=1)
    m4 = np.mean((x - m) ** 4)
    return v, math.sqrt(max(m4 - v * v, 0.0) / x.size)


@pytest.mark.parametrize("replacement", [False, True])
def test_stationary_variance_exact(replacement):
    lam, lr, S, N, s2 = 1.0, 0.2, 10, 1000, 2.0
    M, T = 20000, 250  # 2.5 epochs without replacement; a^{2T} = 0.8^500 ~ 1e-49
    land = IsotropicNoiseFiniteSum(Quadratic([[lam]]), N, s2, seed=3)
    res = simulate_sgd(land, lr=lr, batch_size=S, n_steps=T, n_particles=M, theta0=0.0, seed=5,
                       replacement=replacement)
    x = res.final[:, 0]
    v, se = var_and_se(x)
    exact = exact_var_sgd(lam, lr, S, N, s2, T, replacement)
    assert abs(v - exact) < Z * se, (v, exact, se)
    assert abs(x.mean()) < Z * math.sqrt(exact / M)
    # the approximation that ignores within-epoch correlations (independent noise of variance
    # σ²·finite-data factor) is off by ~9% here and is rejected: the correlations are real
    if not replacement:
        factor = (1 / S - 1 / N) * N / (N - 1)
        naive = lr**2 * s2 * factor / (1 - (1 - lr * lam) ** 2)
        assert abs(v - naive) > Z * se
    else:
        ar1 = (lr / S) * s2 / (lam * (2 - lr * lam))
        assert abs(exact - ar1) < 1e-12 * ar1


def test_one_step_noise_variance_finite_data_factor():
    # A single step from θ0: θ1 = θ0 − η(λθ0 + ξ̄): Var = η² σ² (1/S − 1/N) N/(N − 1), exactly.
    lam, lr, S, N, s2, M = 1.0, 0.5, 30, 100, 1.0, 40000
    land = IsotropicNoiseFiniteSum(Quadratic([[lam]]), N, s2, seed=1)
    for repl, factor in ((False, (1 / S - 1 / N) * N / (N - 1)), (True, 1 / S)):
        res = simulate_sgd(land, lr=lr, batch_size=S, n_steps=1, n_particles=M, theta0=0.4, seed=2, replacement=repl)
        v, se = var_and_se(res.final[:, 0])
        assert abs(v - lr**2 * s2 * factor) < Z * se, (repl, v, lr**2 * s2 * factor)
        assert abs(res.final[:, 0].mean() - (0.4 - lr * lam * 0.4)) < Z * math.sqrt(v / M)


def test_every_sample_used_once_per_epoch():
    # Nearly flat base loss: after one full epoch (N/S steps) the batch-mean noises sum to
    # (S·Σ_i ξ_i)/S = 0, so θ returns to θ0 up to round-off and the O(λ) drift; with
    # replacement it does not.
    N, S, lr = 12, 4, 0.3
    land = IsotropicNoiseFiniteSum(Quadratic([[1e-12]]), N, 1.0, seed=0)
    res = simulate_sgd(land, lr=lr, batch_size=S, n_steps=9, n_particles=50, theta0=0.7, seed=1, observers=[Record(3)])
    np.testing.assert_allclose(res.trajectory[:, :, 0], 0.7, atol=1e-10)
    assert np.ptp(res.trajectory[:, :, 0]) < 1e-10
    res2 = simulate_sgd(land, lr=lr, batch_size=S, n_steps=9, n_particles=50, theta0=0.7, seed=1,
                        observers=[Record(3)], replacement=True)
    assert np.max(np.abs(res2.final[:, 0] - 0.7)) > 1e-3


def test_momentum_with_replacement_matches_heavy_ball_lyapunov():
    # with replacement the batch noise is i.i.d. with variance σ²/S: z = (θ, v) obeys
    # z' = F z + g ξ̄, F = [[1 − ηλ, μ], [−ηλ, μ]], g = −η (1, 1)ᵀ, Var ξ̄ = σ²/S.
    lam, lr, mu, S, N, s2 = 2.0, 0.1, 0.7, 5, 500, 1.0
    M, T = 20000, 300  # spectral radius ≈ sqrt(μ) = 0.84: 0.84^600 ~ 1e-45
    land = IsotropicNoiseFiniteSum(Quadratic([[lam]]), N, s2, seed=2)
    res = simulate_sgd(land, lr=lr, batch_size=S, momentum=mu, replacement=True, n_steps=T, n_particles=M,
                       theta0=0.0, seed=3)
    F = np.array([[1 - lr * lam, mu], [-lr * lam, mu]])
    g = lr * np.ones((2, 1))
    sig = scipy.linalg.solve_discrete_lyapunov(F, g @ g.T * s2 / S)
    v, se = var_and_se(res.final[:, 0])
    assert abs(v - sig[0, 0]) < Z * se


def test_bit_identical_across_thread_counts_and_schedules():
    land = IsotropicNoiseFiniteSum(QuarticDoubleWell(0.1), 200, 4.0, seed=0)
    T = 200
    bs = np.where(np.arange(T) < 100, 8, 20)
    kw = dict(lr=0.05, batch_size=bs, n_steps=T, n_particles=600, theta0=-1.0, seed=7, block_size=64,
              observers=[Histogram(np.linspace(-2, 2, 11)), FirstPassage(target=[1.0], radius=0.3), Record(50),
                         Basins(100)])
    a = simulate_sgd(land, n_threads=1, **kw)
    b = simulate_sgd(land, n_threads=2, **kw)
    for name in ("final", "diverged_step", "trajectory", "histogram", "basin_counts", "first_passage_steps",
                 "time_mean", "time_cov"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.params["batch_size_range"] == [8, 20]
    assert a.histogram_samples == 600 * T


def test_divergence_flagged():
    land = IsotropicNoiseFiniteSum(QuarticDoubleWell(0.1), 50, 0.01, seed=0)
    x0 = np.array([-1.0, 4.0, -1.0, 4.0])
    with pytest.warns(RuntimeWarning, match="diverged"):
        res = simulate_sgd(land, lr=0.5, batch_size=5, n_steps=20, n_particles=4, theta0=x0, seed=0)
    np.testing.assert_array_equal(res.diverged, x0 == 4.0)
    assert np.all(np.isfinite(res.final))
    assert res.finite().shape == (2, 1)


BASE = dict(lr=0.1, batch_size=5, n_steps=5, n_particles=4, theta0=0.0, seed=0)


@pytest.mark.parametrize(
    "override, name",
    [
        (dict(lr=0.0), "lr"),
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=51), "batch_size"),
        (dict(batch_size=2.5), "batch_size"),
        (dict(theta0=np.nan), "theta0"),
        (dict(n_steps=0), "n_steps"),
        (dict(momentum=1.5), "momentum"),
        (dict(batch_size=[5, 5, 60, 5, 5]), "batch_size"),
        (dict(batch_size=[5, 5, 5]), "batch_size"),
        (dict(batch_size=[5, 5, 2.5, 5, 5]), "batch_size"),
        (dict(lr=[0.1, 0.1, 0.0, 0.1, 0.1]), "lr"),
    ],
)
def test_bad_input_raises_naming_parameter(override, name):
    land = IsotropicNoiseFiniteSum(Quadratic([[1.0]]), 50, 1.0)
    with pytest.raises(ValueError, match=name):
        simulate_sgd(land, **{**BASE, **override})


def test_plain_landscape_rejected():
    with pytest.raises(ValueError, match="finite-sum"):
        simulate_sgd(Quadratic([[1.0]]), **BASE)


def test_full_batch_heavy_ball_is_deterministic_gd():
    # S = N without replacement: every batch is the whole data set, whose noise sums to 0, so SGD
    # is full-batch heavy-ball GD on the base loss: compare with the recursion (round-off only).
    lam, lr, mu, N = 1.5, 0.2, 0.6, 40
    land = IsotropicNoiseFiniteSum(Quadratic([[lam]], center=[0.5]), N, 2.0, seed=4)
    T = 30
    res = simulate_sgd(land, lr=lr, batch_size=N, momentum=mu, n_steps=T, n_particles=3, theta0=[[2.0], [-1.0], [0.0]],
                       seed=0, observers=[Record(1)])
    th = np.array([2.0, -1.0, 0.0])
    v = np.zeros(3)
    expect = [th.copy()]
    for _ in range(T):
        v = mu * v - lr * lam * (th - 0.5)
        th = th + v
        expect.append(th.copy())
    np.testing.assert_allclose(res.trajectory[:, :, 0], np.array(expect), rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.final_velocity[:, 0], v, rtol=0, atol=1e-12)


def test_single_particle_without_replacement_runs():
    """Regression: a block of one particle used to get a read-only permutation array."""
    from theory.landscapes import IsotropicNoiseFiniteSum, QuarticDoubleWell
    from sim.sgd import simulate_sgd

    land = IsotropicNoiseFiniteSum(QuarticDoubleWell(0.1), 100, 1.0)
    res = simulate_sgd(land, lr=0.05, batch_size=5, n_steps=100, n_particles=1, theta0=0.0, seed=0)
    assert res.final.shape == (1, 1) and np.all(np.isfinite(res.final))


# ------------------------------------------------------------------------------------------
# sampling without replacement: the law, exactly, and its memory
# ------------------------------------------------------------------------------------------
def test_fisher_yates_step_enumerates_every_permutation_once():
    """Exact law of the epoch sampler: with offsets enumerated over all N·(N−1)·…·1 values (what
    exactly uniform bounded integers draw with equal probability), the samples of one epoch run
    through every permutation of 0..N−1 exactly once, from the identity and from any other
    arrangement of the table (the one the previous epoch or particle left)."""
    import itertools

    from sim.sgd import draw_without_replacement

    n = 5
    for start in (np.arange(n), np.array([3, 0, 4, 1, 2])):
        seen = []
        for offsets in itertools.product(*[range(n - k) for k in range(n)]):
            table = start.astype(np.int32).copy()
            seen.append(tuple(draw_without_replacement(table, k, o) for k, o in enumerate(offsets)))
        assert len(seen) == math.factorial(n) and len(set(seen)) == math.factorial(n)
        assert set(seen) == set(itertools.permutations(range(n)))


def test_bounded_integers_are_uniform():
    """sim.rng.bounded: Pearson chi-square of 7 · 10⁵ draws on 0..6 against the uniform law,
    below the 1 − 1e-6 quantile; a floor(u·7) with a 2⁻³ bias in one bin would give ~2000."""
    from scipy import stats

    from sim.rng import block_states, bounded_integers

    draws = bounded_integers(block_states(3, 1)[0], 7, 700_000)
    counts = np.bincount(draws, minlength=7)
    assert counts.size == 7 and draws.min() >= 0
    chi2 = np.sum((counts - 1e5) ** 2 / 1e5)
    assert chi2 < stats.chi2.isf(1e-6, 6), chi2


def _pair_batches(m, **kw):
    """N = 4, S = 2 on l_j = εθ²/2 + ξ_jθ with lr = 1: each step moves θ by −mean(ξ of the batch),
    which identifies the batch (the six pair sums differ).  Returns the pairs and the index of the
    pair drawn at each of 3 steps, (3, m)."""
    land = IsotropicNoiseFiniteSum(Quadratic([[1e-12]]), 4, 1.0, seed=2)
    xi = land.data[:, 0]
    pairs = [(a, b) for a in range(4) for b in range(a + 1, 4)]
    sums = np.array([xi[a] + xi[b] for a, b in pairs])
    assert np.min(np.abs(sums[:, None] - sums[None, :]) + np.eye(6)) > 1e-3
    res = simulate_sgd(land, lr=1.0, batch_size=2, n_steps=3, n_particles=m, theta0=0.0, seed=9,
                       observers=[Record(1)], **kw)
    steps = -np.diff(res.trajectory[:, :, 0], axis=0) * 2  # sums of the batches' ξ, (3, m)
    which = np.argmin(np.abs(steps[:, :, None] - sums[None, None, :]), axis=2)
    np.testing.assert_allclose(sums[which], steps, atol=1e-9)
    return pairs, which


def _uniform_and_independent(first, later):
    """Pearson chi-square of ``first`` against 1/6 each, and of the 6 × 6 table (first, later) for
    independence, both at the 1 − 1e-6 quantile."""
    from scipy import stats

    counts = np.bincount(first, minlength=6)
    assert np.sum((counts - first.size / 6) ** 2 / (first.size / 6)) < stats.chi2.isf(1e-6, 5)
    table = np.zeros((6, 6))
    np.add.at(table, (first, later), 1)
    chi2, p, _, _ = stats.chi2_contingency(table)
    assert p > 1e-6, (chi2, p)


def test_epoch_batches_follow_the_uniform_permutation_law():
    """Under sampling without replacement (two steps per epoch, _pair_batches) the first batch of an
    epoch is each of the 6 pairs with probability 1/6, the second is always its complement, and the
    next epoch's first batch is independent of this one."""
    pairs, which = _pair_batches(60_000)
    complement = {k: pairs.index(tuple(sorted(set(range(4)) - set(p)))) for k, p in enumerate(pairs)}
    assert np.all(which[1] == np.vectorize(complement.get)(which[0]))
    _uniform_and_independent(which[0], which[2])


def test_per_step_subsets_are_uniform_and_independent():
    """reshuffle="step": every batch is a uniform pair (1/6 each) independent of the previous step's,
    so consecutive steps repeat a pair with probability 1/6; the epoch scheme (second batch = the
    complement) never does: the wrong prediction for this scheme."""
    _, which = _pair_batches(60_000, reshuffle="step")
    _uniform_and_independent(which[0], which[1])
    _uniform_and_independent(which[1], which[2])
    repeats = np.mean(which[0] == which[1])
    assert abs(repeats - 1 / 6) < Z * math.sqrt((1 / 6) * (5 / 6) / which.shape[1])


def test_per_step_subsets_stationary_variance_is_ar1():
    """reshuffle="step" on IsotropicNoiseFiniteSum(λ = 1), N = 1000, S = 10, η = 0.2: the batch noises of
    different steps are independent with variance σ²(1/S − 1/N)N/(N − 1), so the variance is the AR(1)
    value η²σ²·factor/(1 − a²) exactly (the value test_stationary_variance_exact rejects for epochs)."""
    lam, lr, size, n, s2, m, t = 1.0, 0.2, 10, 1000, 2.0, 20_000, 250
    land = IsotropicNoiseFiniteSum(Quadratic([[lam]]), n, s2, seed=3)
    res = simulate_sgd(land, lr=lr, batch_size=size, n_steps=t, n_particles=m, theta0=0.0, seed=5, reshuffle="step")
    v, se = var_and_se(res.final[:, 0])
    factor = (1 / size - 1 / n) * n / (n - 1)
    assert abs(v - lr**2 * s2 * factor / (1 - (1 - lr * lam) ** 2)) < Z * se
    assert abs(v - exact_var_sgd(lam, lr, size, n, s2, t, replacement=False)) > Z * se


def test_reshuffle_bad_input():
    land = IsotropicNoiseFiniteSum(Quadratic([[1.0]]), 50, 1.0)
    with pytest.raises(ValueError, match="reshuffle"):
        simulate_sgd(land, reshuffle="batch", **BASE)
    with pytest.raises(ValueError, match="reshuffle"):
        simulate_sgd(land, reshuffle="step", replacement=True, **BASE)


def test_ten_million_samples_fit_in_memory():
    """N = 10⁷ samples without replacement: memory O(N + block), not O(block·N) (256 × 10⁷ indices
    would be 10 GB).  A fresh process compiles the kernels on a small data set first (compiling can
    take ~1 GB when the disk cache is cold), resets its peak resident size (Linux clear_refs), then
    runs 256 particles × 20 steps on N = 10⁷; the new peak, data (80 MB, plus the copies made while
    whitening them) and one table of N int32 per thread (40 MB) included, must stay below 1 GB."""
    import subprocess
    import sys

    script = (
        "import numpy as np\n"
        "from theory.landscapes import IsotropicNoiseFiniteSum, QuarticDoubleWell\n"
        "from sim.sgd import simulate_sgd\n"
        "kw = dict(lr=0.01, batch_size=10, n_steps=20, n_particles=256, theta0=-1.0, seed=0)\n"
        "simulate_sgd(IsotropicNoiseFiniteSum(QuarticDoubleWell(0.1), 100, 1.0, seed=0), **kw)\n"
        "try:\n"
        "    open('/proc/self/clear_refs', 'w').write('5')\n"
        "except OSError:\n"
        "    print('no-reset'); raise SystemExit\n"
        "land = IsotropicNoiseFiniteSum(QuarticDoubleWell(0.1), 10_000_000, 1.0, seed=0)\n"
        "res = simulate_sgd(land, **kw)\n"
        "assert np.all(np.isfinite(res.final))\n"
        "print([int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0])\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    last = out.stdout.strip().splitlines()[-1]
    if last == "no-reset":
        pytest.skip("this kernel cannot reset the peak resident size (/proc/self/clear_refs)")
    peak_kb = int(last)
    assert peak_kb < 1_000_000, peak_kb
