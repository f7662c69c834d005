"""The paper's network experiments (§4, App. F) as run-config builders with presets.

Each experiment returns a :class:`Plan`: a list of :class:`~nets.train.RunConfig` and optional
post-run analyses (interpolation between trained models, paper Fig. 2/3). Presets:

* ``quick`` — CPU/CI: Fashion-MNIST subset (train 256, val 128, test 128), 1–2 epochs, tiny
  widths (ResNet depth 8 / width 4, VGG width ×1/16), a few grid points; seconds per run.
  It exercises every code path (data, all model families, schedules incl. the LR-equivalent BS
  schedule, random labels, momentum, Hessian measurements and interpolation).
* ``full`` — paper scale (grids, epochs, models, datasets of the paper). Where the paper does
  not state a value (epochs of Fig. 3/4/6/7/8/Table 1, widths, β grids, cycle lengths) the
  project's choice is written next to it below and in the run config.

Every experiment has a default dataset (the paper's) and runs on any of ``fashion-mnist``,
``mnist``, ``cifar10`` via ``dataset=`` (CLI ``--dataset``); the quick preset always defaults to
Fashion-MNIST, which is installed on the dev machine.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from .schedules import lr_equivalent_batch_spec
from .train import RunConfig

__all__ = ["PRESETS", "Plan", "Experiment", "EXPERIMENTS", "get", "plan", "rescale", "describe_all", "QUICK_DATA",
           "QUICK_MEASURE", "FULL_MEASURE", "QUICK_ALIGNMENT", "FULL_ALIGNMENT", "FIG1_SEED_POINTS",
           "FIG1_EXTRA_SEEDS"]

PRESETS = ("quick", "full")


@dataclass
class Plan:
    experiment: str
    preset: str
    dataset: str
    runs: list[RunConfig]
    analyses: list[dict] = field(default_factory=list)   # {"kind": "interpolate", "a":, "b":, "label":, "alphas":}
    notes: str = ""
    overrides: dict = field(default_factory=dict)         # scale overrides applied to the preset, see rescale()

    def to_dict(self) -> dict:
        return dict(experiment=self.experiment, preset=self.preset, dataset=self.dataset,
                    runs=[r.to_dict() for r in self.runs], analyses=self.analyses, notes=self.notes,
                    overrides=self.overrides)


@dataclass
class Experiment:
    name: str
    description: str
    paper_dataset: str
    builder: Callable[..., Plan]

    def plan(self, preset: str = "quick", *, dataset: Optional[str] = None, seed: int = 0,
             epochs: Optional[int] = None, max_train_size: Optional[int] = None,
             measure: Optional[str] = None, width: Optional[int] = None,
             max_eval_size: Optional[int] = None) -> Plan:
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
        ds = dataset or ("fashion-mnist" if preset == "quick" else self.paper_dataset)
        from .data import canonical_name
        p = self.builder(preset=preset, dataset=canonical_name(ds), seed=int(seed))
        return rescale(p, epochs=epochs, max_train_size=max_train_size, measure=measure, width=width,
                       max_eval_size=max_eval_size)


def _scale_schedule(spec, factor: float):
    """A schedule spec with its periods and milestones (in epochs) multiplied by ``factor``, so the
    schedule keeps its shape over the rescaled training length (periods stay >= 1 epoch)."""
    if not isinstance(spec, dict):
        return spec
    out = dict(spec)
    if out.get("period") is not None:
        out["period"] = max(1, int(round(out["period"] * factor)))
    if out.get("milestones") is not None:
        out["milestones"] = sorted({max(1, int(round(m * factor))) for m in out["milestones"]})
    if isinstance(out.get("lr"), dict):   # lr_equivalent batch-size spec: scale the LR schedule it mirrors
        out["lr"] = _scale_schedule(out["lr"], factor)
    return out


def _measure_set(spec: dict, preset: str) -> dict:
    """``spec``'s measurements with the settings of ``preset``'s measurement set (same keys)."""
    base = QUICK_MEASURE if preset == "quick" else FULL_MEASURE
    align = QUICK_ALIGNMENT if preset == "quick" else FULL_ALIGNMENT
    out = {}
    for k, v in spec.items():
        if k == "alignment":
            out[k] = dict(align)
        elif k in base:
            out[k] = dict(base[k]) if isinstance(base[k], dict) else base[k]
        else:                      # at_best_val, seed: not settings of the measurement set
            out[k] = v
    return out


def _positive_int(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    return int(v)


def rescale(plan: Plan, *, epochs: Optional[int] = None, max_train_size: Optional[int] = None,
            measure: Optional[str] = None, width: Optional[int] = None, max_eval_size: Optional[int] = None) -> Plan:
    """The plan at a smaller (or larger) scale, for machines where the preset is too long (e.g. the
    ``full`` grids on a CPU): every run trains ``epochs`` epochs, with schedule periods, milestones and
    ``measure_every`` scaled by the same factor, and on at most ``max_train_size`` training samples
    (runs that already use fewer, e.g. Fig. 6's training-set sizes, keep theirs). The grid (η, S,
    seeds, models) is unchanged. ``measure`` ("quick" or "full") takes the measurements (same
    quantities) with that preset's settings, e.g. the full grid with the quick presets' cheap
    curvature estimates on a CPU. ``width`` sets the hidden width of the MLP presets (fig1, fig5,
    fig9); ``max_eval_size`` caps the validation and test sets evaluated every epoch. The overrides
    are recorded in the plan (``plan.json``) and in each run config, so results of a rescaled plan
    are never mistaken for the preset's."""
    if all(v is None for v in (epochs, max_train_size, measure, width, max_eval_size)):
        return plan
    if measure is not None and measure not in PRESETS:
        raise ValueError(f"measure must be one of {PRESETS}, got {measure!r}")
    for name, v in (("epochs", epochs), ("max_train_size", max_train_size), ("width", width),
                    ("max_eval_size", max_eval_size)):
        if v is not None:
            _positive_int(name, v)
    if width is not None:
        from .models import model_options
        no_width = sorted({r.model for r in plan.runs if "width" not in model_options(r.model)})
        if no_width:
            raise ValueError(f"width applies to the MLP models only; experiment {plan.experiment!r} uses {no_width}")
    overrides = dict(plan.overrides)
    for r in plan.runs:
        if epochs is not None:
            factor = epochs / r.epochs
            r.lr = _scale_schedule(r.lr, factor)
            r.batch_size = _scale_schedule(r.batch_size, factor)
            if r.measure_every:
                r.measure_every = max(1, int(round(r.measure_every * factor)))
            r.epochs = int(epochs)
        if max_train_size is not None:
            current = r.data_kw.get("train_size")
            r.data_kw = dict(r.data_kw, train_size=int(max_train_size if current is None else min(current, max_train_size)))
        if measure is not None and r.measure:
            r.measure = _measure_set(r.measure, measure)
        if width is not None:
            r.model_kw = dict(r.model_kw, width=int(width))
        if max_eval_size is not None:
            val = r.data_kw.get("val_size", 5000)
            test = r.data_kw.get("test_size")
            r.data_kw = dict(r.data_kw, val_size=int(min(val, max_eval_size)),
                             test_size=int(max_eval_size if test is None else min(test, max_eval_size)))
    if epochs is not None:
        overrides["epochs"] = int(epochs)
    if max_train_size is not None:
        overrides["max_train_size"] = int(max_train_size)
    if measure is not None:
        overrides["measure"] = measure
    if width is not None:
        overrides["width"] = int(width)
    if max_eval_size is not None:
        overrides["max_eval_size"] = int(max_eval_size)
    plan.overrides = overrides
    return plan


