"""A private upstream repository: synced with credentials from Secrets Manager, refused without.

The password must appear nowhere hubmirror writes: function and build logs, the report,
the run's objects in S3, the execution history.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from devstack.content.images import seed
from devstack.stack import RunResult, Stack

pytestmark = pytest.mark.e2e

PASSWORD = "pw-7f3c9e1d-never-to-be-seen"
SECRET_NAME = "hubmirror/upstream"


def private_hub(stack: Stack) -> str:
    assert stack.front is not None
    stack.front.add_user("robot", PASSWORD)
    stack.front.make_private("team/secret-app", "robot")
    seed(stack.hub_pusher(), "team/secret-app", "2.1", ["linux/amd64", "linux/arm64"])
    seed(stack.hub_pusher(), "library/public-app", "1", ["linux/amd64"])
    hub = stack.front.host
    stack.write_allowlist(
        f"images:\n"
        f"  - source: {hub}/team/secret-app\n    tags: ['2.1']\n    target: secret-app\n"
        f"  - source: {hub}/team/secret-app\n    tags: ['2.1']\n    target: secret-app-built\n"
        f"    build_commands: ['LABEL org.example.private=true']\n"
        f"  - source: {hub}/library/public-app\n    tags: ['1']\n    target: public-app\n"
    )
    return hub


@pytest.fixture(scope="module")
def without_credentials(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunResult]:
    with Stack(Path(tmp_path_factory.mktemp("anonymous"))) as stack:
        private_hub(stack)
        yield stack.run({})


@pytest.fixture(scope="module")
def with_credentials(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, RunResult]]:
    workdir = Path(tmp_path_factory.mktemp("credentials"))
    with Stack(workdir, parameters={"UpstreamCredentialsSecret": SECRET_NAME}) as stack:
        hub = private_hub(stack)
        boto3.client("secretsmanager").create_secret(
            Name=SECRET_NAME, SecretString=json.dumps({hub: {"username": "robot", "password": PASSWORD}})
        )
        yield stack, stack.run({})


def test_without_credentials_the_private_items_fail_with_an_authentication_reason(
    without_credentials: RunResult,
) -> None:
    result = without_credentials
    assert result.status == "FAILED"
    assert result.outcomes() == {
        "mirror/secret-app:2.1": "failed",
        "mirror/secret-app-built:2.1": "failed",
        "mirror/public-app:1": "copied",
    }
    for target in ("mirror/secret-app:2.1", "mirror/secret-app-built:2.1"):
        reason = result.item(target)["reason"]
        assert reason.startswith("authentication:"), reason
        assert "access denied anonymously" in reason


def test_with_credentials_from_secrets_manager_they_sync(with_credentials: tuple[Stack, RunResult]) -> None:
    _, result = with_credentials
    assert result.status == "SUCCEEDED", result.cause
    assert result.outcomes() == {
        "mirror/secret-app:2.1": "copied",
        "mirror/secret-app-built:2.1": "built",
        "mirror/public-app:1": "copied",
    }


def test_the_password_appears_nowhere_hubmirror_writes(with_credentials: tuple[Stack, RunResult]) -> None:
    stack, result = with_credentials
    assert stack.deployment is not None
    places: dict[str, str] = {}
    for log in (stack.workdir / "logs").rglob("*.log"):
        places[str(log)] = log.read_text(errors="replace")
    assert any("codebuild" in p for p in places), "the build logs were searched"
    assert any("CheckFunction" in p for p in places), "the function logs were searched"
    s3 = boto3.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.deployment.bucket):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=stack.deployment.bucket, Key=obj["Key"])["Body"].read()
            places[f"s3://{obj['Key']}"] = body.decode("utf-8", errors="replace")
    places["report"] = json.dumps(result.report) + (result.text or "") + (result.subject or "")
    places["history"] = json.dumps(result.events, default=str)
    leaks = [place for place, text in places.items() if PASSWORD in text]
    assert leaks == []
