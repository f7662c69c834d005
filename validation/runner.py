"""Run registered checks and write everything under one output directory.

    OUT/report.md            the report (figures linked relatively)
    OUT/report.json          compact results: every comparison's distance, tolerance, verdicts, derivation
    OUT/comparisons.csv      one tidy row per comparison
    OUT/checks/NAME.json     one check's result (what ``--resume`` reads back)
    OUT/checks/NAME.npz      its data: every array ``compute`` returned, and each comparison's arrays
    OUT/figures/NAME.png     its figure (``fig_dir`` elsewhere only when asked for)

Files are written atomically (``validation.io``). With ``resume`` a check whose saved result has the
same mode and seed is not run again; a saved result that cannot be read is set aside as
``NAME.json.corrupt`` and the check is recomputed.
"""
from __future__ import annotations

import csv
import io
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from validation import io as vio
from validation.core import Check, CheckResult, run_check

__all__ = ["load_checks", "select", "run", "format_table", "markdown_report", "CSV_COLUMNS", "load_comparisons",
           "draw_figure", "save_check"]

CSV_COLUMNS = ("check", "comparison", "metric", "distance", "tolerance", "ratio", "passed", "wrong_prediction",
               "wrong_distance", "rejected", "check_status", "mode", "seed")


def load_checks() -> dict[str, type[Check]]:
    from validation.checks import load

    return load()


def select(names: Optional[Iterable[str]]) -> list[type[Check]]:
    """The registered checks named (all of them, in report order, when ``names`` is empty);
    ValueError naming the unknown ones and listing the available."""
    checks = load_checks()
    if not names:
        return list(checks.values())
    unknown = [n for n in names if n not in checks]
    if unknown:
        raise ValueError(f"unknown check(s): {', '.join(unknown)}; available: {', '.join(checks)}")
    return [checks[n] for n in names]


def _fmt(x: float) -> str:
    x = float(x)
    if x == 0 or (1e-3 <= abs(x) < 1e4):
        return f"{x:.4g}"
    return f"{x:.3e}"


def summary_rows(results: list[CheckResult]) -> list[tuple[str, ...]]:
    rows = []
    for r in results:
        w = r.worst
        rows.append((r.name, r.status, f"{r.n_rejecting}/{len(r.comparisons)}", w.label if w else "-",
                     _fmt(w.distance) if w else "-", _fmt(w.tolerance) if w else "-", f"{r.wall_time:.1f}",
                     f"{r.cpu_time:.1f}"))
    return rows


HEADER = ("check", "status", "rejects wrong", "worst comparison", "distance", "tolerance", "wall [s]", "cpu [s]")


def format_table(results: list[CheckResult]) -> str:
    rows = [HEADER] + summary_rows(results)
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _rel_link(path: Optional[str], out_dir: Path) -> Optional[str]:
    if not path:
        return None
    return Path(os.path.relpath(Path(path).resolve(), out_dir.resolve())).as_posix()


