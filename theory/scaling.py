"""Learning-rate / batch-size exchangeability (paper App. B, Sec. 4.2) and schedule shapes.

The equilibrium (eq. 2) and, in rescaled time t_eta = lr * t, the whole
Fokker-Planck evolution (App. B eq. 15) depend on (lr, batch_size) only via the
noise n = lr / batch_size.  Hence (lr, S) -> (beta lr, beta S) leaves the theory
invariant, and a learning-rate schedule at fixed batch size can be exchanged
for a batch-size schedule at fixed learning rate with the same n every step
(paper Fig. 4, App. F.4).

``schedule_values`` defines the schedule shapes used everywhere (sim and nets).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike

from theory import _checks
from theory._types import FloatOrArray
from theory.gibbs import _out

__all__ = [
    "rescale",
    "is_same_noise",
    "rescaled_time",
    "epochs",
    "lr_schedule_to_batch_schedule",
    "batch_schedule_to_lr_schedule",
    "schedule_values",
    "Schedule",
    "SCHEDULE_KINDS",
]

SCHEDULE_KINDS = ("constant", "step", "cyclic_triangular", "cyclic_discrete")


def rescale(lr: ArrayLike, batch_size: ArrayLike, beta: ArrayLike) -> tuple[FloatOrArray, FloatOrArray]:
    """(lr, batch_size) -> (beta * lr, beta * batch_size): same noise n = lr/S (App. B, Sec. 4.4).

    The rescaled batch size must still be >= 1 (ValueError naming batch_size).
    The rescaled batch size is returned as a float (beta * S need not be an integer).
    """
    _checks.check_positive("lr", lr)
    _checks.check_batch_size(batch_size)
    _checks.check_positive("beta", beta)
    new_lr = np.asarray(beta, dtype=float) * np.asarray(lr, dtype=float)
    new_s = np.asarray(beta, dtype=float) * np.asarray(batch_size, dtype=float)
    if np.any(new_s < 1):
        raise ValueError(f"batch_size * beta must be >= 1, got {new_s!r}")
    return _out(new_lr), _out(new_s)


def is_same_noise(lr_a: ArrayLike, batch_size_a: ArrayLike, lr_b: ArrayLike, batch_size_b: ArrayLike, *,
                  rtol: float = 1e-12) -> bool | np.ndarray:
    """True where lr_a / S_a == lr_b / S_b up to relative tolerance ``rtol`` (eq. 2: same n)."""
    _checks.check_positive("lr_a", lr_a)
    _checks.check_positive("lr_b", lr_b)
    _checks.check_batch_size(batch_size_a)
    _checks.check_batch_size(batch_size_b)
    _checks.check_nonnegative("rtol", rtol)
    na = np.asarray(lr_a, dtype=float) / np.asarray(batch_size_a, dtype=float)
    nb = np.asarray(lr_b, dtype=float) / np.asarray(batch_size_b, dtype=float)
    res = np.abs(na - nb) <= rtol * np.maximum(np.abs(na), np.abs(nb))
    return bool(res) if np.ndim(res) == 0 else res


def rescaled_time(steps: ArrayLike, lr: ArrayLike) -> FloatOrArray:
    """Rescaled time t_eta = lr * t after t = ``steps`` SGD steps at constant lr (App. B, eq. 15).

    For a per-step schedule lr_k the rescaled time after k steps is
    ``numpy.cumsum(lr_values)``.
    """
    _checks.check_nonnegative("steps", steps)
    _checks.check_positive("lr", lr)
    return _out(np.asarray(steps, dtype=float) * np.asarray(lr, dtype=float))


def epochs(steps: ArrayLike, batch_size: ArrayLike, n_samples: ArrayLike) -> FloatOrArray:
    """Number of passes over the data: steps * batch_size / n_samples."""
    _checks.check_nonnegative("steps", steps)
    n_samples = _checks.check_int("n_samples", n_samples, minimum=1)
    _checks.check_batch_size(batch_size, n_samples)
    return _out(np.asarray(steps, dtype=float) * np.asarray(batch_size, dtype=float) / n_samples)


def _round_batch(exact: np.ndarray, n_per_step_exact: np.ndarray, lr_fixed, n_samples):
    rounded = np.rint(exact).astype(np.int64)
    if np.any(rounded < 1):
        raise ValueError(f"batch_size rounds to < 1: {exact!r}")
    if n_samples is not None and np.any(rounded > n_samples):
        raise ValueError(f"batch_size rounds to > n_samples = {n_samples}")
    achieved = float(lr_fixed) / rounded
    max_rel_err = float(np.max(np.abs(achieved - n_per_step_exact) / n_per_step_exact)) if exact.size else 0.0
    return rounded, max_rel_err


def lr_schedule_to_batch_schedule(lr_values: ArrayLike, batch_size: ArrayLike, lr_fixed: ArrayLike, *,
                                  round_to_int: bool = False, n_samples: int | None = None) -> np.ndarray:
    """Batch-size schedule S'_k at fixed ``lr_fixed`` with the same noise as lr_k at fixed S.

        lr_k / S = lr_fixed / S'_k   =>   S'_k = lr_fixed * S / lr_k     (eq. 2; paper Fig. 4)

    Returns the exact float batch sizes (array).  With ``round_to_int=True``
    returns ``(int_batch_sizes, max_rel_noise_error)`` where the error is
    max_k |lr_fixed/round(S'_k) - lr_k/S| / (lr_k/S).  Every S'_k must be >= 1
    and, if ``n_samples`` is given, <= n_samples (ValueError naming batch_size).
    """
    _checks.check_positive("lr_values", lr_values)
    _checks.check_batch_size(batch_size, n_samples)
    _checks.check_positive("lr_fixed", lr_fixed)
    lrs = np.asarray(lr_values, dtype=float)
    exact = float(lr_fixed) * float(batch_size) / lrs
    _checks.check_batch_size(exact, n_samples)
    if not round_to_int:
        return exact
    return _round_batch(exact, lrs / float(batch_size), lr_fixed, n_samples)


def batch_schedule_to_lr_schedule(batch_sizes: ArrayLike, lr: ArrayLike, batch_size_fixed: ArrayLike, *,
                                  n_samples: int | None = None) -> np.ndarray:
    """Learning-rate schedule lr'_k at fixed ``batch_size_fixed`` with the same noise as S_k at fixed lr.

        lr / S_k = lr'_k / S_fixed   =>   lr'_k = lr * S_fixed / S_k     (eq. 2; paper Fig. 4)

    Inverse of :func:`lr_schedule_to_batch_schedule`.  Returns a float array.
    """
    _checks.check_batch_size(batch_sizes, n_samples)
    _checks.check_positive("lr", lr)
    _checks.check_batch_size(batch_size_fixed, n_samples)
    return float(lr) * float(batch_size_fixed) / np.asarray(batch_sizes, dtype=float)


def schedule_values(
    kind: str,
    n_steps: int,
    *,
    base: float,
    peak: float | None = None,
    period: float | None = None,
    milestones: Sequence[int] | None = None,
    factor: float | None = None,
    steps_per_epoch: int = 1,
) -> np.ndarray:
    """Per-step values (float64, length n_steps) of a schedule of lr or batch size.

    ``period`` and ``milestones`` are in epochs; step k is at epoch position
    x_k = k / steps_per_epoch.

    * "constant": v_k = base.
    * "step": v_k = base * factor**m_k, m_k = #{milestones m : m <= floor(x_k)}
      (the value is multiplied by ``factor`` at the start of each milestone epoch).
    * "cyclic_triangular": with phase u_k = (x_k mod period) / period in [0, 1),
      v_k = base + (peak - base) * (1 - |2 u_k - 1|): base -> peak (at half period)
      -> base, linearly (the CLR triangle, Smith 2015; paper Sec. 4.2, App. F.4).
    * "cyclic_discrete": v_k = base for u_k < 1/2, peak for u_k >= 1/2
      (switches between base and peak every half period; App. F.4).
    """
    if kind not in SCHEDULE_KINDS:
        raise ValueError(f"kind must be one of {SCHEDULE_KINDS}, got {kind!r}")
    n_steps = _checks.check_int("n_steps", n_steps, minimum=0)
    _checks.check_fits_memory("n_steps", n_steps, 3 * 8.0 * n_steps, "the schedule's per-step values (and positions)",
                              advice="ask for fewer steps")
    steps_per_epoch = _checks.check_int("steps_per_epoch", steps_per_epoch, minimum=1)
    _checks.check_positive("base", base)
    base = float(base)
    x = np.arange(n_steps, dtype=float) / steps_per_epoch
    if kind == "constant":
        return np.full(n_steps, base)
    if kind == "step":
        if milestones is None or factor is None:
            raise ValueError("kind='step' needs milestones and factor")
        _checks.check_positive("factor", factor)
        ms = np.asarray(milestones, dtype=float)
        if ms.ndim != 1:
            raise ValueError("milestones must be a 1-D sequence of epochs")
        _checks.check_nonnegative("milestones", ms)
        if np.any(np.diff(ms) <= 0):
            raise ValueError(f"milestones must be strictly increasing, got {list(milestones)!r}")
        m = np.searchsorted(ms, np.floor(x), side="right")
        return base * float(factor) ** m.astype(float)
    # cyclic kinds
    if peak is None or period is None:
        raise ValueError(f"kind={kind!r} needs peak and period")
    _checks.check_positive("peak", peak)
    _checks.check_positive("period", period)
    u = np.mod(x, float(period)) / float(period)
    if kind == "cyclic_triangular":
        return base + (float(peak) - base) * (1.0 - np.abs(2.0 * u - 1.0))
    return np.where(u < 0.5, base, float(peak)).astype(float)


@dataclass(frozen=True)
class Schedule:
    """A schedule shape; ``Schedule(kind, base=..., ...).values(n_steps)`` = :func:`schedule_values`."""

    kind: str
    base: float
    peak: float | None = None
    period: float | None = None
    milestones: tuple = field(default=())
    factor: float | None = None
    steps_per_epoch: int = 1

    def __post_init__(self):
        object.__setattr__(self, "milestones", tuple(self.milestones) if self.milestones is not None else ())
        self.values(0)  # validate now

    def values(self, n_steps: int) -> np.ndarray:
        return schedule_values(
            self.kind,
            n_steps,
            base=self.base,
            peak=self.peak,
            period=self.period,
            milestones=self.milestones if self.kind == "step" else None,
            factor=self.factor,
            steps_per_epoch=self.steps_per_epoch,
        )
