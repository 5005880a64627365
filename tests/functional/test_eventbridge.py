"""The run's events against EventBridge's rules (moto, with the size limit it lacks: devstack.eventsize).

AWS refuses a PutEvents request of more than 10 entries, or of 256 KB of entries or more
(https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html,
https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html), and answers
a refused entry with an ErrorCode instead of an exception.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from devstack import eventsize
from hubmirror.adapters.eventbridge import EventBus
from hubmirror.domain.decisions import Outcome
from hubmirror.steps.publish import entries, requests
from hubmirror.steps.report import Report


@pytest.fixture
def aws(aws_credentials: None) -> Iterator[tuple[Any, Any, str]]:
    """An events client, an SQS client, and a queue a rule on the default bus sends hubmirror's events to."""
    eventsize.install()
    try:
        with mock_aws():
            events, sqs = boto3.client("events"), boto3.client("sqs")
            url = sqs.create_queue(QueueName="events")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            events.put_rule(Name="hubmirror", EventPattern=json.dumps({"source": ["hubmirror"]}))
            events.put_targets(Rule="hubmirror", Targets=[{"Id": "q", "Arn": arn}])
            yield events, sqs, url
    finally:
        eventsize.uninstall()


def _received(sqs: Any, url: str) -> list[dict[str, Any]]:
    found = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def _report(count: int, reason: str = "why") -> Report:
    outcomes = [Outcome(f"docker.io/library/i{n}:1", "failed", reason, f"mirror/i{n}:1") for n in range(count)]
    return Report(run="run-1", outcomes=outcomes, location="s3://b/runs/run-1/report.json")


def test_the_stand_in_refuses_what_eventbridge_refuses(aws: tuple[Any, Any, str]) -> None:
    events, _, _ = aws
    entry = {"Source": "hubmirror", "DetailType": "Image Failed", "Detail": "{}"}
    with pytest.raises(ClientError, match="length less than or equal to 10"):
        events.put_events(Entries=[entry] * 11)
    big = {**entry, "Detail": json.dumps({"reason": "x" * 140_000})}
    with pytest.raises(ClientError, match="Total size of the entries in the request is over the limit"):
        events.put_events(Entries=[big, big])


def test_every_event_of_a_large_run_arrives_batched_by_count_and_size(aws: tuple[Any, Any, str]) -> None:
    _, sqs, url = aws
    report = _report(300, reason="é" * 1999)  # 301 events of about 4 KB each: 31 requests of at most 10
    found = entries(report, bus="default")
    sent, problems = EventBus().put(requests(found))
    assert (sent, problems) == (301, [])
    received = _received(sqs, url)
    assert len(received) == 301
    assert {e["detail"]["target"] for e in received if e["detail-type"] == "Image Failed"} == {
        f"mirror/i{n}:1" for n in range(300)
    }
    assert received[0]["detail"]["reason"] == "é" * 1999


def test_entries_too_large_to_go_ten_at_a_time_go_in_more_requests(aws: tuple[Any, Any, str]) -> None:
    """An event is at most about 8 KB (reasons are cut to 2,000 characters), so ten fit a request;
    the batching still holds to the size limit for any entry, as EventBridge does."""
    _, sqs, url = aws
    large = [
        {"Source": "hubmirror", "DetailType": "Image Failed", "Detail": json.dumps({"n": n, "pad": "x" * 60_000})}
        for n in range(10)
    ]
    batches = requests(large)  # type: ignore[arg-type]
    assert [len(b) for b in batches] == [4, 4, 2]
    assert EventBus().put(batches) == (10, [])
    assert sorted(e["detail"]["n"] for e in _received(sqs, url)) == list(range(10))


def test_a_refused_request_is_said_in_words_and_the_other_requests_still_go(aws: tuple[Any, Any, str]) -> None:
    _, sqs, url = aws
    found = entries(_report(12), bus="default")  # 13 events: one request of 11 is refused whole
    sent, problems = EventBus().put([found[:11], found[11:]])
    assert sent == 2
    assert len(problems) == 1
    assert problems[0].startswith("11 event(s) not sent: An error occurred (ValidationException)")
    assert len(_received(sqs, url)) == 2
