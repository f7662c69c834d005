"""Quick-mode runs of the equilibrium checks (validation/checks_equilibrium.py).

Each check must pass honestly at its quick sizes, must be able to fail (at least one wrong
prediction rejected by the same data), and one check run with ``sabotage=True`` (the wrong
predictions substituted for the right ones) must fail."""
from __future__ import annotations

import pytest

import validation.checks_equilibrium  # noqa: F401  (registers the checks)
from validation.core import REGISTRY, run_check

NAMES = ["gibbs", "minima_probabilities", "noise_threshold", "anisotropic_noise", "escape_times"]


def test_registered_in_issue_order():
    orders = {name: REGISTRY[name].order for name in NAMES}
    assert orders == {"gibbs": 1, "minima_probabilities": 2, "noise_threshold": 3, "anisotropic_noise": 8,
                      "escape_times": 10}


@pytest.mark.parametrize("name", NAMES)
def test_check_passes_quick_and_can_fail(name, tmp_path):
    result = run_check(REGISTRY[name], quick=True, seed=0, fig_dir=tmp_path)
    assert result.error is None, result.error
    failed = [(c.label, c.distance, c.tolerance) for c in result.comparisons if not c.passed]
    assert result.passed, failed
    assert result.can_fail
    assert (tmp_path / f"{name}.png").exists()
    for c in result.comparisons:
        assert c.derivation and c.tolerance > 0


def test_sabotaged_check_fails(tmp_path):
    """escape_times with the wrong predictions (Kramers with the η/√S temperature, without the prefactor)
    in place of the right ones."""
    result = run_check(REGISTRY["escape_times"], quick=True, seed=0, fig_dir=tmp_path, sabotage=True)
    assert result.error is None, result.error
    assert any(c.sabotaged for c in result.comparisons)
    assert not result.passed
