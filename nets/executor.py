"""Executors for sweeps (grids over η, S, β, seeds): one interface, local or Dask.

A *task* is a JSON-friendly dict ``{"configs": [RunConfig dicts], "out_dirs": [...],
"device": ..., "data_root": ..., "batched": bool, "step_path": ..., "label": ...}``;
:func:`execute_task` runs it (one vmap-batched group, of one run or more, when ``batched``: the
fast path of :func:`nets.train.train_group` with its step path; else the runs one after another
through the reference trainer :func:`nets.train.train_run`) and
returns ``[(run name, status), ...]``. Finished runs (``result.json`` present) are skipped, so a
sweep restarted after a crash only redoes what is missing; unfinished runs resume from their
checkpoints (a vmap group whole, from its group checkpoint, even when some of its runs, e.g.
diverged ones, are finished and no longer in the task).

* :class:`LocalExecutor` — in-process and sequential (``workers=0``, default) or a process pool
  (``workers=n``, spawn context so CUDA works in the children).
* :class:`DaskExecutor` — a ``dask.distributed`` Client (an existing one, a scheduler address, or
  a ``LocalCluster`` of worker processes it starts on tcp://127.0.0.1, or of worker threads with
  ``processes=False``). Needs ``pip install .[dask]``.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Optional, Sequence

__all__ = ["execute_task", "Executor", "LocalExecutor", "DaskExecutor", "make_executor"]

_DATA_CACHE: dict = {}
# Guards _DATA_CACHE: tasks may run in threads of one process (a dask worker with several threads,
# a threaded LocalCluster); check, clear, load and read must be one step. Loading under the lock
# also keeps two threads from loading the same dataset twice.
_DATA_LOCK = threading.Lock()


def _cached_data(cfg, device, data_root):
    from .train import data_key, load_data
    key = (data_key(cfg), str(device), str(data_root))
    with _DATA_LOCK:
        data = _DATA_CACHE.get(key)
        if data is None:
            _DATA_CACHE.clear()  # hold one dataset per process (callers still using another keep their reference)
            data = _DATA_CACHE[key] = load_data(cfg, device, data_root)
        return data


def execute_task(task: dict) -> list:
    """Run one task (see module docstring); return ``[(name, status), ...]``."""
    import torch
    from .svag import execute_svag_task, is_svag_task
    from .train import RunConfig, load_result, train_group, train_run

    if is_svag_task(task):   # SVAG runs (nets.svag) train with their own trainer
        return execute_svag_task(task)
    if task.get("threads"):
        torch.set_num_threads(int(task["threads"]))
    cfgs = [RunConfig.from_dict(c) for c in task["configs"]]
    outs = [Path(o) for o in task["out_dirs"]]
    todo = [(c, o) for c, o in zip(cfgs, outs) if load_result(o) is None]
    done = [(c.name, load_result(o)["status"]) for c, o in zip(cfgs, outs) if load_result(o) is not None]
    if not todo:
        return done
    device = task.get("device", "cpu")
    progress = bool(task.get("progress", False))
    step_path = task.get("step_path", "auto")
    label = task.get("label")
    status: dict = {}
    rest = todo
    if task.get("batched", True):
        # an interrupted vmap group resumes whole from its checkpoint, including members that are
        # already finished (e.g. diverged) and so absent from this task: same result as uninterrupted
        groups, rest = _checkpointed_groups(todo)
        for g_cfgs, g_outs in groups:
            data = _cached_data(g_cfgs[0], device, task.get("data_root"))
            res = train_group(g_cfgs, g_outs, data=data, device=device, progress=progress, step_path=step_path,
                              label=label)
            status.update({_key(o): r["status"] for o, r in zip(g_outs, res)})
    if rest:
        data = _cached_data(rest[0][0], device, task.get("data_root"))
        if task.get("batched", True):   # a group of one too: single runs get the fast step paths
            res = train_group([c for c, _ in rest], [o for _, o in rest], data=data, device=device,
                              progress=progress, step_path=step_path, label=label)
        else:
            res = [train_run(c, o, data=data, device=device, progress=progress) for c, o in rest]
        status.update({_key(o): r["status"] for (_, o), r in zip(rest, res)})
    return done + [(c.name, status[_key(o)]) for c, o in todo]


def _key(path) -> str:
    import os
    return os.path.normpath(os.path.abspath(path))


def _checkpointed_groups(todo: list) -> tuple[list, list]:
    """Split the unfinished runs ``todo`` into vmap groups to resume from a group checkpoint in
    one of their directories, ``[(configs, dirs)]`` of the whole checkpointed group, and the rest.
    A group is rebuilt only if each of its runs is either in ``todo`` with the same config or
    finished (done at the checkpoint, ``result.json`` on disk for the same config), so a run of
    another task is never trained twice; otherwise its runs stay in the rest (and a group of them
    that differs from the checkpointed one starts afresh with a warning, as before)."""
    from .train import group_checkpoint_members, load_result

    pending = {_key(o): c for c, o in todo}
    groups, claimed = [], set()
    for c, o in todo:
        if _key(o) in claimed:
            continue
        members = group_checkpoint_members(o)
        if members is None:
            continue
        g_cfgs, g_outs, g_done = members
        ok = True
        for gc, go, gd in zip(g_cfgs, g_outs, g_done):
            if _key(go) in pending:
                ok &= pending[_key(go)].to_dict() == gc.to_dict() and _key(go) not in claimed
            else:
                r = load_result(go) if gd else None
                ok &= r is not None and r.get("config") == gc.to_dict()
        if ok:
            groups.append((g_cfgs, g_outs))
            claimed |= {_key(go) for go in g_outs}
    return groups, [(c, o) for c, o in todo if _key(o) not in claimed]


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
            from .progress import Progress
            prog = Progress("tasks", len(tasks), unit="task", enabled=self.progress and len(tasks) > 1, interval=0.0)
            out = []
            for t in tasks:
                out.append(fn(t))
                prog.update(1)
            prog.close()
            return out
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
    ``LocalCluster(n_workers, threads_per_worker=1, processes=processes)``: by default worker
    processes talking TCP on 127.0.0.1 (each holds its own data cache); ``processes=False`` gives
    worker threads in this process on dask's in-process transport (they share the lock-guarded
    data cache, and the GIL)."""

    def __init__(self, client=None, address: Optional[str] = None, n_workers: int = 1, processes: bool = True,
                 connect_timeout: float = 5.0, **cluster_kw):
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as exc:
            raise ImportError("DaskExecutor needs dask[distributed]: `pip install .[dask]`") from exc
        self._own = client is None
        self._cluster = None
        if client is not None:
            self.client = client
        elif address:
            try:
                self.client = Client(address, timeout=connect_timeout)
            except (OSError, TimeoutError) as exc:
                raise ValueError(f"--dask-address {address}: no dask scheduler answered within {connect_timeout} s "
                                 f"({type(exc).__name__}: {exc}); start one with `dask scheduler` or leave the option "
                                 "out to start a local cluster") from None
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
