"""Network results → the paper's figures and theory-vs-experiment statements.

``main(["RESULTS_DIR", "--out", "figures/nets"])`` reads what ``python -m nets run`` wrote
(``RESULTS_DIR/<experiment>/{plan,summary,analysis}.json`` and ``runs/*/result.json``), draws one
PNG per experiment and prints statements comparing each result with the theory (n = η/S):

* Fig. 1/8/9 — :mod:`validation.nets_grid`: convergence, sharpness and accuracy vs η/S with 95%
  intervals, same-η/S agreement against the seed spread (F tests) with the wrong prediction "the
  learning rate alone sets the minimum", the edge of stability η·λ_max/2 ≤ 1, sharpness vs the
  measured temperature η·tr C/(2S); graded statements use converged runs only.
  "Hessian norm" is ‖H‖_F from exact Hessian-vector products (``hessian_frobenius_hutchinson``);
  the paper's finite-difference estimate (``hessian_norm_fd``) is used only for results without
  it, as it is unreliable on ReLU networks; each statement and axis label names the estimator.
  Fig. 1 also tracks the noise geometry (alignment of the noise with the Gauss–Newton matrix).
* Fig. 2/3 — interpolation: the loss rise half a unit beyond each endpoint (α = −0.5 and 1.5)
  as a sharpness proxy; the endpoint with the lower η/S should be sharper (Fig. 2), equal-η/S
  endpoints should be alike (Fig. 3: rise ratio within a factor 2).
* Fig. 4 — same-ratio pairs (cyclic LR vs equivalent cyclic BS; constant η/S pairs): final test
  accuracy difference vs the spread between the two pairs.
* Fig. 5 — memorisation: ρ(val. acc, η/S) > 0 and ρ(train acc on noisy labels, η/S) < 0.
* Fig. 6/7 — breaking point: the smallest β whose mean best val. acc is > 5 points below β = 1's
  (or diverged), vs the discrete-time stability prediction β* = 2/(η₀ λ_max(β=1)) (SGD on a
  quadratic of curvature λ is stable iff η < 2/λ).
* Table 1 — mean ± sd per schedule of test acc, final loss and Hessian norm.

Statements carry ``n`` (runs used); with fewer than 5 runs a correlation is reported as
"too few runs" rather than as agreement or disagreement.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .nets_results import (HNORM_ESTIMATORS, HNORM_LABELS, MIN_RUNS, _completed, _corr_statement, _hnorm,  # noqa: F401
                           find_experiments,
                           _hnorm_estimator, _hnorms, _load_json, _meas_value, _noise, _plt, _save, _topeig,
                           corr_statement, load_experiment, log_axis, run_rows, scale_label, spearman)


from .nets_grid import analyse_grid  # noqa: E402
from .nets_svag import analyse_svag  # noqa: E402

__all__ = ["ANALYSES", "EXIT_CODES", "validate_results", "main", "analyse_alignment", "analyse_interpolation",
           "analyse_schedules", "analyse_memorisation", "analyse_breaking", "analyse_table1"]


# ----------------------------------------------------------------------------- per-figure analyses
def _alignment_series(r):
    """(epochs, cosine, mu) of the alignment metrics tracked over training plus the final one."""
    pts = [(t["epoch"], t["alignment"]) for t in r.get("history", {}).get("tracked", []) if "alignment" in t]
    fin = (r.get("measurements") or {}).get("alignment")
    if fin is not None:
        pts.append((len(r.get("history", {}).get("train_loss", [])) or len(pts) + 1, fin))
    pts = [(e, a) for e, a in pts if isinstance(a, dict) and "cosine" in a]
    return (np.array([e for e, _ in pts], dtype=float), np.array([a["cosine"] for _, a in pts], dtype=float),
            np.array([a["mu"] for _, a in pts], dtype=float))


def analyse_alignment(exp, out: Path) -> list[dict]:
    """Noise geometry on the fig1 networks: alignment of the SGD noise covariance Σ₁ with the
    Gauss–Newton matrix G over training, for each η/S (Wang & Wu 2023: the alignment stays bounded
    away from zero).  Cross-entropy networks: the scale-free cosine Tr(Σ₁G)/(‖Σ₁‖_F‖G‖_F) is the
    number to read; μ uses the square-loss normalisation 2L (see nets.geometry)."""
    plt = _plt()
    comp = _completed(exp)
    series = {k: _alignment_series(r) for k, r in comp.items()}
    series = {k: v for k, v in series.items() if v[0].size}
    if not series:
        return [dict(statement="no alignment measurements in these results")]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    cmap = plt.get_cmap("viridis")
    noises = {k: _noise(comp[k]) for k in series}
    lo, hi = np.log(min(noises.values())), np.log(max(noises.values()))
    for k, (ep, cos, mu) in sorted(series.items(), key=lambda kv: noises[kv[0]]):
        c = cmap(0.0 if hi == lo else (np.log(noises[k]) - lo) / (hi - lo))
        ax[0].plot(ep, cos, "o-", color=c, label=f"η/S = {noises[k]:.2g}")
        ax[1].plot(ep, mu, "o-", color=c)
    allcos = np.concatenate([v[1] for v in series.values()])
    allcos = allcos[np.isfinite(allcos)]
    top = max(1.0, float(allcos.max()) if allcos.size else 1.0)    # estimator noise can exceed 1: never clip
    ax[0].axhline(1.0, color="0.6", lw=0.8, ls=":")
    ax[0].set(xlabel="epoch", ylabel="cosine(Σ₁, G)", title=f"{exp['name']}: noise–curvature alignment",
              ylim=(min(0.0, float(allcos.min()) if allcos.size else 0.0), 1.05 * top))
    ax[1].set(xlabel="epoch", ylabel="μ = Tr(Σ₁G)/(2L‖G‖²_F)", title="average alignment (square-loss normalisation)",
              yscale="log")
    if len(series) <= 8:
        ax[0].legend(fontsize=7)
    else:                      # a legend of a whole grid would cover the curves: a colour bar of η/S
        from matplotlib.colors import LogNorm
        sm = plt.cm.ScalarMappable(cmap=cmap, norm=LogNorm(np.exp(lo), np.exp(hi) if hi > lo else np.exp(lo) * 1.01))
        fig.colorbar(sm, ax=ax[1], label="η/S")
    _save(fig, exp, out / f"{exp['name']}_alignment.png")
    plt.close(fig)
    final_cos = np.array([v[1][-1] for v in series.values()])
    n = np.array([noises[k] for k in series])
    st = [dict(statement=(f"final cosine alignment of the noise with G over {final_cos.size} runs: "
                          f"min {final_cos.min():.3f}, median {np.median(final_cos):.3f} "
                          f"(theory: bounded away from zero)"), min=float(final_cos.min()),
               median=float(np.median(final_cos)), verdict="consistent" if final_cos.min() > 0.05 else "inconsistent")]
    if final_cos.size >= 3:
        st.append(_corr_statement("final cosine alignment, log eta/S", *spearman(np.log(n), final_cos), None))
    return st


def _rise(entry, split="train"):
    al = np.asarray(entry["alphas"], float)
    loss = np.asarray(entry[split]["loss"], float)
    i0, i1 = int(np.argmin(np.abs(al - 0))), int(np.argmin(np.abs(al - 1)))
    im, ip = int(np.argmin(np.abs(al + 0.5))), int(np.argmin(np.abs(al - 1.5)))
    return loss[im] - loss[i0], loss[ip] - loss[i1]


def analyse_interpolation(exp, out: Path) -> list[dict]:
    """Fig. 2/3: interpolation curves; sharper endpoint = larger loss rise beyond it."""
    plt = _plt()
    ana = [a for a in exp["analysis"] if "skipped" not in a]
    statements = []
    if not ana:
        return [dict(statement="no interpolation results (runs missing or diverged)")]
    ncol = min(3, len(ana))              # Fig. 2 full: 3 comparisons per seed, one row per seed
    nrow = -(-len(ana) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3.5 * nrow), squeeze=False)
    for ax in axes.flat[len(ana):]:
        ax.set_visible(False)
    for ax, a in zip(axes.flat, ana):
        for split, st in (("train", "-"), ("test", "--")):
            ax.plot(a["alphas"], a[split]["loss"], st, label=f"{split} loss")
        ax.set(title=a["label"], xlabel=f"α  (0: {a['a']}, 1: {a['b']})", ylabel="loss", yscale="log")
        ax.legend()
        ra, rb = exp["runs"][a["a"]], exp["runs"][a["b"]]
        na, nb = _noise(ra), _noise(rb)
        up_a, up_b = _rise(a)
        same = a.get("same_noise", abs(na - nb) / max(na, nb) <= 0.05)
        head = (f"{a['label']}: loss rise half a unit beyond {a['a']} (η/S={na:.3g}) = {up_a:.3g}, beyond "
                f"{a['b']} (η/S={nb:.3g}) = {up_b:.3g}")
        if not same:
            sharper = a["a"] if up_a > up_b else a["b"]
            lower = a["a"] if na < nb else a["b"]
            if max(up_a, up_b) <= 0:
                verdict = "inconclusive (loss does not rise beyond either endpoint: not at a minimum)"
            else:
                verdict = "agrees with the theory" if sharper == lower else "disagrees with the theory"
            statements.append(dict(statement=f"{head}; sharper endpoint {sharper}, lower η/S {lower}: {verdict}",
                                   verdict=verdict))
        else:
            if min(up_a, up_b) <= 0:
                verdict = "inconclusive (loss does not rise beyond an endpoint: not at a minimum)"
            else:
                ratio = max(up_a, up_b) / min(up_a, up_b)
                verdict = ("agrees with the theory" if ratio <= 2 else "disagrees with the theory") + \
                    f" (rise ratio {ratio:.2f}, similar if ≤ 2)"
            statements.append(dict(statement=f"{head}; same η/S: {verdict}", verdict=verdict))
    _save(fig, exp, out / f"{exp['name']}.png")
    plt.close(fig)
    return statements


def analyse_schedules(exp, out: Path) -> list[dict]:
    """Fig. 4: same-η/S pairs have matching curves and endpoints."""
    plt = _plt()
    runs = exp["runs"]
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.5))
    for k, r in runs.items():
        h = r["history"]
        ax[0].plot(h["epoch"], h["train_acc"], label=k)
        ax[1].plot(h["epoch"], h["test_acc"], label=k)
        ax[2].semilogy(h["epoch"], h["noise"], label=k)
    for a, t in zip(ax, ("train accuracy", "test accuracy", "η/S")):
        a.set(xlabel="epoch", title=t)
    ax[0].legend(fontsize=7)
    _save(fig, exp, out / f"{exp['name']}.png")
    plt.close(fig)
    statements = []
    pairs = [("cyclic_lr", "cyclic_bs"), ("const_small", "const_large")]
    diffs = {}
    for a, b in pairs:
        if a in runs and b in runs and runs[a]["status"] == runs[b]["status"] == "completed":
            ta, tb = runs[a]["final"]["test_acc"], runs[b]["final"]["test_acc"]
            same = np.allclose(runs[a]["history"]["noise"], runs[b]["history"]["noise"], rtol=0.05)
            curve = float(np.max(np.abs(np.subtract(runs[a]["history"]["test_acc"], runs[b]["history"]["test_acc"]))))
            diffs[(a, b)] = abs(ta - tb)
            statements.append(dict(statement=(
                f"{a} vs {b}: η/S equal every epoch: {same}; final test acc {ta:.4f} vs {tb:.4f} "
                f"(|Δ| = {abs(ta - tb):.4f}); max |Δ test acc| over epochs = {curve:.4f}")))
    if len(diffs) == 2:
        d1, d2 = diffs.values()
        statements.append(dict(statement=(
            f"same-ratio differences {d1:.4f} and {d2:.4f}; without seed repetitions the seed spread is "
            "not measured here (the paper: ~0.3 points for 87% accuracies)")))
    return statements


def analyse_memorisation(exp, out: Path) -> list[dict]:
    plt = _plt()
    comp = _completed(exp)
    groups: dict[tuple, list] = {}
    for k, r in comp.items():
        key = (r["data"]["random_label_fraction"], r["config"]["momentum"])
        groups.setdefault(key, []).append(r)
    statements = []
    fig, axes = plt.subplots(1, max(len(groups), 1), figsize=(4 * max(len(groups), 1), 3.5), squeeze=False)
    for ax, (key, rs) in zip(axes[0], sorted(groups.items())):
        n = np.array([_noise(r) for r in rs])
        va = np.array([r["final"]["val_acc"] for r in rs])
        tr = np.array([r["final"]["train_acc"] for r in rs])
        sc = ax.scatter(tr, va, c=np.log10(n), cmap="coolwarm")
        fig.colorbar(sc, ax=ax, label="log10 η/S")
        ax.set(title=f"random labels {int(key[0] * 100)}%, momentum {key[1]}", xlabel="train acc (noisy labels)",
               ylabel="val acc")
        tag = f"[{int(key[0] * 100)}% random, m={key[1]}] "
        statements.append(_corr_statement(tag + "val. accuracy, log eta/S", *spearman(np.log(n), va), 1))
        statements.append(_corr_statement(tag + "train accuracy on noisy labels, log eta/S",
                                          *spearman(np.log(n), tr), -1))
        for label, get in (("", lambda r: r), (" at best val.", lambda r: dict(
                measurements=r.get("measurements_best_val", {})))):
            h, est, hlabel = _hnorms(get(r) for r in rs)
            if np.isfinite(h).any():
                st = _corr_statement(tag + f"log Hessian norm{label} [{hlabel}], log eta/S",
                                     *spearman(np.log(n), np.log(h)), -1)
                st["estimator"] = est
                statements.append(st)
    _save(fig, exp, out / f"{exp['name']}.png")
    plt.close(fig)
    return statements


def analyse_breaking(exp, out: Path) -> list[dict]:
    """Fig. 6/7: val. acc vs β per (η₀, n); breaking β vs β* = 2/(η₀ λ_max)."""
    plt = _plt()
    base_bs = None
    if exp["plan"] and exp["plan"].get("notes", "").startswith("base_bs="):
        base_bs = int(exp["plan"]["notes"].split("=")[1])
    curves: dict[tuple, dict] = {}
    for k, r in exp["runs"].items():
        lr0_tag, n_tag, beta_tag, _ = k.split("_")
        bs = r["config"]["batch_size"]
        beta = bs / base_bs if base_bs else float(beta_tag[4:].replace("p", "."))
        lr0 = r["config"]["lr"] / beta
        key = (round(lr0, 8), n_tag)
        c = curves.setdefault(key, {})
        c.setdefault(beta, []).append(r)
    statements = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for (lr0, n_tag), c in sorted(curves.items()):
        betas = sorted(c)
        mean_acc, any_div = [], []
        for b in betas:
            accs = [r["best_val_acc"] for r in c[b] if r["status"] == "completed" and r["best_val_acc"] is not None]
            mean_acc.append(np.mean(accs) if accs else np.nan)
            any_div.append(any(r["status"] == "diverged" for r in c[b]))
        ax.semilogx(betas, mean_acc, "o-", label=f"η0={lr0:g}, {n_tag}")
        ref = mean_acc[0]
        broken = [b for b, a, d in zip(betas, mean_acc, any_div) if d or (np.isfinite(ref) and (not np.isfinite(a)
                                                                                                  or a < ref - 0.05))]
        lam = [_topeig(r) for r in c[betas[0]] if _topeig(r) is not None]
        pred = 2.0 / (lr0 * betas[0] * np.mean(lam)) * betas[0] if lam else None
        b_obs = broken[0] if broken else None
        txt = (f"η0={lr0:g}, {n_tag}: breaking β (first β with mean best val. acc > 5 points below β={betas[0]:g}, "
               f"or a diverged seed) = {b_obs}; stability prediction β* = 2/(η0·λ_max) = "
               f"{'n/a (no eigenvalue)' if pred is None else f'{pred:.3g}'}")
        if pred is not None:
            # SGD is linearly unstable at a minimum of curvature λ iff η > 2/λ: the β=1 minimum cannot be
            # kept for β > β*; larger-β runs may find flatter minima, so β* is a lower bound on breaking.
            if b_obs is None:
                verdict = ("consistent" if pred >= betas[-1] else "no breaking observed up to β="
                           f"{betas[-1]:g} although β* < β_max (flatter minima reached at large β)")
            else:
                verdict = "consistent (β* ≤ breaking β)" if pred <= b_obs else "inconsistent (breaks before β*)"
            txt += f": {verdict}"
        statements.append(dict(statement=txt, breaking_beta=b_obs, predicted_beta=pred,
                               diverged_betas=[b for b, d in zip(betas, any_div) if d]))
    ax.set(xlabel="β  (η = β η0, S = β S0)", ylabel="mean best val. accuracy", title=exp["name"])
    ax.legend(fontsize=7)
    _save(fig, exp, out / f"{exp['name']}.png")
    plt.close(fig)
    return statements


def analyse_table1(exp, out: Path) -> list[dict]:
    plt = _plt()
    groups: dict[str, list] = {}
    for k, r in exp["runs"].items():
        groups.setdefault(k.rsplit("_s", 1)[0], []).append(r)
    statements, names, means, sds = [], [], [], []
    all_comp = [r for r in exp["runs"].values() if r["status"] == "completed"]
    est = _hnorm_estimator(all_comp)                 # one estimator for every schedule (never mixed)
    hlabel = HNORM_LABELS.get(est, "Hessian norm")
    for g, rs in sorted(groups.items()):
        comp = [r for r in rs if r["status"] == "completed"]
        te = np.array([r["final"]["test_acc"] for r in comp])
        va = np.array([r["final"]["val_acc"] for r in comp])
        lo = np.array([r["final"]["train_loss"] for r in comp])
        hn = [h for h in (_hnorm(r, est) for r in comp) if h is not None] if est else []
        sd = lambda x: float(np.std(x, ddof=1)) if len(x) > 1 else float("nan")
        statements.append(dict(statement=(
            f"{g}: test acc {te.mean():.4f} ± {sd(te):.4f}, val acc {va.mean():.4f} ± {sd(va):.4f}, loss "
            f"{lo.mean():.4f} ± {sd(lo):.4f}, Hessian norm [{hlabel}] {np.mean(hn) if hn else float('nan'):.4g} "
            f"(n = {len(comp)}, diverged {len(rs) - len(comp)})")))
        names.append(g), means.append(te.mean() if len(te) else np.nan), sds.append(sd(te))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    ax = axes[0]
    ax.bar(names, means, yerr=np.nan_to_num(sds))
    ax.set(ylabel="test accuracy", title="Table 1: schedules")
    for g, rs in sorted(groups.items()):   # Fig. 16: Hessian norm through training (first repetition)
        tr = rs[0]["history"].get("tracked", []) if rs else []
        pts = [(t["epoch"], _hnorm(t, est)) for t in tr if est and _hnorm(t, est) is not None]
        if rs and est and _hnorm(rs[0], est) is not None:    # end-of-run measurement
            pts.append((rs[0]["history"]["epoch"][-1], _hnorm(rs[0], est)))
        if pts:
            axes[1].semilogy(*zip(*pts), "o-", label=g)
    axes[1].set(xlabel="epoch", ylabel=f"Hessian norm: {hlabel}", title="Fig. 16: sharpness through training")
    if axes[1].lines:
        axes[1].legend(fontsize=7)
    _save(fig, exp, out / f"{exp['name']}.png")
    plt.close(fig)
    return statements


ANALYSES = {
    "fig1": lambda e, o: analyse_grid(e, o) + analyse_alignment(e, o),
    "fig8": lambda e, o: analyse_grid(e, o, acc_sign=None),   # paper: an optimum, not monotone
    "fig9": lambda e, o: analyse_grid(e, o, split_by="prefix"),
    "fig2": analyse_interpolation,
    "fig3": analyse_interpolation,
    "fig4": analyse_schedules,
    "fig5": analyse_memorisation,
    "fig6": analyse_breaking,
    "fig7": analyse_breaking,
    "table1": analyse_table1,
    "svag": analyse_svag,
}


def validate_results(results_dir: str | Path, out: str | Path = "figures/nets") -> dict:
    """Figures, statements (``nets_report.json``) and one tidy CSV per experiment (``<exp>_runs.csv``)
    for every experiment under ``results_dir`` (the ``--out`` of ``nets run``, or one experiment's
    folder in it). Raises FileNotFoundError when ``results_dir`` does not exist."""
    from nets.results import write_table
    from theory._checks import check_output_dir

    results_dir, out = Path(results_dir), Path(out)
    report = {}
    exps = [(d, load_experiment(d)) for d in find_experiments(results_dir) if d.name in ANALYSES]
    exps = [(d, e) for d, e in exps if e["runs"]]
    if exps:
        check_output_dir("--out", out)   # before any analysis, and only when there is something to write
    for d, exp in exps:
        fn = ANALYSES[d.name]
        write_table(run_rows(exp), out / f"{d.name}_runs.csv")
        try:
            report[d.name] = dict(statements=fn(exp, out), figure=str(out / f"{d.name}.png"), n_runs=len(exp["runs"]),
                                  table=str(out / f"{d.name}_runs.csv"), scale=scale_label(exp["plan"]),
                                  overrides=(exp["plan"] or {}).get("overrides", {}))
        except Exception as exc:  # one broken experiment must not hide the others
            report[d.name] = dict(statements=[dict(statement=f"analysis failed: {type(exc).__name__}: {exc}")],
                                  error=True)
    if report:
        from validation.core import atomic_write_text

        atomic_write_text(out / "nets_report.json", json.dumps(report, indent=1, default=float))
    return report


EXIT_CODES = """exit codes: 0 the report was written (the verdicts are findings: read them), 1 an analysis failed,
2 bad input (no results under the directory, an output that cannot be written)"""


def main(argv: Optional[Sequence[str]] = None) -> int:
    import sys
    p = argparse.ArgumentParser(prog="python -m validation nets",
                                description="Figures, theory-vs-experiment statements and a CSV table per experiment "
                                "from network results (python -m nets run ... --out DIR).", epilog=EXIT_CODES)
    p.add_argument("results", help="results directory written by `python -m nets run ... --out DIR`, or one "
                   "experiment's folder in it (DIR/fig1)")
    p.add_argument("--out", default="figures/nets", help="where to write PNGs, nets_report.json and the CSV tables "
                   "(default figures/nets)")
    args = p.parse_args(argv)
    try:
        report = validate_results(args.results, args.out)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not report:
        print(f"error: no network results under {args.results} (expected <dir>/<experiment>/runs/*/result.json as "
              f"`python -m nets run --out <dir>` writes)", file=sys.stderr)
        return 2
    failed = False
    for name, rep in report.items():
        print(f"== {name} ({rep.get('n_runs', 0)} runs; {rep.get('scale', '')}) -> {rep.get('figure', '')}")
        for s in rep["statements"]:
            print("  - " + s["statement"])
        failed |= bool(rep.get("error"))
    return 1 if failed else 0


if __name__ == "__main__":
    import sys
    sys.exit(main())
