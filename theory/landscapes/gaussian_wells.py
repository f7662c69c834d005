"""Gaussian wells: 1-D, 2-D and d-D multi-well landscapes with chosen depths and Hessians.

    L(θ) = offset − Σ_k D_k exp(−½(θ − m_k)ᵀP_k(θ − m_k)) + τ‖θ‖².

Each well k has depth D_k below ``offset`` and, when isolated, Hessian D_k P_k + 2τI at its
centre; overlapping tails shift both slightly, which is why the minima are always found
numerically (and why :meth:`GaussianWells.from_targets` corrects the parameters iteratively).
The level ``offset`` is the plateau between well-separated wells, so barrier heights are
``offset − L_k`` (to leading order); the L2 term confines the density far away.
"""
from __future__ import annotations

import math

import numpy as np
from numba.extending import register_jitable
from numpy.typing import ArrayLike

from theory import _checks
from theory.landscapes.base import Landscape

__all__ = ["GaussianWells", "double_well_1d", "wells_2d", "multi_well"]


@register_jitable(inline="always")
def _precision_times(theta, centers, precisions, k, i):
    """(P_k (θ − m_k))_i."""
    s = 0.0
    for j in range(theta.shape[0]):
        s += precisions[k, i, j] * (theta[j] - centers[k, j])
    return s


@register_jitable(inline="always")
def _weight(theta, centers, depths, precisions, k):
    """w_k = D_k exp(−½ (θ − m_k)ᵀP_k(θ − m_k))."""
    q = 0.0
    for i in range(theta.shape[0]):
        q += (theta[i] - centers[k, i]) * _precision_times(theta, centers, precisions, k, i)
    return depths[k] * math.exp(-0.5 * q)


def value(theta, centers, depths, precisions, offset):
    v = offset
    for k in range(depths.shape[0]):
        v -= _weight(theta, centers, depths, precisions, k)
    return v


def gradient(theta, centers, depths, precisions, offset, out):
    """Σ_k w_k P_k (θ − m_k) (P_k (θ − m_k) computed twice: no scratch array, no allocation)."""
    for i in range(theta.shape[0]):
        out[i] = 0.0
    for k in range(depths.shape[0]):
        w = _weight(theta, centers, depths, precisions, k)
        for i in range(theta.shape[0]):
            out[i] += w * _precision_times(theta, centers, precisions, k, i)
    return out


def hessian(theta, centers, depths, precisions, offset, out):
    """Σ_k w_k (P_k − P_k y_k y_kᵀ P_k), y_k = θ − m_k."""
    d = theta.shape[0]
    py = np.empty(d)
    for i in range(d):
        for j in range(d):
            out[i, j] = 0.0
    for k in range(depths.shape[0]):
        w = _weight(theta, centers, depths, precisions, k)
        for i in range(d):
            py[i] = _precision_times(theta, centers, precisions, k, i)
        for i in range(d):
            for j in range(d):
                out[i, j] += w * (precisions[k, i, j] - py[i] * py[j])
    return out


_FUNCTIONS = (value, gradient, hessian)


