"""Run an experiment plan: skip finished runs, batch compatible runs, run post-analyses.

Layout of an output directory::

    OUT/EXPERIMENT/plan.json            the plan (run configs, analyses)
    OUT/EXPERIMENT/runs/RUN/result.json per-run result (history, final metrics, measurements)
    OUT/EXPERIMENT/runs/RUN/model.pt    final weights (state dict)
    OUT/EXPERIMENT/runs/RUN/checkpoint.pt   resumable checkpoint (single runs)
    OUT/EXPERIMENT/runs/RUN/group_checkpoint.pt   resumable checkpoint of a vmap group (first run)
    OUT/EXPERIMENT/analysis.json        interpolations (Fig. 2/3)
    OUT/EXPERIMENT/summary.json         one line per run
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from . import experiments as E
from .executor import Executor, execute_task, make_executor
from .progress import format_seconds
from .train import (MODEL, ConfigError, RunConfig, atomic_write_json, group_key, interpolate_models, load_result,
                    make_model)

__all__ = ["resolve_device", "make_tasks", "run_experiment", "estimate_time", "time_breakdown", "run_analyses",
           "summarise"]


def resolve_device(device: str) -> str:
    """'cpu', 'cuda', 'cuda:N' or 'auto'; a clear error if CUDA is asked for but absent."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested but CUDA is not available in this torch build "
                               f"(torch {torch.__version__}); use --device cpu")
        return device
    if device != "cpu":
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}")
    return device


def make_tasks(runs: list[RunConfig], run_dir: Path, *, device: str, data_root=None, batched: bool = True,
               max_group: int = 25, progress: bool = False, step_path: str = "auto",
               label: str = "") -> list[dict]:
    """Group unfinished runs into tasks (vmap groups of runs sharing :func:`group_key`).

    A finished run (its ``result.json`` exists) is skipped only if it was written for the same
    config; a result written for another config (another preset, other ``--epochs``) is an error,
    never silently taken for this plan's."""
    pending = []
    for r in runs:
        res = load_result(run_dir / r.name)
        if res is None:
            pending.append(r)
        elif res.get("config") != r.to_dict():
            raise ConfigError(f"{run_dir / r.name} holds a result written for a different config than this plan's "
                              f"run {r.name!r} (another preset or other --epochs/--max-train-size/--measure?); "
                              "use another --out, or remove that run directory to retrain it")
    groups: dict[str, list[RunConfig]] = {}
    for r in pending:
        groups.setdefault(group_key(r) if batched else r.name, []).append(r)
    tasks = []
    for rs in groups.values():
        for i in range(0, len(rs), max_group if batched else 1):
            chunk = rs[i:i + (max_group if batched else 1)]
            tasks.append(dict(configs=[c.to_dict() for c in chunk], out_dirs=[str(run_dir / c.name) for c in chunk],
                              device=device, data_root=data_root, batched=batched, progress=progress,
                              step_path=step_path, label=f"{label} group {len(tasks) + 1} (batch size "
                              f"{chunk[0].batch_size if not isinstance(chunk[0].batch_size, dict) else 'schedule'})"))
    return tasks


