"""Benchmark the curvature measurements (nets.measure / nets.geometry) on fig1's BN MLP.

Measured in one process, on the same model (``mlp4_bn``, trained for a few SGD steps) and the
same training subset:

1. top Hessian eigenvalue by the device Lanczos (``method="lanczos"``) against ARPACK
   (``method="scipy"``: scipy ``eigsh`` on the host in float64, one device-host copy per
   product), with the same tolerance, start vector and Hessian-vector products: wall times,
   products used, time per product beyond the product itself, and their ratio
   (:func:`compare_lanczos`);
2. the wall time of each measurement of fig1's full-preset set (``nets.experiments.FULL_MEASURE``
   plus ``FULL_ALIGNMENT``, taken at the end of every run; the alignment alone is also taken 7
   more times during training), through :func:`nets.measurements.measure_model`, and the implied
   measurement time per run and for the 25-run grid.

On a CPU the full set on 2,250 samples takes many minutes: ``--samples`` shrinks the subset
(default 2250 on CUDA, 256 on a CPU; the per-sample-gradient measurements use min(samples, 128)).

    python benchmarks/bench_measure.py                         # CPU: small subset
    python benchmarks/bench_measure.py --device cuda --json out.json

:func:`time_measurements` and :func:`compare_lanczos` are importable by other benchmarks.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Union

import numpy as np
import torch
from torch import nn

# the checkout's packages, not an installed copy
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _as_device_data(data_or_xy, device):
    """A :class:`nets.data.DeviceData` on ``device`` from itself or from an (x, y) training pair."""
    from nets import data as D
    if isinstance(data_or_xy, D.DeviceData):
        if data_or_xy.device != torch.device(device):
            raise ValueError(f"data_or_xy is on {data_or_xy.device}, not on device {device}")
        return data_or_xy
    x, y = (torch.as_tensor(t).to(device) for t in data_or_xy)
    z = torch.zeros(1, device=device)
    return D.DeviceData("benchmark", x, y, x[:1], y[:1], x[:1], y[:1], int(y.max()) + 1, z, z + 1)


def time_measurements(model: nn.Module, data_or_xy: Union["object", tuple], spec: dict, device) -> dict:
    """Wall time of each measurement of ``spec`` on ``model`` (on ``device``, via
    :func:`nets.measurements.measure_model`; CUDA is synchronised around each measurement).

    ``data_or_xy``: a :class:`nets.data.DeviceData` or an ``(x, y)`` pair of training inputs and
    labels. Returns ``{"measure_wall_s": total s, "measure_wall_s_by_key": {key: s},
    "errors": {key: message}, "convergence": {eigenvalue key: converged}, "result": measure_model's
    dict}``.
    """
    from nets.measurements import measure_model
    data = _as_device_data(data_or_xy, device)
    model = model.to(device)
    res = measure_model(model, data, spec)
    return {"measure_wall_s": res["measure_wall_s"], "measure_wall_s_by_key": dict(res["measure_wall_s_by_key"]),
            "errors": {k: v["error"] for k, v in res.items() if isinstance(v, dict) and "error" in v},
            "convergence": {k: v["converged"] for k, v in res.items()
                            if isinstance(v, dict) and "converged" in v},
            "result": res}


def fig1_full_spec(samples: int | None = None) -> dict:
    """fig1's full-preset end-of-run measurement set; ``samples`` shrinks its subset."""
    from nets.experiments import FULL_ALIGNMENT, FULL_MEASURE
    spec = {k: (dict(v) if isinstance(v, dict) else v) for k, v in FULL_MEASURE.items()}
    spec["alignment"] = dict(FULL_ALIGNMENT)
    if samples is not None:
        spec["samples"] = int(samples)
        for key in ("gradient_noise_stats", "alignment"):
            spec[key]["samples"] = min(spec[key]["samples"], int(samples))
    return spec


def get_data(args, device):
    from nets import data as D
    n = max(args.samples, 1024)
    try:
        if args.synthetic:
            raise D.DatasetNotFoundError("synthetic data requested")
        return D.load("fashion-mnist", data_root=args.data_root, device=device, val_size=1000,
                      train_size=n, test_size=100), "fashion-mnist"
    except D.DatasetNotFoundError:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (n,), generator=g)
        return _as_device_data((x, y), device), "synthetic"


