"""The exact law of the discrete 1-D chain x' = x − ηL'(x) + s·ξ, ξ ~ N(0, 1), on a grid.

This is Euler–Maruyama with time step one SGD step (s = η·σ/√S), and minibatch SGD with i.i.d.
Gaussian minibatch noise.  Its transfer operator on a fine grid gives the chain's *own* stationary
law, transient laws, relaxation time and mean first-passage times at finite η, so a simulation can
be compared with the exact law of the chain it runs, and the distance between that law and the
SDE's (Gibbs, paper eq. 2) measures the discretisation bias, instead of hiding it in a tolerance.

Discretisation: P[i, j] = P(x' ∈ cell j | x = centre of cell i), the Gaussian integrated exactly
over cell j (error O(h²) from the midpoint rule in the source cell); mass leaving the box is
renormalised away, so the box must hold the law (e.g. ``landscape.bounds(T)``).
"""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy import special

from theory import _checks

__all__ = ["EulerChain1D", "stationary_law", "mass_below"]


class EulerChain1D:
    """Transfer operator of the 1-D chain on the cells of ``edges`` (uniform spacing).

    ``lr`` is η and ``step_sd`` the standard deviation s of the noise added per step."""

    def __init__(self, landscape, edges, *, lr: float, step_sd: float):
        _checks.check_positive("lr", lr)
        _checks.check_positive("step_sd", step_sd)
        edges = np.asarray(edges, dtype=float)
        if edges.ndim != 1 or edges.size < 3 or np.any(np.diff(edges) <= 0):
            raise ValueError("edges must be an increasing 1-D array of at least 3 values")
        self.lr, self.step_sd, self.edges = float(lr), float(step_sd), edges
        self.x = 0.5 * (edges[1:] + edges[:-1])
        self.h = float(edges[1] - edges[0])
        n = self.x.size
        mean = self.x - self.lr * np.asarray(landscape.gradient(self.x), dtype=float)
        if not np.all(np.isfinite(mean)):
            raise ValueError("the landscape's gradient is not finite on the grid (loss)")
        width = int(math.ceil(8.5 * self.step_sd / self.h)) + 1
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
    def on_nodes(cls, landscape, low: float, high: float, *, lr: float, step_sd: float, n: int | None = None):
        """Cells centred on ``n`` equispaced nodes of [low, high]; by default ≥ 12 nodes per s
        (between 1,500 and 6,000 nodes), which resolves the Gaussian kernel."""
        if n is None:
            n = int(min(6000, max(1500, 12 * (high - low) / step_sd)))
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

    def evolve(self, p0, n_steps: int, record_steps=None) -> np.ndarray:
        """Cell masses after ``n_steps`` steps from ``p0``, or after each step in the sorted
        ``record_steps`` (array (len(record_steps), n))."""
        PT = self.P.T.tocsr()
        p = np.asarray(p0, dtype=float).copy()
        if record_steps is None:
            for _ in range(int(n_steps)):
                p = PT @ p
            return p
        rec = np.asarray(record_steps, dtype=np.int64)
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
        """−1/log|λ₂|: steps for the slowest mode (inter-well transfer) to decay by e."""
        vals = spla.eigs(self.P.T.tocsc(), k=3, sigma=1.0 + 1e-9, return_eigenvectors=False)
        mags = np.sort(np.abs(vals))[::-1]
        lam2 = mags[1] if mags[0] > 1 - 1e-7 else mags[0]
        return float(-1.0 / math.log(min(lam2, 1 - 1e-15)))

    def mfpt(self, x_start: float, threshold: float, sign: int) -> float:
        """Mean number of steps until sign·(x − threshold) ≥ 0 first holds, from x_start."""
        inside = sign * (self.x - threshold) < 0
        p_in = self.P[inside][:, inside]
        m = int(inside.sum())
        tau = spla.spsolve(sp.identity(m, format="csc") - p_in.tocsc(), np.ones(m))
        return float(np.interp(x_start, self.x[inside], tau))


def stationary_law(landscape, low: float, high: float, *, lr: float, step_sd: float, cells_per_sd: int = 12):
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


def mass_below(edges, masses, x: float) -> float:
    """Mass of the cells left of x, the cell containing x split linearly (error O(h² p'), and
    p' = 0 at a barrier top, where basin masses are cut)."""
    edges = np.asarray(edges, dtype=float)
    frac = np.clip((x - edges[:-1]) / (edges[1:] - edges[:-1]), 0.0, 1.0)
    return float(np.sum(np.asarray(masses, dtype=float) * frac))
