"""Every quick preset runs on CPU (on tiny real-format files); runner skips finished runs; CLI."""
from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from nets import experiments as E
from nets.__main__ import main
from nets.runner import run_experiment
from nets.train import RESULT


@pytest.fixture(scope="session")
def quick_results(tiny_root, tmp_path_factory):
    """Every quick preset, run once per session on the tiny files (shared with the validation test)."""
    out = tmp_path_factory.mktemp("quick")
    return out, {name: run_experiment(name, "quick", out, data_root=tiny_root) for name in E.EXPERIMENTS}


@pytest.mark.parametrize("name", list(E.EXPERIMENTS))
def test_quick_preset_runs(name, quick_results):
    tmp_path, summaries = quick_results
    summary = summaries[name]
    plan = E.plan(name, "quick")
    assert summary["counts"]["missing"] == 0 and summary["counts"]["interrupted"] == 0
    assert len(summary["runs"]) == len(plan.runs)
    for row in summary["runs"]:
        assert (tmp_path / name / "runs" / row["name"] / RESULT).is_file()
    completed = [r for r in summary["runs"] if r["status"] == "completed"]
    assert completed, "at least one run of each quick preset must finish"
    for r in completed:
        assert 0.0 <= r["val_acc"] <= 1.0
    with_measure = [r for r in plan.runs if r.measure]
    if with_measure:                      # Hessian measurements via nets.measure, never an error entry
        rows = {r["name"]: r for r in completed}
        for cfg in with_measure:
            if cfg.name in rows:
                m = rows[cfg.name]["measurements"]
                for key in set(cfg.measure) - {"samples", "at_best_val"}:
                    assert key in m and not (isinstance(m[key], dict) and "error" in m[key]), m
                if "hessian_norm_fd" in m:
                    assert m["hessian_norm_fd"]["value"] > 0
    for cfg in plan.runs:                 # measurements during training (Table 1 / Fig. 16)
        if cfg.measure_every and cfg.name in {r["name"] for r in completed}:
            res = json.loads((tmp_path / name / "runs" / cfg.name / RESULT).read_text())
            tracked = res["history"]["tracked"]
            assert [t["epoch"] for t in tracked] == list(range(cfg.measure_every, cfg.epochs, cfg.measure_every))
            # exactly the measurements the preset tracks (fig1: alignment; table1: the Hessian norms)
            expected = set(cfg.measure_tracked if cfg.measure_tracked is not None else cfg.measure) - \
                {"samples", "seed", "at_best_val"}
            for t in tracked:
                got = set(t) - {"epoch", "measure_wall_s", "measure_wall_s_by_key"}
                assert got == expected, (got, expected)
                assert not any(isinstance(t[k], dict) and "error" in t[k] for k in expected), t
    if plan.analyses:                     # interpolation curves α ∈ [−1, 2]
        an = json.loads((tmp_path / name / "analysis.json").read_text())
        assert len(an) == len(plan.analyses)
        for a in an:
            if "skipped" not in a:
                assert len(a["train"]["loss"]) == len(a["alphas"]) and min(a["alphas"]) == -1.0


def test_validation_figures_and_statements(quick_results, tmp_path):
    from validation.nets import main as vmain
    out_dir, _ = quick_results
    assert vmain([str(out_dir), "--out", str(tmp_path / "figs")]) == 0
    report = json.loads((tmp_path / "figs" / "nets_report.json").read_text())
    assert set(report) == set(E.EXPERIMENTS)
    for name, rep in report.items():
        assert (tmp_path / "figs" / f"{name}.png").stat().st_size > 1000
        assert rep["statements"] and not rep.get("error")
    assert any("Spearman" in s["statement"] for s in report["fig1"]["statements"])
    # noise geometry over training on the fig1 networks: tracked and final alignment
    assert (tmp_path / "figs" / "fig1_alignment.png").stat().st_size > 1000
    assert any("cosine alignment" in s["statement"] for s in report["fig1"]["statements"])


def test_fig1_tracks_alignment_over_training(quick_results):
    out_dir, _ = quick_results
    for run in (out_dir / "fig1" / "runs").iterdir():
        res = json.loads((run / RESULT).read_text())
        if res["status"] != "completed":
            continue
        final = res["measurements"]["alignment"]
        tracked = [t["alignment"] for t in res["history"]["tracked"]]
        assert tracked, "alignment must be measured during training too"
        for a in tracked + [final]:
            assert "error" not in a, a
            # a cosine of PSD matrices lies in [0, 1]; μ and its parts are finite and positive
            assert 0.0 <= a["cosine"] <= 1.0 + 1e-9 and a["mu"] > 0 and a["gn_frobenius_sq"] > 0


def test_spearman_statement_signs():
    from validation.nets import _corr_statement, spearman
    x = np.log([1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3])
    rho, p, n = spearman(x, -x)
    assert rho == pytest.approx(-1.0) and n == 6
    assert "agrees" in _corr_statement("h", rho, p, n, -1)["verdict"]
    assert "disagrees" in _corr_statement("h", rho, p, n, +1)["verdict"]
    assert "too few" in _corr_statement("h", *spearman(x[:3], x[:3]), -1)["verdict"]


