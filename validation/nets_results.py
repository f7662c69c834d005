"""Reading network results: experiment folders, the per-run measurements, tidy per-run rows, and the
plotting conventions every network figure shares (names the preset and any rescaling, readable log
axes). Used by :mod:`validation.nets` and :mod:`validation.nets_grid`."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import numpy as np

MIN_RUNS = 5


def _load_json(p: Path):
    with open(p) as fh:
        return json.load(fh)


def load_experiment(exp_dir: Path) -> dict:
    plan = _load_json(exp_dir / "plan.json") if (exp_dir / "plan.json").is_file() else None
    runs = {}
    for f in sorted((exp_dir / "runs").glob("*/result.json")):
        runs[f.parent.name] = _load_json(f)
    analysis = _load_json(exp_dir / "analysis.json") if (exp_dir / "analysis.json").is_file() else []
    return dict(name=exp_dir.name, plan=plan, runs=runs, analysis=analysis)


# Hessian-norm estimators, preferred first: ‖H‖_F by Hutchinson on exact Hessian-vector products, then the
# paper's finite-difference estimate, which on ReLU networks does not converge as eps → 0 (it grows like
# eps^-1/2: kinks crossed by the difference quotient; see nets.measure.hessian_norm_fd) and is used only
# when the exact estimate was not measured.
HNORM_ESTIMATORS = ("hessian_frobenius_hutchinson", "hessian_norm_fd")
HNORM_LABELS = {"hessian_frobenius_hutchinson": "‖H‖_F, exact HVPs (Hutchinson)",
                "hessian_norm_fd": "‖H‖_F, finite differences (paper's; unreliable for ReLU)"}


def _meas_value(m) -> Optional[float]:
    if isinstance(m, dict) and "value" in m:
        return float(m["value"])
    if isinstance(m, (int, float)) and not isinstance(m, bool):
        return float(m)
    return None


def _hnorm(r, estimator: Optional[str] = None) -> Optional[float]:
    """Hessian norm of a result (or of a ``{"measurements": ...}`` / tracked entry): the given
    estimator's value, or with ``estimator=None`` the first of :data:`HNORM_ESTIMATORS` present."""
    meas = r.get("measurements", r) or {}
    for key in ((estimator,) if estimator else HNORM_ESTIMATORS):
        v = _meas_value(meas.get(key))
        if v is not None:
            return v
    return None


def _hnorm_estimator(entries) -> Optional[str]:
    """The one estimator to use for a set of results compared with each other: the exact one if any
    result has it (results without it are then left out, never mixed with FD values), else FD."""
    entries = list(entries)
    for key in HNORM_ESTIMATORS:
        if any(_hnorm(e, key) is not None for e in entries):
            return key
    return None


def _hnorms(entries) -> tuple[np.ndarray, Optional[str], str]:
    """(values with NaN where missing, estimator key, label) for results compared with each other."""
    entries = list(entries)
    est = _hnorm_estimator(entries)
    vals = [_hnorm(e, est) if est else None for e in entries]
    return np.array([np.nan if v is None else v for v in vals], float), est, HNORM_LABELS.get(est, "no Hessian norm")


def _noise(r) -> float:
    h = r["history"]
    return float(np.mean(h["noise"])) if h["noise"] else float("nan")


def spearman(x, y) -> tuple[float, float, int]:
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    if n < 3 or np.all(x[ok] == x[ok][0]) or np.all(y[ok] == y[ok][0]):
        return float("nan"), float("nan"), n
    from scipy.stats import spearmanr
    res = spearmanr(x[ok], y[ok])
    return float(res.statistic if hasattr(res, "statistic") else res[0]), float(res.pvalue), n


def _corr_statement(what: str, rho, p, n, predicted_sign: Optional[int]) -> dict:
    if n < MIN_RUNS or not math.isfinite(rho):
        verdict = f"too few runs (n={n} < {MIN_RUNS})" if n < MIN_RUNS else "undefined (constant values)"
    elif predicted_sign is None:
        verdict = "reported"
    else:
        verdict = "agrees with the theory" if np.sign(rho) == predicted_sign else "disagrees with the theory"
    pred = {None: "", -1: " (predicted < 0)", 1: " (predicted > 0)"}[predicted_sign]
    return dict(statement=f"Spearman rho({what}) = {rho:.3f} (p = {p:.2g}, n = {n}){pred}: {verdict}",
                rho=rho, p=p, n=n, verdict=verdict)


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def scale_label(plan: Optional[dict]) -> str:
    """'fig1 · full preset · fashion-mnist' plus any rescaling overrides (``nets run --epochs ...``)."""
    if not plan:
        return ""
    label = f"{plan.get('experiment', '')} · {plan.get('preset', '?')} preset · {plan.get('dataset', '?')}"
    ov = plan.get("overrides") or {}
    if ov:
        label += " · rescaled: " + ", ".join(f"{k}={v}" for k, v in ov.items())
    return label


def _save(fig, exp, path: Path):
    """Every figure names its experiment, preset and any rescaling, so a rescaled run's figure is
    never mistaken for the preset's."""
    label = scale_label(exp.get("plan"))
    if label:
        fig.suptitle(label, fontsize=8, y=0.995, ha="center")
        fig.tight_layout(rect=(0, 0, 1, 0.96))
    else:
        fig.tight_layout()
    fig.savefig(path, dpi=120)


def _completed(exp):
    return {k: r for k, r in exp["runs"].items() if r["status"] == "completed"}


