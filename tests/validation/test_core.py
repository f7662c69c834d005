"""The validation framework: comparisons, the can-fail rule, sabotage, registration, outputs and resume."""
from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from validation import core, runner
from validation import io as vio


@pytest.fixture
def toy_checks():
    """Register toy checks (a true claim, a crash, one whose comparison cannot fail) and remove them afterwards."""

    class Coin(core.Check):
        name = "toy_coin"
        title = "Fair coin"
        claim = "a fair coin shows heads half the time"
        paper_ref = "toy"
        sabotage = "a coin with heads probability 0.6"
        order = 901

        def compute(self, ctx):
            ctx.phase("tossing")
            n = ctx.size(2_000, 20_000)
            return dict(p_hat=ctx.rng("coin").integers(0, 2, n).mean(), n=n, big=np.arange(5000.0))

        def compare(self, ctx, d):
            se = np.sqrt(0.25 / d["n"])
            ctx.compare("coin fraction", measured=d["p_hat"], predicted=0.5, tolerance=4 * se,
                        derivation="4 binomial standard errors", wrong_prediction=0.6, wrong_name="p = 0.6")
            ctx.compare("a long array", measured=d["big"], predicted=d["big"], tolerance=1e-9, derivation="identity",
                        wrong_prediction=d["big"] + 1, wrong_name="shifted")
            ctx.note(f"measured p = {d['p_hat']:.4f}")

        def draw(self, d, plt):
            fig, ax = plt.subplots()
            ax.bar([0, 1], [1 - d["p_hat"], d["p_hat"]])
            return fig

    class Crash(Coin):
        name = "toy_crash"
        order = 902

        def compute(self, ctx):
            raise RuntimeError("boom")

    class Weak(Coin):
        name = "toy_weak"
        order = 903

        def compare(self, ctx, d):
            ctx.compare("coin fraction, too wide", measured=d["p_hat"], predicted=0.5, tolerance=0.5,
                        derivation="a band that nothing can leave", wrong_prediction=0.6, wrong_name="p = 0.6")

    names = ["toy_coin", "toy_crash", "toy_weak"]
    yield {n: core.REGISTRY[n] for n in names}
    for n in names:
        core.REGISTRY.pop(n, None)


def test_distance_metrics():
    assert core.distance("max_abs", [1.0, 2.0], [1.5, 2.0]) == 0.5
    assert core.distance("l1", [0.2, 0.8], [0.3, 0.7]) == pytest.approx(0.2)
    assert core.distance("max_rel", [1.1], [1.0]) == pytest.approx(0.1)
    assert core.distance("max_z", [1.3], [1.0], stderr=[0.1]) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="stderr"):
        core.distance("max_z", [1.0], [1.0])
    with pytest.raises(ValueError, match="metric"):
        core.distance("nope", [1.0], [1.0])


def test_check_passes_rejects_and_fails_under_sabotage(toy_checks):
    coin = toy_checks["toy_coin"]()
    res = core.run_check(coin, quick=True, seed=1)
    assert res.passed and res.can_fail and res.n_rejecting == 2
    assert "tossing" in res.phases
    sab = core.evaluate(coin, res.data, quick=True, seed=1, sabotage=True)
    assert not sab.passed and all(c.sabotaged and not c.passed for c in sab.comparisons)


def test_a_comparison_that_cannot_fail_fails_the_check(toy_checks):
    res = core.run_check(toy_checks["toy_weak"](), quick=True, seed=1)
    assert all(c.passed for c in res.comparisons)
    assert not res.passed and res.status == "FAIL (cannot fail)" and res.n_rejecting == 0


def test_same_seed_same_numbers(toy_checks):
    coin = toy_checks["toy_coin"]()
    a, b, c = (core.run_check(coin, quick=True, seed=s).data["p_hat"] for s in (7, 7, 8))
    assert a == b != c


def test_crash_is_a_failure_with_traceback(toy_checks):
    res = core.run_check(toy_checks["toy_crash"](), quick=True, seed=0)
    assert not res.passed and res.status == "ERROR" and "boom" in res.error


def test_compare_needs_a_positive_tolerance_and_a_named_wrong_prediction(toy_checks):
    ctx = core.Context(toy_checks["toy_coin"](), quick=True, seed=0)
    with pytest.raises(ValueError, match="tolerance"):
        ctx.compare("x", measured=1.0, predicted=1.0, tolerance=0.0, derivation="-", wrong_prediction=2.0,
                    wrong_name="two")
    with pytest.raises(ValueError, match="wrong_name"):
        ctx.compare("x", measured=1.0, predicted=1.0, tolerance=1.0, derivation="-", wrong_prediction=2.0,
                    wrong_name="")
    with pytest.raises(TypeError):
        ctx.compare("x", measured=1.0, predicted=1.0, tolerance=1.0, derivation="-")


