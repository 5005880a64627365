"""The check step: one batch of items -> a decision per item, outcomes and jobs in S3.

Per item it costs one upstream manifest HEAD (free on Docker Hub) and one request to the
target. Items that need nothing, or cannot be done now, get their outcome here; the rest
go into at most two jobs (copies, builds), each run by one CodeBuild build.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from hubmirror.domain import keys
from hubmirror.domain.decisions import Action, Decision, Outcome, OutcomeName, TargetState, decide, is_derived
from hubmirror.domain.documents import JOB_DEADLINE_SECONDS, JobEntry, JobFile, RefusalRecord
from hubmirror.domain.items import Kind, WorkItem
from hubmirror.domain.oci import INDEX_MEDIA_TYPES, SCHEMA1_MEDIA_TYPES
from hubmirror.domain.ratelimit import PullBudget, RateLimit, budget_text, reset_time
from hubmirror.domain.registry.errors import NotFoundError, RateLimitedError, RegistryError
from hubmirror.domain.registry.model import MANIFEST_MAX_BYTES, Manifest, ManifestHead
from hubmirror.domain.sigstore import TrustRoot
from hubmirror.steps.payloads import CheckResult
from hubmirror.steps.verify import (
    KeyResolver,
    SignatureBudgetError,
    SignatureRegistry,
    inline_keys,
    shipped_trust_root,
    unverified,
)

logger = logging.getLogger(__name__)
#: Manifest GETs a copy of an index of unknown size is expected to cost (index + platforms).
DEFAULT_INDEX_PULLS = 2
#: Seconds of a check invocation kept for writing its outcomes and jobs after the deadline:
#: two S3 writes take well under a second; the rest absorbs a slow S3 answer or a cold client.
CHECK_RESERVE_SECONDS = 30.0
NOT_CHECKED_IN_TIME = "not checked in time (the registries answered too slowly for this check); a later run checks it"


class Registry(Protocol):
    """What the check asks of a registry (:class:`hubmirror.adapters.registry.client.RegistryClient`)."""

    def head_manifest(self, repository: str, reference: str) -> ManifestHead: ...
    def get_manifest(self, repository: str, reference: str) -> Manifest: ...


class CheckStore(Protocol):
    def get_json(self, key: str) -> Any: ...
    def put_json(self, key: str, value: Any) -> str: ...
    def find_json(self, key: str) -> Any | None: ...
    def keys(self, prefix: str) -> list[str]: ...


#: Why an unchanged image goes to a copy job again: what should be beside it is not all there.
EXTRAS_AGAIN = "its signatures or referrers did not all arrive with it; copying them again"


#: How a remembered refusal is reported again (after the reason the job gave then).
REMEMBERED_NOTE = (
    "remembered from run {run}; not tried again (no pull spent) until the upstream digest or the "
    "entry changes, hubmirror is upgraded, or a force run"
)


@dataclass
class ItemCheck:
    """The result of checking one item."""

    item: WorkItem
    decision: Decision | None = None
    upstream: ManifestHead | None = None
    target: TargetState | None = None
    outcome: Outcome | None = None
    #: the image is in place, but its signatures or referrers did not all arrive: copy only them
    extras_only: bool = False


@dataclass
class BatchResult:
    """What the state machine needs to go on: job locations and counts (small)."""

    batch: str
    checked: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    copy_job: str | None = None
    build_job: str | None = None
    ratelimit_remaining: int | None = None
    #: repositories whose pull statements this batch wrote
    policies_updated: int = 0

    def to_dict(self) -> CheckResult:
        return cast(CheckResult, dict(self.__dict__))  # the same fields: a test holds them equal


def target_state(client: Registry, item: WorkItem) -> TargetState | None:
    """What the target tag holds now; None if it does not exist.

    A verbatim copy needs only the digest (HEAD); a derived image's annotations need the
    manifest itself (GET; ECR does not rate-limit it).
    """
    try:
        if not is_derived(item):
            head = client.head_manifest(item.target_repository, item.target_tag)
            return TargetState(head.digest, head.media_type)
        manifest = client.get_manifest(item.target_repository, item.target_tag)
    except NotFoundError:  # no such tag, or no such repository yet
        return None
    annotations = manifest.document().get("annotations") or {}
    return TargetState(manifest.digest, manifest.media_type, {str(k): str(v) for k, v in annotations.items()})


def expected_pulls(item: WorkItem, head: ManifestHead) -> int:
    """Manifest GETs (pulls) syncing ``item`` will spend upstream, its signature's included."""
    gate = 1 if item.verify is not None else 0
    if head.media_type not in INDEX_MEDIA_TYPES:
        return 1 + gate
    if item.platforms is not None:
        return len(item.platforms) + gate
    return DEFAULT_INDEX_PULLS + gate


