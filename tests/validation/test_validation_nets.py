"""validation.nets: which Hessian-norm estimator the statements use, and the gradient-noise report.

A fake fig1 results directory is built where the exact ‖H‖_F (hessian_frobenius_hutchinson)
decreases with η/S and the finite-difference estimate (hessian_norm_fd) increases, so the sign of
the reported Spearman ρ shows which estimator was used (ρ = ∓1 exactly: 6 monotone points).
"""
from __future__ import annotations

import json

import pytest

from validation import nets as VN

NOISE = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3]


def _write_fig1(root, *, exact=True, fd=True, noise_stats=False, exact_missing=()):
    d = root / "fig1" / "runs"
    for i, n in enumerate(NOISE):
        meas = {}
        if exact and i not in exact_missing:
            meas["hessian_frobenius_hutchinson"] = dict(value=100.0 / (i + 1), stderr=1.0, n_samples=100)
        if fd:
            meas["hessian_norm_fd"] = dict(value=1000.0 * (i + 1), stderr=10.0, n_samples=100)
        if noise_stats:
            meas["gradient_noise_stats"] = dict(n_samples=128, trace_cov=10.0 / (i + 1), b_simple=50.0 + i,
                                                alignment=0.5, top_cov_eigenvalues=[1.0])
        res = dict(status="completed", converged=True, history=dict(noise=[n, n], lr=[n * 100] * 2,
                                                                      batch_size=[100, 100]),
                   final=dict(val_acc=0.8 + 0.01 * i), measurements=meas)
        (d / f"run{i}").mkdir(parents=True)
        (d / f"run{i}" / "result.json").write_text(json.dumps(res))
    return root


def _hessian_statement(report):
    st = [s for s in report["fig1"]["statements"] if "Hessian norm" in s["statement"] and "rho(" in s["statement"]
          and "temperature" not in s["statement"]]
    assert len(st) == 1, report
    return st[0]


def test_statements_use_exact_estimator(tmp_path):
    rep = VN.validate_results(_write_fig1(tmp_path / "r"), tmp_path / "f")
    st = _hessian_statement(rep)
    assert st["estimator"] == "hessian_frobenius_hutchinson" and "exact HVPs" in st["statement"]
    assert st["rho"] == pytest.approx(-1.0) and st["n"] == 6 and "agrees" in st["verdict"]


def test_fd_only_as_fallback_and_labelled(tmp_path):
    rep = VN.validate_results(_write_fig1(tmp_path / "r", exact=False), tmp_path / "f")
    st = _hessian_statement(rep)
    assert st["estimator"] == "hessian_norm_fd" and "finite differences" in st["statement"]
    assert st["rho"] == pytest.approx(1.0) and "disagrees" in st["verdict"]


def test_estimators_never_mixed(tmp_path):
    # one run lacks the exact value: it is left out (n = 5), never replaced by its FD value
    rep = VN.validate_results(_write_fig1(tmp_path / "r", exact_missing=(5,)), tmp_path / "f")
    st = _hessian_statement(rep)
    assert st["estimator"] == "hessian_frobenius_hutchinson" and st["n"] == 5 and st["rho"] == pytest.approx(-1.0)


def test_gradient_noise_reported(tmp_path):
    rep = VN.validate_results(_write_fig1(tmp_path / "r", noise_stats=True), tmp_path / "f")
    texts = [s["statement"] for s in rep["fig1"]["statements"]]
    corr = [s for s in rep["fig1"]["statements"] if "log tr C" in s["statement"]]
    assert len(corr) == 1 and corr[0]["rho"] == pytest.approx(-1.0) and corr[0]["verdict"] == "reported"
    assert any("tr C median 2.92" in t and "median 52.5" in t for t in texts), texts   # (10/3+10/4)/2, (52+53)/2
    assert (tmp_path / "f" / "fig1.png").stat().st_size > 1000


def test_hnorm_tracked_entries_and_preference():
    r = dict(measurements=dict(hessian_norm_fd=dict(value=9.0), hessian_frobenius_hutchinson=dict(value=2.0)))
    assert VN._hnorm(r) == 2.0 and VN._hnorm(r, "hessian_norm_fd") == 9.0
    tracked = dict(epoch=3, hessian_norm_fd=dict(value=7.0))
    assert VN._hnorm(tracked) == 7.0 and VN._hnorm(tracked, "hessian_frobenius_hutchinson") is None


def test_rescaled_results_are_labelled(tmp_path):
    root = _write_fig1(tmp_path / "r")
    plan = dict(experiment="fig1", preset="full", dataset="fashion-mnist", runs=[], analyses=[], notes="",
                overrides=dict(epochs=20, max_train_size=10000, measure="quick"))
    (root / "fig1" / "plan.json").write_text(json.dumps(plan))
    rep = VN.validate_results(root, tmp_path / "f")
    assert rep["fig1"]["scale"] == ("fig1 · full preset · fashion-mnist · rescaled: epochs=20, "
                                    "max_train_size=10000, measure=quick")
    assert rep["fig1"]["overrides"] == plan["overrides"]
    saved = json.loads((tmp_path / "f" / "nets_report.json").read_text())
    assert saved["fig1"]["scale"] == rep["fig1"]["scale"]
    plan["overrides"] = {}
    (root / "fig1" / "plan.json").write_text(json.dumps(plan))
    assert VN.validate_results(root, tmp_path / "g")["fig1"]["scale"] == "fig1 · full preset · fashion-mnist"
