"""Statistics shared by the validation checks and the network statements (one copy of each).

Checks: Bonferroni z levels, binomial / variance / covariance standard errors, the sampling
tolerance of a histogram's L1 distance, the censored-exponential mean of first-passage times and
the crossing of a logistic fit. Network statements: rank correlations with confidence intervals,
the one-way F test of "these groups share one mean" against a pooled error variance, a paired
bootstrap of two correlations, Bonferroni levels. SciPy does the distributions.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["spearman_ci", "f_test_groups", "bootstrap_rho_difference", "bonferroni_alpha", "pooled_variance",
           "bonferroni_z", "binomial_se", "variance_with_se", "covariance_with_se", "l1_sampling_tolerance",
           "censored_exponential_mean", "logit_crossing", "ratio_of_means", "loglog_slope", "fmt"]

#: Fieller, Hartley & Pearson (1957): the Fisher z of a Spearman coefficient has variance ≈ 1.06/(n − 3).
SPEARMAN_Z_VAR = 1.06


def spearman_ci(x, y, level: float = 0.95) -> dict:
    """Spearman ρ of the finite pairs of (x, y), its two-sided p-value and a ``level`` confidence
    interval tanh(atanh ρ ± z·√(1.06/(n − 3))) (Fieller, Hartley & Pearson 1957; n ≥ 4).

    Returns ``dict(rho, p, n, lo, hi)``; NaNs when fewer than 3 finite pairs or a constant input."""
    from scipy.stats import norm, spearmanr
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    out = dict(rho=math.nan, p=math.nan, n=n, lo=math.nan, hi=math.nan)
    if n < 3 or np.all(x[ok] == x[ok][0]) or np.all(y[ok] == y[ok][0]):
        return out
    res = spearmanr(x[ok], y[ok])
    rho = float(res.statistic if hasattr(res, "statistic") else res[0])
    out.update(rho=rho, p=float(res.pvalue))
    if n >= 4:
        z = math.atanh(min(max(rho, -0.999999), 0.999999))
        half = float(norm.ppf(0.5 + level / 2)) * math.sqrt(SPEARMAN_Z_VAR / (n - 3))
        out.update(lo=math.tanh(z - half), hi=math.tanh(z + half))
    return out


def pooled_variance(groups: Sequence[Sequence[float]]) -> tuple[float, int]:
    """Pooled within-group variance Σ(nᵢ − 1)sᵢ² / Σ(nᵢ − 1) of the groups with >= 2 values, and its
    degrees of freedom; (NaN, 0) when no group has two values."""
    ss, dof = 0.0, 0
    for g in groups:
        g = np.asarray(g, float)
        g = g[np.isfinite(g)]
        if g.size >= 2:
            ss += float(((g - g.mean()) ** 2).sum())
            dof += g.size - 1
    return (ss / dof if dof else math.nan), dof


def f_test_groups(groups: Sequence[Sequence[float]], error_var: float, error_dof: int) -> dict:
    """One-way F test that the groups share one mean, with an error variance estimated elsewhere.

    F = [Σⱼ nⱼ(ȳⱼ − ȳ)²/(m − 1)] / s², ȳ the nⱼ-weighted mean, s² = ``error_var`` with ``error_dof``
    degrees of freedom; under the null (equal means, every value with variance σ² estimated by s²),
    F ~ F(m − 1, error_dof). Returns ``dict(F, p, dof1, dof2, between_sd, ratio_sd)`` where
    ``between_sd`` is the SD of the group means and ``ratio_sd`` = between_sd / √s²."""
    from scipy.stats import f as f_dist
    means = np.array([np.mean(g) for g in groups], float)
    sizes = np.array([len(g) for g in groups], float)
    m = len(groups)
    out = dict(F=math.nan, p=math.nan, dof1=m - 1, dof2=int(error_dof), between_sd=math.nan, ratio_sd=math.nan)
    if m < 2 or not error_dof or not (error_var > 0):
        return out
    grand = float((sizes * means).sum() / sizes.sum())
    between = float((sizes * (means - grand) ** 2).sum() / (m - 1))
    F = between / error_var
    out.update(F=F, p=float(f_dist.sf(F, m - 1, error_dof)), between_sd=float(np.std(means, ddof=1)),
               ratio_sd=float(np.std(means, ddof=1) / math.sqrt(error_var)))
    return out


def bootstrap_rho_difference(x1, x2, y, *, sign: int = 1, n_boot: int = 2000, seed: int = 0,
                             level: float = 0.95) -> dict:
    """Paired bootstrap (resampling the units) of Δ = sign·(ρ_S(x1, y) − ρ_S(x2, y)): which of two
    predictors ranks y better in the direction ``sign`` a theory predicts (sign = −1: the more
    negative correlation wins; a correlation of the wrong sign counts against its predictor).
    Returns ``dict(delta, lo, hi, n)`` with the percentile interval."""
    from scipy.stats import spearmanr
    x1, x2, y = (np.asarray(a, float) for a in (x1, x2, y))
    ok = np.isfinite(x1) & np.isfinite(x2) & np.isfinite(y)
    x1, x2, y = x1[ok], x2[ok], y[ok]
    n = int(ok.sum())
    if n < 4:
        return dict(delta=math.nan, lo=math.nan, hi=math.nan, n=n)

    def d(idx):
        a = spearmanr(x1[idx], y[idx])[0]
        b = spearmanr(x2[idx], y[idx])[0]
        return sign * (a - b)

    import warnings
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    with warnings.catch_warnings():   # a resample with tied x or y has an undefined ρ: it is dropped below
        warnings.simplefilter("ignore")
        boots = np.array([d(rng.integers(0, n, n)) for _ in range(n_boot)])
    boots = boots[np.isfinite(boots)]
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2]) if boots.size else (math.nan, math.nan)
    return dict(delta=float(d(np.arange(n))), lo=float(lo), hi=float(hi), n=n)


def bonferroni_alpha(alpha: float, m: int) -> float:
    """Per-comparison level for ``m`` simultaneous comparisons at family-wise level ``alpha``."""
    return alpha / max(int(m), 1)


# ---------------------------------------------------------------------------------------------
# Sampling errors of the checks
# ---------------------------------------------------------------------------------------------
def bonferroni_z(n_tests: int, alpha: float = 1e-3) -> float:
    """Two-sided normal quantile with Bonferroni correction: P(max_k |Z_k| > z) ≤ ``alpha`` over
    ``n_tests`` standard normal statistics (any dependence)."""
    from scipy.special import ndtri
    return float(ndtri(1.0 - bonferroni_alpha(alpha, n_tests) / 2.0))


def binomial_se(p, m):
    """Binomial standard error √(p(1 − p)/m) of a fraction over m independent particles; p is kept
    ≥ 1/m from 0 and 1, so that an exactly-zero predicted fraction still has a finite SE."""
    m = np.asarray(m, dtype=float)
    p = np.clip(np.asarray(p, dtype=float), 1.0 / m, 1.0 - 1.0 / m)
    out = np.sqrt(p * (1.0 - p) / m)
    return float(out) if out.ndim == 0 else out


def variance_with_se(x) -> tuple[float, float]:
    """Sample variance s² and its standard error √((m₄ − s⁴)/M) (distribution-free, large M)."""
    x = np.asarray(x, dtype=float)
    m = x.size
    d = x - x.mean()
    s2 = float(np.sum(d * d) / (m - 1))
    m4 = float(np.mean(d ** 4))
    return s2, math.sqrt(max(m4 - s2 * s2, 1e-300) / m)


def covariance_with_se(samples):
    """Sample covariance (upper-triangle entries, row-major: 00, 01, 11 in 2-D), the standard errors
    from the empirical variance of the centred products (any law with finite 4th moments), and the
    index arrays of those entries."""
    x = np.asarray(samples, dtype=float)
    x = x - x.mean(axis=0)
    iu = np.triu_indices(x.shape[1])
    prods = x[:, iu[0]] * x[:, iu[1]]
    return prods.mean(axis=0), prods.std(axis=0, ddof=1) / math.sqrt(x.shape[0]), iu


def l1_sampling_tolerance(p, m: int, z: float = 4.0) -> tuple[float, float, float]:
    """Tolerance for the L1 distance between an M-sample histogram and its true cell masses p:
    E[L1] + z·sd[L1], with |p̂ᵢ − pᵢ| ≈ half-normal of scale √(pᵢ(1 − pᵢ)/M) (CLT), so
    E[L1] = Σ√(2 var/π) and var[L1] = Σ(1 − 2/π) var. Returns (tolerance, E[L1], sd[L1])."""
    p = np.asarray(p, dtype=float).ravel()
    var = p * (1 - p) / m
    mean = float(np.sum(np.sqrt(2 * var / math.pi)))
    sd = math.sqrt(float(np.sum((1 - 2 / math.pi) * var)))
    return mean + z * sd, mean, sd


def censored_exponential_mean(times, cap: float) -> tuple[float, float, int]:
    """MLE of an exponential mean from first-passage times censored at ``cap`` (inf = not yet):
    τ̂ = Σ min(t, cap) / #events, SE = τ̂/√#events. Returns (τ̂, SE, #events); (inf, inf, 0) without events."""
    t = np.asarray(times, dtype=float)
    events = np.isfinite(t)
    k = int(events.sum())
    if k == 0:
        return math.inf, math.inf, 0
    tau = float((t[events].sum() + (~events).sum() * cap) / k)
    return tau, tau / math.sqrt(k), k


