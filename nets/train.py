"""SGD training of the paper's networks: single runs and vmap-batched groups of runs.

Update rule (plain SGD, or heavy-ball momentum ``m`` as in ``torch.optim.SGD``, dampening 0):

    b_k = m·b_{k-1} + g_k (b_1 = g_1),   θ_{k+1} = θ_k − η_k·b_k,

with g_k the mean cross-entropy gradient over a minibatch of exactly S_k samples (noise
n = η/S, paper eq. 2). Each epoch draws a fresh permutation of the training set (and, with
augmentation, every crop offset and flip of the epoch) from a generator seeded by
``SeedSequence([seed, epoch])`` and takes ⌊N/S_e⌋ steps (the last incomplete batch is dropped so
that every step uses exactly S_e samples).

Two trainers, one protocol:

* :func:`train_run` — the plain reference path: one run, ``torch.optim.SGD``, eager PyTorch;
* :func:`train_group` — the fast path: K runs that share model, data and batch-size schedule in
  one ``torch.func.functional_call`` + ``torch.vmap`` step over stacked parameters (each run its
  own lr schedule, momentum, init seed and data order; BatchNorm running statistics are stacked
  buffers updated per run). Its step runs on one of :data:`STEP_PATHS`: ``"cuda-graph"`` (the
  whole step, batch gather and augmentation included, captured once per batch size and replayed;
  the default on CUDA), ``"compiled"`` (``torch.compile``; ``mode="reduce-overhead"`` on CUDA)
  or ``"eager"`` (the default on a CPU). Every result records the path that ran (``step_path``)
  and, for graphs, how many were captured and replayed. A graph that cannot be captured is an
  error, never a silent fall-back: ask for ``step_path="eager"`` (CLI ``--eager``) instead.

Protocol (both trainers):

* all data on the device; metrics accumulated on the device; one host sync per epoch;
* per-epoch train/val/test loss and accuracy (evaluated in eval mode, BN running statistics);
  with random labels, also accuracy on the true labels of the training set; the minibatch loss
  of every ``loss_log_every``-th step (``history["logged_step"]``, ``history["logged_loss"]``:
  the loss of the minibatch of step t at the parameters before step t's update);
* divergence: a non-finite or > ``max_loss`` epoch-mean training loss (or non-finite
  parameters) stops the run, which is recorded with ``status="diverged"``;
* convergence (:func:`convergence`, recorded as ``converged`` in every completed result):
  train accuracy >= 99% at the end and the train loss down by at most 0.02 nats over the last
  10% of the epochs (at least one epoch);
* a checkpoint (model, optimiser, every RNG state, epoch, history) is written atomically after
  every epoch and loaded on the CPU first whatever the device (:func:`load_checkpoint`), so a
  resume follows one code path on every device; rerunning with the same directory resumes from
  it and gives bitwise the result of an uninterrupted run on the same device; a checkpoint
  written on another device type or by another torch version is refused with an error naming
  the file (resuming it would not reproduce the run), an unreadable one is set aside as
  ``*.corrupt`` and the run restarts;
* the result is written atomically as ``result.json`` (and the weights as ``model.pt``).

Numerics: training keeps PyTorch's defaults (float32; TF32 as PyTorch sets it for the device);
every measurement runs in full float32 precision (TF32 off, see :mod:`nets.measure`).
"""
from __future__ import annotations

import copy
import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from theory._io import atomic_write, atomic_write_text, set_aside_corrupt

from . import data as data_mod
from . import schedules
from .measurements import _measure_inputs, _to_jsonable, measure_model, tracked_spec  # noqa: F401
from .models import MODELS, build_model, check_model_kwargs, count_parameters
from .progress import Progress
from .results import CONVERGENCE_CRITERION, convergence  # noqa: F401  (re-exported: part of the trainer's record)

__all__ = ["RESULT", "CHECKPOINT", "GROUP_CHECKPOINT", "MODEL", "CHECKPOINT_FORMAT", "STEP_PATHS", "GRAPH_OPS",
           "ConfigError", "CheckpointError", "StepPathError", "GroupMemoryError", "RunConfig", "StepLog", "data_key",
           "validate", "atomic_write_json", "atomic_torch_save", "capture_rng", "restore_rng", "save_checkpoint",
           "load_checkpoint", "epoch_generator", "epoch_order", "init_seed", "load_data", "make_model", "evaluate",
           "resolve_step_path", "estimate_group_bytes", "free_device_bytes", "check_group_fits", "train_run",
           "train_group", "group_key", "group_checkpoint_members", "interpolate_models", "load_result"]

RESULT = "result.json"
CHECKPOINT = "checkpoint.pt"
GROUP_CHECKPOINT = "group_checkpoint.pt"   # of a vmap group, in its first run's directory
MODEL = "model.pt"
CHECKPOINT_FORMAT = 2                      # bumped when the checkpoint layout changes

#: How :func:`train_group` runs its step: "auto" is "cuda-graph" on CUDA and "eager" elsewhere.
STEP_PATHS = ("auto", "cuda-graph", "compiled", "eager")

class ConfigError(ValueError):
    """A run configuration is invalid (message names the field)."""


class CheckpointError(RuntimeError):
    """A checkpoint cannot be resumed here (message names the file, why, and what to do)."""


class StepPathError(RuntimeError):
    """The requested step path cannot run (e.g. a CUDA graph capture failed)."""


class GroupMemoryError(MemoryError):
    """A vmap group would not fit in the device's free memory (message names the group and the bytes)."""


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
    loss_log_every: int = 50                          # log the minibatch loss every k steps (Fig. 13); 0: never
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
    _int_field("loss_log_every", cfg.loss_log_every, 0)
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
    """``obj`` as indented JSON, written atomically (:func:`theory._io.atomic_write`)."""
    atomic_write_text(path, json.dumps(obj, indent=1, default=_json_default))


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save(obj)``, written atomically (:func:`theory._io.atomic_write`)."""
    atomic_write(path, lambda fh: torch.save(obj, fh))


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


# ----------------------------------------------------------------------------- checkpoints
def capture_rng(device: torch.device) -> dict:
    """Every random-number state a run touches: the CPU generator and, on CUDA, the device's."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict, device: torch.device) -> None:
    """Inverse of :func:`capture_rng` (states are CPU byte tensors, as :func:`load_checkpoint` gives)."""
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def save_checkpoint(path: str | os.PathLike, payload: dict, device: torch.device) -> None:
    """Write ``payload`` atomically with what a resume must match: format, torch version, device type."""
    meta = dict(format=CHECKPOINT_FORMAT, torch_version=torch.__version__, device_type=torch.device(device).type)
    atomic_torch_save(path, dict(payload, meta=meta))


