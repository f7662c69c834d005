"""Fast versions of the noise-geometry experiments (validation.protocols.geometry).

Statistical margins: ensemble means are compared with 4 standard errors (two-sided false-alarm
probability ~6e-5 per comparison under a normal approximation); fractions use the binomial
standard error sqrt(p(1-p)/M) with p floored at 1/M so that a 0/M or M/M outcome still carries
a margin.  All runs are seeded, so the tests are deterministic; the margins make them
insensitive to the seed.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from validation.protocols.geometry import (
    run_cyclical_experiment,
    run_escape_experiment,
    run_second_moment_check,
    triangular_schedule,
)

Z = 4.0  # standard errors, see module docstring


def _se_frac(p, m):
    p = min(max(p, 1.0 / m), 1 - 1.0 / m)
    return math.sqrt(p * (1 - p) / m)


def test_triangular_schedule():
    """Triangular schedule: starts at lr_low, peaks at lr_high mid-cycle, mean over whole cycles = (low+high)/2."""
    s = triangular_schedule(400, lr_low=0.02, lr_high=0.2, period=100)
    assert s[0] == pytest.approx(0.02) and s[50] == pytest.approx(0.2)
    assert s.mean() == pytest.approx(0.11, rel=1e-12)
    with pytest.raises(ValueError, match="lr_high"):
        triangular_schedule(10, lr_low=0.2, lr_high=0.1, period=5)


# ----------------------------------------------------------------------------- escape
def test_second_moment_matches_exact_operator():
    """E[w_t w_t^T] of minibatch SGD (i.i.d. batches, with replacement) on interpolating least squares
    equals Op^t M_0 (exact theory): E||w_t||^2 and E(u_1^T w_t)^2 after t = 2 steps, 20000 particles,
    within 4 standard errors; the noise-free (GD) prediction is rejected by the same data.
    (t is kept small: the squared norm of a product of random matrices grows heavy tails with t,
    which would make the sample standard error unreliable.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = run_second_moment_check(seed=4)
    z = np.abs(out["measured"] - out["predicted"]) / out["stderr"]
    assert np.all(z < Z), z
    z_wrong = np.abs(out["measured"] - out["predicted_noise_free"]) / out["stderr"]
    assert np.all(z_wrong > Z), z_wrong


def test_gd_escapes_along_top_sgd_along_flatter_directions():
    """Escape from an interpolating least-squares minimum: GD (lr lambda_1 = 2.1) leaves along u_1
    (mean squared overlap >= 0.99); SGD (S = 4, lr lambda_1 = 1.8, where GD would be stable) leaves
    with at least a quarter of the squared norm off u_1 (mean overlap + 4 SE < 0.75), flat-half
    share - 4 SE > 0.05 and Rayleigh ratio + 4 SE < 0.85.  (Full-size values: see the validation check.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = run_escape_experiment(n_particles=120, n_steps=250, sgd_lr_factors=(1.8,), seed=7)
    gd, sgd = out["results"]
    assert gd.escaped.all() and sgd.escaped.all()
    assert gd.top_overlap.mean() >= 0.99
    se = lambda a: a.std(ddof=1) / math.sqrt(a.size)  # noqa: E731
    assert sgd.top_overlap.mean() + Z * se(sgd.top_overlap) < 0.75
    assert sgd.flat_share.mean() - Z * se(sgd.flat_share) > 0.05
    assert sgd.rayleigh.mean() + Z * se(sgd.rayleigh) < 0.85
    # theory (exact second-moment escape mode) agrees qualitatively
    assert gd.theory_top == 1.0 and sgd.theory_top < 0.75 and sgd.theory_growth > 1.0


# ----------------------------------------------------------------------------- cyclical LR
def test_cyclical_lr_reaches_flat_minimum_constant_does_not():
    """Same mean LR: SGD with a triangular cyclical LR ends in the flat basin far more often than SGD
    at the constant mean LR (difference of fractions > 4 binomial SEs of each), and ends flatter
    (mean final lambda_max lower by > 4 SE); GD with the same cyclical schedule stays in the sharp
    basin (its escape is along the sharp direction and is undone in the low-LR phase)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = run_cyclical_experiment(n_particles=80, seed=11)
    res = {r.label: r for r in out["results"]}
    const, cyc, gd_cyc = res["SGD constant"], res["SGD cyclical"], res["GD cyclical"]
    m_c, m_y = const.basin.size, cyc.basin.size
    assert m_c >= 60 and m_y >= 60  # at most a quarter diverged (flagged, excluded)
    p_c, p_y = np.mean(const.basin == 1), np.mean(cyc.basin == 1)
    assert p_y - p_c > Z * (_se_frac(p_c, m_c) + _se_frac(p_y, m_y))
    se = lambda a: a.std(ddof=1) / math.sqrt(a.size) if a.size > 1 else 0.0  # noqa: E731
    assert const.sharpness.mean() - cyc.sharpness.mean() > Z * (se(const.sharpness) + se(cyc.sharpness)) + 1e-9
    assert np.all(gd_cyc.basin == 0)
