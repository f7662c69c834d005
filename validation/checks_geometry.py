"""Noise-geometry checks of the validation suite (issue 6; seed 002, Wang & Wu 2023).

* ``noise_alignment``: the loss alignment mu = Tr(Sigma_1 G)/(2L ||G||_F^2) of linear and
  two-layer models stays bounded away from zero across widths / degrees of over-parameterisation
  (linear: Monte Carlo vs the closed form of ``theory.noise_geometry``; two-layer: exact mu from
  the tangent-kernel Gram matrix at random points), and so does the directional alignment
  beta(u_j) along the eigendirections of G (two-layer).
* ``escape_directions``: from an interpolating least-squares minimum, GD escapes along the top
  Hessian eigenvector, SGD with substantial components along flatter directions; the exact
  second-moment theory of the escape is checked against simulation.
* ``cyclical_lr``: with the same mean learning rate, a triangular cyclical LR carries SGD from a
  sharp to a flat minimum, a constant LR does not, and GD with the cyclical LR does not either.

Definitions (and which were reconstructed rather than read in the paper) are documented in
:mod:`theory.noise_geometry`; the experiments in :mod:`validation.protocols.geometry`.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from validation.protocols import geometry as gx
from theory import noise_geometry as ng
from theory.two_layer import TwoLayerRegression
from validation.core import Context, register

__all__ = []


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# =============================================================================================
# 1. alignment across widths
# =============================================================================================
def _linear_alignment_mc(n, d, reps, rng):
    """Ratio of means E Tr(Sigma_1 G) / E 2L||G||_F^2 (isotropic Gaussian inputs, noiseless labels),
    its delta-method standard error, and the same ratio for isotropic noise of equal power
    (Sigma_iso = Tr(Sigma_1)/d I), all from the same draws."""
    num = np.empty(reps)
    den = np.empty(reps)
    iso = np.empty(reps)
    for t in range(reps):
        x = rng.standard_normal((n, d))
        delta = rng.standard_normal(d)
        r = x @ (delta / np.linalg.norm(delta))
        k = x @ x.T
        k2 = k @ k
        two_l = np.mean(r * r)
        num[t] = np.sum(r * r * np.diag(k2)) / n**2 - r @ k2 @ r / n**3
        den[t] = two_l * np.sum(k * k) / n**2
        tr_sigma = np.sum(r * r * np.diag(k)) / n - r @ k @ r / n**2
        iso[t] = tr_sigma * (np.trace(k) / n) / d
    ratio = num.mean() / den.mean()
    se = np.std(num - ratio * den, ddof=1) / math.sqrt(reps) / den.mean()
    return ratio, se, iso.mean() / den.mean()


@register(
    "noise_alignment",
    title="Noise alignment across widths (linear and two-layer models)",
    claim="The SGD noise is aligned with the local geometry: the loss alignment "
          "mu = Tr(Sigma_1 G)/(2L ||G||_F^2) stays bounded away from zero for over-parameterised linear "
          "models and two-layer networks, independently of the degree of over-parameterisation.",
    paper_ref="Wang & Wu 2023 (arXiv 2310.00692), loss alignment mu(theta); linear and two-layer results",
    order=300,
)
def noise_alignment(ctx: Context) -> None:
    plt = _plt()
    # ---- linear model: Monte Carlo vs closed form -------------------------------------------
    n = 20
    ratios = np.array(ctx.size([0.25, 1, 4, 16], [0.25, 0.5, 1, 2, 4, 8, 16, 32]), dtype=float)
    reps = ctx.size(150, 600)
    rng = ctx.rng("linear")
    meas, se, iso = [], [], []
    for q in ratios:
        m_, s_, i_ = _linear_alignment_mc(n, int(q * n), reps, rng)
        meas.append(m_)
        se.append(s_)
        iso.append(i_)
    meas, se, iso = map(np.asarray, (meas, se, iso))
    dims = (ratios * n).astype(int)
    pred = np.asarray(ng.linear_isotropic_expected_alignment(n, dims))
    ctx.compare(
        "linear model: Monte-Carlo mu (ratio of means) vs closed form, N = 20, d/N = "
        + ", ".join(f"{q:g}" for q in ratios),
        measured=meas, predicted=pred, stderr=se, metric="max_z", tolerance=4.0,
        derivation=f"4 standard errors (delta method on the ratio of means of {reps} independent draws "
                   "per width); the closed form is exact (Isserlis), so only sampling error remains",
        wrong_prediction=iso,
    )
    ctx.note("linear (N = 20): " + ", ".join(
        f"d/N={q:g}: mu={m_:.3f}±{s_:.3f} (theory {p_:.3f}, isotropic noise {i_:.3f})"
        for q, m_, s_, p_, i_ in zip(ratios, meas, se, pred, iso)))
    # ---- two-layer network: exact mu across widths --------------------------------------------
    widths = ctx.size([2, 8, 32, 128], [2, 8, 32, 128, 512])
    n_pts = ctx.size(8, 30)
    d_in = 10
    teacher, _ = TwoLayerRegression.teacher(n_samples=n, input_dim=d_in, width=4, seed=ctx.seed_for("teacher"))
    tl_mean, tl_se, tl_iso, tl_min = [], [], [], []
    dir_med, dir_min, dir_iso = [], [], []
    rng = ctx.rng("two_layer")
    for m in widths:
        student = TwoLayerRegression(teacher.inputs, teacher.targets, rng.choice([-1.0, 1.0], size=m))
        mus, isos, betas, betas_iso = [], [], [], []
        for _ in range(n_pts):
            theta = rng.standard_normal(student.dim)
            j, r = student.jacobians(theta), student.residuals(theta)
            mus.append(ng.kernel_average_alignment(j, r))
            lam_j, beta_j = ng.kernel_eigendirection_alignment(j, r)
            betas.append(beta_j)
            # isotropic noise of equal power: Tr(Sigma_1) Tr(G) / (D 2L ||G||_F^2), via the Gram matrix
            k = j @ j.T
            two_l = np.mean(r * r)
            tr_sigma = np.sum(r * r * np.diag(k)) / n - r @ k @ r / n**2
            isos.append(tr_sigma * (np.trace(k) / n) / student.dim / (two_l * np.sum(k * k) / n**2))
            betas_iso.append(tr_sigma / student.dim / (two_l * lam_j))
        betas, betas_iso = np.concatenate(betas), np.concatenate(betas_iso)
        dir_med.append(np.median(betas))
        dir_min.append(betas.min())
        dir_iso.append(np.median(betas_iso))
        mus = np.asarray(mus)
        tl_mean.append(mus.mean())
        tl_se.append(mus.std(ddof=1) / math.sqrt(n_pts))
        tl_min.append(mus.min())
        tl_iso.append(np.mean(isos))
    tl_mean, tl_se, tl_iso = map(np.asarray, (tl_mean, tl_se, tl_iso))
    ctx.compare(
        "two-layer tanh network (N = 20, d = 10, fixed second layer): mean mu per width m = "
        + ", ".join(map(str, widths)) + " within [0.5, 1.5]",
        measured=tl_mean, predicted=np.ones_like(tl_mean), metric="max_abs", tolerance=0.5,
        derivation="criterion, not an error bar: the claim is 'bounded away from zero independently of the "
                   "width', tested as every width's mean mu within 0.5 of the uniform-residual value 1 "
                   f"(Sigma_1 = 2L G); sampling SE of each mean <= {tl_se.max():.3f}, far inside the margin",
        wrong_prediction=tl_iso,
    )
    dir_med, dir_min, dir_iso = map(np.asarray, (dir_med, dir_min, dir_iso))
    ctx.compare(
        "two-layer: median directional alignment beta(u_j) over the curved eigendirections of G, per width, "
        "within [0.5, 1.5]",
        measured=dir_med, predicted=np.ones_like(dir_med), metric="max_abs", tolerance=0.5,
        derivation="criterion as for mu (directional alignment bounded away from zero across widths); "
                   f"{n_pts} points x up to N = {n} directions per width",
        wrong_prediction=dir_iso,
    )
    ctx.note("two-layer directional alignment beta(u_j) over eigendirections: " + ", ".join(
        f"m={m}: median {a:.3f}, min {b:.3f} (isotropic noise median {c:.4f})"
        for m, a, b, c in zip(widths, dir_med, dir_min, dir_iso)))
    ctx.note("two-layer: " + ", ".join(
        f"m={m}: mu={a:.3f}±{b:.3f} (min {c:.3f}; isotropic noise {i:.4f})"
        for m, a, b, c, i in zip(widths, tl_mean, tl_se, tl_min, tl_iso)))
    # ---- figure -------------------------------------------------------------------------------
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    qq = np.geomspace(ratios.min(), ratios.max(), 200)
    ax.plot(qq, ng.linear_isotropic_expected_alignment(n, qq * n), "k-", label="closed form (theory)")
    ax.axhline(1 - 1 / n, color="grey", ls=":", label="1 - 1/N (d → ∞ limit)")
    ax.errorbar(ratios, meas, yerr=2 * se, fmt="o", color="C0", capsize=3, label="Monte Carlo ± 2 SE")
    ax.plot(ratios, iso, "s--", color="C3", label="isotropic noise, same power (wrong)")
    ax.set_xscale("log")
    ax.set_xlabel("over-parameterisation d / N")
    ax.set_ylabel("loss alignment μ")
    ax.set_title("linear least squares, N = 20")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.errorbar(widths, tl_mean, yerr=2 * tl_se, fmt="o", color="C0", capsize=3, label="exact μ, mean ± 2 SE")
    ax.plot(widths, tl_min, "v", color="C0", alpha=0.5, label="min over points")
    ax.plot(widths, tl_iso, "s--", color="C3", label="isotropic noise, same power (wrong)")
    ax.plot(widths, dir_med, "D", color="C1", label="directional β(u_j): median over eigendirections")
    ax.plot(widths, dir_min, "d", color="C1", alpha=0.5, label="directional β(u_j): min")
    ax.axhline(1.0, color="k", lw=1, label="Σ₁ = 2L·G (μ = β = 1)")
    ax.axhspan(0.5, 1.5, color="k", alpha=0.06)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("width m (parameters m·d)")
    ax.set_title("two-layer tanh network, N = 20, d = 10")
    ax.legend(fontsize=8)
    ctx.figure(fig)


# =============================================================================================
# 2. escape directions
# =============================================================================================
@register(
    "escape_directions",
    title="Escape directions: GD along sharp, SGD along flatter directions",
    claim="Started at a sharp minimum that the learning rate makes unstable, GD escapes along the "
          "sharpest Hessian direction while SGD escapes with substantial components along flatter "
          "directions (the noise, aligned with G and proportional to the loss, feeds every curved direction).",
    paper_ref="Wang & Wu 2023 (arXiv 2310.00692), escape from sharp minima",
    order=301,
)
def escape_directions(ctx: Context) -> None:
    plt = _plt()
    m = ctx.size(150, 600)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = gx.run_escape_experiment(n_particles=m, n_steps=300, sgd_lr_factors=(2.1, 1.8),
                                       seed=ctx.seed_for("escape"))
        sm = gx.run_second_moment_check(n_particles=ctx.size(20000, 50000), seed=ctx.seed_for("moments"))
    prob = out["problem"]
    gd, *sgds = out["results"]
    ctx.compare(
        "GD (lr·λ1 = 2.1): mean squared overlap of the escape direction with u1",
        measured=gd.top_overlap.mean(), predicted=1.0, metric="abs", tolerance=0.01,
        derivation="deterministic up to the perturbation: the null-space share is <= (perturbation/radius)^2 = "
                   "1e-6 and the other curved directions contract (|1 - lr λj| < 1.1, the top growth factor) "
                   f"over the ~{np.median(gd.escape_step[gd.escaped]):.0f} steps to escape, so 1 - overlap << 0.01",
        wrong_prediction=sgds[0].theory_top,
    )
    for r in sgds:
        se = r.top_overlap.std(ddof=1) / math.sqrt(r.top_overlap.size)
        ctx.compare(
            f"{r.label}: mean squared overlap with u1 in [0, 0.75] (GD: 1)",
            measured=r.top_overlap.mean(), predicted=0.375, metric="abs", tolerance=0.375,
            derivation="criterion, not an error bar: 'substantial components along flatter directions' is "
                       "tested as at least a quarter of the escape displacement's squared norm off u1 (GD puts "
                       f"all of it on u1); sampling SE {se:.3f} is far inside the margin",
            wrong_prediction=1.0,
        )
    ctx.compare(
        "exact second-moment theory of SGD: E||w_t||², E(u1·w_t)² after 2 steps vs Op^t I",
        measured=sm["measured"], predicted=sm["predicted"], stderr=sm["stderr"], metric="max_z", tolerance=4.0,
        derivation="4 standard errors of the ensemble means; the operator is exact for i.i.d. minibatches",
        wrong_prediction=sm["predicted_noise_free"],
    )
    for r in out["results"]:
        s = r.summary()
        ctx.note(
            f"{r.label}: escaped {s['escaped_fraction']:.2f}, median escape step {s['median_escape_step']:.0f}; "
            f"overlap u1 {s['top_overlap'][0]:.3f}±{s['top_overlap'][1]:.3f}, flat-half share "
            f"{s['flat_share'][0]:.3f}±{s['flat_share'][1]:.3f}, Rayleigh/λ1 {s['rayleigh'][0]:.3f}±{s['rayleigh'][1]:.3f}; "
            f"second-moment mode theory: u1 {s['theory_top']:.3f}, flat half {s['theory_flat']:.3f}, "
            f"Rayleigh {s['theory_rayleigh']:.3f}, growth {s['theory_growth']:.2f}/step; "
            f"{int((~r.escaped).sum())} never escaped, {r.n_diverged} diverged before escaping")
    ctx.note("per-particle means of the normalised escape direction and the second-moment mode (a ratio of "
             "means, weighted towards the largest particles) are different statistics: the theory line is a "
             "reference, compared quantitatively only through the exact second moments after 2 steps")
    # ---- figure: mean squared projection on each Hessian eigendirection ------------------------
    lam = prob["eigvals"]
    k = prob["n_curved"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for r, c in zip(out["results"], ("C3", "C0", "C2")):
        ax.errorbar(lam[:k], r.proj2_mean[:k], yerr=2 * r.proj2_se[:k], fmt="o", color=c, ms=4, capsize=2,
                    label=f"{r.label}: simulation (mean ± 2 SE)")
        if r.batch_size < prob["n_samples"]:
            ax.plot(lam[:k], r.theory_fractions[:k], "-", color=c, lw=1, label=f"{r.label}: second-moment mode (theory)")
    ax.axvline(np.median(lam[:k]), color="grey", ls=":", lw=1, label="flat half below this")
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_ylim(-2e-4, 1.5)
    ax.set_xlabel("Hessian eigenvalue λj")
    ax.set_ylabel("(uj · ŵ)² at escape")
    ax.set_title(f"least squares N={prob['n_samples']}, d={prob['dim']}: escape direction vs eigendirections")
    ax.legend(fontsize=7)
    ctx.figure(fig)


# =============================================================================================
# 3. cyclical learning rates
# =============================================================================================
@register(
    "cyclical_lr",
    title="Cyclical learning rates reach flatter minima",
    claim="A cyclical learning rate exploits SGD's escape along flat directions: from a sharp minimum, "
          "SGD with a cyclical LR ends in the flat minimum, SGD with a constant LR of the same mean "
          "stays in the sharp one, and GD with the same cyclical LR stays too.",
    paper_ref="Wang & Wu 2023 (arXiv 2310.00692), cyclical learning rates",
    order=302,
)
def cyclical_lr(ctx: Context) -> None:
    plt = _plt()
    m = ctx.size(100, 400)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # divergences are counted and reported
        out = gx.run_cyclical_experiment(n_particles=m, include_peak=True,
                                         seed=ctx.seed_for("cyclical"))
    prob = out["problem"]
    lam_a, lam_b = prob["lambda_max_sharp"], prob["lambda_max_flat"]
    half_gap = 0.5 * (lam_a - lam_b)
    res = {r.label: r for r in out["results"]}
    deriv = ("criterion: the final mean lambda_max must lie closer to the named minimum's lambda_max than to "
             f"the other's (tolerance = half the gap, {half_gap:.2f}), i.e. a majority of particles end there; "
             "diverged particles are excluded and reported")
    cyc, const, gd_cyc = res["SGD cyclical"], res["SGD constant"], res["GD cyclical"]
    ctx.compare("SGD, cyclical LR: final mean λmax vs the flat minimum's", measured=cyc.sharpness.mean(),
                predicted=lam_b, metric="abs", tolerance=half_gap, derivation=deriv, wrong_prediction=lam_a)
    ctx.compare("SGD, constant LR (same mean): final mean λmax vs the sharp minimum's",
                measured=const.sharpness.mean(), predicted=lam_a, metric="abs", tolerance=half_gap,
                derivation=deriv, wrong_prediction=lam_b)
    ctx.compare("GD, same cyclical LR: final mean λmax vs the sharp minimum's", measured=gd_cyc.sharpness.mean(),
                predicted=lam_a, metric="abs", tolerance=half_gap, derivation=deriv, wrong_prediction=lam_b)
    ctx.note(f"minima: sharp A λmax={lam_a:.3f} (2/λ={2 / lam_a:.3f}), flat B λmax={lam_b:.3f} (2/λ={2 / lam_b:.3f}); "
             f"LR mean {prob['lr_mean']:.4g}, cyclical {prob['lr_low']:.4g}–{prob['lr_high']:.4g}, period {prob['period']}, "
             f"{prob['n_steps']} steps")
    for r in out["results"]:
        s = r.summary()
        ctx.note(f"{s['label']} (max LR {s['lr_max']:.3f}): flat-basin fraction {s['flat_fraction']:.3f}±"
                 f"{s['flat_fraction_se']:.3f}, final λmax {s['sharpness'][0]:.3f}±{s['sharpness'][1]:.3f}, "
                 f"Tr H {s['trace'][0]:.3f}±{s['trace'][1]:.3f}, diverged {s['n_diverged']}/{s['n_ok'] + s['n_diverged']}")
    # ---- figure -------------------------------------------------------------------------------
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), gridspec_kw=dict(width_ratios=[1.2, 1.2, 1]))
    labels = [r.label for r in out["results"]]
    xs = np.arange(len(labels))
    sh = np.array([r.sharpness.mean() for r in out["results"]])
    sh_se = np.array([r.sharpness.std(ddof=1) / math.sqrt(max(r.sharpness.size, 1)) for r in out["results"]])
    ax = axes[0]
    ax.errorbar(xs, sh, yerr=2 * sh_se, fmt="o", capsize=4, color="C0", label="simulation, mean ± 2 SE")
    ax.axhline(lam_a, color="C3", label=f"sharp minimum λmax = {lam_a:.2f}")
    ax.axhline(lam_b, color="C2", label=f"flat minimum λmax = {lam_b:.2f}")
    ax.set_xticks(xs, labels, rotation=25, fontsize=8)
    ax.set_ylabel("final λmax(H)")
    ax.legend(fontsize=8)
    ax = axes[1]
    ff = np.array([r.summary()["flat_fraction"] for r in out["results"]])
    ff_se = np.array([r.summary()["flat_fraction_se"] for r in out["results"]])
    ax.errorbar(xs, ff, yerr=2 * ff_se, fmt="s", capsize=4, color="C1", label="simulation ± 2 SE")
    ax.set_xticks(xs, labels, rotation=25, fontsize=8)
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel("fraction ending in the flat basin")
    ax.legend(fontsize=8)
    ax = axes[2]
    t = np.arange(2 * prob["period"])
    ax.plot(t, gx.triangular_schedule(t.size, lr_low=prob["lr_low"], lr_high=prob["lr_high"], period=prob["period"]),
            label="cyclical")
    ax.axhline(prob["lr_mean"], color="k", ls="--", label="constant (same mean)")
    ax.axhline(2 / lam_a, color="C3", ls=":", label="2/λmax(sharp)")
    ax.set_xlabel("step (two cycles)")
    ax.set_ylabel("learning rate")
    ax.legend(fontsize=8)
    ctx.figure(fig)