def load_checkpoint(path: str | os.PathLike, device) -> Optional[dict]:
    """Load a checkpoint for resuming on ``device``, or None if there is none (or it was unreadable).

    Always loaded onto the CPU first (``map_location="cpu"``), whatever the device: RNG states must
    stay CPU byte tensors (``torch.set_rng_state`` refuses anything else), and model, optimiser and
    stacked group states are moved to the device by the code that uses them, so a CUDA resume and a
    CPU resume take the same path. An unreadable file (truncated, not a checkpoint) is renamed to
    ``*.corrupt`` with a warning and the run restarts from scratch (nothing finished is lost: a
    finished run is its ``result.json``). A checkpoint written by another torch version, on another
    device type or in another layout raises :class:`CheckpointError` (the file is kept): resuming it
    would not reproduce the uninterrupted run."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(ck, dict):
            raise TypeError(f"a {type(ck).__name__}, not a checkpoint dict")
    except Exception as exc:
        bad = set_aside_corrupt(path)
        warnings.warn(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc}); kept aside as {bad.name}, "
                      "the run restarts from scratch")
        return None
    meta = ck.get("meta") or {}
    device = torch.device(device)
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} has checkpoint format {meta.get('format', 1)}, this version writes "
                              f"{CHECKPOINT_FORMAT}: remove it to restart the run")
    if meta.get("torch_version") != torch.__version__:
        raise CheckpointError(f"{path} was written by torch {meta.get('torch_version')} and this is torch "
                              f"{torch.__version__}: resuming would not reproduce the run; resume it with torch "
                              f"{meta.get('torch_version')}, or remove the file to restart the run")
    if meta.get("device_type") != device.type:
        raise CheckpointError(f"{path} was written on {meta.get('device_type')} and this run is on {device.type}: "
                              f"resuming would not reproduce the run; resume it with --device "
                              f"{meta.get('device_type')}, or remove the file to restart the run")
    return ck


# ----------------------------------------------------------------------------- data order
def epoch_generator(seed: int, epoch: int, device) -> torch.Generator:
    """Generator for epoch ``epoch`` of run ``seed`` (data order, augmentation)."""
    g = torch.Generator(device=device)
    g.manual_seed(data_mod._seed_ints(seed, epoch, 0xDA7A))
    return g


def epoch_order(seed: int, epoch: int, data: data_mod.DeviceData, n_used: int):
    """The permutation of the training set for one epoch and, with augmentation, the crop offsets and
    flips of its first ``n_used`` (= steps·S) positions, all drawn up front from
    :func:`epoch_generator`: ``(perm, aug)`` with ``aug`` None or ``(oy, ox, flip)``. Both trainers,
    every step path and every group size use it, so they see the same batches and crops."""
    g = epoch_generator(seed, epoch, data.device)
    perm = torch.randperm(data.n_train, generator=g, device=data.device)
    aug = data_mod.augmentation_params(g, n_used) if data.augment else None
    return perm, aug


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
            "corrupted_fit", "tracked", "logged_step", "logged_loss"]
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
    hist["val_loss"].append(ev[2] / n_val if n_val else None)    # no validation set: absent, never NaN
    hist["val_acc"].append(ev[3] / n_val if n_val else None)
    hist["test_loss"].append(ev[4] / n_te)
    hist["test_acc"].append(ev[5] / n_te)
    if len(ev) > 6:
        hist["train_acc_true_labels"].append(ev[6] / n_tr)
        hist["corrupted_fit"].append(ev[7] / len(data.corrupted_indices))


class StepLog:
    """Minibatch losses of every ``every``-th step (global step count) of one epoch, written into a
    device buffer by a copy (no host sync, CUDA-graph safe) and read once at the end of the epoch."""

    def __init__(self, every: int, first_step: int, steps: int, shape: tuple, device):
        js = [j for j in range(steps) if every and (first_step + j) % every == 0]
        self.slot = {j: i for i, j in enumerate(js)}
        self.steps = [first_step + j for j in js]
        self.buffer = torch.zeros((len(js),) + tuple(shape), dtype=torch.float64, device=device)

    def take(self, j: int, loss: torch.Tensor) -> None:
        i = self.slot.get(j)
        if i is not None:
            self.buffer[i].copy_(loss.detach())

    def extend(self, hist: dict, values: list) -> None:
        hist["logged_step"].extend(self.steps)
        hist["logged_loss"].extend(values)


# ----------------------------------------------------------------------------- step paths
def resolve_step_path(step_path: str, device) -> str:
    """The step path :func:`train_group` runs for ``step_path`` on ``device`` ("auto": a CUDA graph on
    CUDA, eager elsewhere); an unknown name or a graph without CUDA is a :class:`ConfigError`."""
    if step_path not in STEP_PATHS:
        raise ConfigError(f"step_path must be one of {', '.join(STEP_PATHS)}, got {step_path!r}")
    device = torch.device(device)
    if step_path == "auto":
        return "cuda-graph" if GRAPH_OPS.supported(device) else "eager"
    if step_path == "cuda-graph" and not GRAPH_OPS.supported(device):
        raise ConfigError(f"step_path 'cuda-graph' needs a CUDA device, got {device}; use 'eager' (or 'compiled')")
    return step_path


class _CudaGraphOps:
    """The CUDA-graph primitives used by :func:`train_group`, behind one indirection so that the
    replay logic (warm-up, static inputs, accumulators, one graph per batch size) is tested on CPU
    with a fake that records the step and replays it by calling it (tests/nets)."""

    @staticmethod
    def supported(device: torch.device) -> bool:
        return torch.device(device).type == "cuda"

    @staticmethod
    def warmup_context():
        import contextlib
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())

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
_GRAPH_WARMUP = 3   # eager steps on a side stream before the first capture (cuDNN/cuBLAS workspace set-up)


# ----------------------------------------------------------------------------- memory
def _activation_numel(cfg: RunConfig, in_shape: tuple, num_classes: int) -> tuple[int, int, int, int]:
    """(parameters, buffers, Σ output elements of every leaf module per sample, largest single
    output per sample) of ``cfg``'s model, from one forward pass on the meta device (no memory)."""
    model = build_model(cfg.model, in_shape=in_shape, num_classes=num_classes, **cfg.model_kw).to("meta")
    sizes: list[int] = []
    hooks = [m.register_forward_hook(lambda m, i, o: sizes.append(o.numel()))
             for m in model.modules() if not list(m.children())]
    with torch.no_grad():
        model.train()
        model(torch.empty((2,) + tuple(in_shape), device="meta"))
    for h in hooks:
        h.remove()
    n_par = sum(p.numel() for p in model.parameters())
    n_buf = sum(b.numel() for b in model.buffers())
    return n_par, n_buf, sum(sizes) // 2, max(sizes) // 2


