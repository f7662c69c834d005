"""The validation framework: checks, their comparisons, the registry.

A *check* tests one claim of the paper by lining up at least two independent computations of
the same quantity (analytic formula, Fokker–Planck grid, Euler–Maruyama ensemble, exact minibatch
SGD, the exact law of the discrete chain). It is a subclass of :class:`Check` in one file under
``validation/checks/`` and has three parts:

* ``compute(ctx) -> dict``: every number, simulated or predicted, as named arrays and scalars
  (saved as ``checks/<name>.npz``); the slow part;
* ``compare(ctx, data)``: the grading, from ``data`` only: :meth:`Context.compare` per comparison,
  :meth:`Context.note` for measured statements; cheap, so the same data can be graded again
  (the tests grade each check's data honestly and sabotaged);
* ``draw(data, plt) -> Figure``: one figure.

Every comparison names a plausible *wrong* prediction (the paper's misprinted formula, the η/√S
heuristic, the continuous-time variance where the discrete one is exact, ...), computed by the
same theory with one wrong input. The same measured data are compared against it with the same
metric and tolerance, and the comparison records whether the data reject it. A check passes only
if every comparison is within its tolerance AND rejects its wrong prediction: a comparison that
could not have failed is a failure. Under *sabotage* (``Check.sabotage`` says what it means for
the check) the wrong predictions are graded in place of the right ones, so every comparison of a
sound check fails.

Sizes come from ``ctx.size(quick, default)``; randomness from ``ctx.rng(tag)`` / ``ctx.seed_for(tag)``,
so that every check is reproducible on its own; ``ctx.phase("...")`` names what runs now (progress).
"""
from __future__ import annotations

import math
import time
import traceback
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Optional

import numpy as np

from validation.io import atomic_write_text  # noqa: F401  (the network statements write through it)

__all__ = ["atomic_write_text", "Check", "Comparison", "CheckResult", "Context", "REGISTRY", "METRICS", "distance",
           "run_check",
           "compute", "evaluate"]

METRICS = ("max_abs", "max_rel", "l1", "max_z", "abs", "rel")

#: comparisons whose arrays have at most this many entries keep them in the JSON report
#: (larger ones only in the check's .npz)
JSON_ARRAY_LIMIT = 32


def distance(metric: str, measured, predicted, stderr=None) -> float:
    """Distance between measured and predicted values.

    ``max_abs``/``abs``: max |m − p|; ``max_rel``/``rel``: max |m − p|/|p|; ``l1``: Σ|m − p|
    (for probability vectors / cell masses); ``max_z``: max |m − p|/stderr (in standard errors)."""
    m = np.asarray(measured, dtype=float)
    p = np.asarray(predicted, dtype=float)
    diff = np.abs(m - p)
    if metric in ("max_abs", "abs"):
        return float(np.max(diff))
    if metric in ("max_rel", "rel"):
        return float(np.max(diff / np.abs(p)))
    if metric == "l1":
        return float(np.sum(diff))
    if metric == "max_z":
        if stderr is None:
            raise ValueError("metric 'max_z' needs stderr")
        return float(np.max(diff / np.asarray(stderr, dtype=float)))
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()] if value.ndim else _jsonable(value.item())
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else str(v)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _float(v) -> float:
    return float(v)  # also reads back "inf" / "nan", which the JSON report stores as strings


ARRAY_FIELDS = ("measured", "predicted", "stderr", "wrong_prediction")


@dataclass
class Comparison:
    """One graded comparison. ``passed``: distance ≤ tolerance; ``wrong_rejected``: the wrong
    prediction's distance to the same data exceeds the same tolerance."""

    label: str
    metric: str
    distance: float
    tolerance: float
    derivation: str
    passed: bool
    wrong_name: str
    wrong_distance: float
    wrong_rejected: bool
    sabotaged: bool = False
    measured: Any = None
    predicted: Any = None
    stderr: Any = None
    wrong_prediction: Any = None

    def to_json(self) -> dict:
        d = {k: _jsonable(getattr(self, k)) for k in ("label", "metric", "distance", "tolerance", "passed",
                                                       "wrong_name", "wrong_distance", "wrong_rejected",
                                                       "sabotaged", "derivation")}
        for k in ARRAY_FIELDS:
            v = getattr(self, k)
            if v is not None and np.size(v) <= JSON_ARRAY_LIMIT:
                d[k] = _jsonable(np.asarray(v))
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Comparison":
        kw = {k: d[k] for k in ("label", "metric", "derivation", "passed", "wrong_name", "wrong_rejected")}
        kw.update(distance=_float(d["distance"]), tolerance=_float(d["tolerance"]),
                  wrong_distance=_float(d["wrong_distance"]), sabotaged=bool(d.get("sabotaged", False)))
        for k in ARRAY_FIELDS:
            if k in d:
                kw[k] = np.asarray(d[k], dtype=float)
        return cls(**kw)


