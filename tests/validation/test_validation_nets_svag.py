"""validation.nets_svag on synthetic results with known values: the l-trend verdicts, their error
(seed spread when there are seeds, measurement error otherwise) and the weak-order-1 extrapolation."""
from __future__ import annotations

import math

import pytest

from validation.nets_svag import analyse_svag


def _result(lr, bs, amp, acc, hnorm, seed=0, n_test=10_000):
    return dict(status="completed", config=dict(lr=lr, batch_size=bs, amplification=amp, seed=seed),
                svag=dict(amplification=amp), final=dict(test_acc=acc), data=dict(n_test=n_test),
                measurements=dict(hessian_frobenius_hutchinson=dict(value=hnorm, stderr=1.0),
                                  hessian_top_eigenvalue=dict(eigenvalues=[hnorm / 10])))


def _by(statements, lr, quantity):
    return next(s for s in statements if s["lr"] == lr and s["quantity"] == quantity)


def test_verdicts_errors_and_extrapolation(tmp_path):
    """Point A (one seed): accuracy flat in l (0.9 at every l: z = 0) and ‖H‖_F = 100 + 40/l (SGD − SVAG-4
    = 30 against the Hutchinson SE √2: depends on l; extrapolation 2f(4) − f(2) = 100 exactly, the
    l → ∞ value of f = 100 + 40/l).  Point B (two seeds): accuracy 0.80/0.82 at every l, so the seed sd
    pooled over l is 0.01414 (3 dof) and SGD − SVAG-4 = 0.005 is 0.35 SE: consistent."""
    runs = {}
    for amp in (1, 2, 4):
        runs[f"a{amp}"] = _result(0.1, 32, amp, 0.9, 100 + 40 / amp)
        for s, acc in ((0, 0.80), (1, 0.82)):
            runs[f"b{amp}s{s}"] = _result(0.02, 32, amp, acc + (0.005 if amp == 1 else 0.0), 50.0, seed=s)
    st = analyse_svag(dict(plan=None, runs=runs), tmp_path)
    assert (tmp_path / "svag.png").stat().st_size > 1000
    acc_a, h_a = _by(st, 0.1, "test_acc"), _by(st, 0.1, "hnorm")
    assert acc_a["z"] == 0 and "consistent with the SDE regime" in acc_a["verdict"]
    assert "one seed" in acc_a["error_from"]
    assert h_a["delta"] == pytest.approx(30.0) and h_a["se"] == pytest.approx(math.sqrt(2))
    assert "not in the SDE regime" in h_a["verdict"]
    assert h_a["sde_extrapolated"] == pytest.approx(100.0)
    acc_b = _by(st, 0.02, "test_acc")
    assert "seed spread" in acc_b["error_from"] and acc_b["se"] == pytest.approx(0.01414214 * 1.0, rel=1e-3)
    assert acc_b["z"] == pytest.approx(0.005 / 0.01414214, rel=1e-3) and "consistent" in acc_b["verdict"]


def test_no_svag_runs():
    assert "no completed SVAG runs" in analyse_svag(dict(plan=None, runs={}), None)[0]["statement"]
