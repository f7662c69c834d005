"""Throughput of sim.sde (Euler–Maruyama) and sim.sgd (exact minibatch SGD) against baselines.

Problem (performance anchors, docs in /work/shared/notes/performance-anchors.md): the 1-D
asymmetric double well L(x) = (x² − 1)²/4 + 0.1x (theory.landscapes.QuarticDoubleWell(0.1)),
EM  x ← x − ηL'(x) + η(σ/√S)ξ,  M particles × T steps (default 10,000 × 10,000); exact minibatch SGD
on IsotropicNoiseFiniteSum(QuarticDoubleWell(0.1), N = 1,000, σ²) with batch size S.

Prints particle-steps per second for every implementation and the ratios of sim's figure to
each.  Slow baselines (NumPy loops, sdeint, torchsde) run a shorter number of steps / fewer
trajectories and are extrapolated linearly (their cost is linear in steps × particles); the
output says so.  Timings: best of ``--repeats`` runs (after a warm-up compile run).

    python benchmarks/bench_sim.py [--particles 10000] [--steps 10000] [--threads 2]

Compiled kernels are cached on disk: the "first call" lines say how many numba compilations the
first call needed (0 in a second process: everything is loaded from the cache).  The last
section runs SGD without replacement on N = 10⁷ samples and prints the process's peak memory.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import resource

import numba
import numpy as np
from numba.core import event

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sim import rng as _rng  # noqa: E402
from sim.engine import DEFAULT_BLOCK_SIZE  # noqa: E402
from sim.rng import BIT_GENERATOR, block_states  # noqa: E402
from sim.sde import simulate_sde  # noqa: E402
from sim.sgd import simulate_sgd  # noqa: E402
from theory.landscapes import IsotropicNoiseFiniteSum, QuarticDoubleWell  # noqa: E402

TILT = 0.1


class Timing(float):
    """Wall-clock seconds (the float value) with the process CPU seconds attached (``.cpu``)."""

    def __new__(cls, wall, cpu):
        obj = super().__new__(cls, wall)
        obj.cpu = cpu
        return obj

    def __mul__(self, k):
        return Timing(float(self) * k, self.cpu * k)

    __rmul__ = __mul__

    def __truediv__(self, k):
        return Timing(float(self) / k, self.cpu / k)


class _CompileCount(event.Listener):
    """Counts numba compilations (the ``numba:compile`` events) while installed."""

    def __init__(self):
        self.n = 0

    def on_start(self, ev):
        self.n += 1

    def on_end(self, ev):
        pass


def first_call(fn):
    """(seconds, number of numba compilations) of a first call."""
    counter = _CompileCount()
    t0 = time.perf_counter()
    with event.install_listener("numba:compile", counter):
        fn()
    return time.perf_counter() - t0, counter.n


def best_time(fn, repeats):
    """Best of ``repeats`` runs: wall seconds and process CPU seconds (all threads) of that run."""
    best = None
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if best is None or wall < best:
            best = Timing(wall, cpu)
    return best


# ---------------------------------------------------------------------------------- floors
@numba.njit(nogil=True)
def _draw_normals(buf, rng, T):
    B = buf.shape[0]
    for t in range(T):
        for i in range(B):
            buf[i] = rng.standard_normal()


@numba.njit(nogil=True)
def _draw_uniforms(buf, rng, T, S):
    B = buf.shape[0]
    for t in range(T):
        for i in range(B):
            for k in range(S):
                buf[i] = rng.random()


@numba.njit(nogil=True)
def _sim_normals(buf, st, T):
    a, b, c, w = st[0], st[1], st[2], st[3]
    B = buf.shape[0]
    for t in range(T):
        for i in range(B):
            buf[i], a, b, c, w = _rng.normal(a, b, c, w)
    st[0], st[1], st[2], st[3] = a, b, c, w


@numba.njit(nogil=True)
def _sim_uniforms(buf, st, T, S):
    a, b, c, w = st[0], st[1], st[2], st[3]
    B = buf.shape[0]
    for t in range(T):
        for i in range(B):
            for k in range(S):
                buf[i], a, b, c, w = _rng.uniform(a, b, c, w)
    st[0], st[1], st[2], st[3] = a, b, c, w


def sim_floor(M, T, threads, block_size, kind="normal", S=1):
    """sim's own in-kernel SFC64 generator (ziggurat normals / uniforms) alone, same block layout."""
    n_blocks = -(-M // block_size)
    states = block_states(0, n_blocks)

    def work(b):
        nb = min(M, (b + 1) * block_size) - b * block_size
        buf = np.empty(nb)
        if kind == "normal":
            _sim_normals(buf, states[b], T)
        else:
            _sim_uniforms(buf, states[b], T, S)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(n_blocks)))


