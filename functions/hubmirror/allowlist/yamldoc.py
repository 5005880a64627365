"""Safe YAML loading that remembers where every value came from.

``load`` composes the document with PyYAML's safe loader, then builds plain Python values
itself so that it can

* record the line of every value, by path (``("images", 3, "tags", 0)`` -> 12);
* refuse duplicate mapping keys (PyYAML silently keeps the last one);
* remember the source text of scalars (so ``1.10``, read as the number 1.1, can be quoted
  back to the user);
* stop an alias "billion laughs" expansion after a fixed number of nodes, before it
  exhausts memory.

Pure: works on text, no file or network access.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]
MAX_NODES = 200_000


@dataclass(frozen=True)
class YamlProblem:
    """A problem found while reading the document itself (syntax, duplicates, size)."""

    path: Path
    line: int | None
    message: str


@dataclass
class Document:
    """A loaded document: its value, and per path its line and the scalar's source text."""

    value: Any
    lines: dict[Path, int] = field(default_factory=dict)
    raw: dict[Path, str] = field(default_factory=dict)
    key_text: dict[tuple[Path, Any], str] = field(default_factory=dict)
    problems: list[YamlProblem] = field(default_factory=list)

    def key(self, path: Path, key: Any) -> str:
        """A mapping key of ``path`` as written in the file (``1.10``, not the number ``1.1``)."""
        return self.key_text.get((path, key), str(key))

    def line(self, path: Path) -> int | None:
        """The line of ``path``, or of its closest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)


class _TooLargeError(Exception):
    pass


def load(text: str, *, max_nodes: int = MAX_NODES) -> Document:
    """Load one YAML document. Syntax errors and duplicates land in ``problems``."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        return Document(value=None, problems=[YamlProblem((), line, syntax_message(text, exc))])
    except yaml.YAMLError as exc:
        return Document(value=None, problems=[YamlProblem((), None, f"not valid YAML: {exc}")])
    document = Document(value=None)
    if node is None:
        return document
    constructor = yaml.SafeLoader("")
    budget = [max_nodes]
    try:
        document.value = _build(node, (), document, constructor, budget)
    except _TooLargeError:
        document.value = None
        document.problems.append(
            YamlProblem((), None, f"the document expands to more than {max_nodes} values (YAML aliases?); refused")
        )
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        document.problems.append(YamlProblem((), mark.line + 1 if mark else None, f"not valid YAML: {exc.problem}"))
    return document


def syntax_message(text: str, exc: yaml.MarkedYAMLError) -> str:
    """A YAML syntax error as people can act on it: column, rule, a hint, the line and a caret under the column.

    >>> try:
    ...     yaml.compose("a:\\n\\t- b\\n", Loader=yaml.SafeLoader)
    ... except yaml.MarkedYAMLError as exc:
    ...     print(syntax_message("a:\\n\\t- b\\n", exc))
    not valid YAML at column 1: found character '\\t' that cannot start any token; indent with spaces, not tabs
        \\t- b
        ^
    """
    mark = exc.problem_mark or exc.context_mark
    reason = exc.problem or exc.context or "invalid YAML"
    if mark is None:
        return f"not valid YAML: {reason}"
    lines = text.splitlines()
    source = lines[mark.line] if mark.line < len(lines) else ""
    hint = _syntax_hint(reason, source, exc)
    shown = source.replace("\t", "\\t")
    caret = len(source[: mark.column].replace("\t", "\\t"))
    message = f"not valid YAML at column {mark.column + 1}: {reason}" + (f"; {hint}" if hint else "")
    if not source.strip():
        return message
    return f"{message}\n{SNIPPET_INDENT}{shown.rstrip()}\n{SNIPPET_INDENT}{' ' * caret}^"


#: How far the offending line and its caret are indented under a syntax error's message.
SNIPPET_INDENT = "    "


def _syntax_hint(reason: str, line: str, exc: yaml.MarkedYAMLError) -> str | None:
    """What to do about a YAML syntax error, for the mistakes people make most."""
    if "\t" in line[: len(line) - len(line.lstrip())]:
        return "indent with spaces, not tabs"
    if "'\\t'" in reason:
        return "write a space instead of the tab"
    if "expected <block end>" in reason:
        start = f" (this block starts at line {exc.context_mark.line + 1})" if exc.context_mark else ""
        return (
            f"check the indentation: the keys of one mapping and the items of one list start in the same column{start}"
        )
    if "mapping values are not allowed here" in reason:
        return "check the indentation of this line, or quote a value that holds ': '"
    if "could not find expected ':'" in reason or "did not find expected key" in reason:
        return "check the indentation, and that every key is followed by ': '"
    if "expected ',' or ']'" in reason or "expected ',' or '}'" in reason:
        opened = f" at line {exc.context_mark.line + 1}" if exc.context_mark else ""
        return f"close the list or mapping opened{opened}, or quote a value that holds ',', '[' or '{{'"
    if "found unexpected end of stream" in reason or "found unknown escape" in reason:
        return "check the quotes: a quoted value is closed on the same line"
    return None


def _build(node: yaml.Node, path: Path, doc: Document, constructor: yaml.SafeLoader, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLargeError
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                doc.problems.append(
                    YamlProblem(path, key_node.start_mark.line + 1, "YAML merge keys ('<<') are not supported")
                )
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                doc.problems.append(
                    YamlProblem(path, key_node.start_mark.line + 1, "mapping keys must be plain strings")
                )
                continue
            key = constructor.construct_object(key_node, deep=True)
            key_path = (*path, key_node.value)  # the key as written: "1.10", not the number 1.1
            doc.key_text[(path, key)] = key_node.value
            if key in result:
                doc.problems.append(
                    YamlProblem(key_path, key_node.start_mark.line + 1, f"duplicate key {key!r}: a key may appear once")
                )
                continue
            doc.lines[key_path] = key_node.start_mark.line + 1
            result[key] = _build(value_node, key_path, doc, constructor, budget)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for n, item in enumerate(node.value):
            item_path = (*path, n)
            doc.lines[item_path] = item.start_mark.line + 1
            items.append(_build(item, item_path, doc, constructor, budget))
        return items
    assert isinstance(node, yaml.ScalarNode)
    doc.raw[path] = node.value
    return constructor.construct_object(node, deep=True)


def format_path(path: Path) -> str:
    """``("images", 3, "tags", 0)`` -> ``images[3].tags[0]``.

    >>> format_path(("images", 3, "tags", 0))
    'images[3].tags[0]'
    """
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(document)"
