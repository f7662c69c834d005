"""Command line: ``python -m nets {list,run,train,download} ...`` (``--help`` on each).

Examples::

    python -m nets list
    python -m nets run fig1 --preset quick --device cpu --out results/nets
    python -m nets run fig5 --preset full --dataset fashion-mnist --device cuda --out results/nets
    python -m nets run fig1 --preset full --executor dask --out results/nets
    python -m nets run fig1 --preset full --epochs 10 --max-train-size 5000 --out results/small
    python -m nets train --lr 0.05 --batch-size 128 --epochs 2 --train-size 1000 --out /tmp/one
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence


def _positive_float(name):
    def parse(s):
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {s!r}") from None
        if not v > 0 or v != v or v == float("inf"):
            raise argparse.ArgumentTypeError(f"{name} must be > 0 (finite), got {s!r}")
        return v
    return parse


def _int_at_least(name, low):
    def parse(s):
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {s!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"{name} must be >= {low}, got {v}")
        return v
    return parse


def build_parser() -> argparse.ArgumentParser:
    from .experiments import EXPERIMENTS, PRESETS
    from .train import STEP_PATHS
    p = argparse.ArgumentParser(prog="python -m nets", description="Network experiments of 'Three Factors "
                                "Influencing Minima in SGD' (§4, App. F).")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list experiments and their run counts", description="List the experiments.")

    def common(sp):
        sp.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
        sp.add_argument("--out", default="results/nets", help="output directory (default results/nets)")
        sp.add_argument("--data-root", default=None, help="directory with the dataset files (else "
                        "$THREE_FACTORS_DATA, else /usr/share/datasets/<name>)")
        sp.add_argument("--seed", type=_int_at_least("--seed", 0), default=0, help="base seed (default 0)")
        sp.add_argument("--threads", type=_int_at_least("--threads", 1), default=None,
                        help="torch intra-op threads (CPU); default: torch's choice")
        sp.add_argument("--dataset", default=None, help="fashion-mnist, mnist or cifar10 (default: the paper's; "
                        "quick preset: fashion-mnist)")

    r = sub.add_parser("run", help="run an experiment", description="Run an experiment; finished runs are "
                       "skipped, unfinished ones resume from their checkpoints.")
    r.add_argument("experiment", help=f"one of: {', '.join(EXPERIMENTS)}")
    r.add_argument("--preset", choices=PRESETS, default="quick")
    common(r)
    r.add_argument("--epochs", type=_int_at_least("--epochs", 1), default=None,
                   help="rescale the preset: train every run this many epochs (schedule periods, milestones and "
                   "measurement intervals scale with it); recorded in plan.json")
    r.add_argument("--max-train-size", type=_int_at_least("--max-train-size", 1), default=None,
                   help="rescale the preset: at most this many training samples per run (e.g. the full grids on "
                   "a CPU); recorded in plan.json")
    r.add_argument("--measure", choices=PRESETS, default=None,
                   help="rescale the preset: take its measurements with the settings of this preset (e.g. the "
                   "quick presets' cheap curvature estimates for a full grid on a CPU); recorded in plan.json")
    r.add_argument("--width", type=_int_at_least("--width", 1), default=None,
                   help="rescale the preset: hidden width of its MLPs (fig1, fig5, fig9); recorded in plan.json")
    r.add_argument("--max-eval-size", type=_int_at_least("--max-eval-size", 1), default=None,
                   help="rescale the preset: at most this many validation and test samples (evaluated every epoch); "
                   "recorded in plan.json")
    r.add_argument("--executor", choices=("local", "dask"), default="local")
    r.add_argument("--workers", type=_int_at_least("--workers", 0), default=0,
                   help="local executor: processes (0 = in-process, default); dask: LocalCluster worker processes "
                   "(tcp://127.0.0.1; default 1)")
    r.add_argument("--dask-address", default=None, help="scheduler address of an existing dask cluster")
    r.add_argument("--dask-threads", action="store_true", help="dask LocalCluster: worker threads in this process "
                   "(in-process transport, one shared dataset copy, GIL-bound) instead of worker processes")
    r.add_argument("--no-batch", action="store_true", help="train runs one by one instead of vmap groups")
    r.add_argument("--max-group", type=_int_at_least("--max-group", 1), default=25,
                   help="max runs per vmap group (default 25)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument("--step-path", choices=STEP_PATHS, default="auto",
                   help="how the vmapped training step runs: cuda-graph (captured once per batch size and replayed; "
                   "the auto choice on CUDA), compiled (torch.compile), eager (auto on a CPU); recorded in every "
                   "result as step_path; a graph that cannot be captured is an error")
    r.add_argument("--eager", dest="step_path", action="store_const", const="eager",
                   help="same as --step-path eager (e.g. after a failed CUDA-graph capture)")

    t = sub.add_parser("train", help="one training run with explicit hyper-parameters",
                       description="Train one run (resumable).")
    common(t)
    t.add_argument("--model", default="mlp4_bn")
    t.add_argument("--width", type=_int_at_least("--width", 1), default=None)
    t.add_argument("--lr", type=_positive_float("--lr"), required=True)
    t.add_argument("--batch-size", type=_int_at_least("--batch-size", 1), required=True)
    t.add_argument("--momentum", type=float, default=0.0)
    t.add_argument("--epochs", type=_int_at_least("--epochs", 1), default=1)
    t.add_argument("--train-size", type=_int_at_least("--train-size", 1), default=None)
    t.add_argument("--val-size", type=_int_at_least("--val-size", 0), default=5000)
    t.add_argument("--random-labels", type=float, default=0.0, help="fraction of corrupted training labels")

    d = sub.add_parser("download", help="download a dataset with torchvision (pip install .[vision])",
                       description="Download a dataset with torchvision.")
    d.add_argument("dataset")
    d.add_argument("--data-root", required=True)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from .data import DatasetNotFoundError
    if getattr(args, "threads", None):
        import os
        import torch
        os.environ["OMP_NUM_THREADS"] = str(args.threads)   # inherited by --workers / dask worker processes
        torch.set_num_threads(args.threads)
    try:
        if args.cmd == "list":
            from .experiments import describe_all
            print(describe_all())
            return 0
        if args.cmd == "download":
            from .data import download
            print(download(args.dataset, args.data_root))
            return 0
        if args.cmd == "run":
            from .experiments import get
            from .runner import run_experiment
            get(args.experiment)
            ex = None
            if args.dask_threads and args.executor != "dask":
                raise ValueError("--dask-threads needs --executor dask")
            if args.executor == "dask":
                from .executor import DaskExecutor
                if args.dask_address and (args.workers or args.dask_threads):
                    raise ValueError("--workers / --dask-threads configure a local dask cluster; with "
                                     "--dask-address the existing cluster's workers are used")
                ex = DaskExecutor(address=args.dask_address, n_workers=max(args.workers, 1),
                                  processes=not args.dask_threads)
            elif args.workers:
                from .executor import LocalExecutor
                ex = LocalExecutor(args.workers)
            try:
                summary = run_experiment(args.experiment, args.preset, args.out, device=args.device,
                                         data_root=args.data_root, seed=args.seed, dataset=args.dataset, executor=ex,
                                         batched=not args.no_batch, max_group=args.max_group,
                                         progress=not args.no_progress, step_path=args.step_path,
                                         epochs=args.epochs, max_train_size=args.max_train_size,
                                         measure=args.measure, width=args.width,
                                         max_eval_size=args.max_eval_size)
            finally:
                if ex is not None:
                    ex.close()
            print(json.dumps(summary["counts"]))
            for row in summary["runs"]:
                va = row.get("val_acc")
                print(f"{row['name']:32s} {row['status']:10s} val_acc={va if va is None else round(va, 4)}")
            return 0
        if args.cmd == "train":
            from .runner import resolve_device
            from .train import RunConfig, train_run
            from .data import load
            dev = resolve_device(args.device)
            data_kw = dict(val_size=args.val_size, random_label_fraction=args.random_labels, label_seed=args.seed)
            if args.train_size:
                data_kw["train_size"] = args.train_size
            cfg = RunConfig(name="train", model=args.model, model_kw=({"width": args.width} if args.width else {}),
                            dataset=args.dataset or "fashion-mnist", data_kw=data_kw, lr=args.lr,
                            batch_size=args.batch_size, momentum=args.momentum, epochs=args.epochs, seed=args.seed)
            data = load(cfg.dataset, data_root=args.data_root, device=dev, **data_kw)
            res = train_run(cfg, args.out, data=data, device=dev, progress=True)
            print(json.dumps({"status": res["status"], "final": res.get("final")}))
            return 0
    except DatasetNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError, ImportError, MemoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
