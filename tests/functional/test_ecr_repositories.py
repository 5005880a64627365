"""The mirror's repositories: made on the first push by the stack's creation template (moto's ECR,
through the ECR stand-in's create-on-push), and hubmirror's pull statements in their policies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from devstack.aws.deploy import creation_template, load_template
from devstack.stack import create_from_template
from hubmirror.adapters.ecr import Ecr
from hubmirror.domain.pullpolicy import Pullers, statements

KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
TEMPLATE = load_template()
ORGANIZATION = "o-a1b2c3d4e5"


@pytest.fixture
def client(aws_credentials: None) -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("ecr")


def _made(parameters: dict[str, str], name: str) -> dict[str, Any] | None:
    template = creation_template(TEMPLATE, "MirrorRepositoryTemplate", parameters)
    return None if create_from_template([template], name) is None else template


def test_a_first_push_makes_the_repository_with_the_template_s_settings(client: Any) -> None:
    assert _made({"UntaggedImageExpiryDays": "14", "PullOrganizationId": ORGANIZATION}, "mirror/nginx")
    (repo,) = client.describe_repositories(repositoryNames=["mirror/nginx"])["repositories"]
    assert repo["encryptionConfiguration"]["encryptionType"] == "AES256"
    assert repo["imageTagMutability"] == "MUTABLE"
    tags = client.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]
    assert {"Key": "managed-by", "Value": "hubmirror"} in tags
    (rule,) = json.loads(client.get_lifecycle_policy(repositoryName="mirror/nginx")["lifecyclePolicyText"])["rules"]
    assert rule["selection"] == {
        "tagStatus": "untagged",
        "countType": "sinceImagePushed",
        "countUnit": "days",
        "countNumber": 14,
    }
    assert rule["action"] == {"type": "expire"}
    policy = json.loads(client.get_repository_policy(repositoryName="mirror/nginx")["policyText"])
    assert policy["Statement"] == statements(Pullers(ORGANIZATION))


def test_a_kms_key_encrypts_new_repositories_and_no_expiry_sets_no_lifecycle_policy(client: Any) -> None:
    assert _made({"EcrKmsKeyArn": KEY, "UntaggedImageExpiryDays": "0"}, "mirror/vault")
    (repo,) = client.describe_repositories(repositoryNames=["mirror/vault"])["repositories"]
    assert repo["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": KEY}
    with pytest.raises(ClientError, match="LifecyclePolicyNotFound"):
        client.get_lifecycle_policy(repositoryName="mirror/vault")
    with pytest.raises(ClientError, match="RepositoryPolicyNotFound"):  # nobody else named: no policy
        client.get_repository_policy(repositoryName="mirror/vault")


def test_a_push_outside_the_prefix_makes_nothing(client: Any) -> None:
    assert _made({}, "team/app") is None
    assert client.describe_repositories()["repositories"] == []


class _Writes:
    """Counts the policy writes a client sends."""

    def __init__(self, client: Any) -> None:
        self.count = 0
        for action in ("SetRepositoryPolicy", "DeleteRepositoryPolicy"):
            client.meta.events.register(f"before-call.ecr.{action}", self)

    def __call__(self, **_: Any) -> None:
        self.count += 1


def test_an_older_hubmirror_repository_gains_the_statements_and_keeps_its_owner_s(client: Any) -> None:
    client.create_repository(repositoryName="mirror/old", tags=[{"Key": "managed-by", "Value": "hubmirror"}])
    owner = {"Sid": "TeamCI", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:role/ci"}}
    owner["Action"] = ["ecr:BatchGetImage"]
    client.set_repository_policy(repositoryName="mirror/old", policyText=json.dumps({"Statement": [owner]}))
    writes = _Writes(client)
    ecr = Ecr(client)
    own = statements(Pullers(ORGANIZATION, account_ids=("111122223333",)))
    assert ecr.sync_pull_policy("mirror/old", own) is True
    policy = json.loads(client.get_repository_policy(repositoryName="mirror/old")["policyText"])
    assert policy["Statement"] == [owner, *own]
    assert ecr.sync_pull_policy("mirror/old", own) is False  # already so: read, not written
    assert writes.count == 1
    assert ecr.sync_pull_policy("mirror/old", []) is True  # nobody named any more: ours go, the owner's stay
    assert json.loads(client.get_repository_policy(repositoryName="mirror/old")["policyText"])["Statement"] == [owner]


def test_a_repository_hubmirror_did_not_make_is_left_alone(client: Any) -> None:
    client.create_repository(repositoryName="mirror/theirs")
    writes = _Writes(client)
    assert Ecr(client).sync_pull_policy("mirror/theirs", statements(Pullers(ORGANIZATION))) is False
    assert writes.count == 0
    with pytest.raises(ClientError, match="RepositoryPolicyNotFound"):
        client.get_repository_policy(repositoryName="mirror/theirs")


def test_the_last_statement_going_deletes_the_policy_and_a_missing_repository_is_skipped(client: Any) -> None:
    client.create_repository(repositoryName="mirror/solo", tags=[{"Key": "managed-by", "Value": "hubmirror"}])
    ecr = Ecr(client)
    assert ecr.sync_pull_policy("mirror/solo", statements(Pullers(account_ids=("111122223333",)))) is True
    assert ecr.sync_pull_policy("mirror/solo", []) is True
    with pytest.raises(ClientError, match="RepositoryPolicyNotFound"):
        client.get_repository_policy(repositoryName="mirror/solo")
    assert ecr.sync_pull_policy("mirror/not-pushed-yet", statements(Pullers(ORGANIZATION))) is False
