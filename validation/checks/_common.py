"""What several checks share: simulation adapters, grid laws, the common double-well setting.

Independent references used throughout (each check says which it uses):

* the exact law of the *discrete chain itself* in 1-D, from its transfer operator
  P(x → y) = N(y; x − ηL'(x), η²σ²/S) on a fine grid (:class:`sim.chain.EulerChain1D`): the
  finite-η law that separates the discretisation bias from sampling error;
* direct quadrature of the Gibbs density over basins (``theory.minima.basin_probabilities``);
* Fokker–Planck grid solutions (``sim.fokker_planck``) with Richardson error estimates;
* exact discrete-time Lyapunov equations for quadratic losses (``theory.discrete``).

Unless a check says otherwise, minibatches are drawn WITH replacement: the minibatch-mean noise
is then exactly i.i.d. with covariance C/S (the paper's assumption 1 up to Gaussianity).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import integrate

from sim.chain import EulerChain1D
from theory import discrete as tdiscrete
from theory.landscapes import IsotropicNoiseFiniteSum, QuarticDoubleWell

__all__ = [
    "run_em", "run_sgd", "fp_solve", "richardson_l1", "fp_basin_with_error", "basin_fraction",
    "gibbs_bin_masses_1d", "gibbs_bin_masses_2d", "hist_masses_2d", "chain_bin_masses", "midpoint_gibbs_masses",
    "ou_discretisation_tv", "TILT", "SIGMA2", "LR0", "BS0", "N_DATA", "DATA_SEED", "BOX", "CHAIN_CELLS",
    "double_well", "finite_sum", "chain_edges", "sample_cells", "cell_observables", "fp_evolve_masses",
    "trajectory_1d", "occupancy_curves", "chain",
]


# =============================================================================================
# Simulation adapters: sim.sde / sim.sgd / sim.fokker_planck
# =============================================================================================
def _observers(first_passage=None, basin_every=None, record_every=None):
    from sim.observers import Basins, FirstPassage, Record

    obs = []
    if first_passage is not None:
        obs.append(FirstPassage(**first_passage))
    if basin_every is not None:
        obs.append(Basins(basin_every))
    if record_every is not None:
        obs.append(Record(record_every))
    return obs


def run_em(landscape, *, lr, batch_size, n_steps, n_particles, theta0, seed, sigma2=None, noise_cov=None,
           first_passage=None):
    """Euler–Maruyama ensemble of eq. 1 (``sim.sde.simulate_sde``, one step per SGD step)."""
    from sim.noise import ConstantCovariance
    from sim.sde import simulate_sde

    noise = ConstantCovariance(noise_cov) if noise_cov is not None else None
    return simulate_sde(landscape, lr=lr, batch_size=batch_size, n_steps=int(n_steps), n_particles=int(n_particles),
                        theta0=theta0, seed=seed, sigma2=sigma2, noise=noise,
                        observers=_observers(first_passage=first_passage))


def run_sgd(landscape, *, lr, batch_size, n_steps, n_particles, theta0, seed, replacement=True,
            first_passage=None, record_every=None, expect_divergence=False, **kw):
    """Exact minibatch SGD ensemble (``sim.sgd.simulate_sgd``), minibatches drawn with replacement
    unless ``replacement=False``. Diverged particles are flagged by sim and counted by the checks;
    ``expect_divergence`` only silences sim's warning for runs meant to diverge."""
    from sim.sgd import simulate_sgd

    with warnings.catch_warnings():
        if expect_divergence:
            warnings.filterwarnings("ignore", message=".*particles diverged.*", category=RuntimeWarning)
        return simulate_sgd(landscape, lr=lr, batch_size=batch_size, n_steps=int(n_steps),
                            n_particles=int(n_particles), theta0=theta0, seed=seed, replacement=replacement,
                            observers=_observers(first_passage=first_passage, record_every=record_every), **kw)


def fp_solve(landscape, low, high, n_cells, *, lr, batch_size, sigma2=None, noise_cov=None):
    """Stationary Fokker–Planck solution (drift form, ``sim.fokker_planck.solve_stationary``) on a box."""
    from sim import fokker_planck as fpm

    grid = (fpm.Grid1D if landscape.dim == 1 else fpm.Grid2D)(low, high, n_cells)
    return fpm.solve_stationary(landscape, grid, lr=lr, batch_size=batch_size, sigma2=sigma2, noise_cov=noise_cov)


