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

from pathlib import Path
from typing import Optional

import torch

from . import experiments as E
from .executor import Executor, execute_task, make_executor
from .train import (MODEL, ConfigError, RunConfig, atomic_write_json, group_key, interpolate_models, load_result,
                    make_model)


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
                   width: Optional[int] = None, max_eval_size: Optional[int] = None) -> dict:
    """Plan, run (skipping finished runs) and analyse one experiment; return its summary.
    ``epochs`` / ``max_train_size`` / ``measure`` / ``width`` / ``max_eval_size`` rescale the preset
    (:func:`nets.experiments.rescale`)."""
    device = resolve_device(device)
    from .train import resolve_step_path
    resolve_step_path(step_path, device)   # an unknown or impossible step path fails before any work
    plan = E.plan(name, preset, dataset=dataset, seed=seed, epochs=epochs, max_train_size=max_train_size,
                  measure=measure, width=width, max_eval_size=max_eval_size)
    exp_dir = Path(out) / name
    run_dir = exp_dir / "runs"
    # fail early (before any work) if the dataset is missing
    from .data import DatasetNotFoundError, locate
    try:
        locate(plan.dataset, data_root)
    except DatasetNotFoundError as exc:
        hint = "" if plan.dataset == "fashion-mnist" else (
            f" (experiment {name!r} defaults to the paper's dataset {plan.dataset!r}; its Fashion-MNIST variant "
            "runs with --dataset fashion-mnist)")
        raise DatasetNotFoundError(str(exc) + hint) from None
    atomic_write_json(exp_dir / "plan.json", plan.to_dict())
    tasks = make_tasks(plan.runs, run_dir, device=device, data_root=data_root, batched=batched,
                       max_group=max_group, progress=progress, step_path=step_path,
                       label=f"{name}/{preset}")
    own = executor is None or isinstance(executor, str)
    ex = make_executor(executor or "local", **({"progress": progress} if executor in (None, "local") else {})) \
        if own else executor
    try:
        ex.map(execute_task, tasks)
    finally:
        if own:
            ex.close()
    analyses = run_analyses(plan, run_dir, device=device, data_root=data_root)
    if analyses:
        atomic_write_json(exp_dir / "analysis.json", analyses)
    summary = summarise(plan, run_dir)
    atomic_write_json(exp_dir / "summary.json", summary)
    return summary


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
