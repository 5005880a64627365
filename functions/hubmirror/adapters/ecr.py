"""Amazon ECR: registry credentials and repositories for the target side."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from hubmirror.adapters import aws
from hubmirror.domain import pullpolicy
from hubmirror.domain.registry.model import Credentials

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_ecr.type_defs import TagTypeDef

#: What marks a repository as hubmirror's (the repository creation template's resource tag).
TAGS: list[TagTypeDef] = [{"Key": "managed-by", "Value": "hubmirror"}]


class Ecr:
    """The target registry's control plane.

    hubmirror creates no repository itself: ECR creates each one on its first push with the
    settings of the stack's repository creation template (``MirrorRepositoryTemplate``).
    """

    def __init__(self, client: ECRClient | None = None) -> None:
        self.client: ECRClient = client or aws.client("ecr")

    def credentials(self) -> Credentials:
        """Basic-auth credentials for the registry API, from ``GetAuthorizationToken``: sent
        from the first request on, as ECR takes them without a challenge first."""
        data = self.client.get_authorization_token()["authorizationData"][0]
        username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        return Credentials(username=username, password=password, preemptive=True)

    def sync_pull_policy(self, name: str, own: list[dict[str, Any]]) -> bool:
        """Make hubmirror's pull statements in ``name``'s policy ``own``, keeping every other one.

        Only a repository hubmirror made (tagged ``managed-by=hubmirror``) is written, and only
        when its policy says something else: one ``GetRepositoryPolicy`` when nothing changes.
        ``SetRepositoryPolicy`` replaces the whole policy, so what is written is the policy
        just read with hubmirror's statements replaced. True when it wrote.
        """
        try:
            text: str | None = self.client.get_repository_policy(repositoryName=name)["policyText"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "RepositoryNotFoundException":
                return False  # not pushed yet: the template gives it the statements
            if code != "RepositoryPolicyNotFoundException":
                raise
            text = None
        policy = pullpolicy.merged(text, own)
        if policy is None:
            return False
        (repository,) = self.client.describe_repositories(repositoryNames=[name])["repositories"]
        tags = self.client.list_tags_for_resource(resourceArn=repository["repositoryArn"]).get("tags", [])
        if not all(tag in tags for tag in TAGS):
            return False  # someone else's repository under the prefix: left as its owner set it
        if json.loads(policy)["Statement"]:
            self.client.set_repository_policy(repositoryName=name, policyText=policy)
        else:
            self.client.delete_repository_policy(repositoryName=name)
        return True
