"""Shared fixtures for the network tests: tiny real-format dataset files, small BatchNorm models
and their dense Hessian and Gauss-Newton matrices, one torch thread.

One intra-op thread: on CI's 2 shared cores, OpenMP barriers across 2 threads under load make
small-tensor steps 10–40× slower; results do not depend on the thread count.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from torch.func import functional_call

from nets.data import write_cifar_batch, write_toy_idx_dataset

torch.set_num_threads(1)


def make_idx_dataset(root, n_train=300, n_test=100, seed=0):
    """Train/t10k idx.gz files: images of class c have a bright c-th row band (learnable)."""
    return write_toy_idx_dataset(root, n_train=n_train, n_test=n_test, seed=seed)


def make_cifar_dataset(root, n_per_batch=20, seed=0, n_test=None):
    rng = np.random.default_rng(seed)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = n_test if (name == "test_batch" and n_test) else n_per_batch
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 256, (n, 3, 32, 32)).astype(np.uint8)
        write_cifar_batch(d / name, x, y)
    return root


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    """A data root holding tiny fashion-mnist, mnist (idx.gz) and cifar10 (pickles) files."""
    root = tmp_path_factory.mktemp("data")
    # sizes: the quick presets need 256 train + 128 val from the training file and 128 test samples
    make_idx_dataset(root / "fashion-mnist", n_train=400, n_test=150, seed=1)
    make_idx_dataset(root / "mnist", n_train=400, n_test=150, seed=2)
    make_cifar_dataset(root, n_per_batch=80, n_test=150, seed=3)
    return root


@pytest.fixture
def make_idx():
    """The idx.gz writer above, as a fixture (test modules do not import conftest)."""
    return make_idx_dataset


def dense_hessian(model, loss_fn, X, y):
    """∇²L(θ) of L = loss_fn(model(X), y) w.r.t. the trainable parameters, as a dense (p, p)
    tensor by ``torch.autograd.functional.hessian``, the model in eval mode (the measurement
    convention): the explicit reference the matrix-free estimators are tested against."""
    from nets import measure as M

    names, params = M.trainable_parameters(model)
    consts = M._constants(model)

    def loss(flat):
        out = functional_call(model, (dict(zip(names, M.unflatten_like(flat, params))), consts), (X,))
        return loss_fn(out, y)

    with M.eval_mode(model):
        return torch.autograd.functional.hessian(loss, M.flatten_params(params))


@pytest.fixture(scope="session")
def explicit_hessian():
    """:func:`dense_hessian` as a fixture (test modules do not import conftest)."""
    return dense_hessian


def dense_gauss_newton(model, X, T, loss):
    """(G, Σ₁, L) as float64 numpy for :mod:`nets.geometry`'s conventions, densely: per-sample
    Jacobians Jᵢ (autograd), G = (1/n)Σ JᵢᵀMᵢJᵢ (Mᵢ = I for ``"mse"``, diag(pᵢ) − pᵢpᵢᵀ for
    ``"ce"``), gᵢ = Jᵢᵀ∂ℓᵢ/∂f, Σ₁ = (1/n)Σ(gᵢ − ḡ)(gᵢ − ḡ)ᵀ and the loss L; eval mode."""
    from nets import measure as M

    names, params = M.trainable_parameters(model)
    consts = M._constants(model)
    theta = M.flatten_params(params)
    n = X.shape[0]

    def f(flat):
        out = functional_call(model, (dict(zip(names, M.unflatten_like(flat, params))), consts), (X,))
        return out.reshape(n, -1)

    with M.eval_mode(model):
        J = torch.autograd.functional.jacobian(f, theta)      # (n, k, p)
        out = f(theta)
    k = out.shape[1]
    if loss == "mse":
        Ms = torch.eye(k, dtype=out.dtype).expand(n, k, k)
        r = out - T.reshape(n, k)
        L = float(0.5 * (r ** 2).sum() / n)
        g = torch.einsum("nkp,nk->np", J, r)                  # gᵢ = Jᵢᵀ rᵢ
    else:
        P = torch.softmax(out, 1)
        Ms = torch.diag_embed(P) - P[:, :, None] * P[:, None, :]
        L = float(torch.nn.functional.cross_entropy(out, T))
        g = torch.einsum("nkp,nk->np", J, P - torch.nn.functional.one_hot(T, k).to(out.dtype))
    G = torch.einsum("nkp,nkl,nlq->pq", J, Ms, J) / n
    D = g - g.mean(0)
    S = D.T @ D / n
    return G.numpy(), S.numpy(), L


@pytest.fixture(scope="session")
def explicit_gauss_newton():
    """:func:`dense_gauss_newton` as a fixture."""
    return dense_gauss_newton


SMALL_MODEL_INPUTS = {"bn_mlp": (6,), "tiny_conv": (1, 6, 6)}


def small_bn_model(kind: str, seed: int = 0):
    """A float64 BatchNorm-tanh model with 3 outputs and non-trivial running statistics, left in
    train mode (measurements must switch to eval mode themselves): ``"bn_mlp"`` (6-5-3 MLP,
    inputs (6,)) or ``"tiny_conv"`` (one 3×3 conv with 2 channels, inputs (1, 6, 6))."""
    from torch import nn

    torch.manual_seed(seed)
    if kind == "bn_mlp":
        net = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, 3))
    elif kind == "tiny_conv":
        net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    else:
        raise ValueError(f"kind must be one of {sorted(SMALL_MODEL_INPUTS)}, got {kind!r}")
    net = net.to(torch.float64)
    g = torch.Generator().manual_seed(seed)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(64, *SMALL_MODEL_INPUTS[kind], generator=g, dtype=torch.float64) * 2 + 1)
    return net


@pytest.fixture(scope="session")
def make_small_model():
    """``(small_bn_model, SMALL_MODEL_INPUTS)`` as a fixture."""
    return small_bn_model, SMALL_MODEL_INPUTS