# ----------------------------------------------------------------------------- common pieces
QUICK_DATA = dict(train_size=256, val_size=128, test_size=128)
# Measurements (keys: nets.measurements.MEASUREMENTS; dispatch: nets.measurements.measure_model). The Hessian norm
# to read is hessian_frobenius_hutchinson (exact HVPs); hessian_norm_fd is the paper's finite-difference
# number, kept for comparison but unreliable on ReLU nets (it grows as eps -> 0; nets.measure docstring).
# quick: every measurement path on a small subset, cheap but with real tolerances (Lanczos to 1e-3;
# a few Hutchinson probes, so the values are noisy).
QUICK_MEASURE = dict(samples=64, hessian_frobenius_hutchinson=dict(n_samples=4), hessian_norm_fd=dict(n_samples=2),
                     hessian_top_eigenvalue=dict(k=1, method="lanczos", tol=1e-3),
                     gradient_noise_stats=dict(samples=16, k=3, n_probe=4))
# full: the paper's 2,250-sample curvature subset; ‖H‖_F from 50 Rademacher probes (relative SE 2.0 %: measured
# 1.44 % with 100 probes, 143.5 ± 2.1, on the width-512 Fig. 1 MLP after 2 epochs, FD there 3335 ± 42);
# gradient noise on 128 of the 2,250 points. Cost: `measure_wall_s` in each result.
FULL_MEASURE = dict(samples=2250, hessian_frobenius_hutchinson=dict(n_samples=50), hessian_norm_fd=dict(n_samples=100),
                    hessian_top_eigenvalue=dict(k=1, tol=1e-4),
                    gradient_noise_stats=dict(samples=128, k=5, n_probe=50))

