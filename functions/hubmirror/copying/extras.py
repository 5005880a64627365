"""What goes beside an image in the target: its cosign signatures, attestations and SBOM (the
tag schema, ``sha256-<hex>.sig|.att|.sbom``) and its OCI 1.1 referrers, as options of the copy
(as regclient's ``ImageWithDigestTags`` and ``ImageWithReferrers``).

None of them ever costs the image: :func:`copy_extras` turns every failure to find or copy
one (a refused manifest, a 4xx or 5xx from the referrers API, a malformed referrers index, a
budget that would cross the floor) into a note for the report and a name in ``pending``, and
the job marks the image so the next run tries again (:func:`hubmirror.domain.keys.extras`).
Every pull is reserved first (:func:`hubmirror.copying.pulls.reserve_pulls`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hubmirror.adapters.registry.client import RegistryClient
from hubmirror.copying.pulls import DeferredError, reserve_pulls
from hubmirror.copying.transfer import Transfer
from hubmirror.domain.items import WorkItem
from hubmirror.domain.oci import (
    INDEX_MEDIA_TYPES,
    OCI_INDEX,
    cosign_tags,
    referrers_tag,
    select_platforms,
    sha256_digest,
)
from hubmirror.domain.ratelimit import PullBudget
from hubmirror.domain.registry.errors import NotFoundError, RegistryError
from hubmirror.domain.registry.model import ManifestHead

#: The names a note and ``pending`` give each kind of extra.
SIGNATURES = "cosign signatures"
REFERRERS = "OCI referrers"


def target_holds(transfer: Transfer, repository: str, reference: str, digest: str) -> bool:
    """Whether the target's ``reference`` is ``digest`` already (a HEAD; ECR does not count it)."""
    try:
        return transfer.target.head_manifest(repository, reference).digest == digest
    except NotFoundError:
        return False


def copy_signatures(
    item: WorkItem,
    digest: str,
    *,
    transfer: Transfer,
    upstream: RegistryClient,
    budget: PullBudget | None,
    deadline: float | None,
    platform_digests: Sequence[str] = (),
    index_copied: bool = True,
) -> str:
    """Copy the cosign signature, attestations and SBOM of ``digest`` (the tag schema) into the
    target beside the image, byte for byte; returns what the report says of them.

    Looking costs a HEAD (free on Docker Hub) for the signature of ``digest``. Only an image
    signed upstream is looked at further: for its other two artifacts, and for the signature
    of each of ``platform_digests`` (the manifests of an index, as ``cosign sign --recursive``
    signs them). Each artifact the target lacks costs a pull, reserved first. With ``index_copied``
    false (the platforms were selected, so the target's index is hubmirror's own), only the
    platform manifests' signatures can hold there, and only they are copied.
    """
    repository = item.upstream.repository
    signature, *others = cosign_tags(digest)
    try:
        found = upstream.head_manifest(repository, signature)
    except NotFoundError:
        return "no cosign signature upstream"

    def copy(tag: str, head: ManifestHead) -> None:
        if target_holds(transfer, item.target_repository, tag, head.digest):
            return  # already there (a force run, a tag restored): no pull for it
        reserve_pulls(budget, item, 1, head.ratelimit)
        transfer.copy(upstream, repository, head.digest, item.target_repository, tag, deadline=deadline)

    def copy_if_there(tag: str) -> bool:
        try:
            head = upstream.head_manifest(repository, tag)
        except NotFoundError:
            return False
        copy(tag, head)
        return True

    said = []
    if index_copied:
        copy(signature, found)
        copied = ["sig", *(tag.rsplit(".", 1)[1] for tag in others if copy_if_there(tag))]
        said.append(f"cosign {', '.join(copied)} copied")
    else:
        said.append("the index written for the selected platforms is hubmirror's own, unsigned")
    if platform_digests:
        signed = sum(copy_if_there(cosign_tags(child)[0]) for child in platform_digests)
        said.append(f"signatures of {signed} of {len(platform_digests)} platform manifests copied")
    return "; ".join(said)


def find_referrers(
    item: WorkItem, digest: str, *, upstream: RegistryClient, budget: PullBudget | None
) -> list[dict[str, Any]]:
    """The descriptors of the manifests that refer to ``digest`` upstream (OCI 1.1).

    The referrers API first (one request, not a pull); where the registry has none, the
    referrers tag schema: a HEAD (free) of ``sha256-<hex>``, and only if it is there a GET
    (a pull) of the index it holds. A registry that answers that tag with the image itself
    (as some without the API do, oras-project/oras#2148) has no referrers.
    """
    repository = item.upstream.repository
    listed = upstream.referrers(repository, digest)
    if listed is not None:
        return listed
    tag = referrers_tag(digest)
    try:
        head = upstream.head_manifest(repository, tag)
    except NotFoundError:
        return []
    if head.media_type != OCI_INDEX or head.digest == digest:
        return []
    reserve_pulls(budget, item, 1, head.ratelimit)
    manifests = upstream.get_manifest(repository, tag).document().get("manifests") or []
    return [d for d in manifests if isinstance(d, dict) and isinstance(d.get("digest"), str)]


