"""SGD training of the paper's networks: single runs and vmap-batched groups of runs.

Update rule (plain SGD, or heavy-ball momentum ``m`` as in ``torch.optim.SGD``, dampening 0):

    b_k = m·b_{k-1} + g_k (b_1 = g_1),   θ_{k+1} = θ_k − η_k·b_k,

with g_k the mean cross-entropy gradient over a minibatch of exactly S_k samples (noise
n = η/S, paper eq. 2). Each epoch draws a fresh permutation of the training set from a
generator seeded by ``SeedSequence([seed, epoch])`` and takes ⌊N/S_e⌋ steps (the last
incomplete batch is dropped so that every step uses exactly S_e samples).

Run protocol (:func:`train_run`):

* all data on the device; metrics accumulated on the device; one host sync per epoch;
* per-epoch train/val/test loss and accuracy (evaluated in eval mode, BN running statistics);
  with random labels, also accuracy on the true labels of the training set;
* divergence: a non-finite or > ``max_loss`` epoch-mean training loss (or non-finite
  parameters) stops the run, which is recorded with ``status="diverged"``;
* a checkpoint (model, optimiser, RNG state, epoch, history) is written atomically after every
  epoch; rerunning with the same directory resumes from it and gives bitwise the same result on
  CPU as an uninterrupted run; the result is written atomically as ``result.json``.

:func:`train_group` trains K runs that share model, data and batch-size schedule together with
``torch.func.functional_call`` + ``torch.vmap`` over stacked parameters (each run its own lr
schedule, momentum, init seed and data order). BatchNorm in train mode works under vmap because
the running statistics are stacked buffers (one per run) and updated in place per run.
"""
from __future__ import annotations

import copy
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import data as data_mod
from . import schedules
from .models import MODELS, build_model, check_model_kwargs, count_parameters

RESULT = "result.json"
CHECKPOINT = "checkpoint.pt"
GROUP_CHECKPOINT = "group_checkpoint.pt"   # of a vmap group, in its first run's directory
MODEL = "model.pt"


class ConfigError(ValueError):
    """A run configuration is invalid (message names the field)."""


@dataclass
class RunConfig:
    """One training run. ``lr`` / ``batch_size`` are numbers or schedule specs (:mod:`nets.schedules`)."""
    name: str = "run"
    model: str = "mlp4_bn"
    model_kw: dict = field(default_factory=dict)
    dataset: str = "fashion-mnist"
    data_kw: dict = field(default_factory=dict)        # val_size, train_size, test_size, split_seed, ...
    lr: Any = 0.01
    batch_size: Any = 128
    lr_per_step: bool = False
    momentum: float = 0.0
    weight_decay: float = 0.0
    epochs: int = 1
    seed: int = 0
    max_loss: float = 100.0   # divergence bound on the epoch-mean training loss (≈43× ln 10)
    eval_batch_size: int = 2048
    measure: dict = field(default_factory=dict)       # end-of-run measurements, see nets.experiments
    measure_every: int = 0                            # also measure every k epochs (history "tracked"); 0: end only
    measure_tracked: Optional[list] = None            # keys of `measure` taken every measure_every epochs; None: all
    save_model: bool = True

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown run-config fields {sorted(unknown)}")
        return cls(**d)


def data_key(cfg: RunConfig) -> str:
    """Runs with the same key can share one loaded dataset."""
    return json.dumps([data_mod.canonical_name(cfg.dataset), cfg.data_kw], sort_keys=True)


