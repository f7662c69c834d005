"""Escape-time theory (theory.escape) on the symmetric quartic double well L = (x² − 1)²/4.

Its derivatives give the first Laplace corrections exactly: at the minimum a = −1, L'' = 2,
L''' = −6, L'''' = 6, so c_a = 5·36/(24·8) − 6/(8·4) = 0.75; at the barrier top s = 0, L'' = −1,
L''' = 0, L'''' = 6, so c_s = 6/8 = 0.75: τ_exact/τ_Kramers − 1 = 1.5·T + O(T²)."""
import pytest

from theory.escape import exact_mfpt_1d, kramers_mfpt_1d
from theory.landscapes import QuarticDoubleWell

C_EXACT = 1.5


@pytest.fixture(scope="module")
def gaps():
    land = QuarticDoubleWell(tilt=0.0)
    out = {}
    for temp in (0.025, 0.0125):
        exact = exact_mfpt_1d(land, -1.0, 1.0, temp, -3.0)
        out[temp] = (exact / kramers_mfpt_1d(land, 0, 0.0, temp) - 1,
                     exact / kramers_mfpt_1d(land, 0, 0.0, temp, first_order=True) - 1)
    return out


def test_kramers_gap_is_first_order_with_the_laplace_coefficient(gaps):
    """(τ_exact/τ_K − 1)/T tends to c_a + c_s = 1.5: the Richardson extrapolation 2g(T/2) − g(T)
    from T = ΔL/10 and ΔL/20 is within 0.1 of it and closer than g(T/2); a Kramers law without its
    O(T) correction, or with a coefficient of 1 (the bound the escape check assumed), is off."""
    g1, g2 = gaps[0.025][0] / 0.025, gaps[0.0125][0] / 0.0125
    extrapolated = 2 * g2 - g1
    assert abs(extrapolated - C_EXACT) < 0.1, (g1, g2, extrapolated)
    assert abs(extrapolated - C_EXACT) < abs(g2 - C_EXACT)
    assert abs(extrapolated - 1.0) > 0.3


def test_first_order_kramers_leaves_a_second_order_remainder(gaps):
    """With the correction the relative error is O(T²): halving T divides it by 4 (within [3.5, 5.5])."""
    r1, r2 = gaps[0.025][1], gaps[0.0125][1]
    assert 3.5 < r1 / r2 < 5.5, (r1, r2)
    assert abs(r2) < 0.1 * abs(gaps[0.0125][0])


def test_bad_input():
    land = QuarticDoubleWell(tilt=0.0)
    with pytest.raises(ValueError, match="temperature"):
        exact_mfpt_1d(land, -1.0, 1.0, 0.0, -3.0)
    with pytest.raises(ValueError, match="x_start"):
        exact_mfpt_1d(land, 1.0, -1.0, 0.1, -3.0)
