"""Euler–Maruyama ensembles of the SGD stochastic differential equation (paper §3, eq. 1).

Time is measured in SGD steps (conventions.md):

    dθ = −η ∇L(θ) dt + (η/√S) B(θ) dW,      C = B Bᵀ,                               (eq. 1)

discretised by Euler–Maruyama with step ``dt`` (``dt = 1``: one EM step per SGD step; ``dt < 1``
with ``1/dt`` an integer: sub-stepping, ``n_steps`` still counted in SGD steps):

    θ ← θ − η ∇L(θ)·dt + (η/√S)·√dt·B ξ,      ξ ~ N(0, I).

With ``dt = 1`` this is exactly the minibatch SGD update θ ← θ − η g_S with Gaussian gradient
noise of covariance C/S (paper §3.1, assumption 1), i.e. the matching discretisation.

Heavy-ball momentum μ (per EM step):  v ← μ v − η ∇L·dt + (η/√S)·√dt·B ξ;  θ ← θ + v
(the noise is symmetric, so its sign is immaterial; written as in the plain update).
The stationary variance on a quadratic is the heavy-ball discrete Lyapunov solution
(:func:`theory.discrete.stationary_covariance_momentum`).

Noise: isotropic ``sigma2`` (C = σ²I), constant ``noise_cov`` (B = Cholesky factor of C, with
zero columns for zero pivots when C is only semi-definite) or ``state_dependent`` (C(θ) from
``landscape.kernels.noise_cov`` each step, the per-sample gradient covariance of a finite-sum
landscape; B = its Cholesky factor).

Parallelism and determinism: particles are split into blocks of ``block_size`` (the block
count depends on M and ``block_size`` only); block b draws from
an SFC64 stream seeded from ``SeedSequence(seed).spawn(n_blocks)[b]`` (:func:`block_states`),
normals in the order step-major / particle-minor; blocks run in a thread pool of ``n_threads`` threads calling a
``nogil`` numba kernel.  Same seed and block size ⇒ bit-identical results for any thread count.
"""
from __future__ import annotations

import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import numpy as np

from sim import _kernels
from sim.results import SimResult
from theory import _checks

__all__ = ["simulate_sde", "block_states", "block_generators"]

DEFAULT_BLOCK_SIZE = 256
#: Bit generator of the per-block streams.  SFC64 (a chaotic small-state generator that passes
#: PractRand/BigCrush; one of NumPy's bit generators) is advanced inside the kernels in
#: registers (see :mod:`sim._kernels`): the random numbers are the floor of an EM step.
BIT_GENERATOR = np.random.SFC64


def block_states(seed, n_blocks: int) -> list[np.ndarray]:
    """Initial SFC64 states (uint64 (4,)) of the ``n_blocks`` particle blocks of a run with
    ``seed``: those of ``np.random.SFC64(child)`` for the children of
    ``SeedSequence(seed).spawn(n_blocks)``.  Block b holds particles
    ``b*block_size ... (b+1)*block_size - 1``; the EM kernels draw its normals step-major,
    particle-minor (d per particle), so a run can be reproduced outside sim with
    :func:`sim._kernels.standard_normals` (bit for bit) or ``block_generators`` (to ~1e-15)."""
    seed_seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return [np.array(BIT_GENERATOR(child).state["state"]["state"], dtype=np.uint64) for child in seed_seq.spawn(n_blocks)]


def block_generators(seed, n_blocks: int) -> list[np.random.Generator]:
    """NumPy Generators with the same raw streams as :func:`block_states` (their
    ``standard_normal`` equals sim's normals to ~1e-15 relative: same ziggurat, tables
    recomputed)."""
    seed_seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return [np.random.Generator(BIT_GENERATOR(child)) for child in seed_seq.spawn(n_blocks)]


# --------------------------------------------------------------------------------------------
# shared input handling (also used by sim.sgd)
# --------------------------------------------------------------------------------------------
def _seed_sequence(seed) -> tuple[np.random.SeedSequence, Any]:
    if isinstance(seed, np.random.SeedSequence):
        return seed, {"entropy": seed.entropy, "spawn_key": list(seed.spawn_key)}
    if seed is None:
        ss = np.random.SeedSequence()
        return ss, ss.entropy
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or a numpy SeedSequence, got {seed!r}")
    return np.random.SeedSequence(int(seed)), int(seed)


