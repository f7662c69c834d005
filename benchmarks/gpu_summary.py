"""One-page summary (``summary.md``) of a ``benchmarks/gpu_check.sh`` or ``gpu_fig1.sh`` run, from the
files it wrote: the steps' exit codes and times, the gpu tests (JUnit XML), the benchmark JSON and the
statements of ``python -m validation nets``."""
from __future__ import annotations

import argparse
import json
import xml.etree.ElementTree as ET
from pathlib import Path


def _steps(path: Path) -> list[str]:
    rows = ["| step | exit | seconds |", "|---|---|---|"]
    if path.is_file():
        for line in path.read_text().splitlines():
            name, rc, secs = line.split()
            rows.append(f"| {name} | {'ok' if rc == '0' else ('timed out' if rc in ('124', '137') else rc)} | {secs} |")
    return rows


def _tests(path: Path) -> list[str]:
    if not path.is_file():
        return ["gpu tests: no JUnit file (the step did not run to the end)"]
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        return [f"gpu tests: unreadable JUnit file ({exc})"]
    suites = [root] if root.tag == "testsuite" else list(root)
    tot = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    lines = [f"gpu tests: {tot['tests']} collected, {tot['tests'] - tot['failures'] - tot['errors'] - tot['skipped']} "
             f"passed, {tot['failures']} failed, {tot['errors']} errors, {tot['skipped']} skipped"]
    for case in root.iter("testcase"):
        for kind in ("failure", "error"):
            el = case.find(kind)
            if el is not None:
                msg = (el.get("message") or "").splitlines()[0][:300] if el.get("message") else ""
                lines.append(f"- {kind}: `{case.get('classname')}.{case.get('name')}`: {msg}")
    return lines


def _bench(path: Path) -> list[str]:
    if not path.is_file():
        return ["benchmark: no JSON (the step did not run to the end)"]
    b = json.loads(path.read_text())
    lines = [f"benchmark on {b.get('device_name', b.get('device'))}, {b.get('data')} n_train={b.get('n_train')}, "
             f"width {b.get('width')}, K={b.get('k')}:", "",
             "| S | step path | ms/step (K runs) | grid samples/s | x dataloader | matches eager | graphs |",
             "|---|---|---|---|---|---|---|"]
    for row in b.get("rows", []):
        for path_ in ("eager", "cuda-graph", "compiled"):
            if f"{path_}_step_s" in row:
                lines.append(f"| {row['batch_size']} | {path_} | {row[f'{path_}_step_s'] * 1e3:.3f} | "
                             f"{row[f'{path_}_grid_samples_per_s']:.0f} | "
                             f"{row[f'{path_}_grid_samples_per_s'] / row['dataloader_samples_per_s']:.1f} | "
                             f"{row[f'{path_}_matches_eager']} | {row.get(f'{path_}_graph_captures', 0)} |")
    if "fig1_grid_training_estimate_s" in b:
        lines.append("")
        lines.append(f"paper-scale fig1 grid estimate: training {b['fig1_grid_training_estimate_s'] / 60:.1f} min one "
                     f"group after another (by S: " + ", ".join(f"{k}: {v / 60:.1f} min" for k, v in
                                                             b["fig1_grid_training_by_batch_size_s"].items()) + ")")
    if "fig1_measure_grid_s" in b:
        lines.append(f"measurement part: {b['fig1_measure_grid_s'] / 60:.1f} min for {b.get('fig1_runs')} runs "
                     f"(end of run {b['fig1_measure_final_s']:.1f} s, tracked {b['fig1_measure_tracked_s']:.1f} s each)")
    if "concurrency_sequential_s" in b:
        lines.append(f"groups one after another {b['concurrency_sequential_s']:.1f} s vs concurrently "
                     f"{b['concurrency_concurrent_s']:.1f} s")
    if "lanczos" in b:
        lines.append(f"Lanczos: {b['lanczos']}")
    return lines


def _statements(path: Path) -> list[str]:
    if not path.is_file():
        return ["validation nets: no report"]
    rep = json.loads(path.read_text())
    lines = []
    for name, r in rep.items():
        lines.append(f"**{name}** ({r.get('n_runs')} runs; {r.get('scale', '')}):")
        lines += [f"- {s['statement']}" for s in r.get("statements", [])]
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, required=True, help="the folder the run wrote")
    p.add_argument("--status", type=Path, required=True, help="file of 'step exit seconds' lines")
    p.add_argument("--title", default="GPU check")
    p.add_argument("--device", default="cuda")
    p.add_argument("--extra", type=Path, default=None, help="a text file to include verbatim (e.g. a line per run)")
    a = p.parse_args(argv)
    env = (a.out / "env.txt").read_text().strip() if (a.out / "env.txt").is_file() else ""
    ran = {line.split()[0] for line in a.status.read_text().splitlines()} if a.status.is_file() else set()
    parts = [f"# {a.title}", ""] + (["```", env, "```", ""] if env else []) + [*_steps(a.status), ""]
    if "gpu-tests" in ran:
        parts += [*_tests(a.out / "gpu-tests.xml"), ""]
    if "bench" in ran:
        parts += [*_bench(a.out / "bench.json"), ""]
    if a.extra is not None and a.extra.is_file():
        parts += ["```", a.extra.read_text().rstrip(), "```", ""]
    parts += [*_statements(a.out / "nets_report.json"), ""]
    (a.out / "summary.md").write_text("\n".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
