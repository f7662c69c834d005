"""Finite-volume Fokker–Planck solvers for the SGD Langevin equation (paper eq. 5, App. A–C).

PDE (time measured in SGD steps, paper eq. 5)::

    ∂P/∂t = ∇·[ η g P + (η²/2S) ∇·(C P) ],     g = ∇L,

with a constant gradient covariance C (isotropic C = σ²I, diagonal, or a full SPD 2×2 matrix).
Writing D = (η²/2S)·C and v = −η g this is ∂P/∂t = −∇·J with probability current
J = vP − D∇P.  With C = σ²I the equilibrium is the Gibbs density (paper eq. 2, App. C eq. 17)

    P ∝ exp(−2L/(nσ²)) = exp(−L/T),   n = η/S,   T = ησ²/(2S).

Discretisation
--------------
Cell-centred finite volumes on a uniform 1-D or 2-D box (:class:`Grid1D`, :class:`Grid2D`) with
zero-flux boundaries.  The diffusion matrix is split into rank-one diffusions along lattice
directions,

    D = Σ_k γ_k δ_k δ_kᵀ,    δ_k ∈ {(h_x, 0), (0, h_y), (h_x, s·h_y)},  s = sign(D_xy),

    γ_diag = |D_xy|/(h_x h_y),   γ_x = (D_xx − |D_xy| h_x/h_y)/h_x²,   γ_y = (D_yy − |D_xy| h_y/h_x)/h_y²,

and the drift likewise: v = D u with u = D⁻¹v = −(2S/η) C⁻¹ g, so that v = Σ_k γ_k δ_k (δ_k·u).
Along every lattice edge p → q = p + δ_k the 1-D problem is then an advection–diffusion problem
with unit spacing, diffusion γ_k and Péclet number w = δ_k·u, discretised by the
Scharfetter–Gummel (exponential fitting) flux

    J_pq = γ_k [ B(−w) P_p − B(w) P_q ],     B(z) = z / (eᶻ − 1).

Every edge moves mass from one cell to another, so mass is conserved to round-off; all transfer
rates γ_k B(±w) are ≥ 0, so the generator is an M-matrix: backward Euler is positivity-preserving
for any time step and the stationary state is non-negative.  (For isotropic or diagonal C the
diagonal direction drops out and this is the classical 5-point / 3-point SG scheme.)

* ``form="potential"`` (isotropic/diagonal C): w = −(L_q − L_p)/T_k with T_k = η C_kk/(2S), L at
  cell centres.  With C = σ²I each edge is then in detailed balance with exp(−L/T): the discrete
  stationary state *is* the Gibbs state sampled at the cell centres (to round-off).  With a
  diagonal C ≠ σ²I it is an O(h²) discretisation like the drift form (the exact stationary state
  is then not Gibbs).  A full C is refused in this form (ValueError naming ``form``).
* ``form="drift"``: w = δ_k·u evaluated at the edge midpoint — only the drift is used, which is
  what a general (non-gradient) drift provides.  Error vs Gibbs is O(h²) (the midpoint rule for
  ∫g along each edge); observed orders are reported by the tests and the benchmark.

Full (non-diagonal) constant C in 2-D: the decomposition needs γ_x, γ_y ≥ 0, i.e. the cell aspect
ratio must satisfy |C_xy|/C_xx ≤ h_y/h_x ≤ C_yy/|C_xy|.  This interval is never empty for SPD C
(C_xy² < C_xx C_yy), e.g. h_y/h_x = √(C_yy/C_xx) always works; a grid outside it raises ValueError
telling the admissible range (the alternative 9-point central cross stencil is conservative but
never an M-matrix, i.e. gives up positivity, so it is not used).  Stationary states with full C
and a non-gradient drift carry a nonzero probability current (paper App. E); the scheme is tested
against the exact Ornstein–Uhlenbeck covariance from the Lyapunov equation HΣ + ΣH = (η/S)·C.

Stationary states are computed by ONE sparse direct solve with one value pinned (the row of the
cell with the lowest loss is replaced by P_k = 1), then renormalised; time evolution is implicit
(backward Euler, or TR-BDF2 whose two stages share one LU factorisation), factorised once per
step size with ``splu``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numpy.typing import ArrayLike
from scipy.special import logsumexp

from theory import _checks

if TYPE_CHECKING:
    from theory.landscapes.base import Landscape

try:  # the Gibbs reference of theory.gibbs (eq. 2) when present
    from theory import gibbs as _gibbs
except Exception:  # pragma: no cover - theory.gibbs is optional
    _gibbs = None

__all__ = [
    "Grid1D",
    "Grid2D",
    "make_grid",
    "FPSolution",
    "solve_stationary",
    "evolve",
    "gibbs_on_grid",
    "generator_matrix",
]


# ----------------------------------------------------------------------------------------------
# Grids
# ----------------------------------------------------------------------------------------------
class _Grid:
    """Uniform cell-centred grid on the box [low, high] with ``n_cells`` cells per axis."""

    dim: int

    def __init__(self, low, high, n_cells, dim: int):
        low = np.atleast_1d(np.asarray(low, dtype=float)).reshape(-1)
        high = np.atleast_1d(np.asarray(high, dtype=float)).reshape(-1)
        cells = np.atleast_1d(np.asarray(n_cells)).reshape(-1)
        if cells.size == 1 and dim > 1:
            cells = np.repeat(cells, dim)
        for name, arr in (("low", low), ("high", high), ("n_cells", cells)):
            if arr.size != dim:
                raise ValueError(f"{name} must have {dim} entr{'y' if dim == 1 else 'ies'} for a {dim}-D grid, got {arr.size}")
        _checks.check_finite("low", low)
        _checks.check_finite("high", high)
        if np.any(high <= low):
            raise ValueError(f"high must exceed low on every axis, got low={low.tolist()}, high={high.tolist()}")
        n = []
        for c in cells:
            n.append(_checks.check_int("n_cells", c.item() if hasattr(c, "item") else c, minimum=3))
        size = float(np.prod(np.array(n, dtype=float)))
        _checks.check_fits_memory("n_cells", n[0] if dim == 1 else tuple(n), 8.0 * size * (2 * dim + 1),
                                  f"a {dim}-D grid of {size:.3g} cells (centres and mesh)",
                                  advice="use fewer cells per axis")
        self.dim = dim
        self.low = low
        self.high = high
        self.n_cells = tuple(n)
        self.shape = tuple(n)
        self.size = int(np.prod(n))
        self.h = (high - low) / np.array(n, dtype=float)
        self.cell_volume = float(np.prod(self.h))
        self.axes = [low[k] + (np.arange(n[k]) + 0.5) * self.h[k] for k in range(dim)]
        self.edges = [np.linspace(low[k], high[k], n[k] + 1) for k in range(dim)]
        mesh = np.meshgrid(*self.axes, indexing="ij")
        self.points = np.stack([m.ravel() for m in mesh], axis=-1)  # (size, dim), C order
        self._basin_cache: dict[int, tuple[Any, np.ndarray]] = {}

    @property
    def centers(self) -> np.ndarray:
        """Cell centres: shape (n,) in 1-D, (nx, ny, 2) in 2-D."""
        if self.dim == 1:
            return self.axes[0]
        return self.points.reshape(self.shape + (self.dim,))

    def key(self) -> tuple:
        return (tuple(self.low), tuple(self.high), self.n_cells)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(low={self.low.tolist()}, high={self.high.tolist()}, n_cells={list(self.n_cells)})"


class Grid1D(_Grid):
    """1-D cell-centred grid on [low, high] with ``n_cells`` ≥ 3 cells (zero-flux ends).

    ``low``/``high`` may be scalars or length-1 arrays, so ``Grid1D(*landscape.bounds(T), n)``
    works."""

    def __init__(self, low: ArrayLike, high: ArrayLike, n_cells: int):
        super().__init__(low, high, n_cells, 1)


class Grid2D(_Grid):
    """2-D cell-centred grid on the box low (2,) – high (2,) with n_cells (2,) (or one int) cells."""

    def __init__(self, low: ArrayLike, high: ArrayLike, n_cells: int | Sequence[int]):
        super().__init__(low, high, n_cells, 2)


def make_grid(landscape: Landscape, n_cells: int | Sequence[int], *, lr: float, batch_size: float, sigma2: float,
              n_sigma_loss: float = 40.0) -> Grid1D | Grid2D:
    """Grid on ``landscape.bounds(T)`` (T = η σ²/(2S), eq. 2) holding essentially all Gibbs mass."""
    _check_hyper(lr, batch_size)
    _checks.check_positive("sigma2", sigma2)
    temp = float(lr) * float(sigma2) / (2.0 * float(batch_size))
    low, high = landscape.bounds(temp, n_sigma_loss=n_sigma_loss)
    cls = Grid1D if landscape.dim == 1 else Grid2D
    if landscape.dim > 2:
        raise ValueError(f"landscape must be 1-D or 2-D for a Fokker–Planck grid, got dim = {landscape.dim}")
    return cls(low, high, n_cells)


# ----------------------------------------------------------------------------------------------
# Solutions
# ----------------------------------------------------------------------------------------------
@dataclass
class FPSolution:
    """A probability distribution on a grid: ``mass`` per cell (sums to 1), ``density`` = mass/volume.

    ``info`` (from :func:`solve_stationary`): ``form``, ``method``, ``pinned_cell`` (flat index of
    the pinned value) and ``clipped_negative`` (mass of round-off negatives set to 0, relative)."""

    grid: _Grid
    mass: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def density(self) -> np.ndarray:
        """Density per unit length/area at the cell centres, shape ``grid.shape``."""
        return self.mass / self.grid.cell_volume

    @property
    def centers(self) -> np.ndarray:
        return self.grid.centers

    def basin_masses(self, landscape: Landscape) -> np.ndarray:
        """Σ of cell masses per basin, indexed like ``landscape.minima()`` (basin of each cell centre
        by ``landscape.basin_index``; the index is cached per grid and landscape)."""
        idx = _basin_index_cached(landscape, self.grid)
        n_min = len(landscape.minima())
        return np.bincount(idx, weights=self.mass.ravel(), minlength=n_min)[:n_min]

    def marginal(self, axis: int = 0) -> np.ndarray:
        """Marginal density of coordinate ``axis`` at ``grid.axes[axis]`` (per unit length)."""
        axis = _checks.check_int("axis", axis, minimum=0)
        if axis >= self.grid.dim:
            raise ValueError(f"axis must be < dim = {self.grid.dim}, got {axis}")
        other = tuple(k for k in range(self.grid.dim) if k != axis)
        m = self.mass.sum(axis=other) if other else self.mass
        return m / self.grid.h[axis]

    def l1_error(self, reference_density: ArrayLike | Callable[[np.ndarray], ArrayLike] | FPSolution) -> float:
        """∫|P − P_ref| ≈ Σ_cells |P_i − P_ref,i|·vol.  ``reference_density``: density per unit
        volume on the cell centres (array of ``grid.shape``), a callable of the centres, or an
        :class:`FPSolution` on the same grid."""
        if isinstance(reference_density, FPSolution):
            ref = reference_density.density
        elif callable(reference_density):
            ref = np.asarray(reference_density(self.grid.centers), dtype=float)
        else:
            ref = np.asarray(reference_density, dtype=float)
        ref = ref.reshape(self.grid.shape)
        return float(np.sum(np.abs(self.density - ref)) * self.grid.cell_volume)

    def l1_error_mass(self, reference_mass: ArrayLike) -> float:
        """Σ |m_i − m_ref,i| for reference cell masses (e.g. :func:`gibbs_on_grid`)."""
        ref = np.asarray(reference_mass, dtype=float).reshape(self.grid.shape)
        return float(np.sum(np.abs(self.mass - ref)))

    def mean(self) -> np.ndarray:
        """Σ m_i x_i (midpoint rule), shape (dim,)."""
        return self.mass.ravel() @ self.grid.points

    def covariance(self) -> np.ndarray:
        """Σ m_i (x_i − μ)(x_i − μ)ᵀ (midpoint rule), shape (dim, dim)."""
        x = self.grid.points - self.mean()
        return (x * self.mass.ravel()[:, None]).T @ x


def _basin_index_cached(landscape, grid: _Grid) -> np.ndarray:
    hit = grid._basin_cache.get(id(landscape))
    if hit is not None and hit[0] is landscape:
        return hit[1]
    pts = grid.points if landscape.dim > 1 else grid.points  # (size, dim)
    idx = np.asarray(landscape.basin_index(pts), dtype=np.int64).reshape(-1)
    grid._basin_cache[id(landscape)] = (landscape, idx)
    return idx


# ----------------------------------------------------------------------------------------------
# Validation helpers
# ----------------------------------------------------------------------------------------------
def _check_hyper(lr, batch_size):
    if not _checks.is_scalar(lr):
        raise ValueError(f"lr must be a scalar, got {lr!r}")
    if not _checks.is_scalar(batch_size):
        raise ValueError(f"batch_size must be a scalar, got {batch_size!r}")
    _checks.check_positive("lr", lr)
    _checks.check_batch_size(batch_size)


def _noise_matrix(dim: int, sigma2, noise_cov) -> np.ndarray:
    if (sigma2 is None) == (noise_cov is None):
        raise ValueError("give exactly one of sigma2 (isotropic C = sigma2*I) and noise_cov (constant C)")
    if sigma2 is not None:
        if not _checks.is_scalar(sigma2):
            raise ValueError(f"sigma2 must be a scalar, got {sigma2!r}")
        _checks.check_positive("sigma2", sigma2)
        return float(sigma2) * np.eye(dim)
    cov = np.atleast_2d(np.asarray(noise_cov, dtype=float)) if np.ndim(noise_cov) else np.array([[float(noise_cov)]])
    if cov.shape != (dim, dim):
        raise ValueError(f"noise_cov must have shape ({dim}, {dim}) for a {dim}-D grid, got {cov.shape}")
    _checks.check_positive_definite("noise_cov", cov)
    return 0.5 * (cov + cov.T)


def _check_landscape_grid(landscape, grid: _Grid):
    if not isinstance(grid, _Grid):
        raise ValueError(f"grid must be a Grid1D or Grid2D, got {type(grid).__name__}")
    if getattr(landscape, "dim", None) != grid.dim:
        raise ValueError(f"landscape has dim = {getattr(landscape, 'dim', None)} but grid is {grid.dim}-D")


def _loss_on_points(landscape, pts: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        vals = np.asarray(landscape.value(pts), dtype=float).reshape(-1)
    bad = ~np.isfinite(vals)
    if np.any(bad):
        first = pts[np.argmax(bad)]
        raise ValueError(
            f"loss: the landscape's value is NaN or infinite at {int(bad.sum())} grid point(s) "
            f"(first at theta = {np.round(first, 6).tolist()}); the loss must be finite on the grid"
        )
    return vals


def _gradient_on_points(landscape, pts: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        g = np.asarray(landscape.gradient(pts), dtype=float).reshape(pts.shape[0], landscape.dim)
    bad = ~np.all(np.isfinite(g), axis=1)
    if np.any(bad):
        first = pts[np.argmax(bad)]
        raise ValueError(
            f"loss: the landscape's gradient is NaN or infinite at {int(bad.sum())} grid point(s) "
            f"(first at theta = {np.round(first, 6).tolist()}); the loss must be smooth and finite on the grid"
        )
    return g


def _check_resolution(landscape, grid: _Grid, lr, batch_size, cov: np.ndarray):
    """√(T/λ_max) must span at least two cells (T from the smallest eigenvalue of C)."""
    lam_max = max(float(m.eigenvalues[-1]) for m in landscape.minima())
    c_min = float(np.linalg.eigvalsh(cov)[0])
    temp = float(lr) * c_min / (2.0 * float(batch_size))
    width = math.sqrt(temp / lam_max)
    h_max = float(np.max(grid.h))
    if width < 2.0 * h_max:
        need = [int(math.ceil(2.0 * (grid.high[k] - grid.low[k]) / width)) for k in range(grid.dim)]
        raise ValueError(
            f"grid too coarse to resolve the Gibbs width: sqrt(T/lambda_max) = sqrt({temp:.4g}/{lam_max:.4g}) "
            f"= {width:.4g} spans {width / h_max:.3g} cells (cell size {h_max:.4g}), fewer than two; "
            f"use n_cells >= {need if grid.dim > 1 else need[0]} on this box"
        )


# ----------------------------------------------------------------------------------------------
# Operator assembly
# ----------------------------------------------------------------------------------------------
def _bernoulli(z: np.ndarray) -> np.ndarray:
    """B(z) = z/(eᶻ − 1), B(0) = 1, evaluated without cancellation or overflow warnings."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    small = np.abs(z) < 1e-6
    with np.errstate(over="ignore", invalid="ignore"):
        zb = z[~small]
        out[~small] = zb / np.expm1(zb)
    zs = z[small]
    out[small] = 1.0 - 0.5 * zs + zs * zs / 12.0
    return out


