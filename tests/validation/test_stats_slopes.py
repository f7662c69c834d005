"""validation.stats.loglog_slope and fmt: exact power laws, the weighted SE against its closed form,
and the spread of fitted slopes of noisy power laws against the reported SE."""
from __future__ import annotations

import math

import numpy as np
import pytest

from validation.stats import fmt, loglog_slope


def test_exact_power_laws_have_their_exponent():
    x = np.array([1.0, 2.0, 4.0, 8.0])
    for p in (-1.0, 0.5, 2.0):
        s, se = loglog_slope(x, 3.0 * x**p)
        assert s == pytest.approx(p, abs=1e-12) and se < 1e-12
        s, se = loglog_slope(x, -3.0 * x**p, se=0.01 * 3.0 * x**p)
        assert s == pytest.approx(p, abs=1e-12)


def test_weighted_se_is_the_closed_form_and_matches_the_spread():
    """Equal relative errors e on y: log y has s.d. e at every point, so the slope's SE is
    e / sqrt(Σ(log x − mean)²); 4,000 noisy power laws have a slope spread equal to it (to 5%: the
    s.d. of a 4,000-sample s.d. is 1.1%, the delta method's O(e²) part is < 0.1% at e = 0.01)."""
    x = np.array([1.0, 2.0, 4.0, 8.0])
    e = 0.01
    lx = np.log(x)
    closed = e / math.sqrt(np.sum((lx - lx.mean()) ** 2))
    y = x**-1.0
    _, se = loglog_slope(x, y, se=e * y)
    assert se == pytest.approx(closed, rel=1e-12)
    rng = np.random.default_rng(1)
    slopes = [loglog_slope(x, y * (1 + e * rng.standard_normal(4)), se=e * y)[0] for _ in range(4000)]
    assert np.std(slopes) == pytest.approx(closed, rel=0.05)
    assert abs(np.mean(slopes) + 1.0) < 4 * closed / math.sqrt(4000)


def test_fmt():
    assert fmt([0.0123456, 2.0, 1e-7]) == "[0.0123, 2, 1e-07]"
    assert fmt(np.array([[1.23456]]), 2) == "[1.2]"
