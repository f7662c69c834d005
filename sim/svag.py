"""SVAG ensembles: stochastic variance-amplified gradients on finite-sum landscapes (Li, Malladi &
Arora 2021, NeurIPS 34, arXiv 2102.12470, eq. 5), the simulator of :mod:`theory.svag`.

With amplification l (an integer >= 1), one SVAG step draws two independent minibatches B1, B2 of
S samples each and moves

    θ ← θ − (η/l) [r₁ g_B1(θ) + r₂ g_B2(θ)],     r₁,₂ = (1 ± √(2l − 1))/2,

so that r₁ + r₂ = 1 (the mean step is −(η/l)∇L) and r₁² + r₂² = l (the step's covariance is
(η²/l)·c·Σ₁, Σ₁ the per-sample gradient covariance, c = 1/S with replacement).  l SVAG steps cover
the time of one SGD step with the same drift and injected covariance as SGD; as l → ∞ the law
converges to the SDE's (paper eq. 1) at weak order 1 in 1/l.  l = 1 is SGD (r₁ = 1, r₂ = 0).

Time is counted in SGD steps, as everywhere in the project: ``n_steps`` = K runs l·K SVAG steps,
which the engine treats as K steps of l sub-steps each (observers see whole SGD steps at step = s,
and each SVAG step in between at fractional times, :mod:`sim.observers`).  ``lr`` and
``batch_size`` may be per-SGD-step schedules; the l SVAG steps of SGD step t use η_t/l and S_t.

Sampling: with replacement (``replacement=True``) each batch is S i.i.d. uniform indices; without
(default) each batch is S distinct samples, a fresh uniform subset per batch, independent of the
other batch and of every other step (:mod:`sim.sgd`, ``reshuffle="step"``), so c = (N − S)/(S(N − 1))
as in :func:`theory.svag.step_moments`.  SVAG has no epochs (two batches per step are not one
pass over the data).  With l = 1 the second batch has weight 0 and is not drawn: SVAG(l = 1) is
bit for bit :func:`sim.sgd.simulate_sgd` with ``replacement=True`` or ``reshuffle="step"``.

The shared part of the loss (``base`` of a finite sum, the L2 term) enters once per step with
weight r₁ + r₂ = 1.  Parallelism, seeds, divergence and observers are the engine's
(:mod:`sim.engine`); a particle diverges in the SGD step t during which one of its SVAG steps
left the finite region.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from sim.engine import run_ensemble
from sim.results import SimResult
from sim.sgd import FiniteSumMethod
from theory import _checks
from theory._numba import specialise
from theory._types import PerStep
from theory.svag import coefficients as svag_coefficients

if TYPE_CHECKING:
    from theory.landscapes.base import Landscape

__all__ = ["SVAG", "simulate_svag"]


def _svag_coefficients(t, args):
    """(η_t / l, S_t, r₁/S_t, r₂/S_t) of SGD step t."""
    batch = args[2][t]
    return args[1][t], batch, args[3] / batch, args[4] / batch


def _svag_step(th, vl, xn, vn, g, tmp, t, coefficients, args, work, pstate, lane, ra, rb, rc, rw):
    """One SVAG step: xn = th − (η/l)[shared gradient + (r₁/S) Σ_B1 ∇l_j + (r₂/S) Σ_B2 ∇l_j]; each
    batch afresh (position 0 of the Fisher–Yates table without replacement)."""
    cparams = args[0]
    n_samples = args[5]
    step, batch, w1, w2 = coefficients
    d = th.shape[0]
    SHARED_GRADIENT(th, cparams, g)  # noqa: F821
    _, ra, rb, rc, rw = ADD_BATCH(th, cparams, batch, w1, g, tmp, work, 0, n_samples, ra, rb, rc, rw)  # noqa: F821
    if AMPLIFIED:  # noqa: F821 - l > 1: the second batch has a non-zero weight
        _, ra, rb, rc, rw = ADD_BATCH(th, cparams, batch, w2, g, tmp, work, 0, n_samples,  # noqa: F821
                                      ra, rb, rc, rw)
    for k in range(d):
        xn[k] = th[k] - step * g[k]
    return ra, rb, rc, rw


def _svag_start(pstate, lane, args, work):
    pass


class SVAG(FiniteSumMethod):
    """SVAG with amplification l as an engine method (:mod:`sim.engine`): ``n_sub`` = l SVAG steps
    per SGD step (module docstring)."""

    name = "svag"

    def __init__(self, landscape: Landscape, *, lr: PerStep, batch_size: PerStep, amplification: int, n_steps: int,
                 replacement: bool = False):
        self.amplification = _checks.check_int("amplification", amplification, minimum=1)
        comp = self._setup(landscape, lr=lr, batch_size=batch_size, n_steps=n_steps, replacement=replacement,
                           reshuffle="epoch" if replacement else "step")
        self.n_sub = self.amplification
        self.r1, self.r2 = svag_coefficients(self.amplification)
        self.args = (comp.params, np.ascontiguousarray(self.lr / self.amplification), self.batch_size, self.r1,
                     self.r2, self.n_samples)
        self.step = specialise(_svag_step, inline=True, SHARED_GRADIENT=comp.shared_gradient,
                               ADD_BATCH=self.add_batch, AMPLIFIED=self.amplification > 1)
        self.start = specialise(_svag_start, inline=True)
        self.coefficients = specialise(_svag_coefficients, inline=True)

    def describe(self) -> dict:
        out = self._describe_sampling()
        out.pop("reshuffle")
        return dict(out, amplification=self.amplification, r1=self.r1, r2=self.r2)


def simulate_svag(landscape: Landscape, *, lr: PerStep, batch_size: PerStep, amplification: int, n_steps: int,
                  replacement: bool = False, **run: Any) -> SimResult:
    """Ensemble of M independent SVAG runs on a finite-sum landscape for the time of ``n_steps``
    SGD steps (``amplification`` · ``n_steps`` SVAG steps):

        θ ← θ − (η_t/l)[r₁ g_B1(θ) + r₂ g_B2(θ)],   r₁,₂ = (1 ± √(2l − 1))/2,

    B1, B2 independent minibatches of S_t samples (module docstring).  ``amplification`` l is an
    integer >= 1 (1: SGD).  ``run``: the ensemble's arguments of :func:`sim.engine.run_ensemble`
    (``n_particles``, ``theta0``, ``seed`` required; ``observers``, ``divergence_bound``,
    ``n_threads``, ``block_size``, ``progress``), as for :func:`sim.sgd.simulate_sgd`."""
    method = SVAG(landscape, lr=lr, batch_size=batch_size, amplification=amplification, n_steps=n_steps,
                  replacement=replacement)
    return run_ensemble(method, n_steps=n_steps, **run)
