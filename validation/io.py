"""Files of a validation run: arrays, figures, atomic writes, stale temporaries, corrupt results
kept aside (the last three are the project's one implementation, :mod:`theory._io`).

Every file is written to a temporary in its own directory, flushed and ``fsync``-ed, given the
mode a plain ``open`` would give (0666 minus the umask: 0644 under the usual umask 022, where
``mkstemp`` alone gives 0600) and renamed over the target, so a crash leaves either the old file
or the new one, never half of one. Temporaries are named ``.<name>.<random>.tmp``; those left by a
crashed run are removed at the start of the next one (:func:`remove_stale_temporaries`).
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from theory._io import (TMP_SUFFIX, atomic_write_bytes, atomic_write_text, remove_stale_temporaries,
                        set_aside_corrupt)

__all__ = ["atomic_write_bytes", "atomic_write_text", "save_npz", "load_npz", "save_figure",
           "remove_stale_temporaries", "set_aside_corrupt", "TMP_SUFFIX"]


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
