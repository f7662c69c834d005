"""Results of ``python -m nets run``, read back without torch: experiment folders, per-run
measurements, one tidy row per run, CSV tables, a pandas loader and the comparison of two result
directories (``python -m nets table DIR``, ``python -m nets compare DIR_A DIR_B``).

Layout read (written by :mod:`nets.runner`): ``DIR/<experiment>/plan.json`` and
``DIR/<experiment>/runs/<run>/result.json``. ``DIR`` may be a results root holding several
experiments or one experiment's folder.
"""
from __future__ import annotations

import csv
import json
import math
import os
import warnings
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from theory._io import atomic_write_text

__all__ = ["convergence", "CONVERGENCE_CRITERION", "load_experiment", "find_experiments", "run_rows", "COLUMNS", "write_table", "read_table", "load_table",
           "compare", "COMPARED"]


# Convergence criterion (see :func:`convergence`); recorded in every completed result.
CONVERGED_MIN_TRAIN_ACC = 0.99   # the run fits its training set: it sits in a minimum of the training loss
CONVERGED_WINDOW = 0.10          # ... and has stopped descending: over the last 10% of the epochs (>= 1 epoch)
CONVERGED_MAX_LOSS_DROP = 0.02   # the full-training-set loss fell by at most this many nats
CONVERGED_MAX_SPIKE = 3.0        # ... and the end point is not inside a loss spike: final loss <= 3 x the window's median
CONVERGENCE_CRITERION = (f"train accuracy >= {CONVERGED_MIN_TRAIN_ACC:.0%} at the end, train loss down by at most "
                         f"{CONVERGED_MAX_LOSS_DROP} nats over the last {CONVERGED_WINDOW:.0%} of the epochs (at least "
                         f"one epoch), and the final train loss at most {CONVERGED_MAX_SPIKE:g} times its median over "
                         "those epochs (not measured inside a loss spike)")


def convergence(history: dict) -> dict:
    """Whether a run converged, by :data:`CONVERGENCE_CRITERION`, from its per-epoch full-training-set
    (eval-mode) loss and accuracy: it fits its training set (final accuracy at least
    :data:`CONVERGED_MIN_TRAIN_ACC`), has stopped descending (the loss fell by at most
    :data:`CONVERGED_MAX_LOSS_DROP` nats over the last ⌈:data:`CONVERGED_WINDOW`·epochs⌉ epochs, at
    least one), and its end point, where every measurement is taken, is not inside one of the late
    loss spikes of small-loss training (final loss at most :data:`CONVERGED_MAX_SPIKE` times the
    window's median; spikes of 10-1000x the median are common there, and a minimum measured inside
    one looks 100-1000x sharper). A run that fails has not reached the minimum whose sharpness the
    theory predicts, so graded statements leave it out."""
    loss, acc = history.get("train_loss", []), history.get("train_acc", [])
    window = max(1, math.ceil(CONVERGED_WINDOW * len(loss)))
    if len(loss) <= window:
        return dict(converged=False, criterion=CONVERGENCE_CRITERION, train_acc=acc[-1] if acc else None,
                    loss_drop=None, window_epochs=window, reason="fewer epochs than the window needs")
    drop = float(loss[-1 - window] - loss[-1])
    recent = np.asarray(loss[-1 - window:], float)
    median = float(np.median(recent)) if np.all(np.isfinite(recent)) else math.nan
    spike = float(loss[-1] / median) if median > 0 else (math.inf if loss[-1] > 0 else 1.0)
    fits = bool(acc[-1] is not None and acc[-1] >= CONVERGED_MIN_TRAIN_ACC)
    flat = bool(math.isfinite(drop) and drop <= CONVERGED_MAX_LOSS_DROP)
    calm = bool(math.isfinite(spike) and spike <= CONVERGED_MAX_SPIKE)
    reason = "; ".join(([f"train accuracy {acc[-1]:.4f} < {CONVERGED_MIN_TRAIN_ACC}"] if not fits else [])
                       + ([f"train loss still falling ({drop:.4g} nats over the last {window} epoch(s))"] if not flat
                          else [])
                       + ([f"final train loss {spike:.3g} times its recent median (a loss spike)"] if flat and not calm
                          else []))
    return dict(converged=fits and flat and calm, criterion=CONVERGENCE_CRITERION, train_acc=float(acc[-1]),
                loss_drop=drop, loss_over_median=spike, window_epochs=window, reason=reason)


def _load_json(p: Path):
    with open(p) as fh:
        return json.load(fh)


def _read_json(p: Path, what: str):
    """A JSON file, or None with a warning naming it when it is unreadable (a run being written, a
    crash): reading results never stops on one bad file and never changes the folder."""
    try:
        return _load_json(p)
    except (OSError, ValueError) as exc:
        warnings.warn(f"{p}: unreadable {what} ({type(exc).__name__}: {exc}); left out")
        return None


