"""Rescaled presets (--epochs / --max-train-size) and the runner's refusal to take results written
for another config as finished runs of this plan."""
from __future__ import annotations

import numpy as np
import pytest

from nets import experiments as E
from nets import schedules
from nets.__main__ import main
from nets.runner import run_experiment
from nets.train import ConfigError, RESULT


def test_rescale_keeps_the_grid_and_sets_epochs_and_train_size():
    full = E.plan("fig1", "full")
    small = E.plan("fig1", "full", epochs=8, max_train_size=3000)
    assert [(r.name, r.lr, r.batch_size, r.seed, r.model) for r in small.runs] == \
        [(r.name, r.lr, r.batch_size, r.seed, r.model) for r in full.runs]
    assert all(r.epochs == 8 and r.data_kw["train_size"] == 3000 for r in small.runs)
    # fig1 tracks the alignment every 25 of 200 epochs: the same fraction of 8 epochs is 1
    assert all(r.measure_every == 1 for r in small.runs)
    assert small.overrides == {"epochs": 8, "max_train_size": 3000}
    assert small.to_dict()["overrides"] == small.overrides and full.overrides == {}


def test_rescale_caps_but_never_raises_explicit_training_set_sizes():
    # Fig. 6 trains on 12,000 / 22,500 / 45,000 samples; a cap of 20,000 keeps 12,000
    sizes = {r.data_kw["train_size"] for r in E.plan("fig6", "full", dataset="fashion-mnist",
                                                       max_train_size=20000).runs}
    assert sizes == {12000, 20000}


@pytest.mark.parametrize("name", ["fig4", "table1"])
def test_rescaled_schedules_keep_their_shape_and_the_lr_bs_equivalence(name):
    """Law: periods scale with the epochs (90 → 18 epochs: period 15 → 3, still 6 cycles), and the
    LR schedule and its equivalent BS schedule still give the same η/S at every epoch."""
    full, small = E.plan(name, "full"), E.plan(name, "full", epochs=18)
    for rf, rs in zip(full.runs, small.runs):
        for spec_f, spec_s in ((rf.lr, rs.lr), (rf.batch_size, rs.batch_size)):
            if isinstance(spec_f, dict):
                inner_f, inner_s = spec_f.get("lr", spec_f), spec_s.get("lr", spec_s)
                if "period" in inner_f:
                    # the period is rounded to whole epochs: the cycle count moves by at most 0.5/period
                    assert inner_s["period"] == max(1, round(inner_f["period"] * 18 / rf.epochs))
                    assert 18 / inner_s["period"] == pytest.approx(rf.epochs / inner_f["period"],
                                                                 rel=0.5 / inner_s["period"] + 1e-12)
    runs = {r.name: r for r in small.runs}
    pairs = [("cyclic_lr", "cyclic_bs")] if name == "fig4" else [("discrete_lr_s0", "discrete_bs_s0")]
    for a, b in pairs:
        ra, rb = runs[a], runs[b]
        noise_a = schedules.lr_values_epoch(ra.lr, ra.epochs) / schedules.batch_values_epoch(ra.batch_size, ra.epochs)[0]
        noise_b = schedules.lr_values_epoch(rb.lr, rb.epochs) / schedules.batch_values_epoch(rb.batch_size, rb.epochs)[0]
        # S = lr_fixed·S0/lr_k is an integer for these grids (640, 128, ...) up to rounding of 1/2 in S
        np.testing.assert_allclose(noise_a, noise_b, rtol=0.5 / 128)
        assert len(set(np.round(noise_a, 12))) > 1, "the rescaled schedule must still cycle"


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_rescale_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="epochs"):
        E.plan("fig1", "full", epochs=bad)
    with pytest.raises(ValueError, match="max_train_size"):
        E.plan("fig1", "full", max_train_size=bad)