QUICK_ALIGNMENT = dict(samples=16, n_probe=8, n_top=1, n_random=1)
FULL_ALIGNMENT = dict(samples=128, n_probe=50, n_top=3, n_random=3)


def _data_kw(preset, dataset, **extra):
    if preset == "quick":
        kw = dict(QUICK_DATA)
    else:
        kw = dict(val_size=5000)   # CIFAR-10: 45k/5k; (Fashion-)MNIST: 55k/5k
    kw.update(extra)
    return kw


def _fmt(x) -> str:
    return f"{x:g}".replace(".", "p").replace("-", "m")


def _cifar_model(preset, name):
    """Quick presets shrink the CIFAR models; full presets use the paper's."""
    if preset == "full":
        return name, {}
    return name, (dict(depth=8, base_width=4) if name == "resnet56" else dict(width_mult=1 / 16))


# ----------------------------------------------------------------------------- fig1 / fig9
# Grid points of fig1 repeated with two more seeds: the seed-to-seed spread at fixed (η, S) that the
# same-ratio statement compares the spread across (η, S) pairs with. Each η/S below has 2-4 pairs in the grid.
FIG1_SEED_POINTS = {"quick": [(0.025, 32)], "full": [(0.005, 50), (0.02, 100), (0.05, 50)]}   # η/S 1e-4, 2e-4, 1e-3
FIG1_EXTRA_SEEDS = {"quick": 1, "full": 2}


