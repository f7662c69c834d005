"""Datasets for the network experiments, read from their standard files and held on the device.

Supported: Fashion-MNIST and MNIST (idx files, ``.gz`` or uncompressed) and CIFAR-10 (the
python pickled batches ``cifar-10-batches-py/data_batch_1..5, test_batch``).

Where the files are looked for (first hit wins):

1. the ``data_root`` argument (CLI ``--data-root``) — when given, it is the only place searched
   (a root that does not hold the dataset is an error, never a fallback to other data);
2. otherwise the environment variable ``THREE_FACTORS_DATA``,
3. then Debian's dataset packages: ``/usr/share/datasets/<name>`` (``apt-get install dataset-fashion-mnist``).

Under a root, the usual layouts are accepted: ``root/<dataset-name>/`` (``fashion-mnist``,
``mnist``, ``cifar10``), torchvision's ``root/FashionMNIST/raw/``, ``root/MNIST/raw/``,
``root/cifar-10-batches-py/``. Files directly in a ``--data-root`` are accepted for CIFAR-10, and
for MNIST / Fashion-MNIST (which share file names) only when the root is named for the dataset
(``--data-root .../fashion-mnist``). See :func:`candidate_dirs`.

Everything after reading is done with tensors on the chosen device: normalisation (fixed
per-channel constants, computed once on the device for the whole set), the CIFAR augmentation
(random crop with 4-pixel zero padding in raw-pixel space + horizontal flip, drawn per sample
for a whole batch at once, :func:`augment_batch`), the train/validation split and the random-label
corruption (both reproducible from seeds via ``numpy.random.SeedSequence``; the corrupted
indices are recorded in :class:`DeviceData`).
"""
from __future__ import annotations

import gzip
import os
import pickle
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

__all__ = ["ENV_VAR", "DEBIAN_ROOT", "DATASETS", "NORMALISATION", "SHAPES", "DatasetNotFoundError", "DeviceData",
           "canonical_name", "read_idx", "write_idx", "write_toy_idx_dataset", "read_cifar_batch",
           "write_cifar_batch", "root_is_named_for", "candidate_dirs", "locate", "load_raw", "download",
           "corrupt_labels", "load", "augmentation_params", "apply_augmentation", "augment_batch", "synthetic"]

ENV_VAR = "THREE_FACTORS_DATA"
DEBIAN_ROOT = Path("/usr/share/datasets")

DATASETS = ("fashion-mnist", "mnist", "cifar10")
_ALIASES = {
    "fashion-mnist": "fashion-mnist", "fashion_mnist": "fashion-mnist", "fmnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist", "mnist": "mnist", "cifar10": "cifar10", "cifar-10": "cifar10",
    "cifar": "cifar10",
}
# Standard per-channel normalisation constants (mean, std of the training pixels in [0, 1]).
NORMALISATION = {
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}
# Directory names under a root where each dataset's files may live.
_SUBDIRS = {
    "fashion-mnist": ["fashion-mnist", "fashion_mnist", "FashionMNIST/raw", "FashionMNIST"],
    "mnist": ["mnist", "MNIST/raw", "MNIST"],
    "cifar10": ["cifar-10-batches-py", "cifar10/cifar-10-batches-py", "cifar-10", "cifar10"],
}
_DEBIAN_DIRS = {"fashion-mnist": "fashion-mnist", "mnist": "mnist", "cifar10": "cifar10"}
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
_CIFAR_TEST = ["test_batch"]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files were not found; the message lists where we looked and how to get them."""


def canonical_name(name: str) -> str:
    key = str(name).strip().lower()
    if key not in _ALIASES:
        raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")
    return _ALIASES[key]


# ----------------------------------------------------------------------------- readers
def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one idx file (``.gz`` or raw): magic = 0x0000 | dtype code | ndim, big-endian dims."""
    path = Path(path)
    with _open(path) as fh:
        raw = fh.read()
    if len(raw) < 4:
        raise ValueError(f"{path}: too short for an idx file")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if zero != 0 or dtype_code not in dtypes:
        raise ValueError(f"{path}: bad idx magic number {raw[:4].hex()}")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    dtype = np.dtype(dtypes[dtype_code])
    count = int(np.prod(dims)) if dims else 1
    offset = 4 + 4 * ndim
    if len(raw) - offset < count * dtype.itemsize:
        raise ValueError(f"{path}: truncated idx file (dims {dims})")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(dims)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an idx file (gzip-compressed if the name ends in .gz). For tests."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        fh.write(header + array.tobytes())


