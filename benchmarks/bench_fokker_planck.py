"""Benchmark of sim.fokker_planck stationary solves (speed targets and the anchors of other tools:
shared/notes/performance-anchors.md).

Prints, in one run:
* 1-D anchor problem: QuarticDoubleWell(tilt=0.1) on [−3, 3], 10,000 cells, T = 0.1
  (lr = 0.1, batch_size = 1, sigma2 = 2): solve time and L1 error vs the Gibbs cell masses, both
  forms (target: ≤ 5 ms at L1 ≤ 1e-6 in the drift form; at most 0.1 s);
* 2-D: wells_2d() at T = 0.1 on landscape.bounds(T, n_sigma_loss=25), 500×500 cells
  (target < 5 s; at most 10 s), with L1 errors (and, with --basins, basin masses vs the
  Gibbs quadrature on the same grid and the Laplace estimate, eq. 3);
* the same problems with fplanck 0.2.2 (master-equation matrix + shift-invert eigs) when it is
  importable, and the speed ratio.  The 2-D fplanck run is done in a subprocess and abandoned
  after 60 s (then extrapolated from a 250×250 run by N^1.5 and marked as such).

Times are medians of repeated runs of the whole public call (validation, assembly, solve,
normalisation).  Usage: ``python benchmarks/bench_fokker_planck.py [--basins] [--quick]``.
"""
from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import sys
import time

import numpy as np

from sim.fokker_planck import Grid1D, Grid2D, gibbs_on_grid, make_grid, solve_stationary
from theory.landscapes import QuarticDoubleWell, wells_2d

LR, BS, S2 = 0.1, 1, 2.0
TEMP = LR * S2 / (2 * BS)


def _median_time(fn, repeats):
    ts = []
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), out


# ---------------------------------------------------------------------------------------------
# fplanck baseline (its grid: N points spaced by `resolution`, centred on 0 — our cell centres
# after shifting the box centre to 0).  kT = 1 and drag = 1, potential U = L/T: same stationary law.
# ---------------------------------------------------------------------------------------------
def _fplanck_stationary(land, low, high, n, form):
    import fplanck
    from scipy import constants

    if not hasattr(np, "product"):  # fplanck 0.2.2 calls np.product, removed in NumPy 2
        np.product = np.prod
    low = np.atleast_1d(np.asarray(low, float))
    high = np.atleast_1d(np.asarray(high, float))
    d = low.size
    n = np.broadcast_to(np.asarray(n), (d,)).astype(int)
    res = (high - low) / n
    centre = 0.5 * (low + high)

    def pts(*xs):
        return np.stack([x + c for x, c in zip(xs, centre)], axis=-1)

    def potential(*xs):
        return land.value(pts(*xs)) / TEMP

    def force(*xs):
        g = np.asarray(land.gradient(pts(*xs)))
        if d == 1:
            g = g.reshape(xs[0].shape + (1,))
        return -np.moveaxis(g, -1, 0) / TEMP

    kw = {"potential": potential} if form == "potential" else {"force": force}
    # extent slightly below n·res so that ceil(extent/res) = n exactly
    sim = fplanck.fokker_planck(temperature=1 / constants.k, drag=1.0, extent=(n - 0.5) * res,
                                resolution=res if d > 1 else res[0], boundary=fplanck.boundary.reflecting, **kw)
    assert tuple(sim.Ngrid) == tuple(n), (sim.Ngrid, n)
    return np.asarray(sim.steady_state())


def _fplanck_worker(q, land_name, low, high, n, form):
    land = wells_2d() if land_name == "wells_2d" else QuarticDoubleWell(tilt=0.1)
    t0 = time.perf_counter()
    p = _fplanck_stationary(land, low, high, n, form)
    q.put((time.perf_counter() - t0, p))


