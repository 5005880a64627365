"""In-memory stand-ins for the small interfaces the pure modules talk through.

For unit tests of pure logic only: every test that touches a registry, S3 or a state
machine uses the real ones on the local stack (``devstack``).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError


class MemoryStore:
    """A dict standing in for the run's S3 prefix (pure-logic tests only)."""

    bucket = "bucket"

    def __init__(self, objects: dict[str, Any]) -> None:
        self.objects = objects

    def get_json(self, key: str) -> Any:
        if key not in self.objects:  # as boto3 raises it for S3's answer
            raise ClientError(
                {"Error": {"Code": "NoSuchKey", "Message": "The specified key does not exist."}}, "GetObject"
            )
        return self.objects[key]

    def find_json(self, key: str) -> Any | None:
        return self.objects.get(key)

    def put_json(self, key: str, value: Any) -> str:
        self.objects[key] = value
        return key

    def create_json(self, key: str, value: Any) -> bool:
        if key in self.objects:
            return False
        self.objects[key] = value
        return True

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))

    def exists(self, key: str) -> bool:
        return key in self.objects
