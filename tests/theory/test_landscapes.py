"""Landscapes: one generic test over every registered class, derivatives, minima, basins and bad input.

The generic tests find every class derived from ``theory.landscapes.Landscape`` through
``theory.landscapes.REGISTRY`` and run on its ``example()``: a new landscape is tested by being
written, not by being added to a list here.

Tolerances (derived in each test): central differences with step h have truncation error
h²/6·|f'''| and rounding error ≈ ε·|f|/h; the compiled and the interpreted runs of the same source
differ only by rounding (no fast-math, no fused multiply-add), a few ulps per operation."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy.integrate import solve_ivp

from theory import minima as tminima
from theory.landscapes import (
    REGISTRY,
    FiniteSumLandscape,
    GaussianWells,
    IsotropicNoiseFiniteSum,
    Landscape,
    LeastSquares,
    Minimum,
    Quadratic,
    QuarticDoubleWell,
    SharpFlatValley,
    double_well_1d,
    multi_well,
    wells_2d,
)
from theory.two_layer import TwoLayerRegression  # noqa: F401 - registers itself

EPS = np.finfo(float).eps
NAMES = sorted(REGISTRY)


def _points(land, n, seed):
    """Random points near the landscape's minima (or the origin) at the scale of a few units."""
    try:
        centre = np.mean([m.location for m in land.minima()], axis=0)
    except (ValueError, NotImplementedError):  # no strict minimum (e.g. over-parameterised models)
        centre = np.zeros(land.dim)
    return centre + np.random.default_rng(seed).uniform(-1.5, 1.5, size=(n, land.dim))


