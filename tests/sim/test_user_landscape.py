"""A user's own 2-D loss, written as three plain NumPy lambdas (no numba code of the user's), gets
every method of the testbed: Laplace weights (eq. 3), quadrature of the Gibbs density (eq. 2),
the Fokker–Planck stationary solution, an Euler–Maruyama ensemble and exact minibatch SGD.

The loss is separable, L(x, y) = (x² − 1)²/4 + a·x + k·y²/2, so every basin integral factorises
into a 1-D one in x (computed to 1e-12 by adaptive quadrature) times a Gaussian in y: an exact
reference for the basin masses that none of the methods uses.  Tolerances are derived in each
test (sampling error, grid order, the Laplace expansion's order)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from sim import fokker_planck as fp
from sim.observers import Basins
from sim.sde import simulate_sde
from sim.sgd import simulate_sgd
from theory import minima
from theory.landscapes import IsotropicNoiseFiniteSum, Landscape

TILT, K = 0.08, 2.0

value = lambda th: 0.25 * (th[0] ** 2 - 1.0) ** 2 + TILT * th[0] + 0.5 * K * th[1] ** 2  # noqa: E731
gradient = lambda th: np.array([th[0] ** 3 - th[0] + TILT, K * th[1]])  # noqa: E731
hessian = lambda th: np.array([[3.0 * th[0] ** 2 - 1.0, 0.0], [0.0, K]])  # noqa: E731


@pytest.fixture(scope="module")
def land():
    return Landscape.from_functions(value, gradient, hessian, dim=2, minima_guesses=[[-1.0, 0.0], [1.0, 0.0]])


def _profile(x):
    return 0.25 * (x * x - 1.0) ** 2 + TILT * x


def exact_masses(temp):
    """Gibbs masses (unnormalised) of the left and right basins {x < x_s}, {x > x_s} (x_s the
    barrier top of the x-profile; the y-factor cancels) and x_s."""
    x_s = optimize.brentq(lambda x: x ** 3 - x + TILT, -0.5, 0.5)
    f = lambda x: math.exp(-(_profile(x) + 0.3) / temp)  # noqa: E731
    left = integrate.quad(f, -4.0, x_s, epsabs=0, epsrel=1e-12, limit=200)[0]
    right = integrate.quad(f, x_s, 4.0, epsabs=0, epsrel=1e-12, limit=200)[0]
    return left, right, x_s


def exact_left_mass(temp):
    """Gibbs probability of the left basin, and x_s."""
    left, right, x_s = exact_masses(temp)
    return left / (left + right), x_s


def test_laplace_approaches_quadrature_at_first_order(land):
    """Quadrature of the user's loss equals the exact basin mass (cut-cell rule, 2nd order: 1e-6 at
    this grid), and Laplace's weights (eq. 3) approach it as T → 0 with a gap in log(p_A/p_B) of
    (c_A − c_B)·T + O(T²), c = 5·L3²/(24·L2³) − L4/(8·L2²) per minimum of the x-profile (L2, L3, L4
    its 2nd to 4th derivatives; the y-factor cancels): the gap at T/2 is about half the gap at T
    (ratio in [1.6, 2.4]), and gap/T at T/2 is within twice its change from T to T/2 (a Richardson
    bound on the O(T) remainder) of |c_A − c_B|.  A gap that did not shrink (a wrong Hessian or
    loss) is rejected."""
    cs = []
    for m in land.minima():
        x = float(m.location[0])
        cs.append(minima.laplace_correction_1d(3 * x * x - 1.0, 6 * x, 6.0))
    gaps = []
    temps = (0.02, 0.01)
    for temp in temps:
        kw = dict(lr=2 * temp, batch_size=1, sigma2=1.0)  # T = lr·σ²/(2S)
        left, right, _ = exact_masses(temp)
        exact = math.log(left / right)
        p_quad = minima.basin_probabilities(land, **kw)
        assert abs(math.log(p_quad[0] / p_quad[1]) - exact) < 1e-6, (p_quad, exact)
        a, b = land.minima()
        laplace = -0.5 * (a.logdet - b.logdet) - (a.loss - b.loss) / temp  # log of the ratio of eq. 3's weights
        gaps.append(abs(laplace - exact))
    assert 1.6 < gaps[0] / gaps[1] < 2.4, gaps
    slope = gaps[1] / temps[1]
    assert abs(slope - abs(cs[0] - cs[1])) <= 2 * abs(gaps[0] / temps[0] - slope), (slope, cs)


def test_fokker_planck_matches_quadrature(land):
    """FP stationary basin masses on a 200 × 200 grid vs the exact mass: the cells' centre
    classification moves at most the mass within h_x/2 of the separatrix x = x_s, bounded by
    (h_x/2)·p_x(x_s) with p_x the exact x-marginal density, plus the scheme's O(h²) error (the
    change from 100 × 100 cells, a Richardson bound)."""
    temp = 0.1
    kw = dict(lr=0.2, batch_size=1, sigma2=1.0)
    exact, x_s = exact_left_mass(temp)
    masses = []
    for n in (100, 200):
        grid = fp.make_grid(land, n, **kw)
        masses.append(fp.solve_stationary(land, grid, **kw).basin_masses(land)[0])
    h_x = float(grid.h[0])
    norm = integrate.quad(lambda x: math.exp(-(_profile(x) + 0.3) / temp), -4, 4, epsrel=1e-12)[0]
    p_sep = math.exp(-(_profile(x_s) + 0.3) / temp) / norm
    tol = 0.5 * h_x * p_sep + abs(masses[1] - masses[0])
    assert abs(masses[1] - exact) < tol, (masses, exact, tol)
    # the wrong temperature (the η/√S-type confusion T·2) is far outside
    assert abs(exact_left_mass(2 * temp)[0] - exact) > 10 * tol


def test_euler_maruyama_and_sgd_reach_the_gibbs_basin_masses(land):
    """EM (lr = 0.02, S = 1, σ² = 10: T = 0.1, ΔL/T ≈ 2.5) and exact minibatch SGD (with replacement,
    N = 400, S = 4, σ² = 40: the same T) started all in the left well relax to the Gibbs basin
    masses: after 6000 steps (t_η = 120, ≈ 6 relaxation times e^{ΔL/T}·2π/√(L''_a|L''_s|)) the
    occupancy of M = 3000 particles is within 4.5 binomial standard errors plus the Euler
    discretisation bias (ηλ/2 ≈ 2% of the basin's variance, < 0.01 in mass) of the exact mass; the
    start (all left) is rejected."""
    temp = 0.1
    exact, _ = exact_left_mass(temp)
    m = 3000
    se = math.sqrt(exact * (1 - exact) / m)
    tol = 4.5 * se + 0.01
    em = simulate_sde(land, lr=0.02, batch_size=1, sigma2=10.0, n_steps=6000, n_particles=m, theta0=[-1.0, 0.0],
                      seed=1, observers=[Basins(6000)])
    data = IsotropicNoiseFiniteSum(land, 400, 40.0, seed=2)
    sgd = simulate_sgd(data, lr=0.02, batch_size=4, n_steps=6000, n_particles=m, theta0=[-1.0, 0.0], seed=3,
                       replacement=True, observers=[Basins(6000)])
    for res in (em, sgd):
        assert res.n_diverged == 0
        occupancy = res.basin_occupancy[-1, 0]
        assert abs(occupancy - exact) < tol, (res.params["method"], occupancy, exact, tol)
        assert res.basin_occupancy[0, 0] == 1.0 and 1.0 - exact > 3 * tol
    assert abs(em.basin_occupancy[-1, 0] - sgd.basin_occupancy[-1, 0]) < 2 * tol
