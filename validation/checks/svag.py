"""``svag``: SVAG, the variance-amplified test of the SDE regime (Li, Malladi & Arora 2021;
:mod:`theory.svag`, :mod:`sim.svag`; docs/beyond-the-paper.md §3).

SVAG with amplification l runs l steps of θ ← θ − (η/l)[r₁g_B1 + r₂g_B2], r₁,₂ = (1 ± √(2l − 1))/2,
per SGD step: SGD's drift and noise covariance per unit time at every l, and the paper's SDE as
l → ∞, at weak order 1 in 1/l.

* Weak order: on L = λθ²/2 with additive per-sample noise (a finite sum with symmetric Gaussian
  ξ_j) the exact second moment after K units of SGD time is known in closed form at every l and for
  the SDE: simulated SVAG must follow the exact law at l = 1, 2, 4, 8 (not the SDE's, which predicts
  no l-dependence), and its distance to the SDE must fall like 1/l (fitted slope).
* Stability: at an interpolating minimum (h_i ~ Exp(1), N = 16, S = 4) SVAG's mean-square boundary
  η*_l = 2a/(a²/l + cs²) moves from SGD's (l = 1) towards the SDE's 2a/(cs²); E θ_t² of simulated SVAG
  at 0.95, 1.05, 1.25 η*_l must follow the exact per-step factor at l = 1, 2 (at l ≥ 4 the negative
  weight r₂ makes the mean square a rare-event average: its standard error explodes, reported).
"""
from __future__ import annotations

import math

import numpy as np

from sim.observers import Record
from sim.svag import simulate_svag
from theory import stability as tst
from theory import svag as tsvag
from theory.landscapes import IsotropicNoiseFiniteSum, LeastSquares, Quadratic
from validation.checks.linear_stability import N_SAMPLES, curvatures
from validation.core import Check
from validation.plotting import decorate
from validation.stats import bonferroni_z, loglog_slope
from validation.stats import fmt as _g

__all__ = ["Svag"]

LAM, LR, BATCH, SIGMA2, THETA0, TIME = 2.0, 0.3, 4, 1.0, 1.0, 20   # weak-order experiment (ηλ = 0.6)
AMPLIFICATIONS = np.array([1, 2, 4, 8])
STABLE_AMPS = np.array([1, 2])             # graded stability runs
RATIOS = np.array([0.95, 1.05, 1.25])
STABILITY_TIME = 3                         # units of SGD time (l·3 SVAG steps)
STABILITY_BATCH = 4


def _second_moment(amplification):
    """E θ² after TIME units of SGD time, exact, for SVAG (amplification) or the SDE (None)."""
    kw = dict(mean0=THETA0, var0=0.0, lam=LAM, lr=LR, batch_size=BATCH, sigma2=SIGMA2)
    if amplification is None:
        m, v = tsvag.sde_isotropic_moments_1d(TIME, **kw)
    else:
        m, v = tsvag.isotropic_moments_1d(TIME, amplification=int(amplification), **kw)
    return m * m + v


def _factor_moments(h, lr, amplification):
    """E X² and E X⁴ of one SVAG factor X = 1 − (η/l)(r₁U + r₂V), U, V independent minibatch means of
    S = STABILITY_BATCH curvatures drawn with replacement (exact law of U enumerated; powers of V
    through its moments)."""
    values, probs = tst.batch_mean_distribution(h, STABILITY_BATCH, replacement=True)
    r1, r2 = tsvag.coefficients(int(amplification))
    alpha, beta = lr / amplification * r1, lr / amplification * r2
    v_moments = [float(probs @ values**k) for k in range(5)]
    out = []
    for p in (2, 4):
        terms = sum(math.comb(p, k) * (1 - alpha * values) ** (p - k) * (-beta) ** k * v_moments[k]
                    for k in range(p + 1))
        out.append(float(probs @ terms))
    return out