def validate(cfg: RunConfig, n_train: Optional[int] = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Check the config; return per-epoch lr and batch sizes and the rounding error of the noise.

    Every field is checked here, before any data is touched or any step taken; a bad value raises
    :class:`ConfigError` naming the field and what was expected."""
    _int_field("epochs", cfg.epochs, 1)
    _int_field("seed", cfg.seed, 0)
    _int_field("eval_batch_size", cfg.eval_batch_size, 1)
    _int_field("measure_every", cfg.measure_every, 0)
    if not 0.0 <= _real_field("momentum", cfg.momentum, "in [0, 1)") < 1.0:
        raise ConfigError(f"momentum must lie in [0, 1), got {cfg.momentum!r}")
    if not 0.0 <= _real_field("weight_decay", cfg.weight_decay, "finite and >= 0") < math.inf:
        raise ConfigError(f"weight_decay must be finite and >= 0, got {cfg.weight_decay!r}")
    if not _real_field("max_loss", cfg.max_loss, "> 0") > 0:   # +inf allowed: no loss bound
        raise ConfigError(f"max_loss must be > 0, got {cfg.max_loss!r}")
    for name in ("lr_per_step", "save_model"):
        if not isinstance(getattr(cfg, name), bool):
            raise ConfigError(f"{name} must be true or false, got {getattr(cfg, name)!r}")
    if not isinstance(cfg.measure, dict) or not isinstance(cfg.data_kw, dict):
        raise ConfigError(f"measure and data_kw must be dicts, got {cfg.measure!r} and {cfg.data_kw!r}")
    from .measurements import MEASUREMENTS, check_measure_spec
    try:
        check_measure_spec(cfg.measure)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if cfg.measure_tracked is not None:
        measured = sorted(k for k in cfg.measure if k in MEASUREMENTS)
        if not isinstance(cfg.measure_tracked, list) or any(k not in measured for k in cfg.measure_tracked):
            raise ConfigError(f"measure_tracked must be a list of measurement keys of measure ({measured}), "
                              f"got {cfg.measure_tracked!r}")
    try:
        check_model_kwargs(cfg.model, cfg.model_kw)
    except ValueError as exc:
        raise ConfigError(f"model_kw: {exc}" if cfg.model in MODELS else str(exc)) from None
    try:
        lrs = schedules.lr_values_epoch(cfg.lr, cfg.epochs)
        bss, err = schedules.batch_values_epoch(cfg.batch_size, cfg.epochs, n_train)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if isinstance(cfg.batch_size, dict) and cfg.batch_size.get("kind") == "lr_equivalent":
        # S'_e = η_fixed·S/η_e has the noise η_e/S only if the run is trained at the constant lr η_fixed
        eta = float(cfg.batch_size["lr_fixed"])
        constant = schedules._is_number(cfg.lr) or (isinstance(cfg.lr, dict) and cfg.lr.get("kind") == "constant")
        if not constant or not np.allclose(lrs, eta, rtol=1e-12, atol=0.0):
            raise ConfigError(f"lr must be the constant lr_fixed={eta!r} of the 'lr_equivalent' batch-size schedule "
                              f"(otherwise lr/S is not the noise of its lr schedule), got lr={cfg.lr!r}")
    return lrs, bss, err


def _int_field(name: str, v, lo: int) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ConfigError(f"{name} must be an integer >= {lo}, got {v!r}")
    return int(v)


def _real_field(name: str, v, expect: str) -> float:
    """A real number, not NaN (``expect`` names the range, which the caller checks)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)) or math.isnan(v):
        raise ConfigError(f"{name} must be a number {expect}, got {v!r}")
    return float(v)


# ----------------------------------------------------------------------------- helpers
def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=1, default=_json_default)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, torch.Tensor):
        return o.tolist()
    return str(o)


def epoch_generator(seed: int, epoch: int, device) -> torch.Generator:
    """Generator for epoch ``epoch`` of run ``seed`` (data order, augmentation)."""
    g = torch.Generator(device=device)
    g.manual_seed(data_mod._seed_ints(seed, epoch, 0xDA7A))
    return g


def init_seed(seed: int) -> int:
    return data_mod._seed_ints(seed, 0x1417)


def load_data(cfg: RunConfig, device, data_root=None) -> data_mod.DeviceData:
    return data_mod.load(cfg.dataset, data_root=data_root, device=device, **cfg.data_kw)


def make_model(cfg: RunConfig, data: data_mod.DeviceData, device) -> nn.Module:
    return build_model(cfg.model, in_shape=data.input_shape, num_classes=data.num_classes,
                       seed=init_seed(cfg.seed), **cfg.model_kw).to(device)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 2048):
    """(sum of losses, number correct) as device tensors, model in eval mode; no host sync."""
    was = model.training
    model.eval()
    loss = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)
    for i in range(0, x.shape[0], batch):
        out = model(x[i:i + batch])
        loss += F.cross_entropy(out, y[i:i + batch], reduction="sum").double()
        correct += (out.argmax(1) == y[i:i + batch]).sum()
    model.train(was)
    return loss, correct


def _empty_history() -> dict:
    keys = ["epoch", "lr", "batch_size", "noise", "steps", "train_loss_running", "train_acc_running",
            "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "train_acc_true_labels",
            "corrupted_fit", "tracked"]
    return {k: [] for k in keys}


def _eval_all(model, data: data_mod.DeviceData, bs: int):
    """Device tensors for every split (one stack, so the caller syncs once)."""
    vals = []
    for x, y in ((data.x_train, data.y_train), (data.x_val, data.y_val), (data.x_test, data.y_test)):
        if x.shape[0] == 0:
            vals += [torch.zeros((), dtype=torch.float64, device=data.device)] * 2
            continue
        l, c = evaluate(model, x, y, bs)
        vals += [l, c.double()]
    if len(data.corrupted_indices):
        l, c = evaluate(model, data.x_train, data.y_train_clean, bs)
        idx = torch.as_tensor(data.corrupted_indices, device=data.device)
        _, cc = evaluate(model, data.x_train[idx], data.y_train[idx], bs)
        vals += [c.double(), cc.double()]
    return torch.stack(vals)