def _directions(grid: _Grid, diff: np.ndarray):
    """Lattice directions (integer offsets) and weights γ_k with D = Σ γ_k δ_k δ_kᵀ."""
    h = grid.h
    if grid.dim == 1:
        return [((1,), diff[0, 0] / h[0] ** 2)]
    dxy = diff[0, 1]
    scale = max(abs(diff[0, 0]), abs(diff[1, 1]))
    if abs(dxy) <= 1e-14 * scale:
        return [((1, 0), diff[0, 0] / h[0] ** 2), ((0, 1), diff[1, 1] / h[1] ** 2)]
    s = 1 if dxy > 0 else -1
    g_diag = abs(dxy) / (h[0] * h[1])
    gx = (diff[0, 0] - abs(dxy) * h[0] / h[1]) / h[0] ** 2
    gy = (diff[1, 1] - abs(dxy) * h[1] / h[0]) / h[1] ** 2
    tol = 1e-12 * scale / min(h) ** 2
    if gx < -tol or gy < -tol:
        lo = abs(dxy) / diff[0, 0]
        hi = diff[1, 1] / abs(dxy)
        raise ValueError(
            f"grid: the cell aspect ratio h_y/h_x = {h[1] / h[0]:.4g} is outside [{lo:.4g}, {hi:.4g}], the range "
            "in which the positive lattice decomposition of noise_cov exists (|C_xy|/C_xx <= h_y/h_x <= "
            "C_yy/|C_xy|); choose n_cells so that h_y/h_x is in it, e.g. sqrt(C_yy/C_xx) = "
            f"{math.sqrt(diff[1, 1] / diff[0, 0]):.4g}"
        )
    return [((1, 0), max(gx, 0.0)), ((0, 1), max(gy, 0.0)), ((1, s), g_diag)]


