"""Synthetic loss landscapes: one small file per loss, used by theory, sim and validation.

Every landscape is written once, as plain Python/NumPy functions of one point, and goes through
one route (:mod:`theory.landscapes.base`): :meth:`Landscape.from_functions` compiles the
functions with numba for the simulators and derives everything else (vectorised value,
gradient and Hessian, minima, basins, the Gibbs box).  Finite sums L = (1/N) Σ l_j, for exact
minibatch SGD, come from per-sample functions (:mod:`theory.landscapes.finite_sum`).

Built-ins (each a file): :class:`Quadratic`, :class:`QuarticDoubleWell`, :class:`GaussianWells`
(:func:`double_well_1d`, :func:`wells_2d`, :func:`multi_well`), :class:`LeastSquares`,
:class:`IsotropicNoiseFiniteSum`, :class:`ConstantNoiseFiniteSum`, :class:`SharpFlatValley`,
:class:`InterpolatingQuadratics`.
Every class registers itself in :data:`REGISTRY` (the generic tests run on each ``example()``).
"""
from theory.landscapes.base import REGISTRY, Functions, Landscape, LandscapeProtocol, Minimum
from theory.landscapes._compiled import Compiled
from theory.landscapes.finite_sum import ConstantNoiseFiniteSum, FiniteSumLandscape, IsotropicNoiseFiniteSum
from theory.landscapes.gaussian_wells import GaussianWells, double_well_1d, multi_well, wells_2d
from theory.landscapes.interpolating import InterpolatingQuadratics
from theory.landscapes.least_squares import LeastSquares
from theory.landscapes.quadratic import Quadratic
from theory.landscapes.quartic import QuarticDoubleWell
from theory.landscapes.sharp_flat_valley import SharpFlatValley

__all__ = [
    "Minimum",
    "Landscape",
    "LandscapeProtocol",
    "Functions",
    "Compiled",
    "REGISTRY",
    "Quadratic",
    "QuarticDoubleWell",
    "GaussianWells",
    "double_well_1d",
    "wells_2d",
    "multi_well",
    "FiniteSumLandscape",
    "IsotropicNoiseFiniteSum",
    "ConstantNoiseFiniteSum",
    "LeastSquares",
    "SharpFlatValley",
    "InterpolatingQuadratics",
]
