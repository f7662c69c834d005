"""Exact minibatch SGD at an interpolating minimum (Wu, Ma & E 2018) against the exact second-moment
recursion of theory.stability, and the PathMaximum observer that the escape counts use.

At a common minimum θ* = 0 one SGD step is θ' = (1 − ηh_B)θ (1-D), with the batches of different steps
independent (with replacement, or a fresh subset every step: reshuffle="step"), so

    E θ_t² = q^t θ0²,   q = E(1 − ηh_B)²,      E θ_t⁴ = m4^t θ0⁴,   m4 = E(1 − ηh_B)⁴,

exactly, the expectations over the exact law of h_B (theory.stability.batch_mean_distribution,
enumerated).  The sample mean of θ_t² over M particles then has the exact standard error
sqrt((m4^t − q^(2t))/M)·θ0²; Z = 4.5 per comparison.  (Per-epoch reshuffling correlates the steps of
an epoch, and the recursion does not hold for it.)
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from sim.observers import PathMaximum, Record
from sim.sgd import simulate_sgd
from theory import stability
from theory.landscapes import InterpolatingQuadratics, LeastSquares

Z = 4.5
CURVATURES = np.random.default_rng(0).exponential(1.0, 16)  # h_i ~ Exp(1), N = 16


def exact_moments(lr, size, replacement):
    values, probs = stability.batch_mean_distribution(CURVATURES, size, replacement=replacement)
    x = 1.0 - lr * values
    return float(probs @ x**2), float(probs @ x**4)


@pytest.mark.parametrize("size, ratio, replacement", [(1, 0.95, True), (4, 1.25, True), (2, 1.05, False),
                                                      (8, 1.25, False)])
def test_mean_square_is_q_to_the_t(size, ratio, replacement):
    """lr = ratio · lr*(S), t = 1 … 3, M = 20,000, θ0 = 1: the sample mean of θ_t² against q^t (q from
    the enumerated law, equal to theory.stability.growth_factor_1d to 1e-12).  The least-squares form
    LeastSquares(√h_i, 0) is used with replacement, InterpolatingQuadratics(h_i) without.  Wrong
    prediction at ratio > 1 (the SDE boundary, which calls every point here stable): E θ_t² <= 1; the
    data put E θ_3² above 1 by > 4.5 SE."""
    a, s = stability.sharpness_nonuniformity(CURVATURES)
    n = CURVATURES.size
    lr = ratio * float(stability.critical_lr_1d(a, s, batch_size=size, n_samples=n, replacement=replacement))
    q, m4 = exact_moments(lr, size, replacement)
    assert q == pytest.approx(float(stability.growth_factor_1d(a, s, lr=lr, batch_size=size, n_samples=n,
                                                               replacement=replacement)), rel=1e-12)
    land = (LeastSquares(np.sqrt(CURVATURES)[:, None], np.zeros(n)) if replacement
            else InterpolatingQuadratics(CURVATURES))
    m = 20_000
    res = simulate_sgd(land, lr=lr, batch_size=size, n_steps=3, n_particles=m, theta0=1.0, seed=size,
                       replacement=replacement, reshuffle="epoch" if replacement else "step", observers=[Record(1)])
    sq = res.trajectory[1:, :, 0] ** 2
    t = np.arange(1, 4)
    se = np.sqrt((m4**t - q ** (2 * t)) / m)
    z = np.abs(sq.mean(axis=1) - q**t) / se
    assert z.max() < Z, (z, q)
    if ratio > 1:
        assert sq[-1].mean() - 1.0 > Z * se[-1]
    assert sq.mean(axis=1)[0] == pytest.approx(q, abs=Z * se[0])


@pytest.mark.parametrize("replacement", [True, False])
def test_second_moment_matrix_follows_the_operator(replacement):
    """2-D, InterpolatingQuadratics.example() (N = 6, θ* = (0.3, −0.1)), S = 2, lr at 1.1 × lr*(S):
    E[(θ_t − θ*)(θ_t − θ*)ᵀ] = Op^t M0 (theory.stability.second_moment_operator) for t = 1 … 4, entry by
    entry, M = 20,000, SE of each entry from the sample (Z = 4.5 on 12 numbers)."""
    land = InterpolatingQuadratics.example()
    lr = 1.1 * float(stability.critical_lr(land.hessians, batch_size=2, replacement=replacement))
    op = stability.second_moment_operator(land.hessians, lr=lr, batch_size=2, replacement=replacement)
    start = np.array([0.6, -0.4])
    m = 20_000
    res = simulate_sgd(land, lr=lr, batch_size=2, n_steps=4, n_particles=m, theta0=land.center + start, seed=4,
                       replacement=replacement, reshuffle="epoch" if replacement else "step", observers=[Record(1)])
    vec = np.outer(start, start).ravel()
    worst = 0.0
    for t in range(1, 5):
        vec = op @ vec
        x = res.trajectory[t] - land.center
        prods = (x[:, :, None] * x[:, None, :]).reshape(m, 4)
        z = np.abs(prods.mean(axis=0) - vec) / (prods.std(axis=0, ddof=1) / math.sqrt(m))
        worst = max(worst, float(z[[0, 1, 3]].max()))
    assert worst < Z


def test_path_maximum_is_the_largest_recorded_distance():
    """PathMaximum equals the maximum of ‖θ_t‖ over a Record(1) of every step (the same states, so
    exactly), including the initial state; diverged particles get inf."""
    land = InterpolatingQuadratics(CURVATURES)
    x0 = np.where(np.arange(300) % 100 == 0, 5e5, 1.0)  # three start close to the divergence bound
    lr = 1.3 * float(stability.critical_lr_1d(*stability.sharpness_nonuniformity(CURVATURES), batch_size=1,
                                              replacement=True))
    with pytest.warns(RuntimeWarning, match="diverged"):
        res = simulate_sgd(land, lr=lr, batch_size=1, n_steps=30, n_particles=300, theta0=x0, seed=1, replacement=True,
                           observers=[Record(1), PathMaximum()])
    assert res.diverged.any() and not res.diverged.all()
    recorded = np.max(np.abs(res.trajectory[:, :, 0]), axis=0)
    np.testing.assert_array_equal(res.path_maximum[~res.diverged], recorded[~res.diverged])
    assert np.all(np.isinf(res.path_maximum[res.diverged]))
    assert np.all(res.path_maximum >= np.abs(x0))


def test_single_sample_has_no_nonuniformity():
    with pytest.raises(ValueError, match="per_sample_hessians"):
        InterpolatingQuadratics([2.0])
    with pytest.raises(ValueError, match="per_sample_hessians"):
        InterpolatingQuadratics([[[1.0, 0.0], [0.0, -1.0]], [[1.0, 0.0], [0.0, 1.0]]])
    with pytest.raises(ValueError, match="center"):
        InterpolatingQuadratics([1.0, 2.0], center=[0.0, 1.0])