def logit_crossing(x, p, m) -> tuple[float, float]:
    """Fit logit p = a + b·x by weighted least squares (weights M p(1 − p), the inverse binomial
    variance of the logit) and return the crossing x_c = −a/b (p = ½) with its delta-method SE."""
    x = np.asarray(x, dtype=float)
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    y = np.log(p / (1 - p))
    w = np.asarray(m, dtype=float) * p * (1 - p)
    design = np.column_stack([np.ones_like(x), x])
    cov = np.linalg.inv(design.T @ (w[:, None] * design))
    a, b = cov @ (design.T @ (w * y))
    grad = np.array([-1 / b, a / b ** 2])
    return float(-a / b), math.sqrt(float(grad @ cov @ grad))


def ratio_of_means(num, den) -> tuple[float, float]:
    """R = mean(num)/mean(den) of paired samples and its delta-method SE sd(num − R·den)/(√M·mean(den))."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    r = float(num.mean() / den.mean())
    return r, float(np.std(num - r * den, ddof=1) / math.sqrt(num.size) / den.mean())


def loglog_slope(x, y, se=None) -> tuple[float, float]:
    """Slope of log|y| against log x and its standard error. Without ``se`` (deterministic values):
    least squares, the SE from the residual scatter (0 with two points). With ``se`` (the standard
    errors of y): weighted least squares with the delta-method variances (se/|y|)² of log|y|, the SE
    from those weights (the points independent)."""
    lx, ly = np.log(np.asarray(x, dtype=float)), np.log(np.abs(np.asarray(y, dtype=float)))
    design = np.column_stack([lx, np.ones_like(lx)])
    if se is None:
        coef, *_ = np.linalg.lstsq(design, ly, rcond=None)
        resid = ly - design @ coef
        dof = lx.size - 2
        s2 = float(resid @ resid) / dof if dof > 0 else 0.0
        return float(coef[0]), math.sqrt(s2 / float(np.sum((lx - lx.mean()) ** 2)))
    w = (np.abs(np.asarray(y, dtype=float)) / np.asarray(se, dtype=float)) ** 2
    cov = np.linalg.inv(design.T @ (w[:, None] * design))
    coef = cov @ (design.T @ (w * ly))
    return float(coef[0]), math.sqrt(float(cov[0, 0]))


def fmt(values, digits: int = 3) -> str:
    """Numbers for a report line: ``[a, b, ...]`` with ``digits`` significant digits each."""
    return "[" + ", ".join(f"{float(v):.{digits}g}" for v in np.ravel(values)) + "]"
