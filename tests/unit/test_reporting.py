"""Reports: one outcome per item whatever happened, readable text, parseable JSON, bounded size."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hubmirror.domain.decisions import Outcome, TargetState
from hubmirror.domain.items import WorkItem
from hubmirror.steps import report as reporting
from hubmirror.steps.runlock import RUN_LOCK_KEY, RUN_LOCK_SECONDS, RunLockedError, release_run_lock, take_run_lock
from tests.fakes import MemoryStore


def item(n: int) -> WorkItem:
    return WorkItem("docker.io/library/app", str(n), "mirror/app", str(n))


def outcome(n: int, name: str, reason: str = "why") -> dict[str, Any]:
    return Outcome.for_item(item(n), name, reason).to_dict()


def run_objects(count: int, batch_size: int = 2) -> dict[str, Any]:
    return {
        "runs/r/plan.json": {
            "items": [item(n).to_dict() for n in range(count)],
            "options": {},
            "batch_size": batch_size,
        }
    }


def test_every_item_gets_exactly_one_outcome_and_builds_win_over_checks() -> None:
    objects = run_objects(4)
    objects["runs/r/outcomes/00000-check.json"] = [outcome(0, "unchanged")]
    objects["runs/r/jobs/00000-copy.json"] = {"batch": "00000", "kind": "copy", "items": [item(1).to_dict()]}
    objects["runs/r/outcomes/00000-copy.json"] = [outcome(1, "copied")]
    objects["runs/r/outcomes/00001-check.json"] = [outcome(2, "failed", "not found upstream")]
    report = reporting.collect(MemoryStore(objects), "r")
    assert [o.outcome for o in report.outcomes] == ["unchanged", "copied", "failed", "failed"]
    assert report.outcomes[3].reason == "no outcome was recorded (its batch did not finish)"


def test_an_item_no_job_recorded_carries_the_error_of_its_own_batch_when_copies_and_builds_are_apart() -> None:
    built = WorkItem("docker.io/library/app", "b", "mirror/app", "b", build_commands=("VOLUME /data",))
    objects = run_objects(0)
    plan = objects["runs/r/plan.json"]
    plan["items"] = [item(0).to_dict(), built.to_dict(), item(1).to_dict()]
    plan["batch_of"] = ["00000", "00001", "00000"]  # the copies' batch, then the build's
    objects["runs/r/outcomes/00000-check.json"] = [outcome(0, "unchanged"), outcome(1, "unchanged")]
    objects["runs/r/errors/00001-check.json"] = {"Error": "Lambda.Unknown", "Cause": "out of memory"}
    report = reporting.collect(MemoryStore(objects), "r")
    assert [o.outcome for o in report.outcomes] == ["unchanged", "failed", "unchanged"]
    assert report.outcomes[1].target == "mirror/app:b"
    assert "out of memory" in report.outcomes[1].reason


def test_items_of_a_failed_build_carry_the_builds_error() -> None:
    objects = run_objects(2)
    objects["runs/r/outcomes/00000-check.json"] = []
    objects["runs/r/jobs/00000-copy.json"] = {
        "batch": "00000",
        "kind": "copy",
        "items": [item(0).to_dict(), item(1).to_dict()],
    }
    objects["runs/r/outcomes/00000-copy.json"] = [outcome(0, "copied")]
    cause = json.dumps({"Build": {"Id": "p:1", "BuildStatus": "TIMED_OUT"}})
    objects["runs/r/errors/00000-copy.json"] = {"Error": "States.TaskFailed", "Cause": cause}
    report = reporting.collect(MemoryStore(objects), "r")
    assert report.outcomes[0].outcome == "copied"
    assert report.outcomes[1].outcome == "failed"
    assert report.outcomes[1].reason == "copy step failed: States.TaskFailed: CodeBuild build p:1 ended TIMED_OUT"


def test_subject_is_one_short_ascii_line_with_the_counts() -> None:
    report = reporting.Report(run="run-1", outcomes=[Outcome.for_item(item(n), "copied", "x") for n in range(3)])
    report.outcomes.append(Outcome.for_item(item(9), "failed", "boom"))
    subject = reporting.subject(report)
    assert subject == "hubmirror FAILED: 1 failed, 3 copied, 0 unchanged of 4 (run-1)"
    long = reporting.Report(run="r" * 200)
    assert len(reporting.subject(long)) == 99  # SNS: "less than 100 characters"


def test_message_gives_people_text_and_programs_json() -> None:
    report = reporting.Report(
        run="r", outcomes=[Outcome.for_item(item(1), "built", "built from sha256:abc")], location="s3://b/k"
    )
    message = json.loads(reporting.sns_message(report))
    assert "mirror/app:1" in message["default"]
    assert "Built:" in message["default"]
    document = json.loads(message["sqs"])
    assert document["counts"]["built"] == 1
    assert document["items"][0]["target"] == "mirror/app:1"
    assert set(message) == {"default", "sqs", "lambda", "http", "https"}


def test_large_runs_list_changes_and_failures_but_count_unchanged_items() -> None:
    outcomes = [Outcome.for_item(item(n), "unchanged", "same") for n in range(5000)]
    outcomes[17] = Outcome.for_item(item(17), "failed", "boom")
    report = reporting.Report(run="r", outcomes=outcomes, location="s3://b/k")
    document = reporting.document(report)
    assert [i["outcome"] for i in document["items"]] == ["failed"]
    assert document["items_not_listed"] == 4999
    assert document["counts"]["unchanged"] == 4999
    assert len(reporting.sns_message(report)) < 64 * 1024
    assert len(json.dumps(reporting.summary(report))) < 256 * 1024


def test_failures_beyond_the_cap_are_counted_not_listed() -> None:
    report = reporting.Report(run="r", outcomes=[Outcome.for_item(item(n), "failed", "x" * 300) for n in range(3000)])
    summary = reporting.summary(report)
    assert len(json.dumps(summary)) < 256 * 1024
    document = json.loads(json.loads(summary["message"])["sqs"])
    assert 0 < len(document["items"]) < reporting.LIST_CAP
    assert document["items_not_listed"] == 3000 - len(document["items"])
    assert document["counts"]["failed"] == 3000


def test_plan_failure_report_quotes_the_allowlist_errors() -> None:
    error = {
        "Error": "AllowlistError",
        "Cause": json.dumps({"errorType": "AllowlistError", "errorMessage": "a.yaml:3: images[0].tags[0]: bad"}),
    }
    report = reporting.plan_failure("r", error)
    assert report.status == "failed"
    assert "a.yaml:3: images[0].tags[0]: bad" in reporting.text(report)
    assert reporting.summary(report)["failed"] == 1


def test_one_run_holds_the_lock_until_it_lets_go_and_a_dead_ones_lapses() -> None:
    store = MemoryStore({})
    take_run_lock(store, "first", now=1000.0)
    take_run_lock(store, "first", now=1001.0)  # its plan step retried: still its own
    with pytest.raises(RunLockedError, match=r"another execution, first, has been syncing since 1970-01-01T00:16:40Z"):
        take_run_lock(store, "second", now=1002.0)
    release_run_lock(store, "second")  # not its lock: nothing happens
    assert store.objects[RUN_LOCK_KEY]["execution"] == "first"
    release_run_lock(store, "first")
    take_run_lock(store, "second", now=1003.0)
    take_run_lock(store, "third", now=1003.0 + RUN_LOCK_SECONDS + 1)  # second died: its lock lapsed
    assert store.objects[RUN_LOCK_KEY]["execution"] == "third"


def _job_run(kind: str = "copy") -> dict[str, Any]:
    objects = run_objects(2)
    entries = [{**item(n).to_dict(), "upstream_digest": "sha256:" + str(n) * 64, "recipe": None} for n in (0, 1)]
    objects["runs/r/jobs/00000-copy.json"] = {"batch": "00000", "kind": kind, "items": entries}
    objects["runs/r/outcomes/00000-check.json"] = []
    return objects


def test_items_without_outcomes_are_asked_of_the_target_before_they_are_called_failed() -> None:
    objects = _job_run()
    held = {"mirror/app:0": "sha256:" + "0" * 64, "mirror/app:1": "sha256:" + "9" * 64}
    lookup = lambda i: TargetState(held[i.target], "application/vnd.oci.image.index.v1+json")  # noqa: E731
    report = reporting.collect(MemoryStore(objects), "r", target=lookup)
    by_target = {o.target: o for o in report.outcomes}
    assert by_target["mirror/app:0"].outcome == "copied"  # the job wrote it, then died before saying so
    assert by_target["mirror/app:0"].reason.startswith("in place in the target (its job recorded no outcome")
    assert by_target["mirror/app:1"].outcome == "failed"  # the target holds something else


def test_a_target_as_the_check_saw_it_means_the_job_did_not_do_its_work() -> None:
    objects = _job_run()
    for entry in objects["runs/r/jobs/00000-copy.json"]["items"]:
        entry["target_digest"] = entry["upstream_digest"]  # a forced copy of what was already there
    lookup = lambda i: TargetState("sha256:" + i.tag * 64, "application/vnd.oci.image.index.v1+json")  # noqa: E731
    report = reporting.collect(MemoryStore(objects), "r", target=lookup)
    assert {o.outcome for o in report.outcomes} == {"failed"}


def test_a_target_that_cannot_be_asked_leaves_the_item_failed_with_both_reasons() -> None:
    def unreachable(_: WorkItem) -> TargetState | None:
        raise RuntimeError("target 127.0.0.1:9/mirror/app: cannot reach the registry: connection refused")

    report = reporting.collect(MemoryStore(_job_run()), "r", target=unreachable)
    assert {o.outcome for o in report.outcomes} == {"failed"}
    assert "the target could not be asked: target 127.0.0.1:9" in report.outcomes[0].reason


class _Versions:
    def __init__(self, current: str | None) -> None:
        self.current = current

    def current_version(self, key: str) -> str | None:
        assert key == "allowlist/allowlist.yaml"
        return self.current


def test_a_run_that_planned_the_newest_allowlist_starts_no_follow_up() -> None:
    from hubmirror.steps.runlock import follow_up

    started: list[tuple[str, str]] = []
    assert follow_up(_Versions("v2"), "v2", lambda name, data: started.append((name, data))) is None
    assert follow_up(_Versions(None), None, lambda name, data: started.append((name, data))) is None
    assert started == []


def test_a_version_that_arrived_during_the_run_gets_a_run_named_after_it() -> None:
    from hubmirror.steps.runlock import follow_up

    started: list[tuple[str, str]] = []
    notice = follow_up(_Versions("v3.x_y"), "v2", lambda name, data: started.append((name, data)))
    assert started == [("allowlist-v3.x_y", '{"allowlist_version": "v3.x_y"}')]
    assert notice == "allowlist version v3.x_y arrived during this run: execution allowlist-v3.x_y syncs it now"


def test_a_follow_up_that_cannot_start_is_a_notice_not_a_failed_report() -> None:
    from hubmirror.steps.runlock import follow_up

    def refuse(name: str, data: str) -> None:
        raise PermissionError("not authorized to perform: states:StartExecution")

    notice = follow_up(_Versions("v3"), "v2", refuse)
    assert notice is not None
    assert "no run could be started for it (PermissionError: not authorized" in notice
    assert "start one with `hubmirror run`" in notice


def test_each_failure_says_what_to_do_and_a_retry_is_promised_only_where_it_helps() -> None:
    """Reasons as the check and the registry client word them (errors' own messages)."""
    from hubmirror.domain.advice import advice
    from hubmirror.domain.registry.errors import AuthenticationError, NotFoundError, RegistryUnavailableError

    def reason(exc: Exception, prefix: str = "") -> str:
        return f"{prefix}{getattr(exc, 'reason', '')}: {exc}"

    missing = reason(NotFoundError("upstream docker.io/library/nginx: manifest unknown (404)"), "not found upstream: ")
    assert advice(missing).startswith("upstream has no such image or tag: fix the entry")
    refused = AuthenticationError(
        "upstream ghcr.io/acme/app: the registry requires credentials and none are configured"
    )
    assert "UpstreamCredentialsSecret" in advice(reason(refused))
    assert advice(
        reason(AuthenticationError("target 1.dkr.ecr.eu-west-1.amazonaws.com/mirror/app: denied"))
    ).startswith("ECR refused")
    assert advice("signature: no cosign signature over sha256:ab; the target tag is left as it is").startswith(
        "no signature over this digest verifies"
    )
    assert advice("docker.io pull budget low (3 of 100 left, floor 10); deferred to a later run; new").startswith(
        "nothing to do"
    )
    assert advice(reason(RegistryUnavailableError("upstream quay.io/x/y: server error 503"))).startswith(
        "nothing to do unless it repeats"
    )


def test_the_report_text_says_what_to_do_under_each_failed_or_deferred_item() -> None:
    failed = Outcome(
        "docker.io/library/nginx:1.99", "failed", "not found upstream: not found: ...", "mirror/nginx:1.99"
    )
    waits = Outcome(
        "docker.io/library/redis:7", "deferred", "rate limited: 429; deferred to a later run", "mirror/redis:7"
    )
    done = Outcome("docker.io/library/busybox:1", "copied", "copied sha256:ab", "mirror/busybox:1")
    lines = reporting.text(reporting.Report(run="r", outcomes=[failed, waits, done])).splitlines()
    at = lines.index("  docker.io/library/nginx:1.99 -> mirror/nginx:1.99")
    assert lines[at + 2] == "      cause: the allowlist is wrong; retried by the next run: no"
    assert lines[at + 3].startswith("      what to do: upstream has no such image or tag")
    at = lines.index("  docker.io/library/redis:7 -> mirror/redis:7")
    assert lines[at + 2] == "      cause: rate limit; retried by the next run: yes"
    assert lines[at + 3].startswith("      what to do: nothing to do: a later run syncs it")
    assert sum("what to do" in line for line in lines) == 2  # not under the copied image
