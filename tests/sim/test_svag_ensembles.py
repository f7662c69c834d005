"""Tests of sim.svag.simulate_svag (SVAG ensembles) against exact answers from theory.svag.

* One SVAG step from a fixed θ on a nonlinear finite sum (logistic regression): mean −(η/l)ḡ and
  covariance (η²/l)·c·Σ₁ exactly (theory.svag.step_moments, itself checked against enumeration of
  every pair of batches in tests/theory/test_svag.py), for both sampling schemes.
* Many steps on the finite-sum quadratics where SVAG's moments are a closed recursion
  (theory.svag.isotropic_moments_1d, theory.svag.quadratic_step).
* l = 1 is SGD bit for bit; seeds, threads, divergence and bad input as for every engine method.

Tolerances: sample means and (co)variances of M independent particles, their standard errors from
the sample's own fourth moments; Z = 4.5 per comparison (with at most ~10 comparisons per test the
family-wise false-alarm rate is < 1e-4).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from sim.observers import Observer, Record
from sim.sgd import simulate_sgd
from sim.svag import simulate_svag
from theory import svag
from theory._numba import jit
from theory.landscapes import FiniteSumLandscape, InterpolatingQuadratics, IsotropicNoiseFiniteSum, Quadratic

Z = 4.5


def _first_substep_hook(data, i, step, time, theta):
    states = data[0]
    if step == -1 and time < 1.0 and math.isnan(states[i, 0]):
        for k in range(theta.shape[0]):
            states[i, k] = theta[k]


class FirstSubStep(Observer):
    """The state after the first SVAG step (the first sub-step of SGD step 0; l >= 2)."""

    name = "first_substep"

    def __init__(self):
        self.hook = jit(_first_substep_hook, "FirstSubStep hook")

    def prepare(self, run):
        super().prepare(run)
        self.states = np.full((run.n_particles, run.dim), np.nan)

    def block_data(self, b, rows):
        return (self.states[rows],)

    def finish(self, result):
        result.params["first_substep"] = self.states


def moments_z(x, mean, cov):
    """Largest |z| of the sample mean and of the sample covariance entries of x (M, d) against the
    exact mean and covariance; SE of each covariance entry from the sample's fourth moments."""
    m = x.shape[0]
    dev = x - mean  # exact mean: no estimated-mean bias
    z_mean = np.abs(x.mean(axis=0) - mean) / np.sqrt(np.diag(cov) / m)
    prods = dev[:, :, None] * dev[:, None, :]
    se = prods.std(axis=0, ddof=1) / math.sqrt(m)
    z_cov = np.abs(prods.mean(axis=0) - cov) / se
    return float(max(z_mean.max(), z_cov.max()))


@pytest.fixture(scope="module")
def logistic():
    return FiniteSumLandscape.example()  # logistic regression, N = 30, d = 2, l2 = 0.05


@pytest.mark.parametrize("amplification, replacement", [(2, True), (3, False), (8, True), (8, False)])
def test_one_step_moments_are_exact(logistic, amplification, replacement):
    """One SVAG step from θ0 on logistic regression (state-dependent, non-Gaussian noise), M = 40,000:
    mean and covariance equal theory.svag.step_moments (Z = 4.5 on 5 numbers).  Wrong prediction
    rejected by the same data: the step without amplified variance, covariance (η/l)²·c·Σ₁ (what two
    batches with weights 1/2 would give is smaller still): off by the factor l (> 60 SE here)."""
    theta0 = np.array([0.4, -0.7])
    lr, size, m = 2.0, 5, 40_000
    res = simulate_svag(logistic, lr=lr, batch_size=size, amplification=amplification, n_steps=1, n_particles=m,
                        theta0=theta0, seed=11, replacement=replacement, observers=[FirstSubStep()])
    x = res.params["first_substep"] - theta0
    grads = logistic.sample_gradients(theta0)
    mean, cov = svag.step_moments(grads, lr=lr, batch_size=size, amplification=amplification,
                                  replacement=replacement)
    assert moments_z(x, mean, cov) < Z
    assert moments_z(x, mean, cov / amplification) > 10 * Z


@pytest.mark.parametrize("replacement", [True, False])
def test_l1_is_sgd_bit_for_bit(logistic, replacement):
    """l = 1: r1 = 1, r2 = 0, the second batch is not drawn, and the run is simulate_sgd's with the
    same per-step scheme (with replacement, or a fresh subset every step)."""
    kw = dict(lr=0.3, batch_size=4, n_steps=40, n_particles=300, theta0=[0.1, 0.2], seed=3)
    a = simulate_svag(logistic, amplification=1, replacement=replacement, **kw)
    b = simulate_sgd(logistic, replacement=replacement, reshuffle="epoch" if replacement else "step", **kw)
    np.testing.assert_array_equal(a.final, b.final)


