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

The noise model (:mod:`sim.noise`) gives B; blocks, seeds, threads, divergence and observers are
the engine's (:mod:`sim.engine`).  A block's particles advance together, step by step; each
draws its d normals per EM step from the block's stream, particle after particle (step-major,
particle-minor).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from numpy.typing import ArrayLike

from sim.engine import DEFAULT_BLOCK_SIZE, per_step_values, run_ensemble
from sim.noise import Isotropic, NoiseModel, StateDependent
from sim.results import SimResult
from sim.rng import normal
from theory import _checks
from theory._numba import specialise
from theory._types import PerStep, Seed

if TYPE_CHECKING:
    from sim.observers import Observer
    from theory.landscapes.base import Landscape

__all__ = ["simulate_sde", "EulerMaruyama"]


def _em_coefficients(t, args):
    """(dc, nc) = (η_t·dt, η_t·√dt·σ/√S_t) of step t."""
    return args[1][t], args[2][t]


def _em_step(th, vl, xn, vn, g, z, t, coefficients, args, work, pstate, lane, ra, rb, rc, rw):
    """One EM (sub-)step of step t: xn = th − dc ∇L(th) + nc B z (heavy ball: through vn)."""
    cparams = args[0]
    mu = args[3]
    dc, nc = coefficients
    d = th.shape[0]
    GRADIENT(th, cparams, g)  # noqa: F821
    for k in range(d):
        zz, ra, rb, rc, rw = normal(ra, rb, rc, rw)
        z[k] = zz
    NOISE(th, cparams, args[4], z)  # noqa: F821
    for k in range(d):
        if MOMENTUM:  # noqa: F821
            vn[k] = mu * vl[k] - dc * g[k] + nc * z[k]
            xn[k] = th[k] + vn[k]
        else:
            xn[k] = th[k] - dc * g[k] + nc * z[k]
    return ra, rb, rc, rw


def _em_start(pstate, lane, args, work):
    pass


class EulerMaruyama:
    """The Euler–Maruyama method of eq. 1 as an engine method (:mod:`sim.engine`).

    ``lr`` η and ``batch_size`` S: scalars or per-step schedules (arrays of length n_steps,
    callables of the step index, ``theory.scaling.Schedule``); ``noise`` a
    :class:`sim.noise.NoiseModel`; ``dt`` = 1/k; ``momentum`` μ ∈ [0, 1)."""

    name = "euler_maruyama"
    lanes = None  # the whole block advances step by step

    def __init__(self, landscape: Landscape, *, lr: PerStep, batch_size: PerStep, noise: NoiseModel, n_steps: int,
                 dt: float = 1.0, momentum: float = 0.0):
        if not isinstance(noise, NoiseModel):
            raise TypeError(f"noise must be a noise model (Isotropic, ConstantCovariance, StateDependent), got {noise!r}")
        self.landscape = landscape
        self.dim = int(landscape.dim)
        n_steps = _checks.check_int("n_steps", n_steps, minimum=1)
        self.lr = per_step_values("lr", lr, n_steps, minimum=0.0, strict=True)
        self.batch_size = per_step_values("batch_size", batch_size, n_steps, minimum=1.0, strict=False)
        self._lr_spec, self._bs_spec = lr, batch_size
        _checks.check_in_range("momentum", momentum, 0.0, 1.0, closed="left")
        self.momentum = float(momentum)
        _checks.check_positive("dt", dt)
        n_sub = int(round(1.0 / dt)) if dt <= 1.0 else 0
        if dt > 1.0 or n_sub < 1 or abs(n_sub * dt - 1.0) > 1e-9:
            raise ValueError(f"dt must be 1/k for an integer k >= 1 (sub-steps per SGD step), got {dt!r}")
        self.dt, self.n_sub = float(dt), n_sub
        self.noise = noise
        noise_kernel = noise.kernel(landscape)
        # the kernels index per SGD step; sub-steps reuse the step's values
        dc = np.ascontiguousarray(self.lr * self.dt)
        nc = np.ascontiguousarray(self.lr * math.sqrt(self.dt) / np.sqrt(self.batch_size) * noise.scale)
        self.args = (landscape.compiled.params, dc, nc, self.momentum, noise.args)
        self.step = specialise(_em_step, inline=True, GRADIENT=landscape.compiled.gradient, NOISE=noise_kernel,
                               MOMENTUM=self.momentum > 0)
        self.start = specialise(_em_start, inline=True)
        self.coefficients = specialise(_em_coefficients, inline=True)

    def workspace(self) -> tuple:
        return ()

    def start_block(self, workspace: Any) -> None:
        pass

    def check_start(self, theta0: np.ndarray) -> None:
        _check_loss_at(self.landscape, theta0)
        cov = getattr(self.landscape.compiled, "noise_cov", None)
        if cov is not None and isinstance(self.noise, StateDependent):
            c = np.empty((self.dim, self.dim))
            cov(np.ascontiguousarray(theta0[0]), self.landscape.compiled.params, c)
            if not np.all(np.isfinite(c)):
                raise ValueError(f"noise_cov of landscape {self.landscape!r} is not finite at theta0")

    def describe(self) -> dict:
        scalar = lambda spec, vals: float(vals[0]) if np.ndim(spec) == 0 and not callable(spec) else None  # noqa: E731
        return dict(method=self.name, landscape=repr(self.landscape), lr=scalar(self._lr_spec, self.lr),
                    batch_size=scalar(self._bs_spec, self.batch_size),
                    lr_range=[float(self.lr.min()), float(self.lr.max())],
                    batch_size_range=[float(self.batch_size.min()), float(self.batch_size.max())],
                    noise=self.noise.describe(), dt=self.dt, momentum=self.momentum)


