"""Observers: what a simulation measures while it runs, passed to a simulator as a list.

    simulate_sde(land, ..., observers=[Record(every=100), Histogram(edges, burn_in=1000),
                                       Basins(every=50), FirstPassage(target=1, radius=0.2),
                                       PathMaximum()])

Each observer is an object with a compiled *hook* ``hook(data, i, step, time, theta)`` that the
engine's kernel calls for every live particle i of a block: after each whole SGD step
(``step`` = s, ``time`` = s; s = 0 for the initial state) and after each sub-step of a
sub-stepped method (``step`` = −1, ``time`` fractional).  A diverged particle is observed up to
its last finite state only.  Around the hook, plain Python:

* ``prepare(run)`` validates against the run (:class:`sim.engine.RunInfo`) and allocates;
* ``block_data(b, rows)`` returns the tuple the hook reads for block b (per-block arrays, so
  blocks never share a counter and threads never race);
* ``block_done(b, rows, data, diverged_step, final)`` post-processes a finished block;
* ``finish(result)`` reduces the blocks in block order (results do not depend on the thread
  count) and fills the :class:`sim.results.SimResult`;
* ``describe()`` is recorded in ``result.params[observer.name]``.

A new observer is one class with these methods and a module-level hook function.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

import numba
import numpy as np
from numpy.typing import ArrayLike

from theory import _checks
from theory._numba import jit, specialise

if TYPE_CHECKING:
    from sim.engine import RunInfo
    from sim.results import SimResult

__all__ = ["Observer", "Record", "Histogram", "Basins", "FirstPassage", "PathMaximum", "chain_hooks"]


# --------------------------------------------------------------------------------------------
# composing hooks
# --------------------------------------------------------------------------------------------
def _no_hook(data, i, step, time, theta):
    pass


def _pair_hook(data, i, step, time, theta):
    FIRST(data[0], i, step, time, theta)  # noqa: F821
    REST(data[1], i, step, time, theta)  # noqa: F821


def chain_hooks(hooks: Sequence[Callable[..., Any]]) -> tuple[Callable[..., Any], int]:
    """One compiled hook calling ``hooks`` in order on nested data (d0, (d1, (..., ()))).

    Without hooks it is an inlined no-op.  With hooks it is a separate compiled function that the
    kernel calls (not inlined into it: numba 0.68's inliner lost the hooks' writes when several
    hooks were inlined into the SGD kernel)."""
    hooks = list(hooks)
    if not hooks:
        return specialise(_no_hook, inline=True), 0
    out = specialise(_no_hook, inline=True)
    for hook in reversed(hooks):
        out = specialise(_pair_hook, inline=hook is not hooks[0], FIRST=hook, REST=out)
    return out, len(hooks)


class Observer:
    """Base class (module docstring); ``name`` keys the observer's entry in ``result.params``."""

    name = "observer"
    hook = None

    def prepare(self, run: RunInfo) -> None:
        self.run = run

    def block_data(self, b: int, rows: slice) -> tuple:
        raise NotImplementedError

    def block_done(self, b: int, rows: slice, data: tuple, diverged_step: np.ndarray, final: np.ndarray) -> None:
        pass

    def finish(self, result: SimResult) -> None:
        raise NotImplementedError

    def describe(self) -> dict:
        return {}

    def memory(self, run: RunInfo, n_threads: int) -> list[tuple]:
        """What the observer will allocate for ``run`` (:class:`sim.engine.RunInfo`) with
        ``n_threads`` blocks in flight, as (parameter, its value, bytes, what, advice) tuples: the
        engine refuses a run that cannot fit before anything is allocated."""
        return []


def _every(name: str, every) -> int:
    return _checks.check_int(name, every, minimum=1)


