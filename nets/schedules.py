"""Learning-rate and batch-size schedules for the trainer (paper §4.2, App. F.4).

Schedule shapes come from :func:`theory.scaling.schedule_values` (constant, step,
cyclic_triangular, cyclic_discrete; periods and milestones in epochs) and the LR→BS exchange
from :func:`theory.scaling.lr_schedule_to_batch_schedule` (S'_k = lr_fixed·S/lr_k, so that
lr_k/S = lr_fixed/S'_k: the same noise n = η/S, paper eq. 2).

A schedule spec in a run config is JSON-friendly:

* a number — constant;
* ``{"kind": "constant"|"step"|"cyclic_triangular"|"cyclic_discrete", "base": .., "peak": ..,
  "period": .., "milestones": [..], "factor": ..}``;
* for batch sizes only, ``{"kind": "lr_equivalent", "lr": <lr spec>, "batch_size": S,
  "lr_fixed": η}`` — the batch-size schedule at fixed lr ``η`` with the same η/S every epoch
  as the lr spec at fixed batch size ``S`` (batch sizes rounded to integers; the achieved ratio
  is recorded per epoch in the run history).

Unknown keys in a spec are an error (the message lists the valid ones). A constant batch size
must be an integer; values produced by a batch-size *schedule* are rounded to integers.

Batch sizes change between epochs (an epoch = ⌊N/S_e⌋ steps of exactly S_e samples);
learning rates change per epoch, or per step when ``lr_per_step`` is set in the run config.
"""
from __future__ import annotations

from typing import Any, Union

import numpy as np

try:  # the shared definition (theory imports no torch)
    from theory.scaling import lr_schedule_to_batch_schedule, schedule_values
except ImportError:  # pragma: no cover - local equivalent if theory.scaling is absent
    def schedule_values(kind, n_steps, *, base, peak=None, period=None, milestones=None, factor=None,
                        steps_per_epoch=1):
        x = np.arange(n_steps, dtype=float) / steps_per_epoch
        if kind == "constant":
            return np.full(n_steps, float(base))
        if kind == "step":
            m = np.searchsorted(np.asarray(milestones, float), np.floor(x), side="right")
            return float(base) * float(factor) ** m
        u = np.mod(x, float(period)) / float(period)
        if kind == "cyclic_triangular":
            return base + (peak - base) * (1.0 - np.abs(2.0 * u - 1.0))
        if kind == "cyclic_discrete":
            return np.where(u < 0.5, float(base), float(peak))
        raise ValueError(f"unknown schedule kind {kind!r}")

    def lr_schedule_to_batch_schedule(lr_values, batch_size, lr_fixed, *, round_to_int=False, n_samples=None):
        lrs = np.asarray(lr_values, float)
        exact = float(lr_fixed) * float(batch_size) / lrs
        if not round_to_int:
            return exact
        r = np.rint(exact).astype(np.int64)
        return r, float(np.max(np.abs(lr_fixed / r - lrs / batch_size) / (lrs / batch_size))) if r.size else 0.0

__all__ = ["Spec", "lr_values_epoch", "lr_values_in_epoch", "batch_values_epoch", "lr_equivalent_batch_spec",
           "describe"]

Spec = Union[float, int, dict]
_KEYS = ("base", "peak", "period", "milestones", "factor")
_LR_EQUIVALENT_KEYS = ("kind", "lr", "batch_size", "lr_fixed")


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _check_keys(spec: dict, valid: tuple, what: str) -> None:
    """Misspelled keys (e.g. "periods") are an error, never silently ignored."""
    unknown = sorted(set(spec) - set(valid), key=str)
    if unknown:
        raise ValueError(f"{what} schedule {spec!r} has unknown key(s) {unknown}; valid keys are {list(valid)}")


def _values(spec: Spec, n: int, steps_per_epoch: int = 1) -> np.ndarray:
    if _is_number(spec):
        return np.full(n, float(spec))
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ValueError(f"a schedule must be a number or a dict with a 'kind', got {spec!r}")
    _check_keys(spec, ("kind",) + _KEYS, f"a {spec['kind']!r}")
    if spec.get("base") is None:
        raise ValueError(f"a schedule needs a 'base' value, got {spec!r}")
    kw = {k: spec[k] for k in _KEYS if spec.get(k) is not None}
    return np.asarray(schedule_values(spec["kind"], n, steps_per_epoch=steps_per_epoch, **kw), dtype=float)


def lr_values_epoch(spec: Spec, epochs: int) -> np.ndarray:
    """Learning rate at the start of each epoch (length ``epochs``)."""
    v = _values(spec, epochs)
    if np.any(~np.isfinite(v)) or np.any(v <= 0):
        raise ValueError(f"lr must be > 0 and finite at every epoch, got schedule {spec!r}")
    return v


def lr_values_in_epoch(spec: Spec, epoch: int, steps: int) -> np.ndarray:
    """Per-step learning rates within ``epoch`` of ``steps`` steps (step j at x = epoch + j/steps)."""
    return _values(spec, (epoch + 1) * steps, steps_per_epoch=steps)[epoch * steps:]


def batch_values_epoch(spec: Spec, epochs: int, n_samples: int | None = None):
    """Integer batch size of each epoch and the max relative noise error from rounding (0 if exact)."""
    err = 0.0
    if isinstance(spec, dict) and spec.get("kind") == "lr_equivalent":
        _check_keys(spec, _LR_EQUIVALENT_KEYS, "the 'lr_equivalent' batch-size")
        missing = [k for k in _LR_EQUIVALENT_KEYS if spec.get(k) is None]
        if missing:
            raise ValueError(f"the 'lr_equivalent' batch-size schedule needs {missing}, got {spec!r}")
        for k in ("batch_size", "lr_fixed"):
            if not _is_number(spec[k]) or not np.isfinite(float(spec[k])) or float(spec[k]) <= 0:
                raise ValueError(f"lr_equivalent {k} must be a finite number > 0, got {spec[k]!r}")
        lrs = lr_values_epoch(spec["lr"], epochs)
        sizes, err = lr_schedule_to_batch_schedule(lrs, spec["batch_size"], spec["lr_fixed"], round_to_int=True,
                                                   n_samples=n_samples)
    else:
        if _is_number(spec) and not (np.isfinite(float(spec)) and float(spec) == int(float(spec))):
            # a constant batch size is taken literally; only schedules are rounded (documented above)
            raise ValueError(f"a constant batch_size must be an integer, got {spec!r}")
        raw = _values(spec, epochs)
        sizes = np.rint(raw).astype(np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    if np.any(sizes < 1):
        raise ValueError(f"batch_size must be >= 1 at every epoch, got schedule {spec!r}")
    if n_samples is not None and np.any(sizes > n_samples):
        raise ValueError(f"batch_size must be <= the number of training samples N={n_samples} at every epoch, "
                         f"got max {int(sizes.max())} from schedule {spec!r}")
    return sizes, float(err)


def lr_equivalent_batch_spec(lr_spec: Spec, batch_size: int, lr_fixed: float) -> dict:
    """Batch-size spec at fixed ``lr_fixed`` equivalent (same η/S per epoch) to ``lr_spec`` at ``batch_size``."""
    return {"kind": "lr_equivalent", "lr": lr_spec, "batch_size": int(batch_size), "lr_fixed": float(lr_fixed)}


def describe(spec: Any) -> str:
    if isinstance(spec, dict):
        return spec.get("kind", "?") + "(" + ", ".join(f"{k}={v}" for k, v in spec.items() if k != "kind") + ")"
    return str(spec)
