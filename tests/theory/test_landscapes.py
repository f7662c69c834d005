"""Landscapes: derivatives, minima, basins, kernels and bad input.

Tolerances: central finite differences with step h have error O(h²·|f'''|) + O(ε/h) round-off;
with h = 1e-5 and O(1) derivatives that is ≤ 1e-8, so 1e-6 leaves a wide margin while still
catching any wrong term (which would be O(1))."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theory.landscapes import (
    GaussianWells,
    IsotropicNoiseFiniteSum,
    LeastSquares,
    Minimum,
    Quadratic,
    QuarticDoubleWell,
    double_well_1d,
    multi_well,
    wells_2d,
)

H = 1e-5


def _landscapes():
    rng = np.random.default_rng(3)
    return [
        Quadratic([[2.0, 0.5], [0.5, 1.0]], center=[0.3, -0.2], l2=0.1),
        QuarticDoubleWell(0.1, l2=0.02),
        double_well_1d(),
        wells_2d(),
        multi_well(5, 3),
        LeastSquares(rng.standard_normal((40, 3)), rng.standard_normal(40), l2=0.05),
        IsotropicNoiseFiniteSum(wells_2d(), 50, 0.3, seed=1),
    ]


LANDSCAPES = _landscapes()
IDS = [type(l).__name__ + str(l.dim) for l in LANDSCAPES]


@pytest.mark.parametrize("land", LANDSCAPES, ids=IDS)
def test_gradient_and_hessian_match_finite_differences(land):
    """∇L = central differences of L and ∇²L = central differences of ∇L (to O(h²))."""
    rng = np.random.default_rng(0)
    pts = rng.uniform(-2, 2, size=(5, land.dim))
    g = land.gradient(pts)
    hess = land.hessian(pts)
    for k in range(land.dim):
        e = np.zeros(land.dim)
        e[k] = H
        fd = (land.value(pts + e) - land.value(pts - e)) / (2 * H)
        np.testing.assert_allclose(g[:, k], fd, atol=1e-6, rtol=1e-6)
        fd_h = (land.gradient(pts + e) - land.gradient(pts - e)) / (2 * H)
        np.testing.assert_allclose(hess[:, :, k], fd_h, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("land", LANDSCAPES, ids=IDS)
def test_kernels_match_numpy(land):
    """The numba kernels compute the same value and gradient as the vectorised NumPy code."""
    k = land.kernels
    rng = np.random.default_rng(1)
    for theta in rng.uniform(-2, 2, size=(4, land.dim)):
        out = np.empty(land.dim)
        k.grad(theta, land.params, out)
        np.testing.assert_allclose(out, land.gradient(theta[None])[0], rtol=1e-12, atol=1e-12)
        assert math.isclose(k.value(theta, land.params), float(land.value(theta[None])[0]), rel_tol=1e-12, abs_tol=1e-12)


@pytest.mark.parametrize("land", [l for l in LANDSCAPES if hasattr(l, "n_samples")], ids=lambda l: type(l).__name__)
def test_finite_sum_consistency(land):
    """L = mean of l_i, ∇L = mean of ∇l_i, batch kernel = mean over the batch, C(θ) = covariance."""
    theta = np.linspace(-0.5, 0.7, land.dim)
    np.testing.assert_allclose(land.sample_losses(theta).mean(), land.value(theta[None])[0], rtol=1e-12, atol=1e-12)
    g_i = land.sample_gradients(theta)
    np.testing.assert_allclose(g_i.mean(axis=0), land.gradient(theta[None])[0], rtol=1e-10, atol=1e-12)
    idx = np.array([0, 3, 3, 7], dtype=np.int64)
    out = np.empty(land.dim)
    land.kernels.batch_grad(theta, land.params, land.data, idx, out)
    np.testing.assert_allclose(out, g_i[idx].mean(axis=0), rtol=1e-10, atol=1e-12)
    cov = np.cov(g_i.T, bias=True)
    np.testing.assert_allclose(land.noise_covariance(theta), np.atleast_2d(cov), rtol=1e-10, atol=1e-12)
    c_k = np.empty((land.dim, land.dim))
    land.kernels.noise_cov(theta, land.params, land.data, c_k)
    np.testing.assert_allclose(c_k, np.atleast_2d(cov), rtol=1e-10, atol=1e-12)


def test_isotropic_finite_sum_has_exact_covariance():
    """Σξ_i = 0 and (1/N)Σξ_iξ_iᵀ = σ²I exactly, at every θ; full-batch loss = base loss."""
    base = wells_2d()
    land = IsotropicNoiseFiniteSum(base, 30, 0.7, seed=5)
    np.testing.assert_allclose(land.data.sum(axis=0), 0, atol=1e-12)
    for theta in ([0.0, 0.0], [1.0, -2.0]):
        np.testing.assert_allclose(land.noise_covariance(np.array(theta)), 0.7 * np.eye(2), atol=1e-12)
        assert land.value(np.array(theta)[None])[0] == pytest.approx(base.value(np.array(theta)[None])[0])


@settings(max_examples=15, deadline=None)
@given(
    loss_a=st.floats(-0.5, 0.3), loss_b=st.floats(-0.5, 0.3),
    curv_a=st.floats(1.0, 8.0), curv_b=st.floats(1.0, 8.0),
)
def test_double_well_hits_targets(loss_a, curv_a, loss_b, curv_b):
    """double_well_1d: the numerically found minima have the requested loss and curvature.

    Domain: separated wells, width √(depth/curvature) ≤ √1.5 ≈ 1.2 against a separation of 4
    (overlapping wells merge, see test_overlapping_wells_are_a_clear_error)."""
    land = double_well_1d(loss_a, curv_a, loss_b, curv_b, separation=4.0, barrier=1.0)
    a, b = land.minima()
    assert a.loss == pytest.approx(loss_a, abs=1e-8) and b.loss == pytest.approx(loss_b, abs=1e-8)
    assert a.hessian[0, 0] == pytest.approx(curv_a, rel=1e-8)
    assert b.hessian[0, 0] == pytest.approx(curv_b, rel=1e-8)
    assert a.location[0] == pytest.approx(-2.0, abs=1e-8) and b.location[0] == pytest.approx(2.0, abs=1e-8)


def test_overlapping_wells_are_a_clear_error():
    """A shallow, wide well next to another merges into one minimum: say so, never return it."""
    with pytest.raises(ValueError, match="overlap"):
        double_well_1d(0.0, 0.5, 0.5, 0.5, separation=4.0, barrier=1.0)


def test_wells_2d_hits_anisotropic_targets():
    hess = (((1.0, 0.3), (0.3, 0.5)), ((4.0, 0.0), (0.0, 3.0)))
    land = wells_2d(hessians=hess)
    for m, h in zip(land.minima(), hess):
        np.testing.assert_allclose(m.hessian, h, atol=1e-8)
        assert np.allclose(np.linalg.norm(land.gradient(m.location[None])[0]), 0, atol=1e-10)
    assert [m.loss for m in land.minima()] == pytest.approx([0.0, 0.1], abs=1e-8)


def test_multi_well_per_direction_curvatures():
    curv = np.array([[1.0] * 8, [2.0] * 4 + [0.5] * 4])
    land = multi_well(8, 2, curvatures=curv)
    for m, c in zip(land.minima(), curv):
        np.testing.assert_allclose(np.diag(m.hessian), c, atol=1e-7)
        assert m.logdet == pytest.approx(np.sum(np.log(c)), abs=1e-6)


def test_quadratic_minimum_is_exact():
    hmat = np.array([[3.0, 1.0], [1.0, 2.0]])
    land = Quadratic(hmat, center=[1.0, -1.0], l2=0.25)
    (m,) = land.minima()
    full = hmat + 0.5 * np.eye(2)
    np.testing.assert_allclose(m.location, np.linalg.solve(full, hmat @ [1.0, -1.0]), atol=1e-12)
    np.testing.assert_allclose(m.hessian, full, atol=1e-12)


def test_basin_index_1d_uses_barrier():
    land = QuarticDoubleWell(0.1)
    a, b = land.minima()
    idx = land.basin_index(np.array([-2.0, a.location[0], b.location[0], 2.0]))
    assert list(idx) == [0, 0, 1, 1]
    # the barrier of (x²−1)²/4 + 0.1x is the root of x³ − x + 0.1 near 0.1
    xs = land._saddle_cache[0]
    assert xs**3 - xs + 0.1 == pytest.approx(0.0, abs=1e-9)
    assert land.basin_index(np.array([xs - 1e-6, xs + 1e-6])).tolist() == [0, 1]


def test_basin_index_2d_gradient_flow():
    """Points near a minimum belong to it; the basin split of a symmetric pair is the midplane."""
    land = GaussianWells([[-1.5, 0.0], [1.5, 0.0]], [1.0, 1.0], [[1.0, 1.0], [1.0, 1.0]], offset=1.0, l2=0.05)
    pts = np.array([[-1.4, 0.1], [1.6, -0.2], [-0.2, 1.0], [0.2, -1.0], [-3.0, 2.0], [3.0, 2.0]])
    assert land.basin_index(pts).tolist() == [0, 1, 0, 1, 0, 1]


def test_bounds_hold_the_mass():
    land = wells_2d()
    low, high = land.bounds(0.05)
    for m in land.minima():
        assert np.all(m.location > low) and np.all(m.location < high)
    # on the box faces the density is negligible: L ≥ L_min + 40 T (default threshold)
    face = np.column_stack([np.full(50, low[0]), np.linspace(low[1], high[1], 50)])
    assert np.min(land.value(face)) >= 40 * 0.05 - 1e-9


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Quadratic([[1.0, 0.0], [0.0, -1.0]]), "hessian"),
        (lambda: Quadratic([[1.0, 2.0], [0.0, 1.0]]), "hessian"),
        (lambda: QuarticDoubleWell(float("nan")), "tilt"),
        (lambda: QuarticDoubleWell(0.1, l2=-1.0), "l2"),
        (lambda: GaussianWells([[0.0]], [-1.0], [[1.0]]), "depths"),
        (lambda: double_well_1d(loss_a=2.0, barrier=1.0), "offset"),
        (lambda: IsotropicNoiseFiniteSum(QuarticDoubleWell(), 10, 0.0), "sigma2"),
        (lambda: IsotropicNoiseFiniteSum(Quadratic(np.eye(3)), 3, 1.0), "n_samples"),
        (lambda: LeastSquares(np.ones((3, 2)), np.ones(4)), "rows"),
        (lambda: Minimum([0.0], 0.0, [[-1.0]]), "hessian"),
        (lambda: Minimum([0.0, 1.0], 0.0, [[1.0]]), "hessian"),
    ],
)
def test_bad_input_names_the_parameter(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_minimum_logdet_is_stable_in_high_dimension():
    """log det via Cholesky: no overflow for det H = 1e400."""
    m = Minimum(np.zeros(200), 0.0, np.eye(200) * 100.0)
    assert m.logdet == pytest.approx(200 * math.log(100.0))


def test_value_shapes():
    land = wells_2d()
    assert np.shape(land.value(np.zeros((3, 4, 2)))) == (3, 4)
    assert isinstance(land.value(np.zeros(2)), float)
    dw = QuarticDoubleWell()
    assert np.shape(dw.value(np.zeros(5))) == (5,)
    assert np.shape(dw.gradient(np.zeros(5))) == (5,)
    with pytest.raises(ValueError, match="dim"):
        land.value(np.zeros((3, 3)))


def test_basin_index_compiled_and_numpy_paths_agree():
    """The compiled gradient-flow classifier and the NumPy fallback (landscapes without kernels)
    run the same descent and must give the same basins."""
    land = wells_2d()

    class NoKernels(type(land)):
        @property
        def kernels(self):
            raise NotImplementedError

    plain = NoKernels(land.centers, land.depths, land.precisions, land.offset, land.l2)
    pts = np.random.default_rng(2).uniform(-4, 4, size=(400, 2))
    assert np.array_equal(land.basin_index(pts), plain.basin_index(pts))
