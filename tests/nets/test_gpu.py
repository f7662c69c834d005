"""The training path on a CUDA device (``pytest -m gpu``; skipped without CUDA).

Each test has a CPU twin or a CPU parametrisation that runs the same code (tests/nets/test_train_paths.py
tests the graph bookkeeping with a fake graph and the checkpoint path every device takes); what is left
for the GPU is what only the device can show: data and models there, bitwise resume there, real graph
captures, the compiled step, and memory. ``benchmarks/gpu_check.sh`` runs this module on a GPU machine
and writes the JUnit XML.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nets import data as D
from nets import train as T
from nets.train import MODEL, RunConfig, train_group, train_run

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
gpu = [pytest.mark.gpu, needs_cuda]
DEVICES = ["cpu", pytest.param("cuda", marks=gpu)]


@pytest.fixture(autouse=True)
def _deterministic():
    """cuDNN's deterministic kernels, so that a resumed run can be compared bitwise."""
    old = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old


def _cfg(**kw):
    base = dict(name="r", model="mlp4_bn", model_kw=dict(width=32), dataset="fashion-mnist",
                data_kw=dict(val_size=50, train_size=200, test_size=50), lr=0.05, batch_size=32, epochs=3, seed=0,
                loss_log_every=2)
    base.update(kw)
    return RunConfig(**base)


_CIFAR = dict(model="resnet56", model_kw=dict(depth=8, base_width=4), dataset="cifar10", batch_size=25,
              data_kw=dict(val_size=50, train_size=100, test_size=50))


def _states_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


@pytest.mark.gpu
@needs_cuda
def test_data_model_and_results_on_the_device(tiny_root):
    d = D.load("fashion-mnist", data_root=tiny_root, device="cuda", val_size=50, train_size=200, test_size=50)
    assert d.x_train.is_cuda and d.y_train.is_cuda and d.x_val.is_cuda and d.x_test.is_cuda
    m = T.make_model(_cfg(), d, "cuda")
    assert all(p.is_cuda for p in m.parameters()) and all(b.is_cuda for b in m.buffers())
    r = train_run(_cfg(epochs=1), data=d, device="cuda")
    assert r["status"] == "completed" and r["device"].startswith("cuda")
    g = train_group([_cfg(epochs=1)], data=d, device="cuda")[0]
    assert g["step_path"] == "cuda-graph" and g["graph_captures"] == 1


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["mlp", "cifar-augmented"])
def test_single_run_killed_and_resumed_is_identical(tiny_root, tmp_path, device, kind):
    """The bug this guards: a checkpoint loaded with map_location=<cuda> put the CPU RNG state on the
    GPU and torch.set_rng_state raised; every resumed single run on CUDA crashed."""
    c = _cfg(momentum=0.9, **(_CIFAR if kind != "mlp" else {}))
    full = train_run(c, tmp_path / "full", data_root=tiny_root, device=device)
    train_run(c, tmp_path / "cut", data_root=tiny_root, device=device, max_epochs=1)
    resumed = train_run(c, tmp_path / "cut", data_root=tiny_root, device=device)
    assert _states_equal(torch.load(tmp_path / "full" / MODEL), torch.load(tmp_path / "cut" / MODEL))
    for key in ("train_loss", "val_acc", "logged_loss", "train_loss_running"):
        assert full["history"][key] == resumed["history"][key]


@pytest.mark.parametrize("device", DEVICES)
def test_group_killed_and_resumed_is_identical(tiny_root, tmp_path, device):
    cfgs = [_cfg(name="a", seed=0, momentum=0.9), _cfg(name="b", seed=1, lr=0.02)]
    ref = train_group(cfgs, [tmp_path / "ref" / c.name for c in cfgs], data_root=tiny_root, device=device)
    outs = [tmp_path / "cut" / c.name for c in cfgs]
    train_group(cfgs, outs, data_root=tiny_root, device=device, max_epochs=1)
    res = train_group(cfgs, outs, data_root=tiny_root, device=device)
    for c, a, b in zip(cfgs, ref, res):
        assert a["history"]["train_loss"] == b["history"]["train_loss"]
        assert _states_equal(torch.load(tmp_path / "ref" / c.name / MODEL), torch.load(tmp_path / "cut" / c.name / MODEL))


