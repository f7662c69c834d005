"""An eta/S sweep: P(A) against the noise n = lr/batch_size, from exact SGD and from the theory.

Wherever a run is too short to have equilibrated, the library warns and the point is drawn hollow.

The landscape is a 1-D double well with a deep sharp minimum A and a shallow flat minimum B.  At low
noise SGD should prefer A (deeper), at high noise B (flatter): P(A) falls through 1/2 at the threshold
noise n* (paper eq. 4, corrected: theory.minima.threshold_noise).  For each n the script runs exact
minibatch SGD from A for a fixed number of steps and draws

* the Gibbs law integrated over the basins (paper eq. 2) and its Laplace approximation (eq. 3);
* the stationary law of the exact discrete chain of SGD (sim.chain: with the finite-lr bias);
* what that chain predicts *after the run's n_steps* from A: P_A(t) = P_A(∞) + (1 − P_A(∞))·e^(−t/τ),
  τ its relaxation time.

Where n_steps is shorter than the steps the chain needs to equilibrate (sim.chain.steps_to_equilibrate)
the library warns (sim.chain.NotEquilibratedWarning) and the point is drawn hollow: at low noise the
relaxation time grows like e^(barrier/T), and a run of 8,000 steps there measures only where the particles
started (P(A) = 1.0), not the stationary P(A).

Run:  python examples/noise_sweep.py                    (9 noise levels, about a minute on 2 cores)
      python examples/noise_sweep.py --n-steps 100000   (longer runs: more points equilibrate)
      python examples/noise_sweep.py --toy              (seconds; what CI runs)
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

from sim import chain as ch
from sim.observers import Basins
from sim.sgd import simulate_sgd
from theory import minima
from theory.landscapes import IsotropicNoiseFiniteSum, double_well_1d


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--toy", action="store_true", help="4 noise levels, small ensembles (seconds)")
    ap.add_argument("--n-steps", type=int, default=8000, help="SGD steps per run (default 8000)")
    ap.add_argument("--batch-size", type=int, default=1, help="S; the learning rate is n·S")
    ap.add_argument("--sigma2", type=float, default=2.0, help="per-sample gradient noise variance")
    ap.add_argument("--out", default="noise_sweep.png", help="figure file")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    noises = np.array([0.02, 0.05, 0.1, 0.2]) if args.toy else np.geomspace(0.01, 0.3, 9)
    n_particles = 1000 if args.toy else 4000
    S, sigma2, n_steps = args.batch_size, args.sigma2, args.n_steps

    land = double_well_1d(loss_a=0.0, curvature_a=2.0, loss_b=0.05, curvature_b=0.5, barrier=0.3)
    a, b = land.minima()
    n_star = minima.threshold_noise(b.loss, a.loss, b.logdet, a.logdet, sigma2)   # B (higher, flatter) wins above n*
    print(f"A: x = {a.location[0]:+.3f}, L = {a.loss:.3f}, L'' = {a.eigenvalues[0]:.2f}   "
          f"B: x = {b.location[0]:+.3f}, L = {b.loss:.3f}, L'' = {b.eigenvalues[0]:.2f}")
    print(f"threshold noise n* = {n_star:.4f} (P(A) = P(B) in the Laplace approximation); "
          f"batch_size S = {S}, sigma2 = {sigma2}, {n_steps} SGD steps from A, {n_particles} particles\n")
    data = IsotropicNoiseFiniteSum(land, n_samples=10_000, sigma2=sigma2, seed=0)    # per-sample noise sigma2·I

    head = f"{'n=lr/S':>8} {'lr':>7} {'SGD P(A)':>16} {'chain@n_steps':>13} {'chain stat.':>11} {'Gibbs':>7} " \
           f"{'Laplace':>7} {'tau':>10} {'needs':>10}"
    print(head)
    rows = []
    sharpest = max(float(m.eigenvalues[-1]) for m in (a, b))
    for n in noises:
        lr = float(n * S)
        kw = dict(lr=lr, batch_size=S, sigma2=sigma2)
        if lr * sharpest >= 2.0:     # SGD leaves the sharp minimum: no stationary law to compare with
            print(f"{n:8.4f} {lr:7.4f}  skipped: lr * L''(A) = {lr * sharpest:.3g} >= 2, SGD is unstable at A")
            continue
        chain = ch.sgd_chain(land, **kw)
        tau = chain.relaxation_steps()
        need = ch.steps_to_equilibrate(land, **kw)
        ok = ch.check_equilibrated(n_steps, land, **kw)        # warns (NotEquilibratedWarning) when too short
        pi = chain.stationary()
        p_stat = float(pi[land.basin_index(chain.x[:, None]) == 0].sum())
        p_at = p_stat + (1.0 - p_stat) * math.exp(-n_steps / tau)       # the slow mode, started in A
        res = simulate_sgd(data, lr=lr, batch_size=S, n_steps=n_steps, n_particles=n_particles, theta0=a.location,
                           seed=int(1000 * n), replacement=True, observers=[Basins(every=n_steps)])
        p, se = res.basin_probabilities()
        row = dict(n=n, lr=lr, p=p[0], se=se[0], chain_at=p_at, chain=p_stat, ok=ok, tau=tau, need=need,
                   gibbs=minima.basin_probabilities(land, **kw)[0], laplace=minima.probabilities([a, b], **kw)[0])
        rows.append(row)
        print(f"{n:8.4f} {lr:7.4f} {row['p']:8.4f} ± {row['se']:.4f} {p_at:13.4f} {p_stat:11.4f} {row['gibbs']:7.4f} "
              f"{row['laplace']:7.4f} {tau:10.4g} {need:10.4g}" + ("" if ok else "  NOT EQUILIBRATED"))
    short = [r for r in rows if not r["ok"]]
    if short:
        print(f"\n{len(short)} of {len(rows)} runs are shorter than their equilibration time (n <= "
              f"{max(r['n'] for r in short):.3g}): their P(A) measures the start, not the stationary law; "
              f"they agree with the chain after {n_steps} steps instead.")

    draw(rows, land, S=S, sigma2=sigma2, n_steps=n_steps, n_star=n_star, path=args.out)
    print(f"\nfigure: {args.out}  ({time.perf_counter() - t0:.1f} s)")
    return 0


def draw(rows: list[dict], land, *, S: int, sigma2: float, n_steps: int, n_star: float, path: str) -> None:
    """P(A) against n: Gibbs and Laplace as curves, the exact chain and SGD as points (hollow: the run
    was shorter than equilibration)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, b = land.minima()
    ns = np.array([r["n"] for r in rows])
    fine = np.geomspace(ns[0], ns[-1], 60)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(fine, [minima.basin_probabilities(land, lr=x * S, batch_size=S, sigma2=sigma2)[0] for x in fine],
            "k-", label="Gibbs (eq. 2), exact over basins")
    ax.plot(fine, minima.probabilities([a, b], lr=fine * S, batch_size=S, sigma2=sigma2)[0], "k--",
            label="Laplace (eq. 3)")
    ax.plot(ns, [r["chain"] for r in rows], "s", mfc="none", color="C1", label="exact SGD chain, stationary")
    ax.plot(ns, [r["chain_at"] for r in rows], "x", color="C2", ms=8, label=f"exact SGD chain after {n_steps} steps")
    for ok, style in ((True, dict(fmt="o", color="C0", label="SGD, equilibrated")),
                      (False, dict(fmt="o", mfc="white", color="C3", label="SGD, run shorter than equilibration"))):
        sel = [r for r in rows if r["ok"] == ok]
        if sel:
            ax.errorbar([r["n"] for r in sel], [r["p"] for r in sel], yerr=[2 * r["se"] for r in sel], **style)
    ax.axvline(n_star, color="0.6", lw=0.8)
    ax.text(n_star, 0.02, " n*", color="0.4")
    ax.set(xscale="log", xlabel="noise n = lr / batch_size", ylabel="P(A)  (deep sharp minimum)", ylim=(0, 1.05),
           title=f"P(A) vs lr/S after {n_steps} SGD steps (error bars: 2 SE)")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
