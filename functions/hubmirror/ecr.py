"""Amazon ECR: registry credentials and repositories for the target side."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from hubmirror import aws
from hubmirror.registry import Credentials

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient


class Ecr:
    """The target registry's control plane."""

    def __init__(self, client: ECRClient | None = None) -> None:
        self.client: ECRClient = client or aws.client("ecr")

    def credentials(self) -> Credentials:
        """Basic-auth credentials for the registry API, from ``GetAuthorizationToken``."""
        data = self.client.get_authorization_token()["authorizationData"][0]
        username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        return Credentials(username=username, password=password)

    def ensure_repository(self, name: str) -> bool:
        """Create ``name`` (scan on push, immutable settings left to templates) if missing.

        Returns True when the repository was created by this call. Never deletes anything.
        """
        try:
            self.client.describe_repositories(repositoryNames=[name])
            return False
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "RepositoryNotFoundException":
                raise
        try:
            self.client.create_repository(
                repositoryName=name,
                imageScanningConfiguration={"scanOnPush": True},
                imageTagMutability="MUTABLE",
                encryptionConfiguration={"encryptionType": "AES256"},
                tags=[{"Key": "managed-by", "Value": "hubmirror"}],
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "RepositoryAlreadyExistsException":
                return False
            raise
        return True
