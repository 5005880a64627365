"""Work items: one (upstream image, tag) -> (target repository, tag) with its recipe.

Also the execution input a person types in the console (``{"only": [...], "force": true,
"dry_run": true}``) and the batches a run checks items in. The allowlist becomes items in
:mod:`hubmirror.allowlist.expansion`.

Pure: no I/O, no environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import zip_longest
from typing import Any

from hubmirror.domain.documents import ItemDocument
from hubmirror.domain.references import ECR_REPOSITORY_MAX, ECR_REPOSITORY_RE, ImageReference


class Kind(StrEnum):
    """What a job does with an item: copy it as it is, or build it with extra Dockerfile lines."""

    COPY = "copy"
    BUILD = "build"


class InputError(ValueError):
    """The execution input is not what hubmirror accepts; the message says why."""


@dataclass(frozen=True)
class WorkItem:
    """One tag to keep in sync.

    Examples
    --------
    >>> item = WorkItem("docker.io/library/nginx", "1.27", target_repository="mirror/nginx", target_tag="1.27")
    >>> item.key, item.kind, str(item.upstream)
    ('docker.io/library/nginx:1.27', <Kind.COPY: 'copy'>, 'docker.io/library/nginx:1.27')
    """

    source: str
    tag: str
    target_repository: str
    target_tag: str
    platforms: tuple[str, ...] | None = None
    build_commands: tuple[str, ...] = ()
    entry: int = 0
    pinned: str | None = None
    #: copy the image's cosign signatures, attestations and SBOM with it
    signatures: bool = True
    #: ``(source, value)`` of the cosign public key a signature must verify with, such as
    #: ``("secret", "hubmirror/cosign/acme")``; None: no signature gate
    verify: tuple[str, str] | None = None
    #: RUN lines reach the network (``build_network: true``); by default they have none
    build_network: bool = False

    @property
    def key(self) -> str:
        """A stable identifier: the upstream reference with its tag."""
        return f"{self.source}:{self.tag}"

    @property
    def kind(self) -> Kind:
        """``build`` when the item adds lines to the image, else ``copy``."""
        return Kind.BUILD if self.build_commands else Kind.COPY

    @property
    def upstream(self) -> ImageReference:
        return ImageReference.parse(self.source).with_tag(self.tag)

    @property
    def target(self) -> str:
        return f"{self.target_repository}:{self.target_tag}"

    def to_dict(self) -> ItemDocument:
        return ItemDocument(
            source=self.source,
            tag=self.tag,
            target_repository=self.target_repository,
            target_tag=self.target_tag,
            platforms=list(self.platforms) if self.platforms is not None else None,
            build_commands=list(self.build_commands),
            entry=self.entry,
            pinned=self.pinned,
            signatures=self.signatures,
            verify=list(self.verify) if self.verify else None,
            build_network=self.build_network,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkItem:
        platforms = data.get("platforms")
        return cls(
            source=str(data["source"]),
            tag=str(data["tag"]),
            target_repository=str(data["target_repository"]),
            target_tag=str(data["target_tag"]),
            platforms=tuple(platforms) if platforms is not None else None,
            build_commands=tuple(data.get("build_commands") or ()),
            entry=int(data.get("entry", 0)),
            pinned=data.get("pinned"),
            signatures=bool(data.get("signatures", True)),
            verify=(str(verify[0]), str(verify[1])) if (verify := data.get("verify")) else None,
            build_network=data.get("build_network") is True,
        )


@dataclass(frozen=True)
class RunOptions:
    """What a person asked for when starting an execution."""

    only: tuple[str, ...] = ()
    force: bool = False
    dry_run: bool = False
    #: the allowlist version whose arrival started this run (the S3 event's ``version-id``)
    allowlist_version: str | None = None

    @classmethod
    def parse(cls, data: Any) -> RunOptions:
        """Validate the execution input; a refusal is short, whatever the input's size.

        ``Comment`` (a string) is accepted and ignored: the Step Functions console fills a
        new execution's input with one.

        >>> RunOptions.parse({"only": ["hashicorp/vault"], "dry_run": True})
        RunOptions(only=('hashicorp/vault',), force=False, dry_run=True, allowlist_version=None)
        >>> RunOptions.parse({"foo": 1})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        hubmirror.domain.items.InputError: unknown execution input key 'foo'; accepted: only, force, dry_run, ...
        """
        if not isinstance(data, Mapping):
            raise InputError(
                f'the execution input must be a JSON object such as {{}} or {{"only": ["nginx"]}}, '
                f"not {_json_kind(data)}"
            )
        allowed = ("only", "force", "dry_run", "allowlist_version")
        unknown = [key for key in data if key not in allowed and not (key == "Comment" and isinstance(data[key], str))]
        if unknown:
            keys = "key" if len(unknown) == 1 else "keys"
            raise InputError(f"unknown execution input {keys} {few(unknown)}; accepted: {', '.join(allowed)}")
        only = data.get("only", [])
        if isinstance(only, str):
            only = [only]
        if not isinstance(only, list) or not all(isinstance(o, str) and o for o in only):
            raise InputError("'only' must be a list of image names, such as [\"hashicorp/vault\"]")
        if "only" in data and not only:
            raise InputError("'only' is empty: name at least one image, or leave 'only' out to sync everything")
        if len(only) > ONLY_MAX:
            raise InputError(f"'only' names {len(only)} images, more than {ONLY_MAX}; leave it out to sync everything")
        for flag in ("force", "dry_run"):
            if not isinstance(data.get(flag, False), bool):
                raise InputError(f"{flag!r} must be true or false, not {_json_kind(data[flag])}")
        version = data.get("allowlist_version")
        if version is not None and not (isinstance(version, str) and _VERSION.fullmatch(version)):
            raise InputError(
                "'allowlist_version' must be an S3 version id (letters, digits, '.', '_', '-'), "
                "as the new-allowlist rule sends it"
            )
        return cls(
            only=tuple(only),
            force=bool(data.get("force", False)),
            dry_run=bool(data.get("dry_run", False)),
            allowlist_version=version,
        )


#: An S3 object version id (``null`` in a bucket that never had versioning).
_VERSION = re.compile(r"[A-Za-z0-9._-]{1,1024}")
#: The most names an execution's ``only`` may list: more is a whole-allowlist run in disguise.
ONLY_MAX = 1000
#: How many offending values a refusal quotes, and how much of each.
FEW = 5
FEW_CHARS = 80


def few(values: Sequence[Any]) -> str:
    """The first few values, quoted and cut short, and how many more: a bounded message.

    >>> few(["a", "b"])
    "'a', 'b'"
    >>> few([str(n) for n in range(7)])
    "'0', '1', '2', '3', '4' and 2 more"
    """
    shown = []
    for value in values[:FEW]:
        text = repr(value)
        shown.append(text if len(text) <= FEW_CHARS else text[: FEW_CHARS - 4] + "...'")
    more = len(values) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")


def _json_kind(value: Any) -> str:
    """What a JSON value is, in words (``null``, a list, a number, ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else type(value).__name__


@dataclass(frozen=True)
class Batch:
    """A slice of the run's items, checked by one Lambda invocation."""

    id: str
    items: tuple[WorkItem, ...] = field(default_factory=tuple)


def target_repository(prefix: str, target: str) -> str:
    """The full target repository name under ``prefix``.

    >>> target_repository("mirror", "nginx")
    'mirror/nginx'
    >>> target_repository("", "nginx")
    'nginx'
    """
    name = f"{prefix.strip('/')}/{target}" if prefix.strip("/") else target
    if not ECR_REPOSITORY_RE.match(name) or len(name) > ECR_REPOSITORY_MAX:
        raise InputError(f"{name!r} is not a valid ECR repository name (check the target prefix)")
    return name


def batches(items: Sequence[WorkItem], size: int, *, copy_size: int | None = None) -> list[Batch]:
    """Split items into batches of at most ``size``, ids zero-padded in order.

    With ``copy_size``, the items copied as they are go in batches of their own, of at most
    ``copy_size``, apart from the items built: a job copies several images at once, all paced
    by the account's ``PutImage`` rate, but builds one image after another. Each kind keeps the
    allowlist's order, and their batches alternate, so that when there are more batches than
    run at once, neither kind waits for all of the other.

    >>> [b.id for b in batches([WorkItem("a", str(n), "r", str(n)) for n in range(5)], 2)]
    ['00000', '00001', '00002']
    >>> built = WorkItem("b", "1", "r", "b1", build_commands=("VOLUME /data",))
    >>> copied = [WorkItem("a", str(n), "r", str(n)) for n in range(3)]
    >>> [[i.target_tag for i in b.items] for b in batches([built, *copied], 2, copy_size=4)]
    [['0', '1', '2'], ['b1']]
    """
    if size < 1 or (copy_size is not None and copy_size < 1):
        raise ValueError("batch size must be at least 1")
    if copy_size is None:
        chunks = _chunked(items, size)
    else:
        copies = _chunked([i for i in items if i.kind == Kind.COPY], copy_size)
        builds = _chunked([i for i in items if i.kind != Kind.COPY], size)
        chunks = [chunk for pair in zip_longest(copies, builds) for chunk in pair if chunk is not None]
    return [Batch(id=f"{n:05d}", items=tuple(chunk)) for n, chunk in enumerate(chunks)]


def _chunked(items: Sequence[WorkItem], size: int) -> list[Sequence[WorkItem]]:
    return [items[start : start + size] for start in range(0, len(items), size)]
