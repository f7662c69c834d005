"""SVAG on networks (nets.svag): l = 1 is the SGD trainer bit for bit, one step is the weighted
two-half gradient step with BatchNorm statistics per half, the step's law has SVAG's exact moments,
resume is bitwise, the svag preset runs, bad input is named."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from nets import data as D
from nets.svag import SVAGRunConfig, _orders, svag_step, train_svag_run
from nets.train import CHECKPOINT, MODEL, ConfigError, RunConfig, train_run
from theory import svag as tsvag


def _cfg(**kw):
    base = dict(name="r", model="mlp4_bn", model_kw=dict(width=16), dataset="fashion-mnist",
                data_kw=dict(val_size=50, train_size=200, test_size=50), lr=0.05, batch_size=32, epochs=2, seed=0)
    base.update(kw)
    return base


def _states_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_amplification_one_is_the_sgd_trainer(tiny_root, tmp_path):
    """l = 1: r₂ = 0, the second half is never drawn, half 1 follows SGD's epoch order: the same weights
    and history as nets.train.train_run, bit for bit (a per-step lr schedule included)."""
    kw = _cfg(lr={"kind": "cyclic_triangular", "base": 0.01, "peak": 0.05, "period": 2}, lr_per_step=True)
    a = train_run(RunConfig(**kw), tmp_path / "sgd", data_root=tiny_root)
    b = train_svag_run(SVAGRunConfig(amplification=1, **kw), tmp_path / "svag", data_root=tiny_root)
    assert _states_equal(torch.load(tmp_path / "sgd" / MODEL), torch.load(tmp_path / "svag" / MODEL))
    for key in ("train_loss", "test_acc", "train_loss_running", "logged_loss", "noise", "steps"):
        assert a["history"][key] == b["history"][key], key
    assert b["svag"] == dict(amplification=1, r1=1.0, r2=0.0, svag_steps_per_epoch=[6, 6])


def test_step_is_the_weighted_two_half_step_with_bn_per_half():
    """One svag_step on a BN MLP equals θ − lr(r₁∇CE(B1) + r₂∇CE(B2)), each gradient from its own
    train-mode forward pass (BN statistics of that half), and the running BN statistics receive two
    momentum updates, one per half (reference: two separate forward/backward passes on copies)."""
    from nets.models import build_model

    torch.manual_seed(0)
    model = build_model("mlp4_bn", in_shape=(1, 28, 28), num_classes=10, seed=1, width=8)
    x1, x2 = torch.randn(6, 1, 28, 28), torch.randn(6, 1, 28, 28) + 0.5
    y1, y2 = torch.randint(0, 10, (6,)), torch.randint(0, 10, (6,))
    r1, r2 = tsvag.coefficients(4)
    lr = 0.1
    ref = [build_model("mlp4_bn", in_shape=(1, 28, 28), num_classes=10, seed=1, width=8) for _ in range(2)]
    grads = []
    for m, x, y in zip(ref, (x1, x2), (y1, y2)):
        m.load_state_dict(model.state_dict())
        m.train()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters()})
    expected = {n: p.detach() - lr * (r1 * grads[0][n] + r2 * grads[1][n]) for n, p in model.named_parameters()}
    bn = [(n, b.clone()) for n, b in model.named_buffers() if n.endswith("running_mean")][0]
    momentum = [mod.momentum for mod in model.modules() if isinstance(mod, torch.nn.BatchNorm1d)][0]
    stats = svag_step(model, torch.optim.SGD(model.parameters(), lr=lr), (x1, y1), (x2, y2), r1, r2)
    assert len(stats) == 2
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), expected[n], rtol=1e-5, atol=1e-6)
    # running mean after two updates: (1 − m)²·μ0 + (1 − m)·m·mean(B1) + m·mean(B2) of the first BN's input
    after = dict(model.named_buffers())[bn[0]]
    ref_stats = [dict(m.named_buffers())[bn[0]] for m in ref]  # each: (1 − m)μ0 + m·mean(half)
    mean1, mean2 = [(s - (1 - momentum) * bn[1]) / momentum for s in ref_stats]
    torch.testing.assert_close(after, (1 - momentum) ** 2 * bn[1] + (1 - momentum) * momentum * mean1
                               + momentum * mean2, rtol=1e-5, atol=1e-6)


def test_one_step_law_has_svag_moments(tiny_root):
    """The first SVAG step of many seeds from one fixed model (linear softmax regression, no BN, so the
    step is r₁g_B1 + r₂g_B2 of per-sample gradients): along 3 random directions v, the mean and variance
    of v·Δθ equal −(lr/l)v·ḡ and (lr²/l)c vᵀΣ₁v (theory.svag.step_moments; c = (N − S)/(S(N − 1)): each
    half is a uniform subset, the halves independent), M = 3,000 seeds, Z = 4.5 (SE of the variance from
    the sample's fourth moment).  Wrong prediction rejected: halves that are the same batch (the step
    is then (lr/l)g_B, variance (lr/l)²c vᵀΣ₁v, l times smaller)."""
    d = D.load("fashion-mnist", data_root=tiny_root, val_size=20, train_size=40, test_size=20)
    l, lr, size, m = 4, 0.5, 8, 3000
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    theta0 = [p.detach().clone() for p in model.parameters()]
    per_sample = []
    for i in range(d.n_train):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(d.x_train[i:i + 1]), d.y_train[i:i + 1]).backward()
        per_sample.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double().numpy())
    grads = np.array(per_sample)
    v = np.random.default_rng(0).standard_normal((grads.shape[1], 3))
    mean, cov = tsvag.step_moments(grads @ v, lr=lr, batch_size=size, amplification=l, replacement=False)
    r1, r2 = tsvag.coefficients(l)
    steps = np.empty((m, 3))
    for s in range(m):
        cfg = SVAGRunConfig(**_cfg(seed=s, amplification=l, batch_size=size))
        with torch.no_grad():
            for p, p0 in zip(model.parameters(), theta0):
                p.copy_(p0)
        orders = _orders(cfg, 0, d, d.n_train)
        halves = [(d.x_train[o[0][0][:size]], d.y_train[o[0][0][:size]]) for o in orders]
        svag_step(model, torch.optim.SGD(model.parameters(), lr=lr / l), halves[0], halves[1], r1, r2)
        delta = torch.cat([(p.detach() - p0).reshape(-1) for p, p0 in zip(model.parameters(), theta0)])
        steps[s] = delta.double().numpy() @ v
    z_mean = np.abs(steps.mean(axis=0) - mean) / np.sqrt(np.diag(cov) / m)
    dev2 = (steps - mean) ** 2
    se_var = dev2.std(axis=0, ddof=1) / math.sqrt(m)
    z_var = np.abs(dev2.mean(axis=0) - np.diag(cov)) / se_var
    assert max(z_mean.max(), z_var.max()) < 4.5, (z_mean, z_var)
    assert np.min(np.abs(dev2.mean(axis=0) - np.diag(cov) / l) / se_var) > 4.5


def test_resume_is_bitwise(tiny_root, tmp_path):
    cfg = SVAGRunConfig(amplification=2, **_cfg(epochs=3))
    full = train_svag_run(cfg, tmp_path / "full", data_root=tiny_root)
    part = train_svag_run(cfg, tmp_path / "cut", data_root=tiny_root, max_epochs=1)
    assert part["status"] == "interrupted" and (tmp_path / "cut" / CHECKPOINT).is_file()
    resumed = train_svag_run(cfg, tmp_path / "cut", data_root=tiny_root)
    assert resumed["status"] == full["status"] == "completed"
    assert _states_equal(torch.load(tmp_path / "full" / MODEL), torch.load(tmp_path / "cut" / MODEL))
    assert resumed["history"]["train_loss"] == full["history"]["train_loss"]
    assert full["history"]["noise"] == [0.05 / 32] * 3  # η/S at every l
    assert full["svag"]["svag_steps_per_epoch"] == [12] * 3


@pytest.mark.parametrize("kw, match", [
    (dict(amplification=0), "amplification"),
    (dict(amplification=2.5), "amplification"),
    (dict(amplification=True), "amplification"),
    (dict(amplification=2, momentum=0.9), "momentum"),
    (dict(amplification=2, lr=0.0), "lr"),
])
def test_bad_input_names_the_field(tiny_root, kw, match):
    with pytest.raises(ConfigError, match=match):
        train_svag_run(SVAGRunConfig(**{**_cfg(), **kw}), data_root=tiny_root)


def test_preset_runs_through_the_runner(tiny_root, tmp_path):
    """nets run svag --preset quick (one epoch, 64 training samples): 6 runs at l = 1, 2, 4, trained by
    the SVAG trainer (result["svag"]), SGD's noise η/S recorded at every l."""
    from nets.experiments import plan
    from nets.runner import run_experiment

    p = plan("svag", "quick")
    assert sorted({r.amplification for r in p.runs}) == [1, 2, 4] and len(p.runs) == 6
    summary = run_experiment("svag", "quick", tmp_path, data_root=str(tiny_root), epochs=1, max_train_size=64,
                             max_eval_size=32, estimate=False)
    assert summary["counts"]["completed"] == 6
    for r in p.runs:
        res = json.loads((tmp_path / "svag" / "runs" / r.name / "result.json").read_text())
        assert res["svag"]["amplification"] == r.amplification and res["trainer"] == "train_svag_run"
        assert res["final"]["noise"] == pytest.approx(r.lr / r.batch_size)


def test_bn_running_statistics_span_the_same_sgd_time():
    """time_matched_bn_momentum: the h·l updates of one SGD step (h = 2 halves, 1 at l = 1) decay the
    running statistics by (1 − m), as SGD's one update does; l = 1 leaves m unchanged."""
    from nets.models import build_model
    from nets.svag import time_matched_bn_momentum

    for l, updates in ((1, 1), (2, 4), (4, 8)):
        model = build_model("mlp4_bn", in_shape=(1, 28, 28), num_classes=10, seed=1, width=8)
        bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
        m0 = bns[0].momentum
        time_matched_bn_momentum(model, l)
        assert (1 - bns[0].momentum) ** updates == pytest.approx(1 - m0, rel=1e-12)
        assert all(b.momentum == bns[0].momentum for b in bns)
