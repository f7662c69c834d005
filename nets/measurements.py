"""What a run measures: the measurement spec (``RunConfig.measure``) and its dispatcher.

A spec is a dict of options (:data:`SPEC_OPTIONS`) and measurement keys (:data:`MEASUREMENTS`),
each mapped to ``None`` or the keyword arguments of a function of :mod:`nets.measure` or
:mod:`nets.geometry`, e.g. fig1's full preset::

    {"samples": 2250, "hessian_frobenius_hutchinson": {"n_samples": 50},
     "hessian_norm_fd": {"n_samples": 100}, "hessian_top_eigenvalue": {"k": 1, "tol": 1e-4},
     "gradient_noise_stats": {"samples": 128, "k": 5, "n_probe": 50},
     "alignment": {"samples": 128, "n_probe": 50, "n_top": 3, "n_random": 3}}

:func:`check_measure_spec` validates one (unknown keys and keywords are errors naming them);
:func:`measure_model` runs one on a model and the training subset of a
:class:`nets.data.DeviceData`, on the data's device, with TF32 off
(:func:`nets.measure.measurement_precision`), and returns a JSON-friendly dict.

Module layering: :mod:`nets.measure` (estimators) ← :mod:`nets.geometry` (noise geometry) ←
this module (specs and dispatch) ← :mod:`nets.train`.
"""
from __future__ import annotations

import difflib
import inspect
import time
from dataclasses import asdict
from typing import Callable, Mapping, Optional

import numpy as np
import torch
from torch import nn

from . import data as data_mod
from . import measure as M
from .geometry import alignment_metrics

__all__ = [
    "MEASUREMENTS",
    "SPEC_OPTIONS",
    "SUBSET_DEFAULTS",
    "measurement_function",
    "check_measure_spec",
    "measure_model",
    "tracked_spec",
]

#: Measurement keys of a spec, in the order ``measure_model`` runs them. Each maps to a dict of
#: keyword arguments of the function of the same name in :mod:`nets.measure`
#: (``hessian_top_eigenvalue`` is an alias of ``hessian_top_eigenvalues``; ``alignment`` is
#: :func:`nets.geometry.alignment_metrics` with the cross-entropy loss).
MEASUREMENTS = (
    "hessian_frobenius_hutchinson",
    "hessian_trace_hutchinson",
    "hessian_top_eigenvalue",
    "hessian_top_eigenvalues",
    "hessian_norm_fd",
    "gradient_noise_stats",
    "alignment",
)
#: Spec keys that are options, not measurements: ``samples`` (size of the training subset, default
#: 1024), ``seed`` (which subset), ``at_best_val`` (also measure the best-validation state, Fig. 15).
SPEC_OPTIONS = ("samples", "seed", "at_best_val")
#: Measurements that hold the (n, p) per-sample gradient matrix in float64 run on the first
#: ``samples`` points of the subset (their own ``samples`` keyword), by default this many.
SUBSET_DEFAULTS = {"gradient_noise_stats": 128, "alignment": 128}
# measurements whose result is an eigen-decomposition: stored as {"eigenvalues": [...]} plus the
# Lanczos convergence record (method, converged, iterations, residuals)
_EIGEN = ("hessian_top_eigenvalue", "hessian_top_eigenvalues")
# keyword arguments a spec may not set: the data, the loss (cross-entropy) and the output format
_FIXED_KWARGS = {"model", "loss_fn", "inputs", "targets", "loss", "return_eigenvectors", "return_info"}


def _alignment(model, loss_fn, inputs, targets, **kw):
    return alignment_metrics(model, inputs, targets, loss="ce", **kw)


def _signature_target(key: str) -> Callable:
    if key == "alignment":
        return alignment_metrics
    if key == "hessian_top_eigenvalue":
        return M.hessian_top_eigenvalues
    return getattr(M, key)