def _record(hist, data, epoch, lr, bs, steps, run_loss, run_correct, n_seen, ev):
    ev = ev.tolist()
    n_tr, n_val, n_te = data.n_train, data.x_val.shape[0], data.x_test.shape[0]
    hist["epoch"].append(epoch + 1)
    hist["lr"].append(float(lr))
    hist["batch_size"].append(int(bs))
    hist["noise"].append(float(lr) / int(bs))
    hist["steps"].append(int(steps))
    hist["train_loss_running"].append(run_loss / max(n_seen, 1))
    hist["train_acc_running"].append(run_correct / max(n_seen, 1))
    hist["train_loss"].append(ev[0] / n_tr)
    hist["train_acc"].append(ev[1] / n_tr)
    hist["val_loss"].append(ev[2] / n_val if n_val else float("nan"))
    hist["val_acc"].append(ev[3] / n_val if n_val else float("nan"))
    hist["test_loss"].append(ev[4] / n_te)
    hist["test_acc"].append(ev[5] / n_te)
    if len(ev) > 6:
        hist["train_acc_true_labels"].append(ev[6] / n_tr)
        hist["corrupted_fit"].append(ev[7] / len(data.corrupted_indices))


def _track_now(cfg: RunConfig, epoch: int, status: str) -> bool:
    """Measure during training (``measure_every``), e.g. the Hessian norm through cycles (Fig. 16)."""
    return (bool(cfg.measure) and int(cfg.measure_every) > 0 and status != "diverged"
            and (epoch + 1) % int(cfg.measure_every) == 0 and epoch + 1 < cfg.epochs)


def _diverged(loss: float, max_loss: float) -> bool:
    return not math.isfinite(loss) or loss > max_loss


def _batches(perm: torch.Tensor, bs: int, steps: int):
    for j in range(steps):
        yield perm[j * bs:(j + 1) * bs]


def _get_batch(data: data_mod.DeviceData, idx: torch.Tensor, gen: torch.Generator):
    x = data.x_train[idx]
    if data.augment:
        x = data_mod.augment_batch(x, gen, data.mean, data.std)
    return x, data.y_train[idx]


