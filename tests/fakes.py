"""In-memory stand-ins for the small interfaces the pure modules talk through.

For unit tests of pure logic only: every test that touches a registry, S3 or a state
machine uses the real ones on the local stack (``devstack``).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from hubmirror.domain.registry.errors import ManifestUnknownError, RateLimitedError, RegistryError
from hubmirror.domain.registry.model import Manifest, ManifestHead


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

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        self.objects[key] = data
        return key

    def create_json(self, key: str, value: Any) -> str | None:
        if key in self.objects:
            return None
        self.objects[key] = value
        return self._etag(key)

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def read_json(self, key: str) -> tuple[Any, str] | None:
        if key not in self.objects:
            return None
        return self.objects[key], self._etag(key)

    def replace_json(self, key: str, value: Any, etag: str) -> str | None:
        if key not in self.objects or self._etag(key) != etag:
            return None
        self.objects[key] = value
        return self._etag(key)

    def delete_if(self, key: str, etag: str) -> bool:
        if key not in self.objects or self._etag(key) != etag:
            return False
        del self.objects[key]
        return True

    def _etag(self, key: str) -> str:
        """As S3's ETag of a single-part object: the MD5 of its bytes, in quotes."""
        data = json.dumps(self.objects[key], sort_keys=True, separators=(",", ":")).encode()
        return f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'

    def keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))

    def exists(self, key: str) -> bool:
        return key in self.objects


class FakeRegistry:
    """A registry for the check (``head_manifest``, ``get_manifest``, ``get_blob``) answering from dicts.

    ``slow`` references wait on :attr:`release` first; ``limited`` ones answer 429 and
    ``broken`` ones a server error; anything else not in ``heads`` is ``MANIFEST_UNKNOWN``.
    ``requests`` counts what was asked, as ``(method, reference)``.
    """

    def __init__(
        self,
        heads: dict[str, ManifestHead],
        *,
        slow: frozenset[str] = frozenset(),
        manifests: Mapping[str, Manifest] | None = None,
        blobs: Mapping[str, bytes] | None = None,
    ) -> None:
        self.heads = heads
        self.manifests = dict(manifests or {})
        self.blobs = dict(blobs or {})
        self.slow = slow
        self.release = threading.Event()
        self.limited: set[str] = set()
        self.broken: set[str] = set()
        self.requests: list[tuple[str, str]] = []

    def _answer(self, method: str, reference: str) -> None:
        self.requests.append((method, reference))
        if reference in self.slow:
            self.release.wait(10)
        if reference in self.limited:
            raise RateLimitedError("upstream fake.example/x: the registry answered 429 3 times", retry_after=60)
        if reference in self.broken:
            raise RegistryError("target fake.example/x: server error 500", status=500)

    def head_manifest(self, repository: str, reference: str) -> ManifestHead:
        self._answer("HEAD", reference)
        if reference not in self.heads:
            raise ManifestUnknownError(f"fake.example/{repository}: {reference} not found", status=404)
        return self.heads[reference]

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        self._answer("GET", reference)
        if reference not in self.manifests:
            raise ManifestUnknownError(f"fake.example/{repository}: {reference} not found", status=404)
        return self.manifests[reference]

    def get_blob(self, repository: str, digest: str, *, max_bytes: int = 8 * 2**20) -> bytes:
        self._answer("GET blob", digest)
        if digest not in self.blobs:
            raise RegistryError(f"fake.example/{repository}: blob {digest} not found", status=404)
        if len(self.blobs[digest]) > max_bytes:
            raise RegistryError(f"fake.example/{repository}: blob {digest} is larger than {max_bytes} bytes")
        return self.blobs[digest]

    def referrers(self, repository: str, digest: str) -> list[dict[str, Any]] | None:
        """No referrers API (as Docker Hub): the gate falls back to the referrers tag schema."""
        return None


@dataclass
class FakeResponse:
    """Enough of ``urllib3.BaseHTTPResponse`` for the registry client."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    data: bytes = b""
    released: bool = False

    def read(self, amount: int | None = None) -> bytes:
        data, self.data = (self.data, b"") if amount is None else (self.data[:amount], self.data[amount:])
        return data

    def release_conn(self) -> None:
        self.released = True

    def drain_conn(self) -> None:
        self.data = b""

    def close(self) -> None:
        self.released = True


@dataclass
class Sent:
    method: str
    url: str
    headers: dict[str, str]


class FakePool:
    """A ``urllib3.PoolManager`` answering from a script: each answer is taken by the first
    request whose method and URL match (``url`` is a prefix), in order; ``sent`` records
    every request with the headers it carried. An answer may be an exception to raise."""

    def __init__(self) -> None:
        self.script: list[tuple[str, str, FakeResponse | BaseException | Callable[[], FakeResponse]]] = []
        self.sent: list[Sent] = []

    def answer(self, method: str, url: str, response: FakeResponse | BaseException, *, times: int = 1) -> None:
        self.script.extend([(method, url, response)] * times)

    def request(self, method: str, url: str, headers: Mapping[str, str] | None = None, **_: Any) -> FakeResponse:
        self.sent.append(Sent(method, url, dict(headers or {})))
        for n, (want_method, prefix, response) in enumerate(self.script):
            if want_method == method and url.startswith(prefix):
                del self.script[n]
                if isinstance(response, BaseException):
                    raise response
                return response() if callable(response) else response
        raise AssertionError(f"unscripted request {method} {url}")


@dataclass
class FakeContext:
    """The Lambda context fields Powertools reads when a handler is called directly."""

    function_name: str = "hubmirror-report"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:hubmirror-report"
    aws_request_id: str = "request-1"