def _edge_source_mask(shape, offset):
    """Boolean array (shape) marking cells p whose neighbour p + offset is inside the grid."""
    mask = np.ones(shape, dtype=bool)
    for ax, o in enumerate(offset):
        sl = [slice(None)] * len(shape)
        if o > 0:
            sl[ax] = slice(shape[ax] - o, None)
            mask[tuple(sl)] = False
        elif o < 0:
            sl[ax] = slice(None, -o)
            mask[tuple(sl)] = False
    return mask


def _assemble(landscape, grid: _Grid, lr, batch_size, cov, form, loss_vals):
    """Generator A (dm/dt = A m on cell masses, columns sum to zero) as diagonals.

    Returns (diag (N,), [(flat_offset, sub (N−o,), sup (N−o,))...]) with A[p+o, p] = sub[p]
    (rate p → p+o) and A[p, p+o] = sup[p] (rate p+o → p)."""
    lr = float(lr)
    S = float(batch_size)
    diff = (lr * lr / (2.0 * S)) * cov  # D = (η²/2S) C
    N = grid.size
    shape = grid.shape
    strides = [int(np.prod(shape[k + 1:])) for k in range(grid.dim)]
    diag = np.zeros(N)
    bands = []
    if form == "drift":
        cinv = np.linalg.inv(cov)
    for offset, gamma in _directions(grid, diff):
        o_flat = int(sum(o * s for o, s in zip(offset, strides)))
        mask = _edge_source_mask(shape, offset).ravel()
        src = np.nonzero(mask)[0]
        step = np.asarray(offset, dtype=float) * grid.h  # δ_k (physical)
        if form == "potential":
            k = int(np.nonzero(offset)[0][0])  # axis direction (diagonal C only)
            t_k = lr * cov[k, k] / (2.0 * S)
            w = -(loss_vals[src + o_flat] - loss_vals[src]) / t_k
        else:
            mid = grid.points[src] + 0.5 * step
            g = _gradient_on_points(landscape, mid)
            u_dot = g @ (cinv @ step)  # g·C⁻¹δ
            w = -(2.0 * S / lr) * u_dot  # w = δ·u, u = −(2S/η) C⁻¹ g
        a = np.zeros(N)
        b = np.zeros(N)
        a[src] = gamma * _bernoulli(-w)  # rate p → q
        b[src] = gamma * _bernoulli(w)  # rate q → p
        diag -= a
        diag[o_flat:] -= b[: N - o_flat]
        bands.append((o_flat, a[: N - o_flat], b[: N - o_flat]))
    return diag, bands


