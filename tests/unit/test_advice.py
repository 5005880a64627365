"""Every reason a report gives has a cause from a closed set, a next step, and a retry promise."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hubmirror.domain.advice import NEXT_STEPS, RETRIED, RULES, TITLES, Cause, remedy
from hubmirror.domain.decisions import Outcome
from hubmirror.domain.registry.errors import (
    AuthenticationError,
    BlobDownloadError,
    NotFoundError,
    RateLimitedError,
    RegistryError,
    RegistryUnavailableError,
    TagListTooLongError,
)
from hubmirror.steps import report as reporting

README = Path(__file__).resolve().parents[2] / "README.md"


def _check(exc: RegistryError) -> str:
    """A reason as the check words a registry error (``steps/check.py``)."""
    return f"{exc.reason}: {exc}"


def _job(kind: str, exc: RegistryError) -> str:
    """A reason as the job words one (``runner/job.py``)."""
    return f"{kind} failed: {exc.reason}: {exc}"


# Reasons as their producers write them, and the cause each must get.
PRODUCED = [
    ("not found upstream: " + _check(NotFoundError("upstream docker.io/library/nginx:9.99: manifest unknown")), Cause.ALLOWLIST),
    ("pinned digest sha256:ab is gone upstream", Cause.ALLOWLIST),
    ("copy failed: registry: upstream h/library/x: blob sha256:ab declares a size of 1000000000000000 bytes; "
     "a layer is at most 54525952000 bytes (ECR's limit)", Cause.ALLOWLIST),
    ("copy failed: registry: upstream h/library/x: sha256:ab is an index inside an index; "
     "nested indexes are not supported", Cause.ALLOWLIST),
    ("cannot list upstream tags: TagListTooLongError: upstream h/library/x: the tag list has more than 50 tags",
     Cause.ALLOWLIST),
    ("cannot list upstream tags: AuthenticationError: upstream ghcr.io/acme/app: 401", Cause.UPSTREAM_CREDENTIALS),
    ("cannot list upstream tags: RegistryUnavailableError: upstream quay.io/x: server error 502",
     Cause.UPSTREAM_UNAVAILABLE),
    (_check(TagListTooLongError("upstream docker.io/library/nginx: more than 10000 tags")), Cause.ALLOWLIST),
    (_job("copy", RegistryError("target: manifest is 5 MiB, more than the 4 MiB ECR accepts")), Cause.ALLOWLIST),
    (_check(AuthenticationError("upstream ghcr.io/acme/app: 401 unauthorized")), Cause.UPSTREAM_CREDENTIALS),
    (_job("copy", AuthenticationError("upstream ghcr.io/acme/app: 403 denied")), Cause.UPSTREAM_CREDENTIALS),
    (_check(AuthenticationError("target 1.dkr.ecr.eu-west-1.amazonaws.com/mirror/app: 403")), Cause.TARGET),
    ("copy failed: AWS: An error occurred (LimitExceededException) when calling CreateRepository", Cause.TARGET),
    (_job("copy", RegistryUnavailableError("target 1.dkr.ecr.eu-west-1.amazonaws.com: server error 503")), Cause.TARGET),
    (_check(RateLimitedError("upstream docker.io: 429 toomanyrequests")), Cause.RATE_LIMIT),
    ("docker.io pull budget low (3 of 100 left, floor 10); deferred to a later run", Cause.RATE_LIMIT),
    (_check(RegistryUnavailableError("upstream quay.io/x/y: server error 503")), Cause.UPSTREAM_UNAVAILABLE),
    (_job("copy", BlobDownloadError("upstream quay.io/x/y: blob cut short")), Cause.UPSTREAM_UNAVAILABLE),
    ("signature: no cosign signature over sha256:ab verifies; the target tag is left as it is", Cause.SIGNATURE),
    (
        "signature: docker.io pull budget low (12 of 100 pulls left): the pull budget cannot take the signature "
        "manifest sha256-ab; deferred to a later run",
        Cause.RATE_LIMIT,
    ),
    ("signature: rate limited: upstream docker.io/library/nginx: 429; deferred to a later run", Cause.RATE_LIMIT),
    ("build failed: buildah build failed: Error: building at STEP \"RUN false\": exit status 1", Cause.BUILD_LINE),
    ("build failed: internal error: KeyError: 'digest'", Cause.HUBMIRROR),
    ("not started in time (the job ran out of its time); a later run copies it", Cause.HUBMIRROR),
    ("Copy step failed: States.TaskFailed: CodeBuild build b:1 ended FAILED", Cause.HUBMIRROR),
]  # fmt: skip


@pytest.mark.parametrize(("reason", "cause"), PRODUCED, ids=[c.value + str(n) for n, (_, c) in enumerate(PRODUCED)])
def test_each_reason_producers_write_gets_the_cause_it_has(reason: str, cause: Cause) -> None:
    assert remedy(reason).cause is cause


def test_every_cause_has_a_title_a_next_step_a_retry_promise_and_a_producer() -> None:
    for cause in Cause:
        assert TITLES[cause]
        assert NEXT_STEPS[cause]
        assert isinstance(RETRIED[cause], bool)
    assert {cause for _, cause in PRODUCED} == set(Cause)
    assert {rule[2] for rule in RULES} <= set(Cause)


def test_only_an_allowlist_mistake_is_said_not_to_heal_by_a_retry() -> None:
    assert [cause for cause in Cause if not RETRIED[cause]] == [Cause.ALLOWLIST]
    assert "a retry will not help" in remedy("not found upstream: not found: upstream x: 404").next_step


def test_the_readme_troubleshooting_table_has_a_row_for_each_cause_and_no_other() -> None:
    section = README.read_text().split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z-]+)` \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$", section, re.MULTILINE)
    assert [row[0] for row in rows] == [cause.value for cause in Cause]
    for value, title, retried, _ in rows:
        assert title.strip() == TITLES[Cause(value)]
        assert retried.strip() == ("yes" if RETRIED[Cause(value)] else "no")


@pytest.mark.parametrize(
    ("partition", "region", "console", "registry"),
    [
        ("aws", "eu-west-1", "eu-west-1.console.aws.amazon.com", "111122223333.dkr.ecr.eu-west-1.amazonaws.com"),
        ("aws-cn", "cn-north-1", "console.amazonaws.cn", "111122223333.dkr.ecr.cn-north-1.amazonaws.com.cn"),
        ("aws-us-gov", "us-gov-west-1", "console.amazonaws-us-gov.com", "111122223333.dkr.ecr.us-gov-west-1.amazonaws.com"),
    ],
)  # fmt: skip
def test_links_and_pull_references_follow_the_partition(
    partition: str, region: str, console: str, registry: str
) -> None:
    execution = f"arn:{partition}:states:{region}:111122223333:execution:hubmirror-sync:run-1"
    digest = "sha256:" + "ab" * 32
    done = Outcome("docker.io/library/nginx:1.27", "copied", "copied", "mirror/nginx:1.27", target_digest=digest)
    failed = Outcome("docker.io/library/nginx:9.99", "failed", "not found upstream: x", "mirror/nginx:9.99")
    report = reporting.Report(
        run="run-1",
        outcomes=[done, failed],
        location="s3://artifacts/runs/run-1/report.json",
        execution=execution,
        registry=registry,
    )
    text = reporting.text(report)
    assert f"Execution: https://{console}/states/home?region={region}#/v2/executions/details/{execution}" in text
    assert f"Full report: https://{console}/s3/object/artifacts?region={region}&prefix=runs/run-1/report.json" in text
    assert f"  docker.io/library/nginx:1.27 -> {registry}/mirror/nginx:1.27@{digest}" in text
    document = reporting.document(report)
    assert document["items"][1]["pull"] == f"{registry}/mirror/nginx:1.27@{digest}"  # failed items come first
    assert (document["items"][0]["cause"], document["items"][0]["retried"]) == ("allowlist", False)
    assert document["full_report"] == "s3://artifacts/runs/run-1/report.json"