def measurement_function(key: str) -> Callable:
    """The function a measurement key of a spec runs, called as ``fn(model, loss_fn, x, y, **kw)``."""
    if key not in MEASUREMENTS:
        raise ValueError(f"unknown measurement {key!r}; valid measurements: {', '.join(MEASUREMENTS)}")
    return _alignment if key == "alignment" else _signature_target(key)


def _keywords(key: str) -> set[str]:
    names = {n for n, prm in inspect.signature(_signature_target(key)).parameters.items()
             if prm.kind in (prm.KEYWORD_ONLY, prm.POSITIONAL_OR_KEYWORD)} - _FIXED_KWARGS
    return names | ({"samples"} if key in SUBSET_DEFAULTS else set())


def _check_samples(where: str, v) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{where} must be an integer >= 1, got {v!r}")


def check_measure_spec(spec) -> None:
    """Raise ``ValueError`` unless ``spec`` is a valid measurement spec (``RunConfig.measure``).

    Valid top-level keys are :data:`SPEC_OPTIONS` and :data:`MEASUREMENTS`; each measurement maps
    to ``None`` or a dict of keyword arguments of its function (checked by name against the
    signature, so a misspelt keyword is an error too). Call it when a run config is validated, so
    that a typo fails before training rather than after it (``measure_model`` calls it as well).
    """
    if not isinstance(spec, Mapping):
        raise ValueError(f"measure spec must be a dict, got {type(spec).__name__}")
    valid = SPEC_OPTIONS + MEASUREMENTS
    unknown = [k for k in spec if k not in valid]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(str(k), valid, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(f"measure spec: unknown key(s) {', '.join(hints)}; valid keys: {', '.join(valid)}")
    if "samples" in spec:
        _check_samples("measure spec 'samples'", spec["samples"])
    if "seed" in spec and (isinstance(spec["seed"], bool) or not isinstance(spec["seed"], (int, np.integer))):
        raise ValueError(f"measure spec 'seed' must be an integer, got {spec['seed']!r}")
    for key in MEASUREMENTS:
        if key not in spec or spec[key] is None:
            continue
        kw = spec[key]
        if not isinstance(kw, Mapping):
            raise ValueError(f"measure spec {key!r} must be a dict of keyword arguments (or None), got {kw!r}")
        allowed = _keywords(key)
        bad = sorted(set(kw) - allowed)
        if bad:
            raise ValueError(f"measure spec {key!r}: unknown keyword(s) {', '.join(map(repr, bad))}; "
                             f"valid: {', '.join(sorted(allowed))}")
        if "samples" in kw:
            _check_samples(f"measure spec {key!r} 'samples'", kw["samples"])


def _measure_inputs(data: data_mod.DeviceData, n: int, seed: int):
    """The measurement subset: ``n`` training samples drawn without replacement from ``seed``."""
    g = torch.Generator(device=data.device)
    g.manual_seed(data_mod._seed_ints(seed, 0x4E55))
    idx = torch.randperm(data.n_train, generator=g, device=data.device)[:min(n, data.n_train)]
    return data.x_train[idx], data.y_train[idx]


def tracked_spec(cfg) -> dict:
    """The part of ``cfg.measure`` taken during training (every ``measure_every`` epochs): the keys in
    ``cfg.measure_tracked`` (all when None) on the same subset. Tracking only what a figure needs
    (e.g. Fig. 1's alignment) keeps the expensive end-of-run Hessian estimates out of the loop."""
    if cfg.measure_tracked is None:
        return cfg.measure
    keep = set(cfg.measure_tracked) | {"samples", "seed"}
    return {k: v for k, v in cfg.measure.items() if k in keep}


def measure_model(model: nn.Module, data: data_mod.DeviceData, spec: dict,
                  progress: Optional[Callable[[str], None]] = None) -> dict:
    """Curvature and gradient-noise measurements of a trained model through :mod:`nets.measure`.

    ``spec`` (``RunConfig.measure``) keys, checked by :func:`check_measure_spec` (an unknown key or
    keyword raises ``ValueError`` naming it and listing the valid ones):

    * options: ``samples`` (size of the training subset every measurement uses, default 1024),
      ``seed`` (which subset), ``at_best_val`` (used by the training loop, Fig. 15);
    * measurements, each mapped to ``None`` or a dict of keyword arguments of the function of the
      same name in :mod:`nets.measure`: ``hessian_frobenius_hutchinson`` (‖H‖_F from exact HVPs:
      the Hessian norm to read), ``hessian_trace_hutchinson``, ``hessian_top_eigenvalue`` /
      ``hessian_top_eigenvalues`` (device Lanczos, ARPACK or power iteration), ``hessian_norm_fd``
      (the paper's finite-difference estimate; it does not converge as eps → 0 on ReLU networks,
      see its docstring), ``gradient_noise_stats`` (tr C, top eigenvalues of C, gradient noise
      scale, alignment Tr(CH)/(‖C‖_F‖H‖_F)) and ``alignment`` (noise geometry of
      :func:`nets.geometry.alignment_metrics` with the cross-entropy Gauss–Newton matrix). The last
      two hold the (n, p) per-sample gradients in float64 and run on the first ``samples`` points
      (their own keyword; default :data:`SUBSET_DEFAULTS`, 128) of the subset.

    Loss: cross-entropy (mean). Convention: the model is in eval mode (BN uses running statistics),
    so the loss is a fixed function of the parameters; every submodule's train/eval flag is
    restored. Everything runs on the data's device (the model must be there) with TF32 off.
    A failing measurement is recorded as ``{"error": ...}`` and never stops the run. The
    eigenvalue keys hold ``{"eigenvalues": [...], "method", "converged", "iterations",
    "residuals"}`` (:meth:`nets.measure.Eigenpairs.summary`), so that a non-converged value is
    never taken for a converged one. The returned dict also holds
    ``measure_wall_s`` (wall time of the whole call, data subset included) and
    ``measure_wall_s_by_key`` (per measurement; on CUDA the device is synchronised around each),
    so that benchmarks can include the measurement time in run-time estimates.

    ``progress``, if given, is called as ``progress(key)`` before each measurement starts.
    """
    check_measure_spec(spec)
    cuda = torch.device(data.device).type == "cuda"

    def now():
        if cuda:
            torch.cuda.synchronize(data.device)
        return time.perf_counter()

    t_start = now()
    res: dict = {}
    by_key: dict = {}
    x, y = _measure_inputs(data, int(spec.get("samples", 1024)), int(spec.get("seed", 0)))
    loss_fn = nn.CrossEntropyLoss()
    with M.measurement_precision(), M.eval_mode(model):
        for name in MEASUREMENTS:
            if name not in spec:
                continue
            if progress is not None:
                progress(name)
            kw = dict(spec.get(name) or {})
            xs, ys = x, y
            if name in SUBSET_DEFAULTS:
                m = min(int(kw.pop("samples", SUBSET_DEFAULTS[name])), x.shape[0])
                xs, ys = x[:m], y[:m]
            if name in _EIGEN:
                kw["return_info"] = True
            t0 = now()
            try:
                out = measurement_function(name)(model, loss_fn, xs, ys, **kw)
                if name in _EIGEN:
                    out = dict(eigenvalues=out.eigenvalues, **out.summary())
                res[name] = _to_jsonable(out)
            except Exception as exc:
                res[name] = {"error": f"{type(exc).__name__}: {exc}"}
            by_key[name] = now() - t0
    res["measure_wall_s"] = now() - t_start
    res["measure_wall_s_by_key"] = by_key
    return res


def _to_jsonable(v):
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().tolist()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        return v.item()
    if isinstance(v, dict):
        return {str(k): _to_jsonable(x) for k, x in v.items()}
    if hasattr(v, "_asdict"):  # NamedTuple, e.g. nets.measure.Estimate
        return _to_jsonable(v._asdict())
    if isinstance(v, (list, tuple)):
        return [_to_jsonable(x) for x in v]
    if hasattr(v, "__dataclass_fields__"):
        return _to_jsonable(asdict(v))
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return str(v)