def _topeig(r) -> Optional[float]:
    """Largest Hessian eigenvalue of a result (or a tracked entry): a list of eigenvalues, a number,
    or a dict holding them (``eigenvalues`` / ``values`` / ``value``)."""
    m = (r.get("measurements", r) or {}).get("hessian_top_eigenvalue")
    if isinstance(m, dict):
        if "error" in m:
            return None
        m = next((m[k] for k in ("eigenvalues", "values", "value") if k in m), None)
    if isinstance(m, list) and m:
        m = m[0]
    if isinstance(m, (int, float)) and not isinstance(m, bool) and math.isfinite(m):
        return float(m)
    return None


def _meas_se(m) -> Optional[float]:
    if isinstance(m, dict) and m.get("stderr") is not None:
        return float(m["stderr"])
    return None


def _mean_hist(r, key) -> float:
    v = r.get("history", {}).get(key) or []
    return float(np.mean(v)) if v else float("nan")


def run_rows(exp: dict) -> list[dict]:
    """One flat row per run of an experiment (tidy: a column per quantity), in run-name order.

    Columns: ``name, lr, batch_size, noise`` (η, S, η/S averaged over epochs for schedules),
    ``seed, status, converged, epochs_done, diverged_epoch``, final ``train_loss, train_acc, val_acc,
    test_acc, best_val_acc``, the measurements with their standard errors (``hessian_frobenius(_se)``
    from exact HVPs, ``hessian_fd(_se)`` the paper's finite-difference norm, ``lambda_max``,
    ``trace_cov`` = tr C, ``temperature`` = η·tr C/(2S), the measured temperature of the SDE with
    C = tr C/p·I summed over the p directions, ``noise_scale``, ``cosine_cov_hessian``,
    ``alignment_cosine``), and ``step_path, wall_s, measure_wall_s``."""
    rows = []
    for name, r in sorted(exp["runs"].items()):
        cfg = r.get("config", {})
        meas = r.get("measurements") or {}
        gns = meas.get("gradient_noise_stats") if isinstance(meas.get("gradient_noise_stats"), dict) else {}
        gns = gns if "trace_cov" in gns else {}
        al = meas.get("alignment") if isinstance(meas.get("alignment"), dict) else {}
        lr, bs = _mean_hist(r, "lr"), _mean_hist(r, "batch_size")
        f = r.get("final", {})
        tr = gns.get("trace_cov")
        rows.append(dict(
            experiment=exp["name"], name=name, lr=lr, batch_size=bs, noise=_noise(r) if r.get("history") else math.nan,
            seed=cfg.get("seed"), status=r.get("status"), converged=bool(r.get("converged", False)),
            epochs_done=len(r.get("history", {}).get("epoch", [])), diverged_epoch=r.get("diverged_epoch"),
            train_loss=f.get("train_loss"), train_acc=f.get("train_acc"), val_acc=f.get("val_acc"),
            test_acc=f.get("test_acc"), best_val_acc=r.get("best_val_acc"),
            hessian_frobenius=_meas_value(meas.get("hessian_frobenius_hutchinson")),
            hessian_frobenius_se=_meas_se(meas.get("hessian_frobenius_hutchinson")),
            hessian_fd=_meas_value(meas.get("hessian_norm_fd")), hessian_fd_se=_meas_se(meas.get("hessian_norm_fd")),
            lambda_max=_topeig(r), trace_cov=tr,
            temperature=(lr * tr / (2.0 * bs)) if tr is not None and bs > 0 else None,
            noise_scale=gns.get("b_simple"), cosine_cov_hessian=gns.get("alignment"),
            alignment_cosine=al.get("cosine"),
            step_path=r.get("step_path"), wall_s=r.get("wall_s"), measure_wall_s=meas.get("measure_wall_s"),
        ))
    return rows


def corr_statement(what: str, stats: dict, predicted_sign: Optional[int]) -> dict:
    """A Spearman statement with its 95% interval (:func:`validation.stats.spearman_ci`). Graded by the
    interval: it agrees with a predicted sign when the whole interval has that sign, disagrees when the
    whole interval has the other sign, and is inconclusive when it contains 0; with fewer than
    :data:`MIN_RUNS` runs it is "too few runs"."""
    rho, p, n, lo, hi = (stats[k] for k in ("rho", "p", "n", "lo", "hi"))
    if n < MIN_RUNS or not math.isfinite(rho):
        verdict = f"too few runs (n={n} < {MIN_RUNS})" if n < MIN_RUNS else "undefined (constant values)"
    elif predicted_sign is None:
        verdict = "reported"
    elif (lo > 0 if predicted_sign > 0 else hi < 0):
        verdict = "agrees with the theory (95% CI excludes 0)"
    elif (hi < 0 if predicted_sign > 0 else lo > 0):
        verdict = "disagrees with the theory (95% CI excludes 0)"
    else:
        verdict = "inconclusive (95% CI includes 0)"
    pred = {None: "", -1: " (predicted < 0)", 1: " (predicted > 0)"}[predicted_sign]
    ci = f", 95% CI [{lo:.2f}, {hi:.2f}]" if math.isfinite(lo) else ""
    return dict(statement=f"Spearman rho({what}) = {rho:.3f}{ci} (p = {p:.2g}, n = {n}){pred}: {verdict}",
                rho=rho, p=p, n=n, ci=[lo, hi], verdict=verdict)


def log_axis(ax, which: str = "x") -> None:
    """A log axis with ticks at 1, 2 and 5 per decade labelled in plain numbers (0.0002, 0.001, ...)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())
