"""The README's "Using the pieces" snippet runs as printed and prints what the README says it prints.

The snippet is taken from README.md itself (the first ```python block under the heading) and run in a
fresh interpreter in a temporary directory, so the README cannot drift from the code.  Its printed
output is compared with the ```text block that follows: the same words line by line, and the same
numbers to within 0.002.  The snippet is seeded, so its numbers repeat exactly on one machine; 0.002
leaves room for a last-digit change of a simulated P(A) where another CPU's libm rounds a particle
across a basin boundary (one particle in 16,000 moves P(A) by 6e-5), while any change of settings,
landscape or method moves them by more (e.g. the finite-lr bias of SGD is 0.007).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
NUMBER = re.compile(r"[-+]?\d[\d_]*\.?\d*(?:e[-+]?\d+)?")


def _section() -> str:
    text = README.read_text()
    assert "## Using the pieces" in text, "README lost its 'Using the pieces' section"
    return text.split("## Using the pieces", 1)[1].split("\n## ", 1)[0]


def _block(section: str, lang: str) -> str:
    found = re.search(rf"```{lang}\n(.*?)```", section, re.S)
    assert found, f"no ```{lang} block under 'Using the pieces'"
    return found.group(1)


def _numbers(line: str) -> list[tuple[float, bool]]:
    """(value, is a decimal) of each number in ``line``; integers (steps, particles) must match exactly."""
    return [(float(x.replace("_", "")), "." in x or "e" in x) for x in NUMBER.findall(line)]


def test_readme_snippet_runs_and_prints_what_the_readme_shows(tmp_path):
    section = _section()
    code, shown = _block(section, "python"), _block(section, "text")
    env = dict(os.environ, MPLBACKEND="Agg")
    env["PYTHONPATH"] = str(README.parent) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / "run.npz").is_file()
    printed = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    expected = [ln for ln in shown.splitlines() if ln.strip()]
    assert len(printed) == len(expected), proc.stdout
    for got, want in zip(printed, expected):
        assert NUMBER.sub("#", got) == NUMBER.sub("#", want), (got, want)
        for (a, _), (b, decimal) in zip(_numbers(got), _numbers(want)):
            assert abs(a - b) <= (2e-3 if decimal else 0.0), (got, want)
    assert any("P(A): exact SGD" in ln for ln in printed), "the snippet shows P(A) from a result object"
