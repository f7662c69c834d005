"""Plotting shared by the checks: matplotlib without a display, covariance ellipses."""
from __future__ import annotations

import numpy as np

__all__ = ["pyplot", "ellipse"]


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed; figures are saved as PNG)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def ellipse(ax, cov, center=(0.0, 0.0), **kw):
    """Draw the 2-σ ellipse {x: xᵀ cov⁻¹ x = 4} of a 2×2 covariance around ``center``."""
    w, v = np.linalg.eigh(np.asarray(cov, dtype=float))
    t = np.linspace(0, 2 * np.pi, 200)
    pts = (v @ np.diag(2 * np.sqrt(w)) @ np.vstack([np.cos(t), np.sin(t)])).T + np.asarray(center)
    ax.plot(pts[:, 0], pts[:, 1], **kw)


def decorate(ax, *, xlabel=None, ylabel=None, title=None, legend=None, xscale=None, yscale=None):
    """Axis labels, title, scales and (``legend`` = font size) a legend, in one call."""
    if xscale:
        ax.set_xscale(xscale)
    if yscale:
        ax.set_yscale(yscale)
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    if legend is not None:
        ax.legend(fontsize=legend)
