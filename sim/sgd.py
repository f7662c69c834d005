"""Exact minibatch SGD ensembles on finite-sum landscapes L = (1/N) Σ_i l_i (the object the
paper is about; :mod:`sim.sde` is its SDE approximation, eq. 1).

Each particle runs its own SGD:

    θ ← θ − η_t g_B(θ),     g_B = (1/S_t) Σ_{i∈B} ∇l_i(θ)          (heavy ball: v ← μv − η_t g_B; θ ← θ + v)

with the minibatch B of S_t samples drawn

* without replacement (default): per particle an independent random permutation of the N
  samples is consumed S_t at a time (an incremental Fisher–Yates shuffle, which has exactly
  the law of a fresh uniform permutation at every epoch start); when fewer than S_t samples
  remain in the epoch, a new epoch starts with a fresh permutation (the N mod S left-over samples
  are skipped in that epoch, as with ``drop_last``).  The per-step gradient noise then has
  covariance C·(1/S − 1/N)·N/(N − 1) (:func:`theory.discrete.finite_data_noise_factor`),
  and successive steps within an epoch are (weakly, O(1/N)) negatively correlated;
* with replacement (``replacement=True``): S_t i.i.d. uniform indices, noise covariance C/S.

Parallelism / determinism as :mod:`sim.sde` (blocks of particles with their own
``SeedSequence.spawn`` generators, nogil kernels in a thread pool; bit-identical results for any
thread count), except that inside a block the particle loop is the outer one (each particle's
permutation row of N indices stays in L1 cache for all its steps); the block's random stream is
consumed particle by particle within each recording segment.  Random indices are
``floor(u·span)`` of 53-bit uniforms (bias < span·2⁻⁵³, see :mod:`sim._kernels`).
"""
from __future__ import annotations

import numba
import numpy as np

from sim import _kernels
from sim.results import SimResult
from sim.sde import (
    DEFAULT_BLOCK_SIZE,
    _batch_values,
    _check_loss_at,
    _every,
    _first_passage_spec,
    _histogram_spec,
    _lr_values,
    _make_result,
    _run_blocks,
    _seed_sequence,
    _theta0,
)
from theory import _checks

__all__ = ["simulate_sgd"]


