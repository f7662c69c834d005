"""Property tests for theory.gibbs (paper Theorem 1, eq. 2; App. B eq. 16)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theory import gibbs

SET = settings(max_examples=25, deadline=None)

lrs = st.floats(1e-4, 1.0)
batches = st.floats(1.0, 1e4)
sigma2s = st.floats(1e-3, 1e2)
betas = st.floats(1e-2, 1e2)


@SET
@given(lrs, batches, sigma2s)
def test_temperature_and_noise_formulas(lr, s, s2):
    """T = lr sigma2 / (2 S) = n sigma2 / 2 and n = lr / S (eq. 2, eq. 16)."""
    assert gibbs.noise(lr, s) == pytest.approx(lr / s, rel=1e-15)
    assert gibbs.temperature(lr, s, s2) == pytest.approx(lr * s2 / (2 * s), rel=1e-15)
    assert gibbs.temperature(lr, s, s2) == pytest.approx(gibbs.noise(lr, s) * s2 / 2, rel=1e-14)


@SET
@given(lrs, st.floats(100.0, 1000.0), sigma2s, betas, st.floats(-10.0, 10.0))
def test_rescaling_invariance(lr, s, s2, beta, loss):
    """(lr, S) -> (beta lr, beta S) leaves n, T and log P = -2L/(n sigma2) unchanged (eq. 2).
    (S >= 100, beta >= 0.01 keeps beta S >= 1.)"""
    assert gibbs.noise(beta * lr, beta * s) == pytest.approx(gibbs.noise(lr, s), rel=1e-13)
    assert gibbs.temperature(beta * lr, beta * s, s2) == pytest.approx(gibbs.temperature(lr, s, s2), rel=1e-13)
    assert gibbs.log_density(loss, beta * lr, beta * s, s2) == pytest.approx(
        gibbs.log_density(loss, lr, s, s2), rel=1e-13, abs=1e-300
    )


@SET
@given(lrs, batches, sigma2s, st.floats(-100.0, 100.0))
def test_log_density_is_minus_loss_over_temperature(lr, s, s2, loss):
    """log P - log P0 = -2 L / (n sigma2) = -L / T (eq. 2)."""
    expected = -2.0 * loss / ((lr / s) * s2)
    assert gibbs.log_density(loss, lr, s, s2) == pytest.approx(expected, rel=1e-13, abs=1e-300)


def test_broadcasting_over_arrays():
    """Array inputs broadcast elementwise; scalars give floats."""
    lr = np.array([0.1, 0.2, 0.4])
    s = np.array([[10.0], [20.0]])
    t = gibbs.temperature(lr, s, 2.0)
    assert t.shape == (2, 3)
    np.testing.assert_allclose(t, lr[None, :] * 2.0 / (2 * s), rtol=1e-15)
    assert isinstance(gibbs.temperature(0.1, 10, 1.0), float)
    ld = gibbs.log_density(np.array([0.0, 1.0, 2.0]), lr, 10.0, 1.0)
    np.testing.assert_allclose(ld, -np.array([0.0, 1.0, 2.0]) / (lr / 20.0), rtol=1e-15)


@SET
@given(
    st.lists(st.floats(-50.0, 50.0), min_size=1, max_size=60),
    st.floats(1e-3, 10.0),
    st.floats(1e-8, 10.0),
)
def test_normalized_density_sums_to_one(losses, h, temp):
    """sum_i P_i w_i = 1 for the normalised Gibbs density, even when every exp(-L_i/T) under/overflows.

    Tolerance 1e-12: rounding of a log-sum-exp over <= 60 terms."""
    loss = np.array(losses)
    p = gibbs.normalized_density(loss, h, 2.0 * temp, 1.0, 1.0)  # T = lr sigma2 / (2 S) = temp
    assert np.all(np.isfinite(p)) and np.all(p >= 0)
    assert np.sum(p * h) == pytest.approx(1.0, rel=1e-12)
    # the density is largest at the lowest loss, and never underflows there
    assert p[np.argmin(loss)] == pytest.approx(np.max(p), rel=1e-15)
    assert np.max(p) * h >= 1.0 / len(losses) - 1e-12


@SET
@given(st.floats(0.1, 10.0), st.floats(1e-3, 1.0))
def test_density_on_grid_matches_gaussian(lam, temp):
    """For L = lam theta^2 / 2 the Gibbs density is N(0, T/lam) (eq. 2), so
    log Z = 1/2 log(2 pi T / lam) and the variance is T/lam.  Riemann sums on an equispaced grid
    spanning +-12 std with h = std/10 are spectrally accurate for a Gaussian (error ~exp(-2 pi^2 std^2/h^2)
    ~ 0, plus tails exp(-72)), so tolerance 1e-10."""
    std = math.sqrt(temp / lam)
    h = std / 10
    x = np.arange(-120, 121) * h
    loss = 0.5 * lam * x**2
    lr, s, s2 = 2.0 * temp, 1.0, 1.0
    assert gibbs.log_partition(loss, h, lr, s, s2) == pytest.approx(0.5 * math.log(2 * math.pi * temp / lam), abs=1e-10)
    p = gibbs.normalized_density(loss, h, lr, s, s2)
    assert np.sum(p * x**2 * h) == pytest.approx(temp / lam, rel=1e-10)


def test_tiny_temperature_no_underflow():
    """At T = 1e-12 with losses O(1) every exp(-L/T) underflows; log-sum-exp still gives
    log Z = -L_min/T + log(w * #argmin) up to exp(-(L_2 - L_min)/T) ~ 0."""
    loss = np.array([1.0, 0.5, 0.5, 2.0])
    w = np.array([0.1, 0.2, 0.3, 0.4])
    lr = 2e-12  # T = 1e-12
    logz = gibbs.log_partition(loss, w, lr, 1.0, 1.0)
    assert logz == pytest.approx(-0.5 / 1e-12 + math.log(0.5), rel=1e-15)
    p = gibbs.normalized_density(loss, w, lr, 1.0, 1.0)
    np.testing.assert_allclose(p, [0.0, 2.0, 2.0, 0.0], rtol=1e-14)
    assert np.sum(p * w) == pytest.approx(1.0, rel=1e-14)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(lr=0.0, batch_size=1, sigma2=1.0), "lr"),
        (dict(lr=-1.0, batch_size=1, sigma2=1.0), "lr"),
        (dict(lr=float("nan"), batch_size=1, sigma2=1.0), "lr"),
        (dict(lr=0.1, batch_size=0.5, sigma2=1.0), "batch_size"),
        (dict(lr=0.1, batch_size=float("nan"), sigma2=1.0), "batch_size"),
        (dict(lr=0.1, batch_size=1, sigma2=0.0), "sigma2"),
        (dict(lr=0.1, batch_size=1, sigma2=-2.0), "sigma2"),
        (dict(lr=np.array([0.1, -0.1]), batch_size=1, sigma2=1.0), "lr"),
    ],
)
def test_bad_inputs_raise(kwargs, name):
    """Invalid hyper-parameters raise ValueError naming the parameter."""
    with pytest.raises(ValueError, match=name):
        gibbs.temperature(**kwargs)
    with pytest.raises(ValueError, match=name):
        gibbs.log_density(1.0, **kwargs)
    with pytest.raises(ValueError, match=name):
        gibbs.normalized_density(np.zeros(3), 1.0, **kwargs)
    with pytest.raises(ValueError, match=name):
        gibbs.log_partition(np.zeros(3), 1.0, **kwargs)