def richardson_l1(fine_mass, coarse_mass) -> float:
    """Estimated L1 error of the fine solution from fine (2N cells per axis) and coarse (N) solves of
    an O(h²) scheme: coarse − fine ≈ (4 − 1)·e_fine, so e_fine ≈ L1(coarse − aggregated fine)/3."""
    f = np.asarray(fine_mass)
    if f.ndim == 1:
        agg = f.reshape(-1, 2).sum(axis=1)
    else:
        agg = f.reshape(f.shape[0] // 2, 2, f.shape[1] // 2, 2).sum(axis=(1, 3))
    return float(np.sum(np.abs(np.asarray(coarse_mass) - agg)) / 3.0)


def fp_basin_with_error(landscape, low, high, n_cells, *, lr, batch_size, sigma2, k):
    """FP basin mass of minimum k (1-D) with its error bound: 2× the Richardson estimate (O(h²),
    from a half-resolution solve) + the mass of the cell holding the basin boundary (cells are
    assigned whole to the basin of their centre)."""
    from theory.landscapes.basins import saddles_1d

    fine = fp_solve(landscape, low, high, n_cells, lr=lr, batch_size=batch_size, sigma2=sigma2)
    coarse = fp_solve(landscape, low, high, n_cells // 2, lr=lr, batch_size=batch_size, sigma2=sigma2)
    pf = float(fine.basin_masses(landscape)[k])
    pc = float(coarse.basin_masses(landscape)[k])
    cut = float(np.sum(fine.mass[np.searchsorted(fine.grid.edges[0], saddles_1d(landscape)) - 1]))
    return pf, 2 * abs(pc - pf) / 3 + cut


def basin_fraction(res, landscape, k) -> tuple[float, float, int]:
    """Fraction of the non-diverged particles in basin k, its binomial SE and their number."""
    fin = res.finite()
    lab = np.asarray(landscape.basin_index(fin)).reshape(-1)
    p = float(np.mean(lab == k))
    return p, math.sqrt(max(p * (1 - p), 1e-12) / fin.shape[0]), fin.shape[0]


# =============================================================================================
# Laws on grids and bins
# =============================================================================================
def gibbs_bin_masses_1d(landscape, temperature, edges, low, high, n=400001):
    """Gibbs masses of the bins (−∞, e₀], (e₀, e₁], …, (e_K, ∞) by trapezoid quadrature of e^(−L/T)
    on ``n`` nodes over [low, high] (relative error O(h²) ≈ 1e-9 here)."""
    x = np.linspace(low, high, n)
    lx = landscape.value(x[:, None])
    f = np.exp(-(lx - lx.min()) / temperature)
    cdf = integrate.cumulative_trapezoid(f, x, initial=0.0)
    fe = np.interp(edges, x, cdf)
    m = np.diff(np.concatenate([[0.0], fe, [cdf[-1]]]))
    return m / cdf[-1]


def gibbs_bin_masses_2d(landscape, temperature, ex, ey, low, high, h=0.01):
    """Gibbs masses of a 2-D histogram's bins plus one 'outside' cell (last entry), by the midpoint
    rule on an h-grid over the box [low, high] (relative error O(h²) ≈ 1e-5)."""
    nx = int(math.ceil((high[0] - low[0]) / h))
    ny = int(math.ceil((high[1] - low[1]) / h))
    xs = low[0] + (np.arange(nx) + 0.5) * (high[0] - low[0]) / nx
    ys = low[1] + (np.arange(ny) + 0.5) * (high[1] - low[1]) / ny
    out = np.zeros((ex.size - 1, ey.size - 1))
    total = 0.0
    lmin = min(m.loss for m in landscape.minima())
    for chunk in np.array_split(np.arange(nx), max(1, nx // 100)):
        gx, gy = np.meshgrid(xs[chunk], ys, indexing="ij")
        pts = np.stack([gx.ravel(), gy.ravel()], -1)
        w = np.exp(-(landscape.value(pts) - lmin) / temperature)
        total += w.sum()
        hist, _, _ = np.histogram2d(pts[:, 0], pts[:, 1], bins=[ex, ey], weights=w)
        out += hist
    inside = out / total
    return np.concatenate([inside.ravel(), [1.0 - inside.sum()]])


def hist_masses_1d(x, edges):
    """Fractions of ``x`` in the bins (−∞, e₀], (e₀, e₁], …, (e_K, ∞)."""
    counts = np.searchsorted(np.sort(x), edges, side="right")
    return np.diff(np.concatenate([[0], counts, [x.size]])) / x.size


def hist_masses_2d(samples, ex, ey):
    """Fractions of 2-D ``samples`` in the bins of ``ex`` × ``ey``, plus the outside fraction (last)."""
    hist, _, _ = np.histogram2d(samples[:, 0], samples[:, 1], bins=[ex, ey])
    m = hist.ravel() / samples.shape[0]
    return np.concatenate([m, [1.0 - m.sum()]])


def chain_bin_masses(x_nodes, node_mass, edges):
    """Masses of the bins (−∞, e₀], …, (e_K, ∞) from a chain's node masses (node j = cell
    [x_j − h/2, x_j + h/2]), by linear interpolation of the cumulative distribution."""
    h = x_nodes[1] - x_nodes[0]
    xs = np.concatenate([[x_nodes[0] - h / 2], x_nodes + h / 2])
    cdf = np.concatenate([[0.0], np.cumsum(node_mass)])
    f = np.interp(edges, xs, cdf)
    return np.diff(np.concatenate([[0.0], f, [cdf[-1]]]))


def midpoint_gibbs_masses(landscape, edges, temperature, sigma2=1.0):
    """Gibbs masses exp(−L/T) of the cells of ``edges`` (1-D, uniform) by the midpoint rule
    (``sim.fokker_planck.gibbs_on_grid`` at η = 2T/σ², S = 1)."""
    from sim.fokker_planck import Grid1D, gibbs_on_grid

    grid = Grid1D(float(edges[0]), float(edges[-1]), edges.size - 1)
    return gibbs_on_grid(landscape, grid, lr=2.0 * temperature / sigma2, batch_size=1, sigma2=sigma2)


def _gauss_tv(cov1, cov2, n=401):
    """TV distance between N(0, cov1) and N(0, cov2) (1-D or 2-D), by quadrature."""
    from scipy import stats

    cov1, cov2 = np.atleast_2d(cov1), np.atleast_2d(cov2)
    d = cov1.shape[0]
    s = 9.0 * math.sqrt(max(np.max(np.diag(cov1)), np.max(np.diag(cov2))))
    ax = np.linspace(-s, s, n)
    pts = np.stack([g.ravel() for g in np.meshgrid(*([ax] * d), indexing="ij")], -1)
    p1 = stats.multivariate_normal(np.zeros(d), cov1).pdf(pts)
    p2 = stats.multivariate_normal(np.zeros(d), cov2).pdf(pts)
    return float(0.5 * np.sum(np.abs(p1 - p2)) * (ax[1] - ax[0]) ** d)


def ou_discretisation_tv(landscape, basin_p, *, lr, batch_size, sigma2=None, noise_cov=None):
    """Estimate of TV(Euler chain's stationary law, SDE law) from the local Ornstein–Uhlenbeck
    picture: in each well the chain's covariance is the discrete Lyapunov solution
    Σ_d = AΣ_dAᵀ + η²C/S (A = I − ηH) instead of the continuous one, and the well's mass scales
    with √det Σ_d/√det Σ_c. Returns (TV estimate, the wells' shifted masses)."""
    mins = landscape.minima()
    tv_comp, w = [], []
    for m, p in zip(mins, basin_p):
        c = sigma2 * np.eye(m.dim) if noise_cov is None else np.asarray(noise_cov, dtype=float)
        cd = tdiscrete.stationary_covariance(m.hessian, c, lr=lr, batch_size=batch_size)
        cc = tdiscrete.stationary_covariance(m.hessian, c, lr=lr, batch_size=batch_size, discrete=False)
        tv_comp.append(_gauss_tv(cc, cd))
        w.append(p * math.sqrt(np.linalg.det(cd) / np.linalg.det(cc)))
    w = np.array(w) / np.sum(w)
    return float(0.5 * np.sum(np.abs(w - np.asarray(basin_p))) + np.dot(basin_p, tv_comp)), w


# =============================================================================================
# The common setting of the dynamics checks
# ---------------------------------------------------------------------------------------------
# The tilted quartic double well L = (x² − 1)²/4 + 0.1x with isotropic per-sample noise σ² = 40,
# so that the base noise n0 = η0/S0 = 0.005/1 gives T0 = n0σ²/2 = 0.1 (eq. 2): minimum A at
# x = −1.047 (L = −0.102, L'' = 2.29), minimum B at x = 0.946 (L = 0.097, L'' = 1.68), barrier at
# x ≈ 0.1; Gibbs basin probability of A at T0: 0.859.
# =============================================================================================
TILT = 0.1
SIGMA2 = 40.0
LR0 = 0.005
BS0 = 1
N_DATA = 10_000
DATA_SEED = 20180101
BOX = (-2.3, 2.3)  # holds the Gibbs mass for T ≤ 0.25 (L(±2.3) − L_min ≥ 4.4, e^(−4.4/0.25) < 1e-7)
CHAIN_CELLS = 1000


def double_well():
    return QuarticDoubleWell(TILT)


def finite_sum(base, n_samples=N_DATA, sigma2=SIGMA2, seed=DATA_SEED):
    return IsotropicNoiseFiniteSum(base, n_samples, sigma2, seed=seed)


def chain_edges(low=BOX[0], high=BOX[1], n_cells=CHAIN_CELLS):
    return np.linspace(low, high, n_cells + 1)


def chain(base, edges, *, lr, batch_size, sigma2=SIGMA2) -> EulerChain1D:
    """The exact discrete chain of SGD with Gaussian minibatch noise σ²/S on the cells of ``edges``."""
    return EulerChain1D(base, edges, lr=lr, step_sd=lr * math.sqrt(sigma2 / batch_size))


def sample_cells(edges, masses, n, rng):
    """n i.i.d. draws from the piecewise-constant density with the given cell masses."""
    cdf = np.concatenate([[0.0], np.cumsum(masses)])
    cdf /= cdf[-1]
    u = rng.random(n)
    j = np.clip(np.searchsorted(cdf, u, side="right") - 1, 0, masses.size - 1)
    frac = (u - cdf[j]) / np.maximum(cdf[j + 1] - cdf[j], 1e-300)
    return edges[j] + frac * (edges[j + 1] - edges[j])


def cell_observables(landscape, edges):
    """Loss at the cell centres and whether each centre lies in basin A (index 0)."""
    x = 0.5 * (edges[1:] + edges[:-1])
    return np.asarray(landscape.value(x), dtype=float), np.asarray(landscape.basin_index(x)) == 0


def fp_evolve_masses(landscape, edges, p0_mass, *, lr, batch_size, sigma2, steps):
    """Fokker–Planck (SDE, eq. 5) cell masses at ``steps`` (SGD steps), TR-BDF2 on sim's grid."""
    from sim.fokker_planck import Grid1D, evolve

    grid = Grid1D(edges[0], edges[-1], edges.size - 1)
    h = edges[1] - edges[0]
    lam_max = max(float(m.eigenvalues[-1]) for m in landscape.minima())
    dens = evolve(landscape, grid, p0_mass / h, lr=lr, batch_size=batch_size, sigma2=sigma2,
                  times=np.asarray(steps, dtype=float), method="tr-bdf2", dt=0.02 / (lr * lam_max))
    return dens.reshape(len(steps), -1) * h


def trajectory_1d(res) -> np.ndarray:
    """Recorded 1-D states as (n_records, M)."""
    tr = np.asarray(res.trajectory)
    if tr.shape[0] != len(res.record_steps):  # (M, n_rec, d) layout
        tr = np.moveaxis(tr, 1, 0)
    return tr[..., 0]


def occupancy_curves(base, res):
    """Basin-A occupancy, number of non-diverged particles, mean loss and its SE at the recorded steps."""
    tr = trajectory_1d(res)
    ok = ~np.asarray(res.diverged)
    occ, n_ok, el, el_se = [], [], [], []
    for row in tr:
        x = row[ok & np.isfinite(row)]
        a = np.asarray(base.basin_index(x)) == 0
        loss = np.asarray(base.value(x), dtype=float)
        occ.append(a.mean())
        el.append(loss.mean())
        el_se.append(loss.std(ddof=1) / math.sqrt(x.size))
        n_ok.append(x.size)
    return np.array(occ), np.array(n_ok), np.array(el), np.array(el_se)
