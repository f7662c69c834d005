"""Noise-geometry checks (Wang & Wu 2023): alignment, escape directions, cyclical learning rates.

* ``noise_alignment``: the loss alignment μ = Tr(Σ₁G)/(2L‖G‖_F²) of linear models (Monte Carlo vs the
  closed form of ``theory.noise_geometry``) and of two-layer networks, where it is the Rayleigh
  quotient of the residual direction under Q = (N·diag(K²) − K²)/‖K‖_F² (K the tangent-kernel Gram
  matrix): bounded by the extreme eigenvalues of Q whatever the residuals, with a lower bound that
  converges as the width grows.
* ``escape_directions``: from an interpolating least-squares minimum, GD escapes along the top Hessian
  eigenvector; SGD's escape mode (the Perron vector of its exact second-moment map) carries a
  predicted share of the second moment along it, measured at fixed time.
* ``cyclical_lr``: with the same mean learning rate, a triangular cyclical LR carries SGD from a sharp
  to a flat minimum, a constant LR does not, nor does GD with the cyclical LR; diverged particles
  are an outcome beside the two basins.

Definitions (and which were reconstructed rather than read in the paper) are in
:mod:`theory.noise_geometry`; the experiments in :mod:`validation.protocols.geometry`.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from theory import noise_geometry as ng
from theory.two_layer import TwoLayerRegression
from validation.core import Check
from validation.plotting import decorate
from validation.protocols import geometry as gx
from validation.stats import binomial_se, bonferroni_z, ratio_of_means

__all__ = ["NoiseAlignment", "EscapeDirections", "CyclicalLR", "rayleigh_bounds"]


def _linear_alignment_mc(n, d, reps, rng):
    """Ratio of means E Tr(Σ₁G) / E 2L‖G‖_F² (isotropic Gaussian inputs, noiseless labels), its
    delta-method SE, and the same ratio for isotropic noise of equal power (Σ_iso = Tr(Σ₁)/d·I)."""
    num, den, iso = np.empty(reps), np.empty(reps), np.empty(reps)
    for t in range(reps):
        x = rng.standard_normal((n, d))
        delta = rng.standard_normal(d)
        r = x @ (delta / np.linalg.norm(delta))
        k = x @ x.T
        k2 = k @ k
        two_l = np.mean(r * r)
        num[t] = np.sum(r * r * np.diag(k2)) / n ** 2 - r @ k2 @ r / n ** 3
        den[t] = two_l * np.sum(k * k) / n ** 2
        tr_sigma = np.sum(r * r * np.diag(k)) / n - r @ k @ r / n ** 2
        iso[t] = tr_sigma * (np.trace(k) / n) / d
    ratio, se = ratio_of_means(num, den)
    return ratio, se, iso.mean() / den.mean()


def rayleigh_bounds(jacobians):
    """Extreme eigenvalues of Q = (N·diag(K²) − K²)/‖K‖_F², K = JJᵀ: the exact range of μ over all residuals.

    From the Gram form of μ (:func:`theory.noise_geometry.kernel_average_alignment`),
    μ = [Σᵢ rᵢ²(K²)ᵢᵢ/N² − rᵀK²r/N³] / (|r|²/N · ‖K‖_F²/N²) = rᵀQr/rᵀr: a Rayleigh quotient, so
    λ_min(Q) ≤ μ ≤ λ_max(Q) for every residual vector, with equality at the eigenvectors (sharper than
    :func:`theory.noise_geometry.kernel_alignment_bounds`, which bounds the two terms separately); the
    mean over residual directions uniform on the sphere is tr(Q)/N = 1 − 1/N exactly."""
    j = np.asarray(jacobians, dtype=float)
    n = j.shape[0]
    k = j @ j.T
    k2 = k @ k
    q = (n * np.diag(np.diag(k2)) - k2) / float(np.sum(k * k))
    ev = np.linalg.eigvalsh(q)
    return float(ev[0]), float(ev[-1])


class NoiseAlignment(Check):
    name = "noise_alignment"
    title = "Noise alignment across widths (linear and two-layer models)"
    claim = ("The SGD noise is aligned with the local geometry: the loss alignment μ = Tr(Σ₁G)/(2L‖G‖_F²) stays "
             "bounded away from zero for over-parameterised linear models and two-layer networks, independently of "
             "the degree of over-parameterisation: for any square-loss model μ lies between the extreme eigenvalues "
             "of Q = (N·diag(K²) − K²)/‖K‖_F², whose lower one converges with the width (tangent-kernel limit).")
    paper_ref = "Wang & Wu 2023 (arXiv 2310.00692), loss alignment μ(θ); linear and two-layer results"
    sabotage = "isotropic noise of the same power (Σ = Tr Σ₁/D·I) in place of the aligned noise, and a vanishing bound"
    order = 300

    def compute(self, ctx):
        n = 20
        ctx.phase("linear model: Monte Carlo across d/N")
        ratios = np.array(ctx.size([0.25, 1, 4, 16], [0.25, 0.5, 1, 2, 4, 8, 16, 32]), dtype=float)
        reps = ctx.size(150, 600)
        rng = ctx.rng("linear")
        lin = np.array([_linear_alignment_mc(n, int(q * n), reps, rng) for q in ratios])
        d = dict(n=n, ratios=ratios, reps=reps, lin_mu=lin[:, 0], lin_se=lin[:, 1], lin_iso=lin[:, 2],
                 lin_pred=np.asarray(ng.linear_isotropic_expected_alignment(n, (ratios * n).astype(int))))
        widths = np.array(ctx.size([2, 8, 32, 128], [2, 8, 32, 128, 512]))
        n_pts = ctx.size(8, 30)
        d_in = 10
        teacher, _ = TwoLayerRegression.teacher(n_samples=n, input_dim=d_in, width=4, seed=ctx.seed_for("teacher"))
        rng = ctx.rng("two_layer")
        mu, mu_iso, lo, hi, beta_med, beta_min, beta_iso = (np.empty((widths.size, n_pts)) for _ in range(7))
        for w, m in enumerate(widths):
            ctx.phase(f"two-layer network, width {m}")
            student = TwoLayerRegression(teacher.inputs, teacher.targets, rng.choice([-1.0, 1.0], size=m))
            for p in range(n_pts):
                theta = rng.standard_normal(student.dim)
                j, r = student.jacobians(theta), student.residuals(theta)
                mu[w, p] = ng.kernel_average_alignment(j, r)
                lo[w, p], hi[w, p] = rayleigh_bounds(j)
                lam_j, beta_j = ng.kernel_eigendirection_alignment(j, r)
                beta_med[w, p], beta_min[w, p] = np.median(beta_j), beta_j.min()
                # isotropic noise of equal power: Tr(Σ₁) Tr(G) / (D 2L ‖G‖_F²), via the Gram matrix
                k = j @ j.T
                two_l = np.mean(r * r)
                tr_sigma = np.sum(r * r * np.diag(k)) / n - r @ k @ r / n ** 2
                mu_iso[w, p] = tr_sigma * (np.trace(k) / n) / student.dim / (two_l * np.sum(k * k) / n ** 2)
                beta_iso[w, p] = np.median(tr_sigma / student.dim / (two_l * lam_j))
        d.update(widths=widths, n_pts=n_pts, mu=mu, mu_iso=mu_iso, lo=lo, hi=hi, beta_med=beta_med,
                 beta_min=beta_min, beta_iso=beta_iso)
        return d

    def compare(self, ctx, d):
        ratios, n = d["ratios"], d["n"]
        ctx.compare(
            f"linear model: Monte-Carlo μ (ratio of means) vs closed form, N = {n}, d/N = "
            + ", ".join(f"{q:g}" for q in ratios),
            measured=d["lin_mu"], predicted=d["lin_pred"], stderr=d["lin_se"], metric="max_z", tolerance=4.0,
            wrong_prediction=d["lin_iso"], wrong_name="isotropic noise of the same power",
            derivation=f"4 standard errors (delta method on the ratio of means of {d['reps']} independent draws per "
            "width); the closed form is exact (Isserlis), so only sampling error remains")
        mu, lo, hi = d["mu"], d["lo"], d["hi"]
        # rounding: K² and the eigenvalues of Q carry relative errors ~ N·ε·cond ≲ 1e-12 here
        tol_round = 1e-9
        ctx.compare(
            "two-layer tanh network: μ at every sampled point within its exact bounds [λ_min(Q), λ_max(Q)], "
            "widths " + ", ".join(map(str, d["widths"])),
            measured=mu.ravel(), predicted=np.clip(mu, lo, hi).ravel(), wrong_prediction=d["mu_iso"].ravel(),
            wrong_name="isotropic noise of the same power", metric="max_abs", tolerance=tol_round,
            derivation="μ = rᵀQr/rᵀr with Q = (N·diag(K²) − K²)/‖K‖_F² (Gram form of μ), so λ_min(Q) ≤ μ ≤ λ_max(Q) "
            "for any residuals: a theorem, tested to rounding (1e-9; K² and eigvalsh err ≲ 1e-12 relative) on "
            f"{mu.size} random points")
        lo_mean = lo.mean(axis=1)
        lo_se = lo.std(axis=1, ddof=1) / math.sqrt(d["n_pts"])
        z = bonferroni_z(2)
        ctx.compare(
            f"two-layer: lower bound λ_min(Q) of μ, widest width {d['widths'][-1]} vs {d['widths'][-2]} "
            "(width-independent in the tangent-kernel limit)",
            measured=lo_mean[-1], predicted=lo_mean[-2], stderr=math.hypot(lo_se[-1], lo_se[-2]), metric="max_z",
            tolerance=z, wrong_prediction=0.0, wrong_name="no width-independent bound (μ → 0 like isotropic noise)",
            derivation=f"mean over {d['n_pts']} random points per width, SEs in quadrature, z = {z:.2f} (Bonferroni "
            "α = 1e-3 over 2 tests); K/m converges to the infinite-width tangent kernel, so Q and its spectrum "
            "converge: the mean bounds at the two widest widths agree within sampling error")
        ctx.note("linear (N = 20): " + ", ".join(
            f"d/N={q:g}: μ={m_:.3f}±{s_:.3f} (theory {p_:.3f}, isotropic noise {i_:.3f})"
            for q, m_, s_, p_, i_ in zip(ratios, d["lin_mu"], d["lin_se"], d["lin_pred"], d["lin_iso"])))
        ctx.note("two-layer: " + ", ".join(
            f"m={m}: μ={a.mean():.3f}±{a.std(ddof=1) / math.sqrt(a.size):.3f} (min {a.min():.3f}; bounds "
            f"[{l_.mean():.3f}, {h_.mean():.3f}] on average, lowest {l_.min():.3f}; isotropic noise {i.mean():.4f})"
            for m, a, l_, h_, i in zip(d["widths"], mu, lo, hi, d["mu_iso"]))
            + f". Residual directions uniform on the sphere would give E μ = 1 − 1/N = {1 - 1 / n:.3f} exactly; the "
            "residuals at random θ are not isotropic (correlated with the kernel), so μ itself is graded only "
            "through its bounds.")
        ctx.note("two-layer directional alignment β(u_j) over eigendirections: " + ", ".join(
            f"m={m}: median {a.mean():.3f}, min {b.min():.3f} (isotropic noise median {c.mean():.4f})"
            for m, a, b, c in zip(d["widths"], d["beta_med"], d["beta_min"], d["beta_iso"])))

    def draw(self, d, plt):
        ratios, n, widths = d["ratios"], d["n"], d["widths"]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        ax = axes[0]
        qq = np.geomspace(ratios.min(), ratios.max(), 200)
        ax.plot(qq, ng.linear_isotropic_expected_alignment(n, qq * n), "k-", label="closed form (theory)")
        ax.axhline(1 - 1 / n, color="grey", ls=":", label="1 − 1/N (d → ∞ limit)")
        ax.errorbar(ratios, d["lin_mu"], yerr=2 * d["lin_se"], fmt="o", color="C0", capsize=3,
                    label="Monte Carlo ± 2 SE")
        ax.plot(ratios, d["lin_iso"], "s--", color="C3", label="isotropic noise, same power (wrong)")
        decorate(ax, xscale="log",
                 xlabel="over-parameterisation d / N",
                 ylabel="loss alignment μ",
                 title=f"linear least squares, N = {n}",
                 legend=8)
        ax = axes[1]
        mu = d["mu"]
        se = mu.std(axis=1, ddof=1) / math.sqrt(d["n_pts"])
        ax.errorbar(widths, mu.mean(axis=1), yerr=2 * se, fmt="o", color="C0", capsize=3, label="exact μ, mean ± 2 SE")
        ax.plot(widths, mu.min(axis=1), "v", color="C0", alpha=0.5, label="min over points")
        ax.fill_between(widths, d["lo"].mean(axis=1), d["hi"].mean(axis=1), color="C2", alpha=0.2,
                        label="bounds [λ_min(Q), λ_max(Q)], mean")
        ax.plot(widths, d["lo"].min(axis=1), "^", color="C2", label="lowest λ_min(Q)")
        ax.plot(widths, d["mu_iso"].mean(axis=1), "s--", color="C3", label="isotropic noise, same power (wrong)")
        ax.plot(widths, d["beta_med"].mean(axis=1), "D", color="C1", label="directional β(u_j): median")
        ax.axhline(1.0, color="k", lw=1, label="Σ₁ = 2L·G (μ = β = 1)")
        decorate(ax, xscale="log",
                 yscale="log",
                 xlabel="width m (parameters m·d)",
                 title=f"two-layer tanh network, N = {n}, d = 10",
                 legend=7)
        return fig


class EscapeDirections(Check):
    name = "escape_directions"
    title = "Escape directions: GD along sharp, SGD along flatter directions"
    claim = ("Started at a sharp minimum that the learning rate makes unstable, GD escapes along the sharpest Hessian "
             "direction, while SGD escapes in the mode of its exact second-moment map, which puts a predicted share "
             "of the displacement's second moment on the sharpest direction and the rest on flatter ones (the noise, "
             "aligned with G and proportional to the loss, feeds every curved direction).")
    paper_ref = "Wang & Wu 2023 (arXiv 2310.00692), escape from sharp minima"
    sabotage = "GD's escape direction (all of the second moment on u1) for SGD, and the noise-free second moments"
    order = 301

    def compute(self, ctx):
        m = ctx.size(150, 600)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ctx.phase("escape experiment: GD and SGD until escape")
            out = gx.run_escape_experiment(n_particles=m, n_steps=300, sgd_lr_factors=(2.1, 1.8),
                                           seed=ctx.seed_for("escape"))
            ctx.phase("second moments after 2 steps")
            sm = gx.run_second_moment_check(n_particles=ctx.size(20000, 50000), seed=ctx.seed_for("moments"))
            ctx.phase("escape mode: second-moment share at fixed time")
            mode = gx.run_escape_mode_check(sgd_lr_factors=(2.1, 1.8), n_particles=ctx.size(20000, 50000),
                                            seed=ctx.seed_for("mode"))
        prob = out["problem"]
        gd, *sgds = out["results"]
        k = prob["n_curved"]
        d = dict(m=m, eigvals=prob["eigvals"], n_curved=k, n_samples=prob["n_samples"], dim=prob["dim"],
                 gd_overlap=gd.top_overlap, gd_escape_step=gd.escape_step[gd.escaped],
                 sm_measured=sm["measured"], sm_stderr=sm["stderr"], sm_predicted=sm["predicted"],
                 sm_noise_free=sm["predicted_noise_free"])
        d.update({f"mode_{key}": v for key, v in mode.items()})
        for i, r in enumerate(out["results"]):
            s = r.summary()
            d.update({f"run{i}_label": r.label, f"run{i}_batch_size": r.batch_size, f"run{i}_proj2": r.proj2_mean,
                      f"run{i}_proj2_se": r.proj2_se, f"run{i}_theory": r.theory_fractions,
                      f"run{i}_summary": np.array([s["escaped_fraction"], s["median_escape_step"], *s["top_overlap"],
                                                   *s["flat_share"], *s["rayleigh"], s["theory_top"],
                                                   s["theory_flat"], s["theory_rayleigh"], s["theory_growth"],
                                                   float((~r.escaped).sum()), float(r.n_diverged)])})
        d["n_runs"] = len(out["results"])
        return d

    def compare(self, ctx, d):
        ctx.compare(
            "GD (lr·λ1 = 2.1): mean squared overlap of the escape direction with u1", measured=d["gd_overlap"].mean(),
            predicted=1.0, metric="abs", tolerance=0.01, wrong_prediction=float(d["mode_mode"][0]),
            wrong_name="SGD's escape-mode share",
            derivation="deterministic up to the perturbation: the null-space share is ≤ (perturbation/radius)² = 1e-6 "
            "and the other curved directions contract (|1 − lr λj| < 1.1, the top growth factor) over the "
            f"~{np.median(d['gd_escape_step']):.0f} steps to escape, so 1 − overlap ≪ 0.01")
        z = bonferroni_z(d["mode_lr_factors"].size + 1)
        transient = np.abs(d["mode_exact"] - d["mode_mode"])
        tol = z * d["mode_stderr"] + transient
        ctx.compare(
            f"SGD (lr·λ1 = {', '.join(f'{f:g}' for f in d['mode_lr_factors'])}, S = 4): second-moment share on u1 "
            f"after {d['mode_n_steps']} steps vs the escape mode's (Perron) share",
            measured=d["mode_measured"], predicted=d["mode_mode"], stderr=tol, wrong_prediction=np.ones_like(tol),
            wrong_name="GD's direction (all on u1)", metric="max_z", tolerance=1.0,
            derivation=f"distance in units of each lr's own tolerance z·SE + the transient abs(share of Op^t M0 − mode "
            f"share) = {np.array2string(transient, precision=4)} (exact, from the operator), z = {z:.2f}; ratio of "
            f"means E(u1·w)²/E‖w‖² over M = {d['mode_n_particles']} particles from an isotropic start, delta-method "
            f"SE {np.array2string(d['mode_stderr'], precision=4)} (measured at t = {d['mode_n_steps']}: later the "
            "heavy tails of ‖w_t‖² make the sample SE unreliable)")
        ctx.compare(
            "exact second-moment theory of SGD: E||w_t||², E(u1·w_t)² after 2 steps vs Op^t I",
            measured=d["sm_measured"], predicted=d["sm_predicted"], stderr=d["sm_stderr"], metric="max_z",
            tolerance=4.0, wrong_prediction=d["sm_noise_free"], wrong_name="noise-free (GD) second moments",
            derivation="4 standard errors of the ensemble means; the operator is exact for i.i.d. minibatches")
        for i in range(int(d["n_runs"])):
            s = d[f"run{i}_summary"]
            ctx.note(
                f"{d[f'run{i}_label']}: escaped {s[0]:.2f}, median escape step {s[1]:.0f}; per-particle overlap u1 at "
                f"escape {s[2]:.3f}±{s[3]:.3f}, flat-half share {s[4]:.3f}±{s[5]:.3f}, Rayleigh/λ1 {s[6]:.3f}±{s[7]:.3f}; "
                f"second-moment mode: u1 {s[8]:.3f}, flat half {s[9]:.3f}, Rayleigh {s[10]:.3f}, growth {s[11]:.2f}/step; "
                f"{int(s[12])} never escaped, {int(s[13])} diverged before escaping")
        ctx.note("The per-particle mean of the normalised escape direction (a mean of ratios) weighs every particle "
                 "alike, the second-moment mode (a ratio of means) weighs them by ‖w‖²: different statistics. The mode "
                 "is graded against the ratio of means it predicts; the per-particle overlaps are reported.")

    def draw(self, d, plt):
        lam = d["eigvals"]
        k = int(d["n_curved"])
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
        ax = axes[0]
        for i, c in zip(range(int(d["n_runs"])), ("C3", "C0", "C2")):
            label = d[f"run{i}_label"]
            ax.errorbar(lam[:k], d[f"run{i}_proj2"][:k], yerr=2 * d[f"run{i}_proj2_se"][:k], fmt="o", color=c, ms=4,
                        capsize=2, label=f"{label}: at escape (mean ± 2 SE)")
            if d[f"run{i}_batch_size"] < d["n_samples"]:
                ax.plot(lam[:k], d[f"run{i}_theory"][:k], "-", color=c, lw=1, label=f"{label}: second-moment mode")
        ax.axvline(np.median(lam[:k]), color="grey", ls=":", lw=1, label="flat half below this")
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_ylim(-2e-4, 1.5)
        decorate(ax, xlabel="Hessian eigenvalue λj",
                 ylabel="(uj · ŵ)² at escape",
                 title=f"least squares N={d['n_samples']}, d={d['dim']}: escape direction vs eigendirections",
                 legend=7)
        ax = axes[1]
        f = d["mode_lr_factors"]
        z = bonferroni_z(f.size + 1)
        ax.errorbar(f, d["mode_measured"], yerr=z * d["mode_stderr"], fmt="o", color="C0", capsize=4,
                    label=f"SGD, E(u1·w)²/E‖w‖² at t = {d['mode_n_steps']} (± z·SE)")
        ax.plot(f, d["mode_exact"], "s", mfc="none", color="k", label="exact Op^t M0 share")
        ax.plot(f, d["mode_mode"], "_", ms=20, mew=2, color="C2", label="escape mode (Perron) share")
        ax.axhline(1.0, color="C3", ls=":", label="GD: all on u1 (wrong for SGD)")
        ax.set_xlim(f.min() - 0.2, f.max() + 0.2)
        ax.set_ylim(0, 1.05)
        decorate(ax, xlabel="lr·λ1",
                 ylabel="share of the second moment on u1",
                 title="SGD's escape mode: measured vs the exact second-moment theory",
                 legend=7)
        return fig


class CyclicalLR(Check):
    name = "cyclical_lr"
    title = "Cyclical learning rates reach flatter minima"
    claim = ("A cyclical learning rate exploits SGD's escape along flat directions: from a sharp minimum, SGD with a "
             "cyclical LR ends in the flat minimum, SGD with a constant LR of the same mean stays in the sharp one, and "
             "GD with the same cyclical LR stays too. Divergence is an outcome, counted beside the two basins.")
    paper_ref = "Wang & Wu 2023 (arXiv 2310.00692), cyclical learning rates"
    sabotage = "each arm graded against the other basin (cyclical SGD stays sharp, constant SGD and GD reach the flat one)"
    order = 302

    def compute(self, ctx):
        m = ctx.size(100, 400)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # divergences are counted as an outcome
            ctx.phase("SGD and GD, constant and cyclical learning rates")
            out = gx.run_cyclical_experiment(n_particles=m, include_peak=True, seed=ctx.seed_for("cyclical"))
        prob = out["problem"]
        d = dict(m=m, lam_sharp=prob["lambda_max_sharp"], lam_flat=prob["lambda_max_flat"], lr_mean=prob["lr_mean"],
                 lr_low=prob["lr_low"], lr_high=prob["lr_high"], period=prob["period"], n_steps=prob["n_steps"],
                 labels=np.array([r.label for r in out["results"]]),
                 lr_max=np.array([r.lr_max for r in out["results"]]))
        # outcome counts over ALL particles: sharp basin, flat basin, diverged
        d["outcomes"] = np.array([[np.sum(r.basin == 0), np.sum(r.basin == 1), r.n_diverged] for r in out["results"]])
        d["sharpness_mean"] = np.array([r.sharpness.mean() if r.sharpness.size else np.nan for r in out["results"]])
        d["trace_mean"] = np.array([r.trace.mean() if r.trace.size else np.nan for r in out["results"]])
        return d

    def compare(self, ctx, d):
        labels = list(d["labels"])
        counts = d["outcomes"]
        total = counts.sum(axis=1)
        frac = counts / total[:, None]
        zc = bonferroni_z(3)
        for arm, basin, other in (("SGD cyclical", 1, 0), ("SGD constant", 0, 1), ("GD cyclical", 0, 1)):
            i = labels.index(arm)
            name = ("flat", "sharp")[basin == 0]
            se = float(binomial_se(frac[i, basin], total[i]))
            ctx.compare(
                f"{arm}: fraction of ALL particles ending in the {name} minimum (diverged count against it)",
                measured=frac[i, basin], predicted=1.0, metric="abs", tolerance=0.5,
                wrong_prediction=0.0, wrong_name=f"ends in the {('flat', 'sharp')[other == 0]} minimum",
                derivation=f"criterion: a majority of all {total[i]} particles ends in the named basin (tolerance ½ "
                f"from 'all of them'); outcomes sharp / flat / diverged = {counts[i].tolist()}; binomial SE "
                f"{se:.3f}, so the majority is resolved when the fraction is ≥ ½ + {zc:.1f}·SE "
                f"(= {0.5 + zc * se:.3f})")
        ctx.note(f"minima: sharp A λmax={d['lam_sharp']:.3f} (2/λ={2 / d['lam_sharp']:.3f}), flat B λmax="
                 f"{d['lam_flat']:.3f} (2/λ={2 / d['lam_flat']:.3f}); LR mean {d['lr_mean']:.4g}, cyclical "
                 f"{d['lr_low']:.4g}–{d['lr_high']:.4g}, period {d['period']}, {d['n_steps']} steps")
        for lab, c, f, lm, sh, tr in zip(labels, counts, frac, d["lr_max"], d["sharpness_mean"], d["trace_mean"]):
            ctx.note(f"{lab} (max LR {lm:.3f}): sharp {c[0]}, flat {c[1]}, diverged {c[2]} of {c.sum()} "
                     f"(fractions {f[0]:.3f} / {f[1]:.3f} / {f[2]:.3f}); among the non-diverged: final λmax {sh:.3f}, "
                     f"Tr H {tr:.3f}")

    def draw(self, d, plt):
        labels = list(d["labels"])
        counts = d["outcomes"]
        frac = counts / counts.sum(axis=1, keepdims=True)
        xs = np.arange(len(labels))
        fig, axes = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw=dict(width_ratios=[1.5, 1]))
        ax = axes[0]
        bottom = np.zeros(len(labels))
        for k, (name, col) in enumerate((("sharp minimum", "C3"), ("flat minimum", "C2"), ("diverged", "0.5"))):
            ax.bar(xs, frac[:, k], bottom=bottom, color=col, label=name)
            bottom += frac[:, k]
        ax.axhline(0.5, color="k", ls=":", lw=1, label="majority")
        ax.set_xticks(xs, labels, rotation=25, fontsize=8)
        decorate(ax, ylabel="fraction of all particles", title="outcomes: sharp, flat, diverged", legend=8)
        ax = axes[1]
        t = np.arange(2 * int(d["period"]))
        ax.plot(t, gx.triangular_schedule(t.size, lr_low=d["lr_low"], lr_high=d["lr_high"], period=int(d["period"])),
                label="cyclical")
        ax.axhline(d["lr_mean"], color="k", ls="--", label="constant (same mean)")
        ax.axhline(2 / d["lam_sharp"], color="C3", ls=":", label="2/λmax(sharp)")
        decorate(ax, xlabel="step (two cycles)", ylabel="learning rate", legend=8)
        return fig
