"""Versions as container tags spell them, and semver-style ranges over them.

Tags are not strict semver: ``1.27``, ``v1.8.2``, ``1.27.3-alpine``, ``7.4.1-bookworm``,
``2.0.0-rc.1``, ``latest``. A tag is read as a version when it is an optional ``v``, one to
three dot-separated numbers, then optionally ``-`` and a suffix. A suffix that looks like a
pre-release (``rc``, ``alpha``, ``beta``, ``pre``, ``dev``, ``preview``, with numbers) makes a
pre-release; any other suffix (``alpine``, ``bookworm``, ``slim``) is a *variant*, a different
flavour of the same version. ``latest`` and friends are not versions.

Ranges are comparators joined by spaces or commas, all of which must hold::

    >=1.26 <1.28     ^1.26     ~1.26.1     =1.27.2     >2

``^X.Y.Z`` allows changes that do not modify the left-most non-zero number; ``~X.Y.Z``
allows patch changes (``~X`` allows minor changes). Missing numbers count as zero.

Pure: no I/O, no environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_VERSION = re.compile(r"^v?(?P<numbers>\d+(?:\.\d+){0,2})(?:[-+](?P<suffix>[0-9A-Za-z][0-9A-Za-z.\-_+]*))?$")
_PRERELEASE = re.compile(r"^(?:alpha|beta|rc|pre|preview|dev|a|b)(?:[.\-_]?\d+)*(?:[.\-_].*)?$", re.IGNORECASE)
_COMPARATOR = re.compile(r"^(?P<op>>=|<=|==|=|>|<|\^|~)?\s*(?P<version>v?\d+(?:\.\d+){0,2})$")


class RangeError(ValueError):
    """A version range does not follow the grammar; the message says where."""


@dataclass(frozen=True, order=True)
class Version:
    """A tag read as a version; ordered by numbers, a release after its pre-releases.

    >>> Version.parse("1.27.3-alpine")
    Version(numbers=(1, 27, 3), release=True, prerelease=(), variant='alpine', precision=3, text='1.27.3-alpine')
    >>> Version.parse("2.0.0-rc.1") < Version.parse("2.0.0")
    True
    >>> Version.parse("latest") is None
    True
    """

    numbers: tuple[int, int, int]
    release: bool
    prerelease: tuple[str, ...] = ()
    variant: str = field(default="", compare=False)
    precision: int = field(default=3, compare=False)
    text: str = field(default="", compare=False)

    @classmethod
    def parse(cls, tag: str) -> Version | None:
        match = _VERSION.match(tag)
        if match is None:
            return None
        parts = [int(p) for p in match.group("numbers").split(".")]
        precision = len(parts)
        numbers = [*parts, 0, 0, 0][:3]
        suffix = match.group("suffix") or ""
        if suffix and _PRERELEASE.match(suffix):
            pre = tuple(re.split(r"[.\-_]", suffix))
            return cls((numbers[0], numbers[1], numbers[2]), False, pre, "", precision, tag)
        return cls((numbers[0], numbers[1], numbers[2]), True, (), suffix, precision, tag)

    @property
    def is_prerelease(self) -> bool:
        return not self.release


def _parse_comparator(text: str) -> tuple[str, tuple[int, int, int], int]:
    match = _COMPARATOR.match(text)
    if match is None:
        raise RangeError(f"{text!r} is not a comparator such as '>=1.26', '<2', '^1.4', '~1.26.1' or '=1.27.2'")
    parts = [int(p) for p in match.group("version").lstrip("v").split(".")]
    major, minor, patch = [*parts, 0, 0, 0][:3]
    return match.group("op") or "=", (major, minor, patch), len(parts)


def _bounds(op: str, numbers: tuple[int, int, int], precision: int) -> list[tuple[str, tuple[int, int, int]]]:
    major, minor, patch = numbers
    if op == "^":
        if major > 0 or precision == 1:
            upper = (major + 1, 0, 0)
        elif minor > 0 or precision == 2:
            upper = (0, minor + 1, 0)
        else:
            upper = (0, 0, patch + 1)
        return [(">=", numbers), ("<", upper)]
    if op == "~":
        upper = (major + 1, 0, 0) if precision == 1 else (major, minor + 1, 0)
        return [(">=", numbers), ("<", upper)]
    if op in ("=", "==") and precision < 3:
        upper = (major + 1, 0, 0) if precision == 1 else (major, minor + 1, 0)
        return [(">=", numbers), ("<", upper)]
    return [("=" if op == "==" else op, numbers)]


@dataclass(frozen=True)
class VersionRange:
    """A conjunction of comparators.

    >>> r = VersionRange.parse(">=1.26 <1.28")
    >>> [r.contains(Version.parse(t)) for t in ("1.25.9", "1.26", "1.27.4", "1.28.0")]
    [False, True, True, False]
    """

    text: str
    bounds: tuple[tuple[str, tuple[int, int, int]], ...]

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        tokens = [t for t in re.split(r"[\s,]+", text.strip()) if t]
        merged: list[str] = []
        for token in tokens:  # ">= 1.2" written with a space
            if merged and merged[-1] in (">=", "<=", ">", "<", "=", "==", "^", "~"):
                merged[-1] += token
            else:
                merged.append(token)
        if not merged:
            raise RangeError("a version range must not be empty")
        bounds: list[tuple[str, tuple[int, int, int]]] = []
        for token in merged:
            bounds.extend(_bounds(*_parse_comparator(token)))
        return cls(text=text, bounds=tuple(bounds))

    def contains(self, version: Version | None) -> bool:
        if version is None:
            return False
        value = version.numbers
        checks = {
            ">=": lambda bound: value >= bound,
            ">": lambda bound: value > bound,
            "<=": lambda bound: value <= bound,
            "<": lambda bound: value < bound,
            "=": lambda bound: value == bound,
        }
        return all(checks[op](bound) for op, bound in self.bounds)