def test_registry_holds_every_builtin():
    """The registry is filled by the classes themselves (a new class cannot be forgotten)."""
    assert {"Landscape", "FiniteSumLandscape", "Quadratic", "QuarticDoubleWell", "GaussianWells", "LeastSquares",
            "IsotropicNoiseFiniteSum", "ConstantNoiseFiniteSum", "SharpFlatValley", "TwoLayerRegression",
            "InterpolatingQuadratics"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_derivatives_match_differences(name):
    """∇L and ∇²L of every registered landscape agree with central differences of L and ∇L.

    Step h = 1e-4; tolerance = 10 × (the truncation error estimated by Richardson, |D(h) − D(h/2)|·4/3,
    plus the rounding bound 4ε·max|f|/h): a wrong term in a derivative is O(1) off."""
    land = REGISTRY[name].example()
    h = 1e-4
    for theta in _points(land, 4, 0):
        g = land.gradient(theta[None])[0]
        hess = land.hessian(theta[None])[0]
        for k in range(land.dim):
            e = np.zeros(land.dim)
            e[k] = 1.0

            def d_value(step):
                return (land.value(theta + step * e) - land.value(theta - step * e)) / (2 * step)

            def d_grad(step):
                return (land.gradient((theta + step * e)[None])[0]
                        - land.gradient((theta - step * e)[None])[0]) / (2 * step)

            fd, fd2 = d_value(h), d_value(h / 2)
            tol = 10 * (abs(fd - fd2) * 4 / 3 + 4 * EPS * max(1.0, abs(land.value(theta))) / h)
            assert abs(g[k] - fd) <= tol, (name, k, g[k], fd, tol)
            hd, hd2 = d_grad(h), d_grad(h / 2)
            tol_h = 10 * (np.abs(hd - hd2) * 4 / 3 + 4 * EPS * max(1.0, np.max(np.abs(g))) / h)
            assert np.all(np.abs(hess[:, k] - hd) <= tol_h), (name, k, hess[:, k], hd, tol_h)


@pytest.mark.parametrize("name", NAMES)
def test_compiled_equals_interpreted(name):
    """The numba-compiled functions equal the same plain functions run by Python/NumPy
    (``reference``): value, gradient and Hessian at random points, to rounding (64 ulps of the
    largest entry, times the number of summed samples for finite sums; a Hessian by central
    differences divides the gradients' rounding difference by its step ε^(1/3))."""
    land = REGISTRY[name].example()
    n_terms = getattr(land, "n_samples", 1)
    for theta in _points(land, 3, 1):
        v, g, hess = land.reference(theta)
        rounding = 64 * n_terms * EPS
        h_factor = 1.0 / EPS ** (1 / 3) / max(1.0, np.min(np.abs(theta))) if land._hessian_is_differenced() else 1.0
        for got, want, factor in ((land.value(theta[None])[0], v, 1.0), (land.gradient(theta[None])[0], g, 1.0),
                                  (land.hessian(theta[None])[0], hess, h_factor)):
            scale = 1.0 + np.max(np.abs(want)) + (np.max(np.abs(g)) if factor > 1 else 0.0)
            np.testing.assert_allclose(got, want, rtol=0, atol=rounding * factor * scale, err_msg=name)
        comp = land.compiled
        assert comp.value(theta, comp.params) == pytest.approx(v, rel=0, abs=64 * n_terms * EPS * (1 + abs(v)))
        out = np.empty(land.dim)
        comp.gradient(theta, comp.params, out)
        np.testing.assert_allclose(out, g, rtol=0, atol=64 * n_terms * EPS * (1 + np.max(np.abs(g))))


@pytest.mark.parametrize("name", [n for n in NAMES if issubclass(REGISTRY[n], FiniteSumLandscape)])
def test_finite_sum_consistency(name):
    """L = mean of l_j, ∇L = mean of ∇l_j, one sample's compiled gradient = its plain one, and
    C(θ) = (1/N) Σ (g_j − ḡ)(g_j − ḡ)ᵀ of the plain per-sample gradients."""
    land = REGISTRY[name].example()
    theta = _points(land, 1, 2)[0]
    tol = 64 * land.n_samples * EPS
    np.testing.assert_allclose(land.sample_losses(theta).mean(), land.value(theta[None])[0], rtol=tol, atol=tol)
    g_ref = land.reference_sample_gradients(theta)
    np.testing.assert_allclose(land.sample_gradients(theta), g_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(g_ref.mean(axis=0), land.gradient(theta[None])[0], rtol=tol, atol=tol)
    comp = land.compiled
    out, tmp = np.zeros(land.dim), np.empty(land.dim)
    comp.shared_gradient(theta, comp.params, out)
    comp.add_sample_gradient(theta, comp.params, 3, 1.0, out, tmp)
    np.testing.assert_allclose(out, g_ref[3], rtol=tol, atol=tol)
    gc = g_ref - g_ref.mean(axis=0)
    np.testing.assert_allclose(land.noise_covariance(theta), gc.T @ gc / land.n_samples, rtol=tol, atol=tol)


# ---------------------------------------------------------------------------------------------
# the from_functions route
# ---------------------------------------------------------------------------------------------
def test_hessian_by_differences_error_is_as_stated():
    """Without a Hessian, ∇²L is central differences of ∇L with h = ε^(1/3)·max(1, |θ|).  For the
    cubic gradient L' = x³ − x + 0.1 the truncation error is exactly h²·L⁗/6 = h² (the third
    derivative of L' is 6); with the rounding bound 4ε·max(1, |L'|)/h (two gradients) the error
    lies within the bound and above half the truncation term: the stated error is the real one."""
    exact = QuarticDoubleWell(0.1)
    fd = Landscape.from_functions(exact.functions.value, exact.functions.gradient, dim=1,
                                  minima_guesses=[[-1.0], [1.0]], params=(0.1,))
    for x in (-1.7, -0.4, 0.3, 1.2, 2.5):
        h = EPS ** (1 / 3) * max(1.0, abs(x))
        err = abs(fd.hessian(np.array([[x]]))[0, 0, 0] - exact.hessian(np.array([[x]]))[0, 0, 0])
        rounding = 4 * EPS * max(abs(x ** 3 - x + 0.1), 1.0) / h
        assert err <= h * h + rounding, (x, err)
        assert err >= 0.5 * h * h - rounding, (x, err)


def _wells(th):
    return 0.25 * (th[0] ** 2 - 1.0) ** 2 + 0.5 * th[1] ** 2


def _wells_grad(th):
    return np.array([th[0] ** 3 - th[0], th[1]])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(value=lambda th: np.nan, gradient=_wells_grad), "value .*NaN"),
        (dict(value=lambda th: np.array([1.0, 2.0]), gradient=_wells_grad), "value .*float"),
        (dict(value=lambda th: "a", gradient=_wells_grad), "value .*real numbers"),
        (dict(value=_wells, gradient=lambda th: np.array([th[0], th[1], 0.0])), "gradient .*shape"),
        (dict(value=_wells, gradient=lambda th: np.array([np.nan, th[1]])), "gradient .*NaN"),
        (dict(value=_wells, gradient=lambda th: th > 0), "gradient .*real numbers"),
        (dict(value=_wells, gradient=_wells_grad, hessian=lambda th: np.eye(3)), "hessian .*shape"),
        (dict(value=_wells, gradient=_wells_grad, minima_guesses=None), "minima_guesses"),
        (dict(value=_wells, gradient=_wells_grad, minima_guesses=np.zeros((0, 2))), "minima_guesses"),
        (dict(value=_wells, gradient=_wells_grad, params=("x",)), r"params\[0\]"),
        (dict(value=_wells, gradient=_wells_grad, l2=-1.0), "l2"),
    ],
)
def test_bad_user_functions_are_named(kwargs, match):
    """A user function returning NaN, the wrong shape or a non-number, missing minima guesses or a
    bad parameter: a one-line error naming the function or parameter."""
    kw = dict(dim=2, minima_guesses=[[-1.0, 0.0], [1.0, 0.0]])
    kw.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match) as info:
        Landscape.from_functions(kw.pop("value"), kw.pop("gradient"), kw.pop("hessian", None), **kw)
    assert "\n" not in str(info.value)


