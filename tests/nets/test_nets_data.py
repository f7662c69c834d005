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


def _crop_flip_matches(out, x, pad_val, padding):
    """For each output sample, the (offset y, offset x, flip) of every window of the padded input
    it equals exactly: a (B, 2P+1, 2P+1, 2) boolean array (flip index 0 = not flipped)."""
    b, c, h, w = x.shape
    padded = pad_val.view(1, c, 1, 1).expand(b, c, h + 2 * padding, w + 2 * padding).clone()
    padded[:, :, padding:padding + h, padding:padding + w] = x
    win = padded.unfold(2, h, 1).unfold(3, w, 1)                     # (B, C, 2P+1, 2P+1, H, W)
    o = out[:, :, None, None]
    plain = (win == o).flatten(start_dim=4).all(-1).all(1)           # (B, 2P+1, 2P+1)
    flipped = (win.flip(-1) == o).flatten(start_dim=4).all(-1).all(1)
    return torch.stack([plain, flipped], -1).numpy()


def test_augment_crop_flip_shapes_and_content():
    """Every output is exactly one shifted (pad-4 crop) window of the zero-padded raw image,
    mirrored or not; all shifts and both flip states occur; reproducible from the generator.
    Fails for a no-op, flip-only or crop-only augmentation."""
    b, c, h, w, p = 400, 3, 8, 8, 4
    mean = torch.tensor([0.1, 0.2, 0.3]).view(1, c, 1, 1)
    std = torch.tensor([0.5, 1.0, 2.0]).view(1, c, 1, 1)
    pad_val = (-mean / std).view(c)          # a raw 0 pixel after normalisation: negative, never in x
    # positive and distinct within each sample, so a window and flip state is identified uniquely
    x = 1.0 + torch.arange(c * h * w, dtype=torch.float32).reshape(1, c, h, w) + \
        torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1) * 1000.0
    out = D.augment_batch(x, torch.Generator().manual_seed(0), mean, std, padding=p)
    assert out.shape == x.shape and out.dtype == x.dtype
    m = _crop_flip_matches(out, x, pad_val, p)
    assert np.all(m.reshape(b, -1).sum(1) == 1)                       # each output: exactly one window
    oy, ox, fl = (idx for idx in np.nonzero(m)[1:])
    # offsets uniform on {0..2P}: P(a given value never occurs in 400 draws) = (8/9)^400 < 1e-20
    assert set(oy.tolist()) == set(range(2 * p + 1)) and set(ox.tolist()) == set(range(2 * p + 1))
    # flips ~ Binomial(400, 1/2): mean 200, sd 10; 5 sd bound (two-sided p < 1e-6)
    assert abs(int(fl.sum()) - 200) < 50
    # padding shows up as the per-channel value of a raw 0 pixel in the shifted crops
    shifted = (oy != p) | (ox != p)
    assert shifted.any()
    for ch in range(c):
        assert torch.any(out[torch.from_numpy(shifted), ch] == pad_val[ch])
    # reproducible from the generator's seed; another seed gives other crops
    again = D.augment_batch(x, torch.Generator().manual_seed(0), mean, std, padding=p)
    other = D.augment_batch(x, torch.Generator().manual_seed(1), mean, std, padding=p)
    assert torch.equal(out, again) and not torch.equal(out, other)
    # no padding: each output is the image or its mirror, and both occur
    out0 = D.augment_batch(x[:64], torch.Generator().manual_seed(2), mean, std, padding=0)
    same = [torch.equal(out0[i], x[i]) for i in range(64)]
    mirrored = [torch.equal(out0[i], x[i].flip(-1)) for i in range(64)]
    assert all(s != f for s, f in zip(same, mirrored)) and any(same) and any(mirrored)  # P(fail) = 2^-63


def test_flat_root_is_ambiguous_between_mnist_and_fashion_mnist(tmp_path, monkeypatch, make_idx):
    """MNIST and Fashion-MNIST share file names: idx files directly in --data-root are taken as a
    dataset's only when the root is named for it; otherwise an error explaining the layout."""
    monkeypatch.setenv(D.ENV_VAR, str(tmp_path / "nothing"))
    monkeypatch.setattr(D, "DEBIAN_ROOT", tmp_path / "no-debian")
    flat = make_idx(tmp_path / "downloads", n_train=50, n_test=10)
    for name in ("fashion-mnist", "mnist"):
        with pytest.raises(D.DatasetNotFoundError) as ei:
            D.locate(name, flat)
        msg = str(ei.value)
        assert "share file names" in msg and str(flat / D._SUBDIRS[name][0]) in msg
    mn = make_idx(tmp_path / "mnist", n_train=50, n_test=10)
    assert D.locate("mnist", mn) == mn
    with pytest.raises(D.DatasetNotFoundError, match="share file names"):
        D.locate("fashion-mnist", mn)
    fm = make_idx(tmp_path / "x" / "Fashion_MNIST", n_train=50, n_test=10)
    assert D.locate("fashion-mnist", fm) == fm                        # alias, case-insensitive
    raw = make_idx(tmp_path / "y" / "FashionMNIST" / "raw", n_train=50, n_test=10)
    assert D.locate("fashion-mnist", raw) == raw                      # torchvision's directory itself
    with pytest.raises(D.DatasetNotFoundError):
        D.locate("mnist", raw)
    # CIFAR-10's file names are its own: files directly in any root are fine
    flat_c = tmp_path / "somewhere"
    flat_c.mkdir()
    for f in D._CIFAR_TRAIN + D._CIFAR_TEST:
        D.write_cifar_batch(flat_c / f, np.zeros((2, 3, 32, 32), np.uint8), [0, 1])
    assert D.locate("cifar10", flat_c) == flat_c


def test_existing_explicit_data_root_never_falls_back(tmp_path, tiny_root, monkeypatch):
    """An explicit root that exists but lacks the dataset is an error (where it looked, how to get
    the data), even when $THREE_FACTORS_DATA and the Debian directory both hold it."""
    monkeypatch.setenv(D.ENV_VAR, str(tiny_root))
    monkeypatch.setattr(D, "DEBIAN_ROOT", tiny_root)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(D.DatasetNotFoundError) as ei:
        D.locate("fashion-mnist", empty)
    msg = str(ei.value)
    looked = msg.split("Looked in:")[1].split(" An explicit --data-root is the only place searched")[0]
    assert str(empty / "fashion-mnist") in looked and str(tiny_root) not in looked   # the root only
    assert "apt-get install dataset-fashion-mnist" in msg and "python -m nets download fashion-mnist" in msg
    with pytest.raises(D.DatasetNotFoundError):
        D.load("fashion-mnist", data_root=empty)
    # without --data-root the documented order applies: $THREE_FACTORS_DATA/<name>, then Debian's
    assert D.locate("fashion-mnist") == tiny_root / "fashion-mnist"
    monkeypatch.delenv(D.ENV_VAR)
    assert D.locate("mnist") == tiny_root / "mnist"


def test_missing_explicit_data_root_is_an_error_not_a_fallback(tmp_path, tiny_root, monkeypatch):
    """A --data-root that does not exist must not silently fall back to $THREE_FACTORS_DATA or
    the Debian directory (which may hold other data)."""
    monkeypatch.setenv(D.ENV_VAR, str(tiny_root))
    with pytest.raises(D.DatasetNotFoundError, match="does not exist"):
        D.locate("fashion-mnist", tmp_path / "typo")
