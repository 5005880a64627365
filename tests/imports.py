"""The package's imports, read from its source (the AST): for the layout and contract tests.

An import inside a function counts as much as one at the top; imports under
``if TYPE_CHECKING:`` are for the type checker only and do not count.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "functions" / "hubmirror"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


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
    for node in _walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(
                f"{node.module}.{alias.name}" for alias in node.names if f"{node.module}.{alias.name}" in MODULES
            )
    return found


def reads_environment(module: str) -> bool:
    for node in _walk(ast.parse(MODULES[module].read_text())):
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
    """``module`` and every package module it reaches, with the packages that get executed on the way."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or name not in MODULES:
            continue
        seen.add(name)
        parents = [".".join(name.split(".")[:n]) for n in range(2, name.count(".") + 1)]
        todo.extend(p for p in parents if p in MODULES)  # importing a.b.c runs a/b/__init__.py
        todo.extend(i for i in imports(name) if i.startswith("hubmirror"))
    return seen
