"""Smoke test of benchmarks/bench_measure.py (tiny sizes, synthetic data): it runs, compares the
device Lanczos with scipy eigsh on the same Hessian, and times every measurement of fig1's set."""
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch


@pytest.fixture(scope="module")
def bm():
    """The benchmark script's functions (run as a file, not as __main__)."""
    return SimpleNamespace(**runpy.run_path(str(Path(__file__).resolve().parents[2] / "benchmarks" / "bench_measure.py")))


def test_bench_measure_runs(tmp_path, bm):
    out = bm.main(["--synthetic", "--width", "16", "--samples", "32", "--train-steps", "2",
                   "--json", str(tmp_path / "m.json")])
    lz = out["lanczos"]
    assert lz["lanczos"]["converged"] and lz["scipy"]["converged"]
    # same operator, same tol (1e-4): both within tol·|λ| of the top eigenvalue
    assert lz["relative_difference"] <= 2e-4 and lz["ratio_scipy_over_lanczos"] > 0
    # every measurement of fig1's full set (FULL_MEASURE + alignment) timed, none failed
    spec = bm.fig1_full_spec(32)
    assert set(out["set"]) == {k for k in spec if k not in ("samples", "seed")} and not out["errors"]
    assert spec["gradient_noise_stats"]["samples"] == spec["alignment"]["samples"] == 32
    assert out["per_run_s"] == out["set_wall_s"] + 7 * out["tracked_alignment_s"]
    assert (tmp_path / "m.json").is_file()


def test_time_measurements_takes_a_pair(bm):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    x, y = torch.randn(20, 12, dtype=torch.float64), torch.randint(0, 3, (20,))
    t = bm.time_measurements(model, (x, y), {"samples": 20, "hessian_top_eigenvalue": {"k": 1, "tol": 1e-6},
                                             "hessian_norm_fd": {"n_samples": 3}}, "cpu")
    assert set(t["measure_wall_s_by_key"]) == {"hessian_top_eigenvalue", "hessian_norm_fd"} and not t["errors"]
    assert t["convergence"] == {"hessian_top_eigenvalue": True}
    assert t["measure_wall_s"] >= sum(t["measure_wall_s_by_key"].values())
