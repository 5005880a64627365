"""The chat message: a custom notification of Amazon Q Developer in chat applications.

Every message is validated against the documented event format
(``tests/unit/data/chatbot-custom-notification.schema.json``, written from the AWS page).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hubmirror.domain.decisions import Outcome
from hubmirror.domain.items import WorkItem
from hubmirror.steps import chat
from hubmirror.steps.report import Report

SCHEMA = json.loads((Path(__file__).parent / "data" / "chatbot-custom-notification.schema.json").read_text())
EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:hubmirror-sync:run-7"
LOCATION = "s3://hubmirror-artifacts/runs/run-7/report.json"


def outcome(n: int, name: str, reason: str = "why", digest: str | None = "sha256:" + "ab" * 32) -> Outcome:
    item = WorkItem("docker.io/library/app", str(n), "mirror/app", str(n))
    return Outcome.for_item(item, name, reason, upstream_digest=digest)


def report(*outcomes: Outcome, **extra: Any) -> Report:
    return Report(run="run-7", outcomes=list(outcomes), location=LOCATION, **extra)


def valid(message: str) -> dict[str, Any]:
    document = json.loads(message)
    jsonschema.validate(document, SCHEMA)
    return document  # type: ignore[no-any-return]


REPORTS = {
    "ok": report(outcome(1, "copied", "copied sha256:abababababab"), outcome(2, "unchanged")),
    "failed": report(outcome(1, "failed", "signature: it does not verify"), outcome(2, "built", "built from x")),
    "deferred": report(outcome(1, "deferred", "pull budget low")),
    "dry run": report(outcome(1, "would_copy", "dry run: new"), dry_run=True),
    "plan refused": Report(run="run-7", plan_error="AllowlistError: allowlist.yaml:3: images[0].tags: ..."),
    "empty": report(),
    "huge": report(*(outcome(n, "failed", "x" * 5000) for n in range(2000))),
}


@pytest.mark.parametrize("name", list(REPORTS))
def test_every_report_makes_a_notification_in_the_documented_format(name: str) -> None:
    valid(chat.message(REPORTS[name], execution=EXECUTION))
    valid(chat.message(REPORTS[name]))  # without the execution's ARN too


def test_the_schema_refuses_what_chatbot_would_drop() -> None:
    """The schema is not a formality: each of these breaks the documented format."""
    good = json.loads(chat.message(REPORTS["ok"], execution=EXECUTION))
    broken = [
        {**good, "version": "2.0"},
        {**good, "source": "hubmirror"},
        {**good, "content": {**good["content"], "textType": "markdown"}},
        {**good, "content": {**good["content"], "body": "x"}},
        {k: v for k, v in good.items() if k != "content"},
        {**good, "metadata": {**good["metadata"], "additionalContext": {"failed": 1}}},
    ]
    for document in broken:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(document, SCHEMA)


def test_the_title_has_the_counts_and_the_failed_images_come_first_with_their_reasons() -> None:
    document = valid(chat.message(REPORTS["failed"], execution=EXECUTION))
    content = document["content"]
    assert content["title"] == ":x: hubmirror FAILED: 1 failed, 1 built, 0 unchanged of 2"
    text = content["description"]
    assert text.index("*Failed*") < text.index("*Built*")
    assert "• `mirror/app:1` `sha256:abababababab`: signature: it does not verify" in text
    assert document["metadata"]["threadId"] == "hubmirror-sync"
    assert document["metadata"]["summary"] == "hubmirror FAILED: 1 failed, 1 built, 0 unchanged of 2 (run-7)"


def test_the_next_steps_link_to_the_execution_and_the_report_in_the_console() -> None:
    steps = valid(chat.message(REPORTS["failed"], execution=EXECUTION))["content"]["nextSteps"]
    assert steps == [
        "No signature over this digest verifies with the key verify: names: check with the publisher that the "
        "tag was not replaced, or that the key is current; the mirror keeps the image it had.",
        "Execution: https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1"
        f"#/v2/executions/details/{EXECUTION}",
        "Full report: https://eu-west-1.console.aws.amazon.com/s3/object/hubmirror-artifacts"
        "?region=eu-west-1&prefix=runs/run-7/report.json",
    ]
    related = valid(chat.message(REPORTS["ok"], execution=EXECUTION))["metadata"]["relatedResources"]
    assert related == [EXECUTION, "arn:aws:s3:::hubmirror-artifacts/runs/run-7/report.json"]


def test_a_large_run_lists_a_few_images_and_counts_the_rest() -> None:
    text = valid(chat.message(REPORTS["huge"]))["content"]["description"]
    assert text.count("\n• ") == chat.LISTED
    assert f"…and {2000 - chat.LISTED} more, in the full report" in text
    assert len(text) <= chat.DESCRIPTION_CHARS
    assert len(chat.message(REPORTS["huge"]).encode()) < 16 * 1024


def test_a_refused_plan_says_why_and_nothing_synced() -> None:
    content = valid(chat.message(REPORTS["plan refused"]))["content"]
    assert content["title"].startswith(":x: hubmirror FAILED: the plan was refused")
    assert "AllowlistError: allowlist.yaml:3" in content["description"]


def _group(text: str, name: str) -> str:
    """The lines of one group of the description, up to the next group."""
    part = text.split(f"\n*{name}*\n", 1)[1]
    return part.split("\n\n", 1)[0]


def test_each_group_past_the_list_limit_counts_what_it_leaves_out() -> None:
    """Failed and copied images both more than the message lists: each "…and N more" is that
    group's own remainder, computed here from the sizes the report was made with."""
    limit = chat.LISTED
    failed, copied, deferred = limit + 5, limit + 3, 2
    made = report(
        *(outcome(n, "failed") for n in range(failed)),
        *(outcome(1000 + n, "copied") for n in range(copied)),
        *(outcome(2000 + n, "deferred") for n in range(deferred)),
    )
    text = valid(chat.message(made))["content"]["description"]
    assert set(text.splitlines()[0].split(", ")) == {
        f"*{failed}* failed",
        f"*{copied}* copied",
        f"*{deferred}* deferred",
    }
    shown = {name: _group(text, name).splitlines() for name in ("Failed", "Copied", "Deferred")}
    assert sum(line.startswith("• ") for line in shown["Failed"]) == limit
    assert shown["Failed"][-1] == "…and 5 more, in the full report"
    assert sum(line.startswith("• ") for line in shown["Copied"]) == 0
    assert shown["Copied"] == [f"…and {copied} more, in the full report"]
    assert shown["Deferred"] == [f"…and {deferred} more, in the full report"]
    assert text.count("\n• ") == limit


def test_a_first_group_under_the_limit_leaves_the_rest_of_the_list_to_the_next() -> None:
    limit = chat.LISTED
    failed, copied = limit - 4, 10
    made = report(*(outcome(n, "failed") for n in range(failed)), *(outcome(1000 + n, "copied") for n in range(copied)))
    text = valid(chat.message(made))["content"]["description"]
    shown = {name: _group(text, name).splitlines() for name in ("Failed", "Copied")}
    assert len(shown["Failed"]) == failed  # all listed, nothing counted
    assert [line.startswith("• ") for line in shown["Copied"]] == [True] * 4 + [False]
    assert shown["Copied"][-1] == "…and 6 more, in the full report"
