"""Benchmark the network trainers and measurements on the available device (cpu here, cuda where present).

Measured in the same process, on the same data and model (fig1's BN MLP):

1. ``dataloader`` — a plain PyTorch loop: ``DataLoader(TensorDataset(cpu tensors), shuffle)``,
   batches moved to the device each step, ``loss.item()`` every step, and the same per-epoch
   evaluation of train/val/test as the trainers (the common baseline);
2. ``on-device`` — :func:`nets.train.train_run`: data on the device, one sync per epoch;
3. ``vmap K`` — :func:`nets.train.train_group`: K runs (different lr/seeds) in one vmapped step, on
   every step path available on the device (eager everywhere; cuda-graph and compiled on CUDA,
   compiled on a CPU with ``--compiled``), with the trajectory of each path compared to eager.

Prints samples/s per run and for the grid, the ratios, and an estimate of the paper-scale Fig. 1
grid (25 runs = 5 lrs × 5 batch sizes plus 6 seed repetitions, 200 epochs of 55,000 samples;
runs sharing a batch size are one vmap group) in two parts: **training** (the measured step time
of the fastest path at each batch size times the steps, plus the measured per-epoch evaluation)
and **measurements** (fig1's full-preset end-of-run set and the tracked set, timed on the trained
model, times the number of runs and tracked epochs). With ``--concurrent`` it also times a short
grid run with all batch-size groups in parallel worker processes against one after another.
On a CPU it prints the device-Lanczos vs scipy-eigsh time on the same model
(``benchmarks/bench_measure.py``).

    python benchmarks/bench_nets.py                  # CPU defaults (small)
    python benchmarks/bench_nets.py --device cuda --train-size 55000 --batch-sizes 25 50 100 250 1000 --json b.json
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

FIG1_BATCH_SIZES = (25, 50, 100, 250, 1000)


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def get_data(args, device):
    from nets import data as D
    try:
        if args.synthetic:
            raise D.DatasetNotFoundError("synthetic data requested")
        return D.load("fashion-mnist", data_root=args.data_root, device=device, val_size=min(5000, args.train_size),
                      train_size=args.train_size, test_size=min(10000, args.train_size)), "fashion-mnist"
    except D.DatasetNotFoundError:
        return D.synthetic("fashion-mnist", n_train=args.train_size, n_val=1000, n_test=1000, device=device), "synthetic"


def bench_dataloader(cfg, data, device, epochs):
    from torch.utils.data import DataLoader, TensorDataset
    from nets.train import make_model
    model = make_model(cfg, data, device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    ds = TensorDataset(data.x_train.cpu(), data.y_train.cpu())
    loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, drop_last=True)
    n = 0
    _sync(device)
    t = time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()
            n += x.shape[0]
        # same per-epoch evaluation as the trainers (train/val/test in eval mode), the usual way
        model.eval()
        with torch.no_grad():
            for xs, ys in ((data.x_train, data.y_train), (data.x_val, data.y_val), (data.x_test, data.y_test)):
                for xb, yb in DataLoader(TensorDataset(xs.cpu(), ys.cpu()), batch_size=cfg.eval_batch_size):
                    o = model(xb.to(device))
                    F.cross_entropy(o, yb.to(device), reduction="sum").item()
                    (o.argmax(1) == yb.to(device)).sum().item()
        model.train()
    _sync(device)
    return n / (time.perf_counter() - t)


def bench_run(cfg, data, device, model_hook=None):
    from nets.train import train_run
    _sync(device)
    t = time.perf_counter()
    r = train_run(cfg, data=data, device=device, model_hook=model_hook)
    _sync(device)
    steps = sum(s * b for s, b in zip(r["history"]["steps"], r["history"]["batch_size"]))
    return steps / (time.perf_counter() - t), r


def time_evaluation(cfgs, data, device, repeats=3):
    """Seconds of one epoch's evaluation (train, val and test splits) of a vmap group of ``cfgs``."""
    from nets.train import _GroupState
    g = _GroupState(cfgs, data, device)
    bs = cfgs[0].eval_batch_size
    splits = ((data.x_train, data.y_train), (data.x_val, data.y_val), (data.x_test, data.y_test))
    for x, y in splits:                                   # warm-up
        g.evaluate(x, y, bs)
    _sync(device)
    t = time.perf_counter()
    for _ in range(repeats):
        out = [g.evaluate(x, y, bs) for x, y in splits]
    torch.stack([o[0] for o in out]).sum().item()
    _sync(device)
    return (time.perf_counter() - t) / repeats