def _theta0(theta0, n_particles: int, dim: int) -> np.ndarray:
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


def _schedule(name: str, schedule, n_steps: int) -> np.ndarray:
    if hasattr(schedule, "values") and callable(getattr(schedule, "values")) and not isinstance(schedule, (np.ndarray, dict)):
        schedule = schedule.values(n_steps)  # theory.scaling.Schedule
    if callable(schedule):
        steps = np.arange(n_steps)
        try:
            vals = np.asarray(schedule(steps), dtype=float)
            if vals.shape != (n_steps,):
                raise ValueError
        except Exception:
            vals = np.array([float(schedule(int(t))) for t in range(n_steps)])
    else:
        try:
            vals = np.asarray(schedule, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be an array of length n_steps = {n_steps} or a callable") from exc
    if vals.shape != (n_steps,):
        raise ValueError(f"{name} must have length n_steps = {n_steps} (one value per SGD step), got shape {vals.shape}")
    if np.any(~np.isfinite(vals)):
        raise ValueError(f"{name} contains NaN or inf")
    return np.ascontiguousarray(vals)


def _lr_values(lr, lr_schedule, n_steps: int) -> np.ndarray:
    if lr_schedule is not None:
        vals = _schedule("lr_schedule", lr_schedule, n_steps)
        if np.any(vals <= 0):
            raise ValueError(f"lr_schedule values must be > 0, got min {vals.min():.6g}")
        return vals
    if lr is None:
        raise ValueError("lr is required (or give lr_schedule)")
    if np.ndim(lr) != 0:
        raise ValueError(f"lr must be a scalar (use lr_schedule for per-step values), got shape {np.shape(lr)}")
    _checks.check_positive("lr", lr)
    return np.full(n_steps, float(lr))


def _batch_values(batch_size, batch_schedule, n_steps: int, n_samples: int | None, integer: bool) -> np.ndarray:
    if batch_schedule is not None:
        vals = _schedule("batch_schedule", batch_schedule, n_steps)
        if np.any(vals < 1):
            raise ValueError(f"batch_schedule values must be >= 1, got min {vals.min():.6g}")
        if n_samples is not None and np.any(vals > n_samples):
            raise ValueError(f"batch_schedule values must be <= n_samples = {n_samples}, got max {vals.max():.6g}")
        if integer and np.any(vals != np.round(vals)):
            raise ValueError("batch_schedule values must be integers for minibatch SGD")
        return vals
    if batch_size is None:
        raise ValueError("batch_size is required (or give batch_schedule)")
    if np.ndim(batch_size) != 0:
        raise ValueError(f"batch_size must be a scalar (use batch_schedule for per-step values), got shape {np.shape(batch_size)}")
    _checks.check_batch_size(batch_size, n_samples)
    if integer and float(batch_size) != round(float(batch_size)):
        raise ValueError(f"batch_size must be an integer for minibatch SGD, got {batch_size!r}")
    return np.full(n_steps, float(batch_size))


def _every(name: str, value, n_steps: int) -> np.ndarray | None:
    if value is None:
        return None
    value = _checks.check_int(name, value, minimum=1)
    return np.arange(0, n_steps + 1, value, dtype=np.int64)


def _edges(name: str, e) -> np.ndarray:
    arr = np.ascontiguousarray(np.asarray(e, dtype=float))
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(f"{name} must be a 1-D array of at least 2 bin edges, got shape {arr.shape}")
    if np.any(~np.isfinite(arr)) or np.any(np.diff(arr) <= 0):
        raise ValueError(f"{name} must be finite and strictly increasing")
    return arr


def _histogram_spec(histogram, dim: int, n_steps: int) -> dict:
    """Kernel arguments for the running histogram (or the 'off' placeholders)."""
    dummy = np.zeros(2)
    spec = dict(hist_mode=0, burn=0, every=1, hd0=0, hd1=0, e0=dummy, e1=dummy, uni0=False, uni1=False,
                inv0=1.0, inv1=1.0, shape=(1, 1), meta=None)
    if histogram is None:
        return spec
    if not isinstance(histogram, dict) or "edges" not in histogram:
        raise ValueError("histogram must be a dict with key 'edges' (and optional 'burn_in', 'every', 'dims')")
    unknown = set(histogram) - {"edges", "burn_in", "every", "dims"}
    if unknown:
        raise ValueError(f"histogram has unknown keys {sorted(unknown)}")
    edges = histogram["edges"]
    if isinstance(edges, (list, tuple)) and len(edges) == 2 and np.ndim(edges[0]) == 1:
        edge_list = [_edges("histogram['edges'][0]", edges[0]), _edges("histogram['edges'][1]", edges[1])]
    else:
        edge_list = [_edges("histogram['edges']", edges)]
    dims = tuple(histogram.get("dims", (0, 1)[: len(edge_list)]))
    if len(dims) != len(edge_list):
        raise ValueError(f"histogram['dims'] must name {len(edge_list)} coordinate(s), got {dims}")
    for k in dims:
        if not (0 <= int(k) < dim):
            raise ValueError(f"histogram['dims'] entries must lie in [0, {dim}), got {dims}")
    burn = _checks.check_int("histogram['burn_in']", histogram.get("burn_in", 0), minimum=0)
    every = _checks.check_int("histogram['every']", histogram.get("every", 1), minimum=1)
    if burn > n_steps:
        raise ValueError(f"histogram['burn_in'] must be <= n_steps = {n_steps}, got {burn}")

    def uni(e):
        w = (e[-1] - e[0]) / (e.size - 1)
        return bool(np.allclose(np.diff(e), w, rtol=1e-12, atol=0.0)), 1.0 / w

    u0, i0 = uni(edge_list[0])
    spec.update(hist_mode=len(edge_list), burn=burn, every=every, hd0=int(dims[0]), e0=edge_list[0], uni0=u0, inv0=i0)
    if len(edge_list) == 2:
        u1, i1 = uni(edge_list[1])
        spec.update(hd1=int(dims[1]), e1=edge_list[1], uni1=u1, inv1=i1,
                    shape=(edge_list[0].size - 1, edge_list[1].size - 1))
    else:
        spec.update(shape=(edge_list[0].size - 1, 1))
    first = max(burn, 1)
    first += (-(first - burn)) % every
    n_taken = 0 if first > n_steps else (n_steps - first) // every + 1
    spec["meta"] = dict(edges=[e.tolist() for e in edge_list], burn_in=burn, every=every, dims=list(dims),
                        n_times=n_taken)
    spec["edge_list"] = edge_list
    return spec


def _first_passage_spec(first_passage, dim: int, landscape=None) -> dict:
    if first_passage is None:
        return dict(fp_on=False, fp_target=np.zeros(dim), fp_r2=0.0, meta=None)
    if not isinstance(first_passage, dict) or "target" not in first_passage or "radius" not in first_passage:
        raise ValueError("first_passage must be a dict with keys 'target' (location, shape (d,)) and 'radius'")
    target = first_passage["target"]
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool) and landscape is not None:
        mins = landscape.minima()
        if not 0 <= int(target) < len(mins):
            raise ValueError(f"first_passage['target'] as a minimum index must lie in [0, {len(mins)}), got {target}")
        target = mins[int(target)].location
    target = np.ascontiguousarray(np.asarray(target, dtype=float).reshape(-1))
    if target.shape != (dim,):
        raise ValueError(f"first_passage['target'] must have shape ({dim},), got {target.shape}")
    _checks.check_finite("first_passage['target']", target)
    radius = first_passage["radius"]
    _checks.check_positive("first_passage['radius']", radius)
    return dict(fp_on=True, fp_target=target, fp_r2=float(radius) ** 2,
                meta=dict(target=target.tolist(), radius=float(radius)))