def test_results_of_another_config_are_an_error_not_a_finished_run(tiny_root, tmp_path):
    run_experiment("fig4", "quick", tmp_path, data_root=tiny_root, batched=False)
    before = sorted(p.stat().st_mtime_ns for p in (tmp_path / "fig4" / "runs").glob(f"*/{RESULT}"))
    with pytest.raises(ConfigError, match="different config"):
        run_experiment("fig4", "quick", tmp_path, data_root=tiny_root, batched=False, epochs=1)
    after = sorted(p.stat().st_mtime_ns for p in (tmp_path / "fig4" / "runs").glob(f"*/{RESULT}"))
    assert after == before                            # nothing was overwritten


def test_cli_rescaled_run_records_overrides(tiny_root, tmp_path, capsys):
    import json

    rc = main(["run", "fig1", "--preset", "quick", "--epochs", "1", "--max-train-size", "200", "--data-root",
               str(tiny_root), "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    plan = json.loads((tmp_path / "fig1" / "plan.json").read_text())
    assert plan["overrides"] == {"epochs": 1, "max_train_size": 200}
    result = json.loads(next((tmp_path / "fig1" / "runs").glob(f"*/{RESULT}")).read_text())
    assert result["config"]["epochs"] == 1 and result["config"]["data_kw"]["train_size"] == 200
    assert len(result["history"]["epoch"]) == 1
    # a second call with other overrides into the same directory is refused with a clear message
    rc = main(["run", "fig1", "--preset", "quick", "--epochs", "2", "--data-root", str(tiny_root),
               "--out", str(tmp_path), "--no-progress"])
    assert rc == 2 and "different config" in capsys.readouterr().err


def test_measure_override_swaps_settings_not_quantities():
    full = E.plan("fig1", "full")
    cheap = E.plan("fig1", "full", measure="quick")
    for rf, rc in zip(full.runs, cheap.runs):
        assert set(rc.measure) == set(rf.measure)                 # the same quantities ...
        assert rc.measure["samples"] == E.QUICK_MEASURE["samples"]  # ... with the quick settings
        assert rc.measure["hessian_frobenius_hutchinson"] == E.QUICK_MEASURE["hessian_frobenius_hutchinson"]
        assert rc.measure["alignment"] == E.QUICK_ALIGNMENT
        assert rc.measure_tracked == rf.measure_tracked == ["alignment", "hessian_top_eigenvalue"]
    assert cheap.overrides == {"measure": "quick"}
    # Fig. 5 keeps its best-validation measurement; Fig. 6 measures only λ_max at β = 1
    assert all(r.measure["at_best_val"] for r in E.plan("fig5", "full", dataset="fashion-mnist", measure="quick").runs)
    f6 = E.plan("fig6", "full", dataset="fashion-mnist", measure="quick").runs
    assert {frozenset(r.measure) for r in f6} == {frozenset(), frozenset({"samples", "hessian_top_eigenvalue"})}
    with pytest.raises(ValueError, match="measure must be one of"):
        E.plan("fig1", "full", measure="medium")


def test_width_and_eval_size_overrides():
    p = E.plan("fig1", "full", width=256, max_eval_size=2000, max_train_size=4000, epochs=300)
    assert p.overrides == {"epochs": 300, "max_train_size": 4000, "width": 256, "max_eval_size": 2000}
    for r in p.runs:
        assert r.model_kw == {"width": 256} and r.epochs == 300
        assert r.data_kw == {"val_size": 2000, "train_size": 4000, "test_size": 2000}
        assert r.measure_every == 38              # 25 of 200 epochs, scaled to 300: round(37.5) = 38
    q = E.plan("fig1", "quick", max_eval_size=64)  # the quick sets (128) are capped; smaller ones kept
    assert all(r.data_kw["val_size"] == 64 and r.data_kw["test_size"] == 64 for r in q.runs)
    assert E.plan("fig1", "quick", max_eval_size=1000).runs[0].data_kw["test_size"] == 128
    with pytest.raises(ValueError, match=r"width applies to the MLP models only; experiment 'fig2' uses \['resnet56'\]"):
        E.plan("fig2", "full", width=64)
    for kw in (dict(width=0), dict(max_eval_size=-1), dict(width=2.5)):
        with pytest.raises(ValueError, match=f"{next(iter(kw))} must be an integer >= 1"):
            E.plan("fig1", "full", **kw)
