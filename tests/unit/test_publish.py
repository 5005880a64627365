"""The run's EventBridge events: which images, what they carry, and how they are batched (pure)."""

from __future__ import annotations

import json

from hubmirror.domain.decisions import Outcome
from hubmirror.steps.publish import MAX_REQUEST_BYTES, REASON_CHARS, entries, entry_size, requests
from hubmirror.steps.report import Report

DIGEST = "sha256:" + "a" * 64


def outcome(name: str, result: str, reason: str = "why") -> Outcome:
    return Outcome(f"docker.io/library/{name}:1", result, reason, f"mirror/{name}:1", upstream_digest=DIGEST)


def test_each_image_that_changed_waits_or_failed_has_its_event_and_the_run_has_one() -> None:
    report = Report(
        run="run-1",
        outcomes=[
            outcome("a", "copied"),
            outcome("b", "built"),
            outcome("c", "deferred"),
            outcome("d", "failed"),
            outcome("e", "unchanged"),
        ],
        location="s3://bucket/runs/run-1/report.json",
    )
    found = entries(report, bus="default")
    assert [e["DetailType"] for e in found] == [
        "Image Copied",
        "Image Built",
        "Image Deferred",
        "Image Failed",
        "Sync Completed",
    ]
    assert {e["Source"] for e in found} == {"hubmirror"}
    assert {e["EventBusName"] for e in found} == {"default"}
    failed = json.loads(found[3]["Detail"])
    assert failed == {
        "run": "run-1",
        "image": "docker.io/library/d:1",
        "target": "mirror/d:1",
        "outcome": "failed",
        "kind": "copy",
        "reason": "why",
        "upstream_digest": DIGEST,
        "report": "s3://bucket/runs/run-1/report.json",
        "cause": "hubmirror",  # a reason no rule knows
        "next_step": "the next run retries it; if it fails again, the reason and the execution's log say where",
        "retried": True,
    }
    run = json.loads(found[-1]["Detail"])
    assert run["counts"] == {"failed": 1, "deferred": 1, "built": 1, "copied": 1, "unchanged": 1}
    assert run["status"] == "failed"


def test_a_dry_run_or_a_refused_plan_sends_the_run_event_only() -> None:
    dry = Report(run="r", outcomes=[outcome("a", "would_copy")], dry_run=True)
    assert [e["DetailType"] for e in entries(dry, bus="default")] == ["Sync Completed"]
    refused = entries(Report(run="r", plan_error="AllowlistError: images[0].tags: bad"), bus="default")
    assert [e["DetailType"] for e in refused] == ["Sync Completed"]
    assert json.loads(refused[0]["Detail"])["plan_error"] == "AllowlistError: images[0].tags: bad"


def test_a_long_reason_is_cut_in_the_event() -> None:
    (event, _) = entries(Report(run="r", outcomes=[outcome("a", "failed", "x" * 100_000)]), bus="default")
    assert len(json.loads(event["Detail"])["reason"]) == REASON_CHARS


def test_requests_hold_ten_entries_and_less_than_256_kb_each_in_order() -> None:
    many = entries(Report(run="r", outcomes=[outcome(f"i{n}", "copied") for n in range(25)]), bus="default")
    batches = requests(many)
    assert [len(b) for b in batches] == [10, 10, 6]
    assert [e for b in batches for e in b] == many

    big = entries(Report(run="r", outcomes=[outcome(f"b{n}", "failed", "é" * 1999) for n in range(200)]), bus="b")
    sizes = [sum(entry_size(e) for e in batch) for batch in requests(big)]
    assert max(sizes) < MAX_REQUEST_BYTES
    assert sum(len(b) for b in requests(big)) == len(big)


def test_the_size_is_counted_as_eventbridge_counts_it() -> None:
    """UTF-8 bytes of Source, DetailType and Detail (the user guide's calculation)."""
    (event, _) = entries(Report(run="r", outcomes=[outcome("a", "copied", "é")]), bus="default")
    assert entry_size(event) == len(b"hubmirror") + len(b"Image Copied") + len(event["Detail"].encode("utf-8"))
    assert entry_size(event) > len(event["Source"] + event["DetailType"] + event["Detail"])  # the é counts twice
