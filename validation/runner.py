"""Run registered checks, write ``report.md`` + ``report.json``, print the summary table."""
from __future__ import annotations

import importlib
import json
import platform
import time
from pathlib import Path
from typing import Iterable

from validation.core import REGISTRY, Check, CheckResult, atomic_write_text, run_check

# Modules that register checks when imported (order = order in the report).
CHECK_MODULES = (
    "validation.checks_equilibrium",
    "validation.checks_dynamics",
    "validation.checks_geometry",
)


def load_checks() -> dict[str, Check]:
    for mod in CHECK_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
    return dict(sorted(REGISTRY.items(), key=lambda kv: kv[1].order))


def select(names: Iterable[str] | None) -> list[Check]:
    checks = load_checks()
    if not names:
        return list(checks.values())
    unknown = [n for n in names if n not in checks]
    if unknown:
        raise SystemExit(f"unknown check(s): {', '.join(unknown)}; available: {', '.join(checks)}")
    return [checks[n] for n in names]


def _fmt(x: float) -> str:
    if x == 0 or (1e-3 <= abs(x) < 1e4):
        return f"{x:.4g}"
    return f"{x:.3e}"


def summary_rows(results: list[CheckResult]) -> list[tuple[str, ...]]:
    rows = []
    for r in results:
        w = r.worst
        status = "PASS" if r.passed else ("ERROR" if r.error else "FAIL")
        rows.append((
            r.name,
            status,
            str(len(r.comparisons)),
            w.label if w else "-",
            _fmt(w.distance) if w else "-",
            _fmt(w.tolerance) if w else "-",
            f"{r.wall_time:.1f}",
        ))
    return rows


HEADER = ("check", "status", "#cmp", "worst comparison", "distance", "tolerance", "time [s]")


def format_table(results: list[CheckResult]) -> str:
    rows = [HEADER] + summary_rows(results)
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_report(results: list[CheckResult], *, quick: bool, seed: int, wall: float, fig_dir: Path, out_dir: Path) -> str:
    n_pass = sum(r.passed for r in results)
    out = [
        "# Theory validation report",
        "",
        f"{n_pass}/{len(results)} checks passed · mode: {'quick' if quick else 'default'} · seed {seed} · "
        f"wall time {wall:.0f} s · {platform.node() or 'host'} · {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "| check | status | worst comparison | distance | tolerance | time [s] |",
        "|---|---|---|---|---|---|",
    ]
    for row in summary_rows(results):
        out.append(f"| {row[0]} | {row[1]} | {row[3]} | {row[4]} | {row[5]} | {row[6]} |")
    out.append("")
    for r in results:
        out += [f"## {r.title} (`{r.name}`): {'PASS' if r.passed else 'FAIL'}", "", f"**Claim.** {r.claim}", "",
                f"**Paper.** {r.paper_ref}", ""]
        if r.figure:
            try:
                rel = Path(r.figure).resolve().relative_to(out_dir.resolve())
            except ValueError:
                rel = Path(r.figure).resolve()
            out += [f"![{r.name}]({rel.as_posix() if not rel.is_absolute() else rel})", ""]
        if r.comparisons:
            out += ["| comparison | metric | distance | tolerance | pass | tolerance derivation |", "|---|---|---|---|---|---|"]
            for c in r.comparisons:
                out.append(
                    f"| {c.label} | {c.metric} | {_fmt(c.distance)} | {_fmt(c.tolerance)} | "
                    f"{'yes' if c.passed else 'NO'} | {c.derivation} |"
                )
            out.append("")
        for n in r.notes:
            out.append(f"- {n}")
        if r.notes:
            out.append("")
        if r.error:
            out += ["```", r.error.strip(), "```", ""]
    return "\n".join(out)


def run(
    names: Iterable[str] | None = None,
    *,
    quick: bool = False,
    seed: int = 0,
    out_dir: Path = Path("validation-report"),
    fig_dir: Path = Path("figures"),
    resume: bool = False,
    progress: bool = True,
    sabotage: bool = False,
) -> list[CheckResult]:
    """Run the selected checks (all by default) and write the report.

    Each finished check is saved atomically to ``out_dir/checks/<name>.json``; with ``resume`` a
    check whose saved result has the same mode and seed is not run again."""
    from tqdm.auto import tqdm

    checks = select(names)
    out_dir, fig_dir = Path(out_dir), Path(fig_dir)
    per_check = out_dir / "checks"
    results: list[CheckResult] = []
    t0 = time.perf_counter()
    bar = tqdm(checks, desc="validation", unit="check", disable=not progress)
    for check in bar:
        bar.set_postfix_str(check.name)
        saved = per_check / f"{check.name}.json"
        if resume and saved.exists():
            old = CheckResult.from_json(json.loads(saved.read_text()))
            if old.quick == quick and old.seed == seed and old.error is None:
                results.append(old)
                continue
        res = run_check(check, quick=quick, seed=seed, fig_dir=fig_dir, sabotage=sabotage)
        results.append(res)
        if not sabotage:
            atomic_write_text(saved, json.dumps(res.to_json(), indent=1))
    wall = time.perf_counter() - t0
    if not sabotage:
        report = {
            "mode": "quick" if quick else "default",
            "seed": seed,
            "wall_time": wall,
            "passed": sum(r.passed for r in results),
            "total": len(results),
            "checks": [r.to_json() for r in results],
        }
        atomic_write_text(out_dir / "report.json", json.dumps(report, indent=1))
        atomic_write_text(out_dir / "report.md", markdown_report(results, quick=quick, seed=seed, wall=wall,
                                                                 fig_dir=fig_dir, out_dir=out_dir))
    return results
