"""Rendering the Dockerfile and build context of a derived image.

The Dockerfile starts ``FROM <upstream>@<digest>``: the build uses exactly the image the
check saw, even if the tag moves meanwhile. The context is a deterministic gzip'd tar
(``Dockerfile`` and ``hubmirror.json``), addressed by its own digest.

Pure: no I/O, no environment.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
from dataclasses import dataclass
from typing import Any

from hubmirror.domain.items import WorkItem
from hubmirror.domain.oci import ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME, ANNOTATION_RECIPE, sha256_digest
from hubmirror.domain.references import ImageReference

#: The longest extra Dockerfile line accepted.
MAX_BUILD_COMMAND_LENGTH = 4096
ALLOWED_INSTRUCTIONS = (
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
)
FORBIDDEN_INSTRUCTIONS = {
    "FROM": "the base image is the entry's source, pinned by digest; a second FROM would replace it",
    "COPY": "the build context holds only the Dockerfile; there is nothing to copy",
    "ADD": "ADD fetches content from outside the allowlist; use RUN with a checked download instead",
    "ONBUILD": "ONBUILD plants instructions in images built from the mirror",
    "MAINTAINER": "MAINTAINER is deprecated; use LABEL org.opencontainers.image.authors=...",
}

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
    if instruction in _NAME_VALUE_INSTRUCTIONS:
        return _name_value_problem(instruction, arguments.strip())
    return None


#: Commands of a RUN line that usually reach the network: a download tool, or a package
#: manager, language installer or VCS doing one of the things that fetch.
_FETCHES = re.compile(
    r"(?:^|[\s;&|(`'\"/])(?:"
    r"(?P<download>curl|wget)"
    r"|(?P<tool>apt-get|apt|aptitude|apk|yum|dnf|microdnf|zypper|pip3?|pipx|uv|npm|yarn|pnpm|gem|git|go|cargo|composer)"
    r"\s+(?:-\S+\s+)*(?:install|add|update|upgrade|dist-upgrade|sync|clone|fetch|pull|get|ci)"
    r")(?=$|[\s;&|)`'\"])"
)


def network_tool(line: str) -> str | None:
    """The tool of a RUN line that usually needs the network (``apt-get install``), or None.

    Advice for a reviewer, not a rule: the line may work offline, or fetch in a way this
    does not see.

    >>> network_tool("RUN apt-get update && apt-get install -y curl")
    'apt-get update'
    >>> network_tool("RUN curl -fsSL https://example.com/x -o /x")
    'curl'
    >>> network_tool("RUN mkdir -p /etc/vault") is None, network_tool("ENV CURL=1") is None
    (True, True)
    """
    keyword, _, arguments = line.strip().partition(" ")
    if keyword.upper() != "RUN":
        return None
    if arguments.lstrip().startswith("["):  # exec form: RUN ["apt-get", "install", "x"]
        arguments = re.sub(r'[\[\]",]', " ", arguments)
    found = _FETCHES.search(arguments)
    if found is None:
        return None
    return found.group("download") or f"{found.group('tool')} {found.group(0).split()[-1]}"


#: Instructions whose arguments are ``KEY=VALUE`` pairs, or the legacy ``KEY VALUE``.
_NAME_VALUE_INSTRUCTIONS = ("ENV", "LABEL")
#: The release whose stricter rule refuses ``ENV``/``LABEL`` lines without a value.
NAME_VALUE_RULE_SINCE = "0.2.0"


def name_value_since(text: str) -> str | None:
    """The release that made ``text`` a refused line, when only the ``KEY=VALUE`` rule refuses it.

    >>> name_value_since("ENV FOO"), name_value_since("FROM evil")
    ('0.2.0', None)
    """
    keyword, _, arguments = text.strip().partition(" ")
    if keyword.upper() not in _NAME_VALUE_INSTRUCTIONS or not arguments.strip():
        return None
    problem = build_command_problem(text)
    stricter = problem is not None and problem == _name_value_problem(keyword.upper(), arguments.strip())
    return NAME_VALUE_RULE_SINCE if stricter else None


def _words(text: str) -> list[str] | None:
    """``text`` split on blanks outside quotes, as the Dockerfile parser splits it; None if a quote is open.

    >>> _words('A="hello world" B=2')
    ['A="hello world"', 'B=2']
    """
    words: list[str] = []
    word, quote, escaped, started = "", "", False, False
    for char in text:
        if escaped:
            word, escaped = word + char, False
        elif char == "\\" and quote != "'":
            word, escaped, started = word + char, True, True
        elif quote:
            word += char
            quote = "" if char == quote else quote
        elif char in "'\"":
            word, quote, started = word + char, char, True
        elif char.isspace():
            if started:
                words.append(word)
            word, started = "", False
        else:
            word, started = word + char, True
    if quote:
        return None
    if started:
        words.append(word)
    return words


def _name_value_problem(instruction: str, arguments: str) -> str | None:
    """Why ENV or LABEL arguments would not parse (``docker build`` refuses them), or None.

    >>> _name_value_problem("ENV", "FOO")
    'ENV needs a value: write ENV FOO=value'
    >>> _name_value_problem("ENV", "FOO bar baz") is None
    True
    """
    words = _words(arguments)
    if words is None:
        return f"{instruction} {arguments} has an unclosed quote"
    if "=" not in words[0]:
        if len(words) < 2:
            return f"{instruction} needs a value: write {instruction} {words[0]}=value"
        return None
    for word in words:
        if "=" not in word:
            return f"{instruction} takes KEY=VALUE pairs; {word!r} has no '='"
        if word.startswith("="):
            return f"{instruction} needs a name before '=' (in {word!r})"
    return None


class RenderError(ValueError):
    """A build line failed the allowlist rules at render time (defence in depth)."""


@dataclass(frozen=True)
class BuildContext:
    """A rendered build context: its bytes, digest and the pieces it was made of."""

    dockerfile: str
    metadata: dict[str, Any]
    archive: bytes

    @property
    def digest(self) -> str:
        return sha256_digest(self.archive)


def render_dockerfile(item: WorkItem, upstream_digest: str) -> str:
    """The Dockerfile for ``item``, pinned to ``upstream_digest``.

    >>> lines = ("RUN mkdir /etc/vault",)
    >>> item = WorkItem("docker.io/hashicorp/vault", "1.14", "m/vault", "1.14", build_commands=lines)
    >>> print(render_dockerfile(item, "sha256:" + "0" * 64), end="")
    FROM docker.io/hashicorp/vault@sha256:0000000000000000000000000000000000000000000000000000000000000000
    RUN mkdir /etc/vault
    """
    base = ImageReference.parse(item.source).with_digest(upstream_digest)
    lines = [f"FROM {base}"]
    for line in item.build_commands:
        problem = build_command_problem(line)
        if problem:
            raise RenderError(f"{item.key}: build line {line!r}: {problem}")
        lines.append(line)
    return "\n".join(lines) + "\n"


def image_annotations(item: WorkItem, upstream_digest: str, recipe: str) -> dict[str, str]:
    """The annotations every derived image carries (OCI base image, hubmirror recipe)."""
    return {
        ANNOTATION_BASE_NAME: str(item.upstream),
        ANNOTATION_BASE_DIGEST: upstream_digest,
        ANNOTATION_RECIPE: recipe,
    }


def render_context(item: WorkItem, upstream_digest: str, recipe: str) -> BuildContext:
    """The build context of ``item`` as a deterministic archive."""
    dockerfile = render_dockerfile(item, upstream_digest)
    metadata = {
        "base": str(ImageReference.parse(item.source).with_digest(upstream_digest)),
        "platforms": list(item.platforms) if item.platforms is not None else None,
        "annotations": image_annotations(item, upstream_digest, recipe),
        # what the RUN lines may reach: "none" unless the entry sets build_network: true
        "network": "host" if item.build_network else "none",
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, text in (
            ("Dockerfile", dockerfile),
            ("hubmirror.json", json.dumps(metadata, sort_keys=True, indent=2)),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    archive = gzip.compress(raw.getvalue(), mtime=0)
    return BuildContext(dockerfile=dockerfile, metadata=metadata, archive=archive)
