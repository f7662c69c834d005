"""Exact references the checks grade against: the random-reshuffling variance, the chain's AR(1) law,
and the Rayleigh bounds of the alignment."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.chain import EulerChain1D
from theory import noise_geometry as ng
from theory.landscapes import Quadratic
from validation.checks.dynamics import rr_variance
from validation.checks.geometry import rayleigh_bounds


def test_rr_variance_limits():
    # with replacement: η²σ²/S Σ a^(2k) -> the exact discrete stationary variance nσ²/(λ(2 − ηλ))
    v = rr_variance(2000, lam=1.0, lr=0.1, batch_size=4, n_samples=100, sigma2=1.0, replacement=True)
    assert v == pytest.approx(0.1 / 4 / (2 - 0.1), rel=1e-12)
    # without replacement, one step: the finite-data factor (1/S − 1/N) N/(N − 1)
    v1 = rr_variance(1, lam=1.0, lr=0.1, batch_size=10, n_samples=100, sigma2=1.0)
    assert v1 == pytest.approx(0.01 * (1 / 10 - 1 / 100) * 100 / 99, rel=1e-12)
    # full batch: no noise at all
    assert rr_variance(50, lam=1.0, lr=0.1, batch_size=100, n_samples=100, sigma2=1.0) == 0.0


def test_chain_operator_quadratic_matches_discrete_ar1_variance():
    """The transfer operator of x' = (1 − ηλ)x + s ξ has the AR(1) variance s²/(1 − a²) (grid error O(h²))."""
    lam, lr, sd = 1.0, 0.5, 0.2
    edges = np.linspace(-2.0, 2.0, 801)
    pi = EulerChain1D(Quadratic([[lam]]), edges, lr=lr, step_sd=sd).stationary()
    x = 0.5 * (edges[1:] + edges[:-1])
    var = float(pi @ x ** 2 - (pi @ x) ** 2)
    a = 1 - lr * lam
    # midpoint-rule error of the cell masses: relative O((h/s.d.)²) = (0.005/0.23)² ≈ 5e-4
    assert var == pytest.approx(sd ** 2 / (1 - a * a), rel=2e-3)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(3, 12), dim=st.integers(1, 15), seed=st.integers(0, 2 ** 31 - 1))
def test_alignment_is_a_rayleigh_quotient_of_the_residuals(n, dim, seed):
    """Law: μ(J, r) = rᵀQr/rᵀr with Q = (N·diag(K²) − K²)/‖K‖_F², so it lies in [λ_min(Q), λ_max(Q)] for
    every r, equals the bounds at Q's eigenvectors, and averages to 1 − 1/N over uniform directions."""
    rng = np.random.default_rng(seed)
    j = rng.standard_normal((n, dim))
    lo, hi = rayleigh_bounds(j)
    r = rng.standard_normal(n)
    mu = ng.kernel_average_alignment(j, r)
    assert lo - 1e-9 <= mu <= hi + 1e-9
    k = j @ j.T
    k2 = k @ k
    q = (n * np.diag(np.diag(k2)) - k2) / np.sum(k * k)
    w, v = np.linalg.eigh(q)
    assert ng.kernel_average_alignment(j, v[:, 0]) == pytest.approx(lo, abs=1e-9)
    assert ng.kernel_average_alignment(j, v[:, -1]) == pytest.approx(hi, abs=1e-9)
    assert np.trace(q) / n == pytest.approx(1 - 1 / n, abs=1e-12)
    # the Rayleigh bounds are at least as sharp as the separate-term bounds of the theory module
    klo, khi = ng.kernel_alignment_bounds(j)
    assert klo <= lo + 1e-9 and hi <= khi + 1e-9
