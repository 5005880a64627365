"""Template parameters reach the repositories a run makes: parameter -> creation template -> ECR's create on push."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from devstack.content.images import seed
from devstack.stack import RunResult, Stack

pytestmark = pytest.mark.e2e

KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunResult]:
    parameters = {"UntaggedImageExpiryDays": "7", "EcrKmsKeyArn": KEY}
    with Stack(Path(tmp_path_factory.mktemp("stack")), parameters=parameters) as stack:
        assert stack.front is not None
        seed(stack.hub_pusher(), "library/busybox", "1.36", ["linux/amd64"])
        stack.write_allowlist(
            f'images:\n  - source: {stack.front.host}/library/busybox\n    tags: ["1.36"]\n    target: busybox\n'
        )
        yield stack.run({})


def test_the_created_repository_has_the_settings_the_parameters_asked_for(run: RunResult) -> None:
    assert run.outcomes() == {"mirror/busybox:1.36": "copied"}
    ecr = boto3.client("ecr")
    (repo,) = ecr.describe_repositories(repositoryNames=["mirror/busybox"])["repositories"]
    assert repo["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": KEY}
    assert {"Key": "managed-by", "Value": "hubmirror"} in ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])[
        "tags"
    ]
    (rule,) = json.loads(ecr.get_lifecycle_policy(repositoryName="mirror/busybox")["lifecyclePolicyText"])["rules"]
    assert (rule["selection"]["tagStatus"], rule["selection"]["countNumber"]) == ("untagged", 7)