def _grid(preset, dataset, seed, *, name, model, model_kw, full_epochs=200, track_alignment=False,
          seed_points=None, extra_seeds=0):
    if preset == "quick":
        # 0.025/32 = 0.1/128: one same-η/S pair, so that the quick preset exercises that statement
        lrs, bss, epochs, mkw = [0.025, 0.1], [32, 128], 2, dict(model_kw, width=32)
        if "depth" in mkw:
            mkw["depth"] = min(mkw["depth"], 4)
        measure, log_every = QUICK_MEASURE, 1
    else:
        # paper: η ∈ [5e-3, 1e-1], S ∈ [25, 1000], 25 runs; project's grid: 5 × 5 log-spaced points
        lrs, bss, epochs, mkw, measure = [0.005, 0.01, 0.02, 0.05, 0.1], [25, 50, 100, 250, 1000], full_epochs, \
            dict(model_kw), FULL_MEASURE
        log_every = 50   # minibatch loss every 50 steps (Fig. 13): 8,800 points for the S = 25 runs
    measure, every, tracked = dict(measure), 0, None
    if track_alignment:
        # over training, at each η/S: the noise geometry (alignment of the SGD noise with the Gauss–Newton
        # matrix) and the top Hessian eigenvalue, read against the stability bound 2/η (edge of stability)
        measure["alignment"] = dict(QUICK_ALIGNMENT if preset == "quick" else FULL_ALIGNMENT)
        every = 1 if preset == "quick" else 25
        tracked = ["alignment", "hessian_top_eigenvalue"]
    # only these are tracked through training; the Hessian norms and gradient noise are taken at the end
    points = [(lr, bs, seed) for bs in bss for lr in lrs]
    points += [(lr, bs, seed + s) for lr, bs in (seed_points or []) for s in range(1, extra_seeds + 1)]
    runs = [RunConfig(name=f"lr{_fmt(lr)}_bs{bs}" + (f"_s{s - seed}" if s != seed else ""), model=model, model_kw=mkw,
                      dataset=dataset, data_kw=_data_kw(preset, dataset), lr=lr, batch_size=bs, epochs=epochs, seed=s,
                      measure=dict(measure), measure_every=every, measure_tracked=tracked, loss_log_every=log_every)
            for lr, bs, s in points]
    return Plan(name, preset, dataset, runs)


def fig1(preset, dataset, seed):
    """Fig. 1: Hessian norm and validation accuracy vs η/S, 4-layer BN ReLU MLP (width 512), 200 epochs;
    plus the noise-geometry alignment (Wang & Wu 2023) and the top Hessian eigenvalue tracked over
    training at every η/S, and two more seeds at :data:`FIG1_SEED_POINTS` (the seed-to-seed spread
    that same-η/S pairs are compared with)."""
    return _grid(preset, dataset, seed, name="fig1", model="mlp4_bn", model_kw={}, track_alignment=True,
                 seed_points=FIG1_SEED_POINTS[preset], extra_seeds=FIG1_EXTRA_SEEDS[preset])


def fig9(preset, dataset, seed):
    """Fig. 9: as Fig. 1 with a 20-layer ReLU MLP without BN, good (He) and bad (small-std) init.
    Epochs not stated: project's choice 200, as Fig. 1."""
    good = _grid(preset, dataset, seed, name="fig9", model="mlp20", model_kw=dict(init="good"))
    bad = _grid(preset, dataset, seed, name="fig9", model="mlp20", model_kw=dict(init="bad"))
    for r in good.runs:
        r.name = "good_" + r.name
    for r in bad.runs:
        r.name = "bad_" + r.name
    if preset == "quick":
        bad.runs = bad.runs[:2]
    return Plan("fig9", preset, dataset, good.runs + bad.runs)


def fig8(preset, dataset, seed):
    """Fig. 8: ResNet-56 validation accuracy vs η/S (CIFAR-10). Grid and epochs not stated:
    project's choice η ∈ {0.01, 0.05, 0.1, 0.2} × S ∈ {32, 128, 512}, 100 epochs."""
    model, mkw = _cifar_model(preset, "resnet56")
    if preset == "quick":
        grid, epochs = [(0.05, 32), (0.1, 128)], 1
    else:
        grid, epochs = list(itertools.product([0.01, 0.05, 0.1, 0.2], [32, 128, 512])), 100
    runs = [RunConfig(name=f"lr{_fmt(lr)}_bs{bs}", model=model, model_kw=mkw, dataset=dataset,
                      data_kw=_data_kw(preset, dataset), lr=lr, batch_size=bs, epochs=epochs, seed=seed,
                      measure=dict(QUICK_MEASURE if preset == "quick" else FULL_MEASURE))
            for lr, bs in grid]
    return Plan("fig8", preset, dataset, runs)


# ----------------------------------------------------------------------------- fig2 / fig3 (interpolation)
def _alphas(preset):
    return list(np.round(np.linspace(-1, 2, 7 if preset == "quick" else 31), 6))


