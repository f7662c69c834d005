"""The checks of the validation suite, one module per claim family.

* ``equilibrium``: ``gibbs`` (eq. 2), ``anisotropic_noise`` (App. E);
* ``minima``: ``minima_probabilities`` (eq. 3), ``noise_threshold`` (eq. 4);
* ``scaling``: ``only_ratio_matters``, ``rescaled_time``, ``schedules`` (§3.2, §4.2, App. B, F.4);
* ``dynamics``: ``breaking_point`` (§4.4), ``momentum`` (App. E), ``escape_times`` (Kramers);
* ``geometry``: ``noise_alignment``, ``escape_directions``, ``cyclical_lr`` (Wang & Wu 2023).

Every module here whose name does not start with an underscore is imported by :func:`load`,
and every :class:`validation.core.Check` subclass it defines registers itself: a new check is a
new file (or a new class in a family's file), found by the command line and by the tests.
"""
from __future__ import annotations

import importlib
import pkgutil

from validation.core import REGISTRY, Check

__all__ = ["load"]


def load() -> dict[str, type[Check]]:
    """Import every check module of this package; return the registry in report order."""
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    return dict(sorted(REGISTRY.items(), key=lambda kv: (kv[1].order, kv[0])))
