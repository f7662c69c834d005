"""validation.nets_grid and validation.stats on synthetic fig1 results whose truth is known.

The fake grid is the paper's 5 × 5 (η, S) grid with three seeds at three points. Sharpness is
log h = 3 − 0.5·log(η/S) + seed noise (SD 0.05): only η/S matters. The mutant sets
log h = 3 − 0.5·log η instead (the learning rate alone matters): the same statements must then
fail on it, which shows they can fail.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from validation import nets as VN
from validation import stats as S

LRS = [0.005, 0.01, 0.02, 0.05, 0.1]
BSS = [25, 50, 100, 250, 1000]
SEEDED = [(0.005, 50), (0.02, 100), (0.05, 50)]


def _write(root, *, law="ratio", unconverged=(), eos_break=None, temperature_law=False, seed=0):
    rng = np.random.default_rng(seed)
    d = root / "fig1" / "runs"
    points = [(lr, bs, 0) for bs in BSS for lr in LRS] + [(lr, bs, s) for lr, bs in SEEDED for s in (1, 2)]
    for lr, bs, s in points:
        n = lr / bs
        trc = float(np.exp(rng.normal(0, 1)))           # tr C varies independently of η/S
        temp = lr * trc / (2 * bs)
        base = {"ratio": -0.5 * math.log(n), "lr": -0.5 * math.log(lr)}[law]
        if temperature_law:
            base = -0.5 * math.log(temp)
        h = math.exp(3 + base + rng.normal(0, 0.05))
        name = f"lr{lr:g}_bs{bs}" + (f"_s{s}" if s else "")
        lam = 0.5 * h
        if eos_break == name:
            lam = 3.0 / lr                               # η·λ/2 = 1.5: beyond the stability limit
        else:
            lam = min(lam, 1.5 / lr)
        res = dict(status="completed", converged=name not in unconverged, config=dict(seed=s),
                   history=dict(noise=[n] * 3, lr=[lr] * 3, batch_size=[bs] * 3, epoch=[1, 2, 3], steps=[10] * 3,
                                logged_step=list(range(0, 30, 3)), logged_loss=list(np.linspace(2, 0.1, 10)),
                                tracked=[dict(epoch=2, hessian_top_eigenvalue=[0.8 * lam])]),
                   final=dict(val_acc=0.85 + 0.01 * (math.log(n) + 10) / 10 + rng.normal(0, 0.002), train_acc=1.0),
                   measurements=dict(hessian_frobenius_hutchinson=dict(value=h, stderr=0.02 * h, n_samples=50),
                                     hessian_top_eigenvalue=[lam],
                                     gradient_noise_stats=dict(trace_cov=trc, n_samples=128, b_simple=1.0,
                                                               alignment=0.5)))
        (d / name).mkdir(parents=True)
        (d / name / "result.json").write_text(json.dumps(res))
    return root


def _find(report, *words):
    hits = [s for s in report["fig1"]["statements"] if all(w in s["statement"] for w in words)]
    assert hits, [s["statement"] for s in report["fig1"]["statements"]]
    return hits[0]


def test_same_ratio_agrees_when_only_the_ratio_matters(tmp_path):
    rep = VN.validate_results(_write(tmp_path / "r"), tmp_path / "f")
    st = _find(rep, "same eta/S, same minimum (log Hessian norm)")
    assert st["verdict"] == "agrees with the theory"
    assert st["seed_dof"] == 6 and st["seed_sd"] == pytest.approx(0.05, rel=0.6)   # 6 dof: SD known to ~±30%
    assert {round(t["noise"], 9) for t in st["tests"]} >= {1e-4, 2e-4, 1e-3}
    wrong = _find(rep, "wrong prediction 'the learning rate alone sets the minimum' (log Hessian norm)")
    assert wrong["verdict"] == "rejected"
    rho = _find(rep, "log Hessian norm", "log eta/S", "rho(")
    assert rho["rho"] < -0.9 and rho["verdict"].startswith("agrees") and rho["ci"][1] < 0
    for name in ("fig1.png", "fig1_same_ratio.png", "fig1_loss.png"):
        assert (tmp_path / "f" / name).stat().st_size > 5000


def test_same_ratio_fails_when_the_learning_rate_alone_matters(tmp_path):
    rep = VN.validate_results(_write(tmp_path / "r", law="lr"), tmp_path / "f")
    st = _find(rep, "same eta/S, same minimum (log Hessian norm)")
    assert st["verdict"].startswith("disagrees")
    wrong = _find(rep, "wrong prediction", "(log Hessian norm)")
    assert wrong["verdict"] == "not rejected"


def test_unconverged_runs_are_left_out_and_named(tmp_path):
    rep = VN.validate_results(_write(tmp_path / "r", unconverged=("lr0.005_bs1000", "lr0.01_bs1000")), tmp_path / "f")
    conv = _find(rep, "convergence:")
    assert conv["n"] == 31 and conv["n_converged"] == 29
    assert conv["excluded"] == ["lr0.005_bs1000", "lr0.01_bs1000"]
    assert _find(rep, "log Hessian norm", "log eta/S", "rho(")["n"] == 29


def test_edge_of_stability(tmp_path):
    ok = VN.validate_results(_write(tmp_path / "a"), tmp_path / "fa")
    assert _find(ok, "edge of stability")["verdict"] == "consistent"
    bad = VN.validate_results(_write(tmp_path / "b", eos_break="lr0.02_bs100"), tmp_path / "fb")
    st = _find(bad, "edge of stability")
    assert st["verdict"] == "inconsistent" and st["n_above"] == 1 and st["final_max"] == pytest.approx(1.5)


def test_temperature_statement_sees_which_predictor_ranks_sharpness(tmp_path):
    by_t = VN.validate_results(_write(tmp_path / "t", temperature_law=True), tmp_path / "ft")
    assert "better with the measured temperature" in _find(by_t, "measured temperature T")["statement"]
    by_n = VN.validate_results(_write(tmp_path / "n"), tmp_path / "fn")
    assert "better with eta/S than with the measured temperature" in _find(by_n, "measured temperature T")["statement"]


# ----------------------------------------------------------------------------- validation.stats
def test_f_test_equals_one_way_anova_with_the_within_variance():
    from scipy.stats import f_oneway
    rng = np.random.default_rng(1)
    groups = [rng.normal(m, 1.0, k) for m, k in ((0, 4), (0.5, 6), (1.0, 5))]
    var, dof = S.pooled_variance(groups)
    t = S.f_test_groups(groups, var, dof)
    ref = f_oneway(*groups)
    assert t["F"] == pytest.approx(ref.statistic, rel=1e-12) and t["p"] == pytest.approx(ref.pvalue, rel=1e-10)


def test_spearman_interval_covers_at_its_level():
    """For bivariate normal samples (n = 30, ρ_Pearson = 0.6) the 95% interval must contain the
    population Spearman ρ_S = (6/π)·asin(ρ/2) in 95% of 400 draws: binomial SD 1.1%, so 4 SD
    around 95% is [90.6%, 99.4%]; an interval from the wrong variance 1/(n − 3) × 0.25 fails."""
    rng = np.random.default_rng(7)
    rho_s = 6 / math.pi * math.asin(0.3)
    cov = [[1, 0.6], [0.6, 1]]
    hits = 0
    for _ in range(400):
        x, y = rng.multivariate_normal([0, 0], cov, 30).T
        st = S.spearman_ci(x, y)
        hits += st["lo"] <= rho_s <= st["hi"]
    assert 0.906 <= hits / 400 <= 0.994


def test_log_axis_labels_are_plain_numbers():
    from validation.nets_results import _plt, log_axis
    plt = _plt()
    fig, ax = plt.subplots()
    ax.plot([1e-4, 4e-3], [1, 2])
    log_axis(ax, "x")
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert "0.0001" in labels and "0.0002" in labels and "0.001" in labels     # 1, 2, 5 per decade
    ax.plot([1e-9, 1.0], [1, 2])                                                 # nine decades: few labels
    log_axis(ax, "x")
    fig.canvas.draw()
    wide = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    plt.close(fig)
    assert 3 <= len(wide) <= 8