def simulate_sgd(
    landscape,
    *,
    lr=None,
    batch_size=None,
    n_steps,
    n_particles,
    theta0,
    seed,
    replacement: bool = False,
    momentum: float = 0.0,
    lr_schedule=None,
    batch_schedule=None,
    record_every=None,
    histogram=None,
    basin_every=None,
    first_passage=None,
    divergence_bound: float = 1e6,
    n_threads=None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    progress: bool = False,
) -> SimResult:
    """Ensemble of M independent exact minibatch-SGD runs on a finite-sum landscape.

    θ ← θ − η_t (1/S_t) Σ_{i∈B_t} ∇l_i(θ)  (heavy ball: v ← μv − η_t g_B, θ ← θ + v), B_t drawn
    without replacement within an epoch (default) or with replacement; see the module docstring.
    Arguments as :func:`sim.sde.simulate_sde` (no noise options: the noise is the data's).
    ``batch_size`` (or every ``batch_schedule`` value) must be an integer in [1, N].
    """
    if not (hasattr(landscape, "n_samples") and hasattr(landscape, "data")) or getattr(
        landscape.kernels, "batch_grad", None
    ) is None:
        raise ValueError(
            f"landscape must be a finite-sum landscape with a batch_grad kernel "
            f"(e.g. IsotropicNoiseFiniteSum, LeastSquares), got {type(landscape).__name__}"
        )
    n_steps = _checks.check_int("n_steps", n_steps, minimum=1)
    n_particles = _checks.check_int("n_particles", n_particles, minimum=1)
    block_size = _checks.check_int("block_size", block_size, minimum=1)
    N = int(landscape.n_samples)
    d = int(landscape.dim)
    x0 = _theta0(theta0, n_particles, d)
    seed_seq, seed_rec = _seed_sequence(seed)
    lr_vals = _lr_values(lr, lr_schedule, n_steps)
    bs_vals = _batch_values(batch_size, batch_schedule, n_steps, N, integer=True)
    bs_int = np.ascontiguousarray(bs_vals.astype(np.int64))
    _checks.check_in_range("momentum", momentum, 0.0, 1.0, closed="left")
    momentum = float(momentum)
    _checks.check_positive("divergence_bound", divergence_bound, allow_inf=True)
    replacement = bool(replacement)
    data = np.ascontiguousarray(landscape.data, dtype=np.float64)
    kern = landscape.kernels
    _check_loss_at(landscape, x0, data=data, full_batch=True)

    hist = _histogram_spec(histogram, d, n_steps)
    fp = _first_passage_spec(first_passage, d, landscape)
    record_steps = _every("record_every", record_every, n_steps)
    basin_steps = _every("basin_every", basin_every, n_steps)
    params_arr = np.ascontiguousarray(landscape.params, dtype=np.float64)
    lr_arr = np.ascontiguousarray(lr_vals)
    bound = float(divergence_bound)
    perm_dtype = np.int16 if N <= np.iinfo(np.int16).max else np.int32
    h, f = hist, fp

    def kernel_for(inline):
        adv = _kernels.sgd_kernel(kern.batch_grad, inline, replacement, momentum > 0)
        # compile once here (not racing in the worker threads) on a 1-particle, 0-step block
        perm0 = np.zeros((1, N), dtype=perm_dtype)
        adv(x0[:1].copy(), np.zeros((1, d)), params_arr, data, 0, 0, lr_arr, bs_int, momentum, replacement, perm0,
            np.zeros(1, dtype=np.int64), np.zeros(4, dtype=np.uint64), bound, np.full(1, -1, dtype=np.int64),
            h["hist_mode"], h["burn"], h["every"], h["hd0"], h["hd1"], h["e0"], h["e1"], h["uni0"], h["uni1"],
            h["inv0"], h["inv1"], np.zeros(h["shape"], dtype=np.int64), np.zeros(1, dtype=np.int64),
            np.zeros(d + d * d), f["fp_on"], f["fp_target"], f["fp_r2"], np.full(1, np.inf))
        return adv

    try:
        advance = kernel_for(True)
    except numba.core.errors.NumbaError:  # the landscape's kernel cannot be inlined: call it
        advance = kernel_for(False)

    def init_block(nb, rng):
        if replacement:
            return (np.zeros((1, 1), dtype=perm_dtype), np.zeros(1, dtype=np.int64))
        perm = np.tile(np.arange(N, dtype=perm_dtype), (nb, 1))  # writable even when nb == 1
        pos = np.full(nb, N, dtype=np.int64)  # forces a new epoch at the first step
        return (perm, pos)

    def call(x, v, rng, t0, t1, div, hist_b, hist_out_b, hist_mom_b, fpt, extra):
        perm, pos = extra
        advance(x, v, params_arr, data, t0, t1, lr_arr, bs_int, momentum, replacement, perm, pos, rng, bound,
                div, h["hist_mode"], h["burn"], h["every"], h["hd0"], h["hd1"], h["e0"], h["e1"],
                h["uni0"], h["uni1"], h["inv0"], h["inv1"], hist_b, hist_out_b, hist_mom_b,
                f["fp_on"], f["fp_target"], f["fp_r2"], fpt)

    out = _run_blocks(theta0=x0, n_steps=n_steps, seed_seq=seed_seq, block_size=block_size,
                      n_threads=n_threads, progress=progress, momentum=momentum > 0, call=call,
                      init_block=init_block, record_steps=record_steps, basin_steps=basin_steps,
                      landscape=landscape, hist=hist, fp=fp, desc="simulate_sgd")
    params = dict(
        method="minibatch_sgd",
        landscape=repr(landscape),
        n_samples=N,
        replacement=replacement,
        lr=None if lr_schedule is not None else float(lr_vals[0]),
        batch_size=None if batch_schedule is not None else int(bs_int[0]),
        lr_schedule=lr_schedule is not None,
        batch_schedule=batch_schedule is not None,
        lr_range=[float(lr_vals.min()), float(lr_vals.max())],
        batch_size_range=[int(bs_int.min()), int(bs_int.max())],
        n_steps=n_steps,
        n_particles=n_particles,
        dim=d,
        seed=seed_rec,
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
