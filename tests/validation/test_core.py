"""The validation framework: comparisons, the can-fail record, sabotage, the report and the CLI."""
import json
import subprocess
import sys

import numpy as np
import pytest

from validation import core, runner


@pytest.fixture
def toy_checks():
    """Register two toy checks (one true claim, one false) and remove them afterwards."""
    added = []

    def add(name, func):
        core.register(name, title=name.title(), claim=f"{name} claim", paper_ref="toy", order=900 + len(added))(func)
        added.append(name)

    def fair_coin(ctx):
        rng = ctx.rng("coin")
        n = ctx.size(2_000, 20_000)
        p_hat = rng.integers(0, 2, n).mean()
        se = np.sqrt(0.25 / n)
        ctx.compare("coin fraction", measured=p_hat, predicted=0.5, tolerance=4 * se,
                    derivation="4 binomial standard errors", wrong_prediction=0.6)
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.bar([0, 1], [1 - p_hat, p_hat])
        ctx.figure(fig)
        ctx.note(f"measured p = {p_hat:.4f}")

    def crashing(ctx):
        raise RuntimeError("boom")

    add("toy_coin", fair_coin)
    add("toy_crash", crashing)
    yield added
    for name in added:
        core.REGISTRY.pop(name, None)


def test_distance_metrics():
    assert core.distance("max_abs", [1.0, 2.0], [1.5, 2.0]) == 0.5
    assert core.distance("l1", [0.2, 0.8], [0.3, 0.7]) == pytest.approx(0.2)
    assert core.distance("max_rel", [1.1], [1.0]) == pytest.approx(0.1)
    assert core.distance("max_z", [1.3], [1.0], stderr=[0.1]) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="stderr"):
        core.distance("max_z", [1.0], [1.0])
    with pytest.raises(ValueError, match="metric"):
        core.distance("nope", [1.0], [1.0])


def test_check_passes_records_can_fail_and_sabotage_fails(toy_checks, tmp_path):
    res = core.run_check(core.REGISTRY["toy_coin"], quick=True, seed=1, fig_dir=tmp_path)
    assert res.passed and res.can_fail
    assert (tmp_path / "toy_coin.png").exists()
    sab = core.run_check(core.REGISTRY["toy_coin"], quick=True, seed=1, fig_dir=tmp_path, sabotage=True)
    assert not sab.passed and sab.comparisons[0].sabotaged


def test_same_seed_same_numbers(toy_checks, tmp_path):
    a = core.run_check(core.REGISTRY["toy_coin"], quick=True, seed=7, fig_dir=tmp_path)
    b = core.run_check(core.REGISTRY["toy_coin"], quick=True, seed=7, fig_dir=tmp_path)
    c = core.run_check(core.REGISTRY["toy_coin"], quick=True, seed=8, fig_dir=tmp_path)
    assert a.comparisons[0].measured == b.comparisons[0].measured != c.comparisons[0].measured


def test_crash_is_a_failure_with_traceback(toy_checks, tmp_path):
    res = core.run_check(core.REGISTRY["toy_crash"], quick=True, seed=0, fig_dir=tmp_path)
    assert not res.passed and "boom" in res.error


def test_tolerance_must_be_positive(toy_checks, tmp_path):
    ctx = core.Context(core.REGISTRY["toy_coin"], quick=True, seed=0, fig_dir=tmp_path)
    with pytest.raises(ValueError, match="tolerance"):
        ctx.compare("x", measured=1.0, predicted=1.0, tolerance=0.0, derivation="-")


def test_report_and_resume(toy_checks, tmp_path):
    out = tmp_path / "rep"
    results = runner.run(toy_checks, quick=True, seed=3, out_dir=out, fig_dir=out / "fig", progress=False)
    assert [r.passed for r in results] == [True, False]
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] == 1 and report["total"] == 2
    assert report["checks"][0]["comparisons"][0]["derivation"] == "4 binomial standard errors"
    md = (out / "report.md").read_text()
    assert "toy_coin" in md and "FAIL" in md and "boom" in md
    # resume: the finished (successful) check is loaded, not rerun
    saved = out / "checks" / "toy_coin.json"
    mtime = saved.stat().st_mtime_ns
    again = runner.run(toy_checks, quick=True, seed=3, out_dir=out, fig_dir=out / "fig", progress=False, resume=True)
    assert saved.stat().st_mtime_ns == mtime
    assert again[0].comparisons[0].measured == results[0].comparisons[0].measured
    assert "toy_coin" in runner.format_table(again)


def test_unknown_check_is_a_clear_error():
    with pytest.raises(SystemExit, match="unknown check"):
        runner.select(["no_such_check"])


def test_cli_help_and_list():
    out = subprocess.run([sys.executable, "-m", "validation", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--quick" in out.stdout and "--only" in out.stdout
    out = subprocess.run([sys.executable, "-m", "validation", "--list"], capture_output=True, text=True)
    assert out.returncode == 0
    bad = subprocess.run([sys.executable, "-m", "validation", "--only", "no_such_check"], capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown check" in bad.stderr


def test_cli_quick_run_writes_report_and_figure(tmp_path):
    """End to end through the CLI: one cheap real check in --quick mode."""
    out = tmp_path / "rep"
    proc = subprocess.run([sys.executable, "-m", "validation", "--quick", "--only", "rescaled_time", "--out", str(out),
                           "--no-progress"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1/1 checks passed" in proc.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["mode"] == "quick" and report["checks"][0]["passed"] and report["checks"][0]["can_fail"]
    assert (out / "figures" / "rescaled_time.png").stat().st_size > 10_000
    assert "rescaled_time" in (out / "report.md").read_text()