def write_toy_idx_dataset(root: str | os.PathLike, n_train: int = 300, n_test: int = 100, seed: int = 0) -> Path:
    """Write train/t10k idx.gz files of a small learnable MNIST-format data set into ``root`` (images of
    class c have a bright band at rows 2c+4..2c+6): real file format, toy content, for tests and dry runs."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(y):
            x[i, 2 * c + 4:2 * c + 7, :] = 250
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", y)
    return root


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: dict with b'data' (N, 3072) uint8 and b'labels' → (N,3,32,32), (N,)."""
    with open(path, "rb") as fh:
        d = pickle.load(fh, encoding="bytes")
    data = d.get(b"data", d.get("data"))
    labels = d.get(b"labels", d.get("labels"))
    if data is None or labels is None:
        raise ValueError(f"{path}: not a CIFAR-10 python batch (no data/labels keys)")
    data = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32)
    return data, np.asarray(labels, dtype=np.int64)


def write_cifar_batch(path: str | os.PathLike, data: np.ndarray, labels: Sequence[int]) -> None:
    """Write a CIFAR-10 python batch in the real format (for tests)."""
    data = np.ascontiguousarray(data, dtype=np.uint8).reshape(len(labels), 3072)
    with open(path, "wb") as fh:
        pickle.dump({b"batch_label": b"test", b"labels": list(map(int, labels)), b"data": data,
                     b"filenames": [b"x.png"] * len(labels)}, fh)


# ----------------------------------------------------------------------------- locating files
def _root_names(name: str) -> set:
    """Directory names that identify ``name``'s own directory (aliases and the layouts' names)."""
    names = {a for a, c in _ALIASES.items() if c == name}
    return names | {s.split("/")[0].lower() for s in _SUBDIRS[name]}


def root_is_named_for(data_root: str | os.PathLike, name: str) -> bool:
    """Whether ``data_root`` is ``name``'s own directory by its name (``.../fashion-mnist``,
    ``.../FashionMNIST/raw``, ...): only then are idx files directly in it taken as ``name``'s."""
    root = Path(os.path.abspath(data_root))
    base = root.name.lower()
    if base == "raw":
        base = root.parent.name.lower()
    return base in _root_names(canonical_name(name))


def candidate_dirs(data_root: Optional[str | os.PathLike], name: str) -> list[Path]:
    """Directories searched for ``name``, in order.

    With an explicit ``data_root`` only that root is searched (never ``$THREE_FACTORS_DATA`` or
    Debian's directory): its named sub-directories for the dataset, then the root itself — for
    CIFAR-10 always (its file names are its own), for MNIST / Fashion-MNIST only when the root's
    name identifies the dataset (:func:`root_is_named_for`), since the two share file names.
    Without ``data_root``: ``$THREE_FACTORS_DATA``'s named sub-directories (it is a root for several
    datasets), then Debian's ``/usr/share/datasets/<name>``."""
    name = canonical_name(name)
    named = [s for s in _SUBDIRS[name] if s]
    dirs: list[Path] = []
    if data_root:
        dirs += [Path(data_root) / s for s in named]
        if name == "cifar10" or root_is_named_for(data_root, name):
            dirs.append(Path(data_root))
        return list(dict.fromkeys(dirs))
    env = os.environ.get(ENV_VAR)
    if env:
        dirs += [Path(env) / s for s in named]
    deb = DEBIAN_ROOT / _DEBIAN_DIRS[name]
    dirs += [deb / s for s in named if s.startswith("cifar-10-batches")] + [deb]
    return list(dict.fromkeys(dirs))


def _find_file(directory: Path, stem: str) -> Optional[Path]:
    for cand in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")):
        p = directory / cand
        if p.is_file():
            return p
    return None


def _has_files(d: Path, name: str) -> bool:
    if not d.is_dir():
        return False
    if name == "cifar10":
        return all((d / f).is_file() for f in _CIFAR_TRAIN + _CIFAR_TEST)
    return all(_find_file(d, s) is not None for pair in _IDX_FILES.values() for s in pair)


