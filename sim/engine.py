"""The ensemble engine shared by every simulator: blocks, seeds, threads, divergence, observers.

A run evolves M independent particles θ_i ∈ R^d (and, with heavy-ball momentum, velocities v_i)
for ``n_steps`` SGD steps with a *method* (:class:`sim.sde.EulerMaruyama`,
:class:`sim.sgd.MinibatchSGD`, :class:`sim.svag.SVAG`): an object that says how one step (or
sub-step) maps the state and a random stream to the next state.  The engine does everything
else, the same way for every method:

* **blocks and seeds** — particles are split into blocks of ``block_size`` (the block count
  depends on M and ``block_size`` only); block b draws from the SFC64 stream seeded by
  ``SeedSequence(seed).spawn(n_blocks)[b]`` (:func:`sim.rng.block_states`), in the order of
  :func:`_block_kernel` (Euler–Maruyama: step by step, particle by particle; SGD: particle by
  particle, each for its whole run).  Blocks run in a pool of ``n_threads`` threads calling
  one ``nogil`` compiled kernel per block, so the same seed and block size give bit-identical
  results for any thread count.
* **divergence** — a step whose result is non-finite or has |θ_k| > ``divergence_bound`` is not
  applied: the particle is frozen at its last finite state and flagged (``SimResult.diverged``,
  with the step in ``diverged_step``), and is left out of every observation after it.
* **observers** (:mod:`sim.observers`) — objects passed as a list that measure during the run
  without storing paths: ``Record(every)``, ``Histogram(edges, burn_in, every)``,
  ``Basins(every)``, ``FirstPassage(target, radius)``, ``PathMaximum()``.  Each compiles a small hook that the
  kernel calls after every step (and sub-step) of every live particle.

The per-block kernel is a template (:func:`_block_kernel`) specialised with the method's step,
the observers' hooks and constants (:func:`theory._numba.specialise`), so every combination is
compiled once, inlined into one loop, and cached on disk.

A method provides: ``landscape``, ``dim``, ``n_sub`` (sub-steps per SGD step), ``momentum``
(float), ``lanes`` (particles advanced together, None: the whole block), ``step``, ``start`` and
``coefficients`` (compiled functions, see :func:`_block_kernel`), ``args`` (the tuple they read), ``workspace()`` (per-thread scratch, e.g. the sample table of SGD without
replacement), ``start_block(workspace)`` (resets it for a block), ``check_start(theta0)`` and
``describe()`` (a JSON-serialisable dict).
"""
from __future__ import annotations

import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Sequence

import numba
import numpy as np
from numba.core import cgutils, types
from numba.extending import intrinsic
from numpy.typing import ArrayLike

from sim import rng as _rng
from sim.observers import Observer, chain_hooks
from sim.results import SimResult
from theory import _checks
from theory._numba import specialise
from theory._types import PerStep, Seed

__all__ = ["run_ensemble", "RunInfo", "DEFAULT_BLOCK_SIZE", "per_step_values", "seed_sequence", "initial_states"]

DEFAULT_BLOCK_SIZE = 256
# float64 arrays of one value per SGD step a method holds: lr, batch_size, two step coefficients,
# and the temporaries of checking them
SCHEDULE_BYTES_PER_STEP = 6 * 8
_LARGEST = float(np.finfo(np.float64).max)


@dataclass(frozen=True)
class RunInfo:
    """What observers need to know about a run."""

    landscape: Any
    n_steps: int
    n_particles: int
    dim: int
    block_size: int
    n_blocks: int
    n_sub: int


