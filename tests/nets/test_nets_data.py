"""Dataset readers (real idx.gz / CIFAR pickle formats), missing-data error, splits, random labels."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from nets import data as D


def test_idx_roundtrip_gz_and_raw(tmp_path):
    x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    D.write_idx(tmp_path / "a.gz", x)
    D.write_idx(tmp_path / "a", x)
    np.testing.assert_array_equal(D.read_idx(tmp_path / "a.gz"), x)
    np.testing.assert_array_equal(D.read_idx(tmp_path / "a"), x)
    # header is the standard one: 0x00000803 then big-endian dims
    raw = gzip.open(tmp_path / "a.gz").read()
    assert raw[:4] == bytes([0, 0, 8, 3]) and raw[4:8] == (2).to_bytes(4, "big")


def test_idx_bad_magic_and_truncated(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="magic"):
        D.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(b"\x00\x00\x08\x01" + (10).to_bytes(4, "big") + b"\x00" * 3)
    with pytest.raises(ValueError, match="truncated"):
        D.read_idx(tmp_path / "short")


def test_cifar_batch_roundtrip(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (5, 3, 32, 32)).astype(np.uint8)
    D.write_cifar_batch(tmp_path / "b", x, [1, 2, 3, 4, 5])
    xr, yr = D.read_cifar_batch(tmp_path / "b")
    np.testing.assert_array_equal(xr, x)
    np.testing.assert_array_equal(yr, [1, 2, 3, 4, 5])


@pytest.mark.parametrize("name,shape,n", [("fashion-mnist", (1, 28, 28), 400), ("mnist", (1, 28, 28), 400),
                                          ("cifar10", (3, 32, 32), 400)])
def test_load_tiny_real_format(tiny_root, name, shape, n):
    d = D.load(name, data_root=tiny_root, val_size=20)
    assert d.input_shape == shape
    assert d.n_train + d.x_val.shape[0] == n and d.x_val.shape[0] == 20
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert d.augment == (name == "cifar10")
    xtr, ytr, _, _ = D.load_raw(name, tiny_root)
    # normalisation: (x/255 − mean)/std, per channel, exactly as documented
    mean, std = D.NORMALISATION[name]
    perm = np.random.default_rng(np.random.SeedSequence([0, 0x5EED])).permutation(n)
    ref = (xtr[perm[20:]].astype(np.float32) / 255.0 - np.array(mean, np.float32)[:, None, None]) / \
        np.array(std, np.float32)[:, None, None]
    np.testing.assert_allclose(d.x_train.numpy(), ref, rtol=0, atol=1e-5)  # float32 rounding of 2 ops
    np.testing.assert_array_equal(d.y_train.numpy(), ytr[perm[20:]])


def test_env_var_and_torchvision_layout(tmp_path, monkeypatch, make_idx):
    make_idx(tmp_path / "env" / "mnist", n_train=50, n_test=10)
    monkeypatch.setenv(D.ENV_VAR, str(tmp_path / "env"))
    assert D.locate("mnist") == tmp_path / "env" / "mnist"
    make_idx(tmp_path / "tv" / "FashionMNIST" / "raw", n_train=50, n_test=10)
    assert D.locate("fashion-mnist", tmp_path / "tv") == tmp_path / "tv" / "FashionMNIST" / "raw"


def test_missing_dataset_error(tmp_path, monkeypatch):
    monkeypatch.setenv(D.ENV_VAR, str(tmp_path / "nothing"))
    monkeypatch.setattr(D, "DEBIAN_ROOT", tmp_path / "no-debian")
    with pytest.raises(D.DatasetNotFoundError) as ei:
        D.load("cifar10", data_root=tmp_path / "empty")
    msg = str(ei.value)
    assert isinstance(ei.value, FileNotFoundError)
    assert str(tmp_path / "empty") in msg and "THREE_FACTORS_DATA" in msg and "pip install .[vision]" in msg
    with pytest.raises(D.DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        D.locate("fashion-mnist", tmp_path / "empty")


def test_split_subset_and_random_labels_reproducible(tiny_root):
    a = D.load("fashion-mnist", data_root=tiny_root, val_size=50, train_size=300, random_label_fraction=0.25,
               label_seed=7, split_seed=3)
    b = D.load("fashion-mnist", data_root=tiny_root, val_size=50, train_size=300, random_label_fraction=0.25,
               label_seed=7, split_seed=3)
    c = D.load("fashion-mnist", data_root=tiny_root, val_size=50, train_size=300, random_label_fraction=0.25,
               label_seed=8, split_seed=3)
    assert a.n_train == 300 and len(a.corrupted_indices) == 75          # round(0.25 · 300)
    np.testing.assert_array_equal(a.corrupted_indices, b.corrupted_indices)
    assert torch.equal(a.y_train, b.y_train) and torch.equal(a.x_train, b.x_train)
    assert not np.array_equal(a.corrupted_indices, c.corrupted_indices)
    # labels outside the corrupted set are untouched
    keep = np.setdiff1d(np.arange(300), a.corrupted_indices)
    assert torch.equal(a.y_train[keep], a.y_train_clean[keep])
    assert a.info["n_corrupted"] == 75


def test_corrupt_labels_fraction_and_uniformity():
    y = np.zeros(20000, dtype=np.int64)
    out, idx = D.corrupt_labels(y, 0.5, 10, seed=0)
    assert len(idx) == 10000 and len(np.unique(idx)) == 10000
    # new labels uniform on 10 classes: each count ~ Binomial(10000, 0.1), sd = 30; 6 sd bound
    counts = np.bincount(out[idx], minlength=10)
    assert np.all(np.abs(counts - 1000) < 180)
    with pytest.raises(ValueError, match="random_label_fraction"):
        D.corrupt_labels(y, 1.5, 10, seed=0)


def test_augment_crop_flip_shapes_and_content():
    g = torch.Generator().manual_seed(0)
    mean, std = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    out = D.augment_batch(x, g, mean, std, padding=0)
    # no padding: each output is the input or its horizontal mirror
    for i in range(2):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))
    out = D.augment_batch(x.repeat(50, 1, 1, 1), g, mean, std, padding=4)
    assert out.shape == (100, 3, 8, 8)
    # padded entries take the value of a raw 0 pixel, here (0 − 0)/1 = 0; some crops must show padding
    assert (out == 0).sum() > 0


def test_missing_explicit_data_root_is_an_error_not_a_fallback(tmp_path, tiny_root, monkeypatch):
    """A --data-root that does not exist must not silently fall back to $THREE_FACTORS_DATA or
    the Debian directory (which may hold other data)."""
    monkeypatch.setenv(D.ENV_VAR, str(tiny_root))
    with pytest.raises(D.DatasetNotFoundError, match="does not exist"):
        D.locate("fashion-mnist", tmp_path / "typo")