def locate(name: str, data_root: Optional[str | os.PathLike] = None) -> Path:
    """Directory holding the dataset's files (searched as :func:`candidate_dirs` says), or
    :class:`DatasetNotFoundError` saying where it looked and how to get the data. An explicit
    ``data_root`` never falls back to ``$THREE_FACTORS_DATA`` or ``/usr/share/datasets``."""
    name = canonical_name(name)
    # an explicit root that does not exist is a typo: never fall back silently to other data
    missing_root = bool(data_root) and not Path(data_root).is_dir()
    looked = [f"{data_root} (does not exist)"] if missing_root else []
    for d in ([] if missing_root else candidate_dirs(data_root, name)):
        looked.append(str(d))
        if _has_files(d, name):
            return d
    note = ""
    if data_root and not missing_root:
        note = (" An explicit --data-root is the only place searched ($" + ENV_VAR + " and "
                f"{DEBIAN_ROOT}/<name> are not used with it).")
        if name != "cifar10" and _has_files(Path(data_root), name):
            note += (f" {data_root} holds idx files directly, but MNIST and Fashion-MNIST share file names, so "
                     f"they are taken as {name!r} only from a directory named for it: move them to "
                     f"{Path(data_root) / _SUBDIRS[name][0]}/ or name the directory {_SUBDIRS[name][0]!r}.")
    how = {
        "fashion-mnist": "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu, no --data-root needed), or ",
        "mnist": "",
        "cifar10": "",
    }[name]
    files = ("cifar-10-batches-py/data_batch_1..5 and test_batch" if name == "cifar10"
             else "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
                  "t10k-labels-idx1-ubyte.gz")
    raise DatasetNotFoundError(
        f"dataset {name!r} not found. Looked in: {', '.join(looked)}.{note} "
        f"Get it with {how}`pip install .[vision]` and `python -m nets download {name} --data-root DIR` "
        f"(torchvision download), or put the files ({files}) in DIR/{_SUBDIRS[name][0]}/ and pass "
        f"--data-root DIR, or in $" + ENV_VAR + f"/{_SUBDIRS[name][0]}/."
    )


@lru_cache(maxsize=4)
def _load_raw_cached(name: str, directory: str):
    d = Path(directory)
    if name == "cifar10":
        parts = [read_cifar_batch(d / f) for f in _CIFAR_TRAIN]
        xtr = np.concatenate([p[0] for p in parts]); ytr = np.concatenate([p[1] for p in parts])
        xte, yte = read_cifar_batch(d / _CIFAR_TEST[0])
    else:
        xtr = read_idx(_find_file(d, _IDX_FILES["train"][0]))[:, None]
        ytr = read_idx(_find_file(d, _IDX_FILES["train"][1])).astype(np.int64)
        xte = read_idx(_find_file(d, _IDX_FILES["test"][0]))[:, None]
        yte = read_idx(_find_file(d, _IDX_FILES["test"][1])).astype(np.int64)
    for arr, lab, what in ((xtr, ytr, "train"), (xte, yte, "test")):
        if len(arr) != len(lab):
            raise ValueError(f"{name} {what}: {len(arr)} images but {len(lab)} labels in {d}")
    return xtr, ytr, xte, yte


def load_raw(name: str, data_root=None):
    """uint8 images (N, C, H, W) and int64 labels for train and test, as numpy arrays."""
    name = canonical_name(name)
    return _load_raw_cached(name, str(locate(name, data_root)))


def download(name: str, data_root: str | os.PathLike) -> Path:  # pragma: no cover - needs network
    """Download with torchvision (optional dependency, ``pip install .[vision]``)."""
    name = canonical_name(name)
    try:
        import torchvision.datasets as tvd  # optional import, only here
    except Exception as exc:
        raise ImportError("downloading needs torchvision (`pip install .[vision]`), which failed to import: "
                          f"{exc}") from exc
    cls = {"fashion-mnist": tvd.FashionMNIST, "mnist": tvd.MNIST, "cifar10": tvd.CIFAR10}[name]
    for train in (True, False):
        cls(str(data_root), train=train, download=True)
    return locate(name, data_root)


# ----------------------------------------------------------------------------- on-device data
def _seed_ints(*entropy: int) -> int:
    return int(np.random.SeedSequence([int(e) for e in entropy]).generate_state(1, dtype=np.uint64)[0] >> 1)