def test_registration_rules(toy_checks):
    with pytest.raises(TypeError, match="sabotage"):
        class NoSabotage(core.Check):  # noqa: F841
            name = "toy_no_sabotage"
            title, claim, paper_ref = "t", "c", "p"
    with pytest.raises(ValueError, match="registered twice"):
        class Twice(core.Check):  # noqa: F841
            name = "toy_coin"
            title, claim, paper_ref, sabotage = "t", "c", "p", "s"
    assert "toy_no_sabotage" not in core.REGISTRY


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_outputs_under_out_with_relative_links_csv_and_file_modes(toy_checks, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "rep"
    (out / "checks").mkdir(parents=True)
    stale = out / "checks" / ".toy_coin.json.abc123.tmp"
    stale.write_text("half a file")
    old = os.umask(0o022)
    try:
        results = runner.run(["toy_coin", "toy_crash"], quick=True, seed=3, out_dir=out, progress=False)
    finally:
        os.umask(old)
    assert [r.status for r in results] == ["PASS", "ERROR"]
    assert not stale.exists(), "stale temporaries are removed at start"
    assert not (tmp_path / "figures").exists(), "nothing is written outside --out"
    fig = out / "figures" / "toy_coin.png"
    assert fig.stat().st_size > 1000
    for p in (fig, out / "report.json", out / "report.md", out / "comparisons.csv", out / "checks" / "toy_coin.json",
              out / "checks" / "toy_coin.npz"):
        assert _mode(p) == 0o644, p
    md = (out / "report.md").read_text()
    assert "](figures/toy_coin.png)" in md and str(tmp_path) not in md.split("\n## ")[1]
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] == 1 and report["total"] == 2 and report["comparisons_rejecting_wrong"] == 2
    coin = report["checks"][0]
    assert coin["comparisons"][0]["derivation"] == "4 binomial standard errors"
    assert "measured" in coin["comparisons"][0] and "measured" not in coin["comparisons"][1]  # long arrays: npz only
    arrays = vio.load_npz(out / "checks" / "toy_coin.npz")
    assert arrays["comparison1.measured"] == "=big" and arrays["big"].shape == (5000,)
    import csv
    rows = list(csv.DictReader((out / "comparisons.csv").open()))
    assert list(rows[0]) == list(runner.CSV_COLUMNS)
    assert rows[0]["check"] == "toy_coin" and rows[0]["passed"] == "True" and rows[0]["rejected"] == "True"
    assert rows[0]["wrong_prediction"] == "p = 0.6"
    pd = pytest.importorskip("pandas")
    df = runner.load_comparisons(out)
    assert isinstance(df, pd.DataFrame) and list(df.columns) == list(runner.CSV_COLUMNS) and len(df) == 2


def test_fig_dir_elsewhere_only_when_asked(toy_checks, tmp_path):
    out, figs = tmp_path / "rep", tmp_path / "committed" / "figures"
    runner.run(["toy_coin"], quick=True, seed=3, out_dir=out, fig_dir=figs, progress=False)
    assert (figs / "toy_coin.png").exists() and not (out / "figures" / "toy_coin.png").exists()
    assert "](../committed/figures/toy_coin.png)" in (out / "report.md").read_text()


def test_resume_reuses_finished_and_recomputes_corrupt(toy_checks, tmp_path, capsys):
    out = tmp_path / "rep"
    first = runner.run(["toy_coin"], quick=True, seed=3, out_dir=out, progress=False)
    saved = out / "checks" / "toy_coin.json"
    mtime = saved.stat().st_mtime_ns
    again = runner.run(["toy_coin"], quick=True, seed=3, out_dir=out, progress=False, resume=True)
    assert saved.stat().st_mtime_ns == mtime
    assert again[0].comparisons[0].distance == first[0].comparisons[0].distance
    text = saved.read_text()
    saved.write_text(text[: len(text) // 2])  # truncated, as by a full disk or a kill
    third = runner.run(["toy_coin"], quick=True, seed=3, out_dir=out, progress=False, resume=True)
    assert third[0].passed
    assert (out / "checks" / "toy_coin.json.corrupt").read_text() == text[: len(text) // 2]
    assert json.loads(saved.read_text())["status"] == "PASS"
    err = capsys.readouterr().err
    assert "toy_coin.json" in err and "corrupt" in err


def test_unknown_check_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown check"):
        runner.select(["no_such_check"])


def test_atomic_write_leaves_no_temporary_on_failure(tmp_path):
    def boom(fh):
        fh.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        vio.atomic_write_bytes(tmp_path / "x.bin", boom)
    assert list(tmp_path.iterdir()) == []


def test_load_npz_names_the_bad_file(tmp_path):
    bad = tmp_path / "d.npz"
    bad.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ValueError, match="d.npz"):
        vio.load_npz(bad)


def test_the_documented_example_check_runs_and_passes(tmp_path):
    """docs/architecture.md's 'Adding a check' example, executed as written."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()
    code = re.search(r"## Adding a check.*?```python\n(.*?)```", text, re.S).group(1)
    namespace = {"__name__": "validation.checks.my_claim"}
    try:
        exec(compile(code, "docs/architecture.md", "exec"), namespace)
        check = core.REGISTRY["my_claim"]()
        res = core.run_check(check, quick=True, seed=0)
        assert res.passed, (res.error, [(c.distance, c.tolerance, c.wrong_distance) for c in res.comparisons])
        runner.draw_figure(check, res, tmp_path)
        assert res.error is None and (tmp_path / "my_claim.png").exists()
    finally:
        core.REGISTRY.pop("my_claim", None)
