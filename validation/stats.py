"""Small statistics shared by the validation statements: rank correlations with confidence
intervals, the one-way F test of "these groups share one mean" against a pooled error variance,
a paired bootstrap of two correlations, and Bonferroni levels. SciPy does the distributions.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["spearman_ci", "f_test_groups", "bootstrap_rho_difference", "bonferroni_alpha", "pooled_variance"]

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
