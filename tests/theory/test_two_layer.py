"""Tests of theory.two_layer.TwoLayerRegression (exact derivatives, kernels, noise geometry).

Finite-difference tolerance: central differences with step eps = 1e-5 have truncation error
eps^2 |f'''| / 6 ~ 1e-11 (|f'''| = O(1) here: tanh/softplus derivatives are bounded, inputs have
norm ~1) and rounding error ~ 1e-16 |f| / eps ~ 1e-11; we allow 1e-7 (relative to the largest
entry, plus the same absolute), >1000x the expected error, while a wrong factor or a missing term
in a derivative is O(1e-2) or larger.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theory import noise_geometry as ng
from theory.two_layer import TwoLayerRegression

EPS = 1e-5
FD_TOL = 1e-7  # see module docstring

seeds = st.integers(min_value=0, max_value=2**31 - 1)
acts = st.sampled_from(["tanh", "softplus"])


def _problem(seed, act, l2=0.0, n=6, d=3, m=4):
    land, theta_star = TwoLayerRegression.teacher(
        n_samples=n, input_dim=d, width=m, seed=seed, activation=act, l2=l2)
    rng = np.random.default_rng(seed + 1)
    theta = theta_star + 0.7 * rng.standard_normal(land.dim)
    return land, theta_star, theta, rng


def _fd(fun, theta):
    cols = []
    for e in np.eye(theta.size):
        cols.append((fun(theta + EPS * e) - fun(theta - EPS * e)) / (2 * EPS))
    return np.stack(cols, axis=-1)


def _close(a, b):
    scale = max(1.0, float(np.max(np.abs(b))))
    assert np.max(np.abs(a - b)) <= FD_TOL * scale


@settings(max_examples=15, deadline=None)
@given(seed=seeds, act=acts, l2=st.sampled_from([0.0, 0.03]))
def test_gradient_and_hessian_match_finite_differences(seed, act, l2):
    """grad L = d L / d theta and H = d grad L / d theta (central differences), for both activations."""
    land, _, theta, _ = _problem(seed, act, l2)
    _close(land.gradient(theta), _fd(land.value, theta))
    h = land.hessian(theta)
    _close(h, _fd(land.gradient, theta))
    np.testing.assert_array_equal(h, h.T)


@settings(max_examples=15, deadline=None)
@given(seed=seeds, act=acts)
def test_sample_gradients_and_jacobians_match_finite_differences(seed, act):
    """grad l_i = d l_i / d theta, J_i = d f(x_i) / d theta, and mean_i grad l_i = grad L."""
    land, _, theta, _ = _problem(seed, act)
    _close(land.sample_gradients(theta), _fd(land.sample_losses, theta))
    _close(land.jacobians(theta), _fd(land.predict, theta))
    np.testing.assert_allclose(land.sample_gradients(theta).mean(axis=0), land.gradient(theta), atol=1e-14)


@settings(max_examples=15, deadline=None)
@given(seed=seeds, act=acts)
def test_gauss_newton_and_noise_covariance_exact(seed, act):
    """G = J^T J / N; H = G at an interpolating point (r = 0, no L2); Sigma_1 = cov of r_i J_i;
    Sigma_1 = 0 at the interpolating point; kernel-form mu = mu of the explicit matrices."""
    land, theta_star, theta, _ = _problem(seed, act)
    j = land.jacobians(theta)
    np.testing.assert_allclose(land.gauss_newton(theta), j.T @ j / land.n_samples, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(land.hessian(theta_star), land.gauss_newton(theta_star), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(land.noise_covariance(theta_star), 0.0, atol=1e-28)
    r = land.residuals(theta)
    sig = land.noise_covariance(theta)
    np.testing.assert_allclose(sig, ng.noise_covariance_from_gradients(r[:, None] * j), atol=1e-14)
    loss = land.value(theta)
    assert ng.kernel_average_alignment(j, r) == pytest.approx(
        ng.average_alignment(sig, land.gauss_newton(theta), loss), rel=1e-8)


@settings(max_examples=10, deadline=None)
@given(seed=seeds, act=acts, l2=st.sampled_from([0.0, 0.05]))
def test_numba_kernels_match_numpy(seed, act, l2):
    """The compiled value, gradient, one-sample gradient and noise covariance equal the same
    per-sample functions run by Python (``reference``) to rounding (1e-12 relative)."""
    land, _, theta, rng = _problem(seed, act, l2, n=7)
    v, g, _ = land.reference(theta)
    assert land.value(theta) == pytest.approx(v, rel=1e-12)
    np.testing.assert_allclose(land.gradient(theta), g, rtol=1e-12, atol=1e-14)
    g_i = land.reference_sample_gradients(theta)
    j = int(rng.integers(0, land.n_samples))
    comp = land.compiled
    out, tmp = np.zeros(land.dim), np.empty(land.dim)
    comp.shared_gradient(theta, comp.params, out)
    comp.add_sample_gradient(theta, comp.params, j, 1.0, out, tmp)
    np.testing.assert_allclose(out, g_i[j], rtol=1e-12, atol=1e-14)
    gc = g_i - g_i.mean(axis=0)
    np.testing.assert_allclose(land.noise_covariance(theta), gc.T @ gc / land.n_samples, rtol=1e-10, atol=1e-14)


def test_vectorised_shapes():
    """Methods accept theta of shape (..., dim) and return the documented shapes."""
    land, _, theta, _ = _problem(0, "tanh")
    th = np.stack([theta, theta + 0.1, theta - 0.2]).reshape(3, 1, land.dim)
    assert land.value(th).shape == (3, 1)
    assert land.gradient(th).shape == (3, 1, land.dim)
    assert land.hessian(th).shape == (3, 1, land.dim, land.dim)
    assert land.sample_gradients(th).shape == (3, 1, land.n_samples, land.dim)
    assert land.noise_covariance(th).shape == (3, 1, land.dim, land.dim)
    assert land.gauss_newton(th).shape == (3, 1, land.dim, land.dim)
    np.testing.assert_allclose(land.value(th)[1, 0], land.value(theta + 0.1))


@pytest.mark.parametrize(
    "kwargs, param",
    [
        (dict(activation="relu"), "activation"),
        (dict(targets=np.zeros(3)), "rows"),
        (dict(second_layer=np.array([])), "second_layer"),
        (dict(l2=-1.0), "l2"),
    ],
)
def test_input_validation(kwargs, param):
    """Bad constructor arguments raise ValueError naming the parameter."""
    base = dict(inputs=np.ones((4, 2)), targets=np.zeros(4), second_layer=np.ones(3))
    base.update(kwargs)
    with pytest.raises(ValueError, match=param):
        TwoLayerRegression(**base)


def test_minima_not_available():
    """An over-parameterised network has manifolds of minima: minima() says so instead of guessing."""
    land, _, _, _ = _problem(0, "tanh")
    with pytest.raises(NotImplementedError):
        land.minima()


def test_alignment_bounded_away_from_zero_across_widths():
    """Paper's claim for two-layer networks: the loss alignment stays bounded away from zero as
    the width m (degree of over-parameterisation, dim = m d) grows.

    Criterion (stated): N = 20 samples from a width-4 tanh teacher, d = 10; student widths
    m in {2, 8, 32, 128, 512} (dim 20 ... 5120); at 6 random points W ~ N(0, 1) per width,
    every mu >= 0.3 and the per-width median lies in [0.5, 1.5].  mu is computed exactly from the
    tangent-kernel Gram matrix and lies within the deterministic kernel bounds."""
    n, d = 20, 10
    teacher, _ = TwoLayerRegression.teacher(n_samples=n, input_dim=d, width=4, seed=3)
    medians = []
    for m in (2, 8, 32, 128, 512):
        rng = np.random.default_rng(m)
        student = TwoLayerRegression(teacher.inputs, teacher.targets, rng.choice([-1.0, 1.0], size=m))
        mus = []
        for _ in range(6):
            theta = rng.standard_normal(student.dim)
            j, r = student.jacobians(theta), student.residuals(theta)
            mu = ng.kernel_average_alignment(j, r)
            lo, hi = ng.kernel_alignment_bounds(j)
            assert lo - 1e-9 <= mu <= hi + 1e-9
            mus.append(mu)
        assert min(mus) >= 0.3, (m, mus)
        medians.append(float(np.median(mus)))
    assert all(0.5 <= x <= 1.5 for x in medians), medians
