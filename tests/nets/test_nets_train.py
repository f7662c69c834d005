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


_EQ_LR = {"kind": "cyclic_discrete", "base": 0.001, "peak": 0.005, "period": 4}


@pytest.mark.parametrize("kw,match", [
    (dict(eval_batch_size=-1), r"eval_batch_size must be an integer >= 1, got -1"),
    (dict(eval_batch_size=0), r"eval_batch_size must be an integer >= 1"),
    (dict(eval_batch_size=2.5), r"eval_batch_size must be an integer"),
    (dict(lr=0.01, batch_size=lr_equivalent_batch_spec(_EQ_LR, 8, 0.005)), r"lr must be the constant lr_fixed=0.005"),
    (dict(lr=_EQ_LR, batch_size=lr_equivalent_batch_spec(_EQ_LR, 8, 0.005)), r"lr must be the constant lr_fixed"),
    (dict(batch_size={"kind": "lr_equivalent", "lr": _EQ_LR, "batch_size": 8}), r"lr_equivalent.*needs \['lr_fixed'\]"),
    (dict(batch_size={"kind": "lr_equivalent", "lr": _EQ_LR, "batch_size": 8, "lr_fixed": 0.005, "S": 1}),
     r"unknown key\(s\) \['S'\]; valid keys are \['kind', 'lr', 'batch_size', 'lr_fixed'\]"),
    (dict(lr={"kind": "cyclic_discrete", "base": 0.01, "peak": 0.1, "periods": 2}),
     r"unknown key\(s\) \['periods'\]; valid keys are \['kind', 'base', 'peak', 'period'"),
    (dict(batch_size={"kind": "step", "base": 32, "milestone": [1], "factor": 2}), r"unknown key\(s\) \['milestone'\]"),
    (dict(lr={"kind": "constant"}), r"needs a 'base'"),
    (dict(batch_size=12.4), r"constant batch_size must be an integer, got 12.4"),
    (dict(weight_decay=float("nan")), r"weight_decay must be a number finite and >= 0, got nan"),
    (dict(weight_decay=float("inf")), r"weight_decay must be finite and >= 0"),
    (dict(weight_decay=-1e-4), r"weight_decay must be finite and >= 0"),
    (dict(momentum=float("nan")), r"momentum must be a number in \[0, 1\), got nan"),
    (dict(momentum="0.9"), r"momentum must be a number"),
    (dict(max_loss=float("nan")), r"max_loss must be a number > 0"),
    (dict(seed=-1), r"seed must be an integer >= 0, got -1"),
    (dict(seed=1.5), r"seed must be an integer >= 0"),
    (dict(epochs=True), r"epochs must be an integer >= 1"),
    (dict(lr=float("nan")), r"lr must be > 0 and finite"),
    (dict(lr=float("inf")), r"lr must be > 0 and finite"),
    (dict(lr={"kind": "step", "base": 0.1, "milestones": [1], "factor": float("nan")}), r"factor"),
    (dict(model="vgg11", model_kw=dict(width=8)), r"model_kw: model 'vgg11' has no option\(s\) \['width'\].*width_mult"),
    (dict(model="vgg11", model_kw=dict(width_mult=0)), r"model_kw: width_mult must be a finite number > 0, got 0"),
    (dict(model="vgg11", model_kw=dict(width_mult=-0.5)), r"width_mult must be a finite number > 0"),
    (dict(model="resnet56", model_kw=dict(depth=2)), r"depth must be 6k\+2 with k >= 1.*got 2"),
    (dict(model="resnet56", model_kw=dict(depth=-4)), r"depth must be 6k\+2 with k >= 1.*got -4"),
    (dict(model="resnet56", model_kw=dict(depth=8, base_width=0)), r"base_width must be an integer >= 1, got 0"),
    (dict(model="mlp20", model_kw=dict(init="bad", bad_std=0)), r"bad_std must be a finite number > 0, got 0"),
    (dict(model_kw=dict(width=0)), r"model_kw: width must be an integer >= 1, got 0"),
    (dict(model="mlp256", model_kw=dict(depth=0)), r"model_kw: depth must be an integer >= 1, got 0"),
    (dict(model_kw=dict(width=16.5)), r"width must be an integer >= 1"),
    (dict(model="mlp4_bn", model_kw=dict(batch_norm=False)), r"has no option\(s\) \['batch_norm'\]"),
    (dict(model="nope"), r"unknown model 'nope'"),
    (dict(model_kw=dict(seed=3)), r"has no option\(s\) \['seed'\]"),   # build_model's own argument
    (dict(measure=dict(samples=16, hesian_norm_fd={})), r"unknown key\(s\) 'hesian_norm_fd'"),
    (dict(measure=dict(samples=16, hessian_norm_fd={}), measure_tracked=["alignment"]),
     r"measure_tracked must be a list of measurement keys of measure \(\['hessian_norm_fd'\]\)"),
    (dict(measure=dict(samples=16, hessian_norm_fd={}), measure_tracked="hessian_norm_fd"), r"measure_tracked must be"),
    (dict(measure=dict(samples=16, hessian_norm_fd={}), measure_tracked=["samples"]), r"measure_tracked must be"),
])
def test_config_validation_rejects_bad_values(kw, match):
    """Each bad value fails in validate (before data or training) with the field and what is expected."""
    with pytest.raises(ConfigError, match=match):
        validate(_cfg(**kw), 100)


