"""Step paths, checkpoints, per-step loss log, convergence and the memory guard of nets.train.

Each GPU-relevant behaviour is tested here on the CPU through the same code path (the CUDA-graph
bookkeeping with a fake graph, the checkpoint load that every device takes); tests/nets/test_gpu.py
repeats the device-specific parts on CUDA.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nets import data as D
from nets import train as T
from nets.train import (CHECKPOINT, GROUP_CHECKPOINT, MODEL, RESULT, CheckpointError, ConfigError, GroupMemoryError,
                        RunConfig, train_group, train_run)


def _cfg(**kw):
    base = dict(name="r", model="mlp4_bn", model_kw=dict(width=16), dataset="fashion-mnist",
                data_kw=dict(val_size=50, train_size=200, test_size=50), lr=0.05, batch_size=32, epochs=2, seed=0)
    base.update(kw)
    return RunConfig(**base)


_CIFAR = dict(model="resnet56", model_kw=dict(depth=8, base_width=2), dataset="cifar10", batch_size=25,
              data_kw=dict(val_size=50, train_size=100, test_size=50))


class _FakeGraphOps:
    """CUDA graphs on CPU: 'capture' records the step closure without running it (as a real capture
    does not advance the state), 'replay' calls it."""
    captured = 0

    @staticmethod
    def supported(device):
        return True

    @staticmethod
    def warmup_context():
        import contextlib
        return contextlib.nullcontext()

    @classmethod
    def capture(cls, fn):
        cls.captured += 1
        return fn

    @staticmethod
    def replay(graph):
        graph()


class _FailingGraphOps(_FakeGraphOps):
    @classmethod
    def capture(cls, fn):
        raise RuntimeError("operation not permitted when stream is capturing")


# ----------------------------------------------------------------------------- step paths
def test_step_path_names_are_checked():
    with pytest.raises(ConfigError, match=r"step_path must be one of auto, cuda-graph, compiled, eager, got 'graph'"):
        T.resolve_step_path("graph", "cpu")
    with pytest.raises(ConfigError, match=r"step_path 'cuda-graph' needs a CUDA device, got cpu"):
        T.resolve_step_path("cuda-graph", "cpu")
    assert T.resolve_step_path("auto", "cpu") == "eager"
    assert T.resolve_step_path("compiled", "cpu") == "compiled"


def test_results_record_the_step_path(tiny_root):
    d = D.load("fashion-mnist", data_root=tiny_root, val_size=50, train_size=200, test_size=50)
    r = train_group([_cfg(epochs=1)], data=d)[0]
    assert r["step_path"] == "eager" and r["trainer"] == "train_group" and r["graph_captures"] == 0
    assert train_run(_cfg(epochs=1), data=d)["step_path"] == "eager"


@pytest.mark.parametrize("kind", ["mnist-like", "cifar-augmented"])
def test_graph_replay_matches_eager_bitwise_and_counts_captures(tiny_root, monkeypatch, kind):
    """Replaying the captured step (fake graph on CPU) runs the same ops on the same inputs as the
    eager loop, so the trajectories are bitwise equal; one capture per distinct batch size, and every
    step after the warm-up of a batch size's first epoch is a replay. With augmentation the crops
    and flips are static graph inputs copied in per step (no random draw inside the graph)."""
    extra = _CIFAR if kind == "cifar-augmented" else {}
    cyc = {"kind": "cyclic_discrete", "base": 40 if not extra else 25, "peak": 8 if not extra else 10, "period": 2}
    cfgs = [_cfg(**{**extra, "name": f"r{i}", "seed": i, "lr": lr, "momentum": m, "epochs": 3, "batch_size": cyc})
            for i, (lr, m) in enumerate([(0.05, 0.0), (0.02, 0.9)])]
    d = T.load_data(cfgs[0], "cpu", tiny_root)
    assert d.augment == bool(extra)
    eager = train_group(cfgs, data=d)
    monkeypatch.setattr(T, "GRAPH_OPS", _FakeGraphOps)
    _FakeGraphOps.captured = 0
    graphed = train_group(cfgs, data=d, step_path="cuda-graph")
    assert _FakeGraphOps.captured == 2 == graphed[0]["graph_captures"]
    steps = graphed[0]["history"]["steps"]
    assert graphed[0]["graph_replays"] == sum(steps) - 2 * T._GRAPH_WARMUP
    for a, b in zip(eager, graphed):
        assert b["step_path"] == "cuda-graph"
        for key in ("train_loss", "train_loss_running", "logged_loss", "val_acc"):
            assert a["history"][key] == b["history"][key]


def test_failed_capture_is_an_error_naming_the_way_out(tiny_root, monkeypatch):
    d = D.load("fashion-mnist", data_root=tiny_root, val_size=50, train_size=200, test_size=50)
    monkeypatch.setattr(T, "GRAPH_OPS", _FailingGraphOps)
    with pytest.raises(T.StepPathError, match=r"CUDA graph capture .* failed at batch size 32 .*--eager"):
        train_group([_cfg(epochs=1)], data=d, step_path="cuda-graph")
    assert train_group([_cfg(epochs=1)], data=d, step_path="eager")[0]["status"] == "completed"


def test_compiled_path_matches_eager(tiny_root):
    """torch.compile of the functional step vs the in-place eager step: same arithmetic up to the
    reassociation of fused kernels (float32, ~1e-7 per op over 12 steps of a 16-wide net: weights
    agree to ~1e-5; atol 1e-4, as for vmap vs separate runs), while one step more or a different lr
    moves the weights by > 1e-2."""
    d = D.load("fashion-mnist", data_root=tiny_root, val_size=50, train_size=200, test_size=50)
    cfgs = [_cfg(name="a", seed=0, momentum=0.9), _cfg(name="b", seed=1, lr=0.02)]
    eager = train_group(cfgs, data=d)
    compiled = train_group(cfgs, data=d, step_path="compiled")
    for a, b in zip(eager, compiled):
        assert b["step_path"] == "compiled"
        np.testing.assert_allclose(a["history"]["train_loss"], b["history"]["train_loss"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(a["history"]["logged_loss"], b["history"]["logged_loss"], atol=1e-4, rtol=0)


def test_group_of_one_matches_the_reference_trainer(tiny_root, tmp_path):
    """train_group (vmap, K = 1) against train_run (torch.optim.SGD): the same init, batches, crops
    and lr; float reassociation only (tolerance as in test_vmap_group_matches_separate_runs), also
    with augmentation, since both draw the epoch's crops the same way (nets.train.epoch_order)."""
    for i, kw in enumerate([dict(momentum=0.9), _CIFAR]):
        c = _cfg(name=f"c{i}", **kw)
        ref = train_run(c, tmp_path / f"ref{i}", data_root=tiny_root)
        grp = train_group([c], [tmp_path / f"grp{i}"], data_root=tiny_root)[0]
        a, b = torch.load(tmp_path / f"ref{i}" / MODEL), torch.load(tmp_path / f"grp{i}" / MODEL)
        for k in a:
            torch.testing.assert_close(a[k].double(), b[k].double(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(ref["history"]["logged_loss"], grp["history"]["logged_loss"], atol=1e-4, rtol=0)


# ----------------------------------------------------------------------------- per-step loss log
def test_logged_losses_are_the_minibatch_losses_at_the_stated_stride(tiny_root):
    """The first logged value is the cross-entropy of epoch 0's first minibatch at the initial weights,
    recomputed here from the model builder and the documented epoch order; the logged steps are every
    ``loss_log_every``-th global step across epochs."""
    d = D.load("fashion-mnist", data_root=tiny_root, val_size=50, train_size=200, test_size=50)
    c = _cfg(epochs=3, loss_log_every=4, batch_size=32)                     # 6 steps per epoch
    r = train_run(c, data=d)
    assert r["history"]["logged_step"] == [0, 4, 8, 12, 16]
    m = T.make_model(c, d, "cpu")
    perm, _ = T.epoch_order(c.seed, 0, d, 6 * 32)
    idx = perm[:32]
    with torch.no_grad():
        first = float(F.cross_entropy(m(d.x_train[idx]), d.y_train[idx]))
    assert r["history"]["logged_loss"][0] == pytest.approx(first, rel=1e-6)
    g = train_group([c, _cfg(name="other", seed=1, epochs=3, loss_log_every=4)], data=d)
    assert g[0]["history"]["logged_step"] == r["history"]["logged_step"]
    np.testing.assert_allclose(g[0]["history"]["logged_loss"], r["history"]["logged_loss"], atol=1e-4, rtol=0)
    assert g[1]["history"]["logged_loss"][0] != pytest.approx(first, rel=1e-3)   # another seed: another batch
    assert train_run(_cfg(epochs=1, loss_log_every=0), data=d)["history"]["logged_step"] == []
    with pytest.raises(ConfigError, match="loss_log_every must be an integer >= 0"):
        T.validate(_cfg(loss_log_every=-1), 200)


# ----------------------------------------------------------------------------- convergence
def _hist(loss, acc):
    return dict(train_loss=list(loss), train_acc=list(acc))


@pytest.mark.parametrize("loss,acc,expected", [
    ([1.0] * 9 + [0.051, 0.05, 0.049], [0.5] * 11 + [0.995], True),  # fits, flat over the last 2 of 12 epochs
    ([1.0] * 9 + [0.3, 0.2, 0.1], [0.5] * 11 + [0.995], False),      # still falling: 0.2 nats over 2 epochs
    ([0.05] * 12, [0.98] * 12, False),                            # flat but does not fit its data
    ([0.04, 0.03], [0.999, 0.999], True),                         # two epochs: window of one
    ([0.05], [1.0], False),                                       # one epoch: no window
    ([0.05] * 11 + [float("nan")], [0.999] * 12, False),          # a NaN loss never counts as flat
    ([2e-4] * 11 + [1.1e-2], [1.0] * 11 + [0.995], False),        # measured inside a late loss spike (55x median)
    ([2e-4] * 9 + [9e-3, 2e-4, 3e-4], [1.0] * 12, True),          # a spike that has passed: end within 3x median
])
def test_convergence_criterion(loss, acc, expected):
    c = T.convergence(_hist(loss, acc))
    assert c["converged"] is expected
    assert c["criterion"] == T.CONVERGENCE_CRITERION
    if len(loss) >= 10:
        assert c["window_epochs"] == math.ceil(0.1 * len(loss))
    if not expected and len(loss) > 1:
        assert c["reason"]
    if loss[-1] == 1.1e-2:
        assert "loss spike" in c["reason"] and c["loss_over_median"] == pytest.approx(55.0)


def test_results_carry_convergence(tiny_root, tmp_path):
    r = train_run(_cfg(epochs=2), tmp_path, data_root=tiny_root)
    on_disk = json.loads((tmp_path / RESULT).read_text())
    assert on_disk["converged"] == r["converged"] == r["convergence"]["converged"]
    assert isinstance(r["converged"], bool) and "train accuracy" in r["convergence"]["criterion"]


# ----------------------------------------------------------------------------- checkpoints
def test_checkpoints_load_on_the_cpu_whatever_the_device(tiny_root, tmp_path, monkeypatch):
    """Every resume goes through load_checkpoint, which maps to the CPU (RNG states must stay CPU byte
    tensors: loading with map_location=<cuda device> is what broke CUDA resumes) and then moves model
    and optimiser state to the run's device; this is the path a CUDA resume takes."""
    c = _cfg(epochs=2, momentum=0.9)
    train_run(c, tmp_path, data_root=tiny_root, max_epochs=1)
    seen = []
    real = torch.load

    def spy(*a, **kw):
        seen.append(kw.get("map_location"))
        return real(*a, **kw)

    monkeypatch.setattr(torch, "load", spy)
    ck = T.load_checkpoint(tmp_path / CHECKPOINT, "cpu")
    assert seen == ["cpu"]
    assert ck["rng"]["cpu"].dtype == torch.uint8 and ck["rng"]["cpu"].device.type == "cpu"
    assert ck["meta"] == dict(format=T.CHECKPOINT_FORMAT, torch_version=torch.__version__, device_type="cpu")
    torch.manual_seed(123)
    T.restore_rng(ck["rng"], torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), ck["rng"]["cpu"])
    r = train_run(c, tmp_path, data_root=tiny_root)
    assert r["status"] == "completed" and not (tmp_path / CHECKPOINT).exists()   # removed once the result is written


@pytest.mark.parametrize("field,value,match", [
    ("torch_version", "1.0.0", r"was written by torch 1\.0\.0 and this is torch .*remove the file to restart"),
    ("device_type", "cuda", r"was written on cuda and this run is on cpu.*--device cuda"),
    ("format", 1, r"has checkpoint format 1"),
])
def test_checkpoint_from_another_device_or_version_is_refused_and_kept(tiny_root, tmp_path, field, value, match):
    c = _cfg(epochs=2)
    train_run(c, tmp_path, data_root=tiny_root, max_epochs=1)
    ck = torch.load(tmp_path / CHECKPOINT, weights_only=False)
    ck["meta"][field] = value
    torch.save(ck, tmp_path / CHECKPOINT)
    with pytest.raises(CheckpointError, match=match) as err:
        train_run(c, tmp_path, data_root=tiny_root)
    assert str(tmp_path / CHECKPOINT) in str(err.value)
    assert (tmp_path / CHECKPOINT).is_file()                 # nothing lost


def test_corrupt_checkpoint_is_set_aside_and_the_run_restarts(tiny_root, tmp_path):
    c = _cfg(epochs=2)
    ref = train_run(c, tmp_path / "ref", data_root=tiny_root)
    train_run(c, tmp_path / "cut", data_root=tiny_root, max_epochs=1)
    blob = (tmp_path / "cut" / CHECKPOINT).read_bytes()
    (tmp_path / "cut" / CHECKPOINT).write_bytes(blob[: len(blob) // 2])      # truncated by a crash
    with pytest.warns(UserWarning, match=r"unreadable checkpoint .* kept aside as checkpoint\.pt\.corrupt"):
        r = train_run(c, tmp_path / "cut", data_root=tiny_root)
    assert (tmp_path / "cut" / (CHECKPOINT + ".corrupt")).is_file()
    assert r["history"]["train_loss"] == ref["history"]["train_loss"]       # retrained from scratch, same numbers


def test_corrupt_result_counts_as_unfinished(tiny_root, tmp_path):
    train_run(_cfg(epochs=1), tmp_path, data_root=tiny_root)
    (tmp_path / RESULT).write_text('{"status": "compl')
    with pytest.warns(UserWarning, match=r"unreadable result .* kept aside as result\.json\.corrupt"):
        assert T.load_result(tmp_path) is None
    assert (tmp_path / (RESULT + ".corrupt")).is_file()


def test_group_resume_restores_state_through_the_cpu_load(tiny_root, tmp_path):
    """A vmap group killed after epoch 1 and rerun resumes from its checkpoint (stacked parameters,
    buffers, momentum and RNG loaded on the CPU, copied to the device) bitwise; the checkpoint is
    removed once every result is written."""
    d = D.load("fashion-mnist", data_root=tiny_root, val_size=50, train_size=200, test_size=50)
    cfgs = [_cfg(name="a", seed=0, momentum=0.9, epochs=3), _cfg(name="b", seed=1, lr=0.02, epochs=3)]
    ref = train_group(cfgs, [tmp_path / "ref" / c.name for c in cfgs], data=d)
    outs = [tmp_path / "cut" / c.name for c in cfgs]
    train_group(cfgs, outs, data=d, max_epochs=1)
    assert (outs[0] / GROUP_CHECKPOINT).is_file()
    res = train_group(cfgs, outs, data=d)
    assert not (outs[0] / GROUP_CHECKPOINT).exists()
    for a, b in zip(ref, res):
        assert a["history"]["train_loss"] == b["history"]["train_loss"]
        assert a["history"]["logged_loss"] == b["history"]["logged_loss"]


# ----------------------------------------------------------------------------- memory guard
def test_group_memory_estimate_and_guard(tiny_root):
    d = D.load("fashion-mnist", data_root=tiny_root, val_size=50, train_size=200, test_size=50)
    cfgs = [_cfg(name=f"r{i}", seed=i, model_kw=dict(width=512)) for i in range(4)]
    est = T.estimate_group_bytes(cfgs, d.input_shape)
    n_par = sum(p.numel() for p in T.make_model(cfgs[0], d, "cpu").parameters())
    assert est["parameters"] >= 4 * 4 * n_par and est["gradients"] == 4 * 4 * n_par
    assert est["total"] == sum(v for k, v in est.items() if k != "total")
    assert T.estimate_group_bytes(cfgs[:2], d.input_shape)["total"] < est["total"]    # fewer runs, less memory
    with pytest.raises(GroupMemoryError, match=r"group fig1/full group 3 \(4 runs: r0, r1, r2, r3\) needs an estimated "
                                               r"[0-9.]+ GiB on cpu but [0-9.]+ GiB are free: use --max-group 1"):
        T.check_group_fits(cfgs, d, "cpu", label="fig1/full group 3", free=int(est["total"] / 4 * 1.5))
    with pytest.raises(GroupMemoryError, match="a single run does not fit"):
        T.check_group_fits(cfgs, d, "cpu", free=1000)
    assert T.check_group_fits(cfgs, d, "cpu", free=10 * est["total"])["total"] == est["total"]
