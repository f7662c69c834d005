"""Simulators of SGD and its SDE (paper: "Three Factors Influencing Minima in SGD", §3, eq. 1).

* :func:`sim.sde.simulate_sde` — Euler–Maruyama ensembles of the SDE (isotropic, constant
  anisotropic or state-dependent noise; schedules; momentum; sub-stepping).
* :func:`sim.sgd.simulate_sgd` — exact minibatch SGD ensembles on finite-sum landscapes.
* :class:`sim.results.SimResult` — their common result container (save / load).

Submodules are imported lazily (``import sim`` is cheap and never imports torch).
"""
from __future__ import annotations

import importlib

__all__ = ["simulate_sde", "simulate_sgd", "SimResult"]

_LAZY = {
    "simulate_sde": ("sim.sde", "simulate_sde"),
    "simulate_sgd": ("sim.sgd", "simulate_sgd"),
    "SimResult": ("sim.results", "SimResult"),
}


def __getattr__(name):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
