"""Reading network results: experiment folders, the per-run measurements, tidy per-run rows, and the
plotting conventions every network figure shares (names the preset and any rescaling, readable log
axes). Used by :mod:`validation.nets` and :mod:`validation.nets_grid`."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np

from nets.results import (HNORM_ESTIMATORS, HNORM_LABELS, _hnorm, _hnorm_estimator, _hnorms, _load_json,  # noqa: F401
                          _meas_se, _meas_value, _noise, _topeig, find_experiments, load_experiment, run_rows)

__all__ = ["MIN_RUNS", "spearman", "corr_statement", "scale_label", "log_axis"]

MIN_RUNS = 5


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


def _save(fig, exp, path: Path, bottom: float = 0.0):
    """Every figure names its experiment, preset and any rescaling, so a rescaled run's figure is
    never mistaken for the preset's. ``bottom`` keeps that fraction of the height for a figure legend."""
    label = scale_label(exp.get("plan"))
    if label:
        fig.suptitle(label, fontsize=8, y=0.995, ha="center")
        fig.tight_layout(rect=(0, bottom, 1, 0.96))
    else:
        fig.tight_layout(rect=(0, bottom, 1, 1))
    fig.savefig(path, dpi=120)


def _completed(exp):
    return {k: r for k, r in exp["runs"].items() if r["status"] == "completed"}


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
    """A log axis labelled in plain numbers (0.0002, 0.001, ...): ticks at 1, 2 and 5 per decade over
    a narrow range, one per decade over a few decades, and at most about six over a wide one."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    lo, hi = ax.get_xlim() if which == "x" else ax.get_ylim()
    decades = math.log10(hi / lo) if lo > 0 and hi > lo else 1.0
    if decades <= 2.2:
        locator = LogLocator(base=10, subs=(1.0, 2.0, 5.0))
    elif decades <= 5:
        locator = LogLocator(base=10, subs=(1.0,))
    else:
        locator = LogLocator(base=10, subs=(1.0,), numticks=6)
    axis.set_major_locator(locator)
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())