def check_item(
    item: WorkItem,
    *,
    upstream: Callable[[str], SignatureRegistry],
    target: Registry,
    budget: PullBudget,
    force: bool,
    dry_run: bool,
    public_keys: KeyResolver = inline_keys,
    now: dt.datetime | None = None,
    refusals: Callable[[str], RefusalRecord | None] | None = None,
    trust_root: Callable[[], TrustRoot] = shipped_trust_root,
    missing_extras: Collection[str] = (),
) -> ItemCheck:
    """Decide one item; every failure becomes a ``failed`` outcome naming its reason.

    An item with ``verify`` that is to be copied or built first passes the signature gate
    (:mod:`hubmirror.steps.verify`); a dry run does not spend the pull it costs. An item a
    job found no run can mirror as it is (:class:`hubmirror.copying.transfer.RefusedImageError`) is
    failed again from ``refusals`` (by :func:`hubmirror.domain.keys.refusal`) unless ``force``.
    """
    result = ItemCheck(item)
    ref = item.upstream
    try:
        head = upstream(ref.api_host).head_manifest(ref.repository, item.pinned or item.tag)
    except NotFoundError as exc:
        what = f"pinned digest {item.pinned} is gone upstream" if item.pinned else "not found upstream"
        result.outcome = Outcome.for_item(item, OutcomeName.FAILED, f"{what}: {exc}")
        return result
    except RateLimitedError as exc:  # the registry says "later": a later run, not a failure
        result.outcome = Outcome.for_item(
            item,
            OutcomeName.DEFERRED,
            f"{exc.reason}: {exc}; deferred to a later run",
            retry_after=_retry_time(exc, now or dt.datetime.now(dt.UTC)),
        )
        return result
    except RegistryError as exc:
        result.outcome = Outcome.for_item(item, OutcomeName.FAILED, f"{exc.reason}: {exc}")
        return result
    if head.media_type in SCHEMA1_MEDIA_TYPES:  # refused here, before a GET spends a pull on it
        result.outcome = Outcome.for_item(
            item,
            OutcomeName.FAILED,
            f"upstream {ref.registry}/{ref.repository}:{item.pinned or item.tag} is a Docker schema 1 image "
            f"({head.media_type}), Docker's deprecated format, which hubmirror does not copy",
            upstream_digest=head.digest,
        )
        return result
    if head.size > MANIFEST_MAX_BYTES:  # refused here, before a GET spends a pull on it
        result.outcome = Outcome.for_item(
            item,
            OutcomeName.FAILED,
            f"upstream {ref.registry}/{ref.repository}: the manifest is {head.size} bytes, more than the "
            f"{MANIFEST_MAX_BYTES // 2**20} MiB a registry accepts",
            upstream_digest=head.digest,
        )
        return result
    result.upstream = head
    try:
        result.target = target_state(target, item)
    except RegistryError as exc:
        result.outcome = Outcome.for_item(item, OutcomeName.FAILED, f"{exc.reason}: {exc}", upstream_digest=head.digest)
        return result
    decision = decide(item, head.digest, result.target, force=force)
    if (
        not decision.needs_work
        and not dry_run
        and missing_extras
        and keys.extras(head.digest, item.target_repository) in missing_extras
    ):
        decision = Decision(Action.COPY, EXTRAS_AGAIN, decision.recipe)
        result.extras_only = True
    result.decision = decision
    target_digest = result.target.digest if result.target else None
    if not decision.needs_work:
        result.outcome = Outcome.for_item(
            item, OutcomeName.UNCHANGED, decision.reason, upstream_digest=head.digest, target_digest=target_digest
        )
    elif not force and (refused := _refused(refusals, head.digest, decision.recipe, item)) is not None:
        result.outcome = Outcome.for_item(
            item,
            OutcomeName.FAILED,
            f"{refused.get('reason')} ({REMEMBERED_NOTE.format(run=refused.get('run', 'an earlier run'))})",
            upstream_digest=head.digest,
            target_digest=target_digest,
        )
    elif dry_run:
        would = OutcomeName.WOULD_BUILD if decision.action == Action.BUILD else OutcomeName.WOULD_COPY
        result.outcome = Outcome.for_item(
            item, would, f"dry run: {decision.reason}", upstream_digest=head.digest, target_digest=target_digest
        )
    elif not budget.reserve(ref.registry, head.ratelimit, expected_pulls(item, head)):
        result.outcome = Outcome.for_item(
            item,
            OutcomeName.DEFERRED,
            f"{ref.registry} pull budget low ({budget_text(head.ratelimit)}, floor {budget.floor}); "
            f"deferred to a later run; {decision.reason}",
            upstream_digest=head.digest,
            target_digest=target_digest,
            retry_after=reset_time(head.ratelimit, now or dt.datetime.now(dt.UTC)),
        )
    elif item.verify is not None and not result.extras_only:  # the image passed when it was copied
        result.outcome = signature_gate(
            item,
            upstream(ref.api_host),
            head.digest,
            public_keys=public_keys,
            target_digest=target_digest,
            now=now or dt.datetime.now(dt.UTC),
            trust_root=trust_root,
            reserve=lambda pulls: budget.reserve(ref.registry, head.ratelimit, pulls),
            ratelimit=head.ratelimit,
        )
    return result


