"""The prepared GPU scripts, dry-run on the CPU at toy size: every step runs, each file is written.

On a GPU machine the same scripts run the gpu tests, the paper-scale benchmark and the fig1 grid;
here the gpu tests are collected and skipped, the benchmark and the fig1 run are tiny.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(script, tmp_path, data_dir, *extra):
    out = tmp_path / "out"
    env = dict(os.environ, OUT=str(out), PYTHON=sys.executable, OMP_NUM_THREADS="1")
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / script), "--dry-run", *extra, str(data_dir)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    return proc, out


@pytest.fixture
def fashion_dir(tmp_path, make_idx):
    return make_idx(tmp_path / "fm", n_train=400, n_test=150, seed=1)


def test_gpu_check_dry_run(tmp_path, fashion_dir):
    proc, out = _run("gpu_check.sh", tmp_path, fashion_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr + (out / "log.txt").read_text()
    files = sorted(p.name for p in out.iterdir())
    assert files == ["bench.json", "env.txt", "fig1-results.tar.gz", "fig1.png", "gpu-tests.xml", "log.txt",
                     "nets_report.json", "summary.md"]                      # 8 files: what a device call returns
    suite = ET.parse(out / "gpu-tests.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    assert int(suite.get("tests")) >= 8 and int(suite.get("skipped")) == int(suite.get("tests"))  # no CUDA here
    bench = json.loads((out / "bench.json").read_text())
    assert bench["device"] == "cpu" and [r["batch_size"] for r in bench["rows"]] == [32, 64]
    assert "fig1" in json.loads((out / "nets_report.json").read_text())
    summary = (out / "summary.md").read_text()
    for step in ("env", "gpu-tests", "bench", "fig1-run", "fig1-validate"):
        assert f"| {step} | ok |" in summary
    assert "skipped" in summary and "convergence:" in summary


def test_gpu_fig1_dry_run(tmp_path, fashion_dir):
    proc, out = _run("gpu_fig1.sh", tmp_path, fashion_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr + (out / "log.txt").read_text()
    names = {p.name for p in out.iterdir()}
    assert {"fig1.png", "nets_report.json", "fig1-results.tar.gz", "log.txt", "summary.md"} <= names
    assert len(names) <= 8
    assert "step_path" in (out / "summary.md").read_text()          # the per-run table made it in