def _to_sparse(diag, bands, N, fmt="csc"):
    diagonals = [diag]
    offsets = [0]
    for o, sub, sup in bands:
        diagonals += [sub, sup]
        offsets += [-o, o]
    return sp.diags(diagonals, offsets, shape=(N, N), format=fmt)


# bytes per cell of a solve (a lower bound): the loss, the assembled diagonals and edge
# quantities of up to three lattice directions and the sparse matrix; in 2-D also the fill of
# the LU factors (measured 64 entries per cell at 500 x 500 cells, growing slowly with the size)
_SOLVE_BYTES_PER_CELL = {1: 200, 2: 1000}


def _prepare(landscape, grid, lr, batch_size, sigma2, noise_cov, form, check_resolution=True):
    _check_landscape_grid(landscape, grid)
    _checks.check_fits_memory("grid", grid, float(_SOLVE_BYTES_PER_CELL[grid.dim]) * grid.size,
                              f"solving on {grid.size:.3g} cells", advice="use a grid with fewer cells")
    _check_hyper(lr, batch_size)
    cov = _noise_matrix(grid.dim, sigma2, noise_cov)
    if form not in ("drift", "potential"):
        raise ValueError(f"form must be 'drift' or 'potential', got {form!r}")
    if form == "potential" and grid.dim > 1 and abs(cov[0, 1]) > 0.0:
        raise ValueError(
            "form: 'potential' needs an isotropic or diagonal noise_cov (with a full C the drift D⁻¹v is "
            "not a gradient and the stationary state is not Gibbs); use form='drift'"
        )
    loss_vals = _loss_on_points(landscape, grid.points)
    if check_resolution:
        _check_resolution(landscape, grid, lr, batch_size, cov)
    return cov, loss_vals


