"""Linear least squares l_j(θ) = ½(x_jᵀθ − y_j)² + τ‖θ‖²: state-dependent gradient noise
C(θ) = (1/N) Σ r_j² x_j x_jᵀ − ḡḡᵀ with residuals r_j = x_jᵀθ − y_j.  Data rows are (x_j, y_j)."""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from theory import _checks
from theory.landscapes.finite_sum import FiniteSumLandscape

__all__ = ["LeastSquares"]


def sample_value(theta, row):
    d = theta.shape[0]
    r = -row[d]
    for k in range(d):
        r += row[k] * theta[k]
    return 0.5 * r * r


def sample_gradient(theta, row, out):
    d = theta.shape[0]
    r = -row[d]
    for k in range(d):
        r += row[k] * theta[k]
    for k in range(d):
        out[k] = r * row[k]
    return out


def sample_hessian(theta, row, out):
    d = theta.shape[0]
    for i in range(d):
        for j in range(d):
            out[i, j] = row[i] * row[j]
    return out


class LeastSquares(FiniteSumLandscape):
    """Linear least squares on ``inputs`` (N, d) and ``targets`` (N,) (module docstring).  An
    over-parameterised problem without L2 (rank-deficient inputs, l2 = 0) has a flat valley of
    minima: it can be simulated, but ``minima()`` says that it has no strict minimum."""

    def __init__(self, inputs: ArrayLike, targets: ArrayLike, l2: float = 0.0):
        inputs = np.atleast_2d(np.asarray(inputs, dtype=float))
        targets = np.asarray(targets, dtype=float).reshape(-1)
        if inputs.shape[0] != targets.shape[0]:
            raise ValueError(f"inputs and targets must have the same number of rows, got {inputs.shape[0]} and "
                             f"{targets.shape[0]}")
        _checks.check_finite("inputs", inputs)
        _checks.check_finite("targets", targets)
        self.inputs, self.targets = inputs, targets
        super().__init__(sample_value, sample_gradient, sample_hessian, data=np.column_stack([inputs, targets]),
                         dim=inputs.shape[1], l2=l2, minima_guesses=self._exact_minimum)

    def _exact_minimum(self) -> np.ndarray:
        n, d = self.inputs.shape
        gram = self.inputs.T @ self.inputs / n + 2 * self.l2 * np.eye(d)
        if np.linalg.eigvalsh(gram)[0] <= 1e-12 * max(1.0, np.max(np.abs(gram))):
            raise ValueError("this least-squares problem has no strict minimum (inputs rank-deficient and l2 = 0); "
                             "set l2 > 0")
        return np.linalg.solve(gram, self.inputs.T @ self.targets / n)[None, :]

    @classmethod
    def example(cls) -> LeastSquares:
        rng = np.random.default_rng(3)
        return cls(rng.standard_normal((40, 3)), rng.standard_normal(40), l2=0.05)
