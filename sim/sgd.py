"""Exact minibatch SGD ensembles on finite-sum landscapes L = (1/N) Σ_j l_j (the object the
paper is about; :mod:`sim.sde` is its SDE approximation, eq. 1).

Each particle runs its own SGD:

    θ ← θ − η_t g_B(θ),     g_B = (1/S_t) Σ_{j∈B} ∇l_j(θ)          (heavy ball: v ← μv − η_t g_B; θ ← θ + v)

with the minibatch B of S_t samples drawn

* without replacement (default): per particle a uniformly random permutation of the N samples
  per epoch, consumed S_t at a time; when fewer than S_t samples remain, a new epoch starts
  with a fresh permutation (the N mod S left-over samples are skipped in that epoch, as with
  ``drop_last``).  The per-step gradient noise then has covariance C·(1/S − 1/N)·N/(N − 1)
  (:func:`theory.discrete.finite_data_noise_factor`), and successive steps within an epoch are
  (weakly, O(1/N)) negatively correlated;
* without replacement, a fresh subset every step (``reshuffle="step"``): each minibatch is S_t
  distinct samples drawn uniformly, independently of every other step (the scheme of Wu, Ma & E's
  stability formula and of :func:`theory.stability.noise_factor` without replacement): noise
  covariance C·(1/S − 1/N)·N/(N − 1), no correlation between steps;
* with replacement (``replacement=True``): S_t i.i.d. uniform indices, noise covariance C/S.

Sampling without replacement is Fisher–Yates drawn lazily (:func:`draw_without_replacement`):
the k-th sample of an epoch is the entry at a uniform position among the N − k entries of a
table of sample indices not yet used in the epoch.  Fisher–Yates with exactly uniform integers
(:func:`sim.rng.bounded`) applied to any arrangement of the table that does not depend on its
own draws gives a uniformly random permutation, independent of that arrangement: so one table
of N entries per thread serves every particle (each runs its whole run before the next, and
each epoch simply continues from the arrangement the last one left), and memory is O(N) per
thread whatever the ensemble size.  The table is reset to the identity at the start of every
block, so what a block draws never depends on the blocks its thread ran before, and results
do not depend on the thread count.  A fresh subset per step is the first S_t steps of the same
lazy Fisher–Yates, restarted at position 0 every step: from any arrangement of the table they give
S_t distinct samples in uniformly random order, independent of that arrangement and so of the
previous steps.  :func:`add_batch_gradient` draws one minibatch in any of the three schemes (it
also serves :mod:`sim.svag`).

Parallelism, seeds, divergence and observers are the engine's (:mod:`sim.engine`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

import numba
import numpy as np
from numpy.typing import ArrayLike

from sim.engine import DEFAULT_BLOCK_SIZE, per_step_values, run_ensemble
from sim.results import SimResult
from sim.rng import bounded
from theory import _checks
from theory._numba import specialise
from theory._types import PerStep, Seed

if TYPE_CHECKING:
    from sim.observers import Observer
    from theory.landscapes.base import Landscape

__all__ = ["simulate_sgd", "MinibatchSGD", "FiniteSumMethod", "draw_without_replacement", "add_batch_gradient",
           "RESHUFFLE"]

RESHUFFLE = ("epoch", "step")


@numba.njit(nogil=True, inline="always")
def draw_without_replacement(table, position, offset):
    """The sample at ``position`` of the current epoch, given a uniform ``offset`` in
    0 .. N − 1 − position: one Fisher–Yates step (swap entries ``position`` and
    ``position + offset`` of ``table``, return the new entry at ``position``)."""
    j = position + offset
    drawn = table[j]
    table[j] = table[position]
    table[position] = drawn
    return drawn


def _add_batch(th, cparams, batch, weight, g, tmp, table, position, n_samples, ra, rb, rc, rw):
    """g += weight · Σ_{j∈B} ∇l_j(th) over a minibatch B of ``batch`` samples: i.i.d. uniform
    (REPLACEMENT) or distinct, the next ``batch`` entries of the lazy Fisher–Yates ``table`` from
    ``position`` (a new epoch, position 0, when fewer remain).  Returns (position after the batch,
    the stream state)."""
    if REPLACEMENT:  # noqa: F821
        for _ in range(batch):
            sample, ra, rb, rc, rw = bounded(n_samples, ra, rb, rc, rw)
            ADD_SAMPLE_GRADIENT(th, cparams, sample, weight, g, tmp)  # noqa: F821
    else:
        if position + batch > n_samples:
            position = 0
        for _ in range(batch):
            offset, ra, rb, rc, rw = bounded(n_samples - position, ra, rb, rc, rw)
            sample = draw_without_replacement(table, position, offset)
            ADD_SAMPLE_GRADIENT(th, cparams, sample, weight, g, tmp)  # noqa: F821
            position += 1
    return position, ra, rb, rc, rw


def add_batch_gradient(add_sample_gradient: Callable[..., Any], replacement: bool) -> Callable[..., Any]:
    """The compiled (inlined) minibatch sum of :func:`_add_batch` for a landscape's
    ``compiled.add_sample_gradient`` and a sampling scheme."""
    return specialise(_add_batch, inline=True, ADD_SAMPLE_GRADIENT=add_sample_gradient, REPLACEMENT=bool(replacement))


def _sgd_coefficients(t, args):
    """(η_t, S_t, 1/S_t) of step t."""
    batch = args[2][t]
    return args[1][t], batch, 1.0 / batch


def _sgd_step(th, vl, xn, vn, g, tmp, t, coefficients, args, work, pstate, lane, ra, rb, rc, rw):
    """One step t: the minibatch gradient at th, then xn = th − η_t g_B (heavy ball: through vn)."""
    cparams = args[0]
    mu = args[3]
    n_samples = args[4]
    eta, batch, weight = coefficients
    d = th.shape[0]
    SHARED_GRADIENT(th, cparams, g)  # noqa: F821
    # per-step subsets restart the table at position 0 (module docstring); epochs continue it
    position = 0 if PER_STEP else pstate[lane, 0]  # noqa: F821
    position, ra, rb, rc, rw = ADD_BATCH(th, cparams, batch, weight, g, tmp, work, position, n_samples,  # noqa: F821
                                         ra, rb, rc, rw)
    pstate[lane, 0] = position
    for k in range(d):
        if MOMENTUM:  # noqa: F821
            vn[k] = mu * vl[k] - eta * g[k]
            xn[k] = th[k] + vn[k]
        else:
            xn[k] = th[k] - eta * g[k]
    return ra, rb, rc, rw


def _sgd_start(pstate, lane, args, work):
    pstate[lane, 0] = args[4]  # position N: the particle's first step starts an epoch


def check_reshuffle(reshuffle, replacement: bool) -> str:
    """``reshuffle`` ("epoch" or "step"), which only exists without replacement."""
    if reshuffle not in RESHUFFLE:
        raise ValueError(f"reshuffle must be one of {RESHUFFLE} (a permutation per epoch, or a fresh subset "
                         f"every step), got {reshuffle!r}")
    if replacement and reshuffle != "epoch":
        raise ValueError("reshuffle='step' describes sampling without replacement; it cannot be combined with "
                         "replacement=True")
    return reshuffle


class FiniteSumMethod:
    """What the minibatch methods on a finite sum share (:class:`MinibatchSGD`,
    :class:`sim.svag.SVAG`): the landscape check, ``lr`` and ``batch_size`` per SGD step (an
    integer in [1, N]), the sampling scheme and the per-thread Fisher–Yates table."""

    lanes = 1  # particle by particle: one table of swaps per thread serves every particle
    momentum = 0.0

    def _setup(self, landscape, *, lr, batch_size, n_steps, replacement, reshuffle):
        comp = getattr(landscape, "compiled", None)
        if getattr(comp, "add_sample_gradient", None) is None or not hasattr(landscape, "n_samples"):
            raise ValueError(
                f"landscape must be a finite-sum landscape (e.g. IsotropicNoiseFiniteSum, LeastSquares), "
                f"got {type(landscape).__name__}"
            )
        self.landscape = landscape
        self.dim = int(landscape.dim)
        self.n_samples = int(landscape.n_samples)
        if self.n_samples >= 2 ** 32:
            raise ValueError(f"n_samples must be < 2**32 for exact uniform sampling, got {self.n_samples}")
        n_steps = _checks.check_int("n_steps", n_steps, minimum=1)
        self.lr = per_step_values("lr", lr, n_steps, minimum=0.0, strict=True)
        if np.ndim(batch_size) == 0 and batch_size is not None and not callable(batch_size):
            _checks.check_batch_size(batch_size, self.n_samples)
        self.batch_size = per_step_values("batch_size", batch_size, n_steps, minimum=1.0, strict=False,
                                          upper=self.n_samples, integer=True).astype(np.int64)
        self._lr_spec, self._bs_spec = lr, batch_size
        self.replacement = bool(replacement)
        self.reshuffle = check_reshuffle(reshuffle, self.replacement)
        self._index_dtype = np.int32 if self.n_samples < 2 ** 31 else np.int64
        self._identity = None if self.replacement else np.arange(self.n_samples, dtype=self._index_dtype)
        self.add_batch = add_batch_gradient(comp.add_sample_gradient, self.replacement)
        return comp

    def workspace(self) -> np.ndarray:
        """Per-thread Fisher–Yates table: N sample indices (one entry when sampling with replacement)."""
        return np.empty(1 if self.replacement else self.n_samples, dtype=self._index_dtype)

    def start_block(self, workspace: Any) -> None:
        """Every block starts from the identity permutation: what a block draws never depends on
        the blocks its thread ran before."""
        if not self.replacement:
            np.copyto(workspace, self._identity)

    def check_start(self, theta0: np.ndarray) -> None:
        from sim.sde import _check_loss_at

        _check_loss_at(self.landscape, theta0)

    def _describe_sampling(self) -> dict:
        scalar = lambda spec, vals: vals[0].item() if np.ndim(spec) == 0 and not callable(spec) else None  # noqa: E731
        return dict(method=self.name, landscape=repr(self.landscape), n_samples=self.n_samples,
                    replacement=self.replacement, reshuffle=None if self.replacement else self.reshuffle,
                    lr=scalar(self._lr_spec, self.lr), batch_size=scalar(self._bs_spec, self.batch_size),
                    lr_range=[float(self.lr.min()), float(self.lr.max())],
                    batch_size_range=[int(self.batch_size.min()), int(self.batch_size.max())])


class MinibatchSGD(FiniteSumMethod):
    """Exact minibatch SGD as an engine method (:mod:`sim.engine`); ``batch_size`` (or every
    value of a per-step schedule) an integer in [1, N]; ``reshuffle`` ("epoch" or "step") the
    scheme without replacement (module docstring)."""

    name = "minibatch_sgd"
    n_sub = 1

    def __init__(self, landscape: Landscape, *, lr: PerStep, batch_size: PerStep, n_steps: int,
                 replacement: bool = False, reshuffle: str = "epoch", momentum: float = 0.0):
        comp = self._setup(landscape, lr=lr, batch_size=batch_size, n_steps=n_steps, replacement=replacement,
                           reshuffle=reshuffle)
        _checks.check_in_range("momentum", momentum, 0.0, 1.0, closed="left")
        self.momentum = float(momentum)
        self.args = (comp.params, self.lr, self.batch_size, self.momentum, self.n_samples)
        self.step = specialise(_sgd_step, inline=True, SHARED_GRADIENT=comp.shared_gradient, ADD_BATCH=self.add_batch,
                               PER_STEP=self.reshuffle == "step" and not self.replacement,
                               MOMENTUM=self.momentum > 0)
        self.start = specialise(_sgd_start, inline=True)
        self.coefficients = specialise(_sgd_coefficients, inline=True)

    def describe(self) -> dict:
        return dict(self._describe_sampling(), momentum=self.momentum)


def simulate_sgd(
    landscape: Landscape,
    *,
    lr: PerStep,
    batch_size: PerStep,
    n_steps: int,
    n_particles: int,
    theta0: ArrayLike,
    seed: Seed,
    replacement: bool = False,
    reshuffle: str = "epoch",
    momentum: float = 0.0,
    observers: Sequence[Observer] = (),
    divergence_bound: float = 1e6,
    n_threads: int | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    progress: bool = False,
) -> SimResult:
    """Ensemble of M independent exact minibatch-SGD runs on a finite-sum landscape.

    θ ← θ − η_t (1/S_t) Σ_{j∈B_t} ∇l_j(θ)  (heavy ball: v ← μv − η_t g_B, θ ← θ + v), B_t drawn
    without replacement within an epoch (default), without replacement afresh every step
    (``reshuffle="step"``) or with replacement (``replacement=True``); see the module docstring.
    ``lr`` and ``batch_size`` are scalars or per-step schedules; the other arguments as
    :func:`sim.sde.simulate_sde` (no noise options: the noise is the data's).
    """
    method = MinibatchSGD(landscape, lr=lr, batch_size=batch_size, n_steps=n_steps, replacement=replacement,
                          reshuffle=reshuffle, momentum=momentum)
    return run_ensemble(method, theta0=theta0, n_steps=n_steps, n_particles=n_particles, seed=seed,
                        observers=observers, divergence_bound=divergence_bound, n_threads=n_threads,
                        block_size=block_size, progress=progress)
