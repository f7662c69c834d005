"""SimResult: statistics helpers exclude diverged particles; save/load round trip (atomic)."""
from __future__ import annotations

import os
import re
import stat

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


# ---- a file that is not a good SimResult is refused with one line naming it ---------------------
def _write_npz(path, **arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _meta(**kw):
    import json

    meta = dict(params={}, histogram_outside=0, histogram_samples=0, n_histogram_edges=0, format="sim.SimResult/1")
    meta.update(kw)
    return np.array(json.dumps(meta))


def _ok_arrays():
    return dict(final=np.zeros((4, 2)), diverged=np.zeros(4, bool), diverged_step=np.full(4, -1), __meta__=_meta())


def _flip_byte_inside(path):
    """Overwrite one byte of the first member's data: the archive still opens, its CRC check fails."""
    raw = bytearray(path.read_bytes())
    raw[120] ^= 0xFF
    path.write_bytes(bytes(raw))


# (name, how to make the file from a good one at `good`, pattern of the fault named in the message);
# the first seven are the ways a user's file was measured to fail before (a raw BadZipFile, a misleading
# pickle message, EOFError, AttributeError, JSONDecodeError, and two that loaded silently and gave an
# IndexError or NaN statistics later)
BROKEN = [
    ("truncated", lambda p, good: p.write_bytes(good[: len(good) // 2]), r"a truncated or damaged \.npz archive"),
    ("random bytes", lambda p, good: p.write_bytes(np.random.default_rng(1).bytes(600)),
     r"not an \.npz archive \(it starts with bytes"),
    ("empty", lambda p, good: p.write_bytes(b""), r"the file is empty \(0 bytes\)"),
    ("missing array", lambda p, good: _write_npz(p, **{k: v for k, v in _ok_arrays().items() if k != "final"}),
     r"missing array\(s\) final"),
    ("metadata not JSON", lambda p, good: _write_npz(p, **dict(_ok_arrays(), __meta__=np.array("{params: 1"))),
     r"its metadata \(__meta__\) is not valid JSON"),
    ("arrays of different lengths", lambda p, good: _write_npz(p, **dict(_ok_arrays(), diverged=np.zeros(3, bool))),
     r"inconsistent arrays: diverged must be a bool array of shape \(4,\) like final, got bool array of shape \(3,\)"),
    ("NaN state not flagged", lambda p, good: _write_npz(p, **dict(_ok_arrays(), final=np.full((4, 2), np.nan))),
     r"4 particle\(s\) not flagged as diverged have NaN or inf states"),
    # more of the same family
    ("metadata a list", lambda p, good: _write_npz(p, **dict(_ok_arrays(), __meta__=np.array("[1, 2]"))),
     r"its metadata \(__meta__\) is a JSON list, expected an object"),
    ("metadata key missing",
     lambda p, good: _write_npz(p, **dict(_ok_arrays(), __meta__=_meta(histogram_samples=None))),
     r"metadata key 'histogram_samples' is None, expected a non-negative integer"),
    ("another format", lambda p, good: _write_npz(p, **dict(_ok_arrays(), __meta__=_meta(format="sim.SimResult/9"))),
     r"metadata format 'sim.SimResult/9', expected 'sim.SimResult/1'"),
    ("no metadata", lambda p, good: _write_npz(p, **{k: v for k, v in _ok_arrays().items() if k != "__meta__"}),
     r"no __meta__ entry"),
    ("damaged member", lambda p, good: (p.write_bytes(good), _flip_byte_inside(p)),
     r"a truncated or damaged \.npz archive|an array in the archive cannot be read"),
    ("flags disagree", lambda p, good: _write_npz(p, **dict(_ok_arrays(), diverged_step=np.array([-1, 3, -1, -1]))),
     r"diverged and diverged_step disagree for 1 particle"),
    ("histogram edges missing", lambda p, good: _write_npz(p, **dict(_ok_arrays(), histogram=np.zeros(3, np.int64),
                                                                     __meta__=_meta(n_histogram_edges=1))),
     r"missing array\(s\) histogram_edges_0"),
    ("histogram total wrong", lambda p, good: _write_npz(p, **dict(_ok_arrays(), histogram=np.ones(3, np.int64),
                                                                   histogram_edges_0=np.arange(4.0),
                                                                   __meta__=_meta(n_histogram_edges=1,
                                                                                  histogram_samples=2))),
     r"histogram counts \(3\) \+ histogram_outside \(0\) != histogram_samples \(2\)"),
    ("basins incomplete", lambda p, good: _write_npz(p, **dict(_ok_arrays(), basin_counts=np.array([[4, 0]]))),
     r"Basins arrays incomplete: basin_counts without basin_occupancy, basin_steps"),
    ("object array", lambda p, good: _write_npz(p, **dict(_ok_arrays(), final=np.array([None, 1], dtype=object))),
     r"an array in the archive cannot be read"),
    ("basin counts a scalar", lambda p, good: _write_npz(p, **dict(_ok_arrays(), basin_counts=np.array(4),
                                                                   basin_occupancy=np.ones((1, 2)),
                                                                   basin_steps=np.array([0]))),
     r"basin_counts must be a 2-D array \(records, basins\), got int64 array of shape \(\); not a"),
    ("histogram with NaN", lambda p, good: _write_npz(p, **dict(_ok_arrays(), histogram=np.array([1.0, np.nan, 1.0]),
                                                                histogram_edges_0=np.arange(4.0),
                                                                __meta__=_meta(n_histogram_edges=1,
                                                                               histogram_samples=2))),
     r"histogram counts, histogram_outside and histogram_samples must be finite numbers"),
]


@pytest.mark.parametrize("case", BROKEN, ids=[c[0] for c in BROKEN])
def test_load_refuses_a_broken_file_naming_it(case, tmp_path):
    from sim.results import CorruptResultError

    name, make, pattern = case
    _result().save(tmp_path / "good.npz")
    path = tmp_path / "broken.npz"
    make(path, (tmp_path / "good.npz").read_bytes())
    with pytest.raises(CorruptResultError) as err:
        SimResult.load(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: "), msg
    assert re.search(pattern, msg), msg
    assert msg.endswith("re-run the simulation that wrote it (SimResult.save) or restore a good copy"), msg
    assert isinstance(err.value, ValueError)


def test_load_names_a_missing_file_or_a_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.npz: no such file"):
        SimResult.load(tmp_path / "nope.npz")
    with pytest.raises(IsADirectoryError, match="a directory, expected an .npz file"):
        SimResult.load(tmp_path)


def test_save_is_synced_before_the_rename_and_world_readable(tmp_path, monkeypatch):
    """The data reach the disk (fsync of the file) before the temporary file replaces the target, so
    a crash leaves the old file or the new one; the file gets the mode open() would give it (0644
    under umask 022), not mkstemp's 0600."""
    import theory._io as io

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(io.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(io.os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    old_mask = os.umask(0o022)
    try:
        _result().save(tmp_path / "run.npz")
    finally:
        os.umask(old_mask)
    assert events[:2] == ["fsync", "replace"]  # file synced, then renamed (then the directory synced)
    assert stat.S_IMODE(os.stat(tmp_path / "run.npz").st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["run.npz"]


def test_failed_save_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    r = _result()
    r.save(tmp_path / "run.npz")
    before = (tmp_path / "run.npz").read_bytes()
    def disk_full(fh, **arrays):
        fh.write(b"half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(OSError, match="No space left"):
        r.save(tmp_path / "run.npz")
    assert (tmp_path / "run.npz").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["run.npz"]


# ---- runs where every particle diverged say so instead of giving NaN ------------------------------
def test_all_diverged_run_is_flagged_and_its_statistics_raise(tmp_path):
    """SGD on L = x²/2 with lr = 3 multiplies x by −2 per step (|1 − lr·λ| > 1): every particle
    diverges; the run says so (warning, all_diverged) and every statistic raises instead of NaN."""
    from sim.observers import Basins, Histogram
    from sim.sde import simulate_sde
    from theory.landscapes import Quadratic

    land = Quadratic([[1.0]])
    with pytest.warns(RuntimeWarning, match=r"all 64 particles diverged"):
        res = simulate_sde(land, lr=3.0, batch_size=1, sigma2=1.0, n_steps=100, n_particles=64, theta0=1.0, seed=0,
                           observers=[Basins(10), Histogram(np.linspace(-1, 1, 5), burn_in=50)])
    assert res.all_diverged and res.n_diverged == 64 and res.finite().shape == (0, 1)
    assert "diverged=all" in repr(res)
    for call, what in ((res.mean, "mean"), (res.var, "var"), (res.cov, "cov"), (res.basin_probabilities,
                       "basin_probabilities"), (res.histogram_density, "histogram_density")):
        with pytest.raises(ValueError, match=rf"{what}: all 64 particles diverged .* lower lr"):
            call()
    res.save(tmp_path / "dead.npz")  # a valid result: it loads, still flagged
    assert SimResult.load(tmp_path / "dead.npz").all_diverged


def test_one_survivor_has_a_mean_but_no_variance():
    r = SimResult(final=np.array([[1.0], [2.0], [3.0]]), diverged=np.array([True, False, True]),
                  diverged_step=np.array([4, -1, 2]))
    np.testing.assert_array_equal(r.mean(), [2.0])
    with pytest.raises(ValueError, match=r"var: 2 of 3 particles diverged \(needs at least 2"):
        r.var()


# ---- P(A) from a result --------------------------------------------------------------------------
def test_basin_probabilities_from_the_observer_or_the_landscape():
    """Both routes count the same particles: P = counts / survivors, SE = √(P(1 − P)/m)."""
    from sim.observers import Basins
    from sim.sde import simulate_sde
    from theory.landscapes import double_well_1d

    land = double_well_1d()
    res = simulate_sde(land, lr=0.2, batch_size=1, sigma2=2.0, n_steps=300, n_particles=500, theta0=0.0, seed=3,
                       observers=[Basins(every=300)])
    p, se = res.basin_probabilities()
    q, se_q = res.basin_probabilities(land)
    np.testing.assert_array_equal(p, q)
    labels = land.basin_index(res.finite())
    m = res.finite().shape[0]
    np.testing.assert_allclose(p, np.bincount(labels, minlength=2) / m, rtol=0, atol=0)
    np.testing.assert_allclose(se, np.sqrt(p * (1 - p) / m), rtol=1e-15)
    assert 0.05 < p[0] < 0.95  # the start at the barrier top splits the particles: both basins occupied
    np.testing.assert_array_equal(res.basin_probabilities(at=0)[0], res.basin_counts[0] / m)
