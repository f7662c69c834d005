"""Executors: local (sequential) and Dask on a loopback LocalCluster give the same results."""
from __future__ import annotations

import json

import pytest

from nets.executor import LocalExecutor, execute_task
from nets.runner import make_tasks, run_experiment
from nets import experiments as E
from nets.train import RESULT


def test_local_executor_and_task_skip(tiny_root, tmp_path):
    plan = E.plan("fig1", "quick")
    tasks = make_tasks(plan.runs, tmp_path, device="cpu", data_root=str(tiny_root))
    assert len(tasks) == 2 and all(len(t["configs"]) == 2 for t in tasks)   # grouped by batch size
    with LocalExecutor() as ex:
        out = ex.map(execute_task, tasks)
    assert sorted(s for t in out for _, s in t) == ["completed"] * 4
    assert make_tasks(plan.runs, tmp_path, device="cpu") == []             # all finished: nothing to do


def test_dask_executor_loopback(tiny_root, tmp_path):
    pytest.importorskip("dask.distributed")
    from nets.executor import DaskExecutor
    with DaskExecutor(n_workers=1, processes=False) as ex:
        s = run_experiment("fig1", "quick", tmp_path / "dask", data_root=str(tiny_root), executor=ex)
    assert s["counts"]["completed"] == 4
    ref = run_experiment("fig1", "quick", tmp_path / "local", data_root=str(tiny_root))
    for a, b in zip(s["runs"], ref["runs"]):
        ra = json.loads((tmp_path / "dask" / "fig1" / "runs" / a["name"] / RESULT).read_text())
        rb = json.loads((tmp_path / "local" / "fig1" / "runs" / b["name"] / RESULT).read_text())
        assert ra["history"]["train_loss"] == rb["history"]["train_loss"]   # same code, same seeds: identical
