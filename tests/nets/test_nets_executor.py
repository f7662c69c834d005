"""Executors: local (sequential) and Dask on a loopback LocalCluster give the same results."""
from __future__ import annotations

import json

import pytest

from nets.executor import LocalExecutor, execute_task
from nets.runner import make_tasks
from nets import experiments as E
from nets.train import RESULT


def test_local_executor_and_task_skip(tiny_root, tmp_path):
    plan = E.plan("fig1", "quick")
    tasks = make_tasks(plan.runs, tmp_path, device="cpu", data_root=str(tiny_root))
    # grouped by batch size: S = 32 holds 2 lrs and the extra seed of (0.025, 32), S = 128 holds 2 lrs
    assert len(tasks) == 2 and sorted(len(t["configs"]) for t in tasks) == [2, 3]
    with LocalExecutor() as ex:
        out = ex.map(execute_task, tasks)
    assert sorted(s for t in out for _, s in t) == ["completed"] * 5
    assert make_tasks(plan.runs, tmp_path, device="cpu") == []             # all finished: nothing to do


def _tiny_tasks(run_dir, data_root):
    """Two one-run tasks of `nets train` size (256 samples, 1 epoch), one torch thread each."""
    from nets.train import RunConfig
    cfgs = [RunConfig(name=f"r{i}", model="mlp4_bn", model_kw={"width": 16}, dataset="fashion-mnist",
                      data_kw={"val_size": 64, "train_size": 256}, lr=lr, batch_size=32, epochs=1, seed=i)
            for i, lr in enumerate((0.05, 0.1))]
    return [dict(configs=[c.to_dict()], out_dirs=[str(run_dir / c.name)], device="cpu", data_root=str(data_root),
                 batched=False, threads=1) for c in cfgs]


def test_dask_executor_loopback(tiny_root, tmp_path):
    """A real LocalCluster: worker processes (not this one) talking TCP on 127.0.0.1; the runs give
    the same losses as in-process execution."""
    pytest.importorskip("dask.distributed")
    import os
    from nets.executor import DaskExecutor
    with DaskExecutor(n_workers=2) as ex:                      # default: processes=True
        assert ex.client.scheduler.address.startswith("tcp://127.0.0.1:")
        workers = ex.client.scheduler_info()["workers"]
        assert len(workers) == 2 and all(w.startswith("tcp://127.0.0.1:") for w in workers)
        pids = ex.client.run(os.getpid)
        assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()
        out = ex.map(execute_task, _tiny_tasks(tmp_path / "dask", tiny_root))
    assert out == [[("r0", "completed")], [("r1", "completed")]]
    with LocalExecutor() as ex:
        ref = ex.map(execute_task, _tiny_tasks(tmp_path / "local", tiny_root))
    assert ref == out
    for name in ("r0", "r1"):
        ra = json.loads((tmp_path / "dask" / name / RESULT).read_text())
        rb = json.loads((tmp_path / "local" / name / RESULT).read_text())
        assert len(ra["history"]["train_loss"]) == 1
        assert ra["history"]["train_loss"] == rb["history"]["train_loss"]   # same code, same seeds: identical


def test_data_cache_thread_safe(monkeypatch):
    """Threads asking for different datasets at once each get their own (check, clear, load and
    read are one step under the lock), and one dataset is loaded once however many threads want it."""
    import threading
    import time
    from nets import executor as X
    from nets import train as T
    from nets.train import RunConfig
    loads = []

    def fake_load(cfg, device, data_root):
        loads.append(cfg.data_kw["train_size"])
        time.sleep(0.01)                                         # widen the race window
        return ("data", cfg.data_kw["train_size"])

    monkeypatch.setattr(T, "load_data", fake_load)
    monkeypatch.setattr(X, "_DATA_CACHE", {})
    cfgs = [RunConfig(data_kw={"train_size": k}) for k in (1, 2)]
    got, errors = [], []
    barrier = threading.Barrier(8)

    def worker(i):
        try:
            barrier.wait()
            cfg = cfgs[i % 2]
            for _ in range(5):
                got.append((cfg.data_kw["train_size"], X._cached_data(cfg, "cpu", None)))
        except Exception as exc:                                  # a KeyError here is the unlocked race
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(got) == 40
    assert all(d == ("data", k) for k, d in got)
    # same key from many threads at once: a single load
    loads.clear()
    monkeypatch.setattr(X, "_DATA_CACHE", {})
    barrier = threading.Barrier(8)
    threads = [threading.Thread(target=lambda: (barrier.wait(), X._cached_data(cfgs[0], "cpu", None)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == [1]


def test_cli_dask_executor_uses_worker_processes(monkeypatch, tmp_path, capsys):
    """`run --executor dask --workers N` builds a LocalCluster of N worker *processes*; threads only
    with --dask-threads; contradictory options are errors (exit 2)."""
    from nets import executor as X
    from nets.__main__ import main
    made = []

    class Recorder:
        def __init__(self, **kw):
            made.append(kw)
            raise RuntimeError("recorded")                         # stop before any work

    monkeypatch.setattr(X, "DaskExecutor", Recorder)
    base = ["run", "fig1", "--out", str(tmp_path), "--executor", "dask", "--no-progress"]
    assert main(base + ["--workers", "3"]) == 2
    assert main(base + ["--dask-threads"]) == 2
    assert made == [dict(address=None, n_workers=3, processes=True), dict(address=None, n_workers=1, processes=False)]
    capsys.readouterr()
    assert main(["run", "fig1", "--out", str(tmp_path), "--dask-threads"]) == 2
    assert "--dask-threads needs --executor dask" in capsys.readouterr().err
    assert main(base + ["--dask-address", "tcp://127.0.0.1:1", "--workers", "2"]) == 2
    assert "existing cluster" in capsys.readouterr().err and len(made) == 2