def test_function_numba_cannot_compile_is_named():
    """A function numba cannot compile (here: it reads an attribute of a Python object) is named,
    with numba's reason, in one line."""
    class Opaque:
        scale = 2.0

    obj = Opaque()

    def value(th):
        return obj.scale * th[0] ** 2 + th[1] ** 2

    with pytest.raises(TypeError, match="value .*numba cannot compile it") as info:
        Landscape.from_functions(value, lambda th: np.array([4 * th[0], 2 * th[1]]), dim=2,
                                 minima_guesses=[[0.0, 0.0]])
    assert "\n" not in str(info.value)


def test_non_positive_definite_minimum_is_an_error():
    """A minimum whose Hessian is not positive definite (L = x⁴ + y²: ∇²L(0) = diag(0, 2), a
    degenerate minimum without Laplace weight) is an error naming the guess that led to it."""
    land = Landscape.from_functions(lambda th: th[0] ** 4 + th[1] ** 2, lambda th: np.array([4 * th[0] ** 3, 2 * th[1]]),
                                    dim=2, minima_guesses=[[0.3, 0.5]])
    with pytest.raises(ValueError, match=r"minima_guesses\[0\].*not positive definite"):
        land.minima()


def test_out_parameter_and_returning_forms_agree():
    """A gradient written with ``out`` (no allocation) and one returning a tuple give the same landscape."""
    def grad_out(th, out):
        out[0] = th[0] ** 3 - th[0]
        out[1] = th[1]
        return out

    a = Landscape.from_functions(_wells, grad_out, dim=2, minima_guesses=[[-1.0, 0.0], [1.0, 0.0]])
    b = Landscape.from_functions(_wells, lambda th: (th[0] ** 3 - th[0], th[1]), dim=2,
                                 minima_guesses=[[-1.0, 0.0], [1.0, 0.0]])
    pts = np.random.default_rng(3).normal(size=(20, 2))
    np.testing.assert_array_equal(a.gradient(pts), b.gradient(pts))
    assert [m.loss for m in a.minima()] == [m.loss for m in b.minima()]


# ---------------------------------------------------------------------------------------------
# basins of attraction in 2-D
# ---------------------------------------------------------------------------------------------
def _tight_flow_basin(land, point, locs):
    """Reference basin: the gradient flow integrated by DOP853 at rtol 1e-12 to t = 400 (every
    trajectory of wells_2d has relaxed into a well long before)."""
    sol = solve_ivp(lambda t, y: -land.gradient(y[None])[0], (0, 400), point, method="DOP853", rtol=1e-12,
                    atol=1e-13)
    return int(np.argmin(np.sum((locs - sol.y[:, -1]) ** 2, axis=1)))