class _Periodic(Observer):
    """An observer of the states after every ``every`` steps (step 0 included), through
    :func:`_record_hook` writing them into an array (n_times, particles, d)."""

    def __init__(self, every: int):
        self.every = _every(f"{type(self).__name__} every", every)
        self.hook = jit(_record_hook, f"{type(self).__name__} hook")

    def prepare(self, run):
        super().prepare(run)
        self.steps = np.arange(0, run.n_steps + 1, self.every, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# Record
# --------------------------------------------------------------------------------------------
def _record_hook(data, i, step, time, theta):
    traj, every = data
    if step >= 0 and step % every == 0:
        r = step // every
        for k in range(theta.shape[0]):
            traj[r, i, k] = theta[k]


class Record(_Periodic):
    """States after every ``every`` steps (step 0 included): ``result.trajectory`` (n_rec, M, d)
    and ``result.record_steps``; a diverged particle keeps its frozen state."""

    name = "record"

    def prepare(self, run: RunInfo) -> None:
        super().prepare(run)
        self.trajectory = np.full((self.steps.size, run.n_particles, run.dim), np.nan)

    def block_data(self, b: int, rows: slice) -> tuple:
        return (self.trajectory[:, rows, :], self.every)

    def finish(self, result: SimResult) -> None:
        traj = self.trajectory
        for i in np.nonzero(result.diverged)[0]:
            traj[self.steps > result.diverged_step[i], i] = result.final[i]
        result.trajectory = traj
        result.record_steps = self.steps

    def memory(self, run: RunInfo, n_threads: int) -> list[tuple]:
        n_times = run.n_steps // self.every + 1
        return [("Record every", self.every, 8.0 * n_times * run.n_particles * run.dim,
                 f"the recorded trajectory ({n_times} records x n_particles x dim float64)",
                 "record less often (a larger every) or use Histogram / Basins, which store no paths")]

    def describe(self) -> dict:
        return {"every": self.every, "n_times": int(self.steps.size)}


# --------------------------------------------------------------------------------------------
# Histogram (and time moments over the same samples)
# --------------------------------------------------------------------------------------------
@numba.njit(nogil=True, inline="always")
def _bin(xv, edges, uniform, inv_w):
    nb = edges.shape[0] - 1
    if not (xv >= edges[0] and xv <= edges[nb]):  # also rejects NaN
        return -1
    if uniform:
        j = int((xv - edges[0]) * inv_w)
        if j >= nb:
            j = nb - 1
        if j > 0 and xv < edges[j]:
            j -= 1
        elif j + 1 < nb and xv >= edges[j + 1]:
            j += 1
        return j
    j = np.searchsorted(edges, xv, side="right") - 1
    if j >= nb:
        j = nb - 1
    return j


def _histogram_hook(data, i, step, time, theta):
    counts, outside, moments, e0, e1, uni0, uni1, inv0, inv1, dim0, dim1, two_d, burn, every = data
    if step < 1 or step < burn or (step - burn) % every != 0:
        return
    d = theta.shape[0]
    # running first and second moments of all coordinates: moments = [Σθ (d), Σθθᵀ (d*d)]
    for k in range(d):
        moments[k] += theta[k]
        for j in range(d):
            moments[d + k * d + j] += theta[k] * theta[j]
    j0 = _bin(theta[dim0], e0, uni0, inv0)
    j1 = _bin(theta[dim1], e1, uni1, inv1) if two_d else 0
    if j0 >= 0 and j1 >= 0:
        counts[j0, j1] += 1
    else:
        outside[0] += 1


def _check_edges(name, edges) -> np.ndarray:
    try:
        arr = np.ascontiguousarray(np.asarray(edges, dtype=float))
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of bin edges, got {edges!r}") from None
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(f"{name} must be a 1-D array of at least 2 bin edges, got shape {arr.shape}")
    if np.any(~np.isfinite(arr)) or np.any(np.diff(arr) <= 0):
        raise ValueError(f"{name} must be finite and strictly increasing, got {arr[:6].tolist()}...")
    return arr


class Histogram(Observer):
    """Running histogram of the live particles' states after steps s ≥ max(burn_in, 1) with
    (s − burn_in) % every == 0, without storing paths: 1-D (``edges`` an array, coordinate
    ``dims[0]``) or 2-D (``edges`` = [edges0, edges1], coordinates ``dims``).  Over the same samples
    (inside or outside the edges) the time-and-ensemble mean ``result.time_mean`` (d,) and
    covariance ``result.time_cov`` (d, d) of all coordinates."""

    name = "histogram"

    def __init__(self, edges: ArrayLike | Sequence[ArrayLike], burn_in: int = 0, every: int = 1,
                 dims: Sequence[int] | None = None):
        if isinstance(edges, (list, tuple)) and len(edges) == 2 and np.ndim(edges[0]) == 1:
            self.edges = [_check_edges("Histogram edges[0]", edges[0]), _check_edges("Histogram edges[1]", edges[1])]
        else:
            self.edges = [_check_edges("Histogram edges", edges)]
        self.dims = tuple(int(k) for k in (dims if dims is not None else (0, 1)[: len(self.edges)]))
        if len(self.dims) != len(self.edges):
            raise ValueError(f"Histogram dims must name {len(self.edges)} coordinate(s), got {self.dims}")
        self.burn_in = _checks.check_int("Histogram burn_in", burn_in, minimum=0)
        self.every = _every("Histogram every", every)
        self.hook = jit(_histogram_hook, "Histogram hook")

    def prepare(self, run: RunInfo) -> None:
        super().prepare(run)
        for k in self.dims:
            if not 0 <= k < run.dim:
                raise ValueError(f"Histogram dims entries must lie in [0, {run.dim}), got {self.dims}")
        if self.burn_in > run.n_steps:
            raise ValueError(f"Histogram burn_in must be <= n_steps = {run.n_steps}, got {self.burn_in}")
        first = max(self.burn_in, 1)
        first += (-(first - self.burn_in)) % self.every
        self.n_times = 0 if first > run.n_steps else (run.n_steps - first) // self.every + 1
        shape = tuple(e.size - 1 for e in self.edges) + ((1,) if len(self.edges) == 1 else ())
        self.counts = np.zeros((run.n_blocks,) + shape, dtype=np.int64)
        self.outside = np.zeros((run.n_blocks, 1), dtype=np.int64)
        self.moments = np.zeros((run.n_blocks, run.dim + run.dim * run.dim))
        uniform = []
        for e in self.edges + self.edges[:1]:
            w = (e[-1] - e[0]) / (e.size - 1)
            uniform.append((bool(np.allclose(np.diff(e), w, rtol=1e-12, atol=0.0)), 1.0 / w))
        e1 = self.edges[1] if len(self.edges) == 2 else self.edges[0]
        self._static = (self.edges[0], e1, uniform[0][0], uniform[1][0], uniform[0][1], uniform[1][1], self.dims[0],
                        self.dims[-1], len(self.edges) == 2, self.burn_in, self.every)

    def block_data(self, b: int, rows: slice) -> tuple:
        return (self.counts[b], self.outside[b], self.moments[b]) + self._static

    def finish(self, result: SimResult) -> None:
        counts = self.counts.sum(axis=0)
        result.histogram = counts[:, 0] if len(self.edges) == 1 else counts
        result.histogram_edges = self.edges
        result.histogram_outside = int(self.outside.sum())
        result.histogram_samples = int(counts.sum()) + result.histogram_outside
        moments = np.zeros(self.moments.shape[1])
        for b in range(self.moments.shape[0]):  # fixed order: bit-identical whatever the thread count
            moments += self.moments[b]
        n = result.histogram_samples
        if n > 0:
            d = self.run.dim
            mean = moments[:d] / n
            result.time_mean = mean
            result.time_cov = moments[d:].reshape(d, d) / n - np.outer(mean, mean)

    def memory(self, run: RunInfo, n_threads: int) -> list[tuple]:
        bins = float(np.prod([e.size - 1 for e in self.edges]))
        return [("Histogram edges", f"{' x '.join(str(e.size) for e in self.edges)} edges",
                 8.0 * run.n_blocks * (bins + run.dim * (run.dim + 1) + 1),
                 "the histogram's counts (one histogram per block of particles)",
                 "use fewer bins, or a larger block_size (fewer blocks)")]

    def describe(self) -> dict:
        return dict(edges=[e.tolist() for e in self.edges], burn_in=self.burn_in, every=self.every,
                    dims=list(self.dims), n_times=self.n_times)


# --------------------------------------------------------------------------------------------
# Basins
# --------------------------------------------------------------------------------------------
class Basins(_Periodic):
    """Every ``every`` steps (step 0 included) the number and fraction of live particles in the
    basin of each minimum (``landscape.basin_index``, minima in ``landscape.minima()`` order):
    ``result.basin_counts``, ``result.basin_occupancy`` (n_times, K), ``result.basin_steps``.  The
    kernel keeps the block's states at those steps; they are classified when the block is done."""

    name = "basins"

    def prepare(self, run: RunInfo) -> None:
        super().prepare(run)
        self.n_minima = len(run.landscape.minima())
        self.counts = np.zeros((run.n_blocks, self.steps.size, self.n_minima), dtype=np.int64)

    def block_data(self, b: int, rows: slice) -> tuple:
        n = rows.stop - rows.start
        return (np.full((self.steps.size, n, self.run.dim), np.nan), self.every)

    def block_done(self, b: int, rows: slice, data: tuple, diverged_step: np.ndarray, final: np.ndarray) -> None:
        states = data[0]
        live = ~np.isnan(states[..., 0])  # a diverged particle is not observed after it diverged
        if not live.any():
            return
        labels = np.asarray(self.run.landscape.basin_index(states[live])).reshape(-1)
        time_index = np.broadcast_to(np.arange(self.steps.size)[:, None], live.shape)[live]
        np.add.at(self.counts[b], (time_index, labels), 1)

    def finish(self, result: SimResult) -> None:
        counts = self.counts.sum(axis=0)
        alive = counts.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            result.basin_occupancy = np.where(alive > 0, counts / np.maximum(alive, 1), np.nan)
        result.basin_counts = counts
        result.basin_steps = self.steps

    def memory(self, run: RunInfo, n_threads: int) -> list[tuple]:
        n_times = run.n_steps // self.every + 1
        n_minima = len(run.landscape.minima())
        return [("Basins every", self.every,
                 8.0 * n_times * (run.n_blocks * n_minima + n_threads * min(run.block_size, run.n_particles) * run.dim),
                 f"the basin counts and the states of the blocks in flight ({n_times} records each)",
                 "classify less often (a larger every)")]

    def describe(self) -> dict:
        return {"every": self.every}


# --------------------------------------------------------------------------------------------
# FirstPassage
# --------------------------------------------------------------------------------------------
def _first_passage_hook(data, i, step, time, theta):
    times, target, radius2 = data
    if times[i] == np.inf:
        r2 = 0.0
        for k in range(theta.shape[0]):
            dd = theta[k] - target[k]
            r2 += dd * dd
        if r2 < radius2:
            times[i] = time


class FirstPassage(Observer):
    """First time |θ − target| < radius (in SGD steps; fractional with sub-steps; 0 if inside at
    the start; inf if never, or if the particle diverged first): ``result.first_passage_steps``.
    ``target``: a location (d,) or the index of a minimum in ``landscape.minima()``."""

    name = "first_passage"

    def __init__(self, target: int | ArrayLike, radius: float):
        _checks.check_positive("FirstPassage radius", radius)
        self.radius = float(radius)
        self.target_spec = target
        self.hook = jit(_first_passage_hook, "FirstPassage hook")

    def prepare(self, run: RunInfo) -> None:
        super().prepare(run)
        target = self.target_spec
        if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
            mins = run.landscape.minima()
            if not 0 <= int(target) < len(mins):
                raise ValueError(f"FirstPassage target as a minimum index must lie in [0, {len(mins)}), got {target}")
            target = mins[int(target)].location
        target = np.ascontiguousarray(np.asarray(target, dtype=float).reshape(-1))
        if target.shape != (run.dim,):
            raise ValueError(f"FirstPassage target must have shape ({run.dim},), got {target.shape}")
        _checks.check_finite("FirstPassage target", target)
        self.target = target
        self.times = np.full(run.n_particles, np.inf)

    def block_data(self, b: int, rows: slice) -> tuple:
        return (self.times[rows], self.target, self.radius ** 2)

    def finish(self, result: SimResult) -> None:
        result.first_passage_steps = self.times

    def memory(self, run: RunInfo, n_threads: int) -> list[tuple]:
        return [("n_particles", run.n_particles, 8.0 * run.n_particles, "the first-passage times",
                 "use fewer particles per run")]

    def describe(self) -> dict:
        return dict(target=self.target.tolist(), radius=self.radius)



# --------------------------------------------------------------------------------------------
# PathMaximum
# --------------------------------------------------------------------------------------------
def _path_maximum_hook(data, i, step, time, theta):
    largest = data[0]
    r2 = 0.0
    for k in range(theta.shape[0]):
        r2 += theta[k] * theta[k]
    if r2 > largest[i]:
        largest[i] = r2


class PathMaximum(Observer):
    """Largest distance from the origin along each path, sup_t ‖θ_t‖ over every state reached
    (the initial one, every step and sub-step): ``result.path_maximum`` (M,).  A diverged particle
    left every bound below the run's ``divergence_bound``, so its entry is inf: the fraction with
    ``path_maximum > R`` is the probability of ever exceeding R, diverged runs included (e.g. the
    escape counts at an unstable minimum at the origin)."""

    name = "path_maximum"

    def __init__(self):
        self.hook = jit(_path_maximum_hook, "PathMaximum hook")

    def prepare(self, run: RunInfo) -> None:
        super().prepare(run)
        self.largest = np.zeros(run.n_particles)

    def block_data(self, b: int, rows: slice) -> tuple:
        return (self.largest[rows],)

    def memory(self, run: RunInfo, n_threads: int) -> list[tuple]:
        return [("n_particles", run.n_particles, 2 * 8.0 * run.n_particles, "the path maxima",
                 "use fewer particles per run")]

    def finish(self, result: SimResult) -> None:
        out = np.sqrt(self.largest)
        out[result.diverged] = np.inf
        result.path_maximum = out