class Svag(Check):
    name = "svag"
    title = "SVAG: convergence to the SDE at weak order 1"
    claim = ("Variance-amplified SGD (SVAG, amplification l) has SGD's drift and noise per unit time and converges "
             "to the paper's SDE as l grows, at weak order 1; its stability boundary moves from SGD's to the SDE's.")
    paper_ref = "eq. 1 (beyond: Li, Malladi & Arora 2021, eq. 5, Thm 4.3)"
    sabotage = "the SDE's law (l → ∞: no l-dependence) in place of SVAG's exact law at each l"
    order = 402

    def compute(self, ctx):
        m = ctx.size(200_000, 1_000_000)
        land = IsotropicNoiseFiniteSum(Quadratic([[LAM]]), 1000, SIGMA2, seed=ctx.seed_for("data") % 2**31,
                                       symmetric=True)
        mean_sq, se_sq = [], []
        for l in AMPLIFICATIONS:
            ctx.phase(f"SVAG l = {l} on the quadratic: {m} particles × {l * TIME} steps")
            res = simulate_svag(land, lr=LR, batch_size=BATCH, amplification=int(l), n_steps=TIME, n_particles=m,
                                theta0=THETA0, seed=ctx.seed_for(f"weak {l}"), replacement=True)
            x2 = res.finite()[:, 0] ** 2
            mean_sq.append(x2.mean())
            se_sq.append(x2.std(ddof=1) / math.sqrt(x2.size))
        d = dict(amplifications=AMPLIFICATIONS, m=m, mean_sq=np.array(mean_sq), se_sq=np.array(se_sq),
                 exact_sq=np.array([_second_moment(l) for l in AMPLIFICATIONS]), sde_sq=_second_moment(None))
        # stability at an interpolating minimum
        h = curvatures()
        a, s = tst.sharpness_nonuniformity(h)
        grid = np.array([1, 2, 4, 8, 16, 32, 64])
        d.update(amp_grid=grid, eta_star_grid=np.array([float(tsvag.critical_lr(h, batch_size=STABILITY_BATCH,
                                                                                 amplification=int(l),
                                                                                 replacement=True)) for l in grid]),
                 sde_star=float(tst.sde_critical_lr(h, batch_size=STABILITY_BATCH, replacement=True)),
                 sharpness=a, nonuniformity=s)
        ms = ctx.size(200_000, 1_000_000)
        interp = LeastSquares(np.sqrt(h)[:, None], np.zeros(N_SAMPLES))
        sq = np.empty((STABLE_AMPS.size, RATIOS.size))
        q, m4 = np.empty_like(sq), np.empty_like(sq)
        for i, l in enumerate(STABLE_AMPS):
            eta_star = float(tsvag.critical_lr(h, batch_size=STABILITY_BATCH, amplification=int(l), replacement=True))
            for j, r in enumerate(RATIOS):
                ctx.phase(f"SVAG l = {l} at the interpolating minimum, η = {r:g} η*_l")
                q[i, j], m4[i, j] = _factor_moments(h, r * eta_star, l)
                res = simulate_svag(interp, lr=r * eta_star, batch_size=STABILITY_BATCH, amplification=int(l),
                                    n_steps=STABILITY_TIME, n_particles=ms, theta0=1.0,
                                    seed=ctx.seed_for(f"stability {l} {r}"), replacement=True,
                                    divergence_bound=np.inf)
                sq[i, j] = np.mean(res.final[:, 0] ** 2)
        large = np.array([_factor_moments(h, 1.05 * float(tsvag.critical_lr(h, batch_size=STABILITY_BATCH,
                                                                           amplification=l, replacement=True)), l)
                          for l in (4, 8)])
        d.update(stable_amps=STABLE_AMPS, ratios=RATIOS, m_stab=ms, sq_stab=sq, q_stab=q, m4_stab=m4,
                 q_m4_large=large)
        return d

    def compare(self, ctx, d):
        amps = d["amplifications"]
        z = bonferroni_z(amps.size)
        sde = np.full(amps.size, d["sde_sq"])
        ctx.compare("E θ² after 20 units of SGD time vs SVAG's exact value, l = 1, 2, 4, 8", measured=d["mean_sq"],
                    predicted=d["exact_sq"], stderr=d["se_sq"], wrong_prediction=sde,
                    wrong_name="the SDE's value at every l (no l-dependence)", metric="max_z", tolerance=z,
                    derivation=f"SE of the mean of θ² over M = {int(d['m'])} independent particles (sample s.d./√M); "
                    f"Bonferroni z for α = 1e-3 over {amps.size} = {z:.2f}; exact: the AR(1) recursion of SVAG on a "
                    "quadratic with additive noise (theory.svag.isotropic_moments_1d)")
        gap, gap_exact = d["mean_sq"] - d["sde_sq"], d["exact_sq"] - d["sde_sq"]
        s_meas, se_meas = loglog_slope(amps, gap, d["se_sq"])
        s_exact, _ = loglog_slope(amps, gap_exact, d["se_sq"])
        zs = bonferroni_z(2)
        ctx.compare("slope of log|E θ²_l − E θ²_SDE| in log l (weighted fit, l = 1 … 8) vs the exact law's",
                    measured=s_meas, predicted=s_exact, stderr=se_meas, wrong_prediction=0.0,
                    wrong_name="no convergence in l (slope 0)", metric="max_z", tolerance=zs,
                    derivation=f"fitted slope {s_meas:.3f} ± {se_meas:.3f} (delta-method weights (SE/gap)²); "
                    f"the exact law's slope over the same l with the same weights {s_exact:.3f}; z for α = 1e-3 over "
                    f"2 slopes = {zs:.2f}")
        local = math.log(gap[-1] / gap[-2]) / math.log(amps[-1] / amps[-2])
        se_local = math.hypot(d["se_sq"][-1] / gap[-1], d["se_sq"][-2] / gap[-2]) / math.log(amps[-1] / amps[-2])
        local_exact = math.log(gap_exact[-1] / gap_exact[-2]) / math.log(amps[-1] / amps[-2])
        bias = abs(local_exact + 1.0)
        ctx.compare(f"weak order: local slope of the gap to the SDE between l = {amps[-2]} and {amps[-1]} vs −1",
                    measured=local, predicted=-1.0, wrong_prediction=0.0, wrong_name="no convergence in l (slope 0)",
                    metric="abs", tolerance=zs * se_local + bias,
                    derivation=f"measured {local:.3f} ± {se_local:.3f}; tolerance z·SE + the O(1/l²) part of the exact "
                    f"closed form at these l (its local slope {local_exact:.3f}, so {bias:.3f}), z = {zs:.2f}")
        # stability
        t_steps = d["stable_amps"][:, None] * STABILITY_TIME
        exact = d["q_stab"] ** t_steps
        se = np.sqrt((d["m4_stab"] ** t_steps - d["q_stab"] ** (2 * t_steps)) / d["m_stab"])
        a, s = d["sharpness"], d["nonuniformity"]
        lrs = d["ratios"][None, :] * np.array([d["eta_star_grid"][list(d["amp_grid"]).index(l)]
                                               for l in d["stable_amps"]])[:, None]
        sde = np.exp(STABILITY_TIME * (-2 * lrs * a + lrs**2 * s * s / STABILITY_BATCH))
        zq = bonferroni_z(exact.size)
        ctx.compare("SVAG at an interpolating minimum: E θ² after 3 units of SGD time vs q_l^(3l), η/η*_l = 0.95, 1.05, "
                    "1.25, l = 1, 2", measured=d["sq_stab"], predicted=exact, stderr=se, wrong_prediction=sde,
                    wrong_name="the SDE's second moment (stable up to 2a/(cs²))", metric="max_z", tolerance=zq,
                    derivation=f"q_l = E X², X = 1 − (η/l)(r₁h_B1 + r₂h_B2), and SE √((m4^t − q^(2t))/M), "
                    f"m4 = E X⁴, "
                    f"over the exact law of the batch means; M = {int(d['m_stab'])}; Bonferroni z over {exact.size} "
                    f"= {zq:.2f}")
        ctx.note(f"E θ² after {TIME} units of SGD time (λ = {LAM:g}, η = {LR:g}, S = {BATCH}, σ² = {SIGMA2:g}, "
                 "θ0 = 1): "
                 + ", ".join(f"l = {l}: {v:.6f} ± {e:.1e} (exact {x:.6f})" for l, v, e, x in
                             zip(amps, d["mean_sq"], d["se_sq"], d["exact_sq"]))
                 + f"; SDE {d['sde_sq']:.6f}. Gap to the SDE: measured {_g(gap)}, exact {_g(gap_exact)}; fitted "
                 f"slope {s_meas:.3f} ± {se_meas:.3f} (exact law "
                 f"{s_exact:.3f}; local slopes of the exact law "
                 f"{np.array2string(np.diff(np.log(gap_exact)) / np.diff(np.log(amps)), precision=3)} → −1).")
        ctx.note("Mean-square stability boundary η*_l at S = 4 (with replacement): "
                 + ", ".join(f"l = {l}: {v:.3f}" for l, v in zip(d["amp_grid"], d["eta_star_grid"]))
                 + f"; SDE (l → ∞) {d['sde_star']:.3f}. At 1.05 η*_l the per-step E X⁴ is "
                 + ", ".join(f"{v[1]:.3g} (l = {l})" for l, v in zip((4, 8), d["q_m4_large"]))
                 + f": after 3l steps the standard error of E θ² over M = {int(d['m_stab'])} runs is "
                 + ", ".join(f"{math.sqrt((v[1] ** (3 * l) - v[0] ** (6 * l)) / d['m_stab']):.2g}"
                             for l, v in zip((4, 8), d["q_m4_large"]))
                 + " against E θ² ≈ 1: the mean square is then an average over rare runs, not measurable by sampling.")

    def draw(self, d, plt):
        fig, axs = plt.subplots(1, 2, figsize=(12, 4.6))
        ax = axs[0]
        amps = d["amplifications"]
        fine = np.arange(1, 17)
        ax.loglog(fine, [_second_moment(l) - d["sde_sq"] for l in fine], "k-", label="exact SVAG law")
        ax.errorbar(amps, d["mean_sq"] - d["sde_sq"], yerr=d["se_sq"], fmt="o", color="C0", label="simulated SVAG")
        ax.loglog(fine, (d["exact_sq"][-1] - d["sde_sq"]) * amps[-1] / fine, "k:", lw=0.8, label="slope −1")
        decorate(ax,
                 xlabel="amplification l",
                 ylabel="E θ²_l − E θ²_SDE",
                 title="Weak order 1: the gap to the SDE falls like 1/l",
                 legend=8)
        ax = axs[1]
        ax.semilogx(d["amp_grid"], d["eta_star_grid"], "ko-", label="η*_l (mean-square boundary of SVAG)")
        ax.axhline(d["sde_star"], color="C3", ls=":", label="SDE (l → ∞): 2a/(cs²)")
        for i, l in enumerate(d["stable_amps"]):
            star = d["eta_star_grid"][list(d["amp_grid"]).index(l)]
            grow = d["sq_stab"][i] > 1
            ax.scatter(np.full(d["ratios"].size, l), d["ratios"] * star, c=np.where(grow, "C3", "C2"), zorder=3)
        decorate(ax,
                 xlabel="amplification l",
                 ylabel="learning rate η (S = 4)",
                 title="Stability boundary from SGD's to the SDE's (red: E θ² grew)",
                 legend=8)
        fig.suptitle("SVAG: SGD (l = 1) → the paper's SDE (l → ∞)")
        return fig
