"""The validation framework: a registry of checks, their comparisons, and the report.

A *check* tests one claim of the paper by lining up at least two independent computations of
the same quantity (analytic formula, Fokker–Planck grid, Euler–Maruyama ensemble, exact minibatch
SGD).  Every comparison goes through :meth:`Context.compare`, which records the measured and
predicted values, the distance, the tolerance and how the tolerance was derived.

Every comparison also names a plausible *wrong* prediction (the paper's misprinted formula, the
η/√S heuristic, the continuous-time variance where the discrete one is exact, ...).  The same
measured data are compared against it too, and the report records whether the wrong prediction
would have been rejected (``wrong_rejected``): the test-suite requires every check to reject at
least one wrong prediction, which shows that each check can fail.  Running a check with
``sabotage=True`` goes further and makes the wrong predictions the ones checked.

Writing a check::

    @register("gibbs", title="Gibbs equilibrium", claim="...", paper_ref="eq. 2, Thm 1")
    def gibbs(ctx: Context) -> None:
        ...simulate...
        ctx.compare("FP vs Gibbs, 1-D", measured=p_fp, predicted=p_gibbs, metric="l1",
                    tolerance=2e-4, derivation="O(h²) scheme error on 2,000 cells: ...",
                    wrong_prediction=p_gibbs_with_temperature_doubled)
        ctx.figure(fig)          # one figure per check, saved as figures/<name>.png
        ctx.note("Laplace breaks down above n = ...")   # measured statements for the report

Sizes come from ``ctx.quick`` (CI) vs default; randomness from ``ctx.rng(tag)`` / ``ctx.seed_for(tag)``
so that every check is reproducible on its own.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["Comparison", "CheckResult", "Check", "Context", "register", "REGISTRY", "atomic_write_text"]

METRICS = ("max_abs", "max_rel", "l1", "max_z", "abs", "rel")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file in the same directory + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_to_jsonable(v) for v in value.tolist()] if value.ndim else _to_jsonable(value.item())
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else str(v)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    return value


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


@dataclass
class Comparison:
    label: str
    metric: str
    measured: Any
    predicted: Any
    distance: float
    tolerance: float
    derivation: str
    passed: bool
    stderr: Any = None
    sabotaged: bool = False
    wrong_distance: float | None = None
    wrong_rejected: bool | None = None


@dataclass
class CheckResult:
    name: str
    title: str
    claim: str
    paper_ref: str
    comparisons: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figure: str | None = None
    wall_time: float = 0.0
    error: str | None = None
    quick: bool = False
    seed: int = 0

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.comparisons) and all(c.passed for c in self.comparisons)

    @property
    def can_fail(self) -> bool:
        """True if at least one comparison's wrong prediction was rejected by the same data."""
        return any(c.wrong_rejected for c in self.comparisons)

    @property
    def worst(self) -> Comparison | None:
        """The comparison closest to (or furthest past) its tolerance."""
        if not self.comparisons:
            return None
        return max(self.comparisons, key=lambda c: c.distance / c.tolerance if c.tolerance > 0 else math.inf)

    def to_json(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        d["can_fail"] = self.can_fail
        return _to_jsonable(d)

    @classmethod
    def from_json(cls, d: dict) -> "CheckResult":
        d = dict(d)
        d.pop("passed", None)
        d.pop("can_fail", None)
        comps = [Comparison(**c) for c in d.pop("comparisons", [])]
        return cls(comparisons=comps, **d)


@dataclass
class Check:
    name: str
    title: str
    claim: str
    paper_ref: str
    func: Callable[["Context"], None]
    order: int = 0


REGISTRY: dict[str, Check] = {}


def register(name: str, *, title: str, claim: str, paper_ref: str, order: int | None = None):
    """Decorator registering a check function ``f(ctx) -> None``."""

    def deco(func):
        if name in REGISTRY and REGISTRY[name].func is not func:
            raise ValueError(f"check name {name!r} registered twice")
        REGISTRY[name] = Check(name, title, claim, paper_ref, func, len(REGISTRY) if order is None else order)
        return func

    return deco


class Context:
    """What a check sees: sizes (``quick``), seeds, where figures go, and ``compare``."""

    def __init__(self, check: Check, *, quick: bool, seed: int, fig_dir: Path, sabotage: bool = False):
        self.check = check
        self.quick = quick
        self.seed = int(seed)
        self.fig_dir = Path(fig_dir)
        self.sabotage = sabotage
        self.result = CheckResult(check.name, check.title, check.claim, check.paper_ref, quick=quick, seed=seed)

    # ---- sizes and seeds ----------------------------------------------------------------------
    def size(self, quick, default):
        """``quick`` value in quick mode, else ``default``."""
        return quick if self.quick else default

    def seed_for(self, tag: str) -> int:
        """A seed derived from the run seed, the check and a tag: stable and independent per use."""
        return int(np.random.SeedSequence([self.seed, zlib.crc32(f"{self.check.name}/{tag}".encode())]).generate_state(1)[0])

    def rng(self, tag: str) -> np.random.Generator:
        return np.random.default_rng(self.seed_for(tag))

    # ---- recording -----------------------------------------------------------------------------
    def compare(
        self,
        label: str,
        *,
        measured,
        predicted,
        tolerance: float,
        derivation: str,
        metric: str = "max_abs",
        stderr=None,
        wrong_prediction=None,
    ) -> Comparison:
        """Record one comparison; with ``sabotage`` the ``wrong_prediction`` replaces ``predicted``.

        A comparison without a ``wrong_prediction`` cannot be sabotaged: it is then recorded as is,
        and the sabotage test requires at least one sabotaged comparison to fail per check."""
        sabotaged = self.sabotage and wrong_prediction is not None
        pred = wrong_prediction if sabotaged else predicted
        if not (tolerance > 0 and math.isfinite(tolerance)):
            raise ValueError(f"tolerance must be finite and > 0, got {tolerance}")
        dist = distance(metric, measured, pred, stderr)
        wrong_dist = None if wrong_prediction is None else distance(metric, measured, wrong_prediction, stderr)
        comp = Comparison(
            label, metric, _to_jsonable(np.asarray(measured)), _to_jsonable(np.asarray(pred)), dist,
            float(tolerance), derivation, bool(np.isfinite(dist) and dist <= tolerance),
            None if stderr is None else _to_jsonable(np.asarray(stderr)), sabotaged,
            wrong_dist, None if wrong_dist is None else bool(not (wrong_dist <= tolerance)),
        )
        self.result.comparisons.append(comp)
        return comp

    def note(self, text: str) -> None:
        self.result.notes.append(text)

    def figure(self, fig, name: str | None = None) -> Path:
        """Save a matplotlib figure as <fig_dir>/<check name>.png (one per check) and close it."""
        import matplotlib.pyplot as plt

        self.fig_dir.mkdir(parents=True, exist_ok=True)
        path = self.fig_dir / f"{name or self.check.name}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        if name is None or self.result.figure is None:
            self.result.figure = str(path)
        return path


def run_check(check: Check, *, quick: bool, seed: int, fig_dir: Path, sabotage: bool = False) -> CheckResult:
    """Run one check, catching its errors into the result (a crashed check fails, loudly)."""
    import traceback

    ctx = Context(check, quick=quick, seed=seed, fig_dir=fig_dir, sabotage=sabotage)
    t0 = time.perf_counter()
    try:
        check.func(ctx)
    except Exception as exc:  # noqa: BLE001 - reported in the result, never swallowed silently
        ctx.result.error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    ctx.result.wall_time = time.perf_counter() - t0
    return ctx.result