@dataclass
class DeviceData:
    """A dataset held on one device: normalised float images and int64 labels per split."""
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    mean: torch.Tensor
    std: torch.Tensor
    augment: bool = False
    y_train_clean: Optional[torch.Tensor] = None
    corrupted_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    info: dict = field(default_factory=dict)

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def input_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])

    @property
    def device(self) -> torch.device:
        return self.x_train.device


def corrupt_labels(labels: np.ndarray, fraction: float, num_classes: int, seed: int):
    """Replace the labels of ``round(fraction·N)`` training samples, chosen without replacement,
    by labels drawn uniformly from the classes (Zhang et al. 2016; may coincide with the true one).
    Reproducible from ``seed``. Returns (new labels, sorted corrupted indices)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"random_label_fraction must lie in [0, 1], got {fraction!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xC0FFEE]))
    n = len(labels)
    k = int(round(fraction * n))
    idx = np.sort(rng.choice(n, size=k, replace=False)) if k else np.zeros(0, dtype=np.int64)
    out = np.array(labels, dtype=np.int64, copy=True)
    out[idx] = rng.integers(0, num_classes, size=k)
    return out, idx.astype(np.int64)


def load(name: str = "fashion-mnist", *, data_root=None, device="cpu", val_size: int = 5000,
         train_size: Optional[int] = None, test_size: Optional[int] = None, split_seed: int = 0,
         random_label_fraction: float = 0.0, label_seed: int = 0, augment: Optional[bool] = None,
         dtype=torch.float32) -> DeviceData:
    """Load ``name`` onto ``device``.

    The training file is split by a permutation drawn from ``split_seed`` into ``val_size``
    validation samples and the rest; ``train_size`` (optional) keeps only the first ``train_size``
    of the remaining shuffled samples (the breaking-point experiments' smaller training sets);
    ``test_size`` keeps the first samples of the test file. ``random_label_fraction`` of the
    training labels are corrupted reproducibly from ``label_seed`` (:func:`corrupt_labels`).
    ``augment`` defaults to True for CIFAR-10 (crop + flip, applied per batch by the trainer).
    """
    name = canonical_name(name)
    xtr, ytr, xte, yte = load_raw(name, data_root)
    n = len(xtr)
    if not 0 <= val_size < n:
        raise ValueError(f"val_size must be in [0, {n}), got {val_size}")
    perm = np.random.default_rng(np.random.SeedSequence([int(split_seed), 0x5EED])).permutation(n)
    val_idx, tr_idx = perm[:val_size], perm[val_size:]
    if train_size is not None:
        if not 1 <= train_size <= len(tr_idx):
            raise ValueError(f"train_size must be in [1, {len(tr_idx)}], got {train_size}")
        tr_idx = tr_idx[:train_size]
    if test_size is not None:
        if not 1 <= test_size <= len(xte):
            raise ValueError(f"test_size must be in [1, {len(xte)}], got {test_size}")
        xte, yte = xte[:test_size], yte[:test_size]
    num_classes = 10
    y_clean = ytr[tr_idx]
    y_noisy, corrupted = corrupt_labels(y_clean, random_label_fraction, num_classes, label_seed)
    device = torch.device(device)
    mean = torch.tensor(NORMALISATION[name][0], dtype=dtype, device=device).view(1, -1, 1, 1)
    std = torch.tensor(NORMALISATION[name][1], dtype=dtype, device=device).view(1, -1, 1, 1)

    def to_dev(x):  # uint8 → device → float, normalised on the device in one batch
        t = torch.from_numpy(np.require(x, requirements=["C", "W"])).to(device)
        return (t.to(dtype) / 255.0 - mean) / std

    def lab(y):
        return torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)).to(device)

    return DeviceData(
        name=name, x_train=to_dev(xtr[tr_idx]), y_train=lab(y_noisy), x_val=to_dev(xtr[val_idx]),
        y_val=lab(ytr[val_idx]), x_test=to_dev(xte), y_test=lab(yte), num_classes=num_classes,
        mean=mean, std=std, augment=(name == "cifar10") if augment is None else bool(augment),
        y_train_clean=lab(y_clean), corrupted_indices=corrupted,
        info=dict(dataset=name, n_train=len(tr_idx), n_val=int(val_size), n_test=len(xte),
                  split_seed=int(split_seed), label_seed=int(label_seed),
                  random_label_fraction=float(random_label_fraction), n_corrupted=int(len(corrupted))),
    )


def augmentation_params(generator: torch.Generator, n: int, *, padding: int = 4):
    """Random crop offsets and flips for ``n`` samples of the standard CIFAR augmentation, drawn from
    ``generator`` on its device: ``(row offsets, column offsets, flip)``, each of shape (n,).

    The trainers draw these once per epoch for the whole epoch (offsets for every sample, then every
    flip) and apply them per step with :func:`apply_augmentation`. The draw does not depend on the
    batch size, the step path (eager, compiled, CUDA graph) or whether runs are trained alone or in
    a vmap group, and no random number is drawn inside a step, which is what lets a captured CUDA
    graph replay an augmented step."""
    dev = generator.device
    oy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=dev)
    ox = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=dev)
    flip = torch.rand(n, generator=generator, device=dev) < 0.5
    return oy, ox, flip


def apply_augmentation(x: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, flip: torch.Tensor,
                       mean: torch.Tensor, std: torch.Tensor, padding: int = 4) -> torch.Tensor:
    """Crop and flip a normalised batch (B, C, H, W) with the parameters of
    :func:`augmentation_params`: zero-pad by ``padding`` pixels in raw-pixel space (i.e. with value
    −mean/std after normalisation), take the H×W window at (``oy``, ``ox``), mirror where ``flip``.
    Pure indexing on the batch's device, no random numbers (CUDA-graph capturable)."""
    b, c, h, w = x.shape
    dev = x.device
    pad_val = (-mean / std).view(1, c, 1, 1).to(x.dtype)
    padded = pad_val.expand(b, c, h + 2 * padding, w + 2 * padding).clone()
    padded[:, :, padding:padding + h, padding:padding + w] = x
    rows = oy[:, None] + torch.arange(h, device=dev)[None, :]                    # (B, H)
    cols = ox[:, None] + torch.arange(w, device=dev)[None, :]                    # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    bi = torch.arange(b, device=dev)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]    # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def augment_batch(x: torch.Tensor, generator: torch.Generator, mean: torch.Tensor, std: torch.Tensor,
                  padding: int = 4) -> torch.Tensor:
    """Standard CIFAR augmentation on a normalised batch (B, C, H, W), on its device, in one go:
    random crop of the zero-padded image and horizontal flip with probability ½
    (:func:`augmentation_params` then :func:`apply_augmentation`)."""
    if generator.device != x.device:
        raise ValueError(f"generator is on {generator.device} but the batch is on {x.device}")
    return apply_augmentation(x, *augmentation_params(generator, x.shape[0], padding=padding), mean, std, padding)