def signature_gate(
    item: WorkItem,
    registry: SignatureRegistry,
    digest: str,
    *,
    public_keys: KeyResolver,
    target_digest: str | None,
    now: dt.datetime,
    trust_root: Callable[[], TrustRoot] = shipped_trust_root,
    reserve: Callable[[int], bool] = lambda pulls: True,
    ratelimit: RateLimit | None = None,
) -> Outcome | None:
    """None when a signature over ``digest`` verifies; else the item's ``failed`` (or ``deferred``) outcome."""
    digests = {"upstream_digest": digest, "target_digest": target_digest}
    try:
        problem = unverified(registry, item, digest, public_keys, trust_root, reserve=reserve)
    except SignatureBudgetError as exc:
        return Outcome.for_item(
            item,
            OutcomeName.DEFERRED,
            f"signature: {item.upstream.registry} pull budget low ({budget_text(ratelimit)}): {exc}; "
            "deferred to a later run",
            retry_after=reset_time(ratelimit, now),
            **digests,
        )
    except RateLimitedError as exc:
        return Outcome.for_item(
            item,
            OutcomeName.DEFERRED,
            f"signature: {exc.reason}: {exc}; deferred to a later run",
            retry_after=_retry_time(exc, now),
            **digests,
        )
    except RegistryError as exc:
        problem = f"{exc.reason}: {exc}"
    if problem is None:
        return None
    return Outcome.for_item(
        item, OutcomeName.FAILED, f"signature: {problem}; the target tag is left as it is", **digests
    )


def _refused(
    refusals: Callable[[str], RefusalRecord | None] | None, digest: str, recipe: str | None, item: WorkItem
) -> RefusalRecord | None:
    """The refusal a job remembered for this image, if any. A failure to read it costs only the
    memory: the item is tried as if nothing had been remembered."""
    if refusals is None:
        return None
    try:
        found = refusals(keys.refusal(digest, recipe, item.target_repository))
    except Exception as exc:  # S3 unavailable or denied: the job tries the image again
        logger.warning("could not read a remembered refusal", extra={"image": item.key, "error": str(exc)})
        return None
    return found if isinstance(found, Mapping) and found.get("reason") else None


