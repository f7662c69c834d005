"""Compiling plain Python functions with numba, and composing compiled functions (private).

Two helpers shared by :mod:`theory.landscapes` and :mod:`sim`:

* :func:`jit` compiles a user's function with ``numba.njit`` and turns numba's multi-line
  typing errors into one line that names the function;
* :func:`specialise` makes a compiled copy of a *template* (a plain Python function) in which
  some global names are bound to given compiled functions or constants.  This is how a
  simulator kernel is composed with a landscape's gradient, a noise model and observers: numba
  sees the bound functions as globals and inlines them, so the composition is as fast as
  hand-written code.

Disk cache: numba cannot cache a closure over another compiled function (the closure's
pickled contents change from process to process), so templates are not closures.  A
specialisation is cached on disk (``cache=True``) when every bound value has a stable identity
(:func:`identity`): a constant, a function defined at module level in a source file (identified
by module, name and the file's modification time and size, as numba identifies its own cached
functions), or another cacheable specialisation.  Its cache entry is named after a digest of
those identities and of the source files of ``theory`` and ``sim`` (:func:`_package_stamp`: the
helpers a kernel inlines live there), so a second process loads every kernel from disk instead
of compiling it, and an edit of any of those files compiles them afresh.
Functions without such an identity (lambdas, closures, functions typed in at a prompt) are
compiled once per process.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import os
import re
import sys
import threading
import types
import warnings

import numba

__all__ = ["jit", "specialise", "identity", "compile_error_line", "generated", "sources_stamp"]

# Inlining a function with loops into another (numba's inline="always") trips a pedantic internal
# check of numba's SSA pass ("variable ... is not in scope"); the generated code is correct.
warnings.filterwarnings("ignore", category=numba.core.errors.NumbaIRAssumptionWarning)

_LOCK = threading.Lock()
_JITTED: dict = {}
_SPECIALISED: dict = {}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def compile_error_line(exc: BaseException) -> str:
    """The most informative line of a numba compilation error (numba's messages span many lines
    of pipeline context; the first line that is not context says what failed)."""
    lines = [_ANSI.sub("", ln).strip() for ln in str(exc).splitlines()]
    context = ("Failed in ", "During:", "File ", "^", "- Resolution failure", "This error may have been",
               "Enable logging", "raise ", "http")
    for ln in lines:
        if ln and not ln.startswith(context):
            return ln
    return next((ln for ln in lines if ln), type(exc).__name__)


def identity(obj) -> str | None:
    """A string that names ``obj`` identically in every process, or None if there is none.

    Constants name themselves; a module-level function in a source file is named by its module,
    qualified name and the file's modification time and size (an edit changes the name); a
    cacheable specialisation by its digest."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return f"{type(obj).__name__}:{obj!r}"
    digest = getattr(obj, "_spec_digest", None)
    if digest is not None:
        return digest
    fn = getattr(obj, "py_func", obj)
    if not isinstance(fn, types.FunctionType) or fn.__closure__:
        return None
    module = sys.modules.get(fn.__module__ or "")
    if module is None or "<" in fn.__qualname__:
        return None
    target = module
    for part in fn.__qualname__.split("."):
        target = getattr(target, part, None)
    if getattr(target, "py_func", target) is not fn:
        return None
    try:
        path = inspect.getsourcefile(fn)
        stat = os.stat(path)
    except (TypeError, OSError):
        return None
    return f"{fn.__module__}.{fn.__qualname__}@{path}:{stat.st_mtime_ns}:{stat.st_size}"


def _source_stamp(fn) -> str:
    """The file a template was compiled from, with its modification time and size: an edit of the
    template (or of anything else in its file) gives its specialisations new names, so a cached
    kernel never outlives the source it was compiled from."""
    path = fn.__code__.co_filename
    try:
        stat = os.stat(path)
    except OSError:
        return path
    return f"{path}:{stat.st_mtime_ns}:{stat.st_size}"


