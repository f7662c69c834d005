"""Files of a validation run: atomic writes, stale temporaries, corrupt results kept aside.

Every file is written to a temporary in its own directory, flushed and ``fsync``-ed, given the
mode a plain ``open`` would give (0666 minus the umask: 0644 under the usual umask 022, where
``mkstemp`` alone gives 0600) and renamed over the target, so a crash leaves either the old file
or the new one, never half of one. Temporaries are named ``.<name>.<random>.tmp``; those left by a
crashed run are removed at the start of the next one (:func:`remove_stale_temporaries`).
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["atomic_write_bytes", "atomic_write_text", "save_npz", "load_npz", "save_figure",
           "remove_stale_temporaries", "set_aside_corrupt", "TMP_SUFFIX"]

TMP_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, payload: bytes | Callable[[io.BufferedWriter], None]) -> Path:
    """Write ``payload`` (bytes, or a function writing to a binary file object) to ``path``
    atomically: temporary in the same directory, fsync, mode 0666 & ~umask, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(payload):
                payload(fh)
            else:
                fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """UTF-8 text, written as :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def save_npz(path: str | os.PathLike, arrays: dict) -> Path:
    """Arrays (and scalars) as a compressed ``.npz``, atomically; keys must be strings."""
    clean = {str(k): np.asarray(v) for k, v in arrays.items()}
    for key, value in clean.items():
        if value.dtype == object:
            raise TypeError(f"array {key!r} has dtype object: only numbers, booleans and strings can be saved")
    buf = io.BytesIO()
    np.savez_compressed(buf, **clean)
    return atomic_write_bytes(path, buf.getvalue())


def load_npz(path: str | os.PathLike) -> dict:
    """The arrays of ``path`` (0-d arrays as numbers); ValueError naming the file if it is unreadable."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: (z[k].item() if z[k].ndim == 0 else z[k]) for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from None


def save_figure(fig, path: str | os.PathLike, *, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def remove_stale_temporaries(*directories: str | os.PathLike) -> list[Path]:
    """Remove the temporaries ``.<name>.<random>.tmp`` that an interrupted run left in these
    directories and their subdirectories (never any other file). Returns what was removed."""
    removed = []
    for d in directories:
        d = Path(d)
        if not d.is_dir():
            continue
        for p in d.rglob(f".*{TMP_SUFFIX}"):
            if p.is_file():
                p.unlink()
                removed.append(p)
    return removed


def set_aside_corrupt(path: str | os.PathLike) -> Path:
    """Rename an unreadable result ``path`` to ``path.corrupt`` (replacing an older one) and return it."""
    path = Path(path)
    bad = path.with_name(path.name + ".corrupt")
    os.replace(path, bad)
    return bad
