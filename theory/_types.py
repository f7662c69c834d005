"""Type aliases of the public signatures of theory and sim (private)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from theory.scaling import Schedule

__all__ = ["ArrayLike", "FloatArray", "FloatOrArray", "PerStep", "Seed"]

FloatArray = NDArray[np.float64]
#: what a formula that broadcasts over its arguments returns: a float for scalars, an array otherwise
FloatOrArray = Union[float, FloatArray]
#: a per-step value: a scalar, an array of one value per step, a callable of the step index or a Schedule
PerStep = Union[ArrayLike, Callable[[Any], Any], "Schedule"]
#: a seed: a non-negative integer, a SeedSequence, or None for fresh entropy
Seed = Union[int, np.random.SeedSequence, None]
