"""The allowlist: the only way an image enters the mirror.

``parse_allowlist`` reads the YAML text, checks every rule and either returns an
:class:`Allowlist` or raises :class:`AllowlistError` carrying *every* problem of the file,
each with its line, its path and the rule it breaks::

    allowlist.yaml:12: images[3].tags[0]: '1.1' came from the number 1.10; quote it: "1.10"

Pure: works on text; reading the file is the caller's business.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hubmirror import yamldoc
from hubmirror.oci import KNOWN_PLATFORMS, normalise_platform
from hubmirror.references import TAG_RE, TAG_RULE, ImageReference, ReferenceError
from hubmirror.yamldoc import Path, format_path

MAX_BYTES = 1024 * 1024
MAX_ENTRIES = 10_000
MAX_TAGS_PER_ENTRY = 1_000
MAX_BUILD_COMMANDS = 100
MAX_BUILD_COMMAND_LENGTH = 4096
ECR_REPOSITORY_MAX = 256
#: Amazon ECR's repository name grammar.
ECR_REPOSITORY_RE = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
ALLOWED_INSTRUCTIONS = frozenset(
    {
        "RUN",
        "ENV",
        "LABEL",
        "VOLUME",
        "USER",
        "WORKDIR",
        "EXPOSE",
        "ENTRYPOINT",
        "CMD",
        "HEALTHCHECK",
        "STOPSIGNAL",
        "SHELL",
        "ARG",
    }
)
FORBIDDEN_INSTRUCTIONS = {
    "FROM": "the base image is the entry's source, pinned by digest; a second FROM would replace it",
    "COPY": "the build context holds only the Dockerfile; there is nothing to copy",
    "ADD": "ADD fetches content from outside the allowlist; use RUN with a checked download instead",
    "ONBUILD": "ONBUILD plants instructions in images built from the mirror",
    "MAINTAINER": "MAINTAINER is deprecated; use LABEL org.opencontainers.image.authors=...",
}
ENTRY_KEYS = ("source", "tags", "target", "platforms", "build_commands")
TOP_KEYS = ("images",)


@dataclass(frozen=True)
class Problem:
    """One broken rule: where (line, path) and why."""

    path: str
    line: int | None
    message: str

    def format(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        return f"{where}: {self.path}: {self.message}"


class AllowlistError(ValueError):
    """The allowlist breaks one or more rules; ``problems`` lists all of them.

    Examples
    --------
    >>> try:
    ...     parse_allowlist("images: []", source="a.yaml")
    ... except AllowlistError as exc:
    ...     print(exc)
    a.yaml:1: images: must not be empty; list at least one image
    """

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__("\n".join(p.format(source) for p in self.problems))

    def lines(self) -> list[str]:
        return [p.format(self.source) for p in self.problems]


@dataclass(frozen=True)
class ImageEntry:
    """One validated allowlist entry."""

    index: int
    line: int | None
    source: ImageReference
    tags: tuple[str, ...]
    target: str
    platforms: tuple[str, ...] | None
    build_commands: tuple[str, ...]


@dataclass(frozen=True)
class Allowlist:
    """A validated allowlist."""

    entries: tuple[ImageEntry, ...]


def parse_allowlist(text: str | bytes, *, source: str = "allowlist.yaml") -> Allowlist:
    """Parse and validate allowlist YAML text.

    Parameters
    ----------
    text
        The YAML document.
    source
        The file name used in messages.

    Raises
    ------
    AllowlistError
        With every problem of the document.

    Examples
    --------
    >>> allowlist = parse_allowlist('images:\\n  - source: nginx\\n    tags: ["1.27"]\\n')
    >>> entry = allowlist.entries[0]
    >>> str(entry.source), entry.tags, entry.target
    ('docker.io/library/nginx', ('1.27',), 'nginx')
    """
    size = len(text)
    if size > MAX_BYTES:
        raise AllowlistError(
            source, [Problem("(document)", None, f"the file is {size} bytes; the limit is {MAX_BYTES}")]
        )
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AllowlistError(
                source, [Problem("(document)", None, f"the file is not UTF-8 text: {exc.reason}")]
            ) from exc
    document = yamldoc.load(text)
    problems = [Problem(format_path(p.path), p.line, p.message) for p in document.problems]
    checker = _Checker(document, problems)
    entries = checker.check_document()
    if problems:
        raise AllowlistError(source, sorted(problems, key=lambda p: (p.line or 0, p.path)))
    return Allowlist(entries=tuple(entries))


class _Checker:
    def __init__(self, document: yamldoc.Document, problems: list[Problem]) -> None:
        self.doc = document
        self.problems = problems

    def fail(self, path: Path, message: str) -> None:
        self.problems.append(Problem(format_path(path), self.doc.line(path), message))

    def check_document(self) -> list[ImageEntry]:
        value = self.doc.value
        if self.doc.problems and value is None:
            return []
        if not isinstance(value, Mapping):
            self.fail((), "the allowlist must be a mapping with an 'images' list")
            return []
        self._unknown_keys((), value, TOP_KEYS)
        images = value.get("images")
        if "images" not in value:
            self.fail((), "'images' is required: the list of allowed images")
            return []
        if not isinstance(images, list):
            self.fail(("images",), f"must be a list of images, not {_kind(images)}")
            return []
        if not images:
            self.fail(("images",), "must not be empty; list at least one image")
            return []
        if len(images) > MAX_ENTRIES:
            self.fail(("images",), f"has {len(images)} entries; the limit is {MAX_ENTRIES}")
            return []
        entries = [e for n, raw in enumerate(images) if (e := self._entry(n, raw)) is not None]
        self._duplicates(entries)
        return entries

    def _unknown_keys(self, path: Path, mapping: Mapping[Any, Any], allowed: tuple[str, ...]) -> None:
        for key in mapping:
            if key not in allowed:
                hint = _closest(str(key), allowed)
                self.fail(
                    (*path, str(key)),
                    f"unknown key {key!r}"
                    + (f"; did you mean {hint!r}?" if hint else f"; allowed keys: {', '.join(allowed)}"),
                )

    def _entry(self, n: int, raw: Any) -> ImageEntry | None:
        path: Path = ("images", n)
        if not isinstance(raw, Mapping):
            self.fail(path, f"each image must be a mapping with 'source' and 'tags', not {_kind(raw)}")
            return None
        before = len(self.problems)
        self._unknown_keys(path, raw, ENTRY_KEYS)
        source = self._source(path, raw)
        tags = self._tags(path, raw)
        target = self._target(path, raw, source)
        platforms = self._platforms(path, raw)
        commands = self._build_commands(path, raw)
        if len(self.problems) > before or source is None or target is None or tags is None:
            return None
        return ImageEntry(
            index=n,
            line=self.doc.line(path),
            source=source,
            tags=tuple(tags),
            target=target,
            platforms=platforms,
            build_commands=commands,
        )

    def _string(self, path: Path, value: Any, what: str) -> str | None:
        if isinstance(value, str):
            return value
        if isinstance(value, bool) or value is None:
            self.fail(path, f"{what} must be a string, not {_kind(value)}")
        elif isinstance(value, int | float):
            raw = self.doc.raw.get(path, str(value))
            self.fail(path, f'{str(value)!r} came from the number {raw}; quote it: "{raw}"')
        else:
            self.fail(path, f"{what} must be a string, not {_kind(value)}")
        return None

    def _source(self, path: Path, raw: Mapping[str, Any]) -> ImageReference | None:
        if "source" not in raw:
            self.fail(path, "'source' is required: the upstream image, such as 'nginx' or 'ghcr.io/org/app'")
            return None
        text = self._string((*path, "source"), raw["source"], "source")
        if text is None:
            return None
        try:
            ref = ImageReference.parse(text)
        except ReferenceError as exc:
            self.fail((*path, "source"), f"{text!r} is not a valid image name: {exc}")
            return None
        if ref.tag or ref.digest:
            self.fail(
                (*path, "source"),
                f"{text!r} carries a tag or digest; write the image name alone and list tags under 'tags'",
            )
            return None
        return ref

    def _list(self, path: Path, raw: Mapping[str, Any], key: str, limit: int) -> list[Any] | None:
        value = raw[key]
        if not isinstance(value, list):
            self.fail((*path, key), f"must be a list, not {_kind(value)}")
            return None
        if not value:
            self.fail((*path, key), "must not be empty; leave the key out instead")
            return None
        if len(value) > limit:
            self.fail((*path, key), f"has {len(value)} items; the limit is {limit}")
            return None
        return value

    def _tags(self, path: Path, raw: Mapping[str, Any]) -> list[str] | None:
        if "tags" not in raw:
            self.fail(path, "'tags' is required: the list of tags to mirror, such as [\"1.27\"]")
            return None
        values = self._list(path, raw, "tags", MAX_TAGS_PER_ENTRY)
        if values is None:
            return None
        tags: list[str] = []
        for n, value in enumerate(values):
            tag_path = (*path, "tags", n)
            tag = self._string(tag_path, value, "a tag")
            if tag is None:
                continue
            if not TAG_RE.match(tag):
                self.fail(tag_path, f"{tag!r} is not a valid tag: {TAG_RULE}")
            elif tag in tags:
                self.fail(tag_path, f"tag {tag!r} is listed twice")
            else:
                tags.append(tag)
        return tags

    def _target(self, path: Path, raw: Mapping[str, Any], source: ImageReference | None) -> str | None:
        if "target" in raw:
            target = self._string((*path, "target"), raw["target"], "target")
            if target is None:
                return None
        elif source is not None:
            target = source.repository.removeprefix("library/") if source.registry == "docker.io" else source.repository
        else:
            return None
        if not ECR_REPOSITORY_RE.match(target):
            self.fail(
                (*path, "target"),
                f"{target!r} is not a valid ECR repository name: lower-case letters and digits, "
                "separated by '.', '_' or '-', in '/'-separated parts",
            )
            return None
        if len(target) > ECR_REPOSITORY_MAX - 64:
            self.fail(
                (*path, "target"),
                f"{target!r} is too long; at most {ECR_REPOSITORY_MAX - 64} characters leave room for the prefix",
            )
            return None
        return target

    def _platforms(self, path: Path, raw: Mapping[str, Any]) -> tuple[str, ...] | None:
        if "platforms" not in raw:
            return None
        values = self._list(path, raw, "platforms", 32)
        if values is None:
            return None
        platforms: list[str] = []
        for n, value in enumerate(values):
            item_path = (*path, "platforms", n)
            text = self._string(item_path, value, "a platform")
            if text is None:
                continue
            if text not in KNOWN_PLATFORMS:
                hint = _closest(text, sorted(KNOWN_PLATFORMS))
                self.fail(
                    item_path,
                    f"{text!r} is not a known platform (os/arch[/variant])"
                    + (f"; did you mean {hint!r}?" if hint else ""),
                )
                continue
            normal = normalise_platform(text)
            if normal in platforms:
                self.fail(item_path, f"platform {text!r} is listed twice")
                continue
            platforms.append(normal)
        return tuple(platforms)

    def _build_commands(self, path: Path, raw: Mapping[str, Any]) -> tuple[str, ...]:
        if "build_commands" not in raw:
            return ()
        values = self._list(path, raw, "build_commands", MAX_BUILD_COMMANDS)
        if values is None:
            return ()
        commands: list[str] = []
        for n, value in enumerate(values):
            item_path = (*path, "build_commands", n)
            text = self._string(item_path, value, "a build command")
            if text is None:
                continue
            problem = build_command_problem(text)
            if problem:
                self.fail(item_path, problem)
            else:
                commands.append(text.strip())
        return tuple(commands)

    def _duplicates(self, entries: list[ImageEntry]) -> None:
        seen: dict[tuple[str, str], int] = {}
        for entry in entries:
            for n, tag in enumerate(entry.tags):
                key = (entry.target, tag)
                if key in seen:
                    self.fail(
                        ("images", entry.index, "tags", n),
                        f"target {entry.target}:{tag} is already produced by images[{seen[key]}]; "
                        "two entries may not write the same repository and tag",
                    )
                else:
                    seen[key] = entry.index


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def build_command_problem(text: str) -> str | None:
    """Why ``text`` is not an acceptable extra Dockerfile line, or None if it is.

    >>> build_command_problem("RUN mkdir /etc/vault") is None
    True
    >>> build_command_problem("COPY . /")
    'COPY is not allowed: the build context holds only the Dockerfile; there is nothing to copy'
    """
    if "\n" in text or "\r" in text:
        return "a build command is one line: a newline or carriage return could smuggle in a second instruction"
    if "\x00" in text:
        return "a build command must not contain a NUL character"
    if _CONTROL.search(text):
        return "a build command must not contain control characters"
    if len(text) > MAX_BUILD_COMMAND_LENGTH:
        return f"a build command is at most {MAX_BUILD_COMMAND_LENGTH} characters"
    stripped = text.strip()
    if not stripped:
        return "a build command must not be empty"
    if stripped.endswith("\\"):
        return "a build command must not end with '\\' (a line continuation joins it to the next line)"
    if stripped.startswith("#"):
        return "a comment is not an instruction; remove it"
    keyword, _, arguments = stripped.partition(" ")
    instruction = keyword.upper()
    if instruction in FORBIDDEN_INSTRUCTIONS:
        return f"{instruction} is not allowed: {FORBIDDEN_INSTRUCTIONS[instruction]}"
    if instruction not in ALLOWED_INSTRUCTIONS:
        return f"{keyword!r} is not an allowed instruction; use one of {', '.join(sorted(ALLOWED_INSTRUCTIONS))}"
    if not arguments.strip():
        return f"{instruction} needs arguments"
    if "<<" in arguments and re.search(r"<<-?\s*['\"]?[A-Za-z_]", arguments):
        return "heredocs ('<<EOF') span several lines and are not allowed in a one-line build command"
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {
        bool: "true/false",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)


def _closest(word: str, options: tuple[str, ...] | list[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return matches[0] if matches else None
