"""The package's imports, and the local stack's, read from their source (the AST): for the
layout and contract tests.

An import inside a function counts as much as one at the top; imports under
``if TYPE_CHECKING:`` are for the type checker only and do not count.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "functions" / "hubmirror"
#: The local stack the tests run on (not shipped): its imports are read the same way.
DEVSTACK = Path(__file__).resolve().parents[1] / "devstack"


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(package: Path) -> dict[str, Path]:
    return {module_name(p, package): p for p in sorted(package.rglob("*.py"))}


MODULES = _modules(PACKAGE)
DEVSTACK_MODULES = _modules(DEVSTACK)
_SOURCES = {**MODULES, **DEVSTACK_MODULES}


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    for child in ast.iter_child_nodes(node):
        if _type_checking_only(child):
            continue
        yield child
        yield from _walk(child)


def imports(module: str) -> set[str]:
    """Every module ``module`` imports (absolute names; ``from pkg import mod`` gives ``pkg.mod``)."""
    found: set[str] = set()
    for node in _walk(ast.parse(_SOURCES[module].read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(
                f"{node.module}.{alias.name}" for alias in node.names if f"{node.module}.{alias.name}" in _SOURCES
            )
    return found


def reads_environment(module: str) -> bool:
    for node in _walk(ast.parse(_SOURCES[module].read_text())):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
            return True
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and {a.name for a in node.names} & {"environ", "getenv"}
        ):
            return True
    return False


def closure(module: str) -> set[str]:
    """``module`` and every module of its package it reaches, with the packages that get executed on the way."""
    top = module.partition(".")[0]
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or name not in _SOURCES:
            continue
        seen.add(name)
        parents = [".".join(name.split(".")[:n]) for n in range(2, name.count(".") + 1)]
        todo.extend(p for p in parents if p in _SOURCES)  # importing a.b.c runs a/b/__init__.py
        todo.extend(i for i in imports(name) if i.split(".")[0] == top)
    return seen
