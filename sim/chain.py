"""The exact law of the discrete 1-D chain x' = x − ηL'(x) + s·ξ, ξ ~ N(0, 1), on a grid.

This is Euler–Maruyama with time step one SGD step (s = η·σ/√S), and minibatch SGD with i.i.d.
Gaussian minibatch noise.  Its transfer operator on a fine grid gives the chain's *own* stationary
law, transient laws, relaxation time and mean first-passage times at finite η, so a simulation can
be compared with the exact law of the chain it runs, and the distance between that law and the
SDE's (Gibbs, paper eq. 2) measures the discretisation bias, instead of hiding it in a tolerance.

Discretisation: P[i, j] = P(x' ∈ cell j | x = centre of cell i), the Gaussian integrated exactly
over cell j (error O(h²) from the midpoint rule in the source cell); mass leaving the box is
renormalised away, so the box must hold the law (e.g. ``landscape.bounds(T)``).

How long to run: :func:`relaxation_steps` (the chain's relaxation time −1/log|λ₂| at given lr,
batch size and σ²), :func:`steps_to_equilibrate` (τ·ln(1/tol)) and :func:`check_equilibrated`
(warns with :class:`NotEquilibratedWarning` when a run is shorter) answer it for a 1-D landscape.
"""
from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numpy.typing import ArrayLike
from scipy import special

from theory import _checks

if TYPE_CHECKING:
    from theory.landscapes.base import Landscape

__all__ = ["EulerChain1D", "stationary_law", "mass_below", "sgd_chain", "relaxation_steps", "steps_to_equilibrate",
           "check_equilibrated", "NotEquilibratedWarning"]


# bytes per stored entry of the transfer matrix while it is built: row and column (int64) and
# value (float64) per band, their concatenation, and the CSR matrix
_BYTES_PER_ENTRY = 2 * 24 + 12


def _check_chain_size(name: str, value, n_cells: int, width: int) -> None:
    """Refuse a chain whose transfer matrix (n_cells rows of at most 2·width + 1 entries: the
    Gaussian kernel out to 8.5 s) cannot fit, before building it."""
    entries = float(n_cells) * min(2 * width + 1, n_cells)
    _checks.check_fits_memory(name, value, _BYTES_PER_ENTRY * entries,
                              f"the chain's transfer matrix ({n_cells} cells, up to {min(2 * width + 1, n_cells)} "
                              "entries per row)",
                              advice="use fewer cells (about 12 per step_sd resolve the kernel; "
                                     "EulerChain1D.on_nodes picks that by default)")