@pytest.mark.parametrize("amplification, replacement", [(1, True), (2, False), (4, True)])
def test_quadratic_moments_after_sgd_time(amplification, replacement):
    """IsotropicNoiseFiniteSum(λ = 2), N = 200, η = 0.3, S = 4, θ0 = 1, K = 6 units of SGD time (6·l SVAG
    steps), M = 40,000: mean a^(lK) and variance Var_l(1 − a^(2lK)), a = 1 − ηλ/l, from
    theory.svag.isotropic_moments_1d (c = 1/S or (N − S)/(S(N − 1))).  This also checks that n_steps
    counts SGD time.  Wrong prediction: K SVAG steps instead of lK (l >= 2): the mean a^K is > 30 SE away."""
    lam, lr, size, n, k, m = 2.0, 0.3, 4, 200, 6, 40_000
    land = IsotropicNoiseFiniteSum(Quadratic([[lam]]), n, 1.0, seed=1)
    res = simulate_svag(land, lr=lr, batch_size=size, amplification=amplification, n_steps=k, n_particles=m,
                        theta0=1.0, seed=5, replacement=replacement)
    mean, var = svag.isotropic_moments_1d(k, mean0=1.0, var0=0.0, lam=lam, lr=lr, batch_size=size, sigma2=1.0,
                                          amplification=amplification, n_samples=None if replacement else n)
    x = res.final[:, 0]
    assert moments_z(x[:, None], np.array([mean]), np.array([[var]])) < Z
    if amplification > 1:
        wrong = (1.0 - lr * lam / amplification) ** k
        assert abs(x.mean() - wrong) > 30 * math.sqrt(var / m)


def test_interpolating_second_moment_dd():
    """InterpolatingQuadratics (2-D, N = 6, common minimum θ* = (0.3, −0.1)): E[(θ − θ*)(θ − θ*)ᵀ] after
    3 units of SGD time with l = 4 (12 SVAG steps) equals theory.svag.quadratic_step applied 12 times
    (zero per-sample centres relative to θ*, so the noise is purely multiplicative), M = 40,000."""
    land = InterpolatingQuadratics.example()
    lr, size, l, k, m = 0.3, 2, 4, 3, 40_000
    theta0 = land.center + np.array([0.5, 0.8])
    res = simulate_svag(land, lr=lr, batch_size=size, amplification=l, n_steps=k, n_particles=m, theta0=theta0,
                        seed=2, replacement=True)
    mean, cov = theta0 - land.center, np.zeros((2, 2))
    centres = np.zeros((land.n_samples, 2))
    for _ in range(l * k):
        mean, cov = svag.quadratic_step(mean, cov, land.hessians, centres, lr=lr, batch_size=size, amplification=l,
                                        replacement=True)
    x = res.final - land.center
    second = cov + np.outer(mean, mean)
    prods = x[:, :, None] * x[:, None, :]
    z = np.abs(prods.mean(axis=0) - second) / (prods.std(axis=0, ddof=1) / math.sqrt(m))
    assert z.max() < Z, z


def test_same_numbers_at_any_thread_count_and_substeps_observed(logistic):
    kw = dict(lr=0.2, batch_size=3, amplification=3, n_steps=30, n_particles=500, theta0=[0.0, 0.0], seed=9,
              block_size=64, observers=[Record(10)])
    a = simulate_svag(logistic, n_threads=1, **kw)
    b = simulate_svag(logistic, n_threads=2, **kw)
    np.testing.assert_array_equal(a.final, b.final)
    np.testing.assert_array_equal(a.trajectory, b.trajectory)
    assert a.params["amplification"] == 3 and a.params["method"] == "svag"
    assert a.record_steps.tolist() == [0, 10, 20, 30]


def test_divergence_flagged():
    """ηλ/l = 2.5: every SVAG step multiplies θ by −1.5 (noise ~0.01): from 1e5 the sixth SVAG step, the
    second of SGD step 2, crosses the bound 1e6 and is not applied; from 0.5 the run stays below it."""
    land = IsotropicNoiseFiniteSum(Quadratic([[1.0]]), 20, 0.01, seed=0)
    with pytest.warns(RuntimeWarning, match="diverged"):
        res = simulate_svag(land, lr=5.0, batch_size=2, amplification=2, n_steps=10, n_particles=2,
                            theta0=np.array([0.5, 1e5]), seed=0, divergence_bound=1e6)
    assert res.diverged.tolist() == [False, True]
    assert res.diverged_step.tolist() == [-1, 2]
    assert 1e5 * 1.5**5 * 0.99 < abs(res.final[1, 0]) < 1e6


BASE = dict(lr=0.1, batch_size=5, amplification=2, n_steps=5, n_particles=4, theta0=0.0, seed=0)


@pytest.mark.parametrize(
    "override, error, name",
    [
        (dict(amplification=0), ValueError, "amplification"),
        (dict(amplification=-2), ValueError, "amplification"),
        (dict(amplification=2.5), TypeError, "amplification"),
        (dict(amplification=True), TypeError, "amplification"),
        (dict(amplification="4"), TypeError, "amplification"),
        (dict(lr=0.0), ValueError, "lr"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(batch_size=51), ValueError, "batch_size"),
        (dict(theta0=np.nan), ValueError, "theta0"),
        (dict(n_steps=0), ValueError, "n_steps"),
    ],
)
def test_bad_input_names_the_parameter(override, error, name):
    land = IsotropicNoiseFiniteSum(Quadratic([[1.0]]), 50, 1.0)
    with pytest.raises(error, match=name):
        simulate_svag(land, **{**BASE, **override})


def test_plain_landscape_rejected():
    with pytest.raises(ValueError, match="finite-sum"):
        simulate_svag(Quadratic([[1.0]]), **BASE)