def fig2(preset, dataset, seed):
    """Fig. 2 / 10–12: ResNet-56, baseline η/S = 0.1/128 vs large batch 0.1/1024 vs small lr 0.01/128
    (plain SGD); interpolate L((1−α)θ₁ + αθ₂), α ∈ [−1, 2]; repeated over random initialisations
    (Figs. 10–12 show three: full preset 3 seeds, quick 1). Epochs not stated: 100 (project)."""
    model, mkw = _cifar_model(preset, "resnet56")
    if preset == "quick":
        specs, epochs, seeds = {"baseline": (0.1, 32), "large_bs": (0.1, 128), "small_lr": (0.025, 32)}, 2, 1
    else:
        specs, epochs, seeds = {"baseline": (0.1, 128), "large_bs": (0.1, 1024), "small_lr": (0.01, 128)}, 100, 3
    al = _alphas(preset)
    runs, analyses = [], []
    for s in range(seeds):
        runs += [RunConfig(name=f"{k}_s{s}", model=model, model_kw=mkw, dataset=dataset,
                           data_kw=_data_kw(preset, dataset), lr=lr, batch_size=bs, epochs=epochs, seed=seed + s)
                 for k, (lr, bs) in specs.items()]
        analyses += [dict(kind="interpolate", a=f"baseline_s{s}", b=f"large_bs_s{s}",
                          label=f"different η/S (large S), seed {s}", alphas=al, same_noise=False),
                     dict(kind="interpolate", a=f"baseline_s{s}", b=f"small_lr_s{s}",
                          label=f"different η/S (small η), seed {s}", alphas=al, same_noise=False),
                     dict(kind="interpolate", a=f"large_bs_s{s}", b=f"small_lr_s{s}", label=f"≈ same η/S, seed {s}",
                          alphas=al, same_noise=True)]
    return Plan("fig2", preset, dataset, runs, analyses)


def fig3(preset, dataset, seed):
    """Fig. 3: VGG-11 at η = 0.1β, S = 50β, β ∈ {0.25, 1, 4} (same η/S); interpolate β=1↔4 and
    β=1↔0.25. S is rounded to an integer and η set to 0.002·S so η/S stays exactly 0.002.
    Epochs not stated: 100 (project)."""
    model, mkw = _cifar_model(preset, "vgg11")
    betas, epochs = ([0.25, 1, 4], 2) if preset == "quick" else ([0.25, 1, 4], 100)
    runs = []
    for b in betas:
        bs = max(1, int(round(50 * b)))
        runs.append(RunConfig(name=f"beta{_fmt(b)}", model=model, model_kw=mkw, dataset=dataset,
                              data_kw=_data_kw(preset, dataset), lr=0.002 * bs, batch_size=bs, epochs=epochs,
                              seed=seed))
    al = _alphas(preset)
    analyses = [dict(kind="interpolate", a="beta1", b="beta4", label="β=1 ↔ β=4 (same η/S)", alphas=al,
                     same_noise=True),
                dict(kind="interpolate", a="beta1", b="beta0p25", label="β=1 ↔ β=0.25 (same η/S)", alphas=al,
                     same_noise=True)]
    return Plan("fig3", preset, dataset, runs, analyses)


# ----------------------------------------------------------------------------- fig4 / table1 (schedules)
def fig4(preset, dataset, seed):
    """Fig. 4 / 13: VGG-11; cyclic LR 0.001–0.005 at S=128 vs the equivalent cyclic BS 640–128 at
    η=0.005 (same η/S every epoch), and constant 0.001/128 vs 0.005/640. Triangular cycles of
    period 20 epochs, 100 epochs (project's choices; the paper states neither)."""
    model, mkw = _cifar_model(preset, "vgg11")
    if preset == "quick":
        S0, epochs, period = 16, 2, 2
    else:
        S0, epochs, period = 128, 100, 20
    lr_spec = {"kind": "cyclic_triangular", "base": 0.001, "peak": 0.005, "period": period}
    dk = _data_kw(preset, dataset)
    runs = [
        RunConfig(name="cyclic_lr", model=model, model_kw=mkw, dataset=dataset, data_kw=dk, lr=lr_spec,
                  batch_size=S0, epochs=epochs, seed=seed),
        RunConfig(name="cyclic_bs", model=model, model_kw=mkw, dataset=dataset, data_kw=dk, lr=0.005,
                  batch_size=lr_equivalent_batch_spec(lr_spec, S0, 0.005), epochs=epochs, seed=seed),
        RunConfig(name="const_small", model=model, model_kw=mkw, dataset=dataset, data_kw=dk, lr=0.001,
                  batch_size=S0, epochs=epochs, seed=seed),
        RunConfig(name="const_large", model=model, model_kw=mkw, dataset=dataset, data_kw=dk, lr=0.005,
                  batch_size=5 * S0, epochs=epochs, seed=seed),
    ]
    return Plan("fig4", preset, dataset, runs)


