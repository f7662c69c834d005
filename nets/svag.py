"""SVAG on networks: is a network in the SDE regime? (Li, Malladi & Arora 2021, NeurIPS 34,
arXiv 2102.12470, eq. 5; :mod:`theory.svag`, :mod:`sim.svag`.)

With amplification l (an integer >= 1) one SVAG step draws two independent minibatches B1, B2 of
S samples and takes a gradient step of size η/l on the weighted loss

    L_SVAG = r₁·CE(B1) + r₂·CE(B2),      r₁,₂ = (1 ± √(2l − 1))/2,

(r₁ + r₂ = 1: the mean gradient is SGD's; r₁² + r₂² = l: l times its variance), each half through
the network on its own, so BatchNorm in train mode normalises each half by its own batch
statistics (as SGD's minibatch of S is), and its running statistics are updated once per half.
l SVAG steps of η/l cover the time of one SGD step with SGD's drift and noise covariance: as l
grows the run converges to the paper's SDE (weak order 1 in 1/l), and l = 1 (r₂ = 0, the second
half is not drawn) is plain SGD.  A network whose test accuracy and sharpness do not move
between l = 1, 2, 4 is in the SDE regime, where the paper's η/S theory applies; a trend in l is
the discretisation effect the SDE misses.

Trainer protocol as :func:`nets.train.train_run` (same validation, evaluation, divergence,
history, checkpoints and result file), with these differences:

* an epoch is the time of ⌊N/S⌋ SGD steps, i.e. l·⌊N/S⌋ SVAG steps; the batches of half k
  (k = 1, 2) run through l permutations of the training set per epoch, the first permutation of
  half 1 being the SGD trainer's (:func:`nets.train.epoch_order`), so l = 1 sees exactly SGD's
  batches; the others come from their own seeded generators, independent of each other;
* the learning rate of SVAG step i is η_t / l, t = i // l the SGD step it falls in; ``history``
  records η (not η/l), so ``noise`` is η/S at every l, and ``steps`` the SGD steps per epoch; the
  minibatch loss is logged at SGD steps (the first SVAG step of each);
* BatchNorm's running statistics (what evaluation and the measurements use) average over the same
  span of SGD time at every l: they receive h·l updates per SGD step (h = 2 halves, 1 at l = 1), so
  each BatchNorm momentum m is set to 1 − (1 − m)^(1/(h·l)) (:func:`time_matched_bn_momentum`).
  Left at m, a short run at l = 4 would evaluate with running statistics 8 times further from their
  initial values than SGD's, which moves the measured sharpness by itself;
* the running training loss and accuracy average over every sample of both halves;
* ``result["svag"]`` holds the amplification, r₁, r₂ and the SVAG steps per epoch;
* momentum is refused (SVAG is defined for plain SGD), as is a vmap group: the runs train one
  after another (:func:`execute_svag_task`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from theory.svag import coefficients

from . import data as data_mod
from . import schedules
from .progress import Progress
from .train import (CHECKPOINT, ConfigError, RunConfig, StepLog, _best_to, _diverged, _empty_history, _eval_all,
                    _finish, _record, _track_now, _update_best, capture_rng, epoch_order, load_checkpoint, load_data,
                    load_result, make_model, measure_model, restore_rng, save_checkpoint, tracked_spec, validate)

__all__ = ["SVAGRunConfig", "svag_weights", "svag_step", "time_matched_bn_momentum", "train_svag_run", "execute_svag_task",
           "is_svag_task", "estimate_svag_task"]


@dataclass
class SVAGRunConfig(RunConfig):
    """A :class:`nets.train.RunConfig` trained with SVAG of amplification ``amplification``."""

    amplification: int = 1


def svag_weights(amplification) -> tuple[float, float]:
    """(r₁, r₂) of amplification l, with a :class:`nets.train.ConfigError` naming ``amplification``
    unless l is an integer >= 1."""
    if isinstance(amplification, (bool, np.bool_)) or not isinstance(amplification, (int, np.integer)) \
            or amplification < 1:
        raise ConfigError(f"amplification must be an integer >= 1, got {amplification!r}")
    return coefficients(int(amplification))


def validate_svag(cfg: SVAGRunConfig, n_train: Optional[int] = None):
    """:func:`nets.train.validate` plus the SVAG fields: per-epoch lr and batch sizes, the noise
    rounding error and (r₁, r₂)."""
    lrs, bss, err = validate(cfg, n_train)
    weights = svag_weights(cfg.amplification)
    if cfg.momentum != 0:
        raise ConfigError(f"momentum must be 0 for SVAG (defined for plain SGD), got {cfg.momentum!r}")
    return lrs, bss, err, weights


def svag_step(model, optimizer, half1, half2, r1: float, r2: float):
    """One SVAG step on ``model``: minimise r₁·CE(half1) + r₂·CE(half2) by one ``optimizer`` step,
    each half (x, y) through the model on its own (train-mode BatchNorm statistics per half);
    ``half2`` is not used when r₂ = 0.  Returns the (loss, number correct) of each half used, as
    detached device tensors."""
    out1 = model(half1[0])
    loss1 = F.cross_entropy(out1, half1[1])
    total, stats = r1 * loss1, [(loss1.detach(), (out1.detach().argmax(1) == half1[1]).sum())]
    if r2 != 0.0:
        out2 = model(half2[0])
        loss2 = F.cross_entropy(out2, half2[1])
        total = total + r2 * loss2
        stats.append((loss2.detach(), (out2.detach().argmax(1) == half2[1]).sum()))
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return stats


def time_matched_bn_momentum(model, amplification: int) -> None:
    """Set every BatchNorm momentum m to 1 − (1 − m)^(1/(h·l)) (h = 2 halves per SVAG step, 1 at l = 1):
    h·l updates per SGD step then decay the running statistics as one update of momentum m does."""
    updates = amplification * (2 if amplification > 1 else 1)
    for mod in model.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm) and mod.momentum is not None:
            mod.momentum = 1.0 - (1.0 - mod.momentum) ** (1.0 / updates)


def _orders(cfg: SVAGRunConfig, epoch: int, data, n_used: int):
    """Per half, the l (permutation, augmentation) pairs of one epoch; half 1's first is SGD's."""
    out = []
    for half in range(2 if cfg.amplification > 1 else 1):
        pairs = []
        for j in range(cfg.amplification):
            if half == 0 and j == 0:
                pairs.append(epoch_order(cfg.seed, epoch, data, n_used))
                continue
            g = torch.Generator(device=data.device)
            g.manual_seed(data_mod._seed_ints(cfg.seed, epoch, 0x5FA6, half, j))
            perm = torch.randperm(data.n_train, generator=g, device=data.device)
            pairs.append((perm, data_mod.augmentation_params(g, n_used) if data.augment else None))
        out.append(pairs)
    return out


def _batch(data, pair, b: int, bs: int):
    perm, aug = pair
    sl = slice(b * bs, (b + 1) * bs)
    x, y = data.x_train[perm[sl]], data.y_train[perm[sl]]
    if aug is not None:
        x = data_mod.apply_augmentation(x, aug[0][sl], aug[1][sl], aug[2][sl], data.mean, data.std)
    return x, y


def _svag_epoch(cfg, model, opt, data, epoch, lr, bs, steps, weights, log):
    """The l·steps SVAG steps of one epoch; returns (loss sum, correct, samples) as device tensors."""
    l = cfg.amplification
    step_lrs = schedules.lr_values_in_epoch(cfg.lr, epoch, steps) if cfg.lr_per_step else np.full(steps, lr)
    orders = _orders(cfg, epoch, data, steps * bs)
    run_loss = torch.zeros((), device=data.device, dtype=torch.float64)
    run_correct = torch.zeros((), device=data.device, dtype=torch.int64)
    for i in range(l * steps):
        j, b = divmod(i, steps)
        for grp in opt.param_groups:
            grp["lr"] = float(step_lrs[i // l]) / l
        halves = [_batch(data, pairs[j], b, bs) for pairs in orders]
        stats = svag_step(model, opt, halves[0], halves[-1], *weights)
        if i % l == 0:
            log.take(i // l, stats[0][0])
        for loss, correct in stats:
            run_loss += loss.double() * bs
            run_correct += correct
    return run_loss, run_correct, l * steps * bs * len(orders)


def _resume(out, cfg, model, opt, device):
    """(history, first epoch, status, diverged epoch, wall s, eval s, best state) from the checkpoint in
    ``out`` (model and optimiser loaded, RNG restored), or those of a fresh start."""
    ck = load_checkpoint(out / CHECKPOINT, device) if out is not None else None
    if ck is None:
        return _empty_history(), 0, "running", None, 0.0, 0.0, None
    if ck["config"] != cfg.to_dict():
        raise ConfigError(f"checkpoint in {out} was written for a different config; remove it or use another --out")
    for obj, key in ((model, "model"), (opt, "optimizer")):
        obj.load_state_dict(ck[key])
    restore_rng(ck["rng"], device)
    return (ck["history"], ck["epoch"], ck["status"], ck["diverged_epoch"], ck["wall_s"], ck["eval_s"],
            _best_to(ck.get("best"), device))


def train_svag_run(cfg: SVAGRunConfig, out_dir=None, *, data=None, device="cpu", data_root=None,
                   max_epochs: Optional[int] = None, progress: bool = False) -> dict:
    """Train one run with SVAG (module docstring); resume from ``out_dir/checkpoint.pt`` when
    present; return the result dict (written atomically as ``out_dir/result.json``)."""
    device = torch.device(device)
    if data is None:
        data = load_data(cfg, device, data_root)
    lrs, bss, bs_err, weights = validate_svag(cfg, data.n_train)
    out = Path(out_dir) if out_dir is not None else None
    model = make_model(cfg, data, device)
    time_matched_bn_momentum(model, cfg.amplification)
    opt = torch.optim.SGD(model.parameters(), lr=float(lrs[0]) / cfg.amplification,
                          weight_decay=float(cfg.weight_decay))
    hist, start, status, div_epoch, wall, eval_s, best = _resume(out, cfg, model, opt, device)
    prog = Progress(cfg.name, cfg.epochs, initial=start, enabled=progress)
    model.train()
    for epoch in range(start, cfg.epochs if max_epochs is None else min(cfg.epochs, max_epochs)):
        if status == "diverged":
            break
        prog.phase(f"training (SVAG, l = {cfg.amplification})")
        t0 = time.perf_counter()
        bs = int(bss[epoch])
        steps = data.n_train // bs
        log = StepLog(cfg.loss_log_every, sum(hist["steps"]), steps, (), device)
        run_loss, run_correct, n_seen = _svag_epoch(cfg, model, opt, data, epoch, lrs[epoch], bs, steps, weights, log)
        prog.phase("evaluation")
        t_ev = time.perf_counter()
        ev = _eval_all(model, data, cfg.eval_batch_size)
        flat = torch.cat([torch.stack([run_loss, run_correct.double()]), log.buffer]).tolist()  # one sync per epoch
        eval_s += time.perf_counter() - t_ev
        log.extend(hist, flat[2:])
        lr_first = schedules.lr_values_in_epoch(cfg.lr, epoch, steps)[0] if cfg.lr_per_step else lrs[epoch]
        _record(hist, data, epoch, lr_first, bs, steps, flat[0], flat[1], n_seen, ev)
        if _diverged(flat[0] / max(n_seen, 1), cfg.max_loss) or not all(bool(torch.isfinite(p).all())
                                                                         for p in model.parameters()):
            status, div_epoch = "diverged", epoch + 1
        wall += time.perf_counter() - t0
        prog.update(1, loss=f"{hist['train_loss_running'][-1]:.3g}")
        if _track_now(cfg, epoch, status):
            hist["tracked"].append(dict(epoch=epoch + 1, **measure_model(model, data, tracked_spec(cfg))))
        if status != "diverged":
            best = _update_best(best, cfg, hist, lambda: {k: v.detach().clone() for k, v in model.state_dict().items()})
        if out is not None:
            save_checkpoint(out / CHECKPOINT, dict(
                config=cfg.to_dict(), model=model.state_dict(), optimizer=opt.state_dict(), rng=capture_rng(device),
                epoch=epoch + 1, history=hist, status=status, diverged_epoch=div_epoch, wall_s=wall, eval_s=eval_s,
                best=best), device)
    if status != "diverged" and len(hist["epoch"]) < cfg.epochs:
        prog.close(f"interrupted after {len(hist['epoch'])} epochs (checkpoint kept)")
        return dict(config=cfg.to_dict(), status="interrupted", history=hist, epochs_done=len(hist["epoch"]))
    status = "diverged" if status == "diverged" else "completed"
    svag = dict(amplification=cfg.amplification, r1=weights[0], r2=weights[1],
                svag_steps_per_epoch=[cfg.amplification * s for s in hist["steps"]])
    result = _finish(cfg, model, data, hist, status, div_epoch, wall, bs_err, out, best,
                     step=dict(step_path="eager", trainer="train_svag_run", eval_wall_s=eval_s, svag=svag),
                     progress=lambda key: prog.phase(f"measuring {key}"))
    prog.close(f"{status} after {len(hist['epoch'])} epochs ({wall:.1f} s)")
    if out is not None and (out / CHECKPOINT).is_file():
        (out / CHECKPOINT).unlink()
    return result


def is_svag_task(task: dict) -> bool:
    """Whether a runner task (:mod:`nets.executor`) holds SVAG runs."""
    return any("amplification" in c for c in task["configs"])


def execute_svag_task(task: dict) -> list:
    """Run a task of SVAG runs one after another (finished runs skipped, unfinished ones resumed);
    ``[(name, status), ...]`` as :func:`nets.executor.execute_task`."""
    from .executor import _cached_data

    if task.get("threads"):
        torch.set_num_threads(int(task["threads"]))
    out = []
    for c, o in zip(task["configs"], task["out_dirs"]):
        cfg = SVAGRunConfig.from_dict(c)
        res = load_result(o)
        if res is None:
            data = _cached_data(cfg, task.get("device", "cpu"), task.get("data_root"))
            res = train_svag_run(cfg, o, data=data, device=task.get("device", "cpu"),
                                 progress=bool(task.get("progress", False)))
        out.append((cfg.name, res["status"]))
    return out


def estimate_svag_task(task: dict, device, data_root=None, *, timed_steps: int = 3) -> dict:
    """Estimated seconds for a task of SVAG runs: ``timed_steps`` SVAG steps timed per run on a fresh
    model, times the run's SVAG steps, plus one timed evaluation per epoch and one timed set of
    end-of-run measurements per distinct model and measurement spec; nothing is written."""
    from .executor import _cached_data

    train_s = meas_s = 0.0
    meas_cache: dict = {}
    for c in task["configs"]:
        cfg = SVAGRunConfig.from_dict(c)
        data = _cached_data(cfg, device, data_root)
        lrs, bss, _, weights = validate_svag(cfg, data.n_train)
        model = make_model(cfg, data, device)
        opt = torch.optim.SGD(model.parameters(), lr=1e-6)
        bs = int(bss[0])
        pairs = [epoch_order(cfg.seed, 0, data, bs * (timed_steps + 1))] * 2
        svag_step(model, opt, _batch(data, pairs[0], 0, bs), _batch(data, pairs[1], 1, bs), *weights)  # warm-up
        t0 = time.perf_counter()
        for b in range(timed_steps):
            svag_step(model, opt, _batch(data, pairs[0], b, bs), _batch(data, pairs[1], b + 1, bs), *weights)
        per_step = (time.perf_counter() - t0) / timed_steps
        t0 = time.perf_counter()
        _eval_all(model, data, cfg.eval_batch_size).tolist()
        t_eval = time.perf_counter() - t0
        train_s += sum(cfg.amplification * (data.n_train // int(b)) * per_step + t_eval for b in bss)
        if cfg.measure:
            key = repr((cfg.model, cfg.model_kw, cfg.dataset, cfg.measure))
            if key not in meas_cache:  # one timed set per distinct (model, measurements)
                t0 = time.perf_counter()
                measure_model(model, data, cfg.measure)
                meas_cache[key] = time.perf_counter() - t0
            meas_s += meas_cache[key]
    return dict(training_s=train_s, measurement_s=meas_s, timed_steps=timed_steps * len(task["configs"]))