def trained_model(data, width, steps, device, lr=0.05, batch_size=100):
    """fig1's BN MLP after ``steps`` SGD steps (a model away from its initialisation)."""
    from nets.models import build_model
    model = build_model("mlp4_bn", in_shape=data.input_shape, num_classes=data.num_classes, seed=0,
                        width=width).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    g = torch.Generator(device=data.device).manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, data.n_train, (batch_size,), generator=g, device=data.device)
        loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def compare_lanczos(model, x, y, *, k=1, tol=1e-4, seed=0) -> dict:
    """Top-k Hessian eigenvalues of ``model`` on (x, y) by the device Lanczos and by scipy eigsh
    (ARPACK on the host), same tolerance, start vector and products, on the model's device:
    wall times, products used, time per product beyond one HVP, their ratio and the relative
    difference of the eigenvalues."""
    from nets import measure as M
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    loss = nn.CrossEntropyLoss()
    p = sum(t.numel() for t in model.parameters() if t.requires_grad)
    v = torch.randn(p, generator=torch.Generator().manual_seed(1))
    M.hessian_vector_product(model, loss, x, y, v)                     # warm-up
    _sync(device)
    t = time.perf_counter()
    n_hvp = 5
    for _ in range(n_hvp):
        M.hessian_vector_product(model, loss, x, y, v)
    _sync(device)
    t_hvp = (time.perf_counter() - t) / n_hvp
    out = {"hvp_s": t_hvp, "params": p}
    for method in ("lanczos", "scipy"):
        _sync(device)
        t = time.perf_counter()
        r = M.hessian_top_eigenvalues(model, loss, x, y, k=k, tol=tol, seed=seed, method=method, return_info=True)
        _sync(device)
        dt = time.perf_counter() - t
        out[method] = dict(wall_s=dt, products=int(r.iterations), converged=bool(r.converged),
                           eigenvalues=r.eigenvalues.tolist(),
                           overhead_per_product_s=(dt - r.iterations * t_hvp) / max(r.iterations, 1))
    out["ratio_scipy_over_lanczos"] = out["scipy"]["wall_s"] / out["lanczos"]["wall_s"]
    dev, ref = np.array(out["lanczos"]["eigenvalues"]), np.array(out["scipy"]["eigenvalues"])
    out["relative_difference"] = float(np.max(np.abs(dev - ref) / np.abs(ref)))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--width", type=int, default=512, help="hidden width of fig1's BN MLP (default 512)")
    p.add_argument("--samples", type=int, default=None,
                   help="measurement subset size (default 2250, fig1's; 256 on a CPU)")
    p.add_argument("--train-steps", type=int, default=20, help="SGD steps before measuring (default 20)")
    p.add_argument("--k", type=int, default=1, help="eigenvalues for the Lanczos comparison (default 1)")
    p.add_argument("--tol", type=float, default=None,
                   help="Lanczos tolerance (default fig1's hessian_top_eigenvalue tol, 1e-4)")
    p.add_argument("--no-set", action="store_true", help="only the Lanczos comparison, not the measurement set")
    p.add_argument("--data-root", default=None)
    p.add_argument("--synthetic", action="store_true", help="random data instead of Fashion-MNIST")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="also write the numbers to this file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.samples is None:
        args.samples = 2250 if device.type == "cuda" else 256
    from nets.experiments import FULL_MEASURE
    from nets.measurements import _measure_inputs
    tol = FULL_MEASURE["hessian_top_eigenvalue"]["tol"] if args.tol is None else args.tol
    data, name = get_data(args, device)
    model = trained_model(data, args.width, args.train_steps, device)
    spec = fig1_full_spec(args.samples)
    x, y = _measure_inputs(data, spec["samples"], spec.get("seed", 0))
    out = {"device": str(device), "data": name, "width": args.width, "samples": int(x.shape[0]),
           "threads": torch.get_num_threads()}
    lz = compare_lanczos(model, x, y, k=args.k, tol=tol)
    out["lanczos"] = lz
    print(f"device={device} data={name} mlp4_bn(width={args.width}) p={lz['params']} samples={x.shape[0]} "
          f"threads={torch.get_num_threads()}; one HVP {lz['hvp_s'] * 1e3:.1f} ms")
    for method in ("lanczos", "scipy"):
        r = lz[method]
        print(f"  top-{args.k} eigenvalue, tol {tol:g}, {method:7s}: {r['wall_s']:7.2f} s, "
              f"{r['products']:3d} products, "
              f"{r['overhead_per_product_s'] * 1e3:7.1f} ms/product beyond the HVP, converged={r['converged']}, "
              f"λ={np.round(r['eigenvalues'], 4).tolist()}")
    print(f"  scipy eigsh / device Lanczos wall time: {lz['ratio_scipy_over_lanczos']:.2f}x "
          f"(eigenvalues agree to {lz['relative_difference']:.1e} relative)")
    if not args.no_set:
        timed = time_measurements(model, data, spec, device)
        align = time_measurements(model, data, {"samples": spec["samples"], "alignment": spec["alignment"]}, device)
        per_run = timed["measure_wall_s"] + 7 * align["measure_wall_s"]
        out.update(set=timed["measure_wall_s_by_key"], set_wall_s=timed["measure_wall_s"],
                   tracked_alignment_s=align["measure_wall_s"], per_run_s=per_run, grid_25_runs_s=25 * per_run,
                   errors=timed["errors"], convergence=timed["convergence"])
        print(f"fig1 full measurement set on {spec['samples']} samples "
              f"(noise statistics and alignment on {spec['gradient_noise_stats']['samples']}):")
        for key, s in timed["measure_wall_s_by_key"].items():
            print(f"  {key:30s} {s:8.2f} s")
        print(f"  {'total (end of run)':30s} {timed['measure_wall_s']:8.2f} s; alignment alone (tracked) "
              f"{align['measure_wall_s']:.2f} s")
        print(f"per run: end-of-run set + 7 tracked alignments = {per_run:.1f} s; 25 runs: {25 * per_run / 60:.1f} min"
              + (f"; errors: {timed['errors']}" if timed["errors"] else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
