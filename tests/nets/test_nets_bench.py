"""Smoke test of benchmarks/bench_nets.py (tiny sizes, synthetic data): it runs and reports ratios."""
import importlib.util
from pathlib import Path


def _bench_module():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_nets.py"
    spec = importlib.util.spec_from_file_location("bench_nets", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_runs(tmp_path):
    out = _bench_module().main(["--synthetic", "--train-size", "256", "--width", "16", "--k", "2",
                                "--batch-sizes", "32", "--json", str(tmp_path / "b.json")])
    row = out["rows"][0]
    assert out["data"] == "synthetic" and row["batch_size"] == 32
    for k in ("dataloader_samples_per_s", "on_device_samples_per_s", "vmap_grid_samples_per_s", "eager_step_s"):
        assert row[k] > 0
    assert row["eager_matches_eager"] and "cuda-graph_step_s" not in row   # no graph path on a CPU
    assert (tmp_path / "b.json").is_file()


def test_bench_times_fig1_measurements():
    out = _bench_module().main(["--synthetic", "--train-size", "256", "--width", "16", "--k", "2", "--batch-sizes", "32",
                    "--measure", "--no-lanczos"])
    assert out["fig1_measure_final_s"] > 0 and out["fig1_measure_tracked_s"] > 0
    # 31 runs (the 5 × 5 grid and 2 more seeds at 3 points), each: one end-of-run set + 7 tracked sets
    # (every 25 of 200 epochs, the last excluded)
    assert out["fig1_runs"] == 31
    assert out["fig1_measure_grid_s"] == 31 * (out["fig1_measure_final_s"] + 7 * out["fig1_measure_tracked_s"])