# --------------------------------------------------------------------------------------------
# inputs shared by the simulators
# --------------------------------------------------------------------------------------------
def seed_sequence(seed: Seed) -> tuple[np.random.SeedSequence, Any]:
    """(SeedSequence, JSON record of the seed); None draws fresh entropy (recorded)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed, {"entropy": seed.entropy, "spawn_key": list(seed.spawn_key)}
    if seed is None:
        ss = np.random.SeedSequence()
        return ss, ss.entropy
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or a numpy SeedSequence, got {seed!r}")
    return np.random.SeedSequence(int(seed)), int(seed)


def initial_states(theta0: ArrayLike, n_particles: int, dim: int) -> np.ndarray:
    """θ0 given as (d,), a scalar (d = 1), (M,) (d = 1) or (M, d), as a fresh (M, d) array."""
    try:
        arr = np.asarray(theta0, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"theta0 must be a real array, got {theta0!r}") from exc
    if np.any(np.isnan(arr)):
        raise ValueError("theta0 contains NaN; expected finite initial states")
    if np.any(~np.isfinite(arr)):
        raise ValueError("theta0 must be finite (no inf)")
    if arr.ndim == 0:
        if dim != 1:
            raise ValueError(f"theta0 must have shape ({dim},) or ({n_particles}, {dim}), got a scalar")
        arr = np.full((n_particles, 1), float(arr))
    elif arr.ndim == 1:
        if arr.shape[0] == dim:
            arr = np.broadcast_to(arr, (n_particles, dim))
        elif dim == 1 and arr.shape[0] == n_particles:
            arr = arr[:, None]
        else:
            raise ValueError(f"theta0 must have shape ({dim},) or ({n_particles}, {dim}), got {arr.shape}")
    elif arr.shape != (n_particles, dim):
        raise ValueError(f"theta0 must have shape ({dim},) or ({n_particles}, {dim}), got {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float64).copy()


def per_step_values(name: str, value: PerStep, n_steps: int, *, minimum: float, strict: bool,
                    upper: float | None = None, integer: bool = False) -> np.ndarray:
    """One value per SGD step from a scalar, an array of ``n_steps`` values, a callable of the
    step index (vectorised or not) or a ``theory.scaling.Schedule``; each value checked
    (> minimum if ``strict`` else >= minimum, <= ``upper``, integer)."""
    if value is None:
        raise ValueError(f"{name} is required")
    _checks.check_fits_memory("n_steps", n_steps, SCHEDULE_BYTES_PER_STEP * float(n_steps),
                              "the per-step schedules (lr, batch_size and their step coefficients)",
                              advice="run fewer steps per call (a run can continue from res.final)")
    if hasattr(value, "values") and callable(value.values) and not isinstance(value, (np.ndarray, dict)):
        value = value.values(n_steps)  # theory.scaling.Schedule
    if callable(value):
        steps = np.arange(n_steps)
        try:
            vals = np.asarray(value(steps), dtype=float)
            if vals.shape != (n_steps,):
                raise ValueError
        except Exception:
            vals = np.array([float(value(int(t))) for t in range(n_steps)])
    elif np.ndim(value) == 0:
        try:
            vals = np.full(n_steps, float(value))
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number, an array of n_steps values or a callable, got {value!r}") from None
    else:
        try:
            vals = np.asarray(value, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be an array of length n_steps = {n_steps} or a callable") from exc
        if vals.shape != (n_steps,):
            raise ValueError(f"{name} must be a scalar or have length n_steps = {n_steps} (one value per SGD step), "
                             f"got shape {vals.shape}")
    if np.any(~np.isfinite(vals)):
        raise ValueError(f"{name} contains NaN or inf")
    bad = vals <= minimum if strict else vals < minimum
    if np.any(bad):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum:g}, got {vals[bad][0]:.6g}")
    if upper is not None and np.any(vals > upper):
        raise ValueError(f"{name} must be <= {upper}, got {vals.max():.6g}")
    if integer and np.any(vals != np.round(vals)):
        raise ValueError(f"{name} must be integers, got {vals[vals != np.round(vals)][0]:.6g}")
    return np.ascontiguousarray(vals)


def _default_threads(n_threads, n_blocks: int) -> int:
    if n_threads is None:
        try:
            n_threads = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover
            n_threads = os.cpu_count() or 1
    n_threads = _checks.check_int("n_threads", n_threads, minimum=1)
    return max(1, min(n_threads, n_blocks))


# --------------------------------------------------------------------------------------------
# the per-block kernel
# --------------------------------------------------------------------------------------------
@intrinsic
def _stack_doubles(typingctx, size):
    """Pointer to ``size`` (a compile-time constant) float64 values on the kernel's stack."""
    if not isinstance(size, types.IntegerLiteral):
        return None

    def codegen(context, builder, signature, args):
        return cgutils.alloca_once(builder, context.get_value_type(types.float64), size=size.literal_value)

    return types.CPointer(types.float64)(size), codegen