def test_quick_fig5_random_labels_and_momentum(tiny_root, tmp_path):
    run_experiment("fig5", "quick", tmp_path, data_root=tiny_root, dataset="mnist")
    res = json.loads((tmp_path / "fig5" / "runs" / "rl50_m0p9_lr0p02_bs32" / RESULT).read_text())
    assert res["data"]["n_corrupted"] == 128 and len(res["corrupted_indices"]) == 128   # 50 % of 256
    assert res["config"]["momentum"] == 0.9 and len(res["history"]["corrupted_fit"]) == 2
    best = res["measurements_best_val"]        # Fig. 15: Hessian at the best-validation minimum
    assert best["val_acc"] == max(res["history"]["val_acc"]) and best["hessian_norm_fd"]["value"] > 0


def test_restart_skips_finished_runs(tiny_root, tmp_path):
    run_experiment("fig4", "quick", tmp_path, data_root=tiny_root, batched=False)
    files = sorted((tmp_path / "fig4" / "runs").glob(f"*/{RESULT}"))
    stamps = [os.stat(f).st_mtime_ns for f in files]
    os.remove(files[0])                                  # one run "lost"
    stale = files[1].parent / f".{RESULT}.x7q2.tmp"      # a write cut short by a crash
    stale.write_text('{"status": "compl')
    keep = files[1].parent / "notes.tmp"                 # not one of ours: left alone
    keep.write_text("mine")
    old_mask = os.umask(0o022)
    try:
        run_experiment("fig4", "quick", tmp_path, data_root=tiny_root, batched=False)
    finally:
        os.umask(old_mask)
    assert files[0].is_file()
    assert [os.stat(f).st_mtime_ns for f in files[1:]] == stamps[1:]   # the others were not rerun
    assert not stale.exists() and keep.read_text() == "mine"
    # results are readable by everyone (open()'s mode under umask 022, not mkstemp's 0600)
    assert stat.S_IMODE(os.stat(files[0]).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "fig4" / "runs.csv").st_mode) == 0o644


def test_full_presets_plan_paper_grids():
    f1 = E.plan("fig1", "full")
    lrs = sorted({r.lr for r in f1.runs})
    bss = sorted({r.batch_size for r in f1.runs})
    assert len(f1.runs) == 31 and lrs[0] == 5e-3 and lrs[-1] == 0.1 and bss[0] == 25 and bss[-1] == 1000
    assert all(r.epochs == 200 and r.model == "mlp4_bn" for r in f1.runs)
    grid = {(r.lr, r.batch_size) for r in f1.runs if r.seed == 0}
    assert len(grid) == 25 == len([r for r in f1.runs if r.seed == 0])            # the 5 × 5 grid, seed 0
    repeats = {}
    for r in f1.runs:
        repeats.setdefault((r.lr, r.batch_size), set()).add(r.seed)
    seeded = {k for k, v in repeats.items() if v == {0, 1, 2}}
    assert seeded == set(E.FIG1_SEED_POINTS["full"]) and len(seeded) == 3           # 3 seeds at 3 points
    ratios = [lr / bs for lr, bs in grid]
    for lr, bs in seeded:                                   # each seeded point has a same-η/S partner in the grid
        assert sum(abs(q - lr / bs) < 1e-15 for q in ratios) >= 2
    assert all(r.measure_tracked == ["alignment", "hessian_top_eigenvalue"] and r.measure_every == 25
               and r.loss_log_every == 50 for r in f1.runs)
    f5 = E.plan("fig5", "full", dataset="fashion-mnist")
    assert all(r.lr <= 0.02 for r in f5.runs if r.momentum > 0)
    assert {r.data_kw["random_label_fraction"] for r in f5.runs} == {0.25, 0.5}
    f6 = E.plan("fig6", "full", dataset="fashion-mnist")
    assert all(abs(r.lr / r.batch_size - lr0 / 50) < 1e-15 for r in f6.runs
               for lr0 in [0.1 if r.name.startswith("lr0p1_") else 0.05])
    assert {r.data_kw["train_size"] for r in f6.runs} == {12000, 22500, 45000}
    assert E.plan("fig2", "full").dataset == "cifar10"


def test_cli(tiny_root, tmp_path, capsys):
    assert main(["list"]) == 0
    assert "fig1" in capsys.readouterr().out
    assert main(["run", "fig1", "--out", str(tmp_path), "--data-root", str(tiny_root), "--no-progress"]) == 0
    assert main(["run", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown experiment" in capsys.readouterr().err
    # the full fig2 preset needs CIFAR-10: an existing root without it fails fast (exit 2, nothing
    # written) with a message saying where it looked and how to switch to Fashion-MNIST; an explicit
    # --data-root is never combined with $THREE_FACTORS_DATA or /usr/share/datasets
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["run", "fig2", "--preset", "full", "--out", str(tmp_path / "o2"), "--data-root", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "dataset 'cifar10' not found" in err and str(empty / "cifar-10-batches-py") in err
    assert "python -m nets download cifar10" in err and "--dataset fashion-mnist" in err
    assert not (tmp_path / "o2").exists()
    with pytest.raises(SystemExit):
        main(["train", "--lr", "-1", "--batch-size", "8"])
    with pytest.raises(SystemExit):
        main(["train", "--lr", "0.1", "--batch-size", "0"])
    assert main(["train", "--lr", "0.1", "--batch-size", "100000", "--train-size", "100", "--val-size", "50",
                 "--data-root", str(tiny_root), "--out", str(tmp_path / "t")]) == 2
    assert "batch_size must be <=" in capsys.readouterr().err
    import torch
    if not torch.cuda.is_available():
        assert main(["run", "fig1", "--device", "cuda", "--out", str(tmp_path)]) == 2
        assert "CUDA is not available" in capsys.readouterr().err
    with pytest.raises(SystemExit) as ei:
        main(["run", "--help"])
    assert ei.value.code == 0