def table1(preset, dataset, seed):
    """Table 1 / Fig. 16: VGG-11, discrete η (0.001↔0.005), discrete S (640↔128 at η=0.005, the
    exact equivalent), triangle η (0.001–0.005, per step), constant η=0.005 and η=0.001; max/min = 5, cycle
    15 epochs, 6 repetitions. Epochs not stated: 90 (6 cycles; project's choice). The Hessian
    measurements are also taken every 5 epochs (history "tracked", Fig. 16)."""
    model, mkw = _cifar_model(preset, "vgg11")
    if preset == "quick":
        S0, epochs, period, reps = 16, 2, 2, 1
    else:
        S0, epochs, period, reps = 128, 90, 15, 6
    disc = {"kind": "cyclic_discrete", "base": 0.001, "peak": 0.005, "period": period}
    tri = {"kind": "cyclic_triangular", "base": 0.001, "peak": 0.005, "period": period}
    dk = _data_kw(preset, dataset)
    meas = dict(QUICK_MEASURE if preset == "quick" else FULL_MEASURE)
    runs = []
    for r in range(reps):
        common = dict(model=model, model_kw=mkw, dataset=dataset, data_kw=dk, epochs=epochs, seed=seed + r, measure=meas,
                      measure_every=1 if preset == "quick" else 5,   # Fig. 16: sharpness through the cycles
                      measure_tracked=["hessian_frobenius_hutchinson", "hessian_norm_fd"])
        runs += [
            RunConfig(name=f"discrete_lr_s{r}", lr=disc, batch_size=S0, **common),
            RunConfig(name=f"discrete_bs_s{r}", lr=0.005, batch_size=lr_equivalent_batch_spec(disc, S0, 0.005), **common),
            RunConfig(name=f"triangle_lr_s{r}", lr=tri, lr_per_step=True, batch_size=S0, **common),
            RunConfig(name=f"constant_s{r}", lr=0.005, batch_size=S0, **common),
            # Fig. 16's fifth panel: the constant low learning rate (the cycles' base η)
            RunConfig(name=f"constant_low_s{r}", lr=0.001, batch_size=S0, **common),
        ]
    return Plan("table1", preset, dataset, runs)


# ----------------------------------------------------------------------------- fig5 (memorisation)
def fig5(preset, dataset, seed):
    """Fig. 5 / 14 / 15: MLP with 256 hidden units on MNIST with 25% / 50% random labels;
    S ∈ {50,100,200,500,1000} × η ∈ {0.005,0.01,0.02,0.05,0.07,0.1} × momentum {0, 0.9}
    (with momentum only η ≤ 0.02, as in the paper), 300 epochs."""
    if preset == "quick":
        fracs, bss, lrs, moms, epochs = [0.25, 0.5], [32], [0.02, 0.1], [0.0, 0.9], 2
    else:
        fracs, bss, lrs, moms, epochs = [0.25, 0.5], [50, 100, 200, 500, 1000], [0.005, 0.01, 0.02, 0.05, 0.07, 0.1], \
            [0.0, 0.9], 300
    runs = []
    for f, m, bs, lr in itertools.product(fracs, moms, bss, lrs):
        if m > 0 and lr > 0.02:
            continue
        runs.append(RunConfig(
            name=f"rl{int(f * 100)}_m{_fmt(m)}_lr{_fmt(lr)}_bs{bs}", model="mlp256",
            model_kw=(dict(width=32) if preset == "quick" else {}), dataset=dataset,
            data_kw=_data_kw(preset, dataset, random_label_fraction=f, label_seed=seed), lr=lr, batch_size=bs,
            momentum=m, epochs=epochs, seed=seed,
            # Fig. 15: Hessian norm of the best-validation minimum (and of the endpoint)
            measure=dict(QUICK_MEASURE if preset == "quick" else FULL_MEASURE, at_best_val=True)))
    return Plan("fig5", preset, dataset, runs)