def estimate_group_bytes(cfgs: Sequence[RunConfig], in_shape: tuple, num_classes: int = 10, *,
                         step_path: str = "eager", max_batch_size: Optional[int] = None) -> dict:
    """Estimated peak device memory (bytes) of training ``cfgs`` as one vmap group, by part.

    float32 throughout: stacked parameters, gradients, momentum buffers and best-state copies
    (4 bytes × K × p each); activations of the largest training batch, counted 3× (the saved
    forward outputs, their gradients and vmap's temporaries); one evaluation chunk (2× its largest
    layer output); augmentation (the padded batch, 2×); with CUDA graphs, one private pool per
    distinct batch size holding that step's activations; and the largest end-of-run measurement of
    one model (per-sample gradients in float64, 2 copies, and a Lanczos basis of 100 float64
    vectors). The data set itself is already on the device and is not counted. Checked against
    the device's free memory by :func:`check_group_fits`; measured against the real peak by the
    ``gpu`` tests."""
    cfgs = list(cfgs)
    K, c0 = len(cfgs), cfgs[0]
    n_par, n_buf, act, widest = _activation_numel(c0, in_shape, num_classes)
    if max_batch_size is None:
        max_batch_size = int(max(validate(c0)[1]))
    sizes = sorted(set(int(b) for b in validate(c0)[1]))
    f32, f64 = 4, 8
    parts = dict(
        parameters=f32 * K * (n_par + n_buf),
        gradients=f32 * K * n_par,
        momentum=f32 * K * n_par * any(float(c.momentum) > 0 for c in cfgs),
        best_state=f32 * K * (n_par + n_buf) * any(bool(c.measure.get("at_best_val")) for c in cfgs),
        activations=3 * f32 * K * max_batch_size * act,
        evaluation=2 * f32 * K * min(c0.eval_batch_size, 10 ** 9) * widest,
        augmentation=2 * f32 * K * max_batch_size * int(np.prod(in_shape[:1])) * (in_shape[-2] + 8) * (in_shape[-1] + 8)
        if len(in_shape) == 3 and in_shape[0] == 3 else 0,
        graph_pools=(3 * f32 * K * act * sum(s for s in sizes if s != max_batch_size)) if step_path == "cuda-graph"
        else 0,
    )
    gns = max([int((c.measure.get(k) or {}).get("samples", 128)) for c in cfgs
               for k in ("gradient_noise_stats", "alignment") if k in c.measure] or [0])
    parts["measurement"] = (2 * f64 * gns * n_par + 100 * f64 * n_par) if any(c.measure for c in cfgs) else 0
    parts["total"] = int(sum(parts.values()))
    return parts