@pytest.mark.gpu
@needs_cuda
def test_vmap_group_matches_separate_runs_on_cuda(tiny_root, tmp_path):
    """As the CPU test: float32 reassociation only (atol 1e-4 on O(1) weights after ~18 steps)."""
    cfgs = [_cfg(name=f"r{i}", seed=i, lr=lr, momentum=m) for i, (lr, m) in enumerate([(0.05, 0.0), (0.02, 0.9)])]
    sep = [train_run(c, tmp_path / "sep" / c.name, data_root=tiny_root, device="cuda") for c in cfgs]
    grp = train_group(cfgs, [tmp_path / "grp" / c.name for c in cfgs], data_root=tiny_root, device="cuda",
                      step_path="eager")
    for c, s, g in zip(cfgs, sep, grp):
        a, b = torch.load(tmp_path / "sep" / c.name / MODEL), torch.load(tmp_path / "grp" / c.name / MODEL)
        for k in a:
            torch.testing.assert_close(a[k].double().cpu(), b[k].double().cpu(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(s["history"]["train_loss"], g["history"]["train_loss"], atol=1e-4, rtol=0)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("kind", ["mlp", "cifar-augmented"])
def test_cuda_graph_matches_eager_and_counts_captures(tiny_root, kind):
    """Real captures: one per distinct batch size, every later step a replay, the trajectory that of
    the eager step (the same kernels on the same inputs; atol 1e-6 allows a different cuBLAS
    workspace choice inside the capture)."""
    extra = _CIFAR if kind != "mlp" else {}
    cyc = {"kind": "cyclic_discrete", "base": 40 if not extra else 25, "peak": 8 if not extra else 10, "period": 2}
    cfgs = [_cfg(**{**extra, "name": f"r{i}", "seed": i, "lr": lr, "momentum": m, "batch_size": cyc})
            for i, (lr, m) in enumerate([(0.05, 0.0), (0.02, 0.9)])]
    d = T.load_data(cfgs[0], "cuda", tiny_root)
    eager = train_group(cfgs, data=d, device="cuda", step_path="eager")
    graphed = train_group(cfgs, data=d, device="cuda", step_path="cuda-graph")
    assert graphed[0]["step_path"] == "cuda-graph" and graphed[0]["graph_captures"] == 2
    assert graphed[0]["graph_replays"] == sum(graphed[0]["history"]["steps"]) - 2 * T._GRAPH_WARMUP
    for a, b in zip(eager, graphed):
        np.testing.assert_allclose(a["history"]["train_loss"], b["history"]["train_loss"], atol=1e-6, rtol=0)
        np.testing.assert_allclose(a["history"]["logged_loss"], b["history"]["logged_loss"], atol=1e-6, rtol=0)


@pytest.mark.gpu
@needs_cuda
def test_compiled_step_matches_eager_on_cuda(tiny_root):
    cfgs = [_cfg(name="a", seed=0, momentum=0.9), _cfg(name="b", seed=1, lr=0.02)]
    d = T.load_data(cfgs[0], "cuda", tiny_root)
    eager = train_group(cfgs, data=d, device="cuda", step_path="eager")
    compiled = train_group(cfgs, data=d, device="cuda", step_path="compiled")
    for a, b in zip(eager, compiled):
        assert b["step_path"] == "compiled"
        np.testing.assert_allclose(a["history"]["train_loss"], b["history"]["train_loss"], atol=1e-4, rtol=0)


@pytest.mark.gpu
@needs_cuda
def test_checkpoints_do_not_cross_devices(tiny_root, tmp_path):
    c = _cfg()
    train_run(c, tmp_path / "gpu", data_root=tiny_root, device="cuda", max_epochs=1)
    with pytest.raises(T.CheckpointError, match="was written on cuda and this run is on cpu"):
        train_run(c, tmp_path / "gpu", data_root=tiny_root, device="cpu")
    train_run(c, tmp_path / "cpu", data_root=tiny_root, device="cpu", max_epochs=1)
    with pytest.raises(T.CheckpointError, match="was written on cpu and this run is on cuda"):
        train_run(c, tmp_path / "cpu", data_root=tiny_root, device="cuda")


def _largest_groups(device):
    """(experiment, configs, synthetic data) of the largest vmap group of every full preset, by estimate,
    with the data set of the paper's size and shape (synthetic: only sizes matter here)."""
    from nets.experiments import EXPERIMENTS, plan
    from nets.runner import make_tasks
    import tempfile
    out = []
    for name, exp in EXPERIMENTS.items():
        p = plan(name, "full")
        with tempfile.TemporaryDirectory() as tmp:
            from pathlib import Path
            tasks = make_tasks(p.runs, Path(tmp), device=device)
        best = None
        for t in tasks:
            cfgs = [RunConfig.from_dict(c) for c in t["configs"]]
            shape = D.SHAPES[D.canonical_name(cfgs[0].dataset)]
            est = T.estimate_group_bytes(cfgs, shape, step_path="cuda-graph")["total"]
            if best is None or est > best[0]:
                best = (est, cfgs)
        c0 = best[1][0]
        n_full = {"cifar10": 50000, "fashion-mnist": 60000, "mnist": 60000}[D.canonical_name(c0.dataset)]
        n_val = c0.data_kw.get("val_size", 5000)
        n_train = c0.data_kw.get("train_size", n_full - n_val)
        out.append((name, best[1], best[0], n_train, n_val))
    return out


@pytest.mark.gpu
@needs_cuda
def test_largest_group_of_every_preset_fits_and_the_estimate_bounds_the_peak():
    """For every full preset, its largest vmap group (by the estimate) on a data set of the paper's
    size: the estimate is below the free memory, and one training step at the largest batch size
    plus one evaluation chunk peak below the estimate (it is an upper bound: 3× activations)."""
    free = T.free_device_bytes("cuda")
    for name, cfgs, est, n_train, n_val in _largest_groups("cuda"):
        assert est < 0.9 * free, f"{name}: {est / 2**30:.1f} GiB estimated, {free / 2**30:.1f} GiB free"
        d = D.synthetic(cfgs[0].dataset, n_train=n_train, n_val=n_val, n_test=10000, device="cuda")
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        g = T._GroupState(cfgs, d, torch.device("cuda"))
        bs = int(max(T.validate(cfgs[0], d.n_train)[1]))
        K = len(cfgs)
        idx = torch.arange(K * bs, device="cuda").view(K, bs) % d.n_train
        aug = None if not d.augment else tuple(a.view(K, bs) for a in D.augmentation_params(
            torch.Generator(device="cuda").manual_seed(0), K * bs))
        z = torch.zeros(K, dtype=torch.float64, device="cuda")
        g.step(idx, aug, torch.full((K,), 0.01, device="cuda"), z, z.clone(), torch.zeros(K, device="cuda"))
        g.evaluate(d.x_test, d.y_test, cfgs[0].eval_batch_size)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        assert peak <= est, f"{name}: peak {peak / 2**20:.0f} MiB above the estimate {est / 2**20:.0f} MiB"
        del g, d
        torch.cuda.empty_cache()