def test_config_validation_accepts_good_values():
    # the counterparts of the rejected values above pass (so the checks do not reject everything)
    validate(_cfg(lr=0.005, batch_size=lr_equivalent_batch_spec(_EQ_LR, 8, 0.005)), 100)
    validate(_cfg(lr={"kind": "constant", "base": 0.005}, batch_size=lr_equivalent_batch_spec(_EQ_LR, 8, 0.005)), 100)
    _, bss, _ = validate(_cfg(batch_size=12.0, eval_batch_size=1, seed=0, weight_decay=0.0, max_loss=float("inf")), 100)
    assert bss.tolist() == [12, 12]
    # schedules still round to integers by design (documented in nets.schedules)
    _, bss, _ = validate(_cfg(batch_size={"kind": "cyclic_triangular", "base": 10, "peak": 15, "period": 4},
                              epochs=4), 100)
    assert bss.tolist() == [10, 12, 15, 12]   # 10, 12.5 → 12 (round half to even), 15, 12.5 → 12
    for model, kw in [("vgg11", dict(width_mult=1 / 16)), ("resnet56", dict(depth=8, base_width=4)),
                      ("mlp20", dict(width=16, depth=4, init="bad", bad_std=0.05)), ("mlp256", dict(width=8))]:
        validate(_cfg(model=model, model_kw=kw), 100)


