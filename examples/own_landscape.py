"""Your own loss as plain NumPy functions -> P(A) from Gibbs, Laplace, Fokker-Planck, the SDE and exact SGD.

The loss below is a 2-D tilted double well whose two minima differ in depth and in width: A (x ≈ -1)
is deeper, B (x ≈ +1) is wider across y.  Which one SGD ends in depends on the noise n = lr/batch_size
through the temperature T = lr·sigma2/(2·batch_size) (paper eq. 2-3).  One script lines up

* Laplace (paper eq. 3): P(A) ∝ det(H_A)^(-1/2) exp(-L_A/T), from the minima alone;
* Gibbs (paper eq. 2) integrated exactly over the basins of attraction (quadrature);
* the stationary Fokker-Planck equation (paper eq. 5) solved on a grid;
* an Euler-Maruyama ensemble of the SDE (paper eq. 1);
* exact minibatch SGD on a finite sum with per-sample gradient noise of covariance sigma2·I,

each printed with its error bar, and draws them in one figure.  The runs are long enough to
equilibrate: the Eyring-Kramers relaxation time of the barrier (theory.escape) sets n_steps.

Run:  python examples/own_landscape.py            (about 30 s on 2 cores)
      python examples/own_landscape.py --toy      (seconds; what CI runs)
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

from sim import fokker_planck as fp
from sim.observers import Basins
from sim.sde import simulate_sde
from sim.sgd import simulate_sgd
from theory import escape, minima
from theory.landscapes import IsotropicNoiseFiniteSum, Landscape


# ---- your loss: plain functions of one point theta (shape (2,)) and your parameters ------------
def value(theta, tilt, width):
    """L = (x² - 1)²/4 + tilt·x + exp(-width·x)·y²/2: minima near x = ∓1, y-curvature e^(±width)."""
    x, y = theta[0], theta[1]
    return 0.25 * (x * x - 1.0) ** 2 + tilt * x + 0.5 * math.exp(-width * x) * y * y


def gradient(theta, tilt, width, out):
    """Written into ``out`` (no allocation per call in the simulators' inner loops)."""
    x, y = theta[0], theta[1]
    k = math.exp(-width * x)
    out[0] = x ** 3 - x + tilt - 0.5 * width * k * y * y
    out[1] = k * y
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--toy", action="store_true", help="small ensembles and grid (seconds)")
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--sigma2", type=float, default=10.0)
    ap.add_argument("--out", default="own_landscape.png", help="figure file")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    n_particles, n_cells = (400, 120) if args.toy else (20_000, 400)
    kw = dict(lr=args.lr, batch_size=args.batch_size, sigma2=args.sigma2)
    temperature = args.lr * args.sigma2 / (2 * args.batch_size)

    land = Landscape.from_functions(value, gradient, dim=2, params=(0.05, 0.7), minima_guesses=[[-1, 0], [1, 0]],
                                    name="my double well")                      # Hessian by central differences
    mins = land.minima()
    for name, m in zip("AB", mins):
        print(f"minimum {name}: theta = {np.round(m.location, 4)}, L = {m.loss:.4f}, "
              f"eigenvalues of H = {np.round(m.eigenvalues, 4)}")
    print(f"lr = {args.lr}, batch_size = {args.batch_size}, sigma2 = {args.sigma2}: noise n = lr/S = "
          f"{args.lr / args.batch_size:g}, temperature T = {temperature:g}")

    # how long to run: the Eyring-Kramers relaxation time (a small-T estimate), in SGD steps (t_eta / lr)
    saddle = escape.find_saddle_2d(land)
    tau = escape.eyring_kramers_relaxation(land, temperature, saddle) / args.lr
    n_steps = int(math.ceil(7 * tau))                                           # e^-7 ≈ 1e-3 left of the start
    print(f"saddle at {np.round(saddle, 4)}; relaxation time ≈ {tau:.0f} steps: running {n_steps} steps")

    rows = {}
    rows["Laplace (eq. 3)"] = (minima.probabilities(mins, **kw)[0], None)
    rows["Gibbs, exact quadrature"] = (minima.basin_probabilities(land, **kw, n_grid=201 if args.toy else 401)[0], None)
    grid = fp.make_grid(land, n_cells, **kw)
    fokker_planck = fp.solve_stationary(land, grid, **kw)
    rows[f"Fokker-Planck ({n_cells}x{n_cells} cells)"] = (fokker_planck.basin_masses(land)[0], None)
    theta0 = mins[0].location                                                   # everyone starts in A
    em = simulate_sde(land, **kw, n_steps=n_steps, n_particles=n_particles, theta0=theta0, seed=1,
                      observers=[Basins(every=n_steps)])
    p, se = em.basin_probabilities()
    rows[f"Euler-Maruyama SDE ({n_particles} particles)"] = (p[0], se[0])
    data = IsotropicNoiseFiniteSum(land, n_samples=10_000, sigma2=args.sigma2, seed=0)  # per-sample noise sigma2·I
    sgd = simulate_sgd(data, lr=args.lr, batch_size=args.batch_size, n_steps=n_steps, n_particles=n_particles,
                       theta0=theta0, seed=2, replacement=True, observers=[Basins(every=n_steps)])
    p, se = sgd.basin_probabilities()
    rows[f"exact minibatch SGD ({n_particles} particles)"] = (p[0], se[0])

    print(f"\nP(A) at T = {temperature:g}:")
    for name, (p, se) in rows.items():
        print(f"  {name:<42s} {p:.4f}" + (f" ± {se:.4f}" if se is not None else ""))
    print(f"  (diverged particles: EM {em.n_diverged}, SGD {sgd.n_diverged}; they would be left out)")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.2))
    xs = np.linspace(grid.low[0], grid.high[0], 200)
    ys = np.linspace(grid.low[1], grid.high[1], 160)
    pts = np.stack(np.meshgrid(xs, ys, indexing="ij"), axis=-1)
    ax0.contour(xs, ys, land.value(pts).T, levels=np.linspace(-0.1, 1.5, 17), cmap="viridis")
    fin = sgd.finite()[:400]
    ax0.plot(fin[:, 0], fin[:, 1], ".", ms=2, color="k", alpha=0.5, label="SGD particles at the end")
    for name, m in zip("AB", mins):
        ax0.annotate(name, m.location, fontsize=14, color="C3")
    ax0.set(xlabel="x", ylabel="y", title="your loss and where SGD ends", ylim=(-2.5, 2.5))
    ax0.legend(loc="upper left", fontsize=8)
    names = list(rows)
    vals = [rows[k][0] for k in names]
    ax1.barh(range(len(names)), vals, color=["C0", "C0", "C1", "C2", "C3"])
    for i, k in enumerate(names):
        if rows[k][1] is not None:                                              # simulations: ± 2 SE
            ax1.errorbar(vals[i], i, xerr=2 * rows[k][1], color="k", capsize=4)
    ax1.set_yticks(range(len(names)), names, fontsize=8)
    ax1.set(xlabel="P(A)  (simulations: ± 2 standard errors)", title=f"P(A) at T = {temperature:g}",
            xlim=(min(vals) - 0.1, min(1.0, max(vals) + 0.1)))
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"\nfigure: {args.out}  ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