def run_experiment(name: str, preset: str = "quick", out: str | Path = "results/nets", *, device: str = "cpu",
                   data_root: Optional[str] = None, seed: int = 0, dataset: Optional[str] = None,
                   executor: Executor | str | None = None, batched: bool = True, max_group: int = 25,
                   progress: bool = False, step_path: str = "auto", epochs: Optional[int] = None,
                   max_train_size: Optional[int] = None, measure: Optional[str] = None,
                   width: Optional[int] = None, max_eval_size: Optional[int] = None,
                   estimate: bool = True) -> dict:
    """Plan, run (skipping finished runs) and analyse one experiment; return its summary.

    ``epochs`` / ``max_train_size`` / ``measure`` / ``width`` / ``max_eval_size`` rescale the preset
    (:func:`nets.experiments.rescale`). ``--out`` is checked writable, and temporary files left by
    an interrupted earlier run (``.*.tmp``) are removed, before any work. With ``estimate`` (and
    ``progress``) the time the unfinished runs will take is estimated first (:func:`estimate_time`)
    and printed. Writes ``OUT/<experiment>/runs.csv`` (a row per run, :func:`nets.results.run_rows`)
    with the summary."""
    device = resolve_device(device)
    from .train import resolve_step_path
    resolve_step_path(step_path, device)   # an unknown or impossible step path fails before any work
    plan = E.plan(name, preset, dataset=dataset, seed=seed, epochs=epochs, max_train_size=max_train_size,
                  measure=measure, width=width, max_eval_size=max_eval_size)
    # fail early (before any work) if the dataset is missing
    from .data import DatasetNotFoundError, locate
    try:
        locate(plan.dataset, data_root)
    except DatasetNotFoundError as exc:
        hint = "" if plan.dataset == "fashion-mnist" else (
            f" (experiment {name!r} defaults to the paper's dataset {plan.dataset!r}; its Fashion-MNIST variant "
            "runs with --dataset fashion-mnist)")
        raise DatasetNotFoundError(str(exc) + hint) from None
    from theory._checks import check_output_dir
    from theory._io import remove_stale_temporaries
    exp_dir = check_output_dir("--out", Path(out) / name)
    run_dir = exp_dir / "runs"
    remove_stale_temporaries(exp_dir)          # an atomic write interrupted by a crash: never a result
    atomic_write_json(exp_dir / "plan.json", plan.to_dict())
    tasks = make_tasks(plan.runs, run_dir, device=device, data_root=data_root, batched=batched,
                       max_group=max_group, progress=progress, step_path=step_path,
                       label=f"{name}/{preset}")
    n_done = len(plan.runs) - sum(len(t["configs"]) for t in tasks)
    _say(progress, f"{name}/{preset}: {len(plan.runs)} runs, {n_done} already finished, {len(tasks)} vmap group(s) to "
                   f"train on {device}")
    if tasks and estimate and progress:
        est = estimate_time(tasks, device, data_root, step_path)
        _say(progress, f"estimated time, one group after another: {format_seconds(est['total_s'])} (training and "
                       f"evaluation {format_seconds(est['training_s'])} from {est['timed_steps']} timed steps; "
                       f"measurements {format_seconds(est['measurement_s'])} from one timed set per measurement "
                       f"spec; the estimate itself took {format_seconds(est['calibration_s'])})")
    own = executor is None or isinstance(executor, str)
    ex = make_executor(executor or "local", **({"progress": progress} if executor in (None, "local") else {})) \
        if own else executor
    t0 = time.perf_counter()
    try:
        ex.map(execute_task, tasks)
    finally:
        if own:
            ex.close()
    analyses = run_analyses(plan, run_dir, device=device, data_root=data_root)
    if analyses:
        atomic_write_json(exp_dir / "analysis.json", analyses)
    summary = summarise(plan, run_dir)
    summary["wall_s"] = time.perf_counter() - t0
    atomic_write_json(exp_dir / "summary.json", summary)
    from .results import load_experiment, run_rows, write_table
    write_table(run_rows(load_experiment(exp_dir)), exp_dir / "runs.csv")
    if tasks:
        _say(progress, time_breakdown(summary, run_dir, plan))
    return summary


def _say(enabled: bool, text: str) -> None:
    if enabled:
        print(text, file=sys.stderr, flush=True)


def time_breakdown(summary: dict, run_dir: Path, plan: E.Plan) -> str:
    """Where the wall time of ``nets run`` went: training, evaluation (``wall_s`` and ``eval_wall_s`` of
    the results: a group's time is shared equally by its runs) and each measurement, summed over the
    runs, and the rest (data loading, start-up, compilation, the estimate, analyses)."""
    train_eval = ev = 0.0
    by_key: dict[str, float] = {}
    for r in plan.runs:
        res = load_result(run_dir / r.name)
        if res is None:
            continue
        train_eval += res.get("wall_s") or 0.0
        ev += res.get("eval_wall_s") or 0.0
        for m in [res.get("measurements") or {}] + list(res.get("history", {}).get("tracked", [])):
            for key, v in (m.get("measure_wall_s_by_key") or {}).items():
                by_key[key] = by_key.get(key, 0.0) + v
    meas = sum(by_key.values())
    wall = summary.get("wall_s", 0.0)
    keys = ", ".join(f"{k} {format_seconds(v)}" for k, v in sorted(by_key.items(), key=lambda kv: -kv[1]))
    return (f"time: {format_seconds(wall)} in all = training {format_seconds(train_eval - ev)} + evaluation "
            f"{format_seconds(ev)} + measurements {format_seconds(meas)} ({keys or 'none'}) + other "
            f"{format_seconds(max(wall - train_eval - meas, 0.0))} (data loading, start-up, compilation, analyses)")


