"""Input validation shared by every public function.

Each check raises ``ValueError`` naming the offending parameter and saying what
was expected, so a bad call fails loudly instead of producing NaN.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np


def _as_float_array(name: str, value: Any) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a real number or an array of them, got {value!r}") from exc
    if np.any(np.isnan(arr)):
        raise ValueError(f"{name} contains NaN; expected finite values")
    return arr


def check_positive(name: str, value: Any, *, allow_inf: bool = False):
    """Return ``value`` after checking that every entry is > 0 (and finite unless allowed)."""
    arr = _as_float_array(name, value)
    if not allow_inf and np.any(~np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if np.any(arr <= 0):
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def check_nonnegative(name: str, value: Any):
    arr = _as_float_array(name, value)
    if np.any(~np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return value


def check_finite(name: str, value: Any):
    arr = _as_float_array(name, value)
    if np.any(~np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN or inf), got {value!r}")
    return value


def check_batch_size(batch_size: Any, n_samples: int | None = None):
    """Batch size must be >= 1 and, when the data set size is known, <= n_samples."""
    arr = _as_float_array("batch_size", batch_size)
    if np.any(~np.isfinite(arr)) or np.any(arr < 1):
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if n_samples is not None:
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples!r}")
        if np.any(arr > n_samples):
            raise ValueError(
                f"batch_size must be <= n_samples = {n_samples} (a minibatch cannot hold more "
                f"samples than the data set), got {batch_size!r}"
            )
    return batch_size


def check_in_range(name: str, value: Any, low: float, high: float, *, closed: str = "both"):
    arr = _as_float_array(name, value)
    lo_ok = arr >= low if closed in ("both", "left") else arr > low
    hi_ok = arr <= high if closed in ("both", "right") else arr < high
    if not np.all(lo_ok & hi_ok):
        lb = "[" if closed in ("both", "left") else "("
        rb = "]" if closed in ("both", "right") else ")"
        raise ValueError(f"{name} must lie in {lb}{low}, {high}{rb}, got {value!r}")
    return value


def check_square(name: str, matrix: Any) -> np.ndarray:
    mat = _as_float_array(name, matrix)
    if mat.ndim != 2 or mat.shape[0] != mat.shape[1]:
        raise ValueError(f"{name} must be a square 2-D matrix, got shape {mat.shape}")
    if np.any(~np.isfinite(mat)):
        raise ValueError(f"{name} must be finite")
    return mat


def check_symmetric(name: str, matrix: Any, rtol: float = 1e-10) -> np.ndarray:
    mat = check_square(name, matrix)
    scale = max(1.0, float(np.max(np.abs(mat))))
    if not np.allclose(mat, mat.T, rtol=0.0, atol=rtol * scale):
        raise ValueError(f"{name} must be symmetric")
    return mat


def check_positive_definite(name: str, matrix: Any) -> np.ndarray:
    """Symmetric positive definite, checked by a Cholesky factorisation."""
    mat = check_symmetric(name, matrix)
    try:
        np.linalg.cholesky(mat)
    except np.linalg.LinAlgError:
        eig = np.linalg.eigvalsh(mat)
        raise ValueError(
            f"{name} must be symmetric positive definite; its smallest eigenvalue is {eig[0]:.3g}"
        ) from None
    return mat


def check_positive_semidefinite(name: str, matrix: Any, tol: float = 1e-12) -> np.ndarray:
    mat = check_symmetric(name, matrix)
    eig = np.linalg.eigvalsh(mat)
    scale = max(1.0, float(np.max(np.abs(eig))))
    if eig[0] < -tol * scale:
        raise ValueError(f"{name} must be positive semi-definite; its smallest eigenvalue is {eig[0]:.3g}")
    return mat


def check_int(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_output_dir(name: str, path: Any):
    """Create directory ``path`` (and its parents) and make sure a file can be written in it, before any
    work that would write there; the error names the option (e.g. ``--out``) and the reason."""
    import os
    import tempfile
    from pathlib import Path

    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=p, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except FileExistsError:
        raise ValueError(f"{name} {p}: a file of that name exists; expected a directory") from None
    except NotADirectoryError:
        raise ValueError(f"{name} {p}: a parent of it is a file, not a directory") from None
    except OSError as exc:
        raise ValueError(f"{name} {p}: cannot write there ({exc.strerror or exc})") from None
    return p


def is_scalar(value: Any) -> bool:
    return np.ndim(value) == 0 and not isinstance(value, (list, tuple))


class TooLargeError(MemoryError, ValueError):
    """A requested size whose arrays cannot fit in the memory available (raised before anything
    is allocated; a bad input, so also a ``ValueError``)."""


def available_memory() -> int | None:
    """Bytes this process can still allocate without swapping: the kernel's ``MemAvailable``,
    lowered to the room left under a cgroup memory limit when there is one; None where unknown
    (then no request is refused)."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None and hasattr(os, "sysconf"):
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            avail = None
    room = _cgroup_room()
    if room is not None:
        avail = room if avail is None else min(avail, room)
    return avail


def _cgroup_room(root: str = "/sys/fs/cgroup") -> int | None:
    """Room left under a cgroup v2 memory limit: the limit minus what the group uses, not counting
    its inactive file cache (``memory.current`` includes page cache that the kernel reclaims before
    it refuses memory; container runtimes subtract ``inactive_file`` the same way).  None without a
    limit, where the files cannot be read, or where the figure is not positive (then it says
    nothing reliable, and no request should be refused on it)."""
    try:
        with open(os.path.join(root, "memory.max")) as fh:
            limit = fh.read().strip()
        if limit == "max":
            return None
        with open(os.path.join(root, "memory.current")) as fh:
            used = int(fh.read().strip())
        try:
            with open(os.path.join(root, "memory.stat")) as fh:
                for line in fh:
                    key, _, value = line.partition(" ")
                    if key == "inactive_file":
                        used -= int(value)
                        break
        except OSError:
            pass
        room = int(limit) - max(used, 0)
    except (OSError, ValueError):
        return None
    return room if room > 0 else None


def format_bytes(n: float) -> str:
    """Bytes in binary units with three significant digits (``1.5 GiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"  # pragma: no cover


def check_fits_memory(name: str, value: Any, n_bytes: float, what: str, *, advice: str = "") -> None:
    """Refuse (:class:`TooLargeError`, naming ``name``) a request whose arrays, ``n_bytes`` in all
    (a lower bound: the arrays the request itself sizes), exceed the memory available now; called
    before anything is allocated, so a size that cannot fit fails at once with a one-line message
    instead of deep in the allocator (or after swapping for minutes)."""
    avail = available_memory()
    if avail is None or n_bytes <= avail:
        return
    shown = value if not isinstance(value, float) else f"{value:.3g}"
    raise TooLargeError(
        f"{name} = {shown}: {what} needs at least {format_bytes(n_bytes)} but {format_bytes(avail)} of memory "
        f"are available{'; ' + advice if advice else ''}"
    )


__all__ = [name for name in dir() if name.startswith("check_")] + ["is_scalar", "TooLargeError", "available_memory",
                                                                    "format_bytes"]