def generator_matrix(landscape: Landscape, grid: Grid1D | Grid2D, *, lr: float, batch_size: float,
                     sigma2: float | None = None, noise_cov: ArrayLike | None = None,
                     form: str = "drift") -> sp.csc_matrix:
    """Sparse generator A (CSC) of the scheme: dm/dt = A m for the cell masses m (columns sum to 0)."""
    cov, loss_vals = _prepare(landscape, grid, lr, batch_size, sigma2, noise_cov, form)
    diag, bands = _assemble(landscape, grid, lr, batch_size, cov, form, loss_vals)
    return _to_sparse(diag, bands, grid.size)


# ----------------------------------------------------------------------------------------------
# Stationary state
# ----------------------------------------------------------------------------------------------
def solve_stationary(
    landscape: Landscape,
    grid: Grid1D | Grid2D,
    *,
    lr: float,
    batch_size: float,
    sigma2: float | None = None,
    noise_cov: ArrayLike | None = None,
    form: str = "drift",
    method: str = "auto",
    check_resolution: bool = True,
) -> FPSolution:
    """Stationary solution of paper eq. 5 on ``grid`` by one sparse direct solve.

    Solves A m = 0 (A from the Scharfetter–Gummel finite-volume scheme, module docstring) with the
    row of the lowest-loss cell replaced by m_k = 1, then renormalises Σ m = 1.  For C = σ²I the
    exact answer is the Gibbs density exp(−L/T), T = ησ²/(2S) (paper eq. 2); ``form="potential"``
    reproduces its cell-centre samples to round-off, ``form="drift"`` to O(h²).

    ``method``: "sparse" (1-D: LAPACK tridiagonal solve ``gtsv``, 2-D: SuperLU) or, in 1-D
    only, "zero_flux" — the same discrete solution written in closed form (with zero-flux ends the
    1-D stationary current vanishes on every face, so m_{i+1}/m_i = B(−w_i)/B(w_i) = e^{w_i};
    accumulated in logs, immune to under/overflow).  "auto" (default) is "zero_flux" in 1-D and
    "sparse" in 2-D.

    Conditioning: the generator's spectral gap is ~exp(−ΔL/T) for a barrier ΔL, so a linear solve
    determines the mass of a basin separated from the pinned cell by a high barrier only to a
    relative error of about machine-ε·exp(ΔL/T).  In 1-D the closed form has no such limit (at
    ΔL/T = 100 the sparse solve returns 6e-20 for a basin whose mass is 2.3e-5); in 2-D keep ΔL/T
    below ~25 when small basin masses matter.
    """
    cov, loss_vals = _prepare(landscape, grid, lr, batch_size, sigma2, noise_cov, form, check_resolution)
    if method not in ("auto", "sparse", "zero_flux"):
        raise ValueError(f"method must be 'auto', 'sparse' or 'zero_flux', got {method!r}")
    if method == "auto":
        method = "zero_flux" if grid.dim == 1 else "sparse"
    N = grid.size
    if method == "zero_flux":
        if grid.dim != 1:
            raise ValueError("method: 'zero_flux' exists only for 1-D grids (2-D stationary states carry currents)")
        w = _edge_peclet_1d(landscape, grid, lr, batch_size, cov, form, loss_vals)
        logm = np.concatenate([[0.0], np.cumsum(w)])
        mass = np.exp(logm - logsumexp(logm))
        return FPSolution(grid, mass.reshape(grid.shape), {"form": form, "method": method})

    diag, bands = _assemble(landscape, grid, lr, batch_size, cov, form, loss_vals)
    k = int(np.argmin(loss_vals))  # pin the most probable region's cell: m_k = 1
    diag = diag.copy()
    diag[k] = 1.0
    new_bands = []
    for o, sub, sup in bands:
        sub = sub.copy()
        sup = sup.copy()
        if k - o >= 0:
            sub[k - o] = 0.0  # A[k, k−o]
        if k < N - o:
            sup[k] = 0.0  # A[k, k+o]
        new_bands.append((o, sub, sup))
    rhs = np.zeros(N)
    rhs[k] = 1.0
    if grid.dim == 1:
        (o, sub, sup), = new_bands
        _, _, _, x, info = scipy.linalg.lapack.dgtsv(sub, diag, sup, rhs, overwrite_dl=1, overwrite_d=1,
                                                      overwrite_du=1, overwrite_b=1)
        if info != 0:  # pragma: no cover - the pinned M-matrix is nonsingular
            raise RuntimeError(f"tridiagonal solve failed (info = {info})")
    else:
        mat = _to_sparse(diag, new_bands, N, fmt="csc")
        # minimum-degree ordering on AᵀA+A suits the 5/7-point lattice (fill ~16M at 500², vs
        # ~30M for COLAMD); the pinned matrix is column diagonally dominant, so SuperLU's partial
        # pivoting keeps the diagonal and the ordering survives.  Larger supernodes (relax=16)
        # are slightly faster here.
        x = spla.splu(mat, permc_spec="MMD_AT_PLUS_A", panel_size=8, relax=16).solve(rhs)
    x = np.asarray(x, dtype=float)
    neg = float(-x[x < 0].sum()) if np.any(x < 0) else 0.0
    x = np.maximum(x, 0.0)  # round-off negatives in far tails (exact solution is ≥ 0)
    total = x.sum()
    mass = x / total
    return FPSolution(grid, mass.reshape(grid.shape),
                      {"form": form, "method": method, "pinned_cell": k, "clipped_negative": neg / total})