def numba_floor(M, T, threads, block_size, kind="normal", S=1, bitgen=None):
    """Draw the random numbers alone in sim's block layout (one Generator per block, thread pool)."""
    bitgen = bitgen or BIT_GENERATOR
    n_blocks = -(-M // block_size)
    children = np.random.SeedSequence(0).spawn(n_blocks)

    def work(b):
        nb = min(M, (b + 1) * block_size) - b * block_size
        buf = np.empty(nb)
        rng = np.random.Generator(bitgen(children[b]))
        if kind == "normal":
            _draw_normals(buf, rng, T)
        else:
            _draw_uniforms(buf, rng, T, S)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(n_blocks)))


def numpy_normals(M, T, bitgen=np.random.PCG64):
    rng = np.random.Generator(bitgen(0))
    buf = np.empty(M)
    for _ in range(T):
        rng.standard_normal(out=buf)


# ---------------------------------------------------------------------------------- EM baselines
def numpy_natural(M, T, lr, c):
    rng = np.random.default_rng(0)
    x = np.full(M, -1.0)
    for _ in range(T):
        x = x - lr * (x**3 - x + TILT) + c * rng.standard_normal(M)
    return x


def numpy_tuned(M, T, lr, c):
    rng = np.random.default_rng(0)
    x = np.full(M, -1.0)
    g = np.empty(M)
    xi = np.empty(M)
    for _ in range(T):
        np.multiply(x, x, out=g)
        g *= x
        g -= x
        g += TILT
        g *= -lr
        x += g
        rng.standard_normal(out=xi)
        xi *= c
        x += xi
    return x


def sdeint_per_trajectory(n_traj, T, lr, c):
    import sdeint

    tspan = np.arange(T + 1.0)
    gmat = np.array([[c]])
    rng = np.random.default_rng(0)
    for _ in range(n_traj):
        sdeint.itoEuler(lambda x, t: -lr * (x**3 - x + TILT), lambda x, t: gmat, np.array([-1.0]), tspan, generator=rng)


def torchsde_run(M, T, lr, c, dtype):
    import torch
    import torchsde

    class SDE(torch.nn.Module):
        noise_type = "diagonal"
        sde_type = "ito"

        def f(self, t, y):
            return -lr * (y**3 - y + TILT)

        def g(self, t, y):
            return torch.full_like(y, c)

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    y0 = torch.full((M, 1), -1.0, dtype=dtype)
    ts = torch.tensor([0.0, float(T)], dtype=dtype)
    with torch.no_grad():
        torchsde.sdeint(SDE(), y0, ts, method="euler", dt=1.0)