def _check_loss_at(landscape, theta0: np.ndarray, *, data=None, full_batch=False):
    """Evaluate the landscape's kernels once at every distinct initial state: a non-finite
    loss or gradient is a user error, reported before the run."""
    k = landscape.kernels
    rows = np.unique(theta0, axis=0) if theta0.shape[0] > 1 else theta0
    g = np.empty(theta0.shape[1])
    name = type(landscape).__name__
    idx = np.arange(landscape.n_samples, dtype=np.int64) if full_batch else None
    for r in rows[:10000]:
        r = np.ascontiguousarray(r)
        val = k.value(r, landscape.params)
        if full_batch:
            k.batch_grad(r, landscape.params, data, idx, g)
        else:
            k.grad(r, landscape.params, g)
        if not (np.isfinite(val) and np.all(np.isfinite(g))):
            raise ValueError(
                f"loss of landscape {name} is not finite at theta0 = {r.tolist()} "
                f"(value {val!r}, gradient {g.tolist()}); the user's loss produced NaN/inf"
            )


def _run_blocks(*, theta0, n_steps, seed_seq, block_size, n_threads, progress, momentum,
                call, init_block, record_steps, basin_steps, landscape, hist, fp, desc):
    """Run the ensemble in blocks; ``call(x, v, rng, t0, t1, div, hist, hist_out, hist_mom, fp_time, extra)``
    advances one block from step t0 to t1; observations happen at segment boundaries."""
    M, d = theta0.shape
    n_blocks = -(-M // block_size)
    rngs = block_states(seed_seq, n_blocks)
    final = theta0
    vel = np.zeros_like(final) if momentum else np.zeros((M, d))
    div_step = np.full(M, -1, dtype=np.int64)
    fp_time = np.full(M, np.inf)
    traj = np.empty((record_steps.size, M, d)) if record_steps is not None else None
    K = len(landscape.minima()) if basin_steps is not None else 0
    basin_counts = np.zeros((n_blocks, basin_steps.size, K), dtype=np.int64) if basin_steps is not None else None
    hist_blocks = np.zeros((n_blocks,) + hist["shape"], dtype=np.int64)
    hist_out = np.zeros((n_blocks, 1), dtype=np.int64)
    hist_mom = np.zeros((n_blocks, d + d * d))
    bounds = {0, n_steps}
    rec_pos = {}
    bas_pos = {}
    if record_steps is not None:
        bounds.update(record_steps.tolist())
        rec_pos = {int(s): r for r, s in enumerate(record_steps)}
    if basin_steps is not None:
        bounds.update(basin_steps.tolist())
        bas_pos = {int(s): r for r, s in enumerate(basin_steps)}
    bounds = sorted(bounds)
    fp_target = fp["fp_target"]

    def observe(b, sl, x, div, s):
        if s in rec_pos:
            traj[rec_pos[s], sl] = x
        if s in bas_pos:
            alive = div < 0
            if np.any(alive):
                lab = np.asarray(landscape.basin_index(x[alive])).reshape(-1)
                basin_counts[b, bas_pos[s]] = np.bincount(lab, minlength=K)[:K]

    def work(b):
        sl = slice(b * block_size, min(M, (b + 1) * block_size))
        rng = rngs[b]
        x = final[sl]
        v = vel[sl]
        div = div_step[sl]
        fpt = fp_time[sl]
        extra = init_block(x.shape[0], rng)
        if fp["fp_on"]:
            inside = np.sum((x - fp_target) ** 2, axis=1) < fp["fp_r2"]
            fpt[inside] = 0.0
        observe(b, sl, x, div, 0)
        for t0, t1 in zip(bounds[:-1], bounds[1:]):
            call(x, v, rng, t0, t1, div, hist_blocks[b], hist_out[b], hist_mom[b], fpt, extra)
            observe(b, sl, x, div, t1)
        return b

    n_threads = _default_threads(n_threads, n_blocks)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_blocks, desc=desc, unit="block")
    try:
        if n_threads == 1:
            for b in range(n_blocks):
                work(b)
                if bar is not None:
                    bar.update(1)
        else:
            with ThreadPoolExecutor(max_workers=n_threads) as pool:
                futures = [pool.submit(work, b) for b in range(n_blocks)]
                for fut in as_completed(futures):
                    fut.result()
                    if bar is not None:
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()

    out = dict(final=final, div_step=div_step, vel=vel if momentum else None,
               fp_time=fp_time if fp["fp_on"] else None, traj=traj)
    if basin_steps is not None:
        counts = basin_counts.sum(axis=0)
        alive = counts.sum(axis=1, keepdims=True)
        out["basin_counts"] = counts
        with np.errstate(invalid="ignore", divide="ignore"):
            out["basin_occupancy"] = np.where(alive > 0, counts / np.maximum(alive, 1), np.nan)
    if hist["hist_mode"]:
        h = hist_blocks.sum(axis=0)
        out["hist"] = h[:, 0] if hist["hist_mode"] == 1 else h
        out["hist_out"] = int(hist_out.sum())
        mom = np.zeros(d + d * d)
        for b in range(n_blocks):  # fixed order: bit-identical whatever the thread count
            mom += hist_mom[b]
        out["hist_mom"] = mom
    return out