def test_eval_batch_size_is_used(tiny_root):
    # eval_batch_size smaller than every split: evaluation still covers all samples (not 0.0 metrics)
    a = train_run(_cfg(epochs=1, eval_batch_size=7), data_root=tiny_root)
    b = train_run(_cfg(epochs=1), data_root=tiny_root)
    assert a["status"] == "completed" and a["final"]["test_loss"] > 0
    np.testing.assert_allclose(a["history"]["test_loss"], b["history"]["test_loss"], rtol=1e-5)
    assert a["history"]["train_acc"] == b["history"]["train_acc"]


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
    assert part[1]["status"] == "diverged"      # stops at epoch 1 ...
    assert not (outs[1] / RESULT).exists()      # ... but results are written when the whole group is done
    res = train_group(cfgs, outs, data=d)       # resumes the group from its checkpoint
    assert res[0]["status"] == "completed" and len(res[0]["history"]["epoch"]) == 2
    assert res[1]["status"] == "diverged" and res[1]["diverged_epoch"] == 1
    assert json.loads((outs[1] / RESULT).read_text())["status"] == "diverged"
    ref = train_run(cfgs[0], tmp_path / "ref", data=d)
    a, b = torch.load(outs[0] / MODEL), torch.load(tmp_path / "ref" / MODEL)
    for k in a:  # same float tolerance argument as in the test above
        torch.testing.assert_close(a[k].double(), b[k].double(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("n_diverged,diverged_result_on_disk", [(1, False), (1, True), (2, True)])
def test_group_with_diverged_member_restarts_from_its_checkpoint(tiny_root, tmp_path, n_diverged,
                                                                 diverged_result_on_disk):
    """A group of 3 in which 1 or 2 runs diverge in epoch 1, killed after epoch 2 and restarted
    through execute_task, gives bitwise the result of the uninterrupted group (CPU, same ops in
    the same order: the whole group, diverged members frozen, resumes from group_checkpoint.pt).

    ``diverged_result_on_disk``: the diverged runs already hold a result.json (as an earlier
    version wrote while the group went on) and the task lists only the unfinished runs, as
    nets.runner.make_tasks builds it; with 2 diverged that leaves one run, which used to be
    retrained alone from epoch 0 by train_run (max|Δw| ~ 1e-6, not bitwise)."""
    from nets.executor import execute_task
    from nets.train import atomic_write_json

    boom = dict(lr=1e5, max_loss=20.0)
    specs = [dict(lr=0.05), boom, boom if n_diverged == 2 else dict(lr=0.02, momentum=0.9)]
    cfgs = [_cfg(name=f"r{i}", seed=i, epochs=3, **kw) for i, kw in enumerate(specs)]

    def task(root, runs):
        return dict(configs=[c.to_dict() for c in runs], out_dirs=[str(root / c.name) for c in runs], device="cpu",
                    data_root=str(tiny_root), batched=True)

    ref = dict(execute_task(task(tmp_path / "ref", cfgs)))          # uninterrupted
    assert [ref[c.name] for c in cfgs] == ["completed"] + ["diverged"] * n_diverged + ["completed"] * (2 - n_diverged)

    cut = tmp_path / "cut"
    part = train_group(cfgs, [cut / c.name for c in cfgs], data_root=tiny_root, max_epochs=2)   # "killed"
    assert part[0]["status"] == "interrupted" and part[0]["epochs_done"] == 2
    diverged = [k for k, r in enumerate(part) if r["status"] == "diverged"]
    assert len(diverged) == n_diverged and all(part[k]["diverged_epoch"] == 1 for k in diverged)
    assert not any((cut / c.name / RESULT).exists() for c in cfgs)
    todo = cfgs
    if diverged_result_on_disk:
        for k in diverged:
            atomic_write_json(cut / cfgs[k].name / RESULT, part[k])
        todo = [c for k, c in enumerate(cfgs) if k not in diverged]
    assert dict(execute_task(task(cut, todo))) == {c.name: ref[c.name] for c in todo}

    for c in cfgs:
        a = json.loads((tmp_path / "ref" / c.name / RESULT).read_text())
        b = json.loads((cut / c.name / RESULT).read_text())
        assert a["status"] == b["status"] and a["diverged_epoch"] == b["diverged_epoch"]
        for key in ("train_loss", "train_loss_running", "val_loss", "test_acc", "lr"):
            np.testing.assert_array_equal(a["history"][key], b["history"][key])   # NaN == NaN here
        if a["status"] == "completed":
            assert len(a["history"]["epoch"]) == 3
            assert _states_equal(torch.load(tmp_path / "ref" / c.name / MODEL), torch.load(cut / c.name / MODEL))


def test_tracked_measurements_are_the_requested_subset(tiny_root):
    """``measure_tracked`` limits what is measured during training; the end-of-run measurement is complete."""
    measure = dict(samples=32, hessian_trace_hutchinson=dict(n_samples=2),
                   hessian_top_eigenvalue=dict(k=1, tol=1e-3))
    r = train_run(_cfg(epochs=3, measure=measure, measure_every=1, measure_tracked=["hessian_trace_hutchinson"]),
                  data_root=tiny_root)
    tracked = r["history"]["tracked"]
    assert [t["epoch"] for t in tracked] == [1, 2]          # the last epoch is the end-of-run measurement
    for t in tracked:
        assert "hessian_trace_hutchinson" in t and "hessian_top_eigenvalue" not in t
    assert {"hessian_trace_hutchinson", "hessian_top_eigenvalue"} <= set(r["measurements"])
    everything = train_run(_cfg(epochs=2, measure=measure, measure_every=1), data_root=tiny_root)
    assert {"hessian_trace_hutchinson", "hessian_top_eigenvalue"} <= set(everything["history"]["tracked"][0])
