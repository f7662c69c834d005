"""The ``svag`` network experiment (:mod:`nets.svag`): is the network in the SDE regime?

SVAG with amplification l runs l steps of η/l per SGD step on two independent half-batches with
weights r₁,₂ = (1 ± √(2l − 1))/2: SGD's drift and noise per unit time at every l, and the SDE as
l → ∞ (weak order 1 in 1/l; Li, Malladi & Arora 2021). At each (η, S) of the preset, for test
accuracy, ‖H‖_F (exact Hessian-vector products, Hutchinson) and λ_max:

* the values at l = 1, 2, 4 (mean over seeds);
* the change from SGD to SVAG-4, Δ = f(1) − f(4), against its standard error: the seed spread
  (pooled over l, when the point was run with 2 or more seeds) or else the measurement's own error
  (test accuracy: binomial over the test set; ‖H‖_F: the Hutchinson standard error), which does not
  include the seed-to-seed spread, so a verdict from one seed is labelled as such;
* verdict: |Δ| < 2 SE "no l-dependence within the noise: consistent with the SDE regime", |Δ| > 3 SE
  "depends on l: not in the SDE regime (SGD's discreteness matters at this η)", else inconclusive;
  λ_max is reported (its Lanczos error is not a sampling error);
* the SDE value extrapolated at weak order 1 from l = 2, 4: f(∞) ≈ 2f(4) − f(2), and SGD's distance
  to it f(1) − f(∞) (reported).

Figure ``svag.png``: each quantity against l, one line per (η, S), with the extrapolated l = ∞.
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from .nets_results import _completed, _hnorm, _meas_se, _plt, _save, _topeig

__all__ = ["analyse_svag", "svag_table"]

Z_CONSISTENT, Z_DEPENDS = 2.0, 3.0
QUANTITIES = (("test_acc", "test accuracy"), ("hnorm", "‖H‖_F (Hutchinson)"), ("lmax", "λ_max (Lanczos)"))


def _run_values(r) -> dict:
    final = r.get("final", {})
    acc = final.get("test_acc")
    n_test = (r.get("data") or {}).get("n_test") or 0
    hm = (r.get("measurements") or {}).get("hessian_frobenius_hutchinson")
    return dict(test_acc=acc, test_acc_se=math.sqrt(acc * (1 - acc) / n_test) if acc is not None and n_test else None,
                hnorm=_hnorm(r, "hessian_frobenius_hutchinson"), hnorm_se=_meas_se(hm), lmax=_topeig(r), lmax_se=None)


def svag_table(exp) -> dict:
    """{(lr, batch_size): {amplification: [per-seed value dicts]}} of the completed SVAG runs."""
    table: dict = defaultdict(lambda: defaultdict(list))
    for r in _completed(exp).values():
        cfg = r.get("config", {})
        amp = (r.get("svag") or {}).get("amplification", cfg.get("amplification"))
        if amp is None:
            continue
        table[(float(cfg["lr"]), int(cfg["batch_size"]))][int(amp)].append(_run_values(r))
    return {k: dict(v) for k, v in table.items()}


def _summary(runs: list, key: str):
    """(mean, SE of one run, how the SE was obtained) over the seeds of one (point, l)."""
    vals = [v[key] for v in runs if v[key] is not None]
    if not vals:
        return math.nan, math.nan, "missing"
    ses = [v[f"{key}_se"] for v in runs if v.get(f"{key}_se") is not None]
    return float(np.mean(vals)), (float(np.mean(ses)) if ses else math.nan), "measurement"


def _spread(per_l: dict, key: str) -> tuple[float, int]:
    """Seed standard deviation pooled over the l values that have 2 or more seeds, and its degrees of freedom."""
    ss, dof = 0.0, 0
    for runs in per_l.values():
        vals = np.array([v[key] for v in runs if v[key] is not None], float)
        if vals.size >= 2:
            ss += float(np.sum((vals - vals.mean()) ** 2))
            dof += vals.size - 1
    return (math.sqrt(ss / dof) if dof else math.nan), dof


def _point_statements(point, per_l) -> tuple[list[dict], dict]:
    lr, bs = point
    amps = sorted(per_l)
    out, curves = [], {}
    for key, label in QUANTITIES:
        stats = {a: _summary(per_l[a], key) for a in amps}
        means = np.array([stats[a][0] for a in amps])
        curves[key] = (np.array(amps), means)
        text = ", ".join(f"l = {a}: {stats[a][0]:.4g}" for a in amps)
        entry = dict(lr=lr, batch_size=bs, quantity=key, amplifications=amps, values=means.tolist())
        if 2 in stats and 4 in stats:
            f_inf = 2 * stats[4][0] - stats[2][0]
            entry["sde_extrapolated"] = f_inf
            text += f"; weak-order-1 extrapolation to the SDE (l → ∞) 2f(4) − f(2) = {f_inf:.4g}"
            if 1 in stats:
                text += f", SGD's distance to it f(1) − f(∞) = {stats[1][0] - f_inf:+.3g}"
        if 1 in stats and 4 in stats and key != "lmax":
            sd, dof = _spread(per_l, key)
            seeds = [len(per_l[a]) for a in (1, 4)]
            if dof:
                se = sd * math.sqrt(1 / seeds[0] + 1 / seeds[1])
                how = f"seed spread, sd {sd:.3g} pooled over l ({dof} degrees of freedom)"
            else:
                se = math.hypot(stats[1][1], stats[4][1])
                how = ("measurement error only (one seed: the seed-to-seed spread is not measured, so this "
                       "under-states the noise)")
            delta = stats[1][0] - stats[4][0]
            z = abs(delta) / se if se > 0 else math.inf
            if not math.isfinite(se):
                verdict = "no error estimate"
            elif z < Z_CONSISTENT:
                verdict = "no l-dependence within the noise: consistent with the SDE regime"
            elif z > Z_DEPENDS:
                verdict = "depends on l: not in the SDE regime (SGD's discreteness matters at this η)"
            else:
                verdict = "inconclusive"
            entry.update(delta=delta, se=se, z=z, verdict=verdict, error_from=how)
            text += f"; SGD − SVAG(l = 4) = {delta:+.3g} ± {se:.2g} ({how}): {z:.1f} SE, {verdict}"
        entry["statement"] = f"η = {lr:g}, S = {bs} (η/S = {lr / bs:.3g}), {label}: {text}"
        out.append(entry)
    return out, curves


def analyse_svag(exp, out: Path) -> list[dict]:
    """Statements (module docstring) and the figure ``out/svag.png``."""
    table = svag_table(exp)
    if not table:
        return [dict(statement="no completed SVAG runs in these results")]
    statements, curves = [], {}
    for point in sorted(table):
        st, cv = _point_statements(point, table[point])
        statements += st
        curves[point] = cv
    plt = _plt()
    fig, axs = plt.subplots(1, len(QUANTITIES), figsize=(5 * len(QUANTITIES), 4))
    for ax, (key, label) in zip(axs, QUANTITIES):
        for k, (point, cv) in enumerate(sorted(curves.items())):
            amps, means = cv[key]
            color = f"C{k}"
            ax.plot(amps, means, "o-", color=color, label=f"η = {point[0]:g}, S = {point[1]}")
            if {2, 4} <= set(amps.tolist()):
                f_inf = 2 * means[list(amps).index(4)] - means[list(amps).index(2)]
                ax.plot([4, 8], [means[list(amps).index(4)], f_inf], ":", color=color)
                ax.plot([8], [f_inf], "*", color=color, ms=10)
        ax.set_xscale("log", base=2)
        ax.set_xticks([1, 2, 4, 8], ["1 (SGD)", "2", "4", "∞ (SDE, extrap.)"])
        ax.set_xlabel("SVAG amplification l")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.suptitle("SVAG: flat in l = SDE regime; a trend in l = discretisation effect")
    _save(fig, exp, out / "svag.png")
    plt.close(fig)
    return statements
