"""The dynamics checks (validation/checks_dynamics.py) run once each in quick mode.

Each must pass honestly and be able to fail (at least one wrong prediction rejected by the same
data); one is also run with ``sabotage=True`` (the wrong predictions checked) and must fail.
"""
import numpy as np
import pytest

from validation import checks_dynamics  # noqa: F401  (registers the checks)
from sim.chain import EulerChain1D
from validation.checks_dynamics import rr_variance
from validation.core import REGISTRY, run_check

CHECKS = ["only_ratio_matters", "breaking_point", "rescaled_time", "schedules", "momentum"]


@pytest.mark.parametrize("name", CHECKS)
def test_check_passes_quick_and_can_fail(name, tmp_path):
    res = run_check(REGISTRY[name], quick=True, seed=0, fig_dir=tmp_path)
    assert res.error is None, res.error
    failed = [(c.label, c.distance, c.tolerance) for c in res.comparisons if not c.passed]
    assert res.passed, failed
    assert res.can_fail
    assert (tmp_path / f"{name}.png").exists()


def test_sabotaged_check_fails(tmp_path):
    res = run_check(REGISTRY["rescaled_time"], quick=True, seed=0, fig_dir=tmp_path, sabotage=True)
    assert res.error is None, res.error
    assert any(c.sabotaged for c in res.comparisons)
    assert not res.passed


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
    from theory.landscapes import Quadratic

    lam, lr, sd = 1.0, 0.5, 0.2
    edges = np.linspace(-2.0, 2.0, 801)
    pi = EulerChain1D(Quadratic([[lam]]), edges, lr=lr, step_sd=sd).stationary()
    x = 0.5 * (edges[1:] + edges[:-1])
    var = float(pi @ x**2 - (pi @ x) ** 2)
    a = 1 - lr * lam
    # midpoint-rule error of the cell masses: relative O((h/s.d.)²) = (0.005/0.23)² ≈ 5e-4
    assert var == pytest.approx(sd**2 / (1 - a * a), rel=2e-3)
