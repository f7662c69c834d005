"""Shared fixtures for the network tests: tiny real-format dataset files, one torch thread.

One intra-op thread: on CI's 2 shared cores, OpenMP barriers across 2 threads under load make
small-tensor steps 10–40× slower; results do not depend on the thread count.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

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