def _fplanck_timed(land_name, low, high, n, form, timeout):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    proc = ctx.Process(target=_fplanck_worker, args=(q, land_name, low, high, n, form))
    proc.start()
    try:
        t, p = q.get(timeout=timeout)
    except Exception:
        proc.kill()
        proc.join()
        return None, None
    proc.join()
    return t, p


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--basins", action="store_true", help="also basin masses at 500x500 (basin_index is slow)")
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    args = ap.parse_args(argv)
    try:
        import fplanck  # noqa: F401
        have_fplanck = True
    except Exception:
        have_fplanck = False

    print(f"# sim.fokker_planck benchmark   cores={os.cpu_count()}   load average at start={os.getloadavg()}")
    print(f"# T = lr*sigma2/(2*batch_size) = {TEMP}  (lr={LR}, batch_size={BS}, sigma2={S2})")

    # -------------------------------- 1-D anchor --------------------------------------------
    q = QuarticDoubleWell(tilt=0.1)
    g1 = Grid1D(-3.0, 3.0, 10_000)
    ref1 = gibbs_on_grid(q, g1, lr=LR, batch_size=BS, sigma2=S2)
    reps = 20 if args.quick else 100
    print("\n## 1-D QuarticDoubleWell(tilt=0.1), [-3, 3], 10,000 cells (target <= 5 ms at L1 <= 1e-6, drift form)")
    ours1 = {}
    for form in ("drift", "potential"):
        for method in ("sparse", "zero_flux"):
            fn = lambda: solve_stationary(q, g1, lr=LR, batch_size=BS, sigma2=S2, form=form, method=method)
            fn()  # warm-up (minima cache, imports)
            t, sol = _median_time(fn, reps)
            l1 = sol.l1_error_mass(ref1)
            ours1[(form, method)] = t
            print(f"sim.fokker_planck  form={form:9s} method={method:9s}  {t * 1e3:8.3f} ms   L1 = {l1:.2e}")
    if have_fplanck:
        for form in ("force", "potential"):
            t, p = _median_time(lambda: _fplanck_stationary(q, -3.0, 3.0, 10_000, form), 3)
            l1 = float(np.sum(np.abs(p.ravel() - ref1.ravel())))
            ours = ours1[("drift" if form == "force" else "potential", "sparse")]
            print(f"fplanck            {form:9s} (eigs)            {t * 1e3:8.3f} ms   L1 = {l1:.2e}"
                  f"   -> ours (sparse) {t / ours:6.1f}x faster")
    else:
        print("fplanck not importable: baseline skipped")

    # -------------------------------- 2-D ----------------------------------------------------
    w = wells_2d()
    n2 = 500
    g2 = make_grid(w, n2, lr=LR, batch_size=BS, sigma2=S2, n_sigma_loss=25.0)
    ref2 = gibbs_on_grid(w, g2, lr=LR, batch_size=BS, sigma2=S2)
    print(f"\n## 2-D wells_2d(), box {np.round(g2.low, 3).tolist()} .. {np.round(g2.high, 3).tolist()}, "
          f"{n2}x{n2} cells (target < 5 s; at most 10 s)")
    reps2 = 1 if args.quick else 3
    ours2 = {}
    sols = {}
    for form in ("drift", "potential"):
        t, sol = _median_time(lambda: solve_stationary(w, g2, lr=LR, batch_size=BS, sigma2=S2, form=form), reps2)
        ours2[form] = t
        sols[form] = sol
        print(f"sim.fokker_planck  form={form:9s}  {t:7.3f} s   L1 = {sol.l1_error_mass(ref2):.2e}")
    if args.basins:
        t0 = time.perf_counter()
        bm = sols["drift"].basin_masses(w)
        idx = np.asarray(w.basin_index(g2.points))
        ref_bm = np.bincount(idx, weights=ref2.ravel(), minlength=2)
        mins = w.minima()
        lap = [math.exp(-0.5 * m.logdet - m.loss / TEMP) for m in mins]
        print(f"basin masses drift {bm}, Gibbs quadrature {ref_bm}; ratio B/A drift {bm[1] / bm[0]:.5f}, "
              f"quadrature {ref_bm[1] / ref_bm[0]:.5f} (rel. diff {bm[1] / bm[0] / (ref_bm[1] / ref_bm[0]) - 1:+.2e}), "
              f"Laplace (eq. 3) {lap[1] / lap[0]:.5f}  [{time.perf_counter() - t0:.1f} s incl. basin_index]")
    if have_fplanck:
        for form in ("force", "potential"):
            t, p = _fplanck_timed("wells_2d", g2.low, g2.high, n2, form, timeout=60)
            ours = ours2["drift" if form == "force" else "potential"]
            if t is None:
                n_small = 250
                gs = Grid2D(g2.low, g2.high, n_small)
                ts, ps = _fplanck_timed("wells_2d", gs.low, gs.high, n_small, form, timeout=120)
                if ts is None:
                    print(f"fplanck 2-D {form}: > 60 s at 500x500 and > 120 s at 250x250: skipped")
                    continue
                t_ex = ts * (n2 * n2 / n_small**2) ** 1.5
                print(f"fplanck            {form:9s}  > 60 s at 500x500 (abandoned); {ts:.2f} s at 250x250, "
                      f"extrapolated ~{t_ex:.0f} s by N^1.5  -> ours ~{t_ex / ours:.0f}x faster (extrapolated)")
            else:
                l1 = float(np.sum(np.abs(p.ravel() - ref2.ravel())))
                print(f"fplanck            {form:9s}  {t:7.3f} s   L1 = {l1:.2e}   -> ours {t / ours:5.1f}x faster")
    print(f"\n# load average at end={os.getloadavg()}  (timings on a shared machine inflate with load)")


if __name__ == "__main__":
    sys.exit(main())
