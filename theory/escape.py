"""Escape times between minima: exact 1-D mean first-passage times, Kramers' law and its
first-order correction, Eyring–Kramers rates in 2-D.

Time is in units of t_η = η·t (App. B: rescaled time), for the SDE dθ = −∇L dt_η + √(2T) dW with
temperature T = ησ²/(2S) (paper eq. 2); divide by η for SGD steps.

* :func:`exact_mfpt_1d` — the exact MFPT integral (Gardiner, *Handbook of Stochastic Methods*,
  §5.2.7): τ(x) = (1/T) ∫_x^b e^{L(y)/T} ∫_low^y e^{−L(z)/T} dz dy, reflecting at ``low``.
* :func:`kramers_mfpt_1d` — its Laplace (small-T) limit τ_K = 2π/√(L''(a)|L''(s)|)·e^{ΔL/T}
  (Kramers 1940), optionally with the first correction τ_K·(1 + (c_a + c_s)·T): c_a is the
  next Laplace term of the inner integral around the minimum a and c_s that of the outer one
  around the saddle s (see :func:`theory.minima.laplace_correction_1d`).
* :func:`find_saddle_2d`, :func:`eyring_kramers_relaxation` — the index-1 saddle between two
  minima of a 2-D landscape and the relaxation time 1/(k_AB + k_BA) of the Eyring–Kramers law
  k_XY = |λ_s|/(2π)·√(det H_X/|det H_s|)·e^{−(L_s − L_X)/T} (Berglund, *Kramers' law: validity,
  derivations and generalisations*, Markov Process. Relat. Fields 19 (2013), eq. 1.7).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike
from scipy import integrate, optimize

from theory import _checks
from theory.minima import derivatives_1d, laplace_correction_1d

if TYPE_CHECKING:
    from theory.landscapes.base import Landscape

__all__ = ["exact_mfpt_1d", "kramers_mfpt_1d", "find_saddle_2d", "eyring_kramers_relaxation"]


def exact_mfpt_1d(landscape: Landscape, x_start: float, x_target: float, temperature: float, low: float,
                  n_nodes: int = 200001) -> float:
    """Exact MFPT of dθ = −L'dt_η + √(2T)dW from ``x_start`` to ``x_target`` > x_start (reflecting
    at ``low``), in units of t_η:

        τ = (1/T) ∫_{x_start}^{x_target} e^{L(y)/T} ∫_{low}^{y} e^{−L(z)/T} dz dy

    by the trapezoid rule on ``n_nodes`` nodes (error O(h²)), exponents shifted by min L."""
    _checks.check_positive("temperature", temperature)
    if not low < x_start < x_target:
        raise ValueError(f"need low < x_start < x_target, got {low}, {x_start}, {x_target}")
    z = np.linspace(low, x_target, n_nodes)
    lz = landscape.value(z[:, None])
    lref = float(lz.min())
    inner = integrate.cumulative_trapezoid(np.exp(-(lz - lref) / temperature), z, initial=0.0)
    mask = z >= x_start
    outer = np.exp((lz[mask] - lref) / temperature) * inner[mask]
    return float(np.trapezoid(outer, z[mask]) / temperature)


def kramers_mfpt_1d(landscape: Landscape, i_from: int, saddle: float, temperature: float, prefactor: bool = True,
                    first_order: bool = False) -> float:
    """Kramers escape time 1/k from minimum ``i_from`` over the barrier at ``saddle`` (units of t_η):

        τ_K = 2π/√(L''(a)|L''(s)|) · e^{ΔL/T},   ΔL = L(s) − L(a)

    (``prefactor=False``: e^{ΔL/T} alone, a wrong prediction).  ``first_order``: τ_K·(1 + c·T) with
    c = c_a + c_s, c_a = 5L'''(a)²/(24L''(a)³) − L''''(a)/(8L''(a)²) (the inner integral over the
    well) and c_s = 5L'''(s)²/(24|L''(s)|³) + L''''(s)/(8L''(s)²) (the outer integral over the
    barrier top, where e^{+L/T} peaks): the leading correction of the Laplace expansion of
    :func:`exact_mfpt_1d`, so τ_exact/τ_K − 1 = c·T + O(T²)."""
    _checks.check_positive("temperature", temperature)
    m = landscape.minima()[i_from]
    a = float(m.location[0])
    la = float(m.hessian[0, 0])
    ls, l3s, l4s = derivatives_1d(landscape, saddle)
    dl = float(landscape.value(np.array([[saddle]]))[0]) - m.loss
    pre = math.sqrt(la * abs(ls)) / (2 * math.pi) if prefactor else 1.0
    tau = 1.0 / (pre * math.exp(-dl / temperature))
    if first_order:
        c_a = laplace_correction_1d(*derivatives_1d(landscape, a))
        c_s = laplace_correction_1d(-ls, -l3s, -l4s)  # e^{+L/T} = e^{-(-L)/T}: Laplace on -L
        tau *= 1.0 + (c_a + c_s) * temperature
    return tau


def find_saddle_2d(landscape: Landscape) -> np.ndarray:
    """Index-1 saddle between the first two minima: minimise |∇L|² from points on the segment
    joining them; the point kept has Hessian eigenvalues of opposite signs."""
    mins = landscape.minima()
    a, b = mins[0].location, mins[1].location
    best = None
    for s in np.linspace(0.3, 0.7, 5):
        x0 = a + s * (b - a)
        res = optimize.minimize(lambda x: float(np.sum(landscape.gradient(x[None, :])[0] ** 2)), x0,
                                method="BFGS", options={"gtol": 1e-14})
        ev = np.linalg.eigvalsh(landscape.hessian(res.x[None, :])[0])
        if ev[0] < 0 < ev[1] and (best is None or res.fun < best[1]):
            best = (res.x, res.fun)
    if best is None:
        raise RuntimeError("no index-1 saddle found between the two minima")
    return best[0]


def eyring_kramers_relaxation(landscape: Landscape, temperature: float, saddle: ArrayLike) -> float:
    """1/(k_AB + k_BA) in t_η units, k_XY = |λ_s|/(2π) √(det H_X/|det H_s|) e^{−(L_s − L_X)/T}."""
    _checks.check_positive("temperature", temperature)
    hs = landscape.hessian(np.asarray(saddle)[None, :])[0]
    ev = np.linalg.eigvalsh(hs)
    ls = float(landscape.value(np.asarray(saddle)[None, :])[0])
    rate = 0.0
    for m in landscape.minima()[:2]:
        rate += abs(ev[0]) / (2 * math.pi) * math.sqrt(np.linalg.det(m.hessian) / abs(np.prod(ev))) * math.exp(
            -(ls - m.loss) / temperature)
    return 1.0 / rate
