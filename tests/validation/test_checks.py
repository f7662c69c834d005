"""Every registered check, found through the registry (a new check file is tested without touching this file).

Each check is computed once in quick mode; its data are then graded honestly (every comparison within
tolerance AND rejecting its wrong prediction) and sabotaged (the wrong predictions graded in place of
the right ones: every comparison must fail), drawn, and saved and read back.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from validation import io as vio
from validation.checks import load
from validation.core import compute, evaluate
from validation.runner import draw_figure, save_check

CHECKS = load()
_DATA: dict = {}


def _data(name):
    """Quick-mode data of one check, computed once per test session."""
    if name not in _DATA:
        _DATA[name] = compute(CHECKS[name](), quick=True, seed=0)[0]
    return _DATA[name]


def test_registry_finds_the_family_modules():
    modules = {cls.__module__ for cls in CHECKS.values()}
    assert {"validation.checks.equilibrium", "validation.checks.minima", "validation.checks.scaling",
            "validation.checks.dynamics", "validation.checks.geometry"} <= modules
    assert len(CHECKS) >= 13


@pytest.mark.parametrize("name", list(CHECKS))
def test_check_passes_quick_and_rejects_every_wrong_prediction(name):
    res = evaluate(CHECKS[name](), _data(name), quick=True, seed=0)
    failed = [(c.label, c.distance, c.tolerance) for c in res.comparisons if not c.passed]
    assert not failed
    not_rejecting = [(c.label, c.wrong_name, c.wrong_distance, c.tolerance) for c in res.comparisons
                     if not c.wrong_rejected]
    assert not not_rejecting
    assert res.passed and res.status == "PASS" and res.n_rejecting == len(res.comparisons) > 0
    for c in res.comparisons:
        assert c.derivation and c.wrong_name and c.tolerance > 0


@pytest.mark.parametrize("name", list(CHECKS))
def test_check_fails_under_sabotage(name):
    check = CHECKS[name]()
    assert check.sabotage, "a check must say what its sabotage feeds the theory side"
    res = evaluate(check, _data(name), quick=True, seed=0, sabotage=True)
    assert all(c.sabotaged for c in res.comparisons)
    assert not any(c.passed for c in res.comparisons), [c.label for c in res.comparisons if c.passed]
    assert not res.passed


@pytest.mark.parametrize("name", list(CHECKS))
def test_figure_and_saved_data(name, tmp_path):
    check = CHECKS[name]()
    res = evaluate(check, _data(name), quick=True, seed=0)
    draw_figure(check, res, tmp_path / "figures")
    assert res.error is None, res.error
    assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 10_000
    save_check(res, tmp_path)
    saved = json.loads((tmp_path / "checks" / f"{name}.json").read_text())
    assert saved["status"] == "PASS" and saved["n_rejecting"] == len(res.comparisons)
    arrays = vio.load_npz(tmp_path / "checks" / f"{name}.npz")
    for key, value in _data(name).items():
        a, b = np.asarray(arrays[key]), np.asarray(value)
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), key
    for i, c in enumerate(res.comparisons):
        stored = arrays[f"comparison{i}.measured"]
        measured = arrays[stored[1:]] if isinstance(stored, str) else stored
        assert np.allclose(np.asarray(measured, dtype=float), c.measured, equal_nan=True)
