"""Benchmark the network trainers on the available device (cpu here, cuda where present).

Measured in the same process, on the same data and model (fig1's BN MLP):

1. ``dataloader`` — a plain PyTorch loop: ``DataLoader(TensorDataset(cpu tensors), shuffle)``,
   batches moved to the device each step, ``loss.item()`` every step, and the same per-epoch
   evaluation of train/val/test as the trainers (the common baseline);
2. ``on-device`` — :func:`nets.train.train_run`: data on the device, one sync per epoch;
3. ``vmap K`` — :func:`nets.train.train_group`: K runs (different lr/seeds) in one vmapped step.

Prints samples/s per run and for the grid (K runs), the ratios, and an estimate of the full
Fig. 1 grid time (25 runs = 5 lrs × 5 batch sizes, 200 epochs of 55,000 samples; runs sharing a
batch size are one vmap group) from the measured vmap step time at each batch size, plus (with
``--measure``, default on cuda) the measured time of fig1's end-of-run and tracked measurements.

    python benchmarks/bench_nets.py                  # CPU defaults (small)
    python benchmarks/bench_nets.py --device cuda --train-size 55000 --batch-sizes 25 50 100 250 1000 --cuda-graphs
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def get_data(args, device):
    from nets import data as D
    try:
        if args.synthetic:
            raise D.DatasetNotFoundError("synthetic data requested")
        return D.load("fashion-mnist", data_root=args.data_root, device=device, val_size=min(1000, args.train_size),
                      train_size=args.train_size, test_size=1000), "fashion-mnist"
    except D.DatasetNotFoundError:
        g = torch.Generator().manual_seed(0)
        n = args.train_size
        x = torch.randn(n + 2000, 1, 28, 28, generator=g).to(device)
        y = torch.randint(0, 10, (n + 2000,), generator=g).to(device)
        z = torch.zeros(1, 1, 1, 1, device=device)
        return D.DeviceData("synthetic", x[:n], y[:n], x[n:n + 1000], y[n:n + 1000], x[n + 1000:], y[n + 1000:], 10,
                            z, z + 1), "synthetic"


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


def bench_fig1_measurements(model, data, device):
    """Wall time of fig1's full-preset measurements on a (briefly) trained model: the end-of-run set
    (exact and FD Hessian norms, Lanczos, gradient-noise statistics, alignment) and the set tracked
    every ``measure_every`` epochs (alignment only). Returns (final_s, tracked_s, tracked per run)."""
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
    by_key = ", ".join(f"{k} {v:.1f} s" for k, v in final.get("measure_wall_s_by_key", {}).items())
    print(f"fig1 full measurements: end of run {t_final:.1f} s ({by_key}); tracked (alignment) {t_tracked:.1f} s "
          f"× {n_tracked} per run" + (f"; errors: {errors}" if errors else ""))
    return t_final, t_tracked, n_tracked


def bench_group(cfgs, data, device, cuda_graphs=False):
    from nets.train import train_group
    _sync(device)
    t = time.perf_counter()
    rs = train_group(cfgs, data=data, device=device, cuda_graphs=cuda_graphs)
    _sync(device)
    dt = time.perf_counter() - t
    steps = sum(s * b for s, b in zip(rs[0]["history"]["steps"], rs[0]["history"]["batch_size"]))
    return steps / dt, steps * len(cfgs) / dt, dt / sum(rs[0]["history"]["steps"]), rs


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
    p.add_argument("--cuda-graphs", action="store_true", help="also time train_group(cuda_graphs=True) (CUDA)")
    p.add_argument("--measure", action=argparse.BooleanOptionalAction, default=None,
                   help="time fig1's full-preset measurements and add them to the grid estimate (default: on for "
                   "cuda; on a CPU they take minutes)")
    p.add_argument("--json", default=None, help="also write the numbers to this file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from nets.train import RunConfig
    device = torch.device(args.device)
    data, name = get_data(args, device)
    print(f"device={device} data={name} n_train={data.n_train} model=mlp4_bn(width={args.width}) K={args.k}")
    out = {"device": str(device), "data": name, "n_train": data.n_train, "width": args.width, "k": args.k, "rows": []}
    step_time = {}
    measure = args.measure if args.measure is not None else device.type == "cuda"
    trained = []
    for bs in args.batch_sizes:
        base = dict(model="mlp4_bn", model_kw=dict(width=args.width), batch_size=bs, epochs=args.epochs,
                    eval_batch_size=4096)
        cfg = RunConfig(name="one", lr=0.05, seed=0, **base)
        cfgs = [RunConfig(name=f"r{i}", lr=lr, seed=i, **base) for i, lr in enumerate(np.geomspace(5e-3, 0.1, args.k))]
        bench_run(RunConfig(name="warm", lr=0.05, seed=0, **dict(base, epochs=1)), data, device)   # warm-up
        dl = bench_dataloader(cfg, data, device, args.epochs)
        od, _ = bench_run(cfg, data, device, model_hook=trained.append)
        per_run, grid, t_step, rs = bench_group(cfgs, data, device)
        step_time[bs] = t_step
        if args.cuda_graphs and device.type == "cuda":
            bench_group(cfgs, data, device, cuda_graphs=True)                                  # warm-up
            g_run, g_grid, g_step, grs = bench_group(cfgs, data, device, cuda_graphs=True)
            same = all(np.allclose(a["history"]["train_loss"], b["history"]["train_loss"], rtol=1e-4, atol=1e-5)
                       for a, b in zip(rs, grs))
            print(f"S={bs:5d}  vmap+CUDA graph: {g_grid:10.0f} grid samples/s ({g_grid / grid:5.2f}x vs vmap eager), "
                  f"{g_step * 1e3:.3f} ms/step; losses match eager run (rtol 1e-4): {same}")
            step_time[bs] = g_step
        row = dict(batch_size=bs, dataloader_samples_per_s=dl, on_device_samples_per_s=od,
                   vmap_per_run_samples_per_s=per_run, vmap_grid_samples_per_s=grid, vmap_step_s=t_step,
                   ratio_on_device_vs_dataloader=od / dl, ratio_vmap_grid_vs_dataloader=grid / dl,
                   ratio_vmap_grid_vs_on_device=grid / od)
        out["rows"].append(row)
        print(f"S={bs:5d}  dataloader {dl:10.0f} samples/s | on-device {od:10.0f} ({od / dl:5.2f}x) | "
              f"vmap K={args.k}: {per_run:10.0f}/run, {grid:10.0f} grid ({grid / dl:5.2f}x vs dataloader, "
              f"{grid / od:5.2f}x vs on-device) | {t_step * 1e3:.2f} ms/step (includes per-epoch eval)")
    # Fig. 1 full grid estimate: 5 vmap groups (one per S) × 200 epochs × ⌊55000/S⌋ steps
    fig1_bs = [25, 50, 100, 250, 1000]
    t_meas = None
    if measure and trained:
        t_final, t_tracked, n_tracked = bench_fig1_measurements(trained[-1], data, device)
        # measurements run per run, one after the other inside each vmap group
        t_meas = 25 * (t_final + n_tracked * t_tracked)
        out.update(fig1_measure_final_s=t_final, fig1_measure_tracked_s=t_tracked, fig1_measure_grid_s=t_meas)
    if all(b in step_time for b in fig1_bs):
        est = sum(200 * (55000 // b) * step_time[b] for b in fig1_bs)
        print(f"estimated full fig1 grid (25 runs × 200 epochs, K=5 per group): training {est / 60:.1f} min"
              + (f" + measurements {t_meas / 60:.1f} min = {(est + t_meas) / 60:.1f} min" if t_meas is not None
                 else " (measurements not timed: --measure)") + f" on {device}")
        out["fig1_grid_estimate_s"] = est + (t_meas or 0.0)
        out["fig1_grid_training_estimate_s"] = est
    else:
        known = sorted(step_time)
        print(f"(fig1 grid estimate needs --batch-sizes {' '.join(map(str, fig1_bs))} and --train-size 55000; "
              f"measured {known})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return out


if __name__ == "__main__":
    main()
