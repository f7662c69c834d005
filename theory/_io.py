"""Atomic file writes, stale temporaries and corrupt files, for every package that saves results
(private; ``sim``, ``validation`` and ``nets`` all write through here).

A reader never sees a half-written file: the data go to a temporary file ``.<name>.<random>.tmp``
in the target's directory, are flushed and ``fsync``-ed to disk, and the temporary file is then
renamed over the target (``os.replace`` is atomic on POSIX and Windows) and the directory entry
synced, so a crash or a full disk leaves either the old file or the new one, never a truncated one.
Temporaries that a crash left behind are removed by the next run (:func:`remove_stale_temporaries`).
Files get the mode a plain ``open`` gives, 0666 minus the umask (0644 under the usual umask 022;
``mkstemp`` alone would give 0600).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Union

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "file_mode", "remove_stale_temporaries",
           "set_aside_corrupt", "TMP_SUFFIX"]

TMP_SUFFIX = ".tmp"


def file_mode() -> int:
    """0666 minus the process's umask: the mode ``open`` gives a new file."""
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read from ``/proc/self/status`` where the kernel reports it (Linux):
    setting it to read it back, the only portable way, briefly gives any file another thread
    creates meanwhile the wrong mode."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Union[str, os.PathLike], write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(fh)`` on a binary file handle and move the result to ``path`` atomically
    (module docstring), creating missing parent directories; on any error the temporary file is
    removed and ``path`` is untouched. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
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
    _sync_directory(path.parent)
    return path


def atomic_write_bytes(path: Union[str, os.PathLike], payload: Union[bytes, Callable[[BinaryIO], None]]) -> Path:
    """``payload`` (bytes, or a function writing to a binary file handle) written as :func:`atomic_write`."""
    if callable(payload):
        return atomic_write(path, payload)
    return atomic_write(path, lambda fh: fh.write(payload))


def atomic_write_text(path: Union[str, os.PathLike], text: str) -> Path:
    """UTF-8 text (newlines as given), written as :func:`atomic_write`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def remove_stale_temporaries(*directories: Union[str, os.PathLike]) -> list[Path]:
    """Remove the temporaries ``.<name>.<random>.tmp`` that an interrupted run left in these
    directories and their subdirectories (never any other file). Returns what was removed."""
    removed = []
    for directory in directories:
        directory = Path(directory)
        if not directory.is_dir():
            continue
        for p in directory.rglob(f".*{TMP_SUFFIX}"):
            if p.is_file():
                p.unlink()
                removed.append(p)
    return removed


def set_aside_corrupt(path: Union[str, os.PathLike]) -> Path:
    """Rename an unreadable result ``path`` to ``path.corrupt`` (replacing an older one) and return
    the new name, so the file is kept for inspection and no longer read as a result."""
    path = Path(path)
    bad = path.with_name(path.name + ".corrupt")
    os.replace(path, bad)
    return bad


def _sync_directory(directory: Union[str, os.PathLike]) -> None:
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