def load_experiment(exp_dir: str | os.PathLike) -> dict:
    """``dict(name, plan, runs={run name: result}, analysis)`` of one experiment folder."""
    exp_dir = Path(exp_dir)
    plan = _read_json(exp_dir / "plan.json", "plan") if (exp_dir / "plan.json").is_file() else None
    runs = {}
    for f in sorted((exp_dir / "runs").glob("*/result.json")):
        r = _read_json(f, "run result")
        if isinstance(r, dict) and "status" in r:
            runs[f.parent.name] = r
    analysis = (_read_json(exp_dir / "analysis.json", "analysis") or []) if (exp_dir / "analysis.json").is_file() \
        else []
    return dict(name=exp_dir.name, plan=plan, runs=runs, analysis=analysis)


def find_experiments(path: str | os.PathLike) -> list[Path]:
    """The experiment folders under ``path``: ``path`` itself if it is one (it has ``runs/`` or
    ``plan.json``), else its sub-folders that are; a path that does not exist is an error."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"results directory {path} does not exist (expected the --out of `nets run`, "
                                "or one experiment's folder in it)")
    if (path / "runs").is_dir() or (path / "plan.json").is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.is_dir() and ((p / "runs").is_dir() or (p / "plan.json").is_file()))


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
            seed=cfg.get("seed"), status=r.get("status"),
            converged=(r.get("status") == "completed" and bool(convergence(r["history"])["converged"]))
            if r.get("history", {}).get("train_loss") else bool(r.get("converged", False)),
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



#: The columns of :func:`run_rows`, in table order.
COLUMNS = ("experiment", "name", "lr", "batch_size", "noise", "seed", "status", "converged", "epochs_done",
           "diverged_epoch", "train_loss", "train_acc", "val_acc", "test_acc", "best_val_acc", "hessian_frobenius",
           "hessian_frobenius_se", "hessian_fd", "hessian_fd_se", "lambda_max", "trace_cov", "temperature",
           "noise_scale", "cosine_cov_hessian", "alignment_cosine", "step_path", "wall_s", "measure_wall_s")


def write_table(rows: Iterable[dict], path: str | os.PathLike) -> Path:
    """Write rows of :func:`run_rows` as a CSV file (atomically; empty cells for missing values)."""
    import io
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in COLUMNS})
    path = Path(path)
    atomic_write_text(path, buf.getvalue())
    return path


def read_table(path: str | os.PathLike) -> list[dict]:
    """The rows of a table written by :func:`write_table`, numbers parsed, empty cells as None."""
    out = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            parsed = {}
            for k, v in row.items():
                if v == "":
                    parsed[k] = None
                elif v in ("True", "False"):
                    parsed[k] = v == "True"
                else:
                    try:
                        parsed[k] = int(v) if v.lstrip("-").isdigit() else float(v)
                    except ValueError:
                        parsed[k] = v
            out.append(parsed)
    return out


def load_table(path: str | os.PathLike):
    """A pandas DataFrame with one row per run of every experiment under ``path`` (a results
    directory or one experiment's folder; read from the results themselves, so always current), or
    of one CSV table written by :func:`write_table`. Needs pandas (``pip install .[tables]``)."""
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError("load_table returns a pandas DataFrame: `pip install pandas` (or .[tables]); the CSV "
                          "files themselves need no pandas (nets.results.read_table)") from exc
    path = Path(path)
    if path.is_file():
        return pd.read_csv(path)
    rows = [r for e in find_experiments(path) for r in run_rows(load_experiment(e))]
    return pd.DataFrame(rows, columns=list(COLUMNS))


#: Quantities :func:`compare` lines up, with the column of their standard error (None: exact).
COMPARED = (("val_acc", None), ("test_acc", None), ("train_loss", None), ("hessian_frobenius", "hessian_frobenius_se"),
            ("lambda_max", None), ("trace_cov", None))


def compare(dir_a: str | os.PathLike, dir_b: str | os.PathLike) -> dict:
    """Line up the runs of two result directories by experiment and run name.

    Returns ``dict(rows, only_a, only_b, overrides_a, overrides_b)``: one row per run present in
    both with, for each quantity of :data:`COMPARED`, the two values, their difference and, where
    both carry standard errors, the difference in units of their combined SE (``z``); and the
    runs found on one side only. Typical uses: a GPU run against a CPU run of the same preset, or
    results before and after a change of code."""
    def index(d):
        rows, ov = {}, {}
        for e in find_experiments(d):
            exp = load_experiment(e)
            ov[exp["name"]] = (exp["plan"] or {}).get("overrides", {})
            rows.update({(r["experiment"], r["name"]): r for r in run_rows(exp)})
        return rows, ov
    a, ov_a = index(dir_a)
    b, ov_b = index(dir_b)
    out = []
    for key in sorted(set(a) & set(b)):
        ra, rb = a[key], b[key]
        row = dict(experiment=key[0], name=key[1], status_a=ra["status"], status_b=rb["status"])
        for q, se in COMPARED:
            va, vb = ra.get(q), rb.get(q)
            row[f"{q}_a"], row[f"{q}_b"] = va, vb
            d = (vb - va) if va is not None and vb is not None else None
            row[f"{q}_diff"] = d
            if se and d is not None and ra.get(se) and rb.get(se):
                row[f"{q}_z"] = d / math.hypot(ra[se], rb[se])
        out.append(row)
    return dict(rows=out, only_a=sorted(set(a) - set(b)), only_b=sorted(set(b) - set(a)), overrides_a=ov_a,
                overrides_b=ov_b)