def test_bad_grid_inputs_raise():
    """NaN losses and non-positive cell volumes are rejected by name."""
    with pytest.raises(ValueError, match="loss"):
        gibbs.log_density(float("nan"), 0.1, 1, 1.0)
    with pytest.raises(ValueError, match="loss_values"):
        gibbs.normalized_density(np.array([0.0, np.nan]), 1.0, 0.1, 1, 1.0)
    with pytest.raises(ValueError, match="cell_volume"):
        gibbs.normalized_density(np.zeros(3), 0.0, 0.1, 1, 1.0)
    with pytest.raises(ValueError, match="lr"):
        gibbs.noise(0.0, 1)
    with pytest.raises(ValueError, match="batch_size"):
        gibbs.noise(0.1, 0)


def test_normalized_density_2d_with_simpson_weights():
    """Array cell volumes (tensor Simpson weights) on a 2-D grid: sum P w = 1, and for the Gaussian
    L = (x^2 + 4 y^2)/2 the weighted second moments are T and T/4 (eq. 2; Simpson error O(h^4) with
    h = std/8 and tails exp(-72) -> rel 1e-6)."""
    from theory.minima import simpson_weights

    temp = 0.05
    std = math.sqrt(temp)
    x = np.linspace(-12 * std, 12 * std, 193)
    w1 = simpson_weights(193, x[1] - x[0])
    g = np.stack(np.meshgrid(x, x, indexing="ij"), axis=-1)
    loss = 0.5 * (g[..., 0] ** 2 + 4 * g[..., 1] ** 2)
    w = np.outer(w1, w1)
    p = gibbs.normalized_density(loss, w, 2 * temp, 1.0, 1.0)
    assert np.sum(p * w) == pytest.approx(1.0, rel=1e-13)
    assert np.sum(p * w * g[..., 0] ** 2) == pytest.approx(temp, rel=1e-6)
    assert np.sum(p * w * g[..., 1] ** 2) == pytest.approx(temp / 4, rel=1e-6)
