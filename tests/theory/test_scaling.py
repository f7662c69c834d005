"""Property tests for theory.scaling (App. B rescaled time, Sec. 4.2 lr <-> batch-size exchange)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theory import gibbs, scaling

SET = settings(max_examples=25, deadline=None)

lrs = st.floats(1e-4, 1.0)
batches = st.floats(1.0, 1000.0)
betas = st.floats(1e-1, 10.0)


@SET
@given(lrs, st.floats(10.0, 1000.0), betas, st.floats(1e-2, 10.0))
def test_rescale_preserves_noise_and_temperature(lr, s, beta, s2):
    """rescale: (lr, S) -> (beta lr, beta S) keeps n = lr/S and T = n sigma2/2 (eq. 2, App. B)."""
    lr2, s2_ = scaling.rescale(lr, s, beta)
    assert lr2 == pytest.approx(beta * lr, rel=1e-15) and s2_ == pytest.approx(beta * s, rel=1e-15)
    assert scaling.is_same_noise(lr, s, lr2, s2_, rtol=1e-13)
    assert not scaling.is_same_noise(lr, s, lr2 * 1.001, s2_, rtol=1e-6)
    assert gibbs.temperature(lr2, s2_, s2) == pytest.approx(gibbs.temperature(lr, s, s2), rel=1e-13)


@SET
@given(st.integers(0, 10**6), lrs, betas)
def test_rescaled_time(steps, lr, beta):
    """t_eta = lr * t (App. B eq. 15); at beta lr the same t_eta is reached in steps/beta steps."""
    assert scaling.rescaled_time(steps, lr) == pytest.approx(lr * steps, rel=1e-15)
    assert scaling.rescaled_time(steps / beta, beta * lr) == pytest.approx(lr * steps, rel=1e-13, abs=1e-300)


@SET
@given(st.integers(0, 10**5), st.integers(1, 1000), st.integers(1000, 10**5))
def test_epochs(steps, s, n):
    """epochs = steps * S / N (passes over the data)."""
    assert scaling.epochs(steps, s, n) == pytest.approx(steps * s / n, rel=1e-15)


@SET
@given(st.lists(st.floats(1e-3, 1e-1), min_size=1, max_size=50), st.floats(1.0, 256.0), st.floats(1e-1, 10.0))
def test_lr_batch_schedule_round_trip(lr_values, s, lr_fixed):
    """lr_k / S == lr_fixed / S'_k at every step, and batch -> lr maps back exactly (inverse maps)."""
    lr_values = np.array(lr_values)
    sb = scaling.lr_schedule_to_batch_schedule(lr_values, s, lr_fixed)
    np.testing.assert_allclose(lr_values / s, lr_fixed / sb, rtol=1e-14)
    back = scaling.batch_schedule_to_lr_schedule(sb, lr_fixed, s)
    np.testing.assert_allclose(back, lr_values, rtol=1e-14)
    assert np.all(scaling.is_same_noise(lr_values, s, lr_fixed, sb, rtol=1e-13))


def test_paper_fig4_example():
    """Paper Fig. 4 / Sec. 4.2: cyclic lr 0.001..0.005 at S = 128  <->  cyclic S 640..128 at lr 0.005."""
    lr_sched = scaling.schedule_values("cyclic_triangular", 40, base=0.001, peak=0.005, period=20)
    sb, err = scaling.lr_schedule_to_batch_schedule(lr_sched, 128, 0.005, round_to_int=True)
    assert sb.max() == 640 and sb.min() == 128
    assert sb[0] == 640 and sb[10] == 128
    # rounding to integers changes n by at most 0.5 / S_int relatively
    assert err <= 0.5 / sb.min()
    np.testing.assert_array_equal(
        scaling.lr_schedule_to_batch_schedule([0.001, 0.005], 128, 0.005), [640.0, 128.0]
    )


@SET
@given(st.lists(st.floats(1e-3, 1e-1), min_size=1, max_size=50), st.integers(1, 256), st.floats(1e-1, 10.0))
def test_round_to_int_reports_max_relative_noise_error(lr_values, s, lr_fixed):
    """round_to_int returns integer batch sizes and max_k |lr_fixed/S_int - lr_k/S| / (lr_k/S),
    which is <= 0.5 / min S_int (|S_int - S'| <= 1/2)."""
    lr_values = np.array(lr_values)
    sb, err = scaling.lr_schedule_to_batch_schedule(lr_values, s, lr_fixed, round_to_int=True)
    assert sb.dtype.kind == "i"
    exact = lr_values / s
    expected = np.max(np.abs(lr_fixed / sb - exact) / exact)
    assert err == pytest.approx(expected, rel=1e-12, abs=1e-300)
    assert err <= 0.5 / sb.min() + 1e-15


