"""Deciding what an item needs, from what upstream and the target hold now.

Truth lives in the target registry: an item is up to date when the target tag holds the
upstream digest (a verbatim copy) or carries the recipe hash of what would be built now
(a derived image). Nothing else is remembered between runs but the refusals a job keeps
(:func:`hubmirror.domain.keys.refusal`).

Pure: no I/O, no environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hubmirror.domain.documents import OutcomeRecord
from hubmirror.domain.items import Kind, WorkItem
from hubmirror.domain.oci import ANNOTATION_RECIPE, INDEX_MEDIA_TYPES, canonical_json, sha256_digest

#: Bumped whenever the copy/build script changes what it produces for the same recipe.
BUILDER_VERSION = "1"


class Action(StrEnum):
    """What an item needs: nothing, a copy or a build."""

    UNCHANGED = "unchanged"
    COPY = "copy"
    BUILD = "build"


class OutcomeName(StrEnum):
    """How an item's run ended, in the order reports list them."""

    FAILED = "failed"
    DEFERRED = "deferred"
    BUILT = "built"
    COPIED = "copied"
    WOULD_BUILD = "would_build"
    WOULD_COPY = "would_copy"
    UNCHANGED = "unchanged"


#: Every outcome, in the order reports list them.
OUTCOMES = tuple(OutcomeName)


@dataclass(frozen=True)
class TargetState:
    """What the target tag holds: its digest, media type and annotations (None: no tag)."""

    digest: str
    media_type: str
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """``unchanged``, ``copy`` or ``build``, and why."""

    action: Action
    reason: str
    recipe: str | None = None

    @property
    def needs_work(self) -> bool:
        return self.action in (Action.COPY, Action.BUILD)


def recipe_hash(item: WorkItem, upstream_digest: str) -> str:
    """The hash of everything that shapes a derived image.

    Upstream digest, build lines, platforms, the lines' network and the builder's version:
    a change of any of them changes the hash, so exactly the affected items are rebuilt.
    (The network enters the recipe only when it is granted, so recipes made before
    ``build_network`` existed stay the same.)

    >>> item = WorkItem("docker.io/library/nginx", "1", "m/nginx", "1", build_commands=("RUN true",))
    >>> recipe_hash(item, "sha256:" + "0" * 64) != recipe_hash(item, "sha256:" + "1" * 64)
    True
    """
    recipe: dict[str, object] = {
        "builder": BUILDER_VERSION,
        "kind": item.kind,
        "source": item.source,
        "digest": upstream_digest,
        "platforms": sorted(item.platforms) if item.platforms is not None else None,
        "lines": [" ".join(line.split()) for line in item.build_commands],
    }
    if item.build_network:
        recipe["network"] = True
    return sha256_digest(canonical_json(recipe))


def is_derived(item: WorkItem) -> bool:
    """Whether the target will not be byte-identical to upstream (built, or platform-filtered)."""
    return item.kind == Kind.BUILD or item.platforms is not None


def decide(item: WorkItem, upstream_digest: str, target: TargetState | None, *, force: bool = False) -> Decision:
    """What ``item`` needs, given the upstream digest and the target tag's state.

    Examples
    --------
    >>> item = WorkItem("docker.io/library/nginx", "1.27", "mirror/nginx", "1.27")
    >>> digest = "sha256:" + "a" * 64
    >>> decide(item, digest, TargetState(digest, "application/vnd.oci.image.index.v1+json")).action
    <Action.UNCHANGED: 'unchanged'>
    >>> decide(item, digest, None).reason
    'mirror/nginx:1.27 does not exist in the target'
    """
    recipe = recipe_hash(item, upstream_digest) if is_derived(item) else None
    action = Action(item.kind)
    if force:
        return Decision(action, "forced by the execution input", recipe)
    if target is None:
        return Decision(action, f"{item.target} does not exist in the target", recipe)
    if recipe is None:
        if target.digest == upstream_digest:
            return Decision(Action.UNCHANGED, f"target holds upstream {short(upstream_digest)}")
        return Decision(action, f"upstream moved to {short(upstream_digest)}; target holds {short(target.digest)}")
    if target.annotations.get(ANNOTATION_RECIPE) == recipe:
        return Decision(
            Action.UNCHANGED, f"target was made from upstream {short(upstream_digest)} with this recipe", recipe
        )
    if item.kind == Kind.COPY and target.digest == upstream_digest and target.media_type not in INDEX_MEDIA_TYPES:
        return Decision(Action.UNCHANGED, f"target holds upstream {short(upstream_digest)}", recipe)
    if ANNOTATION_RECIPE not in target.annotations:
        return Decision(action, f"target {short(target.digest)} was not made by hubmirror for this recipe", recipe)
    return Decision(action, f"upstream {short(upstream_digest)} or the recipe changed", recipe)


def short(digest: str | None) -> str:
    """``sha256:0123456789ab`` — enough of a digest for a person to compare."""
    if not digest:
        return "(none)"
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}:{hexpart[:12]}"


@dataclass(frozen=True)
class Outcome:
    """What happened to one item in a run: exactly one per item ends in the report."""

    key: str
    outcome: OutcomeName
    reason: str
    target: str
    upstream_digest: str | None = None
    target_digest: str | None = None
    kind: Kind = Kind.COPY
    retry_after: str | None = None

    def to_dict(self) -> OutcomeRecord:
        record = OutcomeRecord(
            key=self.key, outcome=str(self.outcome), reason=self.reason, target=self.target, kind=str(self.kind)
        )
        if self.upstream_digest is not None:
            record["upstream_digest"] = self.upstream_digest
        if self.target_digest is not None:
            record["target_digest"] = self.target_digest
        if self.retry_after is not None:
            record["retry_after"] = self.retry_after
        return record

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        """An outcome as :meth:`to_dict` wrote it (a report of an earlier run included)."""
        return cls(
            key=str(data["key"]),
            outcome=OutcomeName(str(data["outcome"])),
            reason=str(data.get("reason", "")),
            target=str(data.get("target", "")),
            upstream_digest=data.get("upstream_digest"),
            target_digest=data.get("target_digest"),
            kind=Kind(str(data.get("kind", Kind.COPY))),
            retry_after=data.get("retry_after"),
        )

    @classmethod
    def for_item(cls, item: WorkItem, outcome: OutcomeName, reason: str, **extra: Any) -> Outcome:
        return cls(key=item.key, outcome=outcome, reason=reason, target=item.target, kind=item.kind, **extra)
