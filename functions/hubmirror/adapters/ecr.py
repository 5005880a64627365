"""Amazon ECR: registry credentials and repositories for the target side."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from hubmirror.adapters import aws
from hubmirror.adapters.registry.model import Credentials

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_ecr.type_defs import EncryptionConfigurationTypeDef, TagTypeDef

#: The environment variables the template sets on the CodeBuild projects.
KMS_KEY_VARIABLE = "HUBMIRROR_ECR_KMS_KEY"
UNTAGGED_EXPIRY_VARIABLE = "HUBMIRROR_ECR_UNTAGGED_EXPIRY_DAYS"
DEFAULT_UNTAGGED_EXPIRY_DAYS = 30
TAGS: list[TagTypeDef] = [{"Key": "managed-by", "Value": "hubmirror"}]


class RepositorySettingsError(ValueError):
    """A repository setting in the environment is malformed."""


@dataclass(frozen=True)
class RepositorySettings:
    """How hubmirror creates a repository: scan on push, encryption, untagged expiry.

    ``kms_key`` empty means AES256; ``untagged_expiry_days`` 0 means no lifecycle policy.
    """

    kms_key: str = ""
    untagged_expiry_days: int = DEFAULT_UNTAGGED_EXPIRY_DAYS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RepositorySettings:
        """Read the settings the template gives the CodeBuild projects.

        >>> RepositorySettings.from_env({"HUBMIRROR_ECR_UNTAGGED_EXPIRY_DAYS": "7"}).untagged_expiry_days
        7
        """
        raw = env.get(UNTAGGED_EXPIRY_VARIABLE, "").strip()
        try:
            days = int(raw) if raw else DEFAULT_UNTAGGED_EXPIRY_DAYS
        except ValueError:
            raise RepositorySettingsError(f"{UNTAGGED_EXPIRY_VARIABLE} must be a number of days, not {raw!r}") from None
        if days < 0:
            raise RepositorySettingsError(f"{UNTAGGED_EXPIRY_VARIABLE} must be 0 or more, not {days}")
        return cls(kms_key=env.get(KMS_KEY_VARIABLE, "").strip(), untagged_expiry_days=days)

    def encryption(self) -> EncryptionConfigurationTypeDef:
        """The ``encryptionConfiguration`` of ``CreateRepository``."""
        if self.kms_key:
            return {"encryptionType": "KMS", "kmsKey": self.kms_key}
        return {"encryptionType": "AES256"}

    def lifecycle_policy(self) -> str | None:
        """The lifecycle policy text: expire untagged images (what a moved tag leaves behind)."""
        if not self.untagged_expiry_days:
            return None
        rule: dict[str, Any] = {
            "rulePriority": 1,
            "description": f"hubmirror: expire untagged images {self.untagged_expiry_days} days after their push",
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": self.untagged_expiry_days,
            },
            "action": {"type": "expire"},
        }
        return json.dumps({"rules": [rule]})


class Ecr:
    """The target registry's control plane."""

    def __init__(self, client: ECRClient | None = None, repositories: RepositorySettings | None = None) -> None:
        self.client: ECRClient = client or aws.client("ecr")
        self.repositories = repositories or RepositorySettings()
        self._known: set[str] = set()

    def credentials(self) -> Credentials:
        """Basic-auth credentials for the registry API, from ``GetAuthorizationToken``."""
        data = self.client.get_authorization_token()["authorizationData"][0]
        username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        return Credentials(username=username, password=password)

    def ensure_repository(self, name: str) -> bool:
        """Create ``name`` with hubmirror's repository settings if it is missing.

        A new repository scans on push, is encrypted (AES256 or the KMS key), keeps tags
        mutable (a sync moves them) and gets the untagged-image lifecycle policy. A
        repository that exists is left exactly as it is. Returns True when this call
        created it. Never deletes anything.
        """
        if name in self._known:  # this process has seen it: a job checks a repository once
            return False
        try:
            self.client.describe_repositories(repositoryNames=[name])
            self._known.add(name)
            return False
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "RepositoryNotFoundException":
                raise
        try:
            self.client.create_repository(
                repositoryName=name,
                imageScanningConfiguration={"scanOnPush": True},
                imageTagMutability="MUTABLE",
                encryptionConfiguration=self.repositories.encryption(),
                tags=TAGS,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "RepositoryAlreadyExistsException":
                return False
            raise
        policy = self.repositories.lifecycle_policy()
        if policy is not None:
            self.client.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=policy)
        self._known.add(name)
        return True