@dataclass
class CheckResult:
    name: str
    title: str
    claim: str
    paper_ref: str
    sabotage: str = ""
    comparisons: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figure: Optional[str] = None
    wall_time: float = 0.0
    cpu_time: float = 0.0
    phases: dict = field(default_factory=dict)
    error: Optional[str] = None
    quick: bool = False
    seed: int = 0
    data: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_rejecting(self) -> int:
        """Comparisons whose data reject their wrong prediction."""
        return sum(bool(c.wrong_rejected) for c in self.comparisons)

    @property
    def can_fail(self) -> bool:
        """Every comparison rejects its wrong prediction (and there is at least one)."""
        return bool(self.comparisons) and self.n_rejecting == len(self.comparisons)

    @property
    def passed(self) -> bool:
        return (self.error is None and bool(self.comparisons) and all(c.passed for c in self.comparisons)
                and self.can_fail)

    @property
    def status(self) -> str:
        if self.error is not None:
            return "ERROR"
        if not self.comparisons:
            return "FAIL (no comparison)"
        if not all(c.passed for c in self.comparisons):
            return "FAIL"
        if not self.can_fail:
            return "FAIL (cannot fail)"
        return "PASS"

    @property
    def worst(self) -> Optional[Comparison]:
        """The comparison closest to (or furthest past) its tolerance."""
        if not self.comparisons:
            return None
        return max(self.comparisons, key=lambda c: c.distance / c.tolerance)

    def to_json(self) -> dict:
        keys = ("name", "title", "claim", "paper_ref", "sabotage", "notes", "figure", "wall_time", "cpu_time", "phases",
                "error", "quick", "seed")
        d = {k: _jsonable(getattr(self, k)) for k in keys}
        d.update(status=self.status, passed=self.passed, n_comparisons=len(self.comparisons),
                 n_rejecting=self.n_rejecting, comparisons=[c.to_json() for c in self.comparisons])
        return d

    @classmethod
    def from_json(cls, d: dict) -> "CheckResult":
        keys = ("name", "title", "claim", "paper_ref", "sabotage", "notes", "figure", "wall_time", "cpu_time", "phases",
                "error", "quick", "seed")
        missing = [k for k in ("name", "comparisons", "quick", "seed") if k not in d]
        if missing:
            raise KeyError(f"missing keys {missing}")
        return cls(comparisons=[Comparison.from_json(c) for c in d["comparisons"]],
                   **{k: d[k] for k in keys if k in d})


REGISTRY: dict[str, type["Check"]] = {}