def test_schedule_conversion_bounds():
    """Equivalent batch sizes must satisfy 1 <= S' (<= n_samples when given): ValueError naming batch_size."""
    with pytest.raises(ValueError, match="batch_size"):
        scaling.lr_schedule_to_batch_schedule([0.1, 1.0], 1, 0.5)  # S' = 0.5
    with pytest.raises(ValueError, match="batch_size"):
        scaling.lr_schedule_to_batch_schedule([0.001], 128, 0.005, n_samples=500)  # S' = 640 > 500
    with pytest.raises(ValueError, match="lr_values"):
        scaling.lr_schedule_to_batch_schedule([0.0], 128, 0.005)
    with pytest.raises(ValueError, match="batch_size"):
        scaling.batch_schedule_to_lr_schedule([0.5, 2.0], 0.1, 10)
    with pytest.raises(ValueError, match="lr"):
        scaling.batch_schedule_to_lr_schedule([2.0], -0.1, 10)
    with pytest.raises(ValueError, match="beta"):
        scaling.rescale(0.1, 10, 0.0)
    with pytest.raises(ValueError, match="batch_size"):
        scaling.rescale(0.1, 10, 0.05)  # beta S = 0.5
    with pytest.raises(ValueError, match="lr"):
        scaling.rescale(np.nan, 10, 2.0)
    with pytest.raises(ValueError, match="batch_size"):
        scaling.epochs(10, 200, 100)


# ---------------------------------------------------------------------------- schedule shapes
@SET
@given(st.floats(1e-3, 1.0), st.floats(1.5, 10.0), st.integers(2, 20), st.integers(1, 5))
def test_triangular_schedule(base, ratio, period, spe):
    """Triangle base -> peak -> base each period: v_k = base + (peak - base)(1 - |2u - 1|), u = phase;
    values in [base, peak], periodic, v = base at the start of every period, peak at half period,
    symmetric within a period."""
    peak = base * ratio
    p_steps = period * spe
    v = scaling.schedule_values("cyclic_triangular", 3 * p_steps, base=base, peak=peak, period=period,
                                steps_per_epoch=spe)
    assert v.dtype == np.float64 and v.shape == (3 * p_steps,)
    assert np.all(v >= base * (1 - 1e-15)) and np.all(v <= peak * (1 + 1e-15))
    np.testing.assert_allclose(v[:p_steps], v[p_steps:2 * p_steps], rtol=1e-12)
    np.testing.assert_allclose(v[::p_steps], base, rtol=1e-15)
    if p_steps % 2 == 0:
        assert v[p_steps // 2] == pytest.approx(peak, rel=1e-14)
    np.testing.assert_allclose(v[1:p_steps], v[1:p_steps][::-1], rtol=1e-12)


@SET
@given(st.floats(1e-3, 1.0), st.floats(1.5, 10.0), st.integers(1, 10), st.integers(1, 5))
def test_discrete_cyclic_schedule(base, ratio, half, spe):
    """Discrete cycle: base for the first half period, peak for the second (App. F.4)."""
    peak = base * ratio
    period = 2 * half
    p_steps = period * spe
    v = scaling.schedule_values("cyclic_discrete", 2 * p_steps, base=base, peak=peak, period=period,
                                steps_per_epoch=spe)
    expected = np.tile(np.r_[np.full(p_steps // 2, base), np.full(p_steps // 2, peak)], 2)
    np.testing.assert_array_equal(v, expected)


def test_step_and_constant_schedules():
    """step: multiplied by factor at each milestone epoch; constant: base everywhere."""
    v = scaling.schedule_values("step", 12, base=0.1, milestones=[2, 4], factor=0.1, steps_per_epoch=2)
    np.testing.assert_allclose(v, [0.1] * 4 + [0.01] * 4 + [0.001] * 4, rtol=1e-15)
    np.testing.assert_array_equal(scaling.schedule_values("constant", 5, base=0.3), np.full(5, 0.3))
    assert scaling.schedule_values("constant", 0, base=0.3).shape == (0,)
    sch = scaling.Schedule("cyclic_triangular", base=0.001, peak=0.005, period=4, steps_per_epoch=3)
    np.testing.assert_array_equal(
        sch.values(30),
        scaling.schedule_values("cyclic_triangular", 30, base=0.001, peak=0.005, period=4, steps_per_epoch=3),
    )


def test_schedule_bad_inputs():
    """Schedules validate kind and parameters (ValueError naming the parameter)."""
    with pytest.raises(ValueError, match="kind"):
        scaling.schedule_values("cosine", 10, base=0.1)
    with pytest.raises(ValueError, match="base"):
        scaling.schedule_values("constant", 10, base=0.0)
    with pytest.raises(ValueError, match="peak"):
        scaling.schedule_values("cyclic_triangular", 10, base=0.1, period=4)
    with pytest.raises(ValueError, match="period"):
        scaling.schedule_values("cyclic_discrete", 10, base=0.1, peak=0.5, period=0.0)
    with pytest.raises(ValueError, match="milestones"):
        scaling.schedule_values("step", 10, base=0.1, milestones=[5, 2], factor=0.1)
    with pytest.raises(ValueError, match="factor"):
        scaling.schedule_values("step", 10, base=0.1, milestones=[5], factor=-1.0)
    with pytest.raises(ValueError, match="n_steps"):
        scaling.schedule_values("constant", -1, base=0.1)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        scaling.schedule_values("constant", 5, base=0.1, steps_per_epoch=0)
    with pytest.raises(ValueError, match="peak"):
        scaling.Schedule("cyclic_discrete", base=0.1, period=2)