# ----------------------------------------------------------------------------- single run
def train_run(cfg: RunConfig, out_dir: str | os.PathLike | None = None, *, data: data_mod.DeviceData | None = None,
              device="cpu", data_root=None, max_epochs: Optional[int] = None, progress: bool = False,
              model_hook=None) -> dict:
    """Train one run; resume from ``out_dir/checkpoint.pt`` when present; return the result dict.

    ``max_epochs`` stops after that many epochs in total (simulates an interruption: the
    checkpoint is kept, no result is written unless the run is finished).
    """
    device = torch.device(device)
    if data is None:
        data = load_data(cfg, device, data_root)
    lrs, bss, bs_err = validate(cfg, data.n_train)
    out = Path(out_dir) if out_dir is not None else None
    model = make_model(cfg, data, device)
    opt = torch.optim.SGD(model.parameters(), lr=float(lrs[0]), momentum=float(cfg.momentum),
                          weight_decay=float(cfg.weight_decay))
    hist = _empty_history()
    start, status, div_epoch, wall, best = 0, "running", None, 0.0, None
    if out is not None and (out / CHECKPOINT).is_file():
        ck = torch.load(out / CHECKPOINT, map_location=device, weights_only=False)
        if ck["config"] != cfg.to_dict():
            raise ConfigError(f"checkpoint in {out} was written for a different config; remove it or use another --out")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        torch.set_rng_state(ck["torch_rng"])
        hist, start, status, div_epoch, wall = ck["history"], ck["epoch"], ck["status"], ck["diverged_epoch"], ck["wall_s"]
        best = ck.get("best")
    stop = cfg.epochs if max_epochs is None else min(cfg.epochs, max_epochs)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.epochs, initial=start, desc=cfg.name, leave=False)
    model.train()
    n = data.n_train
    for epoch in range(start, stop):
        if status == "diverged":
            break
        t0 = time.perf_counter()
        bs = int(bss[epoch])
        steps = n // bs
        step_lrs = (schedules.lr_values_in_epoch(cfg.lr, epoch, steps) if cfg.lr_per_step
                    else np.full(steps, lrs[epoch]))
        gen = epoch_generator(cfg.seed, epoch, device)
        perm = torch.randperm(n, generator=gen, device=device)
        run_loss = torch.zeros((), device=device, dtype=torch.float64)
        run_correct = torch.zeros((), device=device, dtype=torch.int64)
        for j, idx in enumerate(_batches(perm, bs, steps)):
            x, y = _get_batch(data, idx, gen)
            for grp in opt.param_groups:
                grp["lr"] = float(step_lrs[j])
            out_ = model(x)
            loss = F.cross_entropy(out_, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run_loss += loss.detach().double() * bs
            run_correct += (out_.detach().argmax(1) == y).sum()
        ev = _eval_all(model, data, cfg.eval_batch_size)
        rl, rc = torch.stack([run_loss, run_correct.double()]).tolist()  # one sync per epoch
        _record(hist, data, epoch, step_lrs[0], bs, steps, rl, rc, steps * bs, ev)
        params_ok = all(bool(torch.isfinite(p).all()) for p in model.parameters())
        if _diverged(rl / max(steps * bs, 1), cfg.max_loss) or not params_ok:
            status, div_epoch = "diverged", epoch + 1
        wall += time.perf_counter() - t0
        if _track_now(cfg, epoch, status):
            hist["tracked"].append(dict(epoch=epoch + 1, **measure_model(model, data, tracked_spec(cfg))))
        if status != "diverged":
            best = _update_best(best, cfg, hist, lambda: {k: v.detach().clone() for k, v in model.state_dict().items()})
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{hist['train_loss_running'][-1]:.3g}", val=f"{hist['val_acc'][-1]:.3f}")
        if out is not None:
            atomic_torch_save(out / CHECKPOINT, dict(
                config=cfg.to_dict(), model=model.state_dict(), optimizer=opt.state_dict(),
                torch_rng=torch.get_rng_state(), epoch=epoch + 1, history=hist, status=status,
                diverged_epoch=div_epoch, wall_s=wall, best=best))
    if bar is not None:
        bar.close()
    done = status == "diverged" or len(hist["epoch"]) >= cfg.epochs
    if not done:
        return dict(config=cfg.to_dict(), status="interrupted", history=hist, epochs_done=len(hist["epoch"]))
    if status != "diverged":
        status = "completed"
    result = _finish(cfg, model, data, hist, status, div_epoch, wall, bs_err, out, best)
    if model_hook is not None:
        model_hook(model)
    return result


def _update_best(best, cfg, hist, state_fn):
    """Keep the state with the best validation accuracy (``measure["at_best_val"]``; Fig. 15)."""
    if not (cfg.measure and cfg.measure.get("at_best_val")) or not hist["val_acc"]:
        return best
    acc = hist["val_acc"][-1]
    if best is None or acc > best["val_acc"]:
        return dict(epoch=hist["epoch"][-1], val_acc=acc, state=state_fn())
    return best


def _finish(cfg, model, data, hist, status, div_epoch, wall, bs_err, out, best=None):
    samples = sum(s * b for s, b in zip(hist["steps"], hist["batch_size"]))
    final = {k: v[-1] for k, v in hist.items() if v and k != "tracked"}
    result = dict(
        config=cfg.to_dict(), status=status, diverged=status == "diverged", diverged_epoch=div_epoch,
        history=hist, final=final, n_params=count_parameters(model), data=data.info,
        corrupted_indices=data.corrupted_indices.tolist(), noise_rounding_rel_error=bs_err,
        wall_s=wall, samples_per_s=samples / wall if wall > 0 else None,
        best_val_acc=max(hist["val_acc"]) if hist["val_acc"] else None,
        measurements={},
    )
    if status == "completed" and cfg.measure:
        result["measurements"] = measure_model(model, data, cfg.measure)
        if best is not None:
            mb = copy.deepcopy(model)
            mb.load_state_dict(best["state"])
            result["measurements_best_val"] = dict(epoch=best["epoch"], val_acc=best["val_acc"],
                                                   **measure_model(mb, data, cfg.measure))
    if out is not None:
        if cfg.save_model:
            atomic_torch_save(out / MODEL, model.state_dict())
        atomic_write_json(out / RESULT, result)
    return result


# ----------------------------------------------------------------------------- measurements
# the spec registry and the dispatcher live in nets.measurements
from .measurements import _measure_inputs, _to_jsonable, measure_model, tracked_spec  # noqa: E402,F401


@torch.no_grad()
def interpolate_models(model_a: nn.Module, model_b: nn.Module, data: data_mod.DeviceData, alphas: Sequence[float],
                       *, samples: int = 2048, seed: int = 0, split: str = "train") -> dict:
    """Loss/accuracy on the line (1−α)θ_a + αθ_b (Goodfellow et al. 2014; paper Fig. 2/3).

    Uses ``nets.measure.interpolate`` when it exists; otherwise a local equivalent that
    interpolates parameters *and* BN running statistics and evaluates in eval mode.
    """
    if split == "train":
        x, y = _measure_inputs(data, samples, seed)
    else:
        x, y = getattr(data, f"x_{split}")[:samples], getattr(data, f"y_{split}")[:samples]
    loss_fn = nn.CrossEntropyLoss()
    try:
        from . import measure as M
        fn = getattr(M, "interpolate")
    except Exception:
        fn = None
    if fn is not None:
        try:
            import inspect
            first = next(iter(inspect.signature(fn).parameters))
            al = np.asarray(list(map(float, alphas)))
            with torch.enable_grad():
                if first == "params_a":  # interpolate(params_a, params_b, model, loss_fn, inputs, targets, alphas)
                    out = fn(model_a.state_dict(), model_b.state_dict(), model_a, loss_fn, x, y, al)
                else:                    # interpolate(model_a, model_b, loss_fn, inputs, targets, alphas)
                    out = fn(model_a, model_b, loss_fn, x, y, al)
            r = _to_jsonable(out)
            if isinstance(r, dict) and "loss" in r:
                return {"alphas": list(map(float, alphas)), "loss": r["loss"], "acc": r.get("accuracy", r.get("acc")),
                        "source": "nets.measure", "details": r}
            return {"alphas": list(map(float, alphas)), "source": "nets.measure", "result": r}
        except Exception as exc:
            err = f"{type(exc).__name__}: {exc}"
        else:
            err = None
    else:
        err = "nets.measure.interpolate not available"
    sa, sb = model_a.state_dict(), model_b.state_dict()
    m = copy.deepcopy(model_a).eval()
    losses, accs = [], []
    for a in alphas:
        st = {k: ((1 - a) * sa[k] + a * sb[k]) if sa[k].is_floating_point() else sa[k] for k in sa}
        m.load_state_dict(st)
        out = m(x)
        losses.append(float(loss_fn(out, y)))
        accs.append(float((out.argmax(1) == y).double().mean()))
    return {"alphas": list(map(float, alphas)), "loss": losses, "acc": accs, "source": "local", "note": err}


# ----------------------------------------------------------------------------- vmap-batched group
def group_key(cfg: RunConfig) -> str:
    """Runs with equal keys can be trained together by :func:`train_group`."""
    d = cfg.to_dict()
    return json.dumps([d["model"], d["model_kw"], d["dataset"], d["data_kw"], d["batch_size"], d["epochs"],
                       d["eval_batch_size"], d["lr_per_step"]], sort_keys=True)


def train_group(cfgs: Sequence[RunConfig], out_dirs: Sequence[str | os.PathLike] | None = None, *,
                data: data_mod.DeviceData | None = None, device="cpu", data_root=None,
                max_epochs: Optional[int] = None, progress: bool = False,
                cuda_graphs: bool = False) -> list[dict]:
    """Train K runs together (vmap over stacked parameters); same results as K :func:`train_run`
    calls up to float reassociation. All runs must share :func:`group_key` (model, data,
    batch-size schedule, epochs); lr schedule, momentum, weight decay, seed, max_loss may differ.
    ``cuda_graphs=True`` (CUDA only, not with augmentation): the whole vmapped step (batch gather,
    forward, backward, SGD update, metric accumulation) is captured once per batch size in a
    ``torch.cuda.CUDAGraph`` after ``_GRAPH_WARMUP`` eager steps and replayed, removing the
    per-step Python/launch overhead that dominates small MLPs on a GPU; the trajectory is the
    same as the eager one (same kernels, same inputs). If capture fails the group continues eagerly
    with a warning. Not exercised by the CPU test-suite: check it on a GPU with
    ``benchmarks/bench_nets.py --cuda-graphs`` (it compares against the eager result).
    The group checkpoints to ``group_checkpoint.pt`` in the first run's directory after every
    epoch (resumed when the same group is rerun) and writes every run's ``result.json`` when the
    whole group is done (a run that diverged stays in the group, frozen at lr 0, until then; the
    first run's result last), so that an interrupted group is always resumed whole from its
    checkpoint (see :func:`group_checkpoint_members` and ``nets.executor.execute_task``)."""
    from torch.func import functional_call, grad, stack_module_state, vmap

    cfgs = list(cfgs)
    K = len(cfgs)
    if K == 0:
        return []
    keys = {group_key(c) for c in cfgs}
    if len(keys) != 1:
        raise ConfigError("train_group needs runs sharing model, data, batch-size schedule and epochs")
    device = torch.device(device)
    if data is None:
        data = load_data(cfgs[0], device, data_root)
    plans = [validate(c, data.n_train) for c in cfgs]
    bss, bs_err = plans[0][1], plans[0][2]
    c0 = cfgs[0]
    models = [make_model(c, data, device) for c in cfgs]
    params, buffers = stack_module_state(models)
    params = {k: v.detach() for k, v in params.items()}
    base = copy.deepcopy(models[0]).to("meta")
    mom_buf: dict = {k: None for k in params}
    mom = torch.tensor([float(c.momentum) for c in cfgs], device=device)
    wd = torch.tensor([float(c.weight_decay) for c in cfgs], device=device)
    use_wd = any(float(c.weight_decay) > 0 for c in cfgs)
    use_mom = any(float(c.momentum) > 0 for c in cfgs)
    hists = [_empty_history() for _ in cfgs]
    status = ["running"] * K
    div_epoch: list = [None] * K
    best: list = [None] * K
    start, wall = 0, 0.0
    outs = [Path(o) for o in out_dirs] if out_dirs is not None else None
    ck_path = outs[0] / GROUP_CHECKPOINT if outs else None
    ck_dirs = [os.path.relpath(o, outs[0]) for o in outs] if outs else None  # relative: the tree may move
    finished_before: list = [None] * K   # results already on disk of runs that were done at the checkpoint
    if ck_path is not None and ck_path.is_file():
        ck = torch.load(ck_path, map_location=device, weights_only=False)
        if ck["configs"] != [c.to_dict() for c in cfgs]:  # the group changed (e.g. some runs finished): restart it
            import warnings
            warnings.warn(f"group checkpoint {ck_path} was written for a different group of runs; starting afresh")
        else:
            params, buffers, mom_buf = ck["params"], ck["buffers"], ck["mom_buf"]
            hists, status, div_epoch, start, wall = (ck["histories"], ck["status"], ck["diverged_epoch"], ck["epoch"],
                                                     ck["wall_s"])
            best = ck.get("best", best)
            for k, c in enumerate(cfgs):
                if status[k] == "diverged" or len(hists[k]["epoch"]) >= c.epochs:
                    r = load_result(outs[k])
                    if r is not None and r.get("config") == c.to_dict():
                        finished_before[k] = r

    def loss_fn(p, b, x, y):
        out = functional_call(base, (p, b), (x,))
        loss = F.cross_entropy(out, y)
        return loss, (loss.detach(), (out.argmax(1) == y).sum())

    step_fn = vmap(grad(loss_fn, has_aux=True))

    def eval_fn(p, b, x, y):
        out = functional_call(base, (p, b), (x,))
        return F.cross_entropy(out, y, reduction="sum").double(), (out.argmax(1) == y).sum().double()

    eval_v = vmap(eval_fn, in_dims=(0, 0, None, None))

    def evaluate_group(x, y):
        base.eval()
        tot_l = torch.zeros(K, dtype=torch.float64, device=device)
        tot_c = torch.zeros(K, dtype=torch.float64, device=device)
        with torch.no_grad():
            for i in range(0, x.shape[0], c0.eval_batch_size):
                l, c = eval_v(params, buffers, x[i:i + c0.eval_batch_size], y[i:i + c0.eval_batch_size])
                tot_l += l
                tot_c += c
        base.train()
        return tot_l, tot_c

    def shape_k(v, t):
        return v.view(K, *([1] * (t.dim() - 1)))

    if use_mom:  # b_0 = 0, so b_1 = m·0 + g_1 = g_1 exactly as torch.optim.SGD
        mom_buf = {k: (torch.zeros_like(p) if mom_buf.get(k) is None else mom_buf[k]) for k, p in params.items()}
    mom_v = {k: shape_k(mom, p) for k, p in params.items()}
    wd_v = {k: shape_k(wd, p) for k, p in params.items()}

    def one_step(idx, lr_vec, acc_loss, acc_correct, x=None):
        """One SGD step of all K runs; in-place on params/buffers/momentum (CUDA-graph capturable)."""
        if x is None:
            x = data.x_train[idx]                                  # (K, S, ...)
        y = data.y_train[idx]
        g, (loss, correct) = step_fn(params, buffers, x, y)
        with torch.no_grad():
            for name, p in params.items():
                d = g[name]
                if use_wd:
                    d = d + wd_v[name] * p
                if use_mom:
                    mom_buf[name].mul_(mom_v[name]).add_(d)
                    d = mom_buf[name]
                p.sub_(shape_k(lr_vec, p) * d)
            acc_loss.add_(loss.double() * idx.shape[1])
            acc_correct.add_(correct.double())

    use_graph = bool(cuda_graphs) and GRAPH_OPS.supported(device) and not data.augment
    graphs: dict = {}
    n = data.n_train
    stop = c0.epochs if max_epochs is None else min(c0.epochs, max_epochs)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=c0.epochs, initial=start, desc=f"group of {K}", leave=False)
    base.train()
    for epoch in range(start, stop):
        if all(s == "diverged" for s in status):
            break
        t0 = time.perf_counter()
        bs = int(bss[epoch])
        steps = n // bs
        step_lrs = np.stack([schedules.lr_values_in_epoch(c.lr, epoch, steps) if c.lr_per_step
                             else np.full(steps, plans[i][0][epoch]) for i, c in enumerate(cfgs)], 1)
        alive = torch.tensor([s != "diverged" for s in status], device=device)
        lr_t = torch.as_tensor(step_lrs, dtype=torch.float32, device=device) * alive.float()
        gens = [epoch_generator(c.seed, epoch, device) for c in cfgs]
        perms = torch.stack([torch.randperm(n, generator=g, device=device) for g in gens])
        run_loss = torch.zeros(K, device=device, dtype=torch.float64)
        run_correct = torch.zeros(K, device=device, dtype=torch.float64)
        j0, replay = 0, False
        if use_graph and steps > _GRAPH_WARMUP:
            j0, gstate = _graph_epoch_start(graphs, bs, steps, perms, lr_t, one_step, run_loss, run_correct)
            replay = gstate is not None
            use_graph = replay
        for j in range(j0, steps):
            if replay:
                gstate["idx"].copy_(perms[:, j * bs:(j + 1) * bs])
                gstate["lr"].copy_(lr_t[j])
                GRAPH_OPS.replay(gstate["graph"])
                continue
            idx = perms[:, j * bs:(j + 1) * bs]
            x = None
            if data.augment:
                x = data.x_train[idx]                              # (K, S, ...)
                x = torch.stack([data_mod.augment_batch(x[k], gens[k], data.mean, data.std) for k in range(K)])
            one_step(idx, lr_t[j], run_loss, run_correct, x)
        if replay:
            run_loss += gstate["loss"]
            run_correct += gstate["correct"]
        evs = [evaluate_group(data.x_train, data.y_train), evaluate_group(data.x_val, data.y_val),
               evaluate_group(data.x_test, data.y_test)]
        if len(data.corrupted_indices):
            cidx = torch.as_tensor(data.corrupted_indices, device=device)
            evs += [evaluate_group(data.x_train, data.y_train_clean), evaluate_group(data.x_train[cidx], data.y_train[cidx])]
        flat = torch.stack([t for pair in evs for t in pair] + [run_loss, run_correct]).tolist()  # one sync
        rl_all, rc_all = flat[-2], flat[-1]
        finite = torch.stack([torch.isfinite(p).flatten(1).all(1) for p in params.values()]).all(0).tolist()
        for k in range(K):
            if status[k] == "diverged":
                continue
            ev_k = torch.tensor([flat[i][k] for i in range(len(evs) * 2)])
            if len(evs) > 3:  # keep only the correct counts of the extra evaluations, as in _eval_all
                ev_k = torch.cat([ev_k[:6], ev_k[[7, 9]]])
            _record(hists[k], data, epoch, step_lrs[0, k], bs, steps, rl_all[k], rc_all[k], steps * bs, ev_k)
            if _diverged(rl_all[k] / max(steps * bs, 1), cfgs[k].max_loss) or not finite[k]:
                status[k], div_epoch[k] = "diverged", epoch + 1
        wall += time.perf_counter() - t0
        for k, c in enumerate(cfgs):
            if _track_now(c, epoch, status[k]):
                m = models[k]
                m.load_state_dict({**{kk: v[k] for kk, v in params.items()}, **{kk: v[k] for kk, v in buffers.items()}})
                hists[k]["tracked"].append(dict(epoch=epoch + 1, **measure_model(m, data, tracked_spec(c))))
            if status[k] != "diverged":
                best[k] = _update_best(best[k], c, hists[k], lambda: {
                    **{kk: v[k].detach().clone() for kk, v in params.items()},
                    **{kk: v[k].detach().clone() for kk, v in buffers.items()}})
        if bar is not None:
            bar.update(1)
        if ck_path is not None:
            atomic_torch_save(ck_path, dict(configs=[c.to_dict() for c in cfgs], out_dirs=ck_dirs,
                                            params=params, buffers=buffers,
                                            mom_buf=mom_buf, histories=hists, status=status, diverged_epoch=div_epoch,
                                            epoch=epoch + 1, wall_s=wall, best=best))
    if bar is not None:
        bar.close()
    # Results are written only once the whole group is done (a member that diverged early keeps
    # training as a frozen member, lr 0, and gets its result.json with the others), and the first
    # run's, whose directory holds the group checkpoint, last: while any member is unfinished, the
    # first run is unfinished, so a restart (nets.executor.execute_task) finds the checkpoint and
    # resumes the whole group from it instead of retraining the survivors from scratch.
    done = [status[k] == "diverged" or len(hists[k]["epoch"]) >= c.epochs for k, c in enumerate(cfgs)]
    results: list = [None] * K
    for k in list(range(1, K)) + [0]:
        c = cfgs[k]
        if not done[k]:
            results[k] = dict(config=c.to_dict(), status="interrupted", history=hists[k],
                              epochs_done=len(hists[k]["epoch"]))
            continue
        if finished_before[k] is not None:
            results[k] = finished_before[k]
            continue
        st = "diverged" if status[k] == "diverged" else "completed"
        m = models[k]
        m.load_state_dict({**{kk: v[k] for kk, v in params.items()}, **{kk: v[k] for kk, v in buffers.items()}})
        write = outs is not None and all(done)
        r = _finish(c, m, data, hists[k], st, div_epoch[k], wall / K, bs_err, outs[k] if write else None, best[k])
        r["batched"] = {"group_size": K, "group_wall_s": wall}
        if write:
            atomic_write_json(outs[k] / RESULT, r)
        results[k] = r
    return results