@numba.njit(inline="always")
def _stack_vector(n):
    """A float64 vector of compile-time length n on the stack: the compiler keeps its entries in
    registers (a heap array might alias the particle arrays, so every access would go to
    memory), and it carries no reference count."""
    return numba.carray(_stack_doubles(n), (n,))


def _block_kernel(x, v, div_step, state, n_steps, n_sub, bound, args, obs, work):
    """Advance every particle of one block through ``n_steps`` SGD steps of ``n_sub`` sub-steps.

    Particles go in groups of LANES: within a group the time loop is outside and the particle
    loop inside (independent particles give the processor independent work at every step;
    one particle alone is a chain of dependent operations), groups one after the other.  The
    block's random stream is consumed in that order: group by group, step by step, particle by
    particle, over the live particles (a list kept in order, so diverged particles cost nothing).

    Bound names: STEP(th, vl, xn, vn, g, z, t, coefficients, args, work, pstate, i, a, b, c, w)
    -> (a, b, c, w) writes the state proposed for particle i after step t into xn (and vn; g and
    z are scratch vectors); COEFFICIENTS(t, args) -> tuple gives the step's constants once for
    all particles (e.g. the learning rate of step t); START(pstate, i, args, work) resets particle i's method state; OBSERVE(obs, i,
    step, time, th) sees each state reached: step = s and time = s after whole step s (s = 0:
    the initial state), step = -1 at the fractional time of a sub-step; MOMENTUM says whether
    velocities are carried; DIM, the dimension, is a compile-time constant (the loops over
    coordinates unroll).
    """
    n = x.shape[0]
    d = DIM  # noqa: F821
    th = _stack_vector(DIM)  # noqa: F821
    vl = _stack_vector(DIM)  # noqa: F821
    xn = _stack_vector(DIM)  # noqa: F821
    vn = _stack_vector(DIM)  # noqa: F821
    g = _stack_vector(DIM)  # noqa: F821
    z = _stack_vector(DIM)  # noqa: F821
    for k in range(d):
        vl[k] = 0.0
        vn[k] = 0.0
    pstate = np.zeros((LANES, 2), dtype=np.int64)  # noqa: F821
    live = np.empty(LANES, dtype=np.int64)  # noqa: F821 - the group's live particles, in order
    inv_sub = 1.0 / n_sub
    ra, rb, rc, rw = state[0], state[1], state[2], state[3]
    for first in range(0, n, LANES):  # noqa: F821
        last = min(n, first + LANES)  # noqa: F821
        n_live = 0
        for i in range(first, last):
            START(pstate, i - first, args, work)  # noqa: F821
            if div_step[i] < 0:
                live[n_live] = i
                n_live += 1
        # the last pass (t = n_steps) only observes the final states: one call site for STEP and
        # one for OBSERVE (each is inlined, so the kernel compiles faster)
        for t in range(n_steps + 1):
            coefficients = COEFFICIENTS(min(t, n_steps - 1), args)  # noqa: F821
            for sub in range(n_sub if t < n_steps else 1):
                step = t if sub == 0 else -1
                time = t + sub * inv_sub
                lost = False
                for q in range(n_live):
                    i = live[q]
                    # an unsigned index skips numba's negative-index wrap-around: fewer instructions
                    # and registers in the loop every particle-step runs through (EM ~10% faster)
                    row = np.uint64(i)
                    for k in range(d):
                        th[k] = x[row, k]
                        if MOMENTUM:  # noqa: F821
                            vl[k] = v[row, k]
                    OBSERVE(obs, i, step, time, th)  # noqa: F821
                    if t == n_steps:
                        continue
                    ra, rb, rc, rw = STEP(th, vl, xn, vn, g, z, t, coefficients, args, work, pstate,  # noqa: F821
                                          i - first, ra, rb, rc, rw)
                    ok = True
                    for k in range(d):
                        # bound is finite (inf is replaced by the largest float): one comparison
                        # rejects |θ_k| > bound, inf and NaN
                        if not abs(xn[k]) <= bound:
                            ok = False
                        if MOMENTUM and not abs(vn[k]) <= _LARGEST:  # noqa: F821
                            ok = False
                    if not ok:
                        div_step[row] = t
                        lost = True
                        continue
                    for k in range(d):
                        x[row, k] = xn[k]
                        if MOMENTUM:  # noqa: F821
                            v[row, k] = vn[k]
                if lost:  # drop the diverged, keeping the order (and so the stream) of the others
                    kept = 0
                    for q in range(n_live):
                        if div_step[live[q]] < 0:
                            live[kept] = live[q]
                            kept += 1
                    n_live = kept
    state[0], state[1], state[2], state[3] = ra, rb, rc, rw