def _retry_time(exc: RateLimitedError, now: dt.datetime) -> str | None:
    if exc.retry_after is not None:
        return (now + dt.timedelta(seconds=exc.retry_after)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return reset_time(exc.ratelimit, now)


def remembered_refusals(store: CheckStore) -> Callable[[str], RefusalRecord | None]:
    """What a check reads remembered refusals with: ``refusals/`` is listed once, the first time
    an item of the batch needs work, and only a key listed there is read. Most images were never
    refused, so a batch of 200 images to copy costs one request, not 200. A listing that
    fails leaves the reads key by key (each failure of those costs only the memory)."""
    lock = threading.Lock()
    listed = False
    known: set[str] | None = None

    def find(key: str) -> RefusalRecord | None:
        nonlocal listed, known
        with lock:
            if not listed:
                listed = True
                try:
                    known = set(store.keys(keys.REFUSALS_PREFIX))
                except Exception as exc:
                    logger.warning("could not list the remembered refusals: %s", exc)
            if known is not None and key not in known:
                return None
        found: RefusalRecord | None = store.find_json(key)
        return found

    return find


def check_batch(
    *,
    run: str,
    batch: str,
    items: Sequence[WorkItem],
    store: CheckStore,
    upstream: Callable[[str], SignatureRegistry],
    target: Registry,
    target_registry: str,
    floor: int,
    concurrency: int,
    force: bool,
    dry_run: bool,
    public_keys: KeyResolver = inline_keys,
    deadline: float | None = None,
    item_deadline_seconds: int | None = None,
    pull_policy: Callable[[str], bool] | None = None,
    trust_root: Callable[[], TrustRoot] = shipped_trust_root,
    jobs_at_once: int = 1,
) -> BatchResult:
    """Check every item of a batch; write its outcomes and jobs; return the job keys.

    Items still unchecked at ``deadline`` (``time.monotonic()``) end ``deferred``: slow
    registries then cost those items a run, never the whole batch its outcomes.
    ``pull_policy`` brings each target repository's pull statements up to date (not in a dry
    run); a repository it could not update is named in a notice, and the next run tries again.
    A trust root the gate used with a notice (a refresh that failed) adds that notice.
    """
    budget = PullBudget(floor)
    result = BatchResult(batch=batch)
    notices: list[str] = []
    used_roots: list[TrustRoot] = []

    def noted_trust_root() -> TrustRoot:
        root = trust_root()
        used_roots.append(root)
        return root

    missing_extras: set[str] = set()
    if not dry_run:
        try:  # one request per batch, whatever its size
            missing_extras = set(store.keys(keys.EXTRAS_PREFIX))
        except Exception as exc:  # the images are checked as usual; the next run looks again
            logger.warning("could not list the images missing their signatures or referrers: %s", exc)
    if pull_policy is not None and not dry_run:
        for repository in dict.fromkeys(item.target_repository for item in items):
            try:
                if pull_policy(repository):
                    result.policies_updated += 1
            except Exception as exc:  # a policy never stops the sync of images
                logger.warning("pull policy of %s not updated: %s", repository, exc)
                notices.append(f"the pull policy of {repository} was not updated ({exc}); the next run tries again")

    refusals = remembered_refusals(store)

    def one(item: WorkItem) -> ItemCheck:
        try:
            return check_item(
                item,
                upstream=upstream,
                target=target,
                budget=budget,
                force=force,
                dry_run=dry_run,
                public_keys=public_keys,
                refusals=refusals,
                trust_root=noted_trust_root,
                missing_extras=missing_extras,
            )
        except Exception as exc:  # one bad item never stops the others; it is reported failed
            logger.exception("check of %s failed unexpectedly", item.key, extra={"image": item.key})
            return ItemCheck(
                item, outcome=Outcome.for_item(item, OutcomeName.FAILED, f"internal error: {type(exc).__name__}: {exc}")
            )

    pool = ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(items) or 1)))
    futures = [pool.submit(one, item) for item in items]
    wait(futures, timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
    pool.shutdown(wait=False, cancel_futures=True)  # checks still running are left to finish unread
    checks = [
        f.result()
        if f.done() and not f.cancelled()
        else ItemCheck(item, outcome=Outcome.for_item(item, OutcomeName.DEFERRED, NOT_CHECKED_IN_TIME))
        for item, f in zip(items, futures, strict=True)
    ]

    result.checked = len(checks)
    outcomes = [c.outcome.to_dict() for c in checks if c.outcome is not None]
    for check in checks:
        name = check.outcome.outcome if check.outcome else check.item.kind
        result.counts[name] = result.counts.get(name, 0) + 1
    remaining = [c.upstream.ratelimit.remaining for c in checks if c.upstream and c.upstream.ratelimit]
    result.ratelimit_remaining = min(remaining) if remaining else None
    store.put_json(keys.outcomes(run, batch, "check"), outcomes)
    notices.extend(dict.fromkeys(root.notice for root in used_roots if root.notice))
    if notices:
        store.put_json(keys.notices(run, batch), notices)

    for kind in (Kind.COPY, Kind.BUILD):
        work = [c for c in checks if c.outcome is None and c.decision is not None and c.decision.action == Action(kind)]
        if not work:
            continue
        job = JobFile(
            run=run,
            batch=batch,
            kind=str(kind),
            target_registry=target_registry,
            ratelimit_floor=floor,
            item_deadline_seconds=item_deadline_seconds,
            job_deadline_seconds=JOB_DEADLINE_SECONDS,
            jobs_at_once=jobs_at_once,
            outcomes_key=keys.outcomes(run, batch, kind),
            items=[job_item(c) for c in work],
        )
        key = store.put_json(keys.job(run, batch, kind), job)
        if kind == Kind.COPY:
            result.copy_job = key
        else:
            result.build_job = key
    return result


def job_item(check: ItemCheck) -> JobEntry:
    """One job entry: the item, the digest the check saw, and why it needs work."""
    assert check.upstream is not None
    assert check.decision is not None
    # mypy asks ** items to name the entry's optional keys too; unknown keys are still refused
    entry: JobEntry = {
        **check.item.to_dict(),  # type: ignore[typeddict-item]
        "upstream_digest": check.upstream.digest,
        "upstream_media_type": check.upstream.media_type,
        "target_digest": check.target.digest if check.target else None,
        "recipe": check.decision.recipe,
        "reason": check.decision.reason,
    }
    if check.extras_only:
        entry["extras_only"] = True
    return entry