def _edge_peclet_1d(landscape, grid, lr, batch_size, cov, form, loss_vals):
    lr = float(lr)
    S = float(batch_size)
    h = grid.h[0]
    if form == "potential":
        t = lr * cov[0, 0] / (2.0 * S)
        return -(np.diff(loss_vals)) / t
    mid = grid.edges[0][1:-1][:, None]
    g = _gradient_on_points(landscape, mid)[:, 0]
    return -(2.0 * S / lr) * g * h / cov[0, 0]


# ----------------------------------------------------------------------------------------------
# Gibbs reference
# ----------------------------------------------------------------------------------------------
def gibbs_on_grid(landscape: Landscape, grid: Grid1D | Grid2D, *, lr: float, batch_size: float,
                  sigma2: float) -> np.ndarray:
    """Analytic Gibbs cell masses m_i = exp(−L(x_i)/T) / Σ_j exp(−L(x_j)/T), T = ησ²/(2S).

    Paper eq. 2 (P ∝ exp(−2L/(nσ²)), n = η/S) sampled at the cell centres (midpoint rule),
    normalised with log-sum-exp.  Shape ``grid.shape``; divide by ``grid.cell_volume`` for the
    density."""
    _check_landscape_grid(landscape, grid)
    _check_hyper(lr, batch_size)
    if not _checks.is_scalar(sigma2):
        raise ValueError(f"sigma2 must be a scalar, got {sigma2!r}")
    _checks.check_positive("sigma2", sigma2)
    loss = _loss_on_points(landscape, grid.points)
    # subtract the minimum loss before dividing by T: −L/T can be ~1e7 in magnitude, and any
    # later subtraction of numbers that large would lose ~1e-9 of absolute accuracy
    loss = loss - loss.min()
    if _gibbs is not None and hasattr(_gibbs, "log_density"):
        logp = np.asarray(_gibbs.log_density(loss, lr, batch_size, sigma2), dtype=float)
    else:  # pragma: no cover
        logp = -loss * (2.0 * float(batch_size)) / (float(lr) * float(sigma2))
    mass = np.exp(logp - logsumexp(logp))
    return (mass / mass.sum()).reshape(grid.shape)