def copy_referrers(
    item: WorkItem,
    digest: str,
    *,
    transfer: Transfer,
    upstream: RegistryClient,
    budget: PullBudget | None,
    deadline: float | None,
) -> str | None:
    """Copy the OCI 1.1 referrers of ``digest`` (signatures, SBOMs, attestations that name it as
    their ``subject``) into the target by digest, byte for byte; returns what the report says
    of them (None when there are none).

    A target that refuses a manifest with a ``subject`` (ECR has answered 405,
    aws/containers-roadmap#2783) gets it without its ``subject``, layers and config
    untouched, listed in the referrers tag schema's index ``sha256-<hex>``, where clients
    without the referrers API look.
    """
    found = find_referrers(item, digest, upstream=upstream, budget=budget)
    if not found:
        return None
    repository, target = item.upstream.repository, transfer.target
    copied, rewritten = 0, []
    for descriptor in found:
        if target_holds(transfer, item.target_repository, descriptor["digest"], descriptor["digest"]):
            copied += 1
            continue
        reserve_pulls(budget, item, 1, None)
        try:
            transfer.copy(upstream, repository, descriptor["digest"], item.target_repository, None, deadline=deadline)
            copied += 1
            continue
        except RegistryError as exc:
            if exc.status != 405:
                raise
        reserve_pulls(budget, item, 1, None)
        manifest = upstream.get_manifest(repository, descriptor["digest"])
        document = {k: v for k, v in manifest.document().items() if k != "subject"}
        body = json.dumps(document, separators=(",", ":")).encode()
        landed = target.put_manifest(item.target_repository, sha256_digest(body), body, manifest.media_type)
        rewritten.append({**descriptor, "digest": landed, "size": len(body)})
    said = f"OCI referrers: {copied} of {len(found)} copied"
    if rewritten:
        tag = referrers_tag(digest)
        try:
            listed = list(target.get_manifest(item.target_repository, tag).document().get("manifests") or [])
        except NotFoundError:
            listed = []
        known = {d.get("digest") for d in listed}
        listed += [d for d in rewritten if d["digest"] not in known]
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": listed}, separators=(",", ":"))
        target.put_manifest(item.target_repository, tag, index.encode(), OCI_INDEX)
        said += (
            f"; {len(rewritten)} refused by the target (405 to a manifest with a subject), "
            f"written without it and listed under the referrers tag {tag}"
        )
    return said


@dataclass(frozen=True)
class Extras:
    """Where the extras of one image come from and go: the item, its upstream digest and media
    type, and the upstream index (read only when needed: the platforms' own signatures)."""

    item: WorkItem
    digest: str
    media_type: str
    index: Callable[[], dict[str, Any]]


def copy_extras(
    extras: Extras,
    *,
    transfer: Transfer,
    upstream: RegistryClient,
    budget: PullBudget | None,
    deadline: float | None,
    notes: list[str],
    pending: list[str],
) -> None:
    """Copy what goes beside the image (nothing when the entry says ``signatures: skip``).

    With platforms selected from an index, the target's index is hubmirror's own: only the
    platform manifests' own signatures can hold there, and the upstream index's referrers are
    not copied. What is said goes to ``notes``; each kind that could not be copied, to ``pending``.
    """
    item, digest = extras.item, extras.digest
    if not item.signatures:
        return
    platforms: list[str] = []
    own_index = item.platforms is not None and extras.media_type in INDEX_MEDIA_TYPES
    if extras.media_type in INDEX_MEDIA_TYPES:
        document = extras.index()
        listed = select_platforms(document, item.platforms)[0] if item.platforms else document["manifests"]
        platforms = [str(d["digest"]) for d in listed]

    def signatures() -> str | None:
        return copy_signatures(
            item,
            digest,
            transfer=transfer,
            upstream=upstream,
            budget=budget,
            deadline=deadline,
            platform_digests=platforms,
            index_copied=not own_index,
        )

    def referrers() -> str | None:
        return copy_referrers(item, digest, transfer=transfer, upstream=upstream, budget=budget, deadline=deadline)

    for what, copy in ((SIGNATURES, signatures), (REFERRERS, referrers)):
        if what == REFERRERS and own_index:
            continue
        try:
            said = copy()
        except (RegistryError, DeferredError) as exc:
            reason = f"{exc.reason}: {exc}" if isinstance(exc, RegistryError) else str(exc)
            pending.append(what)
            notes.append(f"{what} not copied ({reason}); the next run tries again")
            continue
        if said:
            notes.append(said)
