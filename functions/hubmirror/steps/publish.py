"""What a run tells programs: EventBridge events, one per image that changed, waits or failed,
and one when the run completes. Pure: the entries and how they are batched.

Users route them with rules, as they route ECR's own events::

    {"source": ["hubmirror"], "detail-type": ["Image Failed"]}

PutEvents takes at most 10 entries and 256 KB of entries per request
(https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html; an entry's
size is the UTF-8 bytes of its Source, DetailType, Detail and Resources, 14 for a Time:
https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html).
"""

from __future__ import annotations

import json
from typing import Any, TypedDict

from hubmirror.domain.advice import remedy
from hubmirror.domain.decisions import Outcome, OutcomeName
from hubmirror.steps.report import CHANGED, Report

SOURCE = "hubmirror"
#: One ``detail-type`` per outcome that is news; unchanged items and dry runs send none.
IMAGE_DETAIL_TYPES = {
    OutcomeName.COPIED: "Image Copied",
    OutcomeName.BUILT: "Image Built",
    OutcomeName.DEFERRED: "Image Deferred",
    OutcomeName.FAILED: "Image Failed",
}
RUN_DETAIL_TYPE = "Sync Completed"
MAX_ENTRIES = 10
MAX_REQUEST_BYTES = 256 * 1024
#: A reason longer than this is cut in an event (the report keeps it whole): every entry stays
#: far below the request's size, whatever an upstream's error said.
REASON_CHARS = 2000


class Entry(TypedDict):
    """One ``PutEventsRequestEntry``."""

    Source: str
    DetailType: str
    Detail: str
    EventBusName: str


def _entry(detail_type: str, detail: dict[str, Any], bus: str) -> Entry:
    body = json.dumps(detail, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return Entry(Source=SOURCE, DetailType=detail_type, Detail=body, EventBusName=bus)


def _image(outcome: Outcome, report: Report) -> dict[str, Any]:
    reason = outcome.reason if len(outcome.reason) <= REASON_CHARS else outcome.reason[: REASON_CHARS - 1] + "…"
    detail: dict[str, Any] = {
        "run": report.run,
        "image": outcome.key,
        "target": outcome.target,
        "outcome": outcome.outcome,
        "kind": outcome.kind,
        "reason": reason,
        "upstream_digest": outcome.upstream_digest,
        "target_digest": outcome.target_digest,
        "retry_after": outcome.retry_after,
        "report": report.location,
    }
    if outcome.outcome in CHANGED:
        detail["pull"] = report.pull_reference(outcome)
    if outcome.outcome in (OutcomeName.FAILED, OutcomeName.DEFERRED):
        found = remedy(outcome.reason)
        detail |= {"cause": str(found.cause), "next_step": found.next_step, "retried": found.retried}
    return {k: v for k, v in detail.items() if v is not None}


def entries(report: Report, *, bus: str) -> list[Entry]:
    """The run's events: one per copied, built, deferred or failed image, then the run's own.

    >>> run = Report(run="r1", outcomes=[Outcome("nginx:1", "copied", "copied", "mirror/nginx:1")])
    >>> [e["DetailType"] for e in entries(run, bus="default")]
    ['Image Copied', 'Sync Completed']
    """
    found = [
        _entry(IMAGE_DETAIL_TYPES[OutcomeName(o.outcome)], _image(o, report), bus)
        for o in report.outcomes
        if o.outcome in IMAGE_DETAIL_TYPES and not report.dry_run
    ]
    run = {
        "run": report.run,
        "status": report.status,
        "dry_run": report.dry_run,
        "counts": report.counts,
        "failed": report.failed,
        "report": report.location,
        "plan_error": (report.plan_error or "")[:REASON_CHARS] or None,
    }
    found.append(_entry(RUN_DETAIL_TYPE, {k: v for k, v in run.items() if v is not None}, bus))
    return found


def entry_size(entry: Entry) -> int:
    """The size EventBridge counts for an entry (no Time, no Resources here)."""
    return sum(len(entry[k].encode()) for k in ("Source", "DetailType", "Detail"))


def requests(found: list[Entry]) -> list[list[Entry]]:
    """The entries in PutEvents requests: at most 10 each, and under 256 KB each, in order."""
    batches: list[list[Entry]] = []
    size = 0
    for entry in found:
        this = entry_size(entry)
        if not batches or len(batches[-1]) == MAX_ENTRIES or size + this > MAX_REQUEST_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(entry)
        size += this
    return batches
