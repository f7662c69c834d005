"""Trainer: resume is bitwise, LR/BS-schedule equivalence, divergence, vmap group == separate runs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nets import data as D
from nets.schedules import lr_equivalent_batch_spec
from nets.train import (CHECKPOINT, MODEL, RESULT, ConfigError, RunConfig, train_group, train_run, validate)


def _cfg(**kw):
    base = dict(name="r", model="mlp4_bn", model_kw=dict(width=16), dataset="fashion-mnist",
                data_kw=dict(val_size=50, train_size=200, test_size=50), lr=0.05, batch_size=32, epochs=2, seed=0)
    base.update(kw)
    return RunConfig(**base)


def _states_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kw", [
    dict(momentum=0.9, data_kw=dict(val_size=50, train_size=200, test_size=50, random_label_fraction=0.2)),
    dict(model="resnet56", model_kw=dict(depth=8, base_width=2), dataset="cifar10", batch_size=50,
         data_kw=dict(val_size=50, train_size=100, test_size=50)),   # exercises the on-device augmentation
])
def test_resume_is_bitwise(tiny_root, tmp_path, kw):
    cfg = _cfg(**kw)
    full = train_run(cfg, tmp_path / "full", data_root=tiny_root)
    part = train_run(cfg, tmp_path / "cut", data_root=tiny_root, max_epochs=1)   # "killed" after epoch 1
    assert part["status"] == "interrupted" and (tmp_path / "cut" / CHECKPOINT).is_file()
    assert not (tmp_path / "cut" / RESULT).exists()
    resumed = train_run(cfg, tmp_path / "cut", data_root=tiny_root)
    assert resumed["status"] == full["status"] == "completed"
    a = torch.load(tmp_path / "full" / MODEL)
    b = torch.load(tmp_path / "cut" / MODEL)
    assert _states_equal(a, b)
    for k in ("train_loss", "val_acc", "test_loss", "train_loss_running", "lr", "batch_size"):
        assert full["history"][k] == resumed["history"][k]
    on_disk = json.loads((tmp_path / "cut" / RESULT).read_text())
    assert on_disk["history"]["train_loss"] == full["history"]["train_loss"]
    assert not list((tmp_path / "cut").glob("*.tmp"))   # atomic writes leave no temp files


def test_checkpoint_for_other_config_is_refused(tiny_root, tmp_path):
    train_run(_cfg(epochs=2), tmp_path, data_root=tiny_root, max_epochs=1)
    with pytest.raises(ConfigError, match="different config"):
        train_run(_cfg(epochs=2, lr=0.01), tmp_path, data_root=tiny_root)


@pytest.mark.parametrize("kind", ["cyclic_discrete", "cyclic_triangular"])
def test_lr_schedule_and_equivalent_bs_schedule_same_noise(tiny_root, kind):
    lr_spec = {"kind": kind, "base": 0.001, "peak": 0.005, "period": 4}
    S0, epochs = 8, 8
    a = train_run(_cfg(lr=lr_spec, batch_size=S0, epochs=epochs), data_root=tiny_root)
    b = train_run(_cfg(lr=0.005, batch_size=lr_equivalent_batch_spec(lr_spec, S0, 0.005), epochs=epochs),
                  data_root=tiny_root)
    na, nb = np.array(a["history"]["noise"]), np.array(b["history"]["noise"])
    assert len(na) == len(nb) == epochs
    assert len(set(b["history"]["batch_size"])) > 1 and len(set(a["history"]["lr"])) > 1
    if kind == "cyclic_discrete":   # S' = 0.005·8/lr ∈ {40, 8}: integers, so η/S is equal exactly
        np.testing.assert_array_equal(na, nb)
        assert b["noise_rounding_rel_error"] == 0.0
    else:                           # rounding S' to an integer: relative error ≤ 0.5/S' ≤ 0.5/8
        rel = np.abs(na - nb) / na
        assert np.all(rel <= 0.5 / np.array(b["history"]["batch_size"]) + 1e-15)
        assert b["noise_rounding_rel_error"] == pytest.approx(rel.max(), rel=1e-9)


def test_divergence_detected_and_recorded(tiny_root, tmp_path):
    r = train_run(_cfg(model="mlp20", model_kw=dict(width=16, depth=4), lr=1e4, epochs=3), tmp_path,
                  data_root=tiny_root)
    assert r["status"] == "diverged" and r["diverged"] and r["diverged_epoch"] == 1
    assert len(r["history"]["epoch"]) == 1                   # the run stopped
    assert json.loads((tmp_path / RESULT).read_text())["status"] == "diverged"


def test_config_validation(tiny_root):
    d = D.load("fashion-mnist", data_root=tiny_root, val_size=50, train_size=100)
    with pytest.raises(ConfigError, match="lr must be > 0"):
        validate(_cfg(lr=0.0), d.n_train)
    with pytest.raises(ConfigError, match="batch_size must be <= "):
        validate(_cfg(batch_size=101), d.n_train)
    with pytest.raises(ConfigError, match="batch_size must be >= 1"):
        validate(_cfg(batch_size=0), d.n_train)
    with pytest.raises(ConfigError, match="momentum"):
        validate(_cfg(momentum=1.0), d.n_train)


def test_vmap_group_matches_separate_runs(tiny_root, tmp_path):
    """K runs trained together (vmap) = K separate runs with the same seeds, to float32 tolerance.

    Same init, data order and lr per run; only the summation order inside batched kernels differs
    (float32 eps 1.2e-7 per op, amplified over ~14 steps of a 16-wide net): atol 1e-4 on weights of
    size O(0.1–1) and on the per-epoch losses is ~100× that noise and far below any real mismatch
    (a different batch or lr changes the weights by > 1e-2).
    """
    d = D.load("fashion-mnist", data_root=tiny_root, val_size=50, train_size=230, test_size=50,
               random_label_fraction=0.1)
    dk = dict(val_size=50, train_size=230, test_size=50, random_label_fraction=0.1)
    cfgs = [_cfg(name=f"r{i}", seed=s, lr=lr, momentum=m, data_kw=dk, weight_decay=wd)
            for i, (s, lr, m, wd) in enumerate([(0, 0.05, 0.0, 0.0), (1, 0.02, 0.9, 1e-3),
                                                (2, {"kind": "step", "base": 0.1, "milestones": [1],
                                                     "factor": 0.1}, 0.0, 0.0)])]
    sep = [train_run(c, tmp_path / "sep" / c.name, data=d) for c in cfgs]
    grp = train_group(cfgs, [tmp_path / "grp" / c.name for c in cfgs], data=d)
    for c, s, g in zip(cfgs, sep, grp):
        assert g["status"] == s["status"] == "completed"
        a = torch.load(tmp_path / "sep" / c.name / MODEL)
        b = torch.load(tmp_path / "grp" / c.name / MODEL)
        for k in a:
            torch.testing.assert_close(a[k].double(), b[k].double(), atol=1e-4, rtol=0)
        for k in ("train_loss", "val_loss", "test_loss", "train_loss_running"):
            np.testing.assert_allclose(s["history"][k], g["history"][k], atol=1e-4, rtol=0)
        for k in ("lr", "batch_size", "train_acc_true_labels"):
            assert len(s["history"][k]) == len(g["history"][k]) == 2
    # different seeds really give different runs (the comparison above can fail)
    a0 = torch.load(tmp_path / "sep" / "r0" / MODEL)
    a1 = torch.load(tmp_path / "sep" / "r1" / MODEL)
    assert not torch.allclose(a0["net.1.weight"], a1["net.1.weight"], atol=1e-2)


def test_vmap_group_divergence_is_per_run_and_group_resumes(tiny_root, tmp_path):
    d = D.load("fashion-mnist", data_root=tiny_root, val_size=50, train_size=200, test_size=50)
    cfgs = [_cfg(name="ok", lr=0.05, epochs=2), _cfg(name="boom", model_kw=dict(width=16), lr=1e5, epochs=2,
                                                        max_loss=20.0)]
    outs = [tmp_path / c.name for c in cfgs]
    part = train_group(cfgs, outs, data=d, max_epochs=1)
    assert part[0]["status"] == "interrupted"
    assert part[1]["status"] == "diverged"      # stops at epoch 1, result written
    res = train_group(cfgs, outs, data=d)       # resumes the group from its checkpoint
    assert res[0]["status"] == "completed" and len(res[0]["history"]["epoch"]) == 2
    assert res[1]["status"] == "diverged" and res[1]["diverged_epoch"] == 1
    ref = train_run(cfgs[0], tmp_path / "ref", data=d)
    a, b = torch.load(outs[0] / MODEL), torch.load(tmp_path / "ref" / MODEL)
    for k in a:  # same float tolerance argument as in the test above
        torch.testing.assert_close(a[k].double(), b[k].double(), atol=1e-4, rtol=0)


class _FakeGraphOps:
    """Stands in for CUDA graphs on CPU: 'capture' records the step closure (without running it,
    like a real capture), 'replay' calls it. Tests the replay bookkeeping of train_group."""
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


def test_graph_replay_logic_matches_eager(tiny_root, monkeypatch):
    import nets.train as T
    d = D.load("fashion-mnist", data_root=tiny_root, val_size=50, train_size=200, test_size=50)
    cyc = {"kind": "cyclic_discrete", "base": 0.01, "peak": 0.05, "period": 2}
    cfgs = [_cfg(name=f"r{i}", seed=i, lr=lr, momentum=m, epochs=3,
                 batch_size=lr_equivalent_batch_spec(cyc, 8, 0.05)) for i, (lr, m) in enumerate([(0.05, 0.0),
                                                                                                 (0.02, 0.9)])]
    eager = train_group(cfgs, data=d)
    monkeypatch.setattr(T, "GRAPH_OPS", _FakeGraphOps)
    graphed = train_group(cfgs, data=d, cuda_graphs=True)
    assert _FakeGraphOps.captured == 2          # batch sizes 40 and 8: one graph each, reused in epoch 3
    for a, b in zip(eager, graphed):
        # identical operations in identical order: bitwise equal on CPU
        assert a["history"]["train_loss"] == b["history"]["train_loss"]
        assert a["history"]["train_loss_running"] == b["history"]["train_loss_running"]