@functools.lru_cache(maxsize=None)
def _package_stamp() -> str:
    """A digest of the modification times and sizes of every source file of ``theory`` and ``sim``
    (computed once per process).  A kernel inlines the compiled helpers its template's module
    imports (the random-number generator, the observers, the noise models), and numba's cache
    tracks only the file a function is defined in; with this in every specialisation's name, an
    edit of any of those files recompiles the kernels instead of loading ones built from the old
    code."""
    return sources_stamp(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sources_stamp(root: str, packages: tuple = ("theory", "sim")) -> str:
    """Digest of (relative path, modification time, size) of every ``.py`` file under ``packages``
    of ``root``."""
    parts = []
    for package in packages:
        for directory, _, files in sorted(os.walk(os.path.join(root, package))):
            for name in sorted(f for f in files if f.endswith(".py")):
                path = os.path.join(directory, name)
                try:
                    stat = os.stat(path)
                except OSError:
                    continue
                parts.append(f"{os.path.relpath(path, root)}:{stat.st_mtime_ns}:{stat.st_size}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def jit(fn, role: str):
    """``numba.njit(nogil=True, inline="always")`` of the plain function ``fn`` (one dispatcher per
    function and process): inlined into every compiled caller, because a call between compiled
    functions that is not inlined passes each array argument with reference counting (tens of
    ns per call).  Compilation happens at the first call with concrete types; wrap that call in
    :func:`compile_error_line` to report failures."""
    if isinstance(fn, numba.core.registry.CPUDispatcher):
        return fn
    if not callable(fn):
        raise TypeError(f"{role} must be a function, got {fn!r}")
    with _LOCK:
        disp = _JITTED.get(fn)
        if disp is None:
            disp = numba.njit(nogil=True, inline="always", cache=identity(fn) is not None)(fn)
            _JITTED[fn] = disp
    return disp


def specialise(template, *, inline: bool = False, **bindings):
    """Compiled copy of ``template`` with the global names in ``bindings`` bound to the given
    values (compiled functions or constants).  ``inline``: the copy is inlined into compiled
    callers (building blocks; kernels called from Python are not).  Identical requests return
    the same dispatcher."""
    ids = {name: identity(value) for name, value in bindings.items()}
    cacheable = all(v is not None for v in ids.values())
    key = (template, inline, tuple(sorted((n, ids[n] if ids[n] is not None else id(v)) for n, v in bindings.items())))
    with _LOCK:
        disp = _SPECIALISED.get(key)
        if disp is not None:
            return disp
        text = repr((template.__module__, template.__qualname__, _source_stamp(template), _package_stamp(), inline,
                     sorted(key[2])))
        digest = hashlib.sha256(text.encode()).hexdigest()[:24]
        namespace = dict(template.__globals__)
        namespace.update(bindings)
        fn = types.FunctionType(template.__code__, namespace, template.__name__, template.__defaults__)
        fn.__qualname__ = f"{template.__qualname__}__{digest}"
        fn.__module__ = template.__module__
        fn.__doc__ = template.__doc__
        options = dict(inline="always") if inline else {}
        disp = numba.njit(nogil=True, cache=cacheable, **options)(fn)
        disp._spec_digest = f"spec:{digest}" if cacheable else None
        disp._spec_bindings = bindings  # keeps the bound (uncacheable) objects alive with the key
        _SPECIALISED[key] = disp
    return disp


_GENERATED: dict = {}


def generated(name: str, source: str, anchor):
    """A plain function compiled from ``source`` (defining ``name``), placed in the module of the
    function ``anchor`` (its globals, its file for numba's cache): templates whose shape depends
    on a number, e.g. a call with that many arguments (numba cannot inline a call with *args)."""
    key = (anchor.__module__, name, source)
    with _LOCK:
        fn = _GENERATED.get(key)
        if fn is None:
            namespace = dict(anchor.__globals__)
            exec(compile(source, anchor.__code__.co_filename, "exec"), namespace)
            fn = namespace[name]
            fn.__module__ = anchor.__module__
            fn.__qualname__ = name
            _GENERATED[key] = fn
    return fn
