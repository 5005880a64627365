"""Each step acts under its own role: take a statement the pipeline needs away, and it fails.

The stack is deployed without one statement of template.yaml (devstack.aws.iam evaluates every
call against the roles as deployed); the run fails where AWS would fail it, and the refused
call is named.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack.content.images import seed
from devstack.stack import RunResult, Stack

pytestmark = pytest.mark.e2e


def _run_without(tmp: Path, role: str, sid: str) -> Iterator[RunResult]:
    with Stack(tmp, without_statements=frozenset({(role, sid)})) as stack:
        assert stack.front is not None
        seed(stack.hub_pusher(), "library/busybox", "1.36", ["linux/amd64"])
        stack.write_allowlist(f"images:\n  - source: {stack.front.host}/library/busybox\n    tags: ['1.36']\n")
        yield stack.run({})


@pytest.fixture(scope="module")
def without_blob_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunResult]:
    yield from _run_without(Path(tmp_path_factory.mktemp("iam-blobs")), "JobRole", "ListBlobIndex")


@pytest.fixture(scope="module")
def without_runner_listing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunResult]:
    yield from _run_without(Path(tmp_path_factory.mktemp("iam-runner")), "PlanFunctionRole", "ListRunner")


@pytest.fixture(scope="module")
def without_events(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunResult]:
    yield from _run_without(Path(tmp_path_factory.mktemp("iam-events")), "ReportFunctionRole", "PublishEvents")


def _saved_report(result: RunResult) -> dict[str, Any]:
    """The full report the run saved in S3 (the stack is still up while the module's tests run)."""
    bucket, _, key = str((result.report or {})["full_report"]).removeprefix("s3://").partition("/")
    return dict(json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()))


def test_a_report_role_without_put_events_still_reports_and_says_so(without_events: RunResult) -> None:
    assert without_events.status == "SUCCEEDED"
    assert without_events.outcomes() == {"mirror/library/busybox:1.36": "copied"}
    assert without_events.published == []
    assert {(c.principal, c.action) for c in without_events.iam_refused} == {("ReportFunctionRole", "events:PutEvents")}
    assert without_events.iam_refused[0].resource.endswith(":event-bus/default")
    assert without_events.text is not None
    assert "2 of 2 EventBridge events were not published" in without_events.text
    saved = _saved_report(without_events)["notices"]  # the full report in S3 says it too
    assert [n.split(":")[0] for n in saved] == ["2 of 2 EventBridge events were not published"]
    assert "AccessDenied" in without_events.text


def test_a_job_role_without_list_bucket_meets_403_for_blobs_not_yet_indexed(without_blob_index: RunResult) -> None:
    assert without_blob_index.status == "FAILED"
    assert without_blob_index.outcomes() == {"mirror/library/busybox:1.36": "failed"}
    refused = {(c.principal, c.action) for c in without_blob_index.iam_refused}
    assert ("JobRole", "s3:GetObject") in refused
    assert all("/blobs/" in c.resource for c in without_blob_index.iam_refused)


def test_a_plan_role_without_list_bucket_cannot_tell_a_missing_bundle(without_runner_listing: RunResult) -> None:
    assert without_runner_listing.status == "FAILED"
    assert without_runner_listing.report is not None  # the refusal is reported
    assert [(c.principal, c.action, c.why) for c in without_runner_listing.iam_refused] == [
        ("PlanFunctionRole", "s3:GetObject", "missing key, no s3:ListBucket")
    ]
    assert "/runner/" in without_runner_listing.iam_refused[0].resource