class Check:
    """Base class of a check: set the class attributes and write the three methods.

    Subclasses register themselves in :data:`REGISTRY` under ``name`` (the tests and the command
    line find every registered check: adding a check is adding one file under ``validation/checks/``).
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    claim: ClassVar[str] = ""
    paper_ref: ClassVar[str] = ""
    #: what a sabotaged run feeds the theory side (the wrong input of its wrong predictions)
    sabotage: ClassVar[str] = ""
    #: position in the report
    order: ClassVar[int] = 1000

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if not cls.name:
            return  # an intermediate base class
        for attr in ("title", "claim", "paper_ref", "sabotage"):
            if not getattr(cls, attr):
                raise TypeError(f"check {cls.name!r} must set the class attribute {attr!r}")
        old = REGISTRY.get(cls.name)
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"check name {cls.name!r} registered twice ({old.__module__} and {cls.__module__})")
        REGISTRY[cls.name] = cls

    def compute(self, ctx: "Context") -> dict:
        raise NotImplementedError(f"check {self.name!r} must define compute(ctx)")

    def compare(self, ctx: "Context", data: dict) -> None:
        raise NotImplementedError(f"check {self.name!r} must define compare(ctx, data)")

    def draw(self, data: dict, plt):
        raise NotImplementedError(f"check {self.name!r} must define draw(data, plt)")


class Context:
    """What a check sees: sizes (``quick``), seeds, progress (``phase``), ``compare`` and ``note``."""

    def __init__(self, check: Check, *, quick: bool, seed: int, sabotage: bool = False,
                 progress: Optional[Callable[[str], None]] = None):
        self.check = check
        self.quick = bool(quick)
        self.seed = int(seed)
        self.sabotage = bool(sabotage)
        self._progress = progress
        self._phase_start: Optional[tuple[str, float]] = None
        self.result = CheckResult(check.name, check.title, check.claim, check.paper_ref, check.sabotage,
                                  quick=self.quick, seed=self.seed)

    # ---- sizes, seeds, progress ------------------------------------------------------------------
    def size(self, quick, default):
        """``quick`` value in quick mode, else ``default``."""
        return quick if self.quick else default

    def seed_for(self, tag: str) -> int:
        """A seed derived from the run seed, the check and a tag: stable and independent per use."""
        return int(np.random.SeedSequence([self.seed, zlib.crc32(f"{self.check.name}/{tag}".encode())])
                   .generate_state(1)[0])

    def rng(self, tag: str) -> np.random.Generator:
        return np.random.default_rng(self.seed_for(tag))

    def phase(self, text: str) -> None:
        """Name what runs now (shown in the progress bar / log, timed in the result's ``phases``)."""
        self._end_phase()
        self._phase_start = (text, time.perf_counter())
        if self._progress is not None:
            self._progress(text)

    def _end_phase(self) -> None:
        if self._phase_start is not None:
            name, t0 = self._phase_start
            self.result.phases[name] = self.result.phases.get(name, 0.0) + time.perf_counter() - t0
            self._phase_start = None

    # ---- recording -------------------------------------------------------------------------------
    def compare(self, label: str, *, measured, predicted, wrong_prediction, wrong_name: str, tolerance: float,
                derivation: str, metric: str = "max_abs", stderr=None) -> Comparison:
        """Record one comparison of ``measured`` with ``predicted`` (distance by ``metric``) and of the
        same data with ``wrong_prediction`` (named ``wrong_name``); with sabotage the wrong prediction
        is graded in place of the right one."""
        if not (isinstance(tolerance, (int, float, np.floating, np.integer)) and tolerance > 0
                and math.isfinite(tolerance)):
            raise ValueError(f"tolerance of {label!r} must be finite and > 0, got {tolerance}")
        if not wrong_name:
            raise ValueError(f"comparison {label!r}: wrong_name must name the wrong prediction")
        pred = wrong_prediction if self.sabotage else predicted
        dist = distance(metric, measured, pred, stderr)
        wrong_dist = distance(metric, measured, wrong_prediction, stderr)
        comp = Comparison(
            label=label, metric=metric, distance=dist, tolerance=float(tolerance), derivation=derivation,
            passed=bool(np.isfinite(dist) and dist <= tolerance), wrong_name=wrong_name, wrong_distance=wrong_dist,
            wrong_rejected=bool(not (wrong_dist <= tolerance)), sabotaged=self.sabotage,
            measured=np.asarray(measured, dtype=float), predicted=np.asarray(pred, dtype=float),
            stderr=None if stderr is None else np.asarray(stderr, dtype=float),
            wrong_prediction=np.asarray(wrong_prediction, dtype=float))
        self.result.comparisons.append(comp)
        return comp

    def note(self, text: str) -> None:
        self.result.notes.append(text)


def compute(check: Check, *, quick: bool, seed: int, progress=None) -> tuple[dict, Context]:
    """Run ``check.compute`` and return its data (validated: a dict of arrays and scalars) and context."""
    ctx = Context(check, quick=quick, seed=seed, progress=progress)
    data = check.compute(ctx)
    ctx._end_phase()
    if not isinstance(data, dict):
        raise TypeError(f"{check.name}.compute must return a dict of arrays, got {type(data).__name__}")
    return data, ctx


def evaluate(check: Check, data: dict, *, quick: bool, seed: int, sabotage: bool = False) -> CheckResult:
    """Grade ``data`` (``check.compare``) into a fresh result; honest or sabotaged."""
    ctx = Context(check, quick=quick, seed=seed, sabotage=sabotage)
    check.compare(ctx, data)
    ctx.result.data = data
    return ctx.result


def run_check(check: Check, *, quick: bool, seed: int, sabotage: bool = False, progress=None) -> CheckResult:
    """Compute and grade one check, catching its errors into the result (a crashed check fails,
    loudly, with its traceback). The data are in ``result.data``; drawing is the runner's job."""
    t0, c0 = time.perf_counter(), time.process_time()
    phases = {}
    try:
        data, ctx = compute(check, quick=quick, seed=seed, progress=progress)
        phases = ctx.result.phases
        if progress is not None:
            progress("comparisons")
        result = evaluate(check, data, quick=quick, seed=seed, sabotage=sabotage)
    except Exception as exc:  # noqa: BLE001 - reported in the result, never swallowed silently
        result = CheckResult(check.name, check.title, check.claim, check.paper_ref, check.sabotage,
                             quick=quick, seed=seed, error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    result.phases = phases
    result.wall_time = time.perf_counter() - t0
    result.cpu_time = time.process_time() - c0  # all threads of this process
    return result
