"""Every script in examples/ runs at toy size (``--toy``) and finishes without error."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))

# what an example must print or write at toy size, beyond running (stdout, stderr, files in its folder)
EXPECT = {
    "own_landscape": dict(stdout=[r"Laplace \(eq\. 3\)\s+0\.\d+", r"Gibbs, exact quadrature\s+0\.\d+",
                                  r"Fokker-Planck .*\s0\.\d+", r"exact minibatch SGD .*0\.\d+ ± 0\.\d+"],
                          files=["own_landscape.png"]),
    # the sweep's lowest noise cannot equilibrate in 8,000 steps: the library must say so
    "noise_sweep": dict(stdout=[r"NOT EQUILIBRATED", r"threshold noise n\* = 0\.07"],
                        stderr=[r"NotEquilibratedWarning: n_steps = 8000 is shorter than the \d+ steps"],
                        files=["noise_sweep.png"]),
}


def test_there_are_examples():
    assert len(EXAMPLES) >= 1


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_at_toy_size(script, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    # the checkout under test, whatever copy of the packages is installed
    env["PYTHONPATH"] = str(script.parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, str(script), "--toy"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.strip(), "an example prints its results"
    expect = EXPECT.get(script.stem, {})
    for stream in ("stdout", "stderr"):
        for pattern in expect.get(stream, []):
            assert re.search(pattern, getattr(proc, stream)), (pattern, getattr(proc, stream)[-3000:])
    for name in expect.get("files", []):
        assert (tmp_path / name).is_file(), name