def free_device_bytes(device) -> Optional[int]:
    """Free memory of ``device`` in bytes (CUDA: the driver's count; CPU: ``MemAvailable``), or None."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_group_fits(cfgs: Sequence[RunConfig], data: data_mod.DeviceData, device, *, step_path: str = "eager",
                     label: Optional[str] = None, free: Optional[int] = None) -> dict:
    """Raise :class:`GroupMemoryError` before anything is allocated if the group's estimated memory
    (:func:`estimate_group_bytes`) exceeds 90% of the device's free memory; return the estimate."""
    est = estimate_group_bytes(cfgs, data.input_shape, data.num_classes, step_path=step_path)
    free = free_device_bytes(device) if free is None else free
    if free is not None and est["total"] > 0.9 * free:
        K = len(cfgs)
        per_run = est["total"] / K
        fit = int(0.9 * free // per_run)
        where = label or cfgs[0].name
        raise GroupMemoryError(
            f"group {where} ({K} runs: {', '.join(c.name for c in cfgs[:4])}{', ...' if K > 4 else ''}) needs an "
            f"estimated {est['total'] / 2**30:.2f} GiB on {device} but {free / 2**30:.2f} GiB are free: "
            + (f"use --max-group {fit} (runs per vmap group)" if fit >= 1 else
               "a single run does not fit; use a smaller eval_batch_size or measurement subset, or another device"))
    return est


# ----------------------------------------------------------------------------- single run (reference path)
def train_run(cfg: RunConfig, out_dir: str | os.PathLike | None = None, *, data: data_mod.DeviceData | None = None,
              device="cpu", data_root=None, max_epochs: Optional[int] = None, progress: bool = False,
              model_hook=None, label: Optional[str] = None) -> dict:
    """Train one run with ``torch.optim.SGD`` in eager PyTorch (the plain reference path next to
    :func:`train_group`); resume from ``out_dir/checkpoint.pt`` when present; return the result dict.

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
    ck = load_checkpoint(out / CHECKPOINT, device) if out is not None else None
    if ck is not None:
        if ck["config"] != cfg.to_dict():
            raise ConfigError(f"checkpoint in {out} was written for a different config; remove it or use another --out")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        restore_rng(ck["rng"], device)
        hist, start, status, div_epoch, wall = ck["history"], ck["epoch"], ck["status"], ck["diverged_epoch"], ck["wall_s"]
        best = _best_to(ck.get("best"), device)
    stop = cfg.epochs if max_epochs is None else min(cfg.epochs, max_epochs)
    prog = Progress(label or cfg.name, cfg.epochs, initial=start, enabled=progress)
    eval_s = (ck or {}).get("eval_s", 0.0)
    model.train()
    n = data.n_train
    for epoch in range(start, stop):
        if status == "diverged":
            break
        prog.phase("training")
        t0 = time.perf_counter()
        bs = int(bss[epoch])
        steps = n // bs
        step_lrs = (schedules.lr_values_in_epoch(cfg.lr, epoch, steps) if cfg.lr_per_step
                    else np.full(steps, lrs[epoch]))
        perm, aug = epoch_order(cfg.seed, epoch, data, steps * bs)
        log = StepLog(cfg.loss_log_every, sum(hist["steps"]), steps, (), device)
        run_loss = torch.zeros((), device=device, dtype=torch.float64)
        run_correct = torch.zeros((), device=device, dtype=torch.int64)
        for j in range(steps):
            sl = slice(j * bs, (j + 1) * bs)
            idx = perm[sl]
            x, y = data.x_train[idx], data.y_train[idx]
            if aug is not None:
                x = data_mod.apply_augmentation(x, aug[0][sl], aug[1][sl], aug[2][sl], data.mean, data.std)
            for grp in opt.param_groups:
                grp["lr"] = float(step_lrs[j])
            out_ = model(x)
            loss = F.cross_entropy(out_, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            log.take(j, loss)
            run_loss += loss.detach().double() * bs
            run_correct += (out_.detach().argmax(1) == y).sum()
        prog.phase("evaluation")
        t_ev = time.perf_counter()
        ev = _eval_all(model, data, cfg.eval_batch_size)
        flat = torch.cat([torch.stack([run_loss, run_correct.double()]), log.buffer]).tolist()  # one sync per epoch
        eval_s += time.perf_counter() - t_ev
        rl, rc = flat[0], flat[1]
        log.extend(hist, flat[2:])
        _record(hist, data, epoch, step_lrs[0], bs, steps, rl, rc, steps * bs, ev)
        params_ok = all(bool(torch.isfinite(p).all()) for p in model.parameters())
        if _diverged(rl / max(steps * bs, 1), cfg.max_loss) or not params_ok:
            status, div_epoch = "diverged", epoch + 1
        wall += time.perf_counter() - t0
        prog.update(1, loss=f"{hist['train_loss_running'][-1]:.3g}",
                    **({"val_acc": f"{hist['val_acc'][-1]:.3f}"} if hist["val_acc"][-1] is not None else {}))
        if _track_now(cfg, epoch, status):
            hist["tracked"].append(dict(epoch=epoch + 1, **measure_model(
                model, data, tracked_spec(cfg), progress=lambda key: prog.phase(f"measuring {key} (tracked)"))))
        if status != "diverged":
            best = _update_best(best, cfg, hist, lambda: {k: v.detach().clone() for k, v in model.state_dict().items()})
        if out is not None:
            save_checkpoint(out / CHECKPOINT, dict(
                config=cfg.to_dict(), model=model.state_dict(), optimizer=opt.state_dict(),
                rng=capture_rng(device), epoch=epoch + 1, history=hist, status=status,
                diverged_epoch=div_epoch, wall_s=wall, eval_s=eval_s, best=best), device)
    done = status == "diverged" or len(hist["epoch"]) >= cfg.epochs
    if not done:
        prog.close(f"interrupted after {len(hist['epoch'])} epochs (checkpoint kept)")
        return dict(config=cfg.to_dict(), status="interrupted", history=hist, epochs_done=len(hist["epoch"]))
    if status != "diverged":
        status = "completed"
    result = _finish(cfg, model, data, hist, status, div_epoch, wall, bs_err, out, best,
                     step=dict(step_path="eager", trainer="train_run", eval_wall_s=eval_s),
                     progress=lambda key: prog.phase(f"measuring {key} (end of run)"))
    prog.close(f"{status} after {len(hist['epoch'])} epochs: training and evaluation {wall:.1f} s (evaluation "
               f"{eval_s:.1f} s), measurements {result['measurements'].get('measure_wall_s', 0.0):.1f} s")
    if out is not None and (out / CHECKPOINT).is_file():
        (out / CHECKPOINT).unlink()   # the result is written: nothing left to resume
    if model_hook is not None:
        model_hook(model)
    return result


def _track_now(cfg: RunConfig, epoch: int, status: str) -> bool:
    """Measure during training (``measure_every``), e.g. the Hessian norm through cycles (Fig. 16)."""
    return (bool(cfg.measure) and int(cfg.measure_every) > 0 and status != "diverged"
            and (epoch + 1) % int(cfg.measure_every) == 0 and epoch + 1 < cfg.epochs)


def _diverged(loss: float, max_loss: float) -> bool:
    return not math.isfinite(loss) or loss > max_loss


def _best_to(best, device):
    """A best-validation state loaded from a checkpoint (CPU tensors), moved to ``device``."""
    if best is None:
        return None
    return dict(best, state={k: v.to(device) for k, v in best["state"].items()})


def _update_best(best, cfg, hist, state_fn):
    """Keep the state with the best validation accuracy (``measure["at_best_val"]``; Fig. 15)."""
    if not (cfg.measure and cfg.measure.get("at_best_val")) or not hist["val_acc"] or hist["val_acc"][-1] is None:
        return best
    acc = hist["val_acc"][-1]
    if best is None or acc > best["val_acc"]:
        return dict(epoch=hist["epoch"][-1], val_acc=acc, state=state_fn())
    return best


def _finish(cfg, model, data, hist, status, div_epoch, wall, bs_err, out, best=None, step=None, progress=None):
    samples = sum(s * b for s, b in zip(hist["steps"], hist["batch_size"]))
    final = {k: v[-1] for k, v in hist.items() if v and k not in ("tracked", "logged_step", "logged_loss")}
    conv = convergence(hist) if status == "completed" else dict(converged=False, criterion=CONVERGENCE_CRITERION,
                                                                  reason=status)
    result = dict(
        config=cfg.to_dict(), status=status, diverged=status == "diverged", diverged_epoch=div_epoch,
        converged=bool(conv["converged"]), convergence=conv,
        history=hist, final=final, n_params=count_parameters(model), data=data.info,
        corrupted_indices=data.corrupted_indices.tolist(), noise_rounding_rel_error=bs_err,
        wall_s=wall, samples_per_s=samples / wall if wall > 0 else None,
        best_val_acc=max((v for v in hist["val_acc"] if v is not None), default=None),
        **(step or {}), device=str(data.device), torch_version=torch.__version__,
        measurements={},
    )
    if status == "completed" and cfg.measure:
        result["measurements"] = measure_model(model, data, cfg.measure, progress=progress)
        if best is not None:
            mb = copy.deepcopy(model)
            mb.load_state_dict(best["state"])
            result["measurements_best_val"] = dict(epoch=best["epoch"], val_acc=best["val_acc"],
                                                   **measure_model(mb, data, cfg.measure, progress=progress))
    if out is not None:
        if cfg.save_model:
            atomic_torch_save(out / MODEL, model.state_dict())
        atomic_write_json(out / RESULT, result)
    return result


# ----------------------------------------------------------------------------- measurements
# the spec registry and the dispatcher live in nets.measurements


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


# ----------------------------------------------------------------------------- vmap-batched group (fast path)
def group_key(cfg: RunConfig) -> str:
    """Runs with equal keys can be trained together by :func:`train_group`."""
    d = cfg.to_dict()
    return json.dumps([d["model"], d["model_kw"], d["dataset"], d["data_kw"], d["batch_size"], d["epochs"],
                       d["eval_batch_size"], d["lr_per_step"], d["loss_log_every"]], sort_keys=True)


class _GroupState:
    """Stacked parameters, BN buffers and momentum of K runs, and the vmapped SGD step on them.

    :meth:`step` updates everything in place (the eager path, and what a CUDA graph captures);
    :meth:`functional_step` is the same update as a pure function of the state (what
    ``torch.compile`` compiles, its outputs copied back by :meth:`step_compiled`)."""

    def __init__(self, cfgs: Sequence[RunConfig], data: data_mod.DeviceData, device: torch.device):
        from torch.func import functional_call, grad, stack_module_state, vmap

        self.K, self.data, self.device = len(cfgs), data, device
        self.models = [make_model(c, data, device) for c in cfgs]
        params, buffers = stack_module_state(self.models)
        self.params = {k: v.detach() for k, v in params.items()}
        self.buffers = buffers
        self.base = copy.deepcopy(self.models[0]).to("meta")
        self.use_wd = any(float(c.weight_decay) > 0 for c in cfgs)
        self.use_mom = any(float(c.momentum) > 0 for c in cfgs)
        mom = torch.tensor([float(c.momentum) for c in cfgs], device=device)
        wd = torch.tensor([float(c.weight_decay) for c in cfgs], device=device)
        # b_0 = 0, so b_1 = m·0 + g_1 = g_1 exactly as torch.optim.SGD
        self.mom_buf = {k: torch.zeros_like(p) for k, p in self.params.items()} if self.use_mom else {}
        self.mom_v = {k: self._per_run(mom, p) for k, p in self.params.items()}
        self.wd_v = {k: self._per_run(wd, p) for k, p in self.params.items()}
        base = self.base

        def loss_fn(p, b, x, y):
            out = functional_call(base, (p, b), (x,))
            loss = F.cross_entropy(out, y)
            return loss, (loss.detach(), (out.argmax(1) == y).sum())

        def eval_fn(p, b, x, y):
            out = functional_call(base, (p, b), (x,))
            return F.cross_entropy(out, y, reduction="sum").double(), (out.argmax(1) == y).sum().double()

        self.grad_fn = vmap(grad(loss_fn, has_aux=True))
        self.eval_v = vmap(eval_fn, in_dims=(0, 0, None, None))
        self._compiled = None

    def _per_run(self, v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return v.view(self.K, *([1] * (like.dim() - 1)))

    def batch(self, idx: torch.Tensor, aug) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (K, S, ...) and labels (K, S) of the runs' minibatches, augmented where asked."""
        d = self.data
        x, y = d.x_train[idx], d.y_train[idx]
        if aug is not None:
            flat = x.flatten(0, 1)
            x = data_mod.apply_augmentation(flat, aug[0].flatten(), aug[1].flatten(), aug[2].flatten(),
                                            d.mean, d.std).view(x.shape)
        return x, y

    def step(self, idx, aug, lr_vec, acc_loss, acc_correct, step_loss) -> None:
        """One SGD step of all K runs, in place on parameters, buffers and momentum (CUDA-graph capturable)."""
        x, y = self.batch(idx, aug)
        g, (loss, correct) = self.grad_fn(self.params, self.buffers, x, y)
        with torch.no_grad():
            for name, p in self.params.items():
                d = g[name]
                if self.use_wd:
                    d = d + self.wd_v[name] * p
                if self.use_mom:
                    self.mom_buf[name].mul_(self.mom_v[name]).add_(d)
                    d = self.mom_buf[name]
                p.sub_(self._per_run(lr_vec, p) * d)
            acc_loss.add_(loss.double() * idx.shape[1])
            acc_correct.add_(correct.double())
            step_loss.copy_(loss)

    def functional_step(self, params, buffers, mom_buf, x, y, lr_vec):
        """The update of :meth:`step` as a pure function: (new params, new buffers, new momentum, loss, correct)."""
        bufs = {k: v.clone() for k, v in buffers.items()}   # BN updates its running statistics in place
        g, (loss, correct) = self.grad_fn(params, bufs, x, y)
        new_p, new_m = {}, {}
        for name, p in params.items():
            d = g[name]
            if self.use_wd:
                d = d + self.wd_v[name] * p
            if self.use_mom:
                d = self.mom_v[name] * mom_buf[name] + d
                new_m[name] = d
            new_p[name] = p - self._per_run(lr_vec, p) * d
        return new_p, bufs, new_m, loss, correct

    def step_compiled(self, idx, aug, lr_vec, acc_loss, acc_correct, step_loss) -> None:
        if self._compiled is None:
            mode = "reduce-overhead" if self.device.type == "cuda" else "default"
            self._compiled = torch.compile(self.functional_step, mode=mode, dynamic=False)
        x, y = self.batch(idx, aug)
        new_p, bufs, new_m, loss, correct = self._compiled(self.params, self.buffers, self.mom_buf, x, y, lr_vec)
        with torch.no_grad():
            for k, v in new_p.items():
                self.params[k].copy_(v)
            for k, v in bufs.items():
                self.buffers[k].copy_(v)
            for k, v in new_m.items():
                self.mom_buf[k].copy_(v)
            acc_loss.add_(loss.double() * idx.shape[1])
            acc_correct.add_(correct.double())
            step_loss.copy_(loss)

    @torch.no_grad()
    def evaluate(self, x, y, batch: int):
        """(sum of losses, number correct) per run on (x, y), eval-mode BN; device tensors, no sync."""
        self.base.eval()
        tot_l = torch.zeros(self.K, dtype=torch.float64, device=self.device)
        tot_c = torch.zeros(self.K, dtype=torch.float64, device=self.device)
        for i in range(0, x.shape[0], batch):
            l, c = self.eval_v(self.params, self.buffers, x[i:i + batch], y[i:i + batch])
            tot_l += l
            tot_c += c
        self.base.train()
        return tot_l, tot_c

    def member(self, k: int) -> nn.Module:
        """Run k's model holding its current state."""
        m = self.models[k]
        m.load_state_dict({**{kk: v[k] for kk, v in self.params.items()}, **{kk: v[k] for kk, v in self.buffers.items()}})
        return m

    def member_state(self, k: int) -> dict:
        return {**{kk: v[k].detach().clone() for kk, v in self.params.items()},
                **{kk: v[k].detach().clone() for kk, v in self.buffers.items()}}

    def state(self) -> dict:
        return dict(params=self.params, buffers=self.buffers, mom_buf=self.mom_buf)

    def load(self, st: dict) -> None:
        """Copy a :meth:`state` (e.g. CPU tensors from a checkpoint) into this group's tensors."""
        with torch.no_grad():
            for mine, theirs in ((self.params, st["params"]), (self.buffers, st["buffers"]),
                                 (self.mom_buf, st.get("mom_buf") or {})):
                for k, v in theirs.items():
                    if v is not None and k in mine:
                        mine[k].copy_(v.to(self.device))


class _GraphRunner:
    """Replays the group step from one CUDA graph per batch size (captured on first use after
    :data:`_GRAPH_WARMUP` eager warm-up steps on a side stream). Static inputs (batch indices, crop
    offsets and flips, learning rates) are copied in before each replay; the graph accumulates the
    epoch's loss and correct counts and leaves each step's minibatch losses in a static tensor."""

    def __init__(self, group: _GroupState):
        self.group, self.graphs, self.captures, self.replays = group, {}, 0, 0

    def run_epoch(self, perm, augs, lr_t, bs, steps, acc_loss, acc_correct, log: StepLog, step_loss) -> None:
        g = self.group
        st = self.graphs.get(bs)
        j0 = 0
        if st is None:
            with GRAPH_OPS.warmup_context():
                for j in range(min(_GRAPH_WARMUP, steps)):
                    g.step(perm[:, j * bs:(j + 1) * bs], _aug_slice(augs, j, bs), lr_t[j], acc_loss, acc_correct,
                           step_loss)
                    log.take(j, step_loss)
            j0 = min(_GRAPH_WARMUP, steps)
            if j0 == steps:
                return
            st = dict(idx=perm[:, :bs].clone(), lr=lr_t[0].clone(), loss=torch.zeros_like(acc_loss),
                      correct=torch.zeros_like(acc_correct), step_loss=torch.zeros_like(step_loss),
                      aug=None if augs is None else tuple(a[:, :bs].clone() for a in augs))
            try:
                st["graph"] = GRAPH_OPS.capture(lambda: g.step(st["idx"], st["aug"], st["lr"], st["loss"], st["correct"],
                                                               st["step_loss"]))
            except Exception as exc:
                raise StepPathError(f"CUDA graph capture of the group step failed at batch size {bs} "
                                    f"({type(exc).__name__}: {exc}); rerun with --eager (step_path='eager')") from exc
            self.captures += 1
            self.graphs[bs] = st
        st["loss"].zero_()
        st["correct"].zero_()
        for j in range(j0, steps):
            st["idx"].copy_(perm[:, j * bs:(j + 1) * bs])
            if augs is not None:
                for dst, src in zip(st["aug"], augs):
                    dst.copy_(src[:, j * bs:(j + 1) * bs])
            st["lr"].copy_(lr_t[j])
            GRAPH_OPS.replay(st["graph"])
            self.replays += 1
            log.take(j, st["step_loss"])
        acc_loss += st["loss"]
        acc_correct += st["correct"]


def _aug_slice(augs, j: int, bs: int):
    return None if augs is None else tuple(a[:, j * bs:(j + 1) * bs] for a in augs)


def train_group(cfgs: Sequence[RunConfig], out_dirs: Sequence[str | os.PathLike] | None = None, *,
                data: data_mod.DeviceData | None = None, device="cpu", data_root=None,
                max_epochs: Optional[int] = None, progress: bool = False, step_path: str = "auto",
                label: Optional[str] = None) -> list[dict]:
    """Train K runs together (vmap over stacked parameters); the same results as K :func:`train_run`
    calls up to float reassociation. All runs must share :func:`group_key` (model, data,
    batch-size schedule, epochs); lr schedule, momentum, weight decay, seed, max_loss may differ.

    ``step_path`` (:data:`STEP_PATHS`): ``"cuda-graph"`` captures the whole vmapped step (batch
    gather, augmentation with the epoch's pre-drawn crops and flips, forward, backward, SGD update,
    metric accumulation) once per batch size and replays it, removing the per-step Python and
    launch overhead that dominates small networks on a GPU (same kernels on the same inputs as the
    eager step); ``"compiled"`` runs the step through ``torch.compile``; ``"eager"`` runs it as is;
    ``"auto"`` is a graph on CUDA and eager elsewhere. A capture that fails raises
    :class:`StepPathError`. The estimated memory of the group is checked against the device's free
    memory before anything is allocated (:func:`check_group_fits`; ``label`` names the group in
    the error).

    The group checkpoints to ``group_checkpoint.pt`` in the first run's directory after every
    epoch (resumed when the same group is rerun) and writes every run's ``result.json`` when the
    whole group is done (a run that diverged stays in the group, frozen at lr 0, until then; the
    first run's result last), so that an interrupted group is always resumed whole from its
    checkpoint (see :func:`group_checkpoint_members` and ``nets.executor.execute_task``); the
    checkpoint is removed once every result is written."""
    cfgs = list(cfgs)
    K = len(cfgs)
    if K == 0:
        return []
    keys = {group_key(c) for c in cfgs}
    if len(keys) != 1:
        raise ConfigError("train_group needs runs sharing model, data, batch-size schedule and epochs")
    device = torch.device(device)
    path = resolve_step_path(step_path, device)
    if data is None:
        data = load_data(cfgs[0], device, data_root)
    plans = [validate(c, data.n_train) for c in cfgs]
    bss, bs_err = plans[0][1], plans[0][2]
    c0 = cfgs[0]
    check_group_fits(cfgs, data, device, step_path=path, label=label)
    group = _GroupState(cfgs, data, device)
    hists = [_empty_history() for _ in cfgs]
    status = ["running"] * K
    div_epoch: list = [None] * K
    best: list = [None] * K
    start, wall = 0, 0.0
    outs = [Path(o) for o in out_dirs] if out_dirs is not None else None
    ck_path = outs[0] / GROUP_CHECKPOINT if outs else None
    ck_dirs = [os.path.relpath(o, outs[0]) for o in outs] if outs else None  # relative: the tree may move
    finished_before: list = [None] * K   # results already on disk of runs that were done at the checkpoint
    ck = load_checkpoint(ck_path, device) if ck_path is not None else None
    if ck is not None:
        if ck["configs"] != [c.to_dict() for c in cfgs]:  # the group changed (e.g. some runs finished): restart it
            warnings.warn(f"group checkpoint {ck_path} was written for a different group of runs; starting afresh")
        else:
            group.load(ck)
            restore_rng(ck["rng"], device)
            hists, status, div_epoch, start, wall = (ck["histories"], ck["status"], ck["diverged_epoch"], ck["epoch"],
                                                     ck["wall_s"])
            best = [_best_to(b, device) for b in ck.get("best", best)]
            for k, c in enumerate(cfgs):
                if status[k] == "diverged" or len(hists[k]["epoch"]) >= c.epochs:
                    r = load_result(outs[k])
                    if r is not None and r.get("config") == c.to_dict():
                        finished_before[k] = r

    graphs = _GraphRunner(group) if path == "cuda-graph" else None
    step = group.step_compiled if path == "compiled" else group.step
    n = data.n_train
    stop = c0.epochs if max_epochs is None else min(c0.epochs, max_epochs)
    prog = Progress(label or f"group of {K}", c0.epochs, initial=start, enabled=progress)
    eval_s = (ck or {}).get("eval_s", 0.0) if ck is not None and ck.get("configs") == [c.to_dict() for c in cfgs] \
        else 0.0
    for epoch in range(start, stop):
        if all(s == "diverged" for s in status):
            break
        prog.phase(f"training ({path})")
        t0 = time.perf_counter()
        bs = int(bss[epoch])
        steps = n // bs
        step_lrs = np.stack([schedules.lr_values_in_epoch(c.lr, epoch, steps) if c.lr_per_step
                             else np.full(steps, plans[i][0][epoch]) for i, c in enumerate(cfgs)], 1)
        alive = torch.tensor([s != "diverged" for s in status], device=device)
        lr_t = torch.as_tensor(step_lrs, dtype=torch.float32, device=device) * alive.float()
        orders = [epoch_order(c.seed, epoch, data, steps * bs) for c in cfgs]
        perms = torch.stack([p for p, _ in orders])
        augs = None if not data.augment else tuple(torch.stack([a[i] for _, a in orders]) for i in range(3))
        log = StepLog(c0.loss_log_every, sum(hists[0]["steps"]), steps, (K,), device)
        run_loss = torch.zeros(K, device=device, dtype=torch.float64)
        run_correct = torch.zeros(K, device=device, dtype=torch.float64)
        step_loss = torch.zeros(K, device=device, dtype=torch.float32)
        if graphs is not None:
            graphs.run_epoch(perms, augs, lr_t, bs, steps, run_loss, run_correct, log, step_loss)
        else:
            for j in range(steps):
                step(perms[:, j * bs:(j + 1) * bs], _aug_slice(augs, j, bs), lr_t[j], run_loss, run_correct,
                     step_loss)
                log.take(j, step_loss)
        prog.phase("evaluation")
        t_ev = time.perf_counter()
        evs = [group.evaluate(data.x_train, data.y_train, c0.eval_batch_size),
               group.evaluate(data.x_val, data.y_val, c0.eval_batch_size),
               group.evaluate(data.x_test, data.y_test, c0.eval_batch_size)]
        if len(data.corrupted_indices):
            cidx = torch.as_tensor(data.corrupted_indices, device=device)
            evs += [group.evaluate(data.x_train, data.y_train_clean, c0.eval_batch_size),
                    group.evaluate(data.x_train[cidx], data.y_train[cidx], c0.eval_batch_size)]
        n_ev = len(evs) * 2
        flat = torch.cat([torch.stack([t for pair in evs for t in pair] + [run_loss, run_correct]),
                          log.buffer.view(-1, K)]).tolist()   # one sync
        eval_s += time.perf_counter() - t_ev
        rl_all, rc_all, logged = flat[n_ev], flat[n_ev + 1], flat[n_ev + 2:]
        finite = torch.stack([torch.isfinite(p).flatten(1).all(1) for p in group.params.values()]).all(0).tolist()
        for k in range(K):
            if status[k] == "diverged":
                continue
            ev_k = torch.tensor([flat[i][k] for i in range(n_ev)])
            if len(evs) > 3:  # keep only the correct counts of the extra evaluations, as in _eval_all
                ev_k = torch.cat([ev_k[:6], ev_k[[7, 9]]])
            _record(hists[k], data, epoch, step_lrs[0, k], bs, steps, rl_all[k], rc_all[k], steps * bs, ev_k)
            log.extend(hists[k], [row[k] for row in logged])
            if _diverged(rl_all[k] / max(steps * bs, 1), cfgs[k].max_loss) or not finite[k]:
                status[k], div_epoch[k] = "diverged", epoch + 1
        wall += time.perf_counter() - t0
        alive_loss = [hists[k]["train_loss_running"][-1] for k in range(K) if status[k] != "diverged"]
        prog.update(1, **({"mean_loss": f"{np.mean(alive_loss):.3g}"} if alive_loss else {}),
                    **({"diverged": sum(s_ == "diverged" for s_ in status)} if "diverged" in status else {}))
        for k, c in enumerate(cfgs):
            if _track_now(c, epoch, status[k]):
                hists[k]["tracked"].append(dict(epoch=epoch + 1, **measure_model(
                    group.member(k), data, tracked_spec(c),
                    progress=lambda key, name=c.name: prog.phase(f"measuring {key} (tracked, {name})"))))
            if status[k] != "diverged":
                best[k] = _update_best(best[k], c, hists[k], lambda: group.member_state(k))
        if ck_path is not None:
            save_checkpoint(ck_path, dict(configs=[c.to_dict() for c in cfgs], out_dirs=ck_dirs, **group.state(),
                                          rng=capture_rng(device), histories=hists, status=status,
                                          diverged_epoch=div_epoch, epoch=epoch + 1, wall_s=wall, eval_s=eval_s,
                                          best=best), device)
    # Results are written only once the whole group is done (a member that diverged early keeps
    # training as a frozen member, lr 0, and gets its result.json with the others), and the first
    # run's, whose directory holds the group checkpoint, last: while any member is unfinished, the
    # first run is unfinished, so a restart (nets.executor.execute_task) finds the checkpoint and
    # resumes the whole group from it instead of retraining the survivors from scratch.
    done = [status[k] == "diverged" or len(hists[k]["epoch"]) >= c.epochs for k, c in enumerate(cfgs)]
    step_info = dict(step_path=path, trainer="train_group", group_size=K, group_wall_s=wall, eval_wall_s=eval_s / K,
                     graph_captures=graphs.captures if graphs else 0, graph_replays=graphs.replays if graphs else 0)
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
        write = outs is not None and all(done)
        r = _finish(c, group.member(k), data, hists[k], st, div_epoch[k], wall / K, bs_err, None, best[k],
                    step=step_info, progress=lambda key, name=c.name: prog.phase(f"measuring {key} (end of run, "
                                                                                  f"{name})"))
        if write:
            if c.save_model:
                atomic_torch_save(outs[k] / MODEL, group.member(k).state_dict())
            atomic_write_json(outs[k] / RESULT, r)
        results[k] = r
    if ck_path is not None and all(done) and ck_path.is_file():
        ck_path.unlink()
    meas = sum((results[k].get("measurements") or {}).get("measure_wall_s", 0.0) or 0.0 for k in range(K)
               if finished_before[k] is None)
    prog.close(f"{sum(d for d in done)}/{K} runs done ({sum(s_ == 'diverged' for s_ in status)} diverged): training "
               f"and evaluation {wall:.1f} s (evaluation {eval_s:.1f} s), end-of-run measurements {meas:.1f} s")
    return results


def group_checkpoint_members(out_dir) -> Optional[tuple[list, list, list]]:
    """The vmap group whose checkpoint lies in ``out_dir`` (its first run's directory), as
    ``(configs, run directories, done)`` with ``done[k]`` true for a run that had diverged or
    finished all epochs at the checkpoint; None if there is no readable checkpoint."""
    path = Path(out_dir) / GROUP_CHECKPOINT
    if not path.is_file():
        return None
    try:  # mmap: read the small metadata without loading the stacked parameters
        ck = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception:
        return None   # unreadable: train_group sets it aside (load_checkpoint) when the group is rerun
    if not isinstance(ck, dict) or "out_dirs" not in ck:
        return None
    cfgs = [RunConfig.from_dict(d) for d in ck["configs"]]
    dirs = [Path(os.path.normpath(Path(out_dir) / d)) for d in ck["out_dirs"]]
    done = [s == "diverged" or len(h["epoch"]) >= c.epochs for s, h, c in zip(ck["status"], ck["histories"], cfgs)]
    return cfgs, dirs, done


def load_result(out_dir) -> Optional[dict]:
    """The run's ``result.json``, or None if there is none. An unreadable one (truncated, not JSON)
    is renamed to ``result.json.corrupt`` with a warning and the run counts as unfinished, so that
    ``nets run`` trains it again."""
    p = Path(out_dir) / RESULT
    if not p.is_file():
        return None
    try:
        with open(p) as fh:
            r = json.load(fh)
        if not isinstance(r, dict) or "status" not in r or "config" not in r:
            raise ValueError("not a run result (no status/config)")
        return r
    except (ValueError, UnicodeDecodeError) as exc:
        bad = set_aside_corrupt(p)
        warnings.warn(f"{p}: unreadable result ({type(exc).__name__}: {exc}); kept aside as {bad.name}, "
                      "the run will be trained again")
        return None
