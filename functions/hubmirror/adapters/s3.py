"""Where a run keeps its items, outcomes and build contexts: one S3 bucket.

The keys are :mod:`hubmirror.domain.keys`'. Keeping items and outcomes here keeps every
state payload small, whatever the run's size.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from botocore.exceptions import ClientError

from hubmirror.adapters import aws

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


_conditional = threading.local()
#: S3 answers a conditional write that loses to a concurrent one with ``409
#: ConditionalRequestConflict`` and asks for a retry; ``412 PreconditionFailed`` is the answer.
#: (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-requests.html)
CONFLICT_RETRIES = 4
PRECONDITION_FAILED = ("PreconditionFailed", "412")


def _precondition(request: Any, **_: Any) -> None:
    """Adds the condition of the current conditional call (``If-None-Match: *`` or ``If-Match:
    ETAG``) to its PutObject or DeleteObject, whatever the botocore version (Debian's, in the job,
    predates the ``IfMatch`` parameters)."""
    for name, value in getattr(_conditional, "headers", {}).items():
        request.headers[name] = value


def _missing(exc: ClientError) -> bool:
    """Whether S3 answered that the key does not exist (``GetObject`` and ``HeadObject`` say it differently)."""
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


class Store:
    """JSON and bytes in one bucket."""

    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self.client: S3Client = client or aws.client("s3")
        self.client.meta.events.register("before-sign.s3.PutObject", _precondition)
        self.client.meta.events.register("before-sign.s3.DeleteObject", _precondition)

    def put_json(self, key: str, value: Any) -> str:
        body = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
        return key

    def create_json(self, key: str, value: Any) -> str | None:
        """Write ``key`` only if it does not exist yet (S3 conditional write): the ETag written,
        or None if it did exist."""
        body = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
        return self._conditionally(
            {"If-None-Match": "*"},
            lambda: self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json"),
        )

    def read_json(self, key: str) -> tuple[Any, str] | None:
        """The JSON at ``key`` and its ETag (for :meth:`replace_json`, :meth:`delete_if`), or None."""
        try:
            found = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return json.loads(found["Body"].read()), str(found["ETag"])

    def replace_json(self, key: str, value: Any, etag: str) -> str | None:
        """Write ``key`` only if it still holds what was read (its ETag): the new ETag, or None if
        it changed or went. The ETag returned lets its writer replace it again without a read."""
        body = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
        return self._conditionally(
            {"If-Match": etag},
            lambda: self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json"),
        )

    def delete_if(self, key: str, etag: str) -> bool:
        """Delete ``key`` only if it still holds what was read (its ETag); False if it changed or went."""
        return (
            self._conditionally({"If-Match": etag}, lambda: self.client.delete_object(Bucket=self.bucket, Key=key))
            is not None
        )

    def _conditionally(self, headers: dict[str, str], call: Callable[[], Any]) -> str | None:
        """Make a conditional call: the ETag it answers ("" for none) if its condition held, None
        if not (412, or the key is gone); a 409 (a concurrent conditional request won the race for
        a moment) is retried."""
        for attempt in range(CONFLICT_RETRIES + 1):
            _conditional.headers = headers
            try:
                answer = call()
                return str((answer or {}).get("ETag", ""))
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code in PRECONDITION_FAILED or _missing(exc):
                    return None
                if code != "ConditionalRequestConflict" or attempt == CONFLICT_RETRIES:
                    raise
            finally:
                _conditional.headers = {}
            time.sleep(0.05 * 2**attempt)
        return None  # not reached: the last attempt returns or raises

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

    def put_version(
        self,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Write ``key`` (with ``tags``) and return the version S3 gave it (``"null"`` in a bucket
        without versioning)."""
        extra = {"Tagging": urlencode(dict(tags))} if tags else {}
        answer = self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, **extra)  # type: ignore[arg-type]
        return str(answer.get("VersionId") or "null")

    def tags(self, key: str, version: str | None = None) -> dict[str, str]:
        """The tags of ``key`` (its current version, or ``version``)."""
        extra = {"VersionId": version} if version else {}
        answer = self.client.get_object_tagging(Bucket=self.bucket, Key=key, **extra)  # type: ignore[arg-type]
        return {str(t["Key"]): str(t["Value"]) for t in answer.get("TagSet", [])}

    def find_version(self, key: str, version: str | None = None) -> tuple[bytes, str] | None:
        """The bytes at ``key`` (its current version, or ``version``) and their version id; None
        when there is no such key (other failures raise)."""
        extra = {"VersionId": version} if version else {}
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key, **extra)  # type: ignore[arg-type]
        except ClientError as exc:
            if _missing(exc) or exc.response.get("Error", {}).get("Code") == "NoSuchVersion":
                return None
            raise
        return answer["Body"].read(), str(answer.get("VersionId") or "null")

    def current_version(self, key: str) -> str | None:
        """The version id of ``key`` now (a HEAD), or None when there is no such key."""
        try:
            answer = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return str(answer.get("VersionId") or "null")

    def versions(self, key: str) -> list[dict[str, Any]]:
        """Every stored version of ``key``, newest first: ``version``, ``modified`` (ISO 8601),
        ``size``, ``latest`` and ``deleted`` (a delete marker)."""
        found: list[dict[str, Any]] = []
        paginator = self.client.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=key):
            rows = [(v, False) for v in page.get("Versions", [])] + [(m, True) for m in page.get("DeleteMarkers", [])]
            for row, deleted in rows:
                if row.get("Key") != key:
                    continue
                found.append(
                    {
                        "version": str(row.get("VersionId") or "null"),
                        "modified": row["LastModified"].isoformat(),
                        "size": int(row.get("Size", 0) or 0),  # type: ignore[call-overload]
                        "latest": bool(row.get("IsLatest")),
                        "deleted": deleted,
                    }
                )
        return sorted(found, key=lambda v: v["modified"], reverse=True)

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