def bench_group(cfgs, data, device, step_path):
    """(grid samples/s, seconds per step excluding evaluation, results) of one train_group call."""
    from nets.train import train_group
    _sync(device)
    t = time.perf_counter()
    rs = train_group(cfgs, data=data, device=device, step_path=step_path)
    _sync(device)
    dt = time.perf_counter() - t
    h = rs[0]["history"]
    steps = sum(h["steps"])
    samples = sum(s * b for s, b in zip(h["steps"], h["batch_size"]))
    t_eval = time_evaluation(cfgs, data, device)
    return samples * len(cfgs) / dt, max(dt - len(h["epoch"]) * t_eval, 0.0) / steps, t_eval, rs


def bench_fig1_measurements(model, data, device):
    """Wall time of fig1's full-preset measurements on a (briefly) trained model: the end-of-run set
    (exact and FD Hessian norms, Lanczos, gradient-noise statistics, alignment) and the set tracked
    every ``measure_every`` epochs. Returns (final_s, tracked_s, tracked epochs per run)."""
    from nets.experiments import plan
    from nets.train import _track_now, measure_model, tracked_spec
    cfg = plan("fig1", "full").runs[0]
    n_tracked = sum(_track_now(cfg, epoch, "completed") for epoch in range(cfg.epochs))
    _sync(device)
    t = time.perf_counter()
    final = measure_model(model, data, cfg.measure)
    _sync(device)
    t_final = time.perf_counter() - t
    t = time.perf_counter()
    measure_model(model, data, tracked_spec(cfg))
    _sync(device)
    t_tracked = time.perf_counter() - t
    errors = {k: v["error"] for k, v in final.items() if isinstance(v, dict) and "error" in v}
    by_key = ", ".join(f"{k} {v:.2f} s" for k, v in final.get("measure_wall_s_by_key", {}).items())
    print(f"fig1 full measurements: end of run {t_final:.2f} s ({by_key}); tracked {t_tracked:.2f} s "
          f"× {n_tracked} per run" + (f"; errors: {errors}" if errors else ""))
    return t_final, t_tracked, n_tracked