class EulerChain1D:
    """Transfer operator of the 1-D chain on the cells of ``edges`` (uniform spacing).

    ``lr`` is η and ``step_sd`` the standard deviation s of the noise added per step."""

    def __init__(self, landscape: Landscape, edges: ArrayLike, *, lr: float, step_sd: float):
        _checks.check_positive("lr", lr)
        _checks.check_positive("step_sd", step_sd)
        edges = np.asarray(edges, dtype=float)
        if edges.ndim != 1 or edges.size < 3 or np.any(np.diff(edges) <= 0):
            raise ValueError("edges must be an increasing 1-D array of at least 3 values")
        h = float(edges[1] - edges[0])
        n = edges.size - 1
        width = int(math.ceil(8.5 * float(step_sd) / h)) + 1
        _check_chain_size("edges", f"{edges.size} edges", n, width)
        self.lr, self.step_sd, self.edges, self.h = float(lr), float(step_sd), edges, h
        self.x = 0.5 * (edges[1:] + edges[:-1])
        mean = self.x - self.lr * np.asarray(landscape.gradient(self.x), dtype=float)
        if not np.all(np.isfinite(mean)):
            raise ValueError("the landscape's gradient is not finite on the grid (loss)")
        j0 = np.floor((mean - edges[0]) / self.h).astype(np.int64)
        rows, cols, vals = [], [], []
        for off in range(-width, width + 1):
            j = j0 + off
            ok = (j >= 0) & (j < n)
            lo = (edges[j[ok]] - mean[ok]) / self.step_sd
            hi = (edges[j[ok] + 1] - mean[ok]) / self.step_sd
            rows.append(np.nonzero(ok)[0])
            cols.append(j[ok])
            vals.append(special.ndtr(hi) - special.ndtr(lo))
        P = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
        row_sum = np.asarray(P.sum(axis=1)).ravel()
        stuck = row_sum <= 0  # mean far outside the box: keep the particle in its nearest cell
        if np.any(stuck):
            P = P + sp.csr_matrix((np.ones(stuck.sum()), (np.nonzero(stuck)[0], np.clip(j0[stuck], 0, n - 1))),
                                  shape=(n, n))
            row_sum = np.asarray(P.sum(axis=1)).ravel()
        self.P = sp.csr_matrix(sp.diags(1.0 / row_sum) @ P)

    @classmethod
    def on_nodes(cls, landscape: Landscape, low: float, high: float, *, lr: float, step_sd: float,
                 n: int | None = None) -> EulerChain1D:
        """Cells centred on ``n`` equispaced nodes of [low, high]; by default ≥ 12 nodes per s
        (between 1,500 and 6,000 nodes), which resolves the Gaussian kernel."""
        _checks.check_positive("step_sd", step_sd)
        if not (math.isfinite(low) and math.isfinite(high) and high > low):
            raise ValueError(f"the box must have finite low < high, got [{low}, {high}]")
        if n is None:
            n = int(min(6000, max(1500, 12 * (high - low) / step_sd)))
        n = _checks.check_int("n", n, minimum=3)
        _check_chain_size("n", n, n, int(math.ceil(8.5 * float(step_sd) * (n - 1) / (high - low))) + 1)
        nodes = np.linspace(low, high, n)
        h = nodes[1] - nodes[0]
        return cls(landscape, np.concatenate([nodes - h / 2, [nodes[-1] + h / 2]]), lr=lr, step_sd=step_sd)

    def stationary(self) -> np.ndarray:
        """Stationary cell masses π = πP, Σπ = 1: one sparse solve with the most probable cell
        (located by a few hundred power steps) pinned."""
        n = self.x.size
        PT = self.P.T.tocsr()
        p = np.full(n, 1.0 / n)
        for _ in range(200):
            p = PT @ p
        k = int(np.argmax(p))
        A = (PT - sp.identity(n, format="csr")).tolil()
        A[k, :] = 0.0
        A[k, k] = 1.0
        b = np.zeros(n)
        b[k] = 1.0
        pi = np.maximum(spla.spsolve(A.tocsc(), b), 0.0)
        return pi / pi.sum()

    def evolve(self, p0: ArrayLike, n_steps: int, record_steps: ArrayLike | None = None) -> np.ndarray:
        """Cell masses after ``n_steps`` steps from ``p0``, or after each step in the sorted
        ``record_steps`` (array (len(record_steps), n))."""
        PT = self.P.T.tocsr()
        p = np.asarray(p0, dtype=float).copy()
        if p.shape != self.x.shape:
            raise ValueError(f"p0 must hold one mass per cell, shape {self.x.shape}, got {p.shape}")
        if record_steps is None:
            for _ in range(int(n_steps)):
                p = PT @ p
            return p
        rec = np.asarray(record_steps, dtype=np.int64)
        if rec.ndim != 1 or np.any(rec < 0) or np.any(np.diff(rec) < 0):
            raise ValueError(f"record_steps must be a sorted 1-D sequence of step counts >= 0, got {record_steps!r}")
        _checks.check_fits_memory("record_steps", f"{rec.size} steps", 8.0 * rec.size * p.size,
                                  "the recorded cell masses (len(record_steps) x cells float64)",
                                  advice="record fewer steps")
        out = np.empty((rec.size, p.size))
        k = r = 0
        while r < rec.size and rec[r] == 0:
            out[r] = p
            r += 1
        while r < rec.size:
            p = PT @ p
            k += 1
            while r < rec.size and rec[r] == k:
                out[r] = p
                r += 1
        return out

    def relaxation_steps(self) -> float:
        """−1/log|λ₂|: steps for the slowest mode (inter-well transfer) to decay by e; λ₂ is the
        eigenvalue of P of largest modulus after λ₁ = 1.

        |λ₂| is the spectral radius of the deflated operator Pᵀ − π1ᵀ (π the stationary law, 1ᵀ
        the left eigenvector of Pᵀ: its eigenvalues are P's with λ₁ = 1 replaced by 0), found by
        Arnoldi iteration for the eigenvalues of largest modulus.  That sees every kind of slow
        mode: a slow inter-well transfer (λ₂ near 1) and an oscillating one (λ₂ < 0, where steps
        overshoot, ηL'' > 1: on L = λx²/2 with ηλ = 1.5 the slowest mode is −0.5, not 0.25).  When
        the slowest mode is real and positive and within 1e-3 of 1, λ₂ is computed again by
        shift-invert around 1, which resolves 1 − λ₂ to full relative precision (Arnoldi on the
        deflated operator resolves λ₂ only to ~1e-16 absolute).  |λ₂| closer to 1 than ~1e-15 is not
        resolved in double precision: the result is then about 1e15, a lower bound."""
        PT = self.P.T.tocsr()
        pi = self.stationary()
        n = pi.size
        deflated = spla.LinearOperator((n, n), matvec=lambda v: PT @ v - pi * np.sum(v), dtype=float)
        k = min(3, n - 2)
        try:
            vals = spla.eigs(deflated, k=k, which="LM", ncv=min(n, 24), maxiter=20 * n,
                             return_eigenvectors=False)
        except spla.ArpackNoConvergence:
            if n > 6000:
                raise RuntimeError(f"relaxation_steps: the eigenvalues of the {n}-cell chain did not converge; "
                                   "use a coarser grid (fewer cells)") from None
            vals = np.linalg.eigvals(PT.toarray() - np.outer(pi, np.ones(n)))
        top = vals[np.argmax(np.abs(vals))]
        lam2 = float(np.abs(top))
        if top.real > 0 and abs(top.imag) <= 1e-12 and lam2 > 1 - 1e-3:
            near_one = spla.eigs(PT.tocsc(), k=min(3, n - 2), sigma=1.0 + 1e-9, return_eigenvectors=False)
            mags = np.sort(np.abs(near_one))[::-1]
            lam2 = float(mags[1] if mags[0] > 1 - 1e-7 else mags[0])
        return float(-1.0 / math.log(min(lam2, 1 - 1e-15)))

    def mfpt(self, x_start: float, threshold: float, sign: int) -> float:
        """Mean number of steps until sign·(x − threshold) ≥ 0 first holds, from x_start."""
        inside = sign * (self.x - threshold) < 0
        p_in = self.P[inside][:, inside]
        m = int(inside.sum())
        tau = spla.spsolve(sp.identity(m, format="csc") - p_in.tocsc(), np.ones(m))
        return float(np.interp(x_start, self.x[inside], tau))


