"""The plan step: allowlist + execution input -> work items in S3, in batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from hubmirror.allowlist import parse_allowlist
from hubmirror.items import RunOptions, batches, expand, select
from hubmirror.store import run_key


class PlanStore(Protocol):
    def put_json(self, key: str, value: Any) -> str: ...
    def put_bytes(self, key: str, data: bytes, content_type: str = ...) -> str: ...
    def exists(self, key: str) -> bool: ...
    def location(self, key: str) -> str: ...

    @property
    def bucket(self) -> str: ...


@dataclass(frozen=True)
class Plan:
    """What the state machine carries forward: small, whatever the number of items."""

    run: str
    bucket: str
    batches_key: str
    items: int
    batches: int
    force: bool
    dry_run: bool
    source: str
    map_concurrency: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def plan_run(
    *,
    run: str,
    allowlist_text: bytes,
    allowlist_name: str,
    execution_input: Any,
    prefix: str,
    batch_size: int,
    map_concurrency: int,
    store: PlanStore,
    bundle: tuple[str, bytes],
) -> Plan:
    """Validate the allowlist and the input, write the items and batches, return the plan.

    Raises ``AllowlistError`` or ``InputError`` before anything is written.
    """
    options = RunOptions.parse(execution_input)
    allowlist = parse_allowlist(allowlist_text, source=allowlist_name)
    items = select(expand(allowlist, prefix=prefix), allowlist, options.only)
    chunks = batches(items, batch_size)

    bundle_key, bundle_data = bundle
    if not store.exists(bundle_key):
        store.put_bytes(bundle_key, bundle_data, "application/zip")
    store.put_json(
        run_key(run, "plan.json"),
        {"items": [i.to_dict() for i in items], "options": options.__dict__, "batch_size": batch_size},
    )
    entries = []
    for chunk in chunks:
        key = store.put_json(run_key(run, "batches", f"{chunk.id}.json"), [i.to_dict() for i in chunk.items])
        entries.append({"batch": chunk.id, "key": key, "items": len(chunk.items)})
    batches_key = store.put_json(run_key(run, "batches.json"), entries)
    return Plan(
        run=run,
        bucket=store.bucket,
        batches_key=batches_key,
        items=len(items),
        batches=len(chunks),
        force=options.force,
        dry_run=options.dry_run,
        source=store.location(bundle_key),
        map_concurrency=map_concurrency,
    )