# ----------------------------------------------------------------------------------------------
# Time evolution
# ----------------------------------------------------------------------------------------------
_GAMMA = 2.0 - math.sqrt(2.0)  # TR-BDF2 parameter: both stages then share the matrix I − (γΔt/2)A


def evolve(
    landscape: Landscape,
    grid: Grid1D | Grid2D,
    p0: ArrayLike | Callable[[np.ndarray], ArrayLike],
    *,
    lr: float,
    batch_size: float,
    sigma2: float | None = None,
    noise_cov: ArrayLike | None = None,
    times: ArrayLike,
    form: str = "drift",
    dt: float | None = None,
    method: str = "backward_euler",
    check_resolution: bool = True,
) -> np.ndarray:
    """Densities P(t) at ``times`` (in SGD steps) from the initial density ``p0`` at t = 0, eq. 5.

    Implicit in time on the finite-volume generator A (module docstring); the sparse matrix of each
    step size is factorised once with ``splu`` and reused.  ``p0``: density (or any non-negative
    weights) on the cell centres, array of ``grid.shape`` or a callable of ``grid.centers``; it is
    normalised to mass 1.  ``dt``: largest internal step (default 0.05/(η λ_max), λ_max the largest
    Hessian eigenvalue at the minima); each output interval is cut into equal steps ≤ dt.

    ``method="backward_euler"`` (default): first order; (I − ΔtA)⁻¹ is a non-negative matrix with
    unit column sums, so positivity holds for any Δt and mass is conserved to round-off (each step
    can move the total by ~eps·Δt·max|A_ii|, since the column sums of A vanish only to round-off;
    the mass is deliberately not renormalised, so it can be checked).
    ``method="tr-bdf2"``: second order, L-stable, mass-conserving; positivity is guaranteed only for
    Δt·max|A_ii|·γ/2 ≤ 1 (the trapezoidal stage) — the minimum value reached is not clipped.

    Returns an array of shape (len(times),) + grid.shape of densities per unit length/area.
    """
    cov, loss_vals = _prepare(landscape, grid, lr, batch_size, sigma2, noise_cov, form, check_resolution)
    if method not in ("backward_euler", "tr-bdf2"):
        raise ValueError(f"method must be 'backward_euler' or 'tr-bdf2', got {method!r}")
    times = np.atleast_1d(np.asarray(times, dtype=float))
    if times.ndim != 1 or times.size == 0:
        raise ValueError("times must be a non-empty 1-D sequence")
    _checks.check_nonnegative("times", times)
    if np.any(np.diff(times) < 0):
        raise ValueError("times must be non-decreasing")
    _checks.check_fits_memory("times", f"{times.size} times", 8.0 * times.size * grid.size,
                              "the densities returned (len(times) x cells float64)", advice="ask for fewer times")
    if callable(p0):
        p0 = p0(grid.centers)
    m = np.array(p0, dtype=float).reshape(-1)
    if m.size != grid.size:
        raise ValueError(f"p0 must have {grid.size} values (grid.shape = {grid.shape}), got {m.size}")
    _checks.check_nonnegative("p0", m)
    if not m.sum() > 0:
        raise ValueError("p0 must have positive total mass")
    m = m / m.sum()
    if dt is None:
        lam_max = max(float(mm.eigenvalues[-1]) for mm in landscape.minima())
        dt = 0.05 / (float(lr) * lam_max)
    _checks.check_positive("dt", dt)

    diag, bands = _assemble(landscape, grid, lr, batch_size, cov, form, loss_vals)
    A = _to_sparse(diag, bands, grid.size, fmt="csc")
    eye = sp.identity(grid.size, format="csc")
    factors: dict[float, Any] = {}

    def lu_for(step: float):
        key = float(step)
        if key not in factors:
            coef = step if method == "backward_euler" else 0.5 * _GAMMA * step
            factors[key] = spla.splu((eye - coef * A).tocsc(), permc_spec="MMD_AT_PLUS_A", panel_size=8, relax=16)
        return factors[key]

    out = np.empty((times.size, grid.size))
    t = 0.0
    for i, t_next in enumerate(times):
        span = t_next - t
        if span > 0:
            n_steps = max(1, int(math.ceil(span / dt * (1 - 1e-12))))
            step = span / n_steps
            lu = lu_for(step)
            for _ in range(n_steps):
                if method == "backward_euler":
                    m = lu.solve(m)
                else:
                    y = lu.solve(m + (0.5 * _GAMMA * step) * (A @ m))
                    c = 1.0 / (_GAMMA * (2.0 - _GAMMA))
                    m = lu.solve(c * y - c * (1.0 - _GAMMA) ** 2 * m)
            t = t_next
        out[i] = m
    return (out / grid.cell_volume).reshape((times.size,) + grid.shape)