def stationary_law(landscape: Landscape, low: float, high: float, *, lr: float, step_sd: float,
                   cells_per_sd: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Stationary cell masses of the chain on ``cells_per_sd`` cells per step s.d. of [low, high],
    Richardson-extrapolated in the grid: the chain on cells of width h and h/2, the fine masses
    summed in pairs, (4·fine − coarse)/3.  The transfer operator's midpoint rule in the source cell
    makes the masses O(h²)-accurate; the extrapolation leaves O(h⁴) (on the double wells of
    docs/beyond-the-paper.md, 12/24 vs 24/48 cells per s.d. agree to 3e-9 in a basin's mass).
    Returns (edges, masses) of the coarse grid."""
    _checks.check_positive("step_sd", step_sd)
    cells_per_sd = _checks.check_int("cells_per_sd", cells_per_sd, minimum=2)
    if not high > low:
        raise ValueError(f"the box must have low < high, got [{low}, {high}]")
    n = int(cells_per_sd * (high - low) / step_sd)
    edges = np.linspace(low, high, n + 1)
    coarse = EulerChain1D(landscape, edges, lr=lr, step_sd=step_sd).stationary()
    fine = EulerChain1D(landscape, np.linspace(low, high, 2 * n + 1), lr=lr, step_sd=step_sd).stationary()
    return edges, (4.0 * (fine[0::2] + fine[1::2]) - coarse) / 3.0


def mass_below(edges: ArrayLike, masses: ArrayLike, x: float) -> float:
    """Mass of the cells left of x, the cell containing x split linearly (error O(h² p'), and
    p' = 0 at a barrier top, where basin masses are cut)."""
    edges = np.asarray(edges, dtype=float)
    frac = np.clip((x - edges[:-1]) / (edges[1:] - edges[:-1]), 0.0, 1.0)
    return float(np.sum(np.asarray(masses, dtype=float) * frac))


# --------------------------------------------------------------------------------------------
# how long a run must be
# --------------------------------------------------------------------------------------------
class NotEquilibratedWarning(UserWarning):
    """A run shorter than the steps its chain needs to forget where it started."""


def sgd_chain(landscape: Landscape, *, lr: float, batch_size: float, sigma2: float,
              n: int | None = None) -> EulerChain1D:
    """The exact chain of SGD with Gaussian gradient noise on a 1-D landscape: x' = x − ηL'(x) + s·ξ
    with s = η·√(σ²/S) (Euler–Maruyama with one step per SGD step; paper eq. 1, §3.1), on the box
    ``landscape.bounds(T')`` that holds its law: the Gibbs box of T' = T·2/(2 − ηλ_max), T = ησ²/(2S),
    λ_max the largest curvature at a minimum (the chain's variance there is T'/λ, not T/λ); with
    ``n`` nodes (default: ~12 per s).  ηλ_max ≥ 2 (SGD unstable at a minimum) is refused."""
    dim = int(getattr(landscape, "dim", 0))
    if dim != 1:
        raise ValueError(f"landscape must be 1-D for the exact chain, got dim = {dim}; in 2-D "
                         "theory.escape.eyring_kramers_relaxation gives the relaxation time (small T)")
    for name, value in (("lr", lr), ("batch_size", batch_size), ("sigma2", sigma2)):
        if not _checks.is_scalar(value):
            raise ValueError(f"{name} must be a scalar, got {value!r}")
    _checks.check_positive("lr", lr)
    _checks.check_batch_size(batch_size)
    _checks.check_positive("sigma2", sigma2)
    temperature = float(lr) * float(sigma2) / (2.0 * float(batch_size))
    # the chain's own variance at a minimum of curvature λ is (T/λ)·2/(2 − ηλ) (theory.discrete):
    # the Gibbs box of T is widened to hold it, which needs ηλ < 2 at every minimum
    lam = max(float(m.eigenvalues[-1]) for m in landscape.minima())
    if float(lr) * lam >= 2.0:
        raise ValueError(f"lr * lambda_max = {float(lr) * lam:.4g} >= 2 at a minimum of the landscape: SGD is unstable "
                         f"there and the chain has no stationary law; use lr < {2.0 / lam:.4g}")
    low, high = (float(np.ravel(b)[0]) for b in landscape.bounds(temperature * 2.0 / (2.0 - float(lr) * lam)))
    return EulerChain1D.on_nodes(landscape, low, high, lr=float(lr), step_sd=float(lr) * math.sqrt(sigma2 / batch_size),
                                 n=n)


def relaxation_steps(landscape: Landscape, *, lr: float, batch_size: float, sigma2: float) -> float:
    """Relaxation time τ = −1/log|λ₂| in SGD steps of the exact chain (:func:`sgd_chain`): the
    slowest part of the law (in a multi-well landscape, the balance between wells) decays as
    e^{−t/τ}, so P(A) after t steps differs from its stationary value by at most ~e^{−t/τ}."""
    return sgd_chain(landscape, lr=lr, batch_size=batch_size, sigma2=sigma2).relaxation_steps()


def steps_to_equilibrate(landscape: Landscape, *, lr: float, batch_size: float, sigma2: float,
                         tol: float = 1e-3) -> int:
    """SGD steps after which the slowest mode has decayed below ``tol``: ⌈τ·ln(1/tol)⌉ with τ from
    :func:`relaxation_steps` (tol = 1e-3: 6.9 τ).  From any start the distance of basin
    probabilities to their stationary values is then at most ~tol (the amplitude of that mode is at
    most 1 for a probability)."""
    _checks.check_in_range("tol", tol, 0.0, 1.0, closed="neither")
    tau = relaxation_steps(landscape, lr=lr, batch_size=batch_size, sigma2=sigma2)
    return int(math.ceil(tau * math.log(1.0 / tol)))


def check_equilibrated(n_steps: int, landscape: Landscape, *, lr: float, batch_size: float, sigma2: float,
                       tol: float = 1e-3, stacklevel: int = 2) -> bool:
    """True if ``n_steps`` SGD steps reach equilibrium to ``tol`` (:func:`steps_to_equilibrate`);
    otherwise warn (:class:`NotEquilibratedWarning`, naming the steps needed) and return False: a
    shorter run measures where the particles started, not the stationary law."""
    n_steps = _checks.check_int("n_steps", n_steps, minimum=0)
    need = steps_to_equilibrate(landscape, lr=lr, batch_size=batch_size, sigma2=sigma2, tol=tol)
    if n_steps >= need:
        return True
    tau = need / math.log(1.0 / tol)
    warnings.warn(
        f"n_steps = {n_steps} is shorter than the {need} steps this run needs to equilibrate (relaxation time "
        f"{tau:.4g} steps at lr = {lr:g}, batch_size = {batch_size:g}, sigma2 = {sigma2:g}; tol = {tol:g}): "
        "its basin probabilities still reflect the start; run longer",
        NotEquilibratedWarning, stacklevel=stacklevel)
    return False
