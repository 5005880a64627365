"""The plan step: allowlist + execution input -> work items in S3, in batches."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from hubmirror.allowlist.expansion import EntryFailure, entry_selected, expand, select
from hubmirror.allowlist.rules import Allowlist, ImageEntry, parse_allowlist
from hubmirror.domain import keys
from hubmirror.domain.decisions import Outcome, OutcomeName
from hubmirror.domain.items import InputError, Kind, RunOptions, batches, few
from hubmirror.domain.references import ImageReference
from hubmirror.steps.payloads import PlanResult
from hubmirror.steps.runlock import LockStore, RunLockedError, release_run_lock, take_run_lock

#: Lists an upstream repository's tags; raises to say it could not.
TagLister = Callable[[ImageReference], list[str]]
#: The tags every allowlist version carries: who stored it (the bucket policy refuses a
#: ``hubmirror-writer`` that is not the writer's own ``aws:userid``), and the writer's ARN as said.
WRITER_TAG = "hubmirror-writer"
WRITER_ARN_TAG = "hubmirror-writer-arn"
#: What the report says when the stack holds no allowlist yet.
NO_ALLOWLIST = (
    "no allowlist yet: push one with `hubmirror push FILE` (see the README's quick start); nothing was synced"
)


def left_out_notices(parsed: Allowlist, source: str) -> list[str]:
    """What the report says of each entry a stricter rule left out of this run: entry, rule, remedy.

    ``images[0] was left out of this run: allowlist.yaml (version V):2: images[0].build_commands[0]:
    ENV needs a value: write ENV FOO=value (a rule hubmirror 0.2.0 made stricter; ...)``
    """
    return [
        f"{problem.path.partition('.')[0]} was left out of this run: {problem.format(source)} "
        f"(a rule hubmirror {problem.since} made stricter; see the CHANGELOG). "
        "Fix the entry and push the allowlist again; the other entries synced as usual"
        for problem in parsed.left_out
    ]


@dataclass(frozen=True)
class StoredAllowlist:
    """The allowlist in force, as the bucket holds it."""

    text: bytes
    #: the S3 version id: every report names it, ``hubmirror history`` lists them
    version: str
    #: where it was read (``s3://bucket/key``), for messages
    location: str
    #: who stored it: the ``hubmirror-writer`` tag (the writer's ``aws:userid``, which the bucket
    #: policy holds to the principal S3 authenticated) and ``hubmirror-writer-arn`` (as the writer
    #: said it); empty when the version was stored without them
    writer: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, str | None]:
        return {
            "version": self.version,
            "location": self.location,
            "writer": self.writer.get(WRITER_TAG),
            "writer_arn": self.writer.get(WRITER_ARN_TAG),
        }


class PlanStore(LockStore, Protocol):
    def put_json(self, key: str, value: Any) -> str: ...
    def put_bytes(self, key: str, data: bytes, content_type: str = ...) -> str: ...
    def exists(self, key: str) -> bool: ...
    def location(self, key: str) -> str: ...

    @property
    def bucket(self) -> str: ...


def list_selected_tags(
    entries: Sequence[ImageEntry], list_tags: TagLister, *, concurrency: int = 8
) -> Mapping[int, list[str] | str]:
    """The upstream tags of every entry with a selector, or why they could not be listed."""

    def one(entry: ImageEntry) -> tuple[int, list[str] | str]:
        try:
            return entry.index, list_tags(entry.source)
        except Exception as exc:  # the entry fails in the report; the other entries go on
            return entry.index, f"{type(exc).__name__}: {exc}"

    wanted = [e for e in entries if e.selector is not None]
    if not wanted:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(wanted)))) as pool:
        return dict(pool.map(one, wanted))


def failure_outcome(failure: EntryFailure) -> Outcome:
    return Outcome(
        key=f"{failure.source} (select)", outcome=OutcomeName.FAILED, reason=failure.reason, target=failure.target
    )


def _skipped(run: str, store: PlanStore, options: RunOptions, map_concurrency: int, why: str) -> PlanResult:
    """The plan of an execution that has nothing to do (its allowlist version is run, or waits)."""
    return PlanResult(
        run=run,
        bucket=store.bucket,
        batches_key="",
        items=0,
        batches=0,
        force=options.force,
        dry_run=options.dry_run,
        source="",
        map_concurrency=map_concurrency,
        entry_failures=0,
        allowlist_version=options.allowlist_version,
        skipped=why,
    )


def plan_run(
    *,
    run: str,
    allowlist: StoredAllowlist | None,
    execution_input: Any,
    prefix: str,
    batch_size: int,
    map_concurrency: int,
    store: PlanStore,
    copy_batch_size: int | None = None,
    bundle: tuple[str, bytes],
    list_tags: TagLister,
    default_platforms: tuple[str, ...] | None = None,
) -> PlanResult:
    """Validate the allowlist and the input, expand selectors, write items and batches.

    Raises ``AllowlistError`` or ``InputError`` before anything is written or any
    registry is contacted. A run that may write to the target (not a dry run) holds the run
    lock from here to its report; ``RunLockedError`` when another one holds it.

    ``allowlist`` None (the stack holds none yet) plans no item, and the report says how to
    push one. A run started by a new allowlist version (``allowlist_version`` in the input)
    is skipped, not refused, when another run holds the lock (that run starts one for the
    newest version when it reports: :func:`hubmirror.steps.runlock.follow_up`) or when the
    version it reads already started a run (EventBridge delivers at least once).
    """
    options = RunOptions.parse(execution_input)
    source = f"allowlist.yaml (version {allowlist.version})" if allowlist is not None else ""
    parsed = parse_allowlist(allowlist.text, source=source, stored=True) if allowlist is not None else None
    entries_all = parsed.entries if parsed is not None else []
    unknown = [o for o in options.only if not any(entry_selected(e, [o], prefix) for e in entries_all)]
    if unknown:  # refused before any registry is contacted
        raise InputError(f"'only' names images the allowlist does not hold: {few(unknown)}")
    if not options.dry_run:
        try:
            take_run_lock(store, run)
        except RunLockedError as exc:
            if options.allowlist_version is None:
                raise
            return _skipped(run, store, options, map_concurrency, f"{exc}; that run starts one for this version")
    if options.allowlist_version is not None and allowlist is not None and not options.dry_run:
        marker = keys.allowlist_run(allowlist.version)
        if store.create_json(marker, {"execution": run}) is None:
            started = (store.find_json(marker) or {}).get("execution")
            if started != run:  # not this run's own plan, retried
                release_run_lock(store, run)
                return _skipped(
                    run,
                    store,
                    options,
                    map_concurrency,
                    f"allowlist version {allowlist.version} already started {started}",
                )
    try:
        allowlist_info = allowlist.to_dict() if allowlist else None
        if parsed is None:
            parsed = Allowlist(entries=())
        chosen = [e for e in parsed.entries if entry_selected(e, options.only, prefix)]
        expansion = expand(
            parsed,
            prefix=prefix,
            default_platforms=default_platforms,
            tag_lists=list_selected_tags(chosen, list_tags),
        )
        items = select(expansion.items, parsed, options.only, prefix)
        entries = {e.index: e for e in parsed.entries}
        failures = [f for f in expansion.failures if entry_selected(entries[f.entry], options.only, prefix)]
        chunks = batches(items, batch_size, copy_size=copy_batch_size)
        batch_of = {item.target: chunk.id for chunk in chunks for item in chunk.items}

        bundle_key, bundle_data = bundle
        if not store.exists(bundle_key):
            store.put_bytes(bundle_key, bundle_data, "application/zip")
        store.put_json(
            keys.plan(run),
            {
                "items": [i.to_dict() for i in items],
                "failures": [failure_outcome(f).to_dict() for f in failures],
                "options": options.__dict__,
                "batch_size": batch_size,
                # each item's batch, in the order of "items": the report names the batch of an
                # item no job recorded (copies and builds are batched apart)
                "batch_of": [batch_of[i.target] for i in items],
                "allowlist": allowlist_info,
                "notices": left_out_notices(parsed, source) if allowlist is not None else [NO_ALLOWLIST],
            },
        )
        entries_list = []
        # the copy jobs sharing the target's PutImage rate at first (a build job takes no share)
        copying = [chunk for chunk in chunks if any(item.kind == Kind.COPY for item in chunk.items)]
        at_once = max(1, min(len(copying) or len(chunks), map_concurrency))
        for chunk in chunks:
            key = store.put_json(keys.batch(run, chunk.id), [i.to_dict() for i in chunk.items])
            entries_list.append({"batch": chunk.id, "key": key, "items": len(chunk.items), "jobs_at_once": at_once})
        batches_key = store.put_json(keys.batches(run), entries_list)
        return PlanResult(
            run=run,
            bucket=store.bucket,
            batches_key=batches_key,
            items=len(items),
            batches=len(chunks),
            force=options.force,
            dry_run=options.dry_run,
            source=store.location(bundle_key),
            map_concurrency=map_concurrency,
            entry_failures=len(failures),
            allowlist_version=allowlist.version if allowlist is not None else None,
            skipped=None,
        )
    except BaseException:
        if not options.dry_run:
            release_run_lock(store, run)  # nothing of this run will sync: let the next one start
        raise
