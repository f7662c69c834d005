"""The η/S grids (Fig. 1, 8, 9) against the theory: statements a referee can check, and their figures.

Every graded statement uses converged runs only (:func:`nets.results.convergence`: the run fits its
training set, its loss has stopped falling, and its end point is not inside a loss spike) and says
how many runs it left out. Statements:

* **convergence** — how many runs converged, and which did not (reported);
* **sharpness vs η/S** — Spearman ρ(log ‖H‖_F, log η/S) and ρ(log λ_max, log η/S) with 95%
  intervals, predicted < 0 (eq. 3: more noise, wider minima); graded by the interval;
* **accuracy vs η/S** — ρ(validation accuracy, log η/S), predicted > 0 for Fig. 1/9 (the paper's
  observation), reported for Fig. 8 (an optimum, not monotone);
* **same η/S, same minimum** (the paper's central claim, §3.2) — at every η/S reached by two or more
  (η, S) pairs, a one-way F test of "the pairs share one mean" for log ‖H‖_F and for validation
  accuracy, with the seed-to-seed variance pooled over the grid points run with several seeds as
  the error (F(m − 1, ν) under the claim; Bonferroni over the η/S values at family level 0.05). The
  wrong prediction the same data must reject: "the learning rate alone sets the minimum" — runs
  at one η and different S (so different η/S) must differ by more than seed noise (same F test);
  if they do not, the same-ratio verdict is marked as without power;
* **edge of stability** — η·λ_max/2 at the end of every converged run (and over training where
  λ_max was tracked) must not exceed 1: a minimum with λ_max > 2/η is linearly unstable for gradient
  descent at step η, and SGD's noise only tightens the bound (Wu, Ma & E 2018); graded, with the
  Lanczos tolerance as slack;
* **measured temperature** — T = η·tr C/(2S) from the measured gradient covariance: whether log ‖H‖_F
  lines up better with log T than with log η/S, both predicted to correlate negatively (paired
  bootstrap of the signed difference ρ_n − ρ_T, 95% interval); reported.

Figures: ``<exp>.png`` (sharpness and accuracy vs η/S with error bars from the stored standard
errors, η by colour and S by marker, non-converged runs drawn hollow, never dropped; η·λ_max/2 over
training; sharpness vs measured temperature), ``<exp>_same_ratio.png`` (the pairs at each shared
η/S with their seed error bars) and ``<exp>_loss.png`` (the logged minibatch losses).
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Optional

import numpy as np

from nets.results import CONVERGENCE_CRITERION

from . import stats as S
from .nets_results import HNORM_LABELS, MIN_RUNS, _hnorm_estimator, _plt, _save, _topeig, corr_statement, log_axis, \
    run_rows

__all__ = ["ALPHA", "LANCZOS_SLACK", "analyse_grid", "same_ratio_statements", "edge_of_stability_statement",
           "temperature_statement"]

ALPHA = 0.05                 # family-wise level of the F tests
LANCZOS_SLACK = 1e-3         # relative tolerance of the λ_max estimates (the presets' Lanczos tol)
_MARKERS = "osD^vP*Xh<>p"


def _ratio_key(noise: float) -> float:
    return float(f"{noise:.9g}")


def _group_rows(rows, split_by):
    groups: dict[str, list] = defaultdict(list)
    for r in rows:
        g = r["name"].split("_")[0] if split_by == "prefix" else "all"
        groups[g].append(r)
    return dict(groups)


def _estimator(exp) -> tuple[Optional[str], str, str]:
    """(measurement key, row column, label) of the Hessian norm used for the whole experiment."""
    est = _hnorm_estimator(r for r in exp["runs"].values() if r.get("status") == "completed")
    col = {"hessian_frobenius_hutchinson": "hessian_frobenius", "hessian_norm_fd": "hessian_fd"}.get(est)
    return est, col, HNORM_LABELS.get(est, "Hessian norm")


def _vals(rows, col):
    return np.array([np.nan if r.get(col) is None else float(r[col]) for r in rows], float)


def same_ratio_statements(rows: list[dict], col: str, what: str, transform=np.log) -> list[dict]:
    """The same-η/S F tests for one quantity (module docstring) and the wrong prediction they must reject."""
    ok = [r for r in rows if r.get(col) is not None and math.isfinite(float(r[col])) and (transform is not np.log
                                                                                      or float(r[col]) > 0)]
    by_point: dict[tuple, list] = defaultdict(list)
    for r in ok:
        by_point[(r["lr"], r["batch_size"])].append(float(transform(float(r[col]))))
    err_var, err_dof = S.pooled_variance(list(by_point.values()))
    if not err_dof:
        return [dict(statement=f"same eta/S, {what}: no grid point with two or more converged seeds, so the seed "
                               "spread is unknown: not tested", verdict="not tested")]
    by_ratio: dict[float, dict] = defaultdict(dict)
    for (lr, bs), v in by_point.items():
        by_ratio[_ratio_key(lr / bs)][(lr, bs)] = v
    shared = {k: v for k, v in by_ratio.items() if len(v) >= 2}
    out = []
    # the wrong prediction: the learning rate alone sets the minimum (runs at one η, different S)
    by_lr: dict[float, list] = defaultdict(list)
    for (lr, bs), v in by_point.items():
        by_lr[lr].append(v)
    wrong = [(lr, S.f_test_groups(g, err_var, err_dof)) for lr, g in sorted(by_lr.items()) if len(g) >= 2]
    a_wrong = S.bonferroni_alpha(ALPHA, len(wrong))
    n_rejected = sum(t["p"] < a_wrong for _, t in wrong)
    powered = n_rejected > 0
    if wrong:
        worst = min(wrong, key=lambda w: w[1]["p"])
        out.append(dict(statement=(
            f"wrong prediction 'the learning rate alone sets the minimum' ({what}): at fixed eta, runs with different S "
            f"differ by more than seed noise at {n_rejected} of {len(wrong)} eta values (F test, Bonferroni level "
            f"{a_wrong:.2g}; strongest at eta = {worst[0]:g}: F({worst[1]['dof1']}, {worst[1]['dof2']}) = "
            f"{worst[1]['F']:.3g}, p = {worst[1]['p']:.2g}): " + ("rejected" if powered else
                                                                     "NOT rejected (the data cannot tell eta/S from eta)")),
            verdict="rejected" if powered else "not rejected", kind="wrong_prediction", quantity=what))
    if not shared:
        out.append(dict(statement=f"same eta/S, {what}: no eta/S is reached by two converged (eta, S) pairs: not tested",
                        verdict="not tested"))
        return out
    a = S.bonferroni_alpha(ALPHA, len(shared))
    results = []
    for ratio, pts in sorted(shared.items()):
        t = S.f_test_groups(list(pts.values()), err_var, err_dof)
        results.append((ratio, pts, t))
    n_pass = sum(t["p"] >= a for _, _, t in results)
    detail = "; ".join(f"eta/S = {ratio:.3g}: {len(pts)} pairs, spread {t['ratio_sd']:.2f} seed SDs, "
                       f"F({t['dof1']}, {t['dof2']}) = {t['F']:.3g}, p = {t['p']:.2g}" for ratio, pts, t in results)
    agree = n_pass == len(results)
    verdict = ("agrees with the theory" if agree else "disagrees with the theory") + \
        ("" if powered else " (without power: the wrong prediction was not rejected)")
    out.append(dict(statement=(
        f"same eta/S, same minimum ({what}): at {n_pass} of {len(results)} shared eta/S values the (eta, S) pairs "
        f"agree within seed noise (seed SD {math.sqrt(err_var):.3g} from {err_dof} degrees of freedom; F test at "
        f"Bonferroni level {a:.2g}) [{detail}]: {verdict}"), verdict=verdict, kind="same_ratio", quantity=what,
        seed_sd=math.sqrt(err_var), seed_dof=err_dof,
        tests=[dict(noise=ratio, pairs=[list(k) for k in pts], **t) for ratio, pts, t in results]))
    return out


def edge_of_stability_statement(rows: list[dict], exp_runs: dict) -> tuple[dict, dict]:
    """η·λ_max/2 at the end (graded) and over training (reported); returns (statement, series per run)."""
    series = {}
    finals = []
    for r in rows:
        res = exp_runs[r["name"]]
        pts = [(t["epoch"], _topeig(t)) for t in res.get("history", {}).get("tracked", [])]
        pts = [(e, v) for e, v in pts if v is not None]
        if r["lambda_max"] is not None:
            pts.append((r["epochs_done"], r["lambda_max"]))
            finals.append((r["name"], r["lr"] * r["lambda_max"] / 2.0))
        if pts:
            series[r["name"]] = (np.array([e for e, _ in pts], float), np.array([r["lr"] * v / 2.0 for _, v in pts]))
    if not finals:
        return dict(statement="edge of stability: no lambda_max measured", verdict="not tested"), series
    bad = [(n, v) for n, v in finals if v > 1.0 + LANCZOS_SLACK]
    peak = max((float(s[1].max()), n) for n, s in series.items()) if series else (math.nan, "")
    worst = max(finals, key=lambda f: f[1])
    verdict = "consistent" if not bad else "inconsistent"
    return dict(statement=(
        f"edge of stability: eta*lambda_max/2 <= 1 at the end of {len(finals) - len(bad)} of {len(finals)} converged "
        f"runs (largest {worst[1]:.3f}, {worst[0]}; largest over training {peak[0]:.3f}, {peak[1]}); a minimum with "
        f"lambda_max > 2/eta is linearly unstable for SGD at step eta: {verdict}"),
        verdict=verdict, n=len(finals), n_above=len(bad), final_max=worst[1], training_max=peak[0]), series


def temperature_statement(rows: list[dict], col: str, label: str) -> dict:
    """Does log sharpness line up better with the measured temperature T = η·tr C/(2S) than with η/S?
    Both are predicted to correlate negatively with sharpness (more noise, wider minimum), so the
    comparison is signed: Δ = ρ(log h, log η/S) − ρ(log h, log T), > 0 when T lines up better."""
    h = _vals(rows, col)
    n = _vals(rows, "noise")
    t = _vals(rows, "temperature")
    ok = np.isfinite(h) & np.isfinite(t) & (h > 0) & (t > 0)
    if ok.sum() < MIN_RUNS:
        return dict(statement=f"measured temperature eta*trC/(2S): too few runs with tr C (n={int(ok.sum())})",
                    verdict="too few runs")
    st_t = S.spearman_ci(np.log(t[ok]), np.log(h[ok]))
    st_n = S.spearman_ci(np.log(n[ok]), np.log(h[ok]))
    b = S.bootstrap_rho_difference(np.log(t[ok]), np.log(n[ok]), np.log(h[ok]), sign=-1)
    if b["lo"] > 0:
        verdict = "sharpness lines up better with the measured temperature than with eta/S"
    elif b["hi"] < 0:
        verdict = "sharpness lines up better with eta/S than with the measured temperature"
    else:
        verdict = "no detectable difference between the measured temperature and eta/S"
    if st_t["rho"] > 0:
        verdict += (" (the measured temperature correlates with the wrong sign: tr C, taken at the end point, "
                    "shrinks with the loss, so the flattest minima have the smallest end-point temperature)")
    return dict(statement=(
        f"measured temperature T = eta*trC/(2S) [{label}]: rho(log sharpness, log T) = {st_t['rho']:.3f} "
        f"[{st_t['lo']:.2f}, {st_t['hi']:.2f}] vs rho(log sharpness, log eta/S) = {st_n['rho']:.3f} "
        f"[{st_n['lo']:.2f}, {st_n['hi']:.2f}], both predicted < 0; rho_n - rho_T = {b['delta']:.3f}, 95% bootstrap "
        f"CI [{b['lo']:.3f}, {b['hi']:.3f}] (n = {b['n']}): {verdict} (reported)"),
        verdict="reported", rho_temperature=st_t["rho"], rho_noise=st_n["rho"], delta=b["delta"], ci=[b["lo"], b["hi"]])


def analyse_grid(exp: dict, out: Path, *, acc_sign: Optional[int] = 1, split_by: Optional[str] = None) -> list[dict]:
    """Statements (module docstring) and figures of an η/S grid experiment."""
    est, col, hlabel = _estimator(exp)
    rows = [r for r in run_rows(exp) if r["status"] == "completed"]
    n_div = sum(1 for r in exp["runs"].values() if r.get("status") == "diverged")
    statements = [dict(statement=f"{n_div} diverged run(s) excluded from every statement", n=n_div)]
    figs = []
    for g, grows in _group_rows(rows, split_by).items():
        tag = "" if g == "all" else f"[{g} init] "
        conv = [r for r in grows if r["converged"]]
        left = [r["name"] for r in grows if not r["converged"]]
        statements.append(dict(statement=(
            f"{tag}convergence: {len(conv)} of {len(grows)} completed runs converged ({CONVERGENCE_CRITERION}); left out "
            f"of the graded statements: "
            f"{', '.join(left) if left else 'none'}"), n=len(grows), n_converged=len(conv), excluded=left))
        n = _vals(conv, "noise")
        if col:
            h = _vals(conv, col)
            st = corr_statement(f"{tag}log Hessian norm [{hlabel}], log eta/S",
                                S.spearman_ci(np.log(n), np.log(np.where(h > 0, h, np.nan))), -1)
            st["estimator"] = est
            statements.append(st)
        lam = _vals(conv, "lambda_max")
        if np.isfinite(lam).any():
            statements.append(corr_statement(f"{tag}log lambda_max, log eta/S",
                                             S.spearman_ci(np.log(n), np.log(np.where(lam > 0, lam, np.nan))), -1))
        statements.append(corr_statement(f"{tag}val. accuracy, log eta/S", S.spearman_ci(np.log(n), _vals(conv, "val_acc")),
                                         acc_sign))
        if col:
            statements += [dict(s, statement=tag + s["statement"]) for s in
                           same_ratio_statements(conv, col, "log Hessian norm")]
        statements += [dict(s, statement=tag + s["statement"]) for s in
                       same_ratio_statements(conv, "val_acc", "validation accuracy", transform=lambda v: v)]
        eos, series = edge_of_stability_statement(conv, exp["runs"])
        statements.append(dict(eos, statement=tag + eos["statement"]))
        if col:
            ts = temperature_statement(conv, col, hlabel)
            statements.append(dict(ts, statement=tag + ts["statement"]))
        figs.append((g, grows, series))
        statements += _noise_reports(conv, tag)
    _draw_grid(exp, out, figs, col, hlabel, statements)
    _draw_same_ratio(exp, out, rows, col, hlabel)
    _draw_losses(exp, out)
    return statements


def _noise_reports(rows, tag) -> list[dict]:
    """tr C, the noise scale and cos(C, H) at the end of training (reported: the theory assumes C = σ²I)."""
    tr = _vals(rows, "trace_cov")
    if not np.isfinite(tr).any():
        return []
    n = _vals(rows, "noise")
    st = corr_statement(f"{tag}log tr C (gradient noise), log eta/S", S.spearman_ci(np.log(n), np.log(tr)), None)

    def med(c):
        v = _vals(rows, c)
        v = v[np.isfinite(v)]
        return f"median {np.median(v):.3g} (range [{v.min():.3g}, {v.max():.3g}])" if v.size else "n/a"
    return [st, dict(statement=(f"{tag}gradient noise at the end of training over {int(np.isfinite(tr).sum())} runs: "
                                f"tr C {med('trace_cov')}, noise scale B = tr C/|grad L|^2 {med('noise_scale')}, "
                                f"cosine(C, H) {med('cosine_cov_hessian')} (reported; the theory assumes C = sigma^2 I)"),
                     n=int(np.isfinite(tr).sum()))]


# ----------------------------------------------------------------------------- figures
def _style(rows):
    """Colour by η (log scale), marker by S: the two factors of η/S told apart."""
    plt = _plt()
    lrs = sorted({r["lr"] for r in rows})
    bss = sorted({r["batch_size"] for r in rows})
    cmap = plt.get_cmap("viridis")
    lo, hi = math.log(min(lrs)), math.log(max(lrs))
    colour = {lr: cmap(0.5 if hi == lo else 0.9 * (math.log(lr) - lo) / (hi - lo)) for lr in lrs}
    marker = {bs: _MARKERS[i % len(_MARKERS)] for i, bs in enumerate(bss)}
    return colour, marker


def _scatter(ax, rows, ycol, secol=None, *, colour, marker, xcol="noise"):
    for r in rows:
        y = r.get(ycol)
        if y is None or not math.isfinite(float(y)):
            continue
        c, m = colour[r["lr"]], marker[r["batch_size"]]
        se = r.get(secol) if secol else None
        ax.errorbar(r[xcol], y, yerr=se if se else None, fmt=m, color=c, mfc=c if r["converged"] else "none",
                    ms=6, capsize=2, lw=0.8)


def _legend(fig, colour, marker):
    """One legend for the figure, below the panels, so that it never hides a point."""
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color=c, marker="o", ls="", label=f"η = {lr:g}") for lr, c in colour.items()]
    handles += [Line2D([], [], color="k", marker=m, ls="", mfc="none", label=f"S = {bs:g}") for bs, m in marker.items()]
    handles += [Line2D([], [], color="grey", marker="o", ls="", mfc="none", label="not converged (hollow)")]
    fig.legend(handles=handles, fontsize=7, ncol=len(handles), loc="lower center", frameon=False)


def _rho_text(ax, x, y):
    st = S.spearman_ci(x, y)
    if math.isfinite(st["rho"]):
        ci = f" [{st['lo']:.2f}, {st['hi']:.2f}]" if math.isfinite(st["lo"]) else ""
        ax.text(0.02, 0.02, f"ρ = {st['rho']:.2f}{ci}, n = {st['n']} (converged)", transform=ax.transAxes, fontsize=7,
                va="bottom")


def _draw_grid(exp, out, figs, col, hlabel, statements):
    plt = _plt()
    all_rows = [r for _, rows, _ in figs for r in rows]
    if not all_rows:
        return
    colour, marker = _style(all_rows)
    nrow = len(figs)
    fig, axes = plt.subplots(nrow, 4, figsize=(18, 4.2 * nrow), squeeze=False)
    for (g, rows, series), ax in zip(figs, axes):
        conv = [r for r in rows if r["converged"]]
        tag = "" if g == "all" else f" [{g} init]"
        if col:
            _scatter(ax[0], rows, col, col + "_se", colour=colour, marker=marker)
            h = _vals(conv, col)
            _rho_text(ax[0], np.log(_vals(conv, "noise")), np.log(np.where(h > 0, h, np.nan)))
            log_axis(ax[0], "y")
        log_axis(ax[0], "x")
        ax[0].set(xlabel="η/S", ylabel=f"Hessian norm: {hlabel}", title=f"{exp['name']}{tag}: sharpness")
        _scatter(ax[1], rows, "val_acc", colour=colour, marker=marker)
        _rho_text(ax[1], np.log(_vals(conv, "noise")), _vals(conv, "val_acc"))
        log_axis(ax[1], "x")
        ax[1].set(xlabel="η/S", ylabel="validation accuracy", title=f"{exp['name']}{tag}: generalisation")
        cmap = plt.get_cmap("plasma")
        noises = [r["noise"] for r in rows if r["name"] in series]
        if noises:
            lo, hi = math.log(min(noises)), math.log(max(noises))
            for r in rows:
                if r["name"] in series:
                    ep, v = series[r["name"]]
                    c = cmap(0.5 if hi == lo else 0.9 * (math.log(r["noise"]) - lo) / (hi - lo))
                    ax[2].plot(ep, v, "o-", color=c, ms=3, lw=0.8, alpha=0.8 if r["converged"] else 0.3)
            from matplotlib.colors import LogNorm
            sm = plt.cm.ScalarMappable(cmap=cmap, norm=LogNorm(min(noises), max(noises) * (1.0001 if hi == lo else 1)))
            fig.colorbar(sm, ax=ax[2], label="η/S")
        ax[2].axhline(1.0, color="r", ls="--", lw=1, label="λ_max = 2/η (stability limit)")
        ax[2].set(xlabel="epoch", ylabel="η·λ_max/2", title="edge of stability")
        log_axis(ax[2], "y")
        ax[2].legend(fontsize=7, loc="lower right")
        if col and any(r.get("temperature") for r in rows):
            _scatter(ax[3], rows, col, col + "_se", colour=colour, marker=marker, xcol="temperature")
            t, h = _vals(conv, "temperature"), _vals(conv, col)
            okt = (t > 0) & (h > 0)
            _rho_text(ax[3], np.log(np.where(okt, t, np.nan)), np.log(np.where(okt, h, np.nan)))
            log_axis(ax[3], "x")
            log_axis(ax[3], "y")
            ax[3].set(xlabel="measured temperature η·tr C/(2S)", ylabel=f"Hessian norm: {hlabel}",
                      title="sharpness vs measured temperature")
        else:
            ax[3].set_visible(False)
    _legend(fig, colour, marker)
    _save(fig, exp, out / f"{exp['name']}.png", bottom=0.08 / nrow)
    plt.close(fig)


def _draw_same_ratio(exp, out, rows, col, hlabel):
    plt = _plt()
    conv = [r for r in rows if r["converged"]]
    by_ratio: dict[float, dict] = defaultdict(lambda: defaultdict(list))
    for r in conv:
        by_ratio[_ratio_key(r["noise"])][(r["lr"], r["batch_size"])].append(r)
    shared = {k: v for k, v in sorted(by_ratio.items()) if len(v) >= 2}
    if not shared:
        return
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    quantities = ([(col, hlabel, True)] if col else []) + [("val_acc", "validation accuracy", False)]
    for ax, (c, label, logy) in zip(axes, quantities):
        x0 = 0
        ticks, labels = [], []
        for ratio, pts in shared.items():
            for i, ((lr, bs), rs) in enumerate(sorted(pts.items())):
                v = _vals(rs, c)
                v = v[np.isfinite(v)]
                if not v.size:
                    continue
                x = x0 + i
                ax.plot([x] * v.size, v, "o", color="C0", ms=4, alpha=0.6)
                ax.errorbar(x, v.mean(), yerr=v.std(ddof=1) if v.size > 1 else None, fmt="_", color="k", ms=14,
                            capsize=3)
                ticks.append(x)
                labels.append(f"{lr:g}/{bs:g}")
            ax.axvspan(x0 - 0.4, x0 + len(pts) - 0.6, color="0.9", zorder=0)
            ax.text(x0 + (len(pts) - 1) / 2, 1.01, f"{ratio:.1g}", transform=ax.get_xaxis_transform(),
                    ha="center", fontsize=7)
            x0 += len(pts) + 1
        ax.set_xticks(ticks)
        ax.set_xticklabels(labels, rotation=45, fontsize=7)
        ax.text(0.0, 1.01, "η/S:", transform=ax.transAxes, ha="right", fontsize=7)
        ax.set(xlabel="η / S of each (η, S) pair  (dots: seeds; bar: mean ± SD over seeds)", ylabel=label)
        if logy:
            log_axis(ax, "y")
    fig.suptitle(f"{exp['name']}: converged runs at the same η/S (grey bands), by (η, S) pair", y=0.93, fontsize=10)
    if len(quantities) == 1:
        axes[1].set_visible(False)
    _save(fig, exp, out / f"{exp['name']}_same_ratio.png")
    plt.close(fig)


def _draw_losses(exp, out, max_curves: int = 40):
    """Logged minibatch losses against epochs (a running mean over 1% of each run's points), coloured by η/S."""
    plt = _plt()
    curves = []
    for name, r in sorted(exp["runs"].items()):
        h = r.get("history", {})
        steps, loss = h.get("logged_step") or [], h.get("logged_loss") or []
        if len(steps) < 2 or not h.get("steps"):
            continue
        per_epoch = float(np.mean(h["steps"]))
        curves.append((float(np.mean(h["noise"])), name, np.array(steps, float) / per_epoch, np.array(loss, float)))
    if not curves:
        return
    curves = curves[:max_curves]
    fig, ax = plt.subplots(figsize=(7, 4))
    cmap = plt.get_cmap("plasma")
    lo, hi = math.log(min(c[0] for c in curves)), math.log(max(c[0] for c in curves))
    for noise, name, ep, loss in curves:
        w = max(1, len(loss) // 100)
        smooth = np.convolve(loss, np.ones(w) / w, mode="valid")
        ax.plot(ep[w - 1:], smooth, color=cmap(0.5 if hi == lo else 0.9 * (math.log(noise) - lo) / (hi - lo)), lw=0.8)
    from matplotlib.colors import LogNorm
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=LogNorm(math.exp(lo), math.exp(hi) * (1.0001 if hi == lo else 1)))
    fig.colorbar(sm, ax=ax, label="η/S")
    ax.set(xlabel="epoch", ylabel="minibatch loss (running mean)", title=f"{exp['name']}: training loss per step")
    log_axis(ax, "y")
    _save(fig, exp, out / f"{exp['name']}_loss.png")
    plt.close(fig)