def group_checkpoint_members(out_dir) -> Optional[tuple[list, list, list]]:
    """The vmap group whose checkpoint lies in ``out_dir`` (its first run's directory), as
    ``(configs, run directories, done)`` with ``done[k]`` true for a run that had diverged or
    finished all epochs at the checkpoint; None if there is no such checkpoint (or it predates
    the stored directory list)."""
    path = Path(out_dir) / GROUP_CHECKPOINT
    if not path.is_file():
        return None
    try:  # mmap: read the small metadata without loading the stacked parameters
        ck = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except RuntimeError:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    if "out_dirs" not in ck:
        return None
    cfgs = [RunConfig.from_dict(d) for d in ck["configs"]]
    dirs = [Path(os.path.normpath(Path(out_dir) / d)) for d in ck["out_dirs"]]
    done = [s == "diverged" or len(h["epoch"]) >= c.epochs for s, h, c in zip(ck["status"], ck["histories"], cfgs)]
    return cfgs, dirs, done


_GRAPH_WARMUP = 3


class _CudaGraphOps:
    """The CUDA-graph primitives used by :func:`train_group`, behind one indirection so that the
    replay logic (warm-up, static inputs, accumulators, one graph per batch size) is tested on CPU
    with a fake that records the step and replays it by calling it (tests/nets)."""

    @staticmethod
    def supported(device: torch.device) -> bool:
        return device.type == "cuda"

    @staticmethod
    def warmup_context():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        import contextlib

        @contextlib.contextmanager
        def ctx():
            with torch.cuda.stream(side):
                yield
            torch.cuda.current_stream().wait_stream(side)
        return ctx()

    @staticmethod
    def capture(fn):
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        return graph

    @staticmethod
    def replay(graph):
        graph.replay()


