"""sim.chain: the exact law of the discrete 1-D chain on a grid."""
import numpy as np
import pytest

from sim.chain import EulerChain1D
from theory.discrete import stationary_variance
from theory.landscapes import Quadratic, QuarticDoubleWell


def test_stationary_variance_is_the_exact_ar1_value():
    """On L = λx²/2 the chain is AR(1): Var = nσ²/(λ(2 − ηλ)).  Grid error O(h²) with h ≈ sd/12:
    relative 1e-3 is ≫ it and ≪ the 5% gap to the continuous value at ηλ = 0.1."""
    lam, lr, S, sigma2 = 1.0, 0.1, 1, 1.0
    sd = lr * np.sqrt(sigma2 / S)
    chain = EulerChain1D.on_nodes(Quadratic([[lam]]), -1.5, 1.5, lr=lr, step_sd=sd, n=3000)
    pi = chain.stationary()
    var = float(pi @ chain.x**2 - (pi @ chain.x) ** 2)
    exact = stationary_variance(lam, lr=lr, batch_size=S, sigma2=sigma2)
    assert var == pytest.approx(exact, rel=1e-3)
    assert abs(var / stationary_variance(lam, lr=lr, batch_size=S, sigma2=sigma2, discrete=False) - 1) > 0.04


def test_evolve_conserves_mass_and_reaches_stationary():
    chain = EulerChain1D(QuarticDoubleWell(0.1), np.linspace(-2.5, 2.5, 801), lr=0.1, step_sd=0.1)
    p0 = np.zeros(chain.x.size)
    p0[100] = 1.0
    rec = chain.evolve(p0, 0, record_steps=[0, 10, 20000])
    assert np.allclose(rec.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(rec[0], p0)
    assert np.abs(rec[-1] - chain.stationary()).sum() < 1e-6
    np.testing.assert_allclose(chain.evolve(p0, 10), rec[1], atol=1e-15)


def test_mfpt_and_relaxation_are_consistent():
    """A barrier crossing takes longer than the relaxation inside one well and both are finite."""
    chain = EulerChain1D(QuarticDoubleWell(0.0), np.linspace(-2.5, 2.5, 801), lr=0.1, step_sd=0.15)
    tau = chain.mfpt(-1.0, 0.0, +1)
    assert np.isfinite(tau) and tau > 10
    assert 0.3 < chain.relaxation_steps() / tau < 3  # symmetric well: relaxation ≈ τ/2


def test_bad_input():
    with pytest.raises(ValueError, match="lr"):
        EulerChain1D(QuarticDoubleWell(), np.linspace(-1, 1, 11), lr=0.0, step_sd=0.1)
    with pytest.raises(ValueError, match="step_sd"):
        EulerChain1D(QuarticDoubleWell(), np.linspace(-1, 1, 11), lr=0.1, step_sd=-1)
    with pytest.raises(ValueError, match="edges"):
        EulerChain1D(QuarticDoubleWell(), np.array([0.0, 1.0]), lr=0.1, step_sd=0.1)


def test_transition_rows_are_the_gaussian_step_from_the_cell_centres():
    """P[i, j] is the exact law of one step x' = c_i − ηL'(c_i) + s·ξ from the *centre* c_i of cell i,
    integrated over cell j: on L = λx²/2 the cumulative row sums equal Φ((e_k − (1 − ηλ)c_i)/s) at
    every edge e_k (box ±12 s around the steps: the renormalised tails are < 1e-30).  Nodes at
    the cells' left edges would shift every step by h/2: Φ differs by ≈ φ·(1 − ηλ)h/(2s) ≈ 0.015."""
    from scipy import special

    lam, lr, sd = 1.0, 0.1, 0.05
    chain = EulerChain1D(Quadratic([[lam]]), np.linspace(-1.0, 1.0, 481), lr=lr, step_sd=sd)
    centres = 0.5 * (chain.edges[1:] + chain.edges[:-1])
    rows = np.arange(200, 281, 20)  # |c_i| ≤ 0.17: 1 ∓ 0.17 ≫ 12 s to either end of the box
    cdf = np.cumsum(chain.P[rows].toarray(), axis=1)[:, :-1]  # P(x' < e_k), k = 1 .. n - 1
    exact = special.ndtr((chain.edges[None, 1:-1] - (1 - lr * lam) * centres[rows, None]) / sd)
    np.testing.assert_allclose(cdf, exact, rtol=0, atol=1e-12)


def test_stationary_mean_is_the_minimum_exactly():
    """The chain on L = λ(x − c)²/2 is AR(1) around c: its stationary mean is c exactly.  On cells
    placed symmetrically about c the cell-centred transfer operator keeps that symmetry, so the
    computed mean equals c to the accuracy of the linear solve (1e-12).  Nodes at the cells' left
    edges bias it by ≈ −h/(2ηλ) (here −0.01, 4% of a standard deviation)."""
    lam, lr, c = 1.0, 0.1, 0.3
    sd = lr * np.sqrt(2.0)
    chain = EulerChain1D.on_nodes(Quadratic([[lam]], center=[c]), c - 1.5, c + 1.5, lr=lr, step_sd=sd, n=1501)
    pi = chain.stationary()
    assert abs(pi @ chain.x - c) < 1e-12


def test_extrapolated_stationary_law_is_fourth_order():
    """On L = λx²/2 the chain's stationary law is exactly N(0, s²/(1 − a²)), a = 1 − ηλ.  The single
    grid's cell masses are O(h²)-accurate and stationary_law's Richardson extrapolation O(h⁴): with 6
    cells per step s.d. the L1 error to the exact Gaussian cell masses drops by more than 100x (h² terms
    at h/sd = 1/6: measured 7.2e-4 before, 1.7e-7 after).  mass_below at the centre of symmetry is 1/2."""
    from scipy import special

    from sim.chain import mass_below, stationary_law

    lam, lr, sd = 1.0, 0.2, 0.3
    var = sd**2 / (1.0 - (1.0 - lr * lam) ** 2)
    edges, masses = stationary_law(Quadratic([[lam]]), -8 * np.sqrt(var), 8 * np.sqrt(var), lr=lr, step_sd=sd,
                                   cells_per_sd=6)
    exact = np.diff(special.ndtr(edges / np.sqrt(var)))
    single = EulerChain1D(Quadratic([[lam]]), edges, lr=lr, step_sd=sd).stationary()
    err, err_single = np.abs(masses - exact).sum(), np.abs(single - exact).sum()
    assert err < err_single / 100, (err, err_single)
    assert mass_below(edges, masses, 0.0) == pytest.approx(0.5, abs=1e-12)
    with pytest.raises(ValueError, match="cells_per_sd"):
        stationary_law(Quadratic([[lam]]), -1, 1, lr=lr, step_sd=sd, cells_per_sd=1)


# ---- how long a run must be -----------------------------------------------------------------------
@pytest.mark.parametrize("lam, lr", [(1.0, 0.5), (3.0, 0.1), (1.0, 1.5), (1.0, 1.9)])
def test_relaxation_time_of_a_quadratic_is_the_ar1_value(lam, lr):
    """On L = λx²/2 the chain is AR(1), x' = (1 − ηλ)x + s·ξ: its eigenvalues are (1 − ηλ)^k, so
    τ = −1/ln|1 − ηλ| exactly; for ηλ > 1 the slowest mode oscillates (a negative eigenvalue).  The grid
    (≥ 12 nodes per s, box holding the law) reproduces it to ~1e-8; 1e-6 is far from the wrong
    predictions, the continuous-time 1/(ηλ) (≥ 4% off here) and, for ηλ > 1, the largest positive
    eigenvalue (1 − ηλ)² (half the time)."""
    from sim.chain import relaxation_steps

    tau = relaxation_steps(Quadratic([[lam]]), lr=lr, batch_size=1, sigma2=1.0)
    exact = -1.0 / np.log(abs(1.0 - lr * lam))
    assert tau == pytest.approx(exact, rel=1e-6)
    assert abs(tau * lr * lam - 1.0) > 0.04
    if lr * lam > 1:
        assert tau / (-1.0 / np.log((1.0 - lr * lam) ** 2)) == pytest.approx(2.0, rel=1e-6)


@pytest.mark.parametrize("lr", [0.2, 0.6, 0.95])
def test_relaxation_time_of_a_double_well_is_its_spectral_gap(lr):
    """On the double well at ηλ_A = 0.4, 1.2, 1.9 (steps overshoot in the sharp well from 1.2 on, yet
    SGD is stable) the relaxation time is −1/ln|λ₂| with λ₂ the second eigenvalue by modulus of the
    whole dense spectrum of the same chain (numpy.linalg.eigvals, an independent computation),
    to 1e-8 (both are accurate to ~1e-13 in λ₂ here)."""
    from sim.chain import sgd_chain

    land = _double_well()
    chain = sgd_chain(land, lr=lr, batch_size=1, sigma2=2.0, n=400)
    spectrum = np.linalg.eigvals(chain.P.toarray())
    lam2 = np.sort(np.abs(spectrum))[::-1][1]
    assert chain.relaxation_steps() == pytest.approx(-1.0 / np.log(lam2), rel=1e-8)


def _double_well():
    from theory.landscapes import double_well_1d

    return double_well_1d(loss_a=0.0, curvature_a=2.0, loss_b=0.05, curvature_b=0.5, barrier=0.3)


def test_steps_to_equilibrate_bring_the_basin_probability_within_tol():
    """Evolve the exact law from minimum A: after steps_to_equilibrate(tol) steps P(A) is within tol
    of its stationary value, after a quarter of them it is not (the wrong claim that a quarter of the
    time suffices)."""
    from sim.chain import sgd_chain, steps_to_equilibrate

    land, kw, tol = _double_well(), dict(lr=0.2, batch_size=1, sigma2=2.0), 1e-3
    chain = sgd_chain(land, **kw)
    need = steps_to_equilibrate(land, **kw, tol=tol)
    assert need == int(np.ceil(chain.relaxation_steps() * np.log(1 / tol)))
    in_a = land.basin_index(chain.x[:, None]) == 0
    p0 = np.zeros(chain.x.size)
    p0[np.argmin(np.abs(chain.x - land.minima()[0].location[0]))] = 1.0
    p_a = chain.evolve(p0, 0, record_steps=[need // 4, need])[:, in_a].sum(axis=1)
    p_stat = chain.stationary()[in_a].sum()
    assert abs(p_a[1] - p_stat) < tol
    assert abs(p_a[0] - p_stat) > 10 * tol


def test_a_short_run_at_low_noise_warns():
    """An η/S sweep point of 8,000 steps at n = 0.02 (relaxation ~5e7 steps: barrier 0.3 at T = 0.02)
    measures only where it started; check_equilibrated says so and names the steps needed."""
    import warnings

    from sim.chain import NotEquilibratedWarning, check_equilibrated, steps_to_equilibrate

    land = _double_well()
    with pytest.warns(NotEquilibratedWarning, match=r"n_steps = 8000 is shorter than the \d+ steps .* run longer"):
        assert check_equilibrated(8000, land, lr=0.02, batch_size=1, sigma2=2.0) is False
    need = steps_to_equilibrate(land, lr=0.2, batch_size=1, sigma2=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotEquilibratedWarning)
        assert check_equilibrated(need, land, lr=0.2, batch_size=1, sigma2=2.0) is True
    with pytest.warns(NotEquilibratedWarning):
        check_equilibrated(need - 1, land, lr=0.2, batch_size=1, sigma2=2.0)


def test_sgd_chain_refuses_what_it_cannot_describe():
    from sim.chain import EulerChain1D, sgd_chain
    from theory.landscapes import wells_2d

    with pytest.raises(ValueError, match=r"landscape must be 1-D .*eyring_kramers_relaxation"):
        sgd_chain(wells_2d(), lr=0.1, batch_size=1, sigma2=1.0)
    with pytest.raises(ValueError, match=r"lr \* lambda_max = 2\.2 >= 2 .* use lr < 1$"):
        sgd_chain(_double_well(), lr=1.1, batch_size=1, sigma2=1.0)
    chain = EulerChain1D(QuarticDoubleWell(0.1), np.linspace(-2.5, 2.5, 101), lr=0.1, step_sd=0.1)
    with pytest.raises(ValueError, match="record_steps must be a sorted"):
        chain.evolve(np.ones(100) / 100, 0, record_steps=[5, 3])  # unsorted steps used to loop forever
    with pytest.raises(ValueError, match=r"p0 must hold one mass per cell, shape \(100,\)"):
        chain.evolve(np.ones(50), 3)
