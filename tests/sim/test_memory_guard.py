"""Sizes that cannot fit are refused before anything is allocated, naming the parameter that sizes
the arrays (theory._checks.check_fits_memory); sizes that fit run as before."""
from __future__ import annotations

import numpy as np
import pytest

import theory._checks as checks
from sim.observers import Record
from sim.sde import simulate_sde
from theory.landscapes import Quadratic


@pytest.fixture
def memory(monkeypatch):
    """Pretend this many bytes are available."""
    def set_available(n_bytes):
        monkeypatch.setattr(checks, "available_memory", lambda: n_bytes)
    return set_available


def _run(n_particles, **kw):
    return simulate_sde(Quadratic([[1.0]]), lr=0.1, batch_size=1, sigma2=1.0, n_steps=kw.pop("n_steps", 5),
                        n_particles=n_particles, theta0=0.0, seed=0, **kw)


def test_the_estimate_is_the_particle_arrays(memory):
    """The engine holds positions, velocities (float64, M x d each) and divergence steps (int64, M):
    8·M·(2d + 1) bytes.  The estimate is a lower bound of what a run allocates (measured by
    tracemalloc, which sees NumPy's allocations), so the guard never refuses a run that would fit.
    With exactly that much available the run goes ahead; one byte less is refused."""
    import tracemalloc

    m = 1000
    need = 8 * m * (2 * 1 + 1)
    _run(m)                                   # compile first: numba's own allocations are not the run's
    tracemalloc.start()
    try:
        _run(m)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak >= need
    memory(need)
    _run(m)
    memory(need - 1)
    with pytest.raises(checks.TooLargeError, match=r"^n_particles = 1000: the particle states .* needs at least "
                                                   r"23\.4 KiB but 23\.4 KiB of memory are available"):
        _run(m)


def test_the_largest_part_is_named(memory):
    """A Record of every step for 1,000 particles dwarfs the particle states: the observer is named."""
    memory(1 << 20)
    with pytest.raises(checks.TooLargeError, match=r"^Record every = 1: the recorded trajectory \(1001 records"):
        _run(1000, n_steps=1000, observers=[Record(1)])
    _run(1000, n_steps=1000, observers=[Record(100)])  # 11 records: 88 KB, fits


def test_unknown_memory_refuses_nothing(memory):
    memory(None)
    assert _run(10).n_particles == 10


def test_too_large_is_a_memory_error_and_a_bad_input():
    err = checks.TooLargeError("x")
    assert isinstance(err, MemoryError) and isinstance(err, ValueError)


def test_available_memory_is_positive_on_linux():
    avail = checks.available_memory()
    assert avail is None or avail > 0


@pytest.mark.parametrize("limit, current, inactive_file, room", [
    ("1000", "900", "500", 600),      # page cache the kernel would reclaim is room, not use
    ("1000", "900", None, 100),       # no memory.stat: the plain difference
    ("1000", "1200", "100", None),    # no room left by this count: unknown, refuse nothing on it
    ("max", "900", "500", None),      # no limit
])
def test_cgroup_room_leaves_out_reclaimable_cache(tmp_path, limit, current, inactive_file, room):
    """Under a cgroup v2 limit the room is limit − (memory.current − inactive_file): memory.current
    counts page cache, so after file I/O the plain difference can be near zero and would refuse
    every request (the wrong prediction checked by the first row: 100, not 600)."""
    (tmp_path / "memory.max").write_text(limit + "\n")
    (tmp_path / "memory.current").write_text(current + "\n")
    if inactive_file is not None:
        (tmp_path / "memory.stat").write_text(f"anon 300\nfile 700\ninactive_file {inactive_file}\nactive_file 200\n")
    assert checks._cgroup_room(str(tmp_path)) == room
