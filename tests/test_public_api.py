"""The public API: every public module of theory, sim, nets and validation declares ``__all__`` and
every name in it exists; in theory and sim every public function and method of an exported class
has annotated parameters and return type (compiled kernels excepted: numba types them from their
arguments)."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
def _public_modules(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob("*.py")
                  if not p.name.startswith("_") or p.name == "__init__.py")


MODULES = _public_modules("sim", "theory")
ALL_MODULES = _public_modules("sim", "theory", "nets", "validation")


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exports(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "__all__" and node.value:
            return list(ast.literal_eval(node.value))
    return None


@pytest.mark.parametrize("path", ALL_MODULES, ids=_name)
def test_public_module_declares_all_and_exports_exist(path):
    exports = _exports(ast.parse(path.read_text()))
    assert exports is not None, f"{_name(path)} has no __all__"
    module = importlib.import_module(_name(path))
    missing = [n for n in exports if not hasattr(module, n)]
    assert not missing, missing


def _compiled(fn: ast.FunctionDef) -> bool:
    return any("numba" in ast.unparse(d) or "register_jitable" in ast.unparse(d) for d in fn.decorator_list)


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_public_signatures_are_typed(path):
    tree = ast.parse(path.read_text())
    exports = set(_exports(tree) or ())
    untyped = []

    def visit(nodes, owner=""):
        for node in nodes:
            if isinstance(node, ast.ClassDef) and not owner and node.name in exports:
                visit(node.body, node.name + ".")
            elif isinstance(node, ast.FunctionDef) and not _compiled(node) and (
                    (owner and (not node.name.startswith("_") or node.name == "__init__"))
                    or (not owner and node.name in exports)):
                args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                bare = [a.arg for a in args if a.annotation is None and a.arg not in ("self", "cls")]
                bare += [f"*{a.arg}" for a in (node.args.vararg, node.args.kwarg)
                         if a is not None and a.annotation is None]
                if bare or (node.returns is None and node.name != "__init__"):
                    untyped.append(f"{owner}{node.name}({', '.join(bare)}){'' if node.returns else ' -> ?'}")

    visit(tree.body)
    assert not untyped, untyped
