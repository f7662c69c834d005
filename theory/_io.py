"""Atomic file writes shared by the packages that save results (private).

A reader never sees a half-written file: the data go to a temporary file in the target's
directory, are flushed and ``fsync``-ed to disk, and the temporary file is then renamed over the
target (``os.replace`` is atomic on POSIX and Windows) and the directory entry synced, so a crash
or a full disk leaves either the old file or the new one, never a truncated one.  Files get the
mode a plain ``open`` gives, 0666 minus the umask (0644 under the usual umask 022; ``mkstemp``
alone would give 0600).
"""
from __future__ import annotations

import os
import tempfile
from typing import BinaryIO, Callable

__all__ = ["atomic_write", "file_mode"]


def file_mode() -> int:
    """0666 minus the process's umask: the mode ``open`` gives a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None], *, prefix: str = ".tmp-") -> None:
    """Call ``write(fh)`` on a binary file handle and move the result to ``path`` atomically
    (module docstring); on any error the temporary file is removed and ``path`` is untouched."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=prefix + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _sync_directory(directory)


def _sync_directory(directory: str) -> None:
    """fsync the directory so the rename itself survives a crash (not possible on every
    platform or file system: then the file's own fsync is what is guaranteed)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