# ----------------------------------------------------------------------------- fig6 / fig7 (breaking point)
def _breaking(preset, dataset, seed, *, name, model_name, base_lrs, base_bs, betas, sizes, seeds, epochs):
    model, mkw = _cifar_model(preset, model_name)
    runs = []
    for lr0, size, b, s in itertools.product(base_lrs, sizes, betas, range(seeds)):
        bs = max(1, int(round(base_bs * b)))
        runs.append(RunConfig(
            name=f"lr{_fmt(lr0)}_n{size or 'all'}_beta{_fmt(b)}_s{s}", model=model, model_kw=mkw, dataset=dataset,
            data_kw=_data_kw(preset, dataset, **({"train_size": size} if size else {})),
            lr=lr0 / base_bs * bs, batch_size=bs, epochs=epochs, seed=seed + s,
            # top Hessian eigenvalue at β=1 → discrete-time stability prediction β* = 2/(η0 λ_max)
            measure=(dict(samples=(QUICK_MEASURE if preset == "quick" else FULL_MEASURE)["samples"],
                          hessian_top_eigenvalue=(QUICK_MEASURE if preset == "quick" else FULL_MEASURE)[
                              "hessian_top_eigenvalue"]) if b == 1 else {})))
    return Plan(name, preset, dataset, runs, notes=f"base_bs={base_bs}")


def fig6(preset, dataset, seed):
    """Fig. 6: VGG-11, η = 0.1β (and 0.05β for 6d), S = 50β, training sets of 12,000 / 22,500 /
    45,000, 5 seeds. β grid and epochs not stated: β ∈ {1,2,4,8,16,32} (project), 100 epochs."""
    if preset == "quick":
        return _breaking(preset, dataset, seed, name="fig6", model_name="vgg11", base_lrs=[0.1, 0.05], base_bs=4,
                         betas=[1, 16], sizes=[128, 256], seeds=1, epochs=1)
    return _breaking(preset, dataset, seed, name="fig6", model_name="vgg11", base_lrs=[0.1, 0.05], base_bs=50,
                     betas=[1, 2, 4, 8, 16, 32], sizes=[12000, 22500, 45000], seeds=5, epochs=100)


def fig7(preset, dataset, seed):
    """Fig. 7: ResNet-56, (η, S) = β·(0.1, 128)... the paper multiplies both by a factor up to >5.
    Project's choice: base η=0.05, S=32 (η/S as Fig. 2's baseline order), β ∈ {1,2,3,5,7,10},
    full training set, 5 seeds (as Fig. 6), 100 epochs."""
    if preset == "quick":
        return _breaking(preset, dataset, seed, name="fig7", model_name="resnet56", base_lrs=[0.05], base_bs=8,
                         betas=[1, 10], sizes=[None], seeds=1, epochs=1)
    return _breaking(preset, dataset, seed, name="fig7", model_name="resnet56", base_lrs=[0.05], base_bs=32,
                     betas=[1, 2, 3, 5, 7, 10], sizes=[None], seeds=5, epochs=100)