def _default_threads(n_threads, n_blocks: int) -> int:
    if n_threads is None:
        try:
            n_cpu = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover
            n_cpu = os.cpu_count() or 1
        n_threads = n_cpu
    n_threads = _checks.check_int("n_threads", n_threads, minimum=1)
    return max(1, min(n_threads, n_blocks))


def _make_result(out, *, params, record_steps, basin_steps, hist, divergence_bound) -> SimResult:
    div_step = out["div_step"]
    diverged = div_step >= 0
    n_div = int(diverged.sum())
    params = dict(params)
    params["n_diverged"] = n_div
    if n_div:
        warnings.warn(
            f"{n_div} of {diverged.size} particles diverged (non-finite or |theta| > {divergence_bound:g}); "
            "they are frozen at their last finite state, flagged in SimResult.diverged and excluded "
            "from statistics",
            RuntimeWarning,
            stacklevel=3,
        )
    res = SimResult(
        final=out["final"],
        diverged=diverged,
        diverged_step=div_step,
        params=params,
        trajectory=out["traj"],
        record_steps=record_steps,
        first_passage_steps=out["fp_time"],
        final_velocity=out["vel"],
    )
    if basin_steps is not None:
        res.basin_occupancy = out["basin_occupancy"]
        res.basin_counts = out["basin_counts"]
        res.basin_steps = basin_steps
    if hist["hist_mode"]:
        res.histogram = out["hist"]
        res.histogram_edges = hist["edge_list"]
        res.histogram_outside = out["hist_out"]
        res.histogram_samples = int(out["hist"].sum()) + out["hist_out"]
        n = res.histogram_samples
        if n > 0:
            d = res.final.shape[1]
            mean = out["hist_mom"][:d] / n
            second = out["hist_mom"][d:].reshape(d, d) / n
            res.time_mean = mean
            res.time_cov = second - np.outer(mean, mean)
    return res


