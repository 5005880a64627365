"""The run's events against EventBridge's rules (moto, with the size limit and the refusal of
single entries it lacks: devstack.aws.eventsize).

AWS refuses a PutEvents request of more than 10 entries, or of 256 KB of entries or more
(https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html,
https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html), and answers
a refused entry with an ErrorCode instead of an exception; ThrottlingException and
InternalFailure are worth sending again, other codes are not
(https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEventsResultEntry.html).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from devstack.aws import eventsize
from hubmirror.adapters import eventbridge
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


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The back-off delays asked for, instead of sleeping them."""
    delays: list[float] = []
    monkeypatch.setattr("hubmirror.adapters.eventbridge.time.sleep", delays.append)
    return delays


def _requests_seen(events: Any) -> list[list[int]]:
    """Each PutEvents request the client sends, as its entries' ``n``."""
    seen: list[list[int]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        seen.append([json.loads(e["Detail"])["n"] for e in params["Entries"]])

    events.meta.events.register("provide-client-params.events.PutEvents", record)
    return seen


def _entry(n: int) -> dict[str, str]:
    return {"Source": "hubmirror", "DetailType": "Image Failed", "Detail": json.dumps({"n": n})}


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


def test_the_stand_in_refuses_single_entries_as_eventbridge_does(aws: tuple[Any, Any, str]) -> None:
    events, sqs, url = aws
    eventsize.refusals.append(("ThrottlingException", "Rate exceeded"))
    answer = events.put_events(Entries=[_entry(0), _entry(1)])
    assert answer["FailedEntryCount"] == 1
    assert answer["Entries"][0] == {"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}
    assert set(answer["Entries"][1]) == {"EventId"}
    assert eventsize.refusals == []
    assert [e["detail"]["n"] for e in _received(sqs, url)] == [1]


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


def test_an_entry_throttled_then_failed_internally_is_sent_on_the_third_try(
    aws: tuple[Any, Any, str], slept: list[float]
) -> None:
    events, sqs, url = aws
    seen = _requests_seen(events)
    eventsize.refusals.extend([("ThrottlingException", "Rate exceeded"), ("InternalFailure", "Try again")])
    assert EventBus(events).put([[_entry(0)]]) == (1, [])
    assert seen == [[0], [0], [0]]
    assert eventsize.refusals == []
    assert [e["detail"]["n"] for e in _received(sqs, url)] == [0]
    assert len(slept) == 2
    assert eventbridge.BACKOFF * 0.5 <= slept[0] <= eventbridge.BACKOFF
    assert eventbridge.BACKOFF <= slept[1] <= eventbridge.BACKOFF * 2


def test_only_the_refused_entries_are_sent_again(aws: tuple[Any, Any, str], slept: list[float]) -> None:
    events, sqs, url = aws
    seen = _requests_seen(events)
    eventsize.refusals.append(("ThrottlingException", "Rate exceeded"))
    assert EventBus(events).put([[_entry(0), _entry(1), _entry(2)]]) == (3, [])
    assert seen == [[0, 1, 2], [0]]
    assert sorted(e["detail"]["n"] for e in _received(sqs, url)) == [0, 1, 2]
    assert len(slept) == 1


def test_an_entry_refused_for_good_is_not_sent_again(aws: tuple[Any, Any, str], slept: list[float]) -> None:
    events, sqs, url = aws
    seen = _requests_seen(events)
    eventsize.refusals.extend([("MalformedDetail", "Detail is malformed.")] * 2)
    assert EventBus(events).put([[_entry(0)]]) == (0, ["Image Failed: MalformedDetail (Detail is malformed.)"])
    assert seen == [[0]]
    assert eventsize.refusals == [("MalformedDetail", "Detail is malformed.")]  # one of the two used
    assert (slept, _received(sqs, url)) == ([], [])


def test_an_entry_throttled_every_time_is_one_problem_after_the_last_attempt(
    aws: tuple[Any, Any, str], slept: list[float]
) -> None:
    events, sqs, url = aws
    seen = _requests_seen(events)
    eventsize.refusals.extend([("ThrottlingException", "Rate exceeded")] * 10)
    attempts = eventbridge.RETRIES + 1
    assert EventBus(events).put([[_entry(0)]]) == (
        0,
        [f"Image Failed: ThrottlingException (Rate exceeded) (after {attempts} attempts)"],
    )
    assert seen == [[0]] * attempts
    assert len(eventsize.refusals) == 10 - attempts
    assert len(slept) == eventbridge.RETRIES
    assert _received(sqs, url) == []