def markdown_report(results: list[CheckResult], *, quick: bool, seed: int, wall: float, out_dir: Path,
                    load: str = "") -> str:
    n_pass = sum(r.passed for r in results)
    n_cmp = sum(len(r.comparisons) for r in results)
    n_rej = sum(r.n_rejecting for r in results)
    out = [
        "# Theory validation report",
        "",
        f"{n_pass}/{len(results)} checks passed · {n_rej}/{n_cmp} comparisons reject their wrong prediction · mode: "
        f"{'quick' if quick else 'default'} · seed {seed} · wall time {wall:.0f} s{load} · {platform.node() or 'host'} · "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "A check passes when every comparison is within its tolerance and every comparison's data reject its named "
        "wrong prediction (a comparison that could not have failed is a failure).",
        "",
        "| check | status | rejects wrong | worst comparison | distance | tolerance | wall [s] | cpu [s] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in summary_rows(results):
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    for r in results:
        out += [f"## {r.title} (`{r.name}`): {r.status}", "", f"**Claim.** {r.claim}", "", f"**Paper.** {r.paper_ref}",
                "", f"**Sabotage** (what a sabotaged run grades instead): {r.sabotage}", ""]
        link = _rel_link(r.figure, out_dir)
        if link:
            out += [f"![{r.name}]({link})", ""]
        if r.comparisons:
            out += ["| comparison | metric | distance | tolerance | pass | wrong prediction | its distance | rejected "
                    "| tolerance derivation |", "|---|---|---|---|---|---|---|---|---|"]
            for c in r.comparisons:
                out.append(f"| {c.label} | {c.metric} | {_fmt(c.distance)} | {_fmt(c.tolerance)} | "
                           f"{'yes' if c.passed else 'NO'} | {c.wrong_name} | {_fmt(c.wrong_distance)} | "
                           f"{'yes' if c.wrong_rejected else 'NO'} | {c.derivation} |")
            out.append("")
        out += [f"- {n}" for n in r.notes]
        if r.notes:
            out.append("")
        if r.phases:
            out += ["Time by phase: " + ", ".join(f"{k} {v:.1f} s" for k, v in r.phases.items()), ""]
        if r.error:
            out += ["```", r.error.strip(), "```", ""]
    return "\n".join(out)


def comparison_rows(results: list[CheckResult], *, quick: bool, seed: int) -> list[dict]:
    rows = []
    for r in results:
        for c in r.comparisons:
            rows.append(dict(check=r.name, comparison=c.label, metric=c.metric, distance=c.distance,
                             tolerance=c.tolerance, ratio=c.distance / c.tolerance, passed=c.passed,
                             wrong_prediction=c.wrong_name, wrong_distance=c.wrong_distance, rejected=c.wrong_rejected,
                             check_status=r.status, mode="quick" if quick else "default", seed=seed))
    return rows


def _csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def load_comparisons(path: str | os.PathLike):
    """The comparisons of a validation run (``OUT`` or ``OUT/comparisons.csv``) as a pandas DataFrame
    (pandas is the optional ``tables`` extra)."""
    p = Path(path)
    if p.suffix != ".csv":
        p = p / "comparisons.csv"
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist (python -m validation --out DIR writes DIR/comparisons.csv)")
    import pandas as pd

    return pd.read_csv(p)


def _npz_arrays(result: CheckResult) -> dict:
    """A check's data and its comparisons' arrays; a comparison array that is one of the data arrays is
    stored once, under the data's name, and referred to as the string '=<name>'."""
    arrays, by_id = {}, {}
    for k, v in result.data.items():
        arrays[k] = np.asarray(v)
        if isinstance(v, np.ndarray):
            by_id[id(v)] = k
    for i, c in enumerate(result.comparisons):
        for field in ("measured", "predicted", "stderr", "wrong_prediction"):
            v = getattr(c, field)
            if v is not None:
                arrays[f"comparison{i}.{field}"] = np.asarray("=" + by_id[id(v)]) if id(v) in by_id else v
    return arrays


def save_check(result: CheckResult, out_dir: Path) -> None:
    """checks/NAME.npz (data) and checks/NAME.json (the compact result), atomically, npz first."""
    per_check = Path(out_dir) / "checks"
    if result.data:
        vio.save_npz(per_check / f"{result.name}.npz", _npz_arrays(result))
    vio.atomic_write_text(per_check / f"{result.name}.json", json.dumps(result.to_json(), indent=1))


def draw_figure(check: Check, result: CheckResult, fig_dir: Path) -> None:
    """Draw the check's figure from its data into fig_dir/NAME.png; a drawing error fails the check."""
    import traceback

    from validation.plotting import pyplot

    try:
        fig = check.draw(result.data, pyplot())
        path = vio.save_figure(fig, Path(fig_dir) / f"{check.name}.png")
        result.figure = str(path)
    except Exception as exc:  # noqa: BLE001 - reported in the result
        result.error = f"drawing failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"


def _load_saved(path: Path, quick: bool, seed: int) -> Optional[CheckResult]:
    """A finished result saved at ``path`` for this mode and seed, or None. An unreadable file is set
    aside as ``*.corrupt`` (with its .npz) and None is returned: the check is recomputed."""
    if not path.exists():
        return None
    try:
        old = CheckResult.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        bad = vio.set_aside_corrupt(path)
        npz = path.with_suffix(".npz")
        if npz.exists():
            vio.set_aside_corrupt(npz)
        print(f"warning: {path} is not a readable result ({type(exc).__name__}: {exc}); kept as {bad.name}, "
              "recomputing the check", file=sys.stderr)
        return None
    if old.quick == quick and old.seed == seed and old.error is None:
        return old
    return None


def machine_load() -> str:
    """' · load 1.2/2 cores' from the 1-minute load average, '' where the OS does not tell."""
    try:
        return f" · load {os.getloadavg()[0]:.1f}/{os.cpu_count()} cores"
    except (AttributeError, OSError):
        return ""


def run(
    names: Optional[Iterable[str]] = None,
    *,
    quick: bool = False,
    seed: int = 0,
    out_dir: Path = Path("validation-report"),
    fig_dir: Optional[Path] = None,
    resume: bool = False,
    progress: bool = True,
) -> list[CheckResult]:
    """Run the selected checks (all by default) and write the outputs under ``out_dir`` (figures in
    ``fig_dir``, by default ``out_dir/figures``). Returns the results in report order."""
    from nets.progress import Progress

    checks = select(names)
    out_dir = Path(out_dir)
    fig_dir = Path(fig_dir) if fig_dir is not None else out_dir / "figures"
    for d in (out_dir, out_dir / "checks", fig_dir):
        d.mkdir(parents=True, exist_ok=True)
    vio.remove_stale_temporaries(out_dir, fig_dir)
    load_before = machine_load()
    results: list[CheckResult] = []
    t0 = time.perf_counter()
    bar = Progress("validation", len(checks), unit="check", enabled=progress, interval=0.0)
    for cls in checks:
        check = cls()
        saved = _load_saved(out_dir / "checks" / f"{check.name}.json", quick, seed) if resume else None
        if saved is not None:
            results.append(saved)
            bar.update(1, resumed=check.name)
            continue
        bar.phase(f"{check.name}: starting")
        res = run_check(check, quick=quick, seed=seed, progress=lambda text, n=check.name: bar.phase(f"{n}: {text}"))
        if res.error is None:
            bar.phase(f"{check.name}: figure")
            draw_figure(check, res, fig_dir)
        save_check(res, out_dir)
        results.append(res)
        bar.update(1, **{check.name: res.status})
    wall = time.perf_counter() - t0
    load = load_before + (f" at start, {machine_load()[3:]} at the end" if load_before else "")
    bar.close(f"{sum(r.passed for r in results)}/{len(results)} checks passed in {wall:.0f} s")
    report = {
        "mode": "quick" if quick else "default",
        "seed": seed,
        "wall_time": wall,
        "cpu_time": sum(r.cpu_time for r in results),
        "load": load.strip(" ·"),
        "passed": sum(r.passed for r in results),
        "total": len(results),
        "comparisons": sum(len(r.comparisons) for r in results),
        "comparisons_rejecting_wrong": sum(r.n_rejecting for r in results),
        "checks": [r.to_json() for r in results],
    }
    vio.atomic_write_text(out_dir / "report.json", json.dumps(report, indent=1))
    vio.atomic_write_text(out_dir / "comparisons.csv", _csv_text(comparison_rows(results, quick=quick, seed=seed)))
    vio.atomic_write_text(out_dir / "report.md", markdown_report(results, quick=quick, seed=seed, wall=wall,
                                                                 out_dir=out_dir, load=load))
    return results