# --------------------------------------------------------------------------------------------
# the engine
# --------------------------------------------------------------------------------------------
def run_ensemble(method: Any, *, theta0: ArrayLike, n_steps: int, n_particles: int, seed: Seed,
                 observers: Sequence[Observer] = (), divergence_bound: float = 1e6, n_threads: int | None = None,
                 block_size: int = DEFAULT_BLOCK_SIZE, progress: bool = False) -> SimResult:
    """Run ``n_particles`` independent copies of ``method`` for ``n_steps`` SGD steps (module
    docstring) and return their :class:`sim.results.SimResult`, filled in by the observers."""
    n_steps = _checks.check_int("n_steps", n_steps, minimum=1)
    n_particles = _checks.check_int("n_particles", n_particles, minimum=1)
    block_size = _checks.check_int("block_size", block_size, minimum=1)
    _checks.check_positive("divergence_bound", divergence_bound, allow_inf=True)
    observers = list(observers)
    for k, obs in enumerate(observers):
        if not isinstance(obs, Observer):
            raise TypeError(f"observers[{k}] must be an observer (Record, Histogram, Basins, FirstPassage, PathMaximum), got {obs!r}")
    kinds = [type(o).__name__ for o in observers]
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"observers: at most one of each kind per run, got {kinds}")
    d = int(method.dim)
    n_blocks = -(-n_particles // block_size)
    info = RunInfo(method.landscape, n_steps, n_particles, d, block_size, n_blocks, int(method.n_sub))
    _check_memory(info, observers, n_threads)
    x = initial_states(theta0, n_particles, d)
    seed_seq, seed_rec = seed_sequence(seed)
    method.check_start(x)
    for obs in observers:
        obs.prepare(info)
    observe, _ = chain_hooks([o.hook for o in observers])
    momentum = method.momentum > 0
    lanes = block_size if method.lanes is None else int(method.lanes)
    kernel = specialise(_block_kernel, STEP=method.step, START=method.start, COEFFICIENTS=method.coefficients,
                        OBSERVE=observe, MOMENTUM=momentum, DIM=d, LANES=lanes)
    states = _rng.block_states(seed_seq, n_blocks)
    v = np.zeros_like(x)
    div_step = np.full(n_particles, -1, dtype=np.int64)
    bound = float(divergence_bound)
    finite_bound = min(bound, _LARGEST)
    local = threading.local()

    def block_data(b, rows):
        data = ()
        for obs in reversed(observers):
            data = (obs.block_data(b, rows), data)
        return data

    def work(b):
        rows = slice(b * block_size, min(n_particles, (b + 1) * block_size))
        ws = getattr(local, "workspace", None)
        if ws is None:
            ws = local.workspace = method.workspace()
        method.start_block(ws)
        data = block_data(b, rows)
        kernel(x[rows], v[rows], div_step[rows], states[b], n_steps, info.n_sub, finite_bound, method.args, data, ws)
        for obs, od in zip(observers, _flatten(data)):
            obs.block_done(b, rows, od, div_step[rows], x[rows])

    # compile here on an empty block (not racing in the worker threads)
    kernel(x[:0], v[:0], div_step[:0], np.zeros(4, dtype=np.uint64), n_steps, info.n_sub, finite_bound, method.args,
           block_data(0, slice(0, 0)), method.workspace())
    n_threads = _default_threads(n_threads, n_blocks)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_blocks, desc=method.name, unit="block")
    try:
        if n_threads == 1:
            for b in range(n_blocks):
                work(b)
                if bar is not None:
                    bar.update(1)
        else:
            with ThreadPoolExecutor(max_workers=n_threads) as pool:
                for fut in as_completed([pool.submit(work, b) for b in range(n_blocks)]):
                    fut.result()
                    if bar is not None:
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()

    diverged = div_step >= 0
    n_div = int(diverged.sum())
    params = dict(method.describe(), n_steps=n_steps, n_particles=n_particles, dim=d, seed=seed_rec,
                  divergence_bound=bound, block_size=block_size, n_diverged=n_div)
    for obs in observers:
        params[obs.name] = obs.describe()
    if n_div == n_particles:
        warnings.warn(
            f"all {n_particles} particles diverged (non-finite or |theta| > {bound:g}): the run has no "
            "statistics (SimResult.all_diverged is True; mean, var and basin probabilities raise); the step is "
            "unstable at these settings: lower lr",
            RuntimeWarning,
            stacklevel=3,
        )
    elif n_div:
        warnings.warn(
            f"{n_div} of {n_particles} particles diverged (non-finite or |theta| > {bound:g}); "
            "they are frozen at their last finite state, flagged in SimResult.diverged and excluded "
            "from statistics",
            RuntimeWarning,
            stacklevel=3,
        )
    result = SimResult(final=x, diverged=diverged, diverged_step=div_step, params=params,
                       final_velocity=v if momentum else None)
    for obs in observers:
        obs.finish(result)
    return result


def _check_memory(run: RunInfo, observers: Sequence[Observer], n_threads) -> None:
    """Refuse a run whose arrays cannot fit, before any is allocated, naming the parameter that
    sizes the largest of them: ``n_particles`` (states, velocities and divergence steps: 2d + 1
    values per particle) or an observer's (e.g. ``Record every``)."""
    parts = [("n_particles", run.n_particles, 8.0 * run.n_particles * (2 * run.dim + 1),
              "the particle states (positions, velocities, divergence steps)",
              "use fewer particles per run and pool several runs (seeds differ by SeedSequence(seed).spawn)")]
    threads = _default_threads(n_threads, run.n_blocks)
    for obs in observers:
        parts += obs.memory(run, threads)
    total = sum(p[2] for p in parts)
    name, value, _, what, advice = max(parts, key=lambda p: p[2])
    if len(parts) > 1:
        what += " with the rest of the run"
    _checks.check_fits_memory(name, value, total, what, advice=advice)


def _flatten(nested):
    """(a, (b, (c, ()))) -> [a, b, c]: the per-observer data of a block."""
    out = []
    while nested:
        out.append(nested[0])
        nested = nested[1]
    return out