def _check_loss_at(landscape, theta0: np.ndarray):
    """The loss and its gradient are finite at every distinct initial state (a user error
    otherwise, reported before the run)."""
    comp = landscape.compiled
    rows = np.unique(theta0, axis=0) if theta0.shape[0] > 1 else theta0
    g = np.empty(theta0.shape[1])
    for r in rows[:10000]:
        r = np.ascontiguousarray(r)
        val = comp.value(r, comp.params)
        comp.gradient(r, comp.params, g)
        if not (np.isfinite(val) and np.all(np.isfinite(g))):
            raise ValueError(
                f"loss of landscape {landscape!r} is not finite at theta0 = {r.tolist()} "
                f"(value {val!r}, gradient {g.tolist()}); the user's loss produced NaN/inf"
            )


def simulate_sde(
    landscape: Landscape,
    *,
    lr: PerStep,
    batch_size: PerStep,
    n_steps: int,
    n_particles: int,
    theta0: ArrayLike,
    seed: Seed,
    sigma2: float | None = None,
    noise: NoiseModel | None = None,
    dt: float = 1.0,
    momentum: float = 0.0,
    observers: Sequence[Observer] = (),
    divergence_bound: float = 1e6,
    n_threads: int | None = None,
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
    lr, batch_size : η and S: scalars or per-step schedules (arrays of length ``n_steps``,
        callables of the step index, ``theory.scaling.Schedule``).
    n_steps : number of SGD steps (EM steps = n_steps / dt).
    n_particles : ensemble size M.
    theta0 : initial state, shape (d,) (or scalar for d = 1) or (M, d).
    seed : int or SeedSequence (None draws fresh entropy, recorded in ``params['seed']``).
    sigma2, noise : the gradient-noise covariance: ``sigma2`` for C = σ²I, or a noise model
        (:mod:`sim.noise`: ``Isotropic``, ``ConstantCovariance``, ``StateDependent``); give one
        (neither: the landscape's own ``sigma2``, e.g. IsotropicNoiseFiniteSum).
    dt : EM step in SGD steps, 0 < dt ≤ 1 with 1/dt an integer.
    momentum : heavy-ball μ ∈ [0, 1).
    observers : list of :mod:`sim.observers` (``Record``, ``Histogram``, ``Basins``, ``FirstPassage``).
    divergence_bound, n_threads, block_size, progress : see :func:`sim.engine.run_ensemble`.
    """
    if sigma2 is not None and noise is not None:
        raise ValueError("give only one of sigma2 and noise")
    if noise is None:
        if sigma2 is None:
            sigma2 = getattr(landscape, "sigma2", None)
            if sigma2 is None:
                raise ValueError("sigma2 is required (or noise=ConstantCovariance(...) / StateDependent())")
        noise = Isotropic(sigma2)
    method = EulerMaruyama(landscape, lr=lr, batch_size=batch_size, noise=noise, n_steps=n_steps, dt=dt,
                           momentum=momentum)
    return run_ensemble(method, theta0=theta0, n_steps=n_steps, n_particles=n_particles, seed=seed,
                        observers=observers, divergence_bound=divergence_bound, n_threads=n_threads,
                        block_size=block_size, progress=progress)
