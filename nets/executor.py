"""Executors for sweeps (grids over η, S, β, seeds): one interface, local or Dask.

A *task* is a JSON-friendly dict ``{"configs": [RunConfig dicts], "out_dirs": [...],
"device": ..., "data_root": ..., "batched": bool}``; :func:`execute_task` runs it (a vmap-batched
group when ``batched`` and there are several configs, else the runs one after another) and
returns ``[(run name, status), ...]``. Finished runs (``result.json`` present) are skipped, so a
sweep restarted after a crash only redoes what is missing; unfinished runs resume from their
checkpoints.

* :class:`LocalExecutor` — in-process and sequential (``workers=0``, default) or a process pool
  (``workers=n``, spawn context so CUDA works in the children).
* :class:`DaskExecutor` — a ``dask.distributed`` Client (an existing one, a scheduler address, or
  a ``LocalCluster`` it starts on 127.0.0.1). Needs ``pip install .[dask]``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

_DATA_CACHE: dict = {}


def _cached_data(cfg, device, data_root):
    from .train import data_key, load_data
    key = (data_key(cfg), str(device), str(data_root))
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()  # hold one dataset per process
        _DATA_CACHE[key] = load_data(cfg, device, data_root)
    return _DATA_CACHE[key]


def execute_task(task: dict) -> list:
    """Run one task (see module docstring); return ``[(name, status), ...]``."""
    import torch
    from .train import RunConfig, load_result, train_group, train_run

    if task.get("threads"):
        torch.set_num_threads(int(task["threads"]))
    cfgs = [RunConfig.from_dict(c) for c in task["configs"]]
    outs = [Path(o) for o in task["out_dirs"]]
    todo = [(c, o) for c, o in zip(cfgs, outs) if load_result(o) is None]
    done = [(c.name, load_result(o)["status"]) for c, o in zip(cfgs, outs) if load_result(o) is not None]
    if not todo:
        return done
    device = task.get("device", "cpu")
    data = _cached_data(todo[0][0], device, task.get("data_root"))
    progress = bool(task.get("progress", False))
    if task.get("batched", True) and len(todo) > 1:
        res = train_group([c for c, _ in todo], [o for _, o in todo], data=data, device=device, progress=progress,
                          cuda_graphs=bool(task.get("cuda_graphs", False)))
    else:
        res = [train_run(c, o, data=data, device=device, progress=progress) for c, o in todo]
    return done + [(c.name, r["status"]) for (c, _), r in zip(todo, res)]


class Executor:
    """``map(fn, tasks)`` → list of results in task order; ``close()``; context manager."""

    def map(self, fn: Callable, tasks: Sequence) -> list:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LocalExecutor(Executor):
    def __init__(self, workers: int = 0, progress: bool = False):
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.workers, self.progress, self._pool = workers, progress, None

    def map(self, fn, tasks):
        tasks = list(tasks)
        if self.workers == 0 or len(tasks) <= 1:
            it: Iterable = tasks
            if self.progress and len(tasks) > 1:
                from tqdm.auto import tqdm
                it = tqdm(tasks, desc="tasks")
            return [fn(t) for t in it]
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"))
        return list(self._pool.map(fn, tasks))

    def close(self):
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


class DaskExecutor(Executor):
    """Run tasks on a dask.distributed cluster. ``client`` or ``address`` or (default) a
    ``LocalCluster(n_workers, threads_per_worker=1, processes=processes)`` — in-process transport
    when ``processes=False``, TCP on 127.0.0.1 otherwise."""

    def __init__(self, client=None, address: Optional[str] = None, n_workers: int = 1, processes: bool = False,
                 **cluster_kw):
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as exc:
            raise ImportError("DaskExecutor needs dask[distributed]: `pip install .[dask]`") from exc
        self._own = client is None
        self._cluster = None
        if client is not None:
            self.client = client
        elif address:
            self.client = Client(address)
        else:
            kw = dict(n_workers=n_workers, threads_per_worker=1, processes=processes, dashboard_address=None)
            if processes:  # TCP on loopback only; with processes=False dask uses its in-process transport
                kw["host"] = "127.0.0.1"
            kw.update(cluster_kw)
            self._cluster = LocalCluster(**kw)
            self.client = Client(self._cluster)

    def map(self, fn, tasks):
        tasks = list(tasks)
        if not tasks:
            return []
        futures = self.client.map(fn, tasks, pure=False)
        return self.client.gather(futures)

    def close(self):
        if self._own:
            self.client.close()
            if self._cluster is not None:
                self._cluster.close()


def make_executor(kind: str = "local", **kw) -> Executor:
    if kind == "local":
        return LocalExecutor(**kw)
    if kind == "dask":
        return DaskExecutor(**kw)
    raise ValueError(f"executor must be 'local' or 'dask', got {kind!r}")