SHAPES = {"fashion-mnist": (1, 28, 28), "mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def synthetic(name: str = "fashion-mnist", *, n_train: int = 1000, n_val: int = 100, n_test: int = 100,
              device="cpu", seed: int = 0, augment: Optional[bool] = None) -> DeviceData:
    """Random standard-normal images of ``name``'s shape with random labels, on ``device``: for
    benchmarks and memory checks where only sizes matter (never for a result)."""
    name = canonical_name(name)
    for what, v in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (1 if what != "n_val" else 0):
            raise ValueError(f"{what} must be an integer >= {1 if what != 'n_val' else 0}, got {v!r}")
    g = torch.Generator().manual_seed(int(seed))
    n = n_train + n_val + n_test
    x = torch.randn((n,) + SHAPES[name], generator=g).to(device)
    y = torch.randint(0, 10, (n,), generator=g).to(device)
    c = SHAPES[name][0]
    mean = torch.zeros(1, c, 1, 1, device=device)
    return DeviceData("synthetic-" + name, x[:n_train], y[:n_train], x[n_train:n_train + n_val],
                      y[n_train:n_train + n_val], x[n_train + n_val:], y[n_train + n_val:], 10, mean, mean + 1,
                      augment=(name == "cifar10") if augment is None else bool(augment), y_train_clean=y[:n_train],
                      info=dict(dataset="synthetic-" + name, n_train=n_train, n_val=n_val, n_test=n_test))
