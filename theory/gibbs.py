"""Gibbs-Boltzmann equilibrium of the SGD Langevin equation (paper Theorem 1, eq. 2).

With isotropic gradient covariance C = sigma2 * I, the SDE (paper eq. 1)

    dtheta = -lr * grad L dt + (lr / sqrt(batch_size)) * B dW

has the equilibrium density (paper eq. 2 / App. C eq. 17, 21)

    P(theta) = P0 * exp(-2 L(theta) / (n sigma2)),   n = lr / batch_size,

i.e. a Gibbs density exp(-L/T) at temperature T = lr * sigma2 / (2 * batch_size)
(paper eq. 16, App. B).  Everything here is computed in logs: exp(-L/T)
underflows for modest L/T, so normalisation uses log-sum-exp.

All public functions take ``lr`` (eta), ``batch_size`` (S) and ``sigma2``
(sigma^2), validate them with :mod:`theory._checks` and broadcast over numpy
arrays.  Scalars in give Python floats out.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import logsumexp

from theory import _checks
from theory._types import FloatArray, FloatOrArray

__all__ = [
    "temperature",
    "noise",
    "log_density",
    "log_partition",
    "normalized_density",
]


def _out(x: Any):
    """Return a Python float for 0-d results, the array otherwise."""
    arr = np.asarray(x, dtype=float)
    return float(arr) if arr.ndim == 0 else arr


def _validate(lr, batch_size, sigma2=None):
    _checks.check_positive("lr", lr)
    _checks.check_batch_size(batch_size)
    if sigma2 is not None:
        _checks.check_positive("sigma2", sigma2)


def _temperature_array(lr, batch_size, sigma2) -> np.ndarray:
    return np.asarray(lr, dtype=float) * np.asarray(sigma2, dtype=float) / (
        2.0 * np.asarray(batch_size, dtype=float)
    )


def temperature(lr: ArrayLike, batch_size: ArrayLike, sigma2: ArrayLike) -> FloatOrArray:
    """Gibbs temperature T = lr * sigma2 / (2 * batch_size) = n * sigma2 / 2.

    This is the drift/diffusion ratio of the rescaled Fokker-Planck equation
    (paper App. B, eq. 16); the equilibrium density is exp(-L/T) (eq. 2).
    Invariant under (lr, batch_size) -> (beta*lr, beta*batch_size).
    """
    _validate(lr, batch_size, sigma2)
    return _out(_temperature_array(lr, batch_size, sigma2))


def noise(lr: ArrayLike, batch_size: ArrayLike) -> FloatOrArray:
    """Noise level n = lr / batch_size (paper eq. 2, Theorem 1: n = eta / S)."""
    _validate(lr, batch_size)
    return _out(np.asarray(lr, dtype=float) / np.asarray(batch_size, dtype=float))


def log_density(loss: ArrayLike, lr: ArrayLike, batch_size: ArrayLike, sigma2: ArrayLike) -> FloatOrArray:
    """Unnormalised log Gibbs density: log P(theta) - log P0 = -2 L / (n sigma2) = -L/T.

    Paper eq. 2 (Theorem 1) with n = lr/batch_size.  ``loss`` may be any array
    of finite loss values; broadcasts against array-valued hyper-parameters.
    """
    _validate(lr, batch_size, sigma2)
    _checks.check_finite("loss", loss)
    return _out(-np.asarray(loss, dtype=float) / _temperature_array(lr, batch_size, sigma2))


def _log_weights(loss_values, cell_volume, lr, batch_size, sigma2):
    _validate(lr, batch_size, sigma2)
    _checks.check_finite("loss_values", loss_values)
    _checks.check_positive("cell_volume", cell_volume)
    loss = np.asarray(loss_values, dtype=float)
    if loss.size == 0:
        raise ValueError("loss_values must contain at least one grid point")
    temp = _temperature_array(lr, batch_size, sigma2)
    if temp.ndim != 0:
        raise ValueError(
            "lr, batch_size and sigma2 must be scalars for grid normalisation "
            "(loop over hyper-parameters instead)"
        )
    log_vol = np.broadcast_to(np.log(np.asarray(cell_volume, dtype=float)), loss.shape)
    l_min = float(np.min(loss))
    # shift by the minimum *before* dividing by T: -(L - L_min)/T is exact where -L/T - log Z
    # would cancel catastrophically (|L/T| ~ 1e12 loses ~4 digits)
    return -(loss - l_min) / temp, log_vol, -l_min / float(temp)


def log_partition(loss_values: ArrayLike, cell_volume: ArrayLike, lr: ArrayLike, batch_size: ArrayLike,
                  sigma2: ArrayLike) -> float:
    """log Z with Z = sum_i exp(-L_i / T) * w_i  (quadrature of paper eq. 23).

    ``loss_values``: loss on the quadrature nodes (any shape); ``cell_volume``:
    quadrature weight of each node, a scalar (regular grid: the product of the
    grid spacings, giving the Riemann sum) or an array broadcastable to
    ``loss_values`` (e.g. trapezoid/Simpson weights).  Computed with
    log-sum-exp, so it is finite even when every exp(-L_i/T) underflows.
    """
    log_p, log_vol, offset = _log_weights(loss_values, cell_volume, lr, batch_size, sigma2)
    return offset + float(logsumexp(log_p + log_vol))


def normalized_density(loss_values: ArrayLike, cell_volume: ArrayLike, lr: ArrayLike, batch_size: ArrayLike,
                       sigma2: ArrayLike) -> FloatArray:
    """Gibbs density P_i = exp(-L_i/T) / Z on quadrature nodes (paper eq. 2 with P0 = 1/Z).

    Z = sum_i exp(-L_i/T) w_i as in :func:`log_partition`, so that
    sum_i P_i * w_i = 1 exactly (up to rounding).  Computed as
    exp(-(L_i - L_min)/T - log Z') with Z' = Z exp(L_min/T): no underflow at the mode
    and no cancellation between -L_i/T and log Z however small T is.
    Returns an array of the shape of ``loss_values``.
    """
    log_p, log_vol, _ = _log_weights(loss_values, cell_volume, lr, batch_size, sigma2)
    return np.exp(log_p - logsumexp(log_p + log_vol))
