"""Result container of the ensemble simulators (:mod:`sim.sde`, :mod:`sim.sgd`).

A :class:`SimResult` holds the final states of an ensemble of M particles in d dimensions plus
the optional observables recorded during the run.  Diverged particles (non-finite state or
``|θ_k|`` beyond the run's ``divergence_bound``) are frozen at their last finite state, flagged in
``diverged`` with the step in ``diverged_step``, and excluded from every statistics helper
(never averaged in: conventions.md).
"""
from __future__ import annotations

import dataclasses
import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from theory._io import atomic_write

if TYPE_CHECKING:
    from theory.landscapes.base import Landscape

__all__ = ["SimResult", "CorruptResultError"]

_ARRAY_FIELDS = (
    "final",
    "diverged",
    "diverged_step",
    "trajectory",
    "record_steps",
    "histogram",
    "histogram_edges",
    "basin_occupancy",
    "basin_counts",
    "basin_steps",
    "first_passage_steps",
    "final_velocity",
    "time_mean",
    "time_cov",
    "path_maximum",
)


@dataclass
class SimResult:
    """Outcome of one ensemble run.

    Attributes
    ----------
    final : (M, d) float array
        State after ``n_steps`` SGD steps (diverged particles: their last finite state).
    diverged : (M,) bool
        True for particles that left the finite region / ``divergence_bound``.
    diverged_step : (M,) int64
        0-based index t of the SGD step during which the particle diverged (its state after
        t steps is the frozen one), −1 if it did not.
    trajectory, record_steps : (n_rec, M, d), (n_rec,) or None
        States after ``record_steps[r]`` steps (``Record(every)`` thinning, step 0 included).
    histogram : (n_bins,) or (n_bins_0, n_bins_1) int64 or None
        Counts of the non-diverged particles' states over the histogram window (see
        ``params['histogram']``); ``histogram_edges`` is a list of 1 or 2 edge arrays and
        ``histogram_outside`` the number of samples outside the edges, ``histogram_samples`` the
        total number of samples taken (inside + outside).
    basin_occupancy, basin_counts, basin_steps : (n_rec, K) float, (n_rec, K) int, (n_rec,)
        Fraction (and number) of the *non-diverged* particles in the basin of each minimum
        (``landscape.minima()`` order) after ``basin_steps[r]`` steps.
    first_passage_steps : (M,) float or None
        Time (in SGD steps; fractional with sub-stepping) at which ``|θ − target| < radius``
        first held; 0 if it held initially, ``inf`` where never reached (or diverged first).
    final_velocity : (M, d) or None
        Heavy-ball velocity after the run (momentum > 0 only).
    time_mean, time_cov : (d,), (d, d) or None
        Average and covariance of θ over all samples of the histogram window (every particle,
        every sampled step; inside or outside the edges): time-and-ensemble averages without
        storing paths.
    path_maximum : (M,) float or None
        sup over the run of ‖θ_t‖ per particle (``PathMaximum()``); inf for diverged particles.
    params : dict
        The run's settings (JSON-serialisable), including ``seed``.
    """

    final: np.ndarray
    diverged: np.ndarray
    diverged_step: np.ndarray
    params: dict = field(default_factory=dict)
    trajectory: np.ndarray | None = None
    record_steps: np.ndarray | None = None
    histogram: np.ndarray | None = None
    histogram_edges: list | None = None
    histogram_outside: int = 0
    histogram_samples: int = 0
    basin_occupancy: np.ndarray | None = None
    basin_counts: np.ndarray | None = None
    basin_steps: np.ndarray | None = None
    first_passage_steps: np.ndarray | None = None
    final_velocity: np.ndarray | None = None
    time_mean: np.ndarray | None = None
    time_cov: np.ndarray | None = None
    path_maximum: np.ndarray | None = None

    # ---- summaries ---------------------------------------------------------------------
    @property
    def n_particles(self) -> int:
        return int(self.final.shape[0])

    @property
    def dim(self) -> int:
        return int(self.final.shape[1])

    @property
    def n_diverged(self) -> int:
        """Number of diverged particles (excluded from every statistic)."""
        return int(np.count_nonzero(self.diverged))

    @property
    def divergence_fraction(self) -> float:
        return self.n_diverged / max(1, self.n_particles)

    @property
    def all_diverged(self) -> bool:
        """True when no particle survived: the run has no statistics (every helper raises)."""
        return self.n_diverged == self.n_particles

    def finite(self) -> np.ndarray:
        """Final states of the non-diverged particles, shape (M − n_diverged, d)."""
        return self.final[~self.diverged]

    def _survivors(self, at_least: int, what: str) -> np.ndarray:
        """The non-diverged final states, refusing (ValueError) fewer than ``at_least`` of them:
        a statistic of no particle is not NaN but an error that says why."""
        fin = self.finite()
        if fin.shape[0] < at_least:
            lost = f"all {self.n_particles}" if fin.shape[0] == 0 else f"{self.n_diverged} of {self.n_particles}"
            raise ValueError(
                f"{what}: {lost} particles diverged (needs at least {at_least} that did not); the run is unstable "
                f"at these settings: lower lr (or raise divergence_bound if the states are legitimately large)"
            )
        return fin

    def mean(self) -> np.ndarray:
        """Ensemble mean of the final states over non-diverged particles, shape (d,)."""
        return self._survivors(1, "mean").mean(axis=0)

    def var(self) -> np.ndarray:
        """Ensemble variance (ddof = 1) of the final states over non-diverged particles, (d,)."""
        return self._survivors(2, "var").var(axis=0, ddof=1)

    def cov(self) -> np.ndarray:
        """Ensemble covariance (ddof = 1) of the final states over non-diverged particles, (d, d)."""
        return np.atleast_2d(np.cov(self._survivors(2, "cov"), rowvar=False, ddof=1))

    def basin_probabilities(self, landscape: Landscape | None = None, *, at: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """(P, SE): the fraction of non-diverged particles in the basin of each minimum
        (``landscape.minima()`` order; P[0] is P(A) for minimum A first) and its binomial standard
        error √(P(1 − P)/m) over the m independent surviving particles.

        From the ``Basins`` observer's record ``at`` (default: the last, after ``n_steps``) when
        the run had one; otherwise the final states are classified with ``landscape``."""
        if self.basin_counts is not None:
            counts = np.asarray(self.basin_counts)[at]
        elif landscape is not None:
            labels = np.asarray(landscape.basin_index(self._survivors(1, "basin_probabilities"))).reshape(-1)
            counts = np.bincount(labels, minlength=len(landscape.minima()))
        else:
            raise ValueError("basin_probabilities: this run recorded no basins; pass observers=[Basins(every)] to "
                             "the simulator, or give the landscape to classify the final states")
        alive = int(counts.sum())
        if alive == 0:
            self._survivors(1, "basin_probabilities")  # raises: every particle diverged
        p = counts / alive
        return p, np.sqrt(p * (1.0 - p) / alive)

    def histogram_density(self) -> np.ndarray:
        """Histogram counts normalised to a probability density over the edges' box
        (counts / (all samples × bin volume); samples outside the edges count in the total)."""
        if self.histogram is None:
            raise ValueError("this run recorded no histogram (pass observers=[Histogram(edges)])")
        if self.histogram_samples == 0:
            self._survivors(1, "histogram_density")
            raise ValueError("histogram_density: the histogram window holds no sample (burn_in too close to n_steps)")
        widths = [np.diff(e) for e in self.histogram_edges]
        vol = widths[0] if len(widths) == 1 else np.outer(widths[0], widths[1])
        return self.histogram / (self.histogram_samples * vol)

    def first_passage_reached(self) -> np.ndarray:
        """Boolean mask of particles whose first-passage target was reached."""
        if self.first_passage_steps is None:
            raise ValueError("this run recorded no first passage (pass observers=[FirstPassage(target, radius)])")
        return np.isfinite(self.first_passage_steps)

    def summary(self) -> str:
        p = self.params
        s = (
            f"SimResult({p.get('method', '?')}: M={self.n_particles}, d={self.dim}, "
            f"n_steps={p.get('n_steps', '?')}, diverged={'all' if self.all_diverged else self.n_diverged})"
        )
        return s

    __repr__ = summary

    # ---- consistency -------------------------------------------------------------------
    def _inconsistencies(self) -> list[str]:
        """What is wrong with the arrays' shapes, types and mutual consistency (empty: nothing)."""
        final = self.final
        if not (isinstance(final, np.ndarray) and final.ndim == 2 and final.shape[0] >= 1 and final.shape[1] >= 1
                and np.issubdtype(final.dtype, np.floating)):
            return [f"final must be a float array of shape (particles, dim), got "
                    f"{_describe_array(final)}"]
        m, d = final.shape
        errs = []
        div, step = self.diverged, self.diverged_step
        if not (isinstance(div, np.ndarray) and div.shape == (m,) and div.dtype == bool):
            errs.append(f"diverged must be a bool array of shape ({m},) like final, got {_describe_array(div)}")
        elif not (isinstance(step, np.ndarray) and step.shape == (m,) and np.issubdtype(step.dtype, np.integer)):
            errs.append(f"diverged_step must be an integer array of shape ({m},), got {_describe_array(step)}")
        else:
            if np.any(div != (step >= 0)):
                errs.append(f"diverged and diverged_step disagree for {int(np.sum(div != (step >= 0)))} particle(s)")
            bad = ~div & ~np.all(np.isfinite(final), axis=1)
            if np.any(bad):
                errs.append(f"{int(bad.sum())} particle(s) not flagged as diverged have NaN or inf states")
        shapes = dict(first_passage_steps=(m,), path_maximum=(m,), final_velocity=(m, d), time_mean=(d,), time_cov=(d, d))
        for name, shape in shapes.items():
            val = getattr(self, name)
            if val is not None and np.shape(val) != shape:
                errs.append(f"{name} must have shape {shape}, got {_describe_array(val)}")
        errs += _group_errors("Record", dict(trajectory=self.trajectory, record_steps=self.record_steps),
                              lambda n: dict(trajectory=(n, m, d), record_steps=(n,)))
        if self.basin_counts is not None and np.ndim(self.basin_counts) != 2:
            errs.append(f"basin_counts must be a 2-D array (records, basins), got {_describe_array(self.basin_counts)}")
        else:
            errs += _group_errors("Basins", dict(basin_occupancy=self.basin_occupancy, basin_counts=self.basin_counts,
                                                 basin_steps=self.basin_steps),
                                  lambda n: dict(basin_occupancy=(n, np.shape(self.basin_counts)[-1]),
                                                 basin_counts=(n, np.shape(self.basin_counts)[-1]), basin_steps=(n,)))
        if self.basin_counts is not None and not errs:
            counts = np.asarray(self.basin_counts)
            alive = counts.sum(axis=1, keepdims=True)
            expect = np.where(alive > 0, counts / np.maximum(alive, 1), np.nan)
            if counts.ndim != 2 or np.any(counts < 0) or np.any(alive > m) or not np.allclose(
                    self.basin_occupancy, expect, rtol=1e-12, atol=0.0, equal_nan=True):
                errs.append("basin_occupancy is not basin_counts / (particles alive at that step)")
        if (self.histogram is None) != (self.histogram_edges is None):
            errs.append("histogram and histogram_edges must be given together")
        elif self.histogram is not None:
            hist, edges = np.asarray(self.histogram), self.histogram_edges
            shape = tuple(np.size(e) - 1 for e in edges)
            if not 1 <= len(edges) <= 2 or hist.shape != shape:
                errs.append(f"histogram of shape {hist.shape} does not match its {len(edges)} edge array(s) "
                            f"(expected shape {shape})")
            elif any(np.ndim(e) != 1 or np.any(~(np.diff(e) > 0)) for e in edges):
                errs.append("histogram_edges must be strictly increasing 1-D arrays")
            elif not (np.all(np.isfinite(hist)) and np.all(np.isfinite([self.histogram_outside, self.histogram_samples]))):
                errs.append("histogram counts, histogram_outside and histogram_samples must be finite numbers")
            elif np.any(hist < 0) or int(hist.sum()) + int(self.histogram_outside) != int(self.histogram_samples):
                errs.append(f"histogram counts ({int(hist.sum())}) + histogram_outside ({self.histogram_outside}) "
                            f"!= histogram_samples ({self.histogram_samples})")
        return errs

    # ---- persistence -------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Save to ``path`` (an .npz holding the arrays and a JSON metadata string), atomically
        (:func:`theory._io.atomic_write`: a temporary file in the same directory, fsync-ed, given
        the mode ``open`` would give (0644 under umask 022), then moved over ``path``)."""
        arrays: dict[str, np.ndarray] = {}
        for name in _ARRAY_FIELDS:
            val = getattr(self, name)
            if val is None:
                continue
            if name == "histogram_edges":
                for k, e in enumerate(val):
                    arrays[f"histogram_edges_{k}"] = np.asarray(e)
                continue
            arrays[name] = np.asarray(val)
        meta = {
            "params": self.params,
            "histogram_outside": int(self.histogram_outside),
            "histogram_samples": int(self.histogram_samples),
            "n_histogram_edges": 0 if self.histogram_edges is None else len(self.histogram_edges),
            "format": _FORMAT,
        }
        arrays["__meta__"] = np.array(json.dumps(meta, default=_json_default))
        atomic_write(path, lambda fh: np.savez(fh, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SimResult":
        """Load a result written by :meth:`save`, checking it first: a file that is empty,
        truncated, not an .npz archive, without or with unreadable metadata, missing arrays, or
        whose arrays disagree in shape or content (e.g. a non-diverged particle with a NaN state)
        raises :class:`CorruptResultError` (a ``ValueError``) naming the file and the fault."""
        path = os.fspath(path)

        def corrupt(reason: str) -> CorruptResultError:
            return CorruptResultError(f"{path}: {reason}; not a usable SimResult file: re-run the simulation that "
                                      "wrote it (SimResult.save) or restore a good copy")

        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such file (expected an .npz written by SimResult.save)")
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path}: a directory, expected an .npz file written by SimResult.save")
        with open(path, "rb") as fh:
            head = fh.read(4)
        if not head:
            raise corrupt("the file is empty (0 bytes)")
        if head not in (b"PK\x03\x04", b"PK\x05\x06"):
            raise corrupt(f"not an .npz archive (it starts with bytes {head!r}, not a zip header)")
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {name: z[name] for name in z.files}  # reads every member: CRC and headers checked
        except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise corrupt(f"a truncated or damaged .npz archive ({_first_line(exc)})") from None
        except ValueError as exc:
            raise corrupt(f"an array in the archive cannot be read ({_first_line(exc)})") from None
        meta = _read_meta(data, corrupt)
        missing = [name for name in _REQUIRED if name not in data]
        n_edges = meta["n_histogram_edges"]
        missing += [f"histogram_edges_{k}" for k in range(n_edges) if f"histogram_edges_{k}" not in data]
        if missing:
            raise corrupt(f"missing array(s) {', '.join(missing)}")
        kw: dict[str, Any] = {name: data.get(name) for name in _ARRAY_FIELDS if name != "histogram_edges"}
        kw["histogram_edges"] = [data[f"histogram_edges_{k}"] for k in range(n_edges)] if n_edges else None
        res = cls(params=meta["params"], histogram_outside=meta["histogram_outside"],
                  histogram_samples=meta["histogram_samples"], **kw)
        errs = res._inconsistencies()
        if errs:
            raise corrupt("inconsistent arrays: " + "; ".join(errs))
        return res


class CorruptResultError(ValueError):
    """A file that is not a readable, consistent :class:`SimResult` (the message names the file,
    what is wrong with it and what to do)."""


_FORMAT = "sim.SimResult/1"
_REQUIRED = ("final", "diverged", "diverged_step")


def _read_meta(data: dict, corrupt) -> dict:
    """The metadata of a loaded archive, checked: a JSON object of the format :meth:`SimResult.save` writes."""
    if "__meta__" not in data:
        raise corrupt("no __meta__ entry (the JSON metadata SimResult.save writes)")
    raw = data["__meta__"]
    if raw.shape != () or raw.dtype.kind != "U":
        raise corrupt(f"__meta__ must be a JSON string, got {_describe_array(raw)}")
    try:
        meta = json.loads(str(raw))
    except json.JSONDecodeError as exc:
        raise corrupt(f"its metadata (__meta__) is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(meta, dict):
        raise corrupt(f"its metadata (__meta__) is a JSON {type(meta).__name__}, expected an object")
    if meta.get("format") != _FORMAT:
        raise corrupt(f"metadata format {meta.get('format')!r}, expected {_FORMAT!r}")
    expected = dict(params=dict, histogram_outside=int, histogram_samples=int, n_histogram_edges=int)
    for key, kind in expected.items():
        val = meta.get(key)
        if not isinstance(val, kind) or isinstance(val, bool) or (kind is int and val < 0):
            raise corrupt(f"metadata key {key!r} is {val!r}, expected "
                          f"{'a JSON object' if kind is dict else 'a non-negative integer'}")
    return meta


def _group_errors(observer: str, arrays: dict, shapes) -> list[str]:
    """Arrays an observer writes together: all present or all absent, with the shapes
    ``shapes(n)`` for n records (n from the last array, the steps)."""
    present = [k for k, v in arrays.items() if v is not None]
    if not present:
        return []
    if len(present) != len(arrays):
        return [f"{observer} arrays incomplete: {', '.join(present)} without "
                f"{', '.join(k for k in arrays if k not in present)}"]
    steps = list(arrays.values())[-1]
    if np.ndim(steps) != 1:
        return [f"{list(arrays)[-1]} must be 1-D, got {_describe_array(steps)}"]
    want = shapes(len(steps))
    return [f"{k} must have shape {want[k]}, got {_describe_array(v)}" for k, v in arrays.items()
            if np.shape(v) != want[k]]


def _describe_array(val) -> str:
    if val is None:
        return "nothing"
    if isinstance(val, np.ndarray):
        return f"{val.dtype} array of shape {val.shape}"
    return type(val).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    return repr(obj)
