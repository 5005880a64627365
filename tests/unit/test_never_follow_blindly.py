"""Redirects and downloads: credentials never leave the registry's host, and no byte is taken
on trust (pure logic: a scripted connection pool, a scripted response).

Registries send blob downloads elsewhere (Docker Hub to a CDN, ECR to a pre-signed S3 URL).
Whatever that other host answers, it never gets the registry's ``Authorization``, its
challenge is never learned, its errors are named as the download host's, and what it sends
is checked against the digest and the size the manifest gives.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest

from hubmirror.adapters.registry.client import RegistryClient
from hubmirror.adapters.registry.stream import BlobStream
from hubmirror.domain.registry.errors import BlobDownloadError, RegistryError, RegistryUnavailableError
from hubmirror.domain.registry.model import Credentials
from tests.fakes import FakePool, FakeResponse

BASE = "https://registry.example"
BODY = b'{"architecture":"amd64"}'
DIGEST = "sha256:" + hashlib.sha256(BODY).hexdigest()
BLOB = f"{BASE}/v2/org/app/blobs/{DIGEST}"


def client(pool: FakePool) -> RegistryClient:
    return RegistryClient("registry.example", Credentials("me", "pw"), pool=pool, sleep=lambda _: None)  # type: ignore[arg-type]


def challenged(pool: FakePool) -> None:
    """The registry asks for basic auth first: every later request to it carries the credentials."""
    pool.answer("GET", BLOB, FakeResponse(401, {"WWW-Authenticate": 'Basic realm="registry"'}))


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_every_redirect_status_is_followed_without_the_registry_s_credentials(status: int) -> None:
    pool = FakePool()
    challenged(pool)
    pool.answer("GET", BLOB, FakeResponse(status, {"Location": "https://cdn.example/b?sig=1"}))
    pool.answer("GET", "https://cdn.example/b", FakeResponse(200, data=BODY))
    assert client(pool).get_blob("org/app", DIGEST) == BODY
    assert [s.url for s in pool.sent][-1] == "https://cdn.example/b?sig=1"
    assert "Authorization" in pool.sent[1].headers
    assert "Authorization" not in pool.sent[2].headers


def test_a_relative_location_is_followed_on_the_registry_s_own_host() -> None:
    pool = FakePool()
    pool.answer("GET", BLOB, FakeResponse(307, {"Location": "/storage/blob?sig=1"}))
    pool.answer("GET", f"{BASE}/storage/blob", FakeResponse(200, data=BODY))
    assert client(pool).get_blob("org/app", DIGEST) == BODY
    assert pool.sent[1].url == f"{BASE}/storage/blob?sig=1"


def test_a_download_host_s_challenge_is_never_answered_with_credentials() -> None:
    """A 401 from the CDN is its answer, not a registry's challenge: the token service it names is
    never asked, now or by any later request to the registry."""
    pool = FakePool()
    manifest = f"{BASE}/v2/org/app/manifests/1"
    pool.answer("HEAD", manifest, FakeResponse(401, {"WWW-Authenticate": 'Basic realm="registry"'}))
    pool.answer("HEAD", manifest, FakeResponse(200, {"Docker-Content-Digest": DIGEST}))
    pool.answer("GET", BLOB, FakeResponse(307, {"Location": "https://cdn.example/b?sig=1"}))
    evil = 'Bearer realm="https://evil.example/token",service="cdn"'
    pool.answer("GET", "https://cdn.example/b", FakeResponse(401, {"WWW-Authenticate": evil}), times=3)
    pool.answer("GET", "https://evil.example/token", FakeResponse(200, data=b'{"token":"t"}'), times=3)
    pool.answer("HEAD", manifest, FakeResponse(200, {"Docker-Content-Digest": DIGEST}))
    registry = client(pool)
    registry.head_manifest("org/app", "1")  # the registry's own challenge, learned
    with pytest.raises(
        RegistryUnavailableError, match=r"the download of .* from cdn\.example \(a redirect\) answered 401"
    ):
        registry.get_blob("org/app", DIGEST)
    assert registry.head_manifest("org/app", "1").digest == DIGEST  # the registry is still asked as it asked
    assert not [s for s in pool.sent if "evil.example" in s.url]
    assert pool.sent[-1].headers["Authorization"] == Credentials("me", "pw").basic()
    assert len([s for s in pool.sent if s.url.startswith("https://cdn.example")]) == 1  # its 401 is its answer
    assert all("Authorization" not in s.headers for s in pool.sent if s.url.startswith("https://cdn.example"))


@pytest.mark.parametrize("status", [403, 404])
def test_a_download_host_s_refusal_is_named_as_the_download_s_not_the_registry_s(status: int) -> None:
    """An expired pre-signed URL (403) is not "access denied with the configured credentials"."""
    pool = FakePool()
    pool.answer("GET", BLOB, FakeResponse(307, {"Location": "https://cdn.example/b?sig=1"}))
    pool.answer("GET", "https://cdn.example/b", FakeResponse(status))
    with pytest.raises(RegistryUnavailableError) as raised:
        client(pool).get_blob("org/app", DIGEST)
    assert f"from cdn.example (a redirect) answered {status}" in str(raised.value)


def test_bytes_a_download_host_sends_are_held_to_the_digest() -> None:
    pool = FakePool()
    pool.answer("GET", BLOB, FakeResponse(307, {"Location": "https://cdn.example/b?sig=1"}))
    pool.answer("GET", "https://cdn.example/b", FakeResponse(200, data=b'{"architecture":"arm64"}'))
    with pytest.raises(RegistryError, match="does not match its content"):
        client(pool).get_blob("org/app", DIGEST)


def test_a_manifest_fetched_by_digest_is_held_to_that_digest() -> None:
    pool = FakePool()
    pool.answer("GET", f"{BASE}/v2/org/app/manifests/{DIGEST}", FakeResponse(200, data=b'{"schemaVersion":2}'))
    with pytest.raises(RegistryError, match="the manifest's bytes hash to"):
        client(pool).get_manifest("org/app", DIGEST)


def _stream(data: bytes, digest: str, size: int, deadline: float | None = None) -> BlobStream:
    response: Any = FakeResponse(200, data=data)  # enough of urllib3's response for the stream
    return BlobStream(response, "upstream registry.example/org/app", digest, size=size, deadline=deadline)


def _read_all(stream: BlobStream) -> bytes:
    chunks = []
    while chunk := stream.read(7):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_streamed_blob_shorter_than_its_size_is_refused_even_when_its_digest_matches() -> None:
    with pytest.raises(BlobDownloadError, match="the download ended short"):
        _read_all(_stream(BODY, DIGEST, len(BODY) + 10))


def test_a_streamed_blob_longer_than_its_size_is_refused() -> None:
    with pytest.raises(BlobDownloadError, match="more bytes than its size"):
        _read_all(_stream(BODY + b"and more", DIGEST, len(BODY)))


def test_a_streamed_blob_that_is_not_its_digest_is_refused() -> None:
    other = b'{"architecture":"arm64"}'
    with pytest.raises(BlobDownloadError, match=r"the bytes do not match the digest \(corrupt\)"):
        _read_all(_stream(other, DIGEST, len(other)))


def test_a_download_past_its_deadline_is_given_up_before_a_byte_is_read() -> None:
    with pytest.raises(BlobDownloadError, match="still downloading at the item's deadline"):
        _read_all(_stream(BODY, DIGEST, len(BODY), deadline=time.monotonic() - 1))


def test_a_whole_blob_streams_through() -> None:
    assert _read_all(_stream(BODY, DIGEST, len(BODY))) == BODY