# ----------------------------------------------------------------------------- svag (SDE-regime test)
def svag(preset, dataset, seed):
    """SVAG (Li, Malladi & Arora 2021; :mod:`nets.svag`) at Fig. 1 points: the 4-layer BN MLP at fixed
    (η, S) with amplification l ∈ {1, 2, 4} (l·⌊N/S⌋ SVAG steps of η/l per epoch, l = 1 is SGD); test
    accuracy and sharpness vs l say whether the network is in the SDE regime
    (:mod:`validation.nets_svag`). Quick: Fig. 1's quick size, η ∈ {0.025, 0.1} at S = 32, 1 seed;
    full: η ∈ {0.02, 0.1} at S = 100 (η/S = 2e-4, 1e-3), Fig. 1's 200 epochs, 2 seeds."""
    from .svag import SVAGRunConfig
    quick = preset == "quick"
    points, seeds, epochs = ([(0.025, 32), (0.1, 32)], 1, 2) if quick else ([(0.02, 100), (0.1, 100)], 2, 200)
    base = QUICK_MEASURE if quick else FULL_MEASURE
    measure = {k: base[k] for k in ("samples", "hessian_frobenius_hutchinson", "hessian_top_eigenvalue")}
    runs = [SVAGRunConfig(name=f"lr{_fmt(lr)}_bs{bs}_l{amp}" + (f"_s{s}" if s else ""), model="mlp4_bn",
                          model_kw=dict(width=32) if quick else {}, dataset=dataset, data_kw=_data_kw(preset, dataset),
                          lr=lr, batch_size=bs, epochs=epochs, seed=seed + s, measure=dict(measure),
                          loss_log_every=1 if quick else 50, amplification=amp)
            for lr, bs in points for s in range(seeds) for amp in (1, 2, 4)]
    return Plan("svag", preset, dataset, runs)


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in [
    Experiment("fig1", "η/S grid: Hessian norm & val. acc. vs η/S, 4-layer BN MLP", "fashion-mnist", fig1),
    Experiment("fig2", "interpolation between minima at different / equal η/S, ResNet-56", "cifar10", fig2),
    Experiment("fig3", "interpolation at equal η/S = 0.1β/50β, VGG-11", "cifar10", fig3),
    Experiment("fig4", "cyclic BS vs cyclic LR (same η/S), constant equal-ratio pairs, VGG-11", "cifar10", fig4),
    Experiment("fig5", "memorisation with 25%/50% random labels, MLP-256, momentum 0/0.9", "mnist", fig5),
    Experiment("fig6", "breaking point η=0.1β, S=50β, several training-set sizes, VGG-11", "cifar10", fig6),
    Experiment("fig7", "breaking point of the β rescaling, ResNet-56", "cifar10", fig7),
    Experiment("fig8", "η/S sweep, ResNet-56", "cifar10", fig8),
    Experiment("fig9", "η/S grid, 20-layer ReLU MLP without BN, good/bad init", "fashion-mnist", fig9),
    Experiment("table1", "discrete-S vs discrete-η vs triangle vs constant schedules, VGG-11", "cifar10", table1),
    Experiment("svag", "SVAG l ∈ {1, 2, 4} at Fig. 1 points: is the network in the SDE regime?", "fashion-mnist", svag),
]}


def get(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def plan(name: str, preset: str = "quick", *, dataset: Optional[str] = None, seed: int = 0,
         epochs: Optional[int] = None, max_train_size: Optional[int] = None, measure: Optional[str] = None,
         width: Optional[int] = None, max_eval_size: Optional[int] = None) -> Plan:
    return get(name).plan(preset, dataset=dataset, seed=seed, epochs=epochs, max_train_size=max_train_size,
                          measure=measure, width=width, max_eval_size=max_eval_size)


def describe_all() -> str:
    lines = []
    for e in EXPERIMENTS.values():
        nq = len(e.plan("quick").runs)
        nf = len(e.plan("full", dataset="fashion-mnist").runs)
        lines.append(f"{e.name:7s} {e.description} [paper dataset: {e.paper_dataset}; runs: quick {nq}, full {nf}]")
    return "\n".join(lines)
