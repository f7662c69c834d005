"""Device Lanczos (nets.measure.lanczos) against explicit Hessians and against ARPACK (scipy eigsh).

Models: a BatchNorm-tanh MLP and a tiny BatchNorm conv net, float64, measured in eval mode (the
measurement convention), with their dense Hessians from autograd. Tolerances follow from the
stopping test: a converged Ritz pair has residual r ≤ tol·|θ|, and for a symmetric matrix some
eigenvalue lies within r of θ (Parlett, The Symmetric Eigenvalue Problem, Thm 4.5.1). Every
comparison also checks that the eigenvalue gaps exceed its tolerance, so that returning a
neighbouring eigenvalue (a missed or duplicated one) would fail it.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nets import measure as M

DT = torch.float64
LOSS = nn.CrossEntropyLoss()
EPS64 = np.finfo(np.float64).eps


@pytest.fixture(scope="module", params=["bn_mlp", "tiny_conv"])
def case(request, explicit_hessian, make_small_model):
    make, shapes = make_small_model
    model, in_shape = make(request.param), shapes[request.param]
    g = torch.Generator().manual_seed(1)
    X = torch.randn(40, *in_shape, generator=g, dtype=DT)
    y = torch.randint(0, 3, (40,), generator=g)
    H = explicit_hessian(model, LOSS, X, y)
    return model, X, y, H, torch.linalg.eigvalsh(H).flip(0).numpy()


def test_lanczos_matches_explicit_hessian(case):
    model, X, y, H, ev = case
    k, tol = 3, 1e-10
    res = M.hessian_top_eigenvalues(model, LOSS, X, y, k=k, tol=tol, return_info=True)
    assert res.converged and res.method == "lanczos" and res.iterations < H.shape[0]
    # each θᵢ within its residual of an eigenvalue, plus the rounding of float64 products (‖H‖·1e-13)
    slack = res.residuals + 1e-13 * abs(ev[0])
    assert np.all(np.abs(res.eigenvalues - ev[:k]) <= slack)
    assert np.all(res.residuals <= tol * np.abs(res.eigenvalues))
    # ... and the neighbouring eigenvalues are farther away than that
    assert np.min(np.abs(np.diff(ev[:k + 1]))) > 1e3 * slack.max()
    # the reported residual is the true one, ‖HY − YΘ‖ (Lanczos relation; float64 rounding)
    Y = res.eigenvectors
    true_res = torch.linalg.vector_norm(H @ Y - Y * torch.from_numpy(res.eigenvalues), dim=0).numpy()
    np.testing.assert_allclose(true_res, res.residuals, rtol=0, atol=1e-12 * abs(ev[0]))
    torch.testing.assert_close(Y.T @ Y, torch.eye(k, dtype=DT), rtol=0, atol=1e-12)


def test_lanczos_matches_scipy_eigsh(case):
    model, X, y, H, ev = case
    k, tol = 2, 1e-8
    dev = M.hessian_top_eigenvalues(model, LOSS, X, y, k=k, tol=tol, return_info=True)
    ref = M.hessian_top_eigenvalues(model, LOSS, X, y, k=k, tol=tol, method="scipy", return_info=True)
    assert dev.converged and ref.converged and ref.method == "scipy"
    # both within tol·|θ| of the same eigenvalue (ARPACK: the same relative test) -> 2·tol apart
    bound = 2 * tol * np.abs(ref.eigenvalues) + 1e-13 * abs(ev[0])
    assert np.all(np.abs(dev.eigenvalues - ref.eigenvalues) <= bound)
    assert np.min(np.abs(np.diff(ev[:k + 1]))) > 1e3 * bound.max()
    # ARPACK's explicit residuals satisfy its own test too (a check that the cross-check is valid)
    assert np.all(ref.residuals <= tol * np.abs(ref.eigenvalues) * (1 + 1e-6) + 1e-13 * abs(ev[0]))


def test_scipy_and_lanczos_use_the_same_start_vector(case):
    model, X, y, H, ev = case
    p = H.shape[0]
    start = M._Probes(7, p, "cpu").gaussian()
    # the start vector is numpy's standard normal stream of the seed, whatever the device
    np.testing.assert_array_equal(start.numpy(), np.random.default_rng(7).standard_normal(p))
    # one Lanczos step from it gives the Rayleigh quotient of the start vector, and no more
    with pytest.warns(RuntimeWarning, match="did not converge"), M.eval_mode(model):
        one = M.lanczos(M._hvp_operator(model, LOSS, X, y, None), p, k=1, max_iter=1, seed=7)
    q = start / torch.linalg.vector_norm(start)
    assert one.eigenvalues[0] == pytest.approx(float(q @ H @ q), rel=1e-13)


def test_non_convergence_is_flagged(case):
    model, X, y, H, ev = case
    with pytest.warns(RuntimeWarning, match="lanczos did not converge in 3 iterations"):
        res = M.hessian_top_eigenvalues(model, LOSS, X, y, k=1, tol=1e-10, max_iter=3, return_info=True)
    assert not res.converged and res.iterations == 3
    assert res.residuals[0] > 1e-10 * abs(res.eigenvalues[0])
    # the flag is meaningful: the 3-step value really is off by more than the requested accuracy,
    # and by no more than the reported residual (a Ritz value is within its residual of the spectrum)
    assert 1e-10 * ev[0] < ev[0] - res.eigenvalues[0] <= res.residuals[0] * (1 + 1e-9)
    # measure_model-style summary carries the flag
    assert res.summary()["converged"] is False and res.summary()["iterations"] == 3


@pytest.mark.parametrize("diag, k, top, max_steps", [
    # the Krylov space of any start vector has one dimension per distinct eigenvalue, so plain
    # Lanczos breaks down after 3 (resp. 2) steps holding {3, 1, 0.5} (resp. {3, 1}); the restarts
    # from fresh orthogonal directions must find the multiplicity: top-3 = (3, 3, 3)
    ([3, 3, 3, 1, 1, 1, 0.5, 0.5], 3, [3, 3, 3], 8),
    ([3, 3, 3, 1, 1, 1], 3, [3, 3, 3], 6),
    # rank 2 < k in 32 dimensions: (5, 4, 0) after one restart into the null space, long before
    # the 32 steps that filling the space would take
    ([5, 4] + [0] * 30, 3, [5, 4, 0], 6),
    ([0] * 10, 2, [0, 0], 4),                      # the zero operator
])
def test_breakdown_restarts_find_repeated_eigenvalues(diag, k, top, max_steps):
    d = torch.tensor(diag, dtype=DT)
    res = M.lanczos(lambda v: d * v, d.numel(), k=k, tol=1e-12, seed=0)
    assert res.converged and res.iterations <= max_steps
    np.testing.assert_allclose(res.eigenvalues, top, rtol=0, atol=1e-12 * max(diag + [1]))
    # k orthonormal vectors, each an eigenvector of its eigenvalue
    Y = res.eigenvectors
    torch.testing.assert_close(Y.T @ Y, torch.eye(k, dtype=DT), rtol=0, atol=1e-12)
    torch.testing.assert_close(d[:, None] * Y, Y * torch.tensor(top, dtype=DT), rtol=0, atol=1e-12)


def test_float32_products():
    # products in float32 (a float32 model), basis in float64: a diagonal operator's top
    # eigenvalue to float32 accuracy (relative rounding of one product ≤ 2⁻²⁴ ≈ 6e-8)
    d = torch.linspace(0.1, 2.0, 50, dtype=torch.float32)
    seen = []
    res = M.lanczos(lambda v: (seen.append(v.dtype), d * v)[1], 50, k=1, tol=1e-6, dtype=torch.float32)
    assert set(seen) == {torch.float32} and res.converged
    assert res.eigenvalues[0] == pytest.approx(2.0, rel=1e-6)


def test_power_method_record(case):
    model, X, y, H, ev = case
    assert ev[1] > abs(ev[-1])   # precondition: the top two dominate in magnitude
    res = M.hessian_top_eigenvalues(model, LOSS, X, y, k=2, method="power", tol=1e-8, max_iter=20000,
                                    return_info=True)
    assert res.converged and res.method == "power" and res.iterations >= 2
    np.testing.assert_allclose(res.eigenvalues, ev[:2], rtol=1e-6)


@pytest.mark.parametrize("kw, match", [
    (dict(k=0), "k must be >= 1"),
    (dict(k=8), "k must be < number of parameters"),
    (dict(k=3, max_iter=2), "max_iter must be >= k"),
    (dict(tol=0.0), "tol must be > 0"),
])
def test_lanczos_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        M.lanczos(lambda v: v, 8, **kw)
    with pytest.raises(ValueError, match="method must be"):
        M.top_eigenpairs(lambda v: v, 8, method="arnoldi")
