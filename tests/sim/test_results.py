"""SimResult: statistics helpers exclude diverged particles; save/load round trip (atomic)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from sim.results import SimResult


def _result():
    rng = np.random.default_rng(0)
    final = rng.standard_normal((6, 2))
    diverged = np.array([False, True, False, False, True, False])
    return SimResult(
        final=final,
        diverged=diverged,
        diverged_step=np.where(diverged, 3, -1),
        params=dict(method="euler_maruyama", lr=0.1, seed=5, histogram=dict(edges=[[0.0, 1.0, 2.0]]), n_steps=10),
        trajectory=rng.standard_normal((3, 6, 2)),
        record_steps=np.array([0, 5, 10]),
        histogram=np.arange(4).reshape(2, 2),
        histogram_edges=[np.array([0.0, 1.0, 2.0]), np.array([-1.0, 0.0, 1.0])],
        histogram_outside=7,
        histogram_samples=13,
        basin_occupancy=np.array([[1.0, 0.0], [0.5, 0.5]]),
        basin_counts=np.array([[4, 0], [2, 2]]),
        basin_steps=np.array([0, 10]),
        first_passage_steps=np.array([np.inf, 2.0, 0.0, np.inf, 1.5, 3.0]),
    )


def test_statistics_exclude_diverged():
    r = _result()
    assert r.n_diverged == 2
    fin = r.finite()
    np.testing.assert_array_equal(fin, r.final[~r.diverged])
    np.testing.assert_allclose(r.mean(), r.final[~r.diverged].mean(axis=0))
    np.testing.assert_allclose(r.cov(), np.cov(r.final[~r.diverged], rowvar=False))
    np.testing.assert_allclose(r.var(), r.final[~r.diverged].var(axis=0, ddof=1))
    np.testing.assert_array_equal(r.first_passage_reached(), np.isfinite(r.first_passage_steps))
    dens = r.histogram_density()
    np.testing.assert_allclose(dens, np.arange(4).reshape(2, 2) / 13.0)


def test_save_load_round_trip(tmp_path):
    r = _result()
    path = tmp_path / "run.npz"
    r.save(path)
    assert sorted(os.listdir(tmp_path)) == ["run.npz"]  # no temporary file left behind
    q = SimResult.load(path)
    for name in ("final", "diverged", "diverged_step", "trajectory", "record_steps", "histogram", "basin_occupancy",
                 "basin_counts", "basin_steps", "first_passage_steps"):
        np.testing.assert_array_equal(getattr(q, name), getattr(r, name), err_msg=name)
    assert q.final_velocity is None
    assert len(q.histogram_edges) == 2
    for a, b in zip(q.histogram_edges, r.histogram_edges):
        np.testing.assert_array_equal(a, b)
    assert q.params == r.params
    assert (q.histogram_outside, q.histogram_samples) == (7, 13)
    assert q.n_diverged == 2
    # overwrite in place (os.replace) works
    r.params["lr"] = 0.2
    r.save(path)
    assert SimResult.load(path).params["lr"] == 0.2


def test_minimal_result_round_trip(tmp_path):
    r = SimResult(final=np.zeros((2, 1)), diverged=np.zeros(2, bool), diverged_step=np.full(2, -1), params={"seed": 1})
    r.save(tmp_path / "m.npz")
    q = SimResult.load(tmp_path / "m.npz")
    assert q.trajectory is None and q.histogram is None and q.histogram_edges is None
    with pytest.raises(ValueError, match="histogram"):
        q.histogram_density()


def test_results_from_simulator_round_trip(tmp_path):
    from sim.observers import Histogram, PathMaximum, Record
    from sim.sde import simulate_sde
    from theory.landscapes import Quadratic

    res = simulate_sde(Quadratic([[1.0]]), lr=0.1, batch_size=1, sigma2=1.0, n_steps=10, n_particles=20, theta0=0.0,
                       seed=4, observers=[Histogram(np.linspace(-1, 1, 5)), Record(5), PathMaximum()], momentum=0.5)
    res.save(tmp_path / "s.npz")
    q = SimResult.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(q.final, res.final)
    np.testing.assert_array_equal(q.final_velocity, res.final_velocity)
    np.testing.assert_array_equal(q.histogram, res.histogram)
    np.testing.assert_array_equal(q.time_mean, res.time_mean)
    np.testing.assert_array_equal(q.time_cov, res.time_cov)
    np.testing.assert_array_equal(q.path_maximum, res.path_maximum)
    assert q.params == res.params
    assert q.params["seed"] == 4