def bench_concurrency(args, device, epochs=1):
    """Wall time of a short fig1-like grid (one group per batch size) run one group after another vs all
    groups at once in worker processes (``nets run --workers``). Returns (sequential_s, concurrent_s)."""
    import tempfile
    from nets.executor import LocalExecutor, execute_task
    from nets.train import RunConfig
    walls = []
    for workers in (0, len(args.batch_sizes)):
        with tempfile.TemporaryDirectory() as tmp:
            tasks = []
            for bs in args.batch_sizes:
                cfgs = [RunConfig(name=f"lr{i}_bs{bs}", model="mlp4_bn", model_kw=dict(width=args.width),
                                  data_kw=dict(val_size=1000, train_size=args.train_size, test_size=1000), lr=lr,
                                  batch_size=bs, epochs=epochs, seed=i)
                        for i, lr in enumerate(np.geomspace(5e-3, 0.1, args.k))]
                tasks.append(dict(configs=[c.to_dict() for c in cfgs], out_dirs=[f"{tmp}/{c.name}" for c in cfgs],
                                  device=str(device), data_root=args.data_root, batched=True, step_path="auto"))
            t = time.perf_counter()
            with LocalExecutor(workers) as ex:
                ex.map(execute_task, tasks)
            walls.append(time.perf_counter() - t)
    print(f"grid of {len(args.batch_sizes)} groups × {epochs} epoch(s): one after another {walls[0]:.1f} s, "
          f"concurrently in {len(args.batch_sizes)} processes {walls[1]:.1f} s ({walls[0] / walls[1]:.2f}x)")
    return walls[0], walls[1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--data-root", default=None)
    p.add_argument("--train-size", type=int, default=4096)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--k", type=int, default=5, help="runs per vmap group (default 5 = lrs per batch size)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[100])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--synthetic", action="store_true", help="random data instead of Fashion-MNIST")
    p.add_argument("--compiled", action=argparse.BooleanOptionalAction, default=None,
                   help="also time the torch.compile step path (default: on for cuda; on a CPU it compiles for ~30 s)")
    p.add_argument("--compiled-batch-sizes", type=int, nargs="+", default=None,
                   help="time the compiled path only at these batch sizes (each batch size compiles anew)")
    p.add_argument("--measure", action=argparse.BooleanOptionalAction, default=None,
                   help="time fig1's full-preset measurements (the estimate's second part; default on for cuda; on a "
                   "CPU they take minutes)")
    p.add_argument("--lanczos", action=argparse.BooleanOptionalAction, default=None,
                   help="device-Lanczos vs scipy-eigsh on the same model (default on for a CPU)")
    p.add_argument("--concurrent", action="store_true", help="also time the batch-size groups in parallel processes")
    p.add_argument("--json", default=None, help="also write the numbers to this file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from nets.train import RunConfig
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    data, name = get_data(args, device)
    print(f"device={device} ({torch.cuda.get_device_name(device) if cuda else 'cpu'}) data={name} "
          f"n_train={data.n_train} model=mlp4_bn(width={args.width}) K={args.k} torch={torch.__version__}")
    out = {"device": str(device), "device_name": torch.cuda.get_device_name(device) if cuda else "cpu",
           "data": name, "n_train": data.n_train, "width": args.width, "k": args.k, "rows": []}
    paths = ["eager"] + (["cuda-graph"] if cuda else []) + (["compiled"] if (args.compiled or (args.compiled is None
                                                                                              and cuda)) else [])
    step_time, eval_time = {}, {}
    trained = []
    for bs in args.batch_sizes:
        base = dict(model="mlp4_bn", model_kw=dict(width=args.width), batch_size=bs, epochs=args.epochs,
                    eval_batch_size=4096)
        cfg = RunConfig(name="one", lr=0.05, seed=0, **base)
        cfgs = [RunConfig(name=f"r{i}", lr=lr, seed=i, **base) for i, lr in enumerate(np.geomspace(5e-3, 0.1, args.k))]
        bench_run(RunConfig(name="warm", lr=0.05, seed=0, **dict(base, epochs=1)), data, device)   # warm-up
        dl = bench_dataloader(cfg, data, device, args.epochs)
        od, _ = bench_run(cfg, data, device, model_hook=trained.append)
        row = dict(batch_size=bs, dataloader_samples_per_s=dl, on_device_samples_per_s=od,
                   ratio_on_device_vs_dataloader=od / dl)
        ref = None
        for path in paths:
            if path == "compiled" and args.compiled_batch_sizes is not None and bs not in args.compiled_batch_sizes:
                continue
            bench_group(cfgs, data, device, path)                                         # warm-up / capture
            grid, t_step, t_eval, rs = bench_group(cfgs, data, device, path)
            if ref is None:
                ref = rs
            same = all(np.allclose(a["history"]["train_loss"], b["history"]["train_loss"], rtol=1e-4, atol=1e-5)
                       for a, b in zip(ref, rs))
            captures = rs[0].get("graph_captures", 0)
            row[f"{path}_grid_samples_per_s"] = grid
            row[f"{path}_step_s"] = t_step
            row[f"{path}_matches_eager"] = same
            row[f"{path}_graph_captures"] = captures
            print(f"S={bs:5d}  vmap K={args.k} {path:10s}: {grid:10.0f} grid samples/s ({grid / dl:6.2f}x dataloader, "
                  f"{grid / od:5.2f}x on-device single run), {t_step * 1e3:.3f} ms/step + {t_eval * 1e3:.1f} ms eval/epoch"
                  f"; losses match eager (rtol 1e-4): {same}" + (f"; graphs captured: {captures}" if path == "cuda-graph"
                                                                 else ""))
            best = step_time.get(bs)
            if best is None or t_step < best[0]:
                step_time[bs] = (t_step, path)
            eval_time[bs] = t_eval
        row["vmap_grid_samples_per_s"] = max(row[f"{p_}_grid_samples_per_s"] for p_ in paths
                                             if f"{p_}_grid_samples_per_s" in row)
        out["rows"].append(row)
        print(f"S={bs:5d}  dataloader {dl:10.0f} samples/s | on-device single run {od:10.0f} ({od / dl:5.2f}x)")
    lanczos = args.lanczos if args.lanczos is not None else not cuda
    if lanczos and trained:
        import importlib.util
        import pathlib
        path = pathlib.Path(__file__).with_name("bench_measure.py")
        if path.is_file():
            spec = importlib.util.spec_from_file_location("bench_measure", path)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            out["lanczos"] = mod.compare_lanczos(trained[-1], data.x_train[:256], data.y_train[:256])
    measure = args.measure if args.measure is not None else cuda
    from nets.experiments import plan
    fig1 = plan("fig1", "full").runs
    n_runs = len(fig1)
    per_bs = {bs: sum(1 for r in fig1 if r.batch_size == bs) for bs in FIG1_BATCH_SIZES}
    t_meas = None
    if measure and trained:
        t_final, t_tracked, n_tracked = bench_fig1_measurements(trained[-1], data, device)
        # measurements run per run, one after another inside each vmap group
        t_meas = n_runs * (t_final + n_tracked * t_tracked)
        out.update(fig1_measure_final_s=t_final, fig1_measure_tracked_s=t_tracked, fig1_measure_grid_s=t_meas,
                   fig1_runs=n_runs)
    if all(b in step_time for b in FIG1_BATCH_SIZES) and data.n_train == 55000:
        epochs = fig1[0].epochs
        train_s = {b: epochs * ((55000 // b) * step_time[b][0] + eval_time[b]) for b in FIG1_BATCH_SIZES}
        est = sum(train_s.values())
        print("estimated paper-scale fig1 grid (" + ", ".join(f"S={b}: {per_bs[b]} runs {train_s[b] / 60:.1f} min "
                                                             f"[{step_time[b][1]}]" for b in FIG1_BATCH_SIZES) + ")")
        print(f"  training part: {est / 60:.1f} min one group after another (the S=25 group alone "
              f"{train_s[25] / 60:.1f} min: the floor with all groups concurrent)")
        print(f"  measurement part: " + (f"{t_meas / 60:.1f} min ({n_runs} runs)" if t_meas is not None
                                         else "not timed (--measure)"))
        out.update(fig1_grid_training_estimate_s=est, fig1_grid_training_by_batch_size_s=train_s,
                   fig1_grid_estimate_s=est + (t_meas or 0.0), fig1_step_paths={b: step_time[b][1] for b in step_time})
    else:
        print(f"(the fig1 grid estimate needs --batch-sizes {' '.join(map(str, FIG1_BATCH_SIZES))} and --train-size "
              f"55000; measured batch sizes {sorted(step_time)} on {data.n_train} samples)")
    if args.concurrent:
        seq, conc = bench_concurrency(args, device)
        out.update(concurrency_sequential_s=seq, concurrency_concurrent_s=conc)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1, default=str)
    return out


if __name__ == "__main__":
    main()
