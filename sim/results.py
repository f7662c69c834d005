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
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["SimResult"]

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

    def finite(self) -> np.ndarray:
        """Final states of the non-diverged particles, shape (M − n_diverged, d)."""
        return self.final[~self.diverged]

    def mean(self) -> np.ndarray:
        """Ensemble mean of the final states over non-diverged particles, shape (d,)."""
        return self.finite().mean(axis=0)

    def var(self) -> np.ndarray:
        """Ensemble variance (ddof = 1) of the final states over non-diverged particles, (d,)."""
        return self.finite().var(axis=0, ddof=1)

    def cov(self) -> np.ndarray:
        """Ensemble covariance (ddof = 1) of the final states over non-diverged particles, (d, d)."""
        return np.atleast_2d(np.cov(self.finite(), rowvar=False, ddof=1))

    def histogram_density(self) -> np.ndarray:
        """Histogram counts normalised to a probability density over the edges' box
        (counts / (all samples × bin volume); samples outside the edges count in the total)."""
        if self.histogram is None:
            raise ValueError("this run recorded no histogram (pass observers=[Histogram(edges)])")
        widths = [np.diff(e) for e in self.histogram_edges]
        vol = widths[0] if len(widths) == 1 else np.outer(widths[0], widths[1])
        total = max(1, self.histogram_samples)
        return self.histogram / (total * vol)

    def first_passage_reached(self) -> np.ndarray:
        """Boolean mask of particles whose first-passage target was reached."""
        if self.first_passage_steps is None:
            raise ValueError("this run recorded no first passage (pass observers=[FirstPassage(target, radius)])")
        return np.isfinite(self.first_passage_steps)

    def summary(self) -> str:
        p = self.params
        s = (
            f"SimResult({p.get('method', '?')}: M={self.n_particles}, d={self.dim}, "
            f"n_steps={p.get('n_steps', '?')}, diverged={self.n_diverged})"
        )
        return s

    __repr__ = summary

    # ---- persistence -------------------------------------------------------------------
    def save(self, path) -> None:
        """Save to ``path`` (an .npz holding the arrays and a JSON metadata string), atomically:
        written to a temporary file in the same directory, then moved with ``os.replace``."""
        path = os.fspath(path)
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
            "format": "sim.SimResult/1",
        }
        arrays["__meta__"] = np.array(json.dumps(meta, default=_json_default))
        directory = os.path.dirname(os.path.abspath(path)) or "."
        fd, tmp = tempfile.mkstemp(prefix=".simresult-", suffix=".npz", dir=directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    @classmethod
    def load(cls, path) -> "SimResult":
        """Load a result written by :meth:`save`."""
        with np.load(os.fspath(path), allow_pickle=False) as z:
            meta = json.loads(str(z["__meta__"]))
            kw: dict[str, Any] = {}
            for name in _ARRAY_FIELDS:
                if name == "histogram_edges":
                    n = meta.get("n_histogram_edges", 0)
                    kw[name] = [z[f"histogram_edges_{k}"] for k in range(n)] if n else None
                    continue
                kw[name] = z[name] if name in z.files else None
        return cls(
            params=meta["params"],
            histogram_outside=meta["histogram_outside"],
            histogram_samples=meta["histogram_samples"],
            **kw,
        )


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    return repr(obj)