def test_flow_classifier_resolves_the_separatrix():
    """Points 0.01 (half a grid spacing of a 401-node quadrature over the Gibbs box) on either side
    of the separatrix of wells_2d, on lines far from the axis joining the minima, are classified as
    the tightly integrated flow says.  A descent with steps of 5% of the minima's separation put
    the boundary 0.02–0.04 off there and got these points wrong."""
    land = wells_2d()
    locs = np.stack([m.location for m in land.minima()])
    pts = []
    for y in (-2.5, -1.5, -0.8, 0.8, 1.5, 2.5):
        lo, hi = -1.0, 3.0
        assert _tight_flow_basin(land, np.array([lo, y]), locs) == 0
        assert _tight_flow_basin(land, np.array([hi, y]), locs) == 1
        for _ in range(13):  # the reference boundary on this line to 4/2^13 < 1e-3
            mid = 0.5 * (lo + hi)
            if _tight_flow_basin(land, np.array([mid, y]), locs) == 0:
                lo = mid
            else:
                hi = mid
        pts += [[lo - 0.01, y], [hi + 0.01, y]]
    np.testing.assert_array_equal(land.basin_index(np.array(pts)), np.tile([0, 1], len(pts) // 2))


A_TILT, C_COUPLE = 0.03, 0.6


def _coupled_value(th):
    x, y = th[0], th[1]
    return 0.25 * x ** 4 - 0.5 * x ** 2 + A_TILT * x ** 3 + 0.5 * y ** 2 + C_COUPLE * x * x * y


def _coupled_gradient(th):
    x, y = th[0], th[1]
    return np.array([x ** 3 - x + 3 * A_TILT * x * x + 2 * C_COUPLE * x * y, y + C_COUPLE * x * x])


def test_basin_masses_converge_at_second_order():
    """L = x⁴/4 − x²/2 + a x³ + y²/2 + c x²y: ∂L/∂x vanishes on x = 0, so the line x = 0 is invariant
    under the flow and is exactly the separatrix (the flow bends: for y > 1/(2c) the line attracts
    nearby points before the saddle repels them).  The Gibbs mass of the basin x < 0 is a 1-D
    integral after the Gaussian y-integral ∫ e^{−(y²/2 + c x² y)/T} dy = √(2πT) e^{c²x⁴/(2T)},
    computed to 1e-13 by adaptive quadrature.  The cut-cell midpoint rule of basin_probabilities
    is second order: each halving of h must shrink the error by at least 4/1.5 (order 2 with a
    margin for the next term), and the finest error must lie far below the 4e-5 at which a
    grid-node indicator with a descent classifier stalled on wells_2d."""
    land = Landscape.from_functions(_coupled_value, _coupled_gradient, dim=2,
                                    minima_guesses=[[-1.5, 0.0], [1.0, 0.0]])
    temp = 0.1

    def profile(x):
        return math.exp(-(0.25 * x ** 4 - 0.5 * x ** 2 + A_TILT * x ** 3 - C_COUPLE ** 2 * x ** 4 / 2) / temp)

    left = integrate.quad(profile, -6, 0, epsabs=0, epsrel=1e-13, limit=200)[0]
    right = integrate.quad(profile, 0, 6, epsabs=0, epsrel=1e-13, limit=200)[0]
    exact = left / (left + right)
    errors = []
    for n in (51, 101, 201):
        p = tminima.basin_probabilities(land, lr=0.1, batch_size=1, sigma2=2 * temp / 0.1, n_grid=n)
        errors.append(abs(p[0] - exact) / exact)
    assert errors[1] <= errors[0] / (4 / 1.5) and errors[2] <= errors[1] / (4 / 1.5), errors
    assert errors[2] < 1e-8, errors


def test_isotropic_finite_sum_has_exact_covariance():
    """Σξ_i = 0 and (1/N)Σξ_iξ_iᵀ = σ²I exactly, at every θ; full-batch loss = base loss."""
    base = wells_2d()
    land = IsotropicNoiseFiniteSum(base, 30, 0.7, seed=5)
    np.testing.assert_allclose(land.data.sum(axis=0), 0, atol=1e-12)
    for theta in ([0.0, 0.0], [1.0, -2.0]):
        np.testing.assert_allclose(land.noise_covariance(np.array(theta)), 0.7 * np.eye(2), atol=1e-12)
        assert land.value(np.array(theta)[None])[0] == pytest.approx(base.value(np.array(theta)[None])[0])


def test_symmetric_noise_has_no_odd_moments():
    """symmetric=True: the ξ_i come in pairs ±ξ, so Σξ_i = 0, (1/N)Σξ_iξ_iᵀ = σ²I and every third moment
    (1/N)Σξ_iaξ_ibξ_ic vanishes (to round-off); an odd N is refused, naming n_samples."""
    land = IsotropicNoiseFiniteSum(wells_2d(), 40, 0.7, seed=5, symmetric=True)
    xi = land.data
    np.testing.assert_allclose(xi.T @ xi / 40, 0.7 * np.eye(2), atol=1e-12)
    np.testing.assert_allclose(np.einsum("ia,ib,ic->abc", xi, xi, xi) / 40, 0.0, atol=1e-12)
    plain = IsotropicNoiseFiniteSum(wells_2d(), 40, 0.7, seed=5).data
    assert np.max(np.abs(np.einsum("ia,ib,ic->abc", plain, plain, plain))) / 40 > 1e-3
    with pytest.raises(ValueError, match="n_samples"):
        IsotropicNoiseFiniteSum(wells_2d(), 41, 0.7, symmetric=True)


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
    xs = land._saddles[0]
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


def test_sharp_flat_valley_minima():
    """SharpFlatValley: minima at s = −1 (sharp) and s = +1 (flat), both interpolating (L = 0), the
    sharp one's top curvature > 3 times the flat one's; zero noise and H = G (Gauss–Newton) there."""
    land = SharpFlatValley(seed=3)
    a, b = land.minima()
    assert a.location[0] == pytest.approx(-1.0, abs=1e-8) and b.location[0] == pytest.approx(1.0, abs=1e-8)
    assert a.loss == pytest.approx(0.0, abs=1e-20) and b.loss == pytest.approx(0.0, abs=1e-20)
    assert a.eigenvalues[-1] > 3 * b.eigenvalues[-1]
    np.testing.assert_allclose(land.noise_covariance(a.location), 0.0, atol=1e-25)
    np.testing.assert_allclose(land.hessian(a.location), land.gauss_newton(a.location), atol=1e-12)