GRAPH_OPS = _CudaGraphOps


def _graph_epoch_start(graphs, bs, steps, perms, lr_t, one_step, run_loss, run_correct):
    """Run the warm-up steps eagerly on a side stream (first use of this batch size), capture the
    step once, and return (first step index to replay, graph state) or (j, None) on failure."""
    import warnings
    st = graphs.get(bs)
    if st is not None:
        st["loss"].zero_()
        st["correct"].zero_()
        return 0, st
    with GRAPH_OPS.warmup_context():
        for j in range(_GRAPH_WARMUP):
            one_step(perms[:, j * bs:(j + 1) * bs], lr_t[j], run_loss, run_correct)
    j0 = _GRAPH_WARMUP
    st = dict(idx=perms[:, j0 * bs:(j0 + 1) * bs].clone(), lr=lr_t[j0].clone(),
              loss=torch.zeros_like(run_loss), correct=torch.zeros_like(run_correct))
    try:
        st["graph"] = GRAPH_OPS.capture(lambda: one_step(st["idx"], st["lr"], st["loss"], st["correct"]))
    except Exception as exc:  # pragma: no cover - GPU only
        warnings.warn(f"CUDA graph capture failed ({type(exc).__name__}: {exc}); continuing eagerly")
        return j0, None
    graphs[bs] = st
    return j0, st


def load_result(out_dir) -> Optional[dict]:
    p = Path(out_dir) / RESULT
    if not p.is_file():
        return None
    with open(p) as fh:
        return json.load(fh)
