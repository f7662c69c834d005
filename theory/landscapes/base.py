"""The landscape protocol and its one implementation route: plain functions, compiled by numba.

A landscape is a loss L(θ) = f(θ; params) + l2·‖θ‖² on R^dim (the L2 term is the paper's τ‖θ‖²,
footnote 1 and eq. 22, which makes the Gibbs density normalisable).  It is defined by plain
Python/NumPy functions of one point::

    value(theta, *params) -> float
    gradient(theta, *params) -> array (dim,)            (or a tuple; a float when dim = 1)
    hessian(theta, *params) -> array (dim, dim)         (optional: else central differences)

``theta`` is a float64 array of shape (dim,); ``params`` a tuple of floats and arrays passed at
every call (new parameter values never recompile anything).  A gradient or Hessian that takes a
parameter named ``out`` writes its result there instead of returning a new array: the same
function, without one allocation per call (~40 ns), which is what the built-in landscapes do.

:meth:`Landscape.from_functions` compiles the functions with ``numba.njit`` for the simulators
(:attr:`Landscape.compiled`), checks them once in plain Python (finite real results of the right
shape) and says which function numba cannot compile and why.  Everything else derives from the
functions: the vectorised ``value``/``gradient``/``hessian`` on arrays of shape (..., dim), the
local minima (from ``minima_guesses``, refined by Newton steps, each Hessian checked positive
definite), basins of attraction of gradient flow, and a box holding the Gibbs mass.  The plain
functions stay available as the reference path (:meth:`Landscape.reference`): the compiled and
the interpreted runs of the same source are compared for every registered landscape in the
tests.

Every class derived from :class:`Landscape` registers itself in :data:`REGISTRY` and provides
``example()``, a representative instance the generic tests run on.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Protocol, Sequence, runtime_checkable

import numba
import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize

from theory import _checks
from theory._numba import compile_error_line, jit
from theory.landscapes import _compiled
from theory.landscapes.basins import basin_index_1d, basin_index_flow, saddles_1d

if TYPE_CHECKING:
    from theory.landscapes._compiled import Compiled

__all__ = ["Minimum", "Landscape", "LandscapeProtocol", "Functions", "REGISTRY"]

#: Every class derived from :class:`Landscape`, by name (the generic tests run on each ``example()``).
REGISTRY: dict[str, type] = {}

# Above this dimension the plain Hessian is not run at construction (Python loops over dim² entries).
_PLAIN_HESSIAN_MAX_DIM = 50


# --------------------------------------------------------------------------------------------
# Minimum record
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Minimum:
    """A strict local minimum: location θ_A, loss L_A and (positive definite) Hessian H_A."""

    location: np.ndarray
    loss: float
    hessian: np.ndarray
    _logdet: float = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        location = np.atleast_1d(np.asarray(self.location, dtype=float))
        hessian = np.atleast_2d(np.asarray(self.hessian, dtype=float))
        _checks.check_finite("location", location)
        _checks.check_finite("loss", self.loss)
        if hessian.shape != (location.size, location.size):
            raise ValueError(
                f"hessian must have shape ({location.size}, {location.size}) to match location, "
                f"got {hessian.shape}"
            )
        hessian = 0.5 * (hessian + hessian.T)
        _checks.check_positive_definite("hessian", hessian)
        object.__setattr__(self, "location", location)
        object.__setattr__(self, "loss", float(self.loss))
        object.__setattr__(self, "hessian", hessian)
        chol = np.linalg.cholesky(hessian)
        object.__setattr__(self, "_logdet", float(2.0 * np.sum(np.log(np.diag(chol)))))

    @property
    def dim(self) -> int:
        return self.location.size

    @property
    def logdet(self) -> float:
        """log det H_A (computed from the Cholesky factor, no overflow in high dimension)."""
        return self._logdet

    @property
    def eigenvalues(self) -> np.ndarray:
        return np.linalg.eigvalsh(self.hessian)


@runtime_checkable
class LandscapeProtocol(Protocol):
    """What :mod:`theory` and :mod:`sim` use of a landscape."""

    dim: int
    compiled: Any

    def value(self, theta: ArrayLike) -> np.ndarray: ...

    def gradient(self, theta: ArrayLike) -> np.ndarray: ...

    def hessian(self, theta: ArrayLike) -> np.ndarray: ...

    def minima(self) -> list[Minimum]: ...

    def basin_index(self, theta: ArrayLike) -> np.ndarray: ...

    def bounds(self, temperature: float) -> tuple[np.ndarray, np.ndarray]: ...


class Functions(NamedTuple):
    """The plain functions a landscape is made of (``hessian`` None: central differences)."""

    value: Callable
    gradient: Callable
    hessian: Callable | None


def _takes_out(fn) -> bool:
    try:
        return "out" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _describe(x) -> str:
    arr = np.asarray(x) if not isinstance(x, (str, bytes)) else None
    if arr is None or arr.dtype == object:
        return f"{type(x).__name__} {x!r}"[:80]
    return f"{type(x).__name__} of dtype {arr.dtype} and shape {arr.shape}"


def _as_params(params, name="params") -> tuple:
    """The parameter tuple as numba will see it: floats and C-contiguous float64 arrays."""
    if not isinstance(params, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of numbers and arrays, got {_describe(params)}")
    out = []
    for k, p in enumerate(params):
        if isinstance(p, (bool, np.bool_)):
            raise TypeError(f"{name}[{k}] must be a number or a numeric array, got a bool")
        if isinstance(p, (int, float, np.integer, np.floating)):
            out.append(float(p))
            continue
        try:
            arr = np.ascontiguousarray(np.asarray(p, dtype=np.float64))
        except (TypeError, ValueError):
            raise TypeError(f"{name}[{k}] must be a number or a numeric array, got {_describe(p)}") from None
        if np.any(np.isnan(arr)):
            raise ValueError(f"{name}[{k}] contains NaN")
        arr.setflags(write=False)
        out.append(arr)
    return tuple(out)


def check_result(role: str, fn, result, shape: tuple, theta) -> np.ndarray:
    """``result`` of the user function ``fn`` (playing ``role``) at ``theta`` as a float array of
    ``shape``; a wrong shape, a non-real type or a non-finite entry is a one-line error naming
    the function."""
    name = f"{role} ({getattr(fn, '__name__', repr(fn))})"
    arr = None
    if not isinstance(result, (str, bytes)):
        try:
            arr = np.asarray(result)
        except Exception:
            arr = None
    if arr is None or arr.dtype.kind not in "fiu" or arr.dtype == bool:
        raise TypeError(f"{name} must return real numbers, got {_describe(result)} at theta = {np.round(theta, 6).tolist()}")
    if arr.shape != shape and not (arr.size == 1 and int(np.prod(shape)) == 1):
        want = "a float" if shape == () else f"shape {shape}"
        raise ValueError(f"{name} must return {want}, got shape {arr.shape} at theta = {np.round(theta, 6).tolist()}")
    arr = arr.astype(float).reshape(shape)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} returned {'NaN' if np.any(np.isnan(arr)) else 'inf'} at theta = "
                         f"{np.round(theta, 6).tolist()}; expected finite values")
    return arr


def call_plain(role, fn, theta, args, shape):
    """Run the plain (interpreted) user function once and check its result."""
    try:
        if shape != () and _takes_out(fn):
            out = np.zeros(shape) if shape else None
            fn(theta.copy(), *args, out)
            result = out
        else:
            result = fn(theta.copy(), *args)
    except Exception as exc:
        raise type(exc)(f"{role} ({getattr(fn, '__name__', fn)}) raised {type(exc).__name__} at theta = "
                        f"{np.round(theta, 6).tolist()}: {exc}") from exc
    return check_result(role, fn, result, shape, theta)


def compile_user(role, fn, theta, args, kind):
    """The numba form of ``fn`` adapted to ``f(theta, args, out)`` (``kind`` 'scalar' / 'vector' /
    'matrix'), compiled now by one call at ``theta``: a function numba cannot compile is a
    one-line TypeError naming it."""
    jitted = jit(fn, role)
    inplace = kind != "scalar" and _takes_out(fn)
    d = theta.shape[0]
    try:
        if kind == "scalar":
            jitted(theta, *args)
        elif inplace:
            jitted(theta, *args, np.zeros((d,) if kind == "vector" else (d, d)))
        else:
            jitted(theta, *args)
    except numba.core.errors.NumbaError as exc:
        raise TypeError(f"{role} ({getattr(fn, '__name__', fn)}): numba cannot compile it: {compile_error_line(exc)}") from None
    return _compiled.adapt(jitted, kind, inplace, len(args))


# --------------------------------------------------------------------------------------------
# The landscape
# --------------------------------------------------------------------------------------------
class Landscape:
    """A loss landscape defined by plain functions (module docstring); build one with
    :meth:`from_functions` or use a built-in class (each one file: its functions and a class
    that passes them to this route).

    Attributes: ``dim``, ``l2``, ``params`` (the functions' extra arguments), ``functions`` (the
    plain functions), ``compiled`` (:class:`theory.landscapes._compiled.Compiled`: the numba
    functions the simulators call, with the parameter tuple they read)."""

    dim: int
    l2: float
    params: tuple
    functions: Functions

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            REGISTRY[cls.__name__] = cls

    def __init__(self, value: Callable[..., Any], gradient: Callable[..., Any],
                 hessian: Callable[..., Any] | None = None, *, dim: int,
                 minima_guesses: ArrayLike | Callable[[], ArrayLike], params: Sequence[Any] = (), l2: float = 0.0,
                 name: str | None = None):
        self._setup(dim, l2, params, minima_guesses, name)
        self.functions = Functions(value, gradient, hessian)
        for role, fn in zip(("value", "gradient", "hessian"), self.functions):
            if fn is not None and not callable(fn):
                raise TypeError(f"{role} must be a function, got {_describe(fn)}")
        probe = self._probe_point()
        d = self.dim
        call_plain("value", value, probe, self.params, ())
        call_plain("gradient", gradient, probe, self.params, (d,))
        if hessian is not None and d <= _PLAIN_HESSIAN_MAX_DIM:
            call_plain("hessian", hessian, probe, self.params, (d, d))
        v = compile_user("value", value, probe, self.params, "scalar")
        g = compile_user("gradient", gradient, probe, self.params, "vector")
        h = compile_user("hessian", hessian, probe, self.params, "matrix") if hessian is not None else None
        fv, fg, fh, ev = _compiled.compile_plain(v, g, h, self.l2)
        self.compiled = _compiled.Compiled(fv, fg, fh, (self.l2, self.params), ev)
        self._check_parity(probe)

    @classmethod
    def from_functions(cls, value: Callable[..., Any], gradient: Callable[..., Any],
                       hessian: Callable[..., Any] | None = None, *, dim: int,
                       minima_guesses: ArrayLike | Callable[[], ArrayLike], params: Sequence[Any] = (), l2: float = 0.0,
                       name: str | None = None) -> "Landscape":
        """A landscape from plain Python/NumPy functions ``value(theta, *params)``,
        ``gradient(theta, *params)`` and optionally ``hessian(theta, *params)`` (module
        docstring): compiled with numba, checked once, its Hessian derived by central
        differences of the gradient when not given (error ≈ 4e-11·(|∂³L| + |∇L|) per entry,
        see :func:`theory.landscapes._compiled._hessian_by_differences`).

        ``minima_guesses``: starting points (k, dim) of the minimum search (required: a landscape
        without minima has no basins, no Laplace weights and no Gibbs box).  ``l2`` adds
        l2·‖θ‖²; ``name`` labels the landscape in results."""
        return Landscape(value, gradient, hessian, dim=dim, minima_guesses=minima_guesses, params=params, l2=l2,
                         name=name)

    @classmethod
    def example(cls) -> "Landscape":
        """A 2-D tilted double well written as plain functions returning arrays and tuples."""
        return cls.from_functions(
            lambda th, a: 0.25 * (th[0] ** 2 - 1.0) ** 2 + a * th[0] + 0.5 * th[1] ** 2 + 0.3 * th[0] * th[1] ** 2,
            lambda th, a: np.array([th[0] ** 3 - th[0] + a + 0.3 * th[1] ** 2, th[1] + 0.6 * th[0] * th[1]]),
            lambda th, a: ((3.0 * th[0] ** 2 - 1.0, 0.6 * th[1]), (0.6 * th[1], 1.0 + 0.6 * th[0])),
            dim=2, minima_guesses=[[-1.0, 0.0], [1.0, 0.0]], params=(0.1,), l2=0.01, name="example double well")

    # ---- construction helpers -------------------------------------------------------------
    def _setup(self, dim, l2, params, minima_guesses, name):
        self.dim = _checks.check_int("dim", dim, minimum=1)
        _checks.check_nonnegative("l2", l2)
        self.l2 = float(l2)
        self.params = _as_params(params)
        self.name = name or type(self).__name__
        if minima_guesses is None:
            raise ValueError("minima_guesses must give at least one starting point of shape (dim,) for the "
                             "minimum search; a landscape without minima has no basins or Laplace weights")
        if not callable(minima_guesses):
            guesses = np.asarray(minima_guesses, dtype=float)
            if guesses.ndim == 1 and guesses.size == self.dim:
                guesses = guesses[None, :]
            if guesses.ndim != 2 or guesses.shape[0] == 0 or guesses.shape[1] != self.dim:
                raise ValueError(f"minima_guesses must have shape (k, dim = {self.dim}) with k >= 1, got shape "
                                 f"{np.shape(minima_guesses)}")
            _checks.check_finite("minima_guesses", guesses)
            minima_guesses = guesses
        self._minima_guesses = minima_guesses
        self._minima_cache: list[Minimum] | None = None
        self._saddles: np.ndarray | None = None

    def _probe_point(self) -> np.ndarray:
        g = self._minima_guesses
        return np.array(g[0], dtype=float) if not callable(g) else np.zeros(self.dim)

    def _check_parity(self, theta):
        """The compiled value and gradient agree with the plain functions at ``theta`` (the same
        source run twice; the Hessians are compared for every registered class in the tests)."""
        ref = self.reference(theta, hessian=False)
        got = (float(self.value(theta[None])[0]), self.gradient(theta[None])[0])
        for role, a, b in zip(("value", "gradient"), got, ref):
            scale = 1.0 + float(np.max(np.abs(b)))
            if not np.all(np.abs(np.asarray(a) - np.asarray(b)) <= 1e-10 * scale):
                raise ValueError(f"{role} gives {a} compiled by numba but {b} run by Python at theta = "
                                 f"{theta.tolist()}: the function must compute the same in both")

    def _hessian_is_differenced(self) -> bool:
        return self.functions.hessian is None

    # ---- reference (interpreted) path -----------------------------------------------------------
    def reference(self, theta: ArrayLike, hessian: bool = True) -> tuple:
        """(L, ∇L, ∇²L) at one point computed by running the plain functions in Python/NumPy,
        with the L2 term (the Hessian by the same central differences when not given): the
        reference the compiled path is checked against.  ``hessian=False``: (L, ∇L)."""
        theta = np.asarray(theta, dtype=float).reshape(self.dim)
        d = self.dim
        v = float(call_plain("value", self.functions.value, theta, self.params, ())) + self.l2 * float(theta @ theta)
        g = call_plain("gradient", self.functions.gradient, theta, self.params, (d,)) + 2 * self.l2 * theta
        if not hessian:
            return v, g
        if self.functions.hessian is not None:
            h = call_plain("hessian", self.functions.hessian, theta, self.params, (d, d)) + 2 * self.l2 * np.eye(d)
        else:
            h = self._reference_differences(theta)
        return v, g, h

    def _reference_differences(self, theta):
        d = self.dim
        h = np.empty((d, d))
        for k in range(d):
            step = _compiled.FD_STEP * max(1.0, abs(theta[k]))
            up, down = theta.copy(), theta.copy()
            up[k] += step
            down[k] -= step
            h[:, k] = (self.reference_gradient(up) - self.reference_gradient(down)) / (up[k] - down[k])
        return 0.5 * (h + h.T)

    def reference_gradient(self, theta: ArrayLike) -> np.ndarray:
        return call_plain("gradient", self.functions.gradient, theta, self.params, (self.dim,)) + 2 * self.l2 * theta

    # ---- shape handling ------------------------------------------------------------------
    def _flatten(self, theta) -> tuple[np.ndarray, tuple]:
        arr = np.asarray(theta, dtype=float)
        if self.dim == 1 and (arr.ndim == 0 or arr.shape[-1] != 1):
            # 1-D landscapes accept plain arrays of coordinates as a convenience
            arr = arr[..., None]
        if arr.shape[-1] != self.dim:
            raise ValueError(f"theta must have last axis of length dim = {self.dim}, got shape {arr.shape}")
        batch = arr.shape[:-1]
        return np.ascontiguousarray(arr.reshape(-1, self.dim)), batch

    def _evaluate(self, flat, value=False, gradient=False, hessian=False):
        n, d = flat.shape
        v = np.empty(n if value else 0)
        g = np.empty((n if gradient else 0, d))
        h = np.empty((n if hessian else 0, d, d))
        self.compiled.evaluate(flat, self.compiled.params, v, g, h)
        return v, g, h

    # ---- public vectorised API -------------------------------------------------------------
    def value(self, theta: ArrayLike) -> np.ndarray:
        """Loss L(θ) (including the L2 term) for θ of shape (..., dim); returns shape (...)."""
        flat, batch = self._flatten(theta)
        v = self._evaluate(flat, value=True)[0]
        return v.reshape(batch) if batch else float(v[0])

    def gradient(self, theta: ArrayLike) -> np.ndarray:
        """∇L(θ), shape (..., dim) (for 1-D landscapes called with plain coordinates: shape (...))."""
        arr = np.asarray(theta, dtype=float)
        plain_1d = self.dim == 1 and (arr.ndim == 0 or arr.shape[-1] != 1)
        flat, batch = self._flatten(theta)
        g = self._evaluate(flat, gradient=True)[1]
        if plain_1d:
            return g[:, 0].reshape(batch) if batch else float(g[0, 0])
        return g.reshape(batch + (self.dim,))

    def hessian(self, theta: ArrayLike) -> np.ndarray:
        """∇²L(θ), shape (..., dim, dim)."""
        flat, batch = self._flatten(theta)
        h = self._evaluate(flat, hessian=True)[2]
        return h.reshape(batch + (self.dim, self.dim))

    # ---- minima ----------------------------------------------------------------------------
    def minima(self) -> list[Minimum]:
        """Local minima found from ``minima_guesses`` (trust-region minimisation polished by
        Newton steps), cached; sorted by location (lexicographically), so the order is stable
        across parameter tweaks.  A guess that ends where the Hessian is not positive definite
        is an error naming it."""
        if self._minima_cache is None:
            self._minima_cache = self._find_minima()
        return list(self._minima_cache)

    def _guesses(self) -> np.ndarray:
        g = self._minima_guesses
        return np.atleast_2d(np.asarray(g() if callable(g) else g, dtype=float))

    def _find_minima(self) -> list[Minimum]:
        found: list[np.ndarray] = []
        for k, guess in enumerate(self._guesses()):
            res = optimize.minimize(
                lambda x: float(self.value(x[None, :])[0]),
                guess,
                jac=lambda x: self.gradient(x[None, :])[0],
                hess=lambda x: self.hessian(x[None, :])[0],
                method="trust-exact",
                options={"gtol": 1e-12, "maxiter": 500},
            )
            x = res.x
            # polish with Newton steps: the minima are used as exact references
            for _ in range(20):
                g = self.gradient(x[None, :])[0]
                h = self.hessian(x[None, :])[0]
                try:
                    step = np.linalg.solve(h, g)
                except np.linalg.LinAlgError:
                    break
                x = x - step
                if np.linalg.norm(step) < 1e-15 * max(1.0, np.linalg.norm(x)):
                    break
            if not np.all(np.isfinite(x)):
                raise ValueError(f"{self.name}: the minimum search from minima_guesses[{k}] = {guess.tolist()} "
                                 "left the finite region")
            eig = np.linalg.eigvalsh(self.hessian(x[None, :])[0])
            # positive definite to more than rounding: a degenerate minimum (an eigenvalue ~0,
            # e.g. of x⁴) has no Laplace weight and no basin scale
            if eig[0] <= 1e-8 * max(1.0, abs(eig[-1])):
                raise ValueError(
                    f"{self.name}: the Hessian at the point reached from minima_guesses[{k}] = {guess.tolist()}, "
                    f"{np.round(x, 8).tolist()}, is not positive definite (smallest eigenvalue {eig[0]:.3g}): "
                    "not a strict minimum")
            scale = 1e-6 * max(1.0, float(np.max(np.abs(x))))
            if any(np.max(np.abs(x - y)) < scale for y in found):
                continue
            found.append(x)
        found.sort(key=lambda x: tuple(x))
        return [Minimum(x, float(self.value(x[None, :])[0]), self.hessian(x[None, :])[0]) for x in found]

    # ---- basins ----------------------------------------------------------------------------
    def basin_index(self, theta: ArrayLike, **kw: Any) -> np.ndarray:
        """Index (into ``minima()``) of the basin of attraction of gradient flow holding θ.

        1-D: the intervals between the local maxima (exact); d ≥ 2: the error-controlled flow
        integration of :mod:`theory.landscapes.basins`."""
        flat, batch = self._flatten(theta)
        if self.dim == 1:
            if self._saddles is None:
                self._saddles = saddles_1d(self)
            out = basin_index_1d(self._saddles, flat[:, 0])
        else:
            out = basin_index_flow(self, flat, **kw)
        return out.reshape(batch) if batch else int(out[0])

    # ---- integration box -------------------------------------------------------------------
    def bounds(self, temperature: float, *, n_sigma_loss: float = 40.0) -> tuple[np.ndarray, np.ndarray]:
        """A box (low, high) outside of which the Gibbs density exp(−L/T) is below
        exp(−n_sigma_loss) times its peak on every face (checked on a grid of each face for
        dim ≤ 3, along the axes through the minima otherwise)."""
        _checks.check_positive("temperature", temperature)
        mins = self.minima()
        locs = np.stack([m.location for m in mins])
        lmin = min(m.loss for m in mins)
        lam_min = min(float(m.eigenvalues[0]) for m in mins)
        pad = 3.0 * math.sqrt(temperature / lam_min) + 1e-3
        low = locs.min(axis=0) - pad
        high = locs.max(axis=0) + pad
        threshold = lmin + n_sigma_loss * temperature
        for _ in range(200):
            grew = False
            for axis in range(self.dim):
                for side, arr in ((0, low), (1, high)):
                    pts = self._face_points(low, high, axis, side, locs)
                    if np.min(self.value(pts)) < threshold:
                        width = high[axis] - low[axis]
                        arr[axis] += (-1 if side == 0 else 1) * 0.25 * width
                        grew = True
            if not grew:
                break
        return low, high

    def _face_points(self, low, high, axis, side, locs) -> np.ndarray:
        coord = low[axis] if side == 0 else high[axis]
        if self.dim <= 3:
            axes = [np.linspace(low[k], high[k], 41) if k != axis else np.array([coord]) for k in range(self.dim)]
            return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, self.dim)
        pts = locs.copy()
        pts[:, axis] = coord
        return pts

    @property
    def kernels(self) -> Compiled:
        """Alias of :attr:`compiled`."""
        return self.compiled

    def __repr__(self) -> str:
        return f"{self.name}(dim={self.dim}, l2={self.l2})"


REGISTRY["Landscape"] = Landscape
