"""The command line: usage, version, exit codes, errors on stderr, --out checked first, plain progress lines."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(args, cwd=None, timeout=600):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "validation", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


def test_help_shows_the_nets_subcommand_outputs_and_exit_codes():
    out = _run(["--help"])
    assert out.returncode == 0
    for text in ("nets RESULTS_DIR", "--quick", "--only", "--out", "--version", "exit codes", "comparisons.csv",
                 "2  bad input"):
        assert text in out.stdout, text


def test_version_and_list():
    out = _run(["--version"])
    assert out.returncode == 0 and out.stdout.strip().split()[-1][0].isdigit()
    out = _run(["--list"])
    assert out.returncode == 0 and "gibbs" in out.stdout and "cyclical_lr" in out.stdout


def test_bad_input_exits_2_with_one_line_on_stderr(tmp_path):
    (tmp_path / "afile").write_text("x")
    cases = [
        (["--only", "no_such_check", "--out", str(tmp_path / "o1")], "unknown check"),
        (["--seed", "-1"], "--seed must be >= 0"),
        (["--only", "gibbs", "--out", str(tmp_path / "afile" / "sub")], "--out"),
        (["--only", "gibbs", "--out", str(tmp_path / "afile")], "--out"),
    ]
    for args, pattern in cases:
        proc = _run(args, cwd=tmp_path, timeout=60)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stdout == ""
        assert pattern in proc.stderr.strip().splitlines()[-1], proc.stderr


def test_quick_run_writes_only_under_out_with_plain_progress(tmp_path):
    """End to end through the command line: one cheap real check in --quick mode, run from another
    directory, stderr not a terminal."""
    out = tmp_path / "rep"
    proc = _run(["--quick", "--only", "rescaled_time", "--out", str(out)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1/1 checks passed" in proc.stdout
    assert "[validation]" in proc.stderr and "rescaled_time: SGD β = 4" in proc.stderr
    assert "\r" not in proc.stderr and "\x1b[" not in proc.stderr  # plain lines, no control codes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]
    report = json.loads((out / "report.json").read_text())
    assert report["mode"] == "quick" and report["checks"][0]["status"] == "PASS"
    assert (out / "figures" / "rescaled_time.png").stat().st_size > 10_000
    assert "](figures/rescaled_time.png)" in (out / "report.md").read_text()
    assert (out / "comparisons.csv").read_text().count("\n") == 1 + len(report["checks"][0]["comparisons"])