def estimate_time(tasks: list[dict], device: str, data_root=None, step_path: str = "auto", *,
                  timed_steps: int = 5) -> dict:
    """Estimated seconds of training, evaluation and measurement for ``tasks``, one group after another.

    Training: ``timed_steps`` steps at each of (at most three) batch sizes of each group, on the step
    path that will run (CUDA graphs: captured, then replayed), after warm-up; other batch sizes of a
    schedule are interpolated linearly in S. Evaluation: one timed pass over the splits. Measurements:
    one end-of-run set and one tracked set timed per distinct (model, measurement spec) on an
    untrained member (a trained model's Lanczos may need more iterations). The groups' states are
    thrown away; nothing is written."""
    from .executor import _cached_data
    from .train import (_GRAPH_WARMUP, RunConfig, _GraphRunner, _GroupState, _track_now, measure_model,
                        resolve_step_path, tracked_spec, validate, StepLog)
    dev = torch.device(device)
    path = resolve_step_path(step_path, dev)
    t_start = time.perf_counter()
    train_s = meas_s = 0.0
    n_timed = 0
    meas_cache: dict = {}

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    from .svag import estimate_svag_task, is_svag_task
    for t in tasks:
        if is_svag_task(t):   # SVAG runs (nets.svag): estimated by their own trainer's step
            est = estimate_svag_task(t, device, data_root)
            train_s, meas_s, n_timed = (train_s + est["training_s"], meas_s + est["measurement_s"],
                                        n_timed + est["timed_steps"])
            continue
        cfgs = [RunConfig.from_dict(c) for c in t["configs"]]
        data = _cached_data(cfgs[0], device, data_root)
        _, bss, _ = validate(cfgs[0], data.n_train)
        K = len(cfgs)
        g = _GroupState(cfgs, data, dev)
        sizes = sorted(set(int(b) for b in bss))
        probe = sorted({sizes[0], sizes[len(sizes) // 2], sizes[-1]})
        per_step = {}
        z = torch.zeros(K, dtype=torch.float64, device=dev)
        for bs in probe:
            steps = min(data.n_train // bs, _GRAPH_WARMUP + 2 * timed_steps)
            perm = torch.stack([torch.randperm(data.n_train, device=dev)[:steps * bs] for _ in range(K)])
            aug = None if not data.augment else tuple(a.view(K, -1) for a in
                                                      _timing_augmentation(data, K * steps * bs, dev))
            lr = torch.full((steps, K), 1e-6, device=dev)
            log = StepLog(0, 0, steps, (K,), dev)
            sl = torch.zeros(K, device=dev)
            if path == "cuda-graph":
                runner = _GraphRunner(g)
                runner.run_epoch(perm, aug, lr, bs, steps, z, z.clone(), log, sl)       # capture
                sync()
                t0 = time.perf_counter()
                runner.run_epoch(perm, aug, lr, bs, steps, z, z.clone(), log, sl)       # replays only
                sync()
                per_step[bs] = (time.perf_counter() - t0) / steps
                n_timed += steps
            else:
                for j in range(steps):
                    if j == steps - timed_steps:
                        sync()
                        t0 = time.perf_counter()
                    g.step(perm[:, j * bs:(j + 1) * bs], None if aug is None else tuple(a[:, j * bs:(j + 1) * bs]
                                                                                          for a in aug),
                           lr[j], z, z.clone(), sl)
                sync()
                per_step[bs] = (time.perf_counter() - t0) / timed_steps
                n_timed += timed_steps
        sync()
        t0 = time.perf_counter()
        for x, y in ((data.x_train, data.y_train), (data.x_val, data.y_val), (data.x_test, data.y_test)):
            if x.shape[0]:
                g.evaluate(x, y, cfgs[0].eval_batch_size)
        sync()
        t_eval = time.perf_counter() - t0
        xs = np.array(probe, float)
        ys = np.array([per_step[b] for b in probe])
        for b in bss:
            tb = float(np.interp(b, xs, ys))
            train_s += (data.n_train // int(b)) * tb + t_eval
        for k, c in enumerate(cfgs):
            if not c.measure:
                continue
            key = json.dumps([c.model, c.model_kw, c.dataset, c.measure, c.measure_tracked], sort_keys=True)
            if key not in meas_cache:
                m = g.member(k)
                t0 = time.perf_counter()
                measure_model(m, data, c.measure)
                t_end = time.perf_counter() - t0
                t_tr = 0.0
                if c.measure_every:
                    t0 = time.perf_counter()
                    measure_model(m, data, tracked_spec(c))
                    t_tr = time.perf_counter() - t0
                meas_cache[key] = (t_end, t_tr)
            t_end, t_tr = meas_cache[key]
            meas_s += t_end + t_tr * sum(_track_now(c, e, "completed") for e in range(c.epochs))
        del g
    return dict(training_s=train_s, measurement_s=meas_s, total_s=train_s + meas_s, timed_steps=n_timed,
                calibration_s=time.perf_counter() - t_start, step_path=path)


def _timing_augmentation(data, n, dev):
    """Crop and flip parameters for ``n`` samples, drawn as a run draws them (for timing the step)."""
    from .data import augmentation_params
    return augmentation_params(torch.Generator(device=dev).manual_seed(0), n)


def run_analyses(plan: E.Plan, run_dir: Path, *, device="cpu", data_root=None) -> list[dict]:
    out = []
    if not plan.analyses:
        return out
    by_name = {r.name: r for r in plan.runs}
    from .executor import _cached_data
    for an in plan.analyses:
        if an["kind"] != "interpolate":
            continue
        ra, rb = load_result(run_dir / an["a"]), load_result(run_dir / an["b"])
        entry = dict(an)
        if ra is None or rb is None or ra["status"] != "completed" or rb["status"] != "completed":
            entry["skipped"] = "a run is missing or diverged"
            out.append(entry)
            continue
        ca, cb = by_name[an["a"]], by_name[an["b"]]
        data = _cached_data(ca, device, data_root)
        ma, mb = make_model(ca, data, device), make_model(cb, data, device)
        ma.load_state_dict(torch.load(run_dir / an["a"] / MODEL, map_location=device))
        mb.load_state_dict(torch.load(run_dir / an["b"] / MODEL, map_location=device))
        for split in ("train", "test"):
            entry[split] = interpolate_models(ma, mb, data, an["alphas"], samples=2048, split=split)
        out.append(entry)
    return out


def summarise(plan: E.Plan, run_dir: Path) -> dict:
    rows = []
    for r in plan.runs:
        res = load_result(run_dir / r.name)
        if res is None:
            rows.append(dict(name=r.name, status="missing"))
            continue
        f = res.get("final", {})
        rows.append(dict(name=r.name, status=res["status"], diverged_epoch=res.get("diverged_epoch"),
                         lr=f.get("lr"), batch_size=f.get("batch_size"), noise=f.get("noise"),
                         train_acc=f.get("train_acc"), val_acc=f.get("val_acc"), test_acc=f.get("test_acc"),
                         best_val_acc=res.get("best_val_acc"), measurements=res.get("measurements", {})))
    counts = {s: sum(1 for x in rows if x["status"] == s) for s in ("completed", "diverged", "missing", "interrupted")}
    return dict(experiment=plan.experiment, preset=plan.preset, dataset=plan.dataset, overrides=plan.overrides,
                counts=counts, runs=rows)