class GaussianWells(Landscape):
    """L(θ) = offset − Σ_k D_k exp(−½(θ − m_k)ᵀP_k(θ − m_k)) + τ‖θ‖² (module docstring)."""

    def __init__(self, centers: ArrayLike, depths: ArrayLike, precisions: ArrayLike, offset: float = 0.0,
                 l2: float = 0.0):
        centers = np.atleast_2d(np.asarray(centers, dtype=float))
        K, d = centers.shape
        depths = np.asarray(depths, dtype=float).reshape(K)
        _checks.check_positive("depths", depths)
        precisions = np.asarray(precisions, dtype=float)
        if precisions.shape == (K, d):
            precisions = np.stack([np.diag(p) for p in precisions])
        if precisions.shape != (K, d, d):
            raise ValueError(f"precisions must have shape ({K}, {d}, {d}) or ({K}, {d}), got {precisions.shape}")
        for k in range(K):
            _checks.check_positive_definite(f"precisions[{k}]", precisions[k])
        _checks.check_finite("centers", centers)
        _checks.check_finite("offset", offset)
        self.centers, self.depths, self.precisions, self.offset = centers, depths, precisions, float(offset)
        super().__init__(*_FUNCTIONS, dim=d, params=(centers, depths, precisions, self.offset), l2=l2,
                         minima_guesses=centers)

    @classmethod
    def example(cls) -> GaussianWells:
        return wells_2d()

    @property
    def n_wells(self) -> int:
        return self.centers.shape[0]

    @classmethod
    def from_targets(
        cls,
        locations: ArrayLike,
        losses: ArrayLike,
        hessians: ArrayLike,
        *,
        offset: float,
        l2: float = 0.0,
        n_iter: int = 50,
        rtol: float = 1e-10,
    ) -> "GaussianWells":
        """Wells whose numerically found minima have the given losses and Hessians (to ``rtol``).

        Starts from the isolated-well values D_k = offset − L_k, P_k = (H_k − 2τI)/D_k and corrects
        depths, precisions and centres by the measured mismatch until it is below ``rtol``.
        Requires every target loss below ``offset`` and every H_k − 2τI positive definite."""
        locations = np.atleast_2d(np.asarray(locations, dtype=float))
        K, d = locations.shape
        losses = np.asarray(losses, dtype=float).reshape(K)
        hessians = np.asarray(hessians, dtype=float)
        if hessians.shape == (K, d):
            hessians = np.stack([np.diag(h) for h in hessians])
        if hessians.shape != (K, d, d):
            raise ValueError(f"hessians must have shape ({K}, {d}, {d}) or ({K}, {d}), got {hessians.shape}")
        if np.any(losses >= offset):
            raise ValueError(f"losses must all lie below offset = {offset} (the plateau between wells), got {losses}")
        for k in range(K):
            _checks.check_positive_definite(f"hessians[{k}] - 2*l2*I", hessians[k] - 2 * l2 * np.eye(d))
        depths = offset - losses
        precisions = (hessians - 2 * l2 * np.eye(d)) / depths[:, None, None]
        centers = locations.copy()
        land = cls(centers, depths, precisions, offset, l2)
        for _ in range(n_iter):
            mins = land.minima()
            if len(mins) != K:
                raise ValueError(
                    f"wells overlap too much: found {len(mins)} minima instead of {K}; "
                    "increase the separation or the curvatures"
                )
            # match found minima to wells by proximity
            found = np.stack([m.location for m in mins])
            order = [int(np.argmin(np.sum((found - c) ** 2, axis=1))) for c in locations]
            err_l = np.array([mins[o].loss for o in order]) - losses
            err_h = np.stack([mins[o].hessian for o in order]) - hessians
            err_x = found[order] - locations
            scale = max(1.0, float(np.max(np.abs(hessians))))
            if np.max(np.abs(err_l)) < rtol * max(1.0, np.max(np.abs(losses))) and np.max(np.abs(err_h)) < rtol * scale \
                    and np.max(np.abs(err_x)) < rtol * max(1.0, np.max(np.abs(locations))):
                break
            depths = depths + err_l
            precisions = precisions - err_h / depths[:, None, None]
            precisions = 0.5 * (precisions + np.transpose(precisions, (0, 2, 1)))
            centers = centers - err_x
            land = cls(centers, depths, precisions, offset, l2)
        else:
            raise RuntimeError("GaussianWells.from_targets did not converge; wells overlap too much")
        return land


def double_well_1d(
    loss_a: float = 0.0,
    curvature_a: float = 1.0,
    loss_b: float = 0.2,
    curvature_b: float = 4.0,
    *,
    separation: float = 3.0,
    barrier: float = 1.0,
    l2: float = 0.05,
) -> GaussianWells:
    """1-D asymmetric double well: minimum A at −separation/2 with loss ``loss_a`` and curvature
    ``curvature_a``, minimum B at +separation/2 likewise; the plateau between them at ``barrier``."""
    return GaussianWells.from_targets(
        [[-separation / 2], [separation / 2]],
        [loss_a, loss_b],
        [[[curvature_a]], [[curvature_b]]],
        offset=barrier,
        l2=l2,
    )


def wells_2d(
    locations: ArrayLike = ((-1.5, 0.0), (1.5, 0.0)),
    losses: ArrayLike = (0.0, 0.1),
    hessians: ArrayLike = (((1.0, 0.3), (0.3, 0.5)), ((4.0, 0.0), (0.0, 3.0))),
    *,
    barrier: float = 1.0,
    l2: float = 0.05,
) -> GaussianWells:
    """2-D landscape with two or more minima of chosen depth and (anisotropic) Hessian."""
    return GaussianWells.from_targets(locations, losses, hessians, offset=barrier, l2=l2)


def multi_well(
    dim: int = 10,
    n_wells: int = 3,
    *,
    losses: ArrayLike | None = None,
    curvatures: ArrayLike | None = None,
    spacing: float = 3.0,
    barrier: float = 1.0,
    l2: float = 0.01,
    seed: int = 0,
) -> GaussianWells:
    """d-dimensional multi-well landscape (d up to ~20): well k sits at spacing·k·e₁ (shifted to be
    centred) and has diagonal Hessian ``curvatures[k]`` (one value per direction), so det H_k is set
    per direction.  Defaults draw curvatures log-uniformly in [0.5, 4] from ``seed``."""
    dim = _checks.check_int("dim", dim, minimum=1)
    n_wells = _checks.check_int("n_wells", n_wells, minimum=1)
    rng = np.random.default_rng(seed)
    if losses is None:
        losses = np.linspace(0.0, 0.2, n_wells)
    if curvatures is None:
        curvatures = np.exp(rng.uniform(np.log(0.5), np.log(4.0), size=(n_wells, dim)))
    curvatures = np.asarray(curvatures, dtype=float).reshape(n_wells, dim)
    locations = np.zeros((n_wells, dim))
    locations[:, 0] = spacing * (np.arange(n_wells) - (n_wells - 1) / 2)
    return GaussianWells.from_targets(locations, losses, curvatures, offset=barrier, l2=l2)


