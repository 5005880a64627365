"""A mirror for the organisation: repositories from the creation template, pulls from other accounts.

One local stack deployed with ``PullOrganizationId``; one run of the real state machine over
three images: one whose repository does not exist yet (ECR makes it on the first push, with
the template's settings), one whose repository an older hubmirror made (tagged
``managed-by=hubmirror``, with a statement its owner added) and one whose repository someone
else made under the prefix. Pulls from other accounts go through the ECR stand-in, which
judges each by the repository's policy (``devstack.aws.iam.repository_policy_allows``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from devstack.content.images import seed
from devstack.registries.ecrfront import Principal
from devstack.stack import RunResult, Stack
from hubmirror.domain.pullpolicy import Pullers, statements

pytestmark = pytest.mark.e2e

ORGANIZATION = "o-a1b2c3d4e5"
#: an EKS node of another account in the organisation, and a stranger outside it
MEMBER = Principal(
    "arn:aws:iam::210987654321:role/eks-node", "210987654321", (f"{ORGANIZATION}/r-ab12/ou-ab12-11111111/",)
)
STRANGER = Principal("arn:aws:iam::999988887777:role/stranger", "999988887777", ("o-zzzzzzzzzz/r-zz12/",))
OWNER_STATEMENT = {
    "Sid": "TeamCI",
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::123456789012:role/team-ci"},
    "Action": ["ecr:BatchGetImage"],
}


@dataclass
class World:
    stack: Stack
    run: RunResult
    digests: dict[str, str]


def _authorization(name: str) -> str:
    return "Basic " + base64.b64encode(f"AWS:{name}-token".encode()).decode()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    stack = Stack(Path(tmp_path_factory.mktemp("organisation")), parameters={"PullOrganizationId": ORGANIZATION})
    with stack:
        assert stack.front is not None
        assert stack.ecr is not None
        pusher = stack.hub_pusher()
        digests = {name: seed(pusher, f"library/{name}", "1", ["linux/amd64"]) for name in ("fresh", "older", "theirs")}
        ecr = boto3.client("ecr")
        ecr.create_repository(repositoryName="mirror/older", tags=[{"Key": "managed-by", "Value": "hubmirror"}])
        ecr.set_repository_policy(
            repositoryName="mirror/older",
            policyText=json.dumps({"Version": "2012-10-17", "Statement": [OWNER_STATEMENT]}),
        )
        ecr.create_repository(repositoryName="mirror/theirs")  # made by hand, not by hubmirror
        host = stack.front.host
        stack.write_allowlist(
            "images:\n"
            + "".join(f"  - source: {host}/library/{name}\n    tags: ['1']\n    target: {name}\n" for name in digests)
        )
        for principal in (MEMBER, STRANGER):
            stack.ecr.add_principal(principal, _authorization(principal.account))
        yield World(stack, stack.run({}), digests)


def _pull(world: World, principal: Principal, repository: str) -> requests.Response:
    assert world.stack.ecr is not None
    return requests.get(
        f"http://{world.stack.ecr.host}/v2/{repository}/manifests/1",
        headers={
            "Authorization": _authorization(principal.account),
            "Accept": "application/vnd.oci.image.manifest.v1+json",
        },
        timeout=30,
    )


def test_the_run_mirrors_every_image_and_is_allowed_every_call(world: World) -> None:
    assert world.run.status == "SUCCEEDED", world.run.failures()
    assert world.run.outcomes() == {"mirror/fresh:1": "copied", "mirror/older:1": "copied", "mirror/theirs:1": "copied"}
    assert world.run.iam_refused == []


def test_a_new_repository_is_made_on_push_with_the_template_s_settings_and_policy(world: World) -> None:
    assert world.stack.ecr is not None
    assert world.stack.ecr.snapshot()["created_on_push"] == 1
    ecr = boto3.client("ecr")
    (repo,) = ecr.describe_repositories(repositoryNames=["mirror/fresh"])["repositories"]
    assert repo["encryptionConfiguration"]["encryptionType"] == "AES256"
    assert {"Key": "managed-by", "Value": "hubmirror"} in ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])[
        "tags"
    ]
    assert json.loads(ecr.get_lifecycle_policy(repositoryName="mirror/fresh")["lifecyclePolicyText"])["rules"]
    policy = json.loads(ecr.get_repository_policy(repositoryName="mirror/fresh")["policyText"])
    assert policy["Statement"] == statements(Pullers(ORGANIZATION))


def test_an_older_hubmirror_repository_gains_the_statements_and_keeps_its_owner_s(world: World) -> None:
    policy = json.loads(boto3.client("ecr").get_repository_policy(repositoryName="mirror/older")["policyText"])
    assert policy["Statement"] == [OWNER_STATEMENT, *statements(Pullers(ORGANIZATION))]


def test_a_repository_hubmirror_did_not_make_is_left_as_it_was(world: World) -> None:
    with pytest.raises(ClientError, match="RepositoryPolicyNotFound"):
        boto3.client("ecr").get_repository_policy(repositoryName="mirror/theirs")


def test_an_account_of_the_organisation_pulls_and_one_outside_it_is_refused(world: World) -> None:
    for repository in ("mirror/fresh", "mirror/older"):
        pulled = _pull(world, MEMBER, repository)
        assert pulled.status_code == 200, pulled.text
        assert pulled.headers["Docker-Content-Digest"] == world.digests[repository.removeprefix("mirror/")]
        refused = _pull(world, STRANGER, repository)
        assert refused.status_code == 403
        (error,) = refused.json()["errors"]
        assert error["code"] == "DENIED"
        assert f"{STRANGER.arn} is not authorized to perform: ecr:BatchGetImage" in error["message"]
    assert _pull(world, MEMBER, "mirror/theirs").status_code == 403  # its owner named nobody
