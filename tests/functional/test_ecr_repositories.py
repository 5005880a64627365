"""The repositories hubmirror creates: scan on push, encryption, untagged expiry (moto's ECR)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from hubmirror.adapters.ecr import Ecr, RepositorySettings, RepositorySettingsError
from tests.cfn import source

KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture
def client(aws_credentials: None) -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("ecr")


def test_a_new_repository_scans_on_push_is_encrypted_and_expires_untagged_images(client: Any) -> None:
    assert Ecr(client, RepositorySettings(untagged_expiry_days=14)).ensure_repository("mirror/nginx") is True
    (repo,) = client.describe_repositories(repositoryNames=["mirror/nginx"])["repositories"]
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
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


def test_a_kms_key_encrypts_new_repositories(client: Any) -> None:
    Ecr(client, RepositorySettings(kms_key=KEY)).ensure_repository("mirror/vault")
    (repo,) = client.describe_repositories(repositoryNames=["mirror/vault"])["repositories"]
    assert repo["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": KEY}


def test_no_lifecycle_policy_when_expiry_is_zero(client: Any) -> None:
    Ecr(client, RepositorySettings(untagged_expiry_days=0)).ensure_repository("mirror/alpine")
    with pytest.raises(ClientError, match="LifecyclePolicyNotFound"):
        client.get_lifecycle_policy(repositoryName="mirror/alpine")


def test_an_existing_repository_is_left_as_its_owner_set_it(client: Any) -> None:
    client.create_repository(repositoryName="mirror/busybox", imageTagMutability="IMMUTABLE")
    assert Ecr(client, RepositorySettings()).ensure_repository("mirror/busybox") is False
    (repo,) = client.describe_repositories(repositoryNames=["mirror/busybox"])["repositories"]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    with pytest.raises(ClientError, match="LifecyclePolicyNotFound"):
        client.get_lifecycle_policy(repositoryName="mirror/busybox")


def test_settings_come_from_the_variables_the_template_sets() -> None:
    project = source()["Resources"]["CopyProject"]["Properties"]["Environment"]["EnvironmentVariables"]
    parameters = source()["Parameters"]
    defaults = {v["Name"]: str(parameters[v["Value"]["Ref"]]["Default"]) for v in project}
    assert RepositorySettings.from_env(defaults) == RepositorySettings(kms_key="", untagged_expiry_days=30)
    assert RepositorySettings.from_env({**defaults, "HUBMIRROR_ECR_KMS_KEY": KEY}).encryption() == {
        "encryptionType": "KMS",
        "kmsKey": KEY,
    }


@pytest.mark.parametrize("raw", ["seven", "-1", "1.5"])
def test_a_malformed_expiry_fails_the_job_before_it_starts(raw: str) -> None:
    with pytest.raises(RepositorySettingsError, match="HUBMIRROR_ECR_UNTAGGED_EXPIRY_DAYS"):
        RepositorySettings.from_env({"HUBMIRROR_ECR_UNTAGGED_EXPIRY_DAYS": raw})
