"""Where a run keeps its items, outcomes and build contexts: one S3 bucket.

The keys are :mod:`hubmirror.domain.keys`'. Keeping items and outcomes here keeps every
state payload small, whatever the run's size.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from hubmirror.adapters import aws

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


_conditional = threading.local()


def _if_none_match(request: Any, **_: Any) -> None:
    """Adds ``If-None-Match: *`` to the PutObject of :meth:`Store.create_json` (any botocore version)."""
    if getattr(_conditional, "on", False):
        request.headers["If-None-Match"] = "*"


def _missing(exc: ClientError) -> bool:
    """Whether S3 answered that the key does not exist (``GetObject`` and ``HeadObject`` say it differently)."""
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


class Store:
    """JSON and bytes in one bucket."""

    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self.client: S3Client = client or aws.client("s3")
        self.client.meta.events.register("before-sign.s3.PutObject", _if_none_match)

    def put_json(self, key: str, value: Any) -> str:
        body = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
        return key

    def create_json(self, key: str, value: Any) -> bool:
        """Write ``key`` only if it does not exist yet (S3 conditional write); False if it did."""
        body = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
        _conditional.on = True
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise
        finally:
            _conditional.on = False
        return True

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def find_json(self, key: str) -> Any | None:
        """The JSON at ``key``, or None when there is no such key (other failures raise)."""
        try:
            return self.get_json(key)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        return key

    def get_bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                return False
            raise
        return True

    def keys(self, prefix: str) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        found: list[str] = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            found.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(found)

    def location(self, key: str) -> str:
        """``bucket/key``, as CodeBuild's S3 source location wants it."""
        return f"{self.bucket}/{key}"
