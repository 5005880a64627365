"""5,000 tags in one execution: bounded histories, small payloads, a no-op run that costs nothing.

The hub holds ten images under 500 tags each. The first run copies all 5,000 tags; the
second finds them unchanged. Histories of the map run's children are counted from the
events moto kept (devstack.aws.mapruns); every payload of the parent and of the children is
measured.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.content.workload import allowlist_entries, many_tags, tags_by_repository
from devstack.stack import RunResult, Stack
from hubmirror.steps.report import LIST_CAP

pytestmark = pytest.mark.e2e

ITEMS = 5000
BATCH = 200  # items copied as they are: CopyBatchSize, its default
PAYLOAD_LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunResult, RunResult, int]]:
    # ECR's PutImage quota (10 a second by default) is adjustable; at the default a cold run
    # of 5,000 images takes at least 500 s of PutImage alone. An account mirroring that many
    # raises it and tells hubmirror (PutImageRate), and so does this test (the throttling and
    # the jobs' pacing are tested in test_strict_handling).
    # The run's 5,001 events are put on the bus but not routed to a queue: moto's delivery to
    # SQS takes about 10 ms an event; the events are tested in test_faults and test_signatures.
    stack = Stack(
        Path(tmp_path_factory.mktemp("scale")),
        parameters={"CopyBatchSize": str(BATCH), "PutImageRate": "200"},
        ecr_rates={"PutImage": 200.0},
        route_events=False,
    )
    with stack:
        assert stack.front is not None
        tags = tags_by_repository(many_tags(stack.hub_pusher(), 10, ITEMS // 10))
        stack.write_allowlist("\n".join(["images:", *allowlist_entries(stack.front.host, tags)]) + "\n")
        unique_blobs = 1 + 3 * len(tags)  # the shared base, then a family layer, a seed layer and a config each
        cold = stack.run({}, timeout=1800)
        warm = stack.run({}, timeout=1800)
        yield cold, warm, unique_blobs


def test_a_cold_run_over_5000_items_completes(runs: tuple[RunResult, RunResult, int]) -> None:
    cold, _, unique_blobs = runs
    assert cold.status == "SUCCEEDED", cold.failures()
    assert cold.report is not None
    assert cold.report["counts"]["copied"] == ITEMS
    assert cold.report["total"] == ITEMS
    assert len(cold.report["items"]) <= LIST_CAP  # the message lists a readable part; S3 holds the rest
    assert cold.upstream["get_blob"] == unique_blobs  # each unique upstream blob fetched once
    assert cold.upstream["get_manifest"] == ITEMS  # one pull per (single-platform) tag, none wasted
    assert cold.report["notices"] == []  # all 5,001 events were taken by EventBridge


def test_histories_are_bounded_per_item_and_payloads_small(runs: tuple[RunResult, RunResult, int]) -> None:
    for run in runs[:2]:
        assert len(run.events) < 40  # the parent's history does not grow with the items
        batches = ITEMS // BATCH
        assert len(run.map_run_events) / batches <= 30  # each child: a handful of states for its items
        assert run.state_transitions / ITEMS < 0.2
        assert run.largest_payload() < PAYLOAD_LIMIT


def test_a_warm_no_op_run_heads_once_per_item_and_starts_nothing(runs: tuple[RunResult, RunResult, int]) -> None:
    _, warm, _ = runs
    assert warm.status == "SUCCEEDED", warm.failures()
    assert warm.report is not None
    assert warm.report["counts"]["unchanged"] == ITEMS, warm.report["counts"]
    assert warm.upstream.get("head_manifest", 0) == ITEMS
    assert warm.upstream.get("get_manifest", 0) == 0
    assert warm.builds == []
    assert sum(warm.invocations.values()) / ITEMS <= 0.05
