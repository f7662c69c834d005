"""Simulators of SGD and its SDE (paper: "Three Factors Influencing Minima in SGD", §3, eq. 1).

* :func:`sim.sde.simulate_sde` — Euler–Maruyama ensembles of the SDE (noise models in
  :mod:`sim.noise`; schedules; momentum; sub-stepping).
* :func:`sim.sgd.simulate_sgd` — exact minibatch SGD ensembles on finite-sum landscapes.
* :func:`sim.svag.simulate_svag` — SVAG (variance-amplified SGD, l SVAG steps per SGD step)
  ensembles on finite-sum landscapes.
* :func:`sim.engine.run_ensemble` — the engine both run on (blocks, seeds, threads,
  divergence), with observers from :mod:`sim.observers` (``Record``, ``Histogram``, ``Basins``,
  ``FirstPassage``, ``PathMaximum``).
* :class:`sim.results.SimResult` — their common result container (save / load).
* :mod:`sim.fokker_planck`, :mod:`sim.chain` — grid solutions of the Fokker–Planck equation and
  the exact law of the discrete 1-D chain; how long a run must be to equilibrate
  (:func:`sim.chain.relaxation_steps`, ``steps_to_equilibrate``, ``check_equilibrated``).

Submodules are imported lazily (``import sim`` is cheap and never imports torch).
"""
from __future__ import annotations

import importlib

__all__ = ["simulate_sde", "simulate_sgd", "simulate_svag", "run_ensemble", "SimResult", "Record", "Histogram",
           "Basins", "FirstPassage", "PathMaximum", "Isotropic", "ConstantCovariance", "StateDependent",
           "relaxation_steps", "steps_to_equilibrate", "check_equilibrated"]

_LAZY = {
    "simulate_sde": ("sim.sde", "simulate_sde"),
    "simulate_sgd": ("sim.sgd", "simulate_sgd"),
    "simulate_svag": ("sim.svag", "simulate_svag"),
    "run_ensemble": ("sim.engine", "run_ensemble"),
    "SimResult": ("sim.results", "SimResult"),
    "Record": ("sim.observers", "Record"),
    "Histogram": ("sim.observers", "Histogram"),
    "Basins": ("sim.observers", "Basins"),
    "FirstPassage": ("sim.observers", "FirstPassage"),
    "PathMaximum": ("sim.observers", "PathMaximum"),
    "Isotropic": ("sim.noise", "Isotropic"),
    "ConstantCovariance": ("sim.noise", "ConstantCovariance"),
    "StateDependent": ("sim.noise", "StateDependent"),
    "relaxation_steps": ("sim.chain", "relaxation_steps"),
    "steps_to_equilibrate": ("sim.chain", "steps_to_equilibrate"),
    "check_equilibrated": ("sim.chain", "check_equilibrated"),
}


def __getattr__(name):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