# ---------------------------------------------------------------------------------- SGD baselines
def numpy_sgd(M, T, lr, S, data):
    """Vectorised exact minibatch SGD without replacement: one permutation per particle per epoch."""
    rng = np.random.default_rng(0)
    N = data.shape[0]
    K = N // S
    x = np.full(M, -1.0)
    xi = data[:, 0]
    perm = None
    for t in range(T):
        if t % K == 0:
            perm = rng.permuted(np.broadcast_to(np.arange(N), (M, N)), axis=1)
        idx = perm[:, (t % K) * S:(t % K + 1) * S]
        g = x * x * x - x + TILT + xi[idx].mean(axis=1)
        x -= lr * g
    return x


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--particles", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--batch-size", type=int, default=10, help="SGD batch size S (N = 1000)")
    ap.add_argument("--n-samples", type=int, default=1000)
    ap.add_argument("--block-size", type=int, default=DEFAULT_BLOCK_SIZE)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--short-steps", type=int, default=500, help="steps of the slow baselines (extrapolated)")
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args(argv)
    M, T, thr, R = args.particles, args.steps, args.threads, args.repeats
    lr, S_em, sigma2 = 0.1, 1, 3.0  # temperature nσ²/2 = 0.15
    c = lr * math.sqrt(sigma2 / S_em)
    work = M * T
    Ts = min(args.short_steps, T)
    land = QuarticDoubleWell(TILT)
    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover
        load = (float("nan"),) * 3
    print(f"bench_sim: M = {M} particles x T = {T} steps = {work:.3g} particle-steps; threads = {thr}; "
          f"block_size = {args.block_size}; cores available = {len(os.sched_getaffinity(0))}; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"numpy {np.__version__}, numba {numba.__version__}; best of {R} runs after a warm-up run; "
          f"sim's block generators: {BIT_GENERATOR.__name__}\n")

    def row(name, t, ref, note=""):
        """t: Timing of the baseline, ref: Timing of sim (both for the full M x T work)."""
        print(f"  {name:<56s} {work / t:9.3g} /s {work / t.cpu:9.3g} /cpu-s   sim is {float(t) / float(ref):7.3g}x "
              f"(cpu: {t.cpu / ref.cpu:6.3g}x) {note}")

    # ---- EM ---------------------------------------------------------------------------------
    kw = dict(lr=lr, batch_size=S_em, sigma2=sigma2, n_steps=T, n_particles=M, theta0=-1.0, seed=0,
              n_threads=thr, block_size=args.block_size)
    t_compile, n_compiled = first_call(lambda: simulate_sde(land, **{**kw, "n_steps": 2, "n_particles": 8}))
    em = best_time(lambda: simulate_sde(land, **kw), R)
    print("columns: particle-steps per wall second, per CPU second (all threads of the process), and sim's speed-up")
    print("over each (wall and CPU-time based; the CPU-time ratio is robust to other load on the machine)\n")
    print(f"Euler-Maruyama (sim.simulate_sde; first call {t_compile:.2f} s with {n_compiled} numba compilations: "
          f"{'kernels loaded from the disk cache' if n_compiled == 0 else 'compiled and cached for the next process'})")
    print(f"  {'sim.simulate_sde':<56s} {work / em:9.3g} /s {work / em.cpu:9.3g} /cpu-s   "
          f"({float(em):.2f} s wall, {em.cpu:.2f} s cpu for the full run)")
    numba_floor(8, 2, 1, args.block_size)
    sim_floor(8, 2, 1, args.block_size)
    t = best_time(lambda: sim_floor(M, T, thr, args.block_size), R)
    row(f"floor: sim's in-kernel normals alone, same blocks, {thr} thr", t, em)
    t = best_time(lambda: numba_floor(M, T, thr, args.block_size), R)
    row(f"floor: numba Generator(SFC64) normals, same blocks, {thr} thr", t, em)
    t = best_time(lambda: numba_floor(M, T, thr, args.block_size, bitgen=np.random.PCG64), R)
    row(f"floor: numba Generator(PCG64) normals, same blocks, {thr} thr", t, em)
    t = best_time(lambda: numpy_normals(M, Ts), R) * T / Ts
    row("floor: NumPy Generator normals (PCG64), 1 thread", t, em, f"[extrapolated from {Ts} steps]")
    t = best_time(lambda: numpy_normals(M, Ts, np.random.SFC64), R) * T / Ts
    row("floor: NumPy Generator normals (SFC64), 1 thread", t, em, f"[extrapolated from {Ts} steps]")
    t = best_time(lambda: numpy_tuned(M, Ts, lr, c), R) * T / Ts
    row("NumPy vectorised, tuned (in place, x*x*x)", t, em, f"[extrapolated from {Ts} steps]")
    t = best_time(lambda: numpy_natural(M, Ts, lr, c), R) * T / Ts
    row("NumPy vectorised, natural (x**3)", t, em, f"[extrapolated from {Ts} steps]")
    n_traj, Tsd = 5, min(T, 2000)
    t = best_time(lambda: sdeint_per_trajectory(n_traj, Tsd, lr, c), 1) * (M / n_traj) * (T / Tsd)
    row("sdeint.itoEuler, one trajectory per call", t, em,
        f"[extrapolated from {n_traj} trajectories x {Tsd} steps]")
    if not args.no_torch:
        try:
            import torchsde  # noqa: F401

            for dtype_name in ("float64", "float32"):
                import torch

                dtype = getattr(torch, dtype_name)
                Tt = min(T, 200)
                torchsde_run(M, 2, lr, c, dtype)
                t = best_time(lambda: torchsde_run(M, Tt, lr, c, dtype), 1) * T / Tt
                row(f"torchsde euler, CPU, {dtype_name}", t, em, f"[extrapolated from {Tt} steps]")
        except ImportError:
            print("  torchsde: not importable, skipped")

    # ---- SGD --------------------------------------------------------------------------------
    N, S = args.n_samples, args.batch_size
    fs = IsotropicNoiseFiniteSum(land, N, sigma2, seed=0)
    kws = dict(lr=lr, batch_size=S, n_steps=T, n_particles=M, theta0=-1.0, seed=0, n_threads=thr,
               block_size=args.block_size)
    t_compile, n_compiled = first_call(lambda: simulate_sgd(fs, **{**kws, "n_steps": 2, "n_particles": 8}))
    simulate_sgd(fs, replacement=True, **{**kws, "n_steps": 2, "n_particles": 8})
    print(f"\nExact minibatch SGD, N = {N}, S = {S} (sim.simulate_sgd; first call {t_compile:.2f} s with {n_compiled} "
          "numba compilations)")
    for repl in (False, True):
        t_sgd = best_time(lambda: simulate_sgd(fs, replacement=repl, **kws), R)
        label = "with replacement" if repl else "without replacement (epochs)"
        print(f"  {'sim.simulate_sgd, ' + label:<56s} {work / t_sgd:9.3g} /s {work / t_sgd.cpu:9.3g} /cpu-s   "
              f"({float(t_sgd):.2f} s wall, {t_sgd.cpu:.2f} s cpu)")
    sgd = best_time(lambda: simulate_sgd(fs, **kws), 1)
    print("  ratios below for sampling without replacement:")
    _draw_uniforms(np.empty(2), np.random.default_rng(0), 1, 1)
    sim_floor(8, 2, 1, args.block_size, kind="uniform", S=S)
    t = best_time(lambda: sim_floor(M, T, thr, args.block_size, kind="uniform", S=S), R)
    row(f"floor: sim's generator, the {S} uniforms/step alone, {thr} thr", t, sgd)
    t = best_time(lambda: numba_floor(M, T, thr, args.block_size, kind="uniform", S=S), R)
    row(f"floor: numba Generator(SFC64), {S} uniforms/step, {thr} thr", t, sgd)
    t = best_time(lambda: sim_floor(M, T, thr, args.block_size), R)
    row(f"floor: sim's generator, one normal/step, {thr} threads", t, sgd)
    t = best_time(lambda: numpy_normals(M, Ts), R) * T / Ts
    row("floor: NumPy Generator normals (PCG64), 1 thread", t, sgd, f"[extrapolated from {Ts} steps]")
    Tn = min(Ts, 2 * (N // S))
    t = best_time(lambda: numpy_sgd(M, Tn, lr, S, fs.data), R) * T / Tn
    row("NumPy vectorised minibatch SGD (permuted per epoch)", t, sgd, f"[extrapolated from {Tn} steps]")

    # ---- memory: sampling without replacement from N = 10^7 ---------------------------------
    big = IsotropicNoiseFiniteSum(land, 10_000_000, sigma2, seed=0)
    kwb = dict(lr=lr, batch_size=S, n_steps=200, n_particles=2048, theta0=-1.0, seed=0, n_threads=thr,
               block_size=args.block_size)
    t_big = best_time(lambda: simulate_sgd(big, **kwb), 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"\nSGD without replacement, N = 10^7 samples (data {big.data.nbytes / 2**20:.0f} MiB), "
          f"M = {kwb['n_particles']} x T = {kwb['n_steps']}: {kwb['n_particles'] * kwb['n_steps'] / t_big:.3g} /s; "
          f"peak resident memory of this process {peak:.2f} GiB (one table of N indices per thread)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
