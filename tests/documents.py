"""Whether a document is what its TypedDict declares (:mod:`hubmirror.domain.documents`), key
by key and type by type, for tests that hold what real writers store to those types."""

from __future__ import annotations

import types
import typing
from typing import Any, NotRequired, get_args, get_origin, get_type_hints, is_typeddict


def problems(value: Any, kind: Any, where: str = "$") -> list[str]:
    """Where ``value`` is not what ``kind`` (a TypedDict, a list of one, a plain type) says."""
    if is_typeddict(kind):
        if not isinstance(value, dict):
            return [f"{where} is {type(value).__name__}, not a {kind.__name__}"]
        hints = get_type_hints(kind)
        found = [f"{where}.{k} is missing" for k in kind.__required_keys__ if k not in value]
        found += [f"{where}.{k} is not a key of {kind.__name__}" for k in value if k not in hints]
        for key, hint in hints.items():
            if key in value:
                found += problems(value[key], hint, f"{where}.{key}")
        return found
    origin = get_origin(kind)
    if origin is NotRequired:
        return problems(value, get_args(kind)[0], where)
    if origin in (typing.Union, types.UnionType):
        options = get_args(kind)
        return [] if any(not problems(value, option, where) for option in options) else [f"{where} is {value!r}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{where} is not a list"]
        return [p for n, element in enumerate(value) for p in problems(element, get_args(kind)[0], f"{where}[{n}]")]
    if kind is type(None):
        return [] if value is None else [f"{where} is {value!r}, not None"]
    if kind is float:
        return [] if isinstance(value, int | float) and not isinstance(value, bool) else [f"{where} is not a number"]
    if isinstance(kind, type):
        return [] if isinstance(value, kind) else [f"{where} is {type(value).__name__}, not {kind.__name__}"]
    return []