def _noise_sqrt(noise_cov: np.ndarray) -> np.ndarray:
    """B with B Bᵀ = C: the Cholesky factor (zero columns at zero pivots for PSD C)."""
    d = noise_cov.shape[0]
    lo = np.zeros((d, d))
    _kernels._chol_psd(np.ascontiguousarray(noise_cov), lo, d)
    return lo


# --------------------------------------------------------------------------------------------
# public
# --------------------------------------------------------------------------------------------
def simulate_sde(
    landscape,
    *,
    lr=None,
    batch_size=None,
    n_steps,
    n_particles,
    theta0,
    seed,
    sigma2=None,
    noise_cov=None,
    state_dependent: bool = False,
    dt: float = 1.0,
    lr_schedule=None,
    batch_schedule=None,
    momentum: float = 0.0,
    record_every=None,
    histogram=None,
    basin_every=None,
    first_passage=None,
    divergence_bound: float = 1e6,
    n_threads=None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    progress: bool = False,
) -> SimResult:
    """Euler–Maruyama ensemble of the SGD SDE (eq. 1), time in SGD steps.

        θ ← θ − η_t ∇L(θ)·dt + (η_t/√S_t)·√dt·B ξ,  ξ ~ N(0, I),  C = BBᵀ,

    heavy ball (``momentum`` μ > 0): v ← μv − η_t∇L·dt + (η_t/√S_t)√dt·Bξ, θ ← θ + v.
    With ``dt = 1`` this is minibatch SGD with Gaussian gradient noise of covariance C/S
    (§3.1, assumption 1); its stationary law on a quadratic is the discrete Lyapunov /
    AR(1) solution, tending to the Gibbs density exp(−2L/(nσ²)) (eq. 2) as η → 0.

    Parameters
    ----------
    landscape : theory.landscapes.Landscape
        Provides ``kernels.grad`` (and ``kernels.noise_cov`` + ``data`` for ``state_dependent``).
    lr, batch_size : η and S (or per-step ``lr_schedule`` / ``batch_schedule``: arrays of length
        ``n_steps`` or callables of the step index, overriding lr / batch_size).
    n_steps : number of SGD steps (EM steps = n_steps / dt).
    n_particles : ensemble size M.
    theta0 : initial state, shape (d,) (or scalar for d = 1) or (M, d).
    seed : int or SeedSequence (None draws fresh entropy, recorded in ``params['seed']``).
    sigma2 / noise_cov / state_dependent : the gradient-noise covariance C (give one; if none is
        given and the landscape has ``sigma2`` (IsotropicNoiseFiniteSum) C = sigma2·I).
    dt : EM step in SGD steps, 0 < dt ≤ 1 with 1/dt an integer.
    record_every : store states every k steps (step 0 included) in ``trajectory`` (n_rec, M, d).
    histogram : dict(edges=array | [edges0, edges1], burn_in=0, every=1, dims=(0,)|(0, 1)): running
        histogram of the non-diverged states after steps s ≥ max(burn_in, 1) with
        (s − burn_in) % every == 0, without storing paths; over the same samples (inside or
        outside the edges) the time-and-ensemble average ``time_mean`` (d,) and covariance
        ``time_cov`` (d, d) of all coordinates.
    basin_every : every k steps (step 0 included) the fraction of non-diverged particles in each
        basin (``landscape.basin_index``, minima in ``landscape.minima()`` order).
    first_passage : dict(target=(d,) location or int index into ``landscape.minima()``, radius=r):
        first time |θ − target| < r (in SGD steps, fractional with sub-steps; 0 if inside at the
        start; inf if never).  With target = a minimum of the other basin this is a basin-to-basin
        first-passage time.
    divergence_bound : a particle with a non-finite state or |θ_k| > bound is frozen and flagged.
    n_threads : worker threads (default: available cores); results do not depend on it.
    block_size : particles per block (results depend on it through the random streams).
    progress : tqdm progress bar over blocks.
    """
    n_steps = _checks.check_int("n_steps", n_steps, minimum=1)
    n_particles = _checks.check_int("n_particles", n_particles, minimum=1)
    block_size = _checks.check_int("block_size", block_size, minimum=1)
    d = int(landscape.dim)
    x0 = _theta0(theta0, n_particles, d)
    seed_seq, seed_rec = _seed_sequence(seed)
    lr_vals = _lr_values(lr, lr_schedule, n_steps)
    bs_vals = _batch_values(batch_size, batch_schedule, n_steps, None, integer=False)
    _checks.check_in_range("momentum", momentum, 0.0, 1.0, closed="left")
    momentum = float(momentum)
    _checks.check_positive("dt", dt)
    dt = float(dt)
    n_sub = int(round(1.0 / dt)) if dt <= 1.0 else 0
    if dt > 1.0 or n_sub < 1 or abs(n_sub * dt - 1.0) > 1e-9:
        raise ValueError(f"dt must be 1/k for an integer k >= 1 (sub-steps per SGD step), got {dt!r}")
    _checks.check_positive("divergence_bound", divergence_bound, allow_inf=True)
    kern = landscape.kernels

    # ---- noise ---------------------------------------------------------------------------
    given = [name for name, val in (("sigma2", sigma2), ("noise_cov", noise_cov)) if val is not None]
    if state_dependent:
        given.append("state_dependent")
    if len(given) > 1:
        raise ValueError(f"give only one of sigma2, noise_cov, state_dependent; got {given}")
    if not given:
        if getattr(landscape, "sigma2", None) is not None:
            sigma2 = float(landscape.sigma2)
        else:
            raise ValueError("sigma2 is required (or noise_cov, or state_dependent=True for a finite-sum landscape)")
    data = np.zeros((1, 1))
    bmat = np.zeros((d, d))
    noise_kernel = _kernels.no_noise_cov
    if state_dependent:
        if getattr(kern, "noise_cov", None) is None or getattr(landscape, "data", None) is None:
            raise ValueError(
                f"state_dependent=True needs a finite-sum landscape with a noise_cov kernel; "
                f"{type(landscape).__name__} has none"
            )
        mode = 2
        data = np.ascontiguousarray(landscape.data, dtype=np.float64)
        noise_kernel = kern.noise_cov
        noise_desc: Any = "state_dependent"
        sig = 1.0
    elif noise_cov is not None:
        c = _checks.check_positive_semidefinite("noise_cov", noise_cov)
        if c.shape != (d, d):
            raise ValueError(f"noise_cov must have shape ({d}, {d}), got {c.shape}")
        c = 0.5 * (c + c.T)
        mode = 1
        bmat = _noise_sqrt(c)
        noise_desc = {"noise_cov": c.tolist()}
        sig = 1.0
    else:
        if np.ndim(sigma2) != 0:
            raise ValueError(f"sigma2 must be a scalar (use noise_cov for a matrix), got shape {np.shape(sigma2)}")
        _checks.check_positive("sigma2", sigma2)
        mode = 0
        sig = math.sqrt(float(sigma2))
        noise_desc = {"sigma2": float(sigma2)}

    _check_loss_at(landscape, x0)
    if state_dependent:
        cm = np.empty((d, d))
        kern.noise_cov(np.ascontiguousarray(x0[0]), landscape.params, data, cm)
        if not np.all(np.isfinite(cm)):
            raise ValueError(f"noise_cov kernel of landscape {type(landscape).__name__} is not finite at theta0")

    dc_arr = np.ascontiguousarray(lr_vals * dt)
    nc_arr = np.ascontiguousarray(lr_vals * math.sqrt(dt) / np.sqrt(bs_vals) * sig)
    # the kernels index per SGD step; sub-steps reuse the step's values
    hist = _histogram_spec(histogram, d, n_steps)
    fp = _first_passage_spec(first_passage, d, landscape)
    record_steps = _every("record_every", record_every, n_steps)
    basin_steps = _every("basin_every", basin_every, n_steps)

    if d == 1 and mode == 0:
        advance = _kernels.em_kernel_1d(kern.grad, momentum > 0)
    else:
        advance = _kernels.em_kernel(kern.grad, noise_kernel)
    params_arr = np.ascontiguousarray(landscape.params, dtype=np.float64)
    bound = float(divergence_bound)
    h = hist
    f = fp

    def call(x, v, rng, t0, t1, div, hist_b, hist_out_b, hist_mom_b, fpt, extra):
        advance(x, v, params_arr, data, t0, t1, n_sub, dc_arr, nc_arr, momentum, mode, bmat, rng, bound,
                div, h["hist_mode"], h["burn"], h["every"], h["hd0"], h["hd1"], h["e0"], h["e1"],
                h["uni0"], h["uni1"], h["inv0"], h["inv1"], hist_b, hist_out_b, hist_mom_b,
                f["fp_on"], f["fp_target"], f["fp_r2"], fpt)

    out = _run_blocks(theta0=x0, n_steps=n_steps, seed_seq=seed_seq, block_size=block_size,
                      n_threads=n_threads, progress=progress, momentum=momentum > 0, call=call,
                      init_block=lambda nb, rng: None, record_steps=record_steps, basin_steps=basin_steps,
                      landscape=landscape, hist=hist, fp=fp, desc="simulate_sde")
    params = dict(
        method="euler_maruyama",
        landscape=repr(landscape),
        lr=None if lr_schedule is not None else float(lr_vals[0]),
        batch_size=None if batch_schedule is not None else float(bs_vals[0]),
        lr_schedule=lr_schedule is not None,
        batch_schedule=batch_schedule is not None,
        lr_range=[float(lr_vals.min()), float(lr_vals.max())],
        batch_size_range=[float(bs_vals.min()), float(bs_vals.max())],
        n_steps=n_steps,
        n_particles=n_particles,
        dim=d,
        seed=seed_rec,
        noise=noise_desc,
        dt=dt,
        momentum=momentum,
        record_every=record_every,
        histogram=hist["meta"],
        basin_every=basin_every,
        first_passage=fp["meta"],
        divergence_bound=bound,
        block_size=block_size,
    )
    return _make_result(out, params=params, record_steps=record_steps, basin_steps=basin_steps, hist=hist,
                        divergence_bound=bound)
