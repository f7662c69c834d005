"""The noise-geometry checks (seed 002) run in quick mode, pass, and can fail."""
import pytest

from validation import core
from validation.runner import load_checks

NAMES = ["noise_alignment", "escape_directions", "cyclical_lr"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    checks = load_checks()
    fig_dir = tmp_path_factory.mktemp("fig")
    return {name: core.run_check(checks[name], quick=True, seed=0, fig_dir=fig_dir) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_check_passes_and_can_fail(results, name):
    res = results[name]
    assert res.error is None, res.error
    assert res.passed, [(c.label, c.distance, c.tolerance) for c in res.comparisons if not c.passed]
    assert res.can_fail, "no wrong prediction was rejected by the data"
    assert res.figure and res.figure.endswith(f"{name}.png")


def test_sabotaged_alignment_check_fails(tmp_path):
    res = core.run_check(load_checks()["noise_alignment"], quick=True, seed=0, fig_dir=tmp_path, sabotage=True)
    assert not res.passed
