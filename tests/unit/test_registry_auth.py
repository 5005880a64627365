"""The registry client's authorisation, retries and redirects, against a scripted pool (pure logic).

The same paths run against real registries in ``tests/functional/test_registry_client.py``;
here each answer is chosen, so every branch is reached and counted.
"""

from __future__ import annotations

import io
import json

import pytest
import urllib3

from hubmirror.adapters.registry.client import RegistryClient
from hubmirror.adapters.registry.retry import RetryPolicy
from hubmirror.domain.registry.errors import (
    AuthenticationError,
    NameUnknownError,
    RateLimitedError,
    RegistryError,
    RegistryUnavailableError,
)
from hubmirror.domain.registry.model import Credentials
from tests.fakes import FakePool, FakeResponse

BASE = "https://registry.example"
DIGEST = "sha256:" + "a" * 64
BEARER = 'Bearer realm="https://auth.example/token",service="registry.example"'
HEAD_OK = {"Docker-Content-Digest": DIGEST, "Content-Type": "application/vnd.oci.image.index.v1+json"}


def client(pool: FakePool, credentials: Credentials | None = None) -> tuple[RegistryClient, list[float]]:
    sleeps: list[float] = []
    registry = RegistryClient("registry.example", credentials, pool=pool, sleep=sleeps.append)  # type: ignore[arg-type]
    return registry, sleeps


def token(value: str, expires_in: int = 300) -> FakeResponse:
    return FakeResponse(200, data=json.dumps({"token": value, "expires_in": expires_in}).encode())


def test_a_bearer_challenge_fetches_a_scoped_token_once_and_then_asks_first() -> None:
    pool = FakePool()
    pool.answer("HEAD", f"{BASE}/v2/library/a/manifests/1", FakeResponse(401, {"WWW-Authenticate": BEARER}))
    pool.answer("GET", "https://auth.example/token", token("t-a"))
    pool.answer("HEAD", f"{BASE}/v2/library/a/manifests/", FakeResponse(200, HEAD_OK), times=2)
    pool.answer("GET", "https://auth.example/token", token("t-b"))
    pool.answer("HEAD", f"{BASE}/v2/library/b/manifests/1", FakeResponse(200, HEAD_OK))
    registry, _ = client(pool)

    assert registry.head_manifest("library/a", "1").digest == DIGEST
    registry.head_manifest("library/a", "2")  # the cached token: no second token request
    registry.head_manifest("library/b", "1")  # the host has challenged: its token first, then one HEAD

    assert [(s.method, s.url.split("?")[0]) for s in pool.sent] == [
        ("HEAD", f"{BASE}/v2/library/a/manifests/1"),
        ("GET", "https://auth.example/token"),
        ("HEAD", f"{BASE}/v2/library/a/manifests/1"),
        ("HEAD", f"{BASE}/v2/library/a/manifests/2"),
        ("GET", "https://auth.example/token"),
        ("HEAD", f"{BASE}/v2/library/b/manifests/1"),
    ]
    assert "scope=repository%3Alibrary%2Fa%3Apull" in pool.sent[1].url
    assert "service=registry.example" in pool.sent[1].url
    assert "Authorization" not in pool.sent[1].headers  # anonymous: no credentials to send
    assert pool.sent[2].headers["Authorization"] == "Bearer t-a"
    assert pool.sent[5].headers["Authorization"] == "Bearer t-b"
    assert pool.script == []


def test_credentials_go_to_the_token_service_as_basic_auth() -> None:
    pool = FakePool()
    pool.answer("HEAD", BASE, FakeResponse(401, {"WWW-Authenticate": BEARER}))
    pool.answer("GET", "https://auth.example/token", token("t"))
    pool.answer("HEAD", BASE, FakeResponse(200, HEAD_OK))
    registry, _ = client(pool, Credentials("me", "secret"))
    registry.head_manifest("org/app", "1")
    assert pool.sent[1].headers["Authorization"] == Credentials("me", "secret").basic()


def test_a_refused_token_names_the_token_service() -> None:
    pool = FakePool()
    pool.answer("HEAD", BASE, FakeResponse(401, {"WWW-Authenticate": BEARER}))
    pool.answer("GET", "https://auth.example/token", FakeResponse(401))
    registry, _ = client(pool, Credentials("me", "wrong"))
    with pytest.raises(
        AuthenticationError, match=r"^upstream registry.example: the token service refused the configured"
    ):
        registry.head_manifest("org/app", "1")


def test_a_basic_challenge_sends_the_credentials_and_without_them_says_so() -> None:
    pool = FakePool()
    pool.answer("HEAD", BASE, FakeResponse(401, {"WWW-Authenticate": 'Basic realm="ecr"'}))
    pool.answer("HEAD", BASE, FakeResponse(200, HEAD_OK))
    registry, _ = client(pool, Credentials("AWS", "pw"))
    registry.head_manifest("mirror/app", "1")
    assert pool.sent[1].headers["Authorization"] == Credentials("AWS", "pw").basic()

    anonymous = FakePool()
    anonymous.answer("HEAD", BASE, FakeResponse(401, {"WWW-Authenticate": 'Basic realm="ecr"'}))
    with pytest.raises(AuthenticationError, match="requires credentials and none are configured"):
        client(anonymous)[0].head_manifest("mirror/app", "1")


def test_a_second_401_is_an_answer_not_a_loop() -> None:
    pool = FakePool()
    pool.answer("HEAD", BASE, FakeResponse(401, {"WWW-Authenticate": BEARER}))
    pool.answer("GET", "https://auth.example/token", token("t"))
    pool.answer("HEAD", BASE, FakeResponse(401, {"WWW-Authenticate": BEARER}))
    with pytest.raises(AuthenticationError, match=r"access denied anonymously \(401\)"):
        client(pool)[0].head_manifest("org/app", "1")
    assert len(pool.sent) == 3


def test_429_waits_as_long_as_retry_after_says_then_goes_on() -> None:
    pool = FakePool()
    pool.answer("HEAD", BASE, FakeResponse(429, {"Retry-After": "7"}))
    pool.answer("HEAD", BASE, FakeResponse(200, HEAD_OK))
    registry, sleeps = client(pool)
    registry.head_manifest("org/app", "1")
    assert sleeps == [7.0]


def test_a_persistent_429_ends_rate_limited_with_the_registry_s_wait() -> None:
    pool = FakePool()
    pool.answer("HEAD", BASE, FakeResponse(429, {"Retry-After": "60"}), times=3)
    registry, sleeps = client(pool)
    with pytest.raises(RateLimitedError, match="answered 429 Too Many Requests 3 times") as raised:
        registry.head_manifest("org/app", "1")
    assert raised.value.retry_after == 60.0
    assert sleeps == [20.0, 20.0]  # capped at the policy's longest wait


def test_server_errors_are_retried_with_backoff_then_named() -> None:
    pool = FakePool()
    pool.answer("HEAD", BASE, FakeResponse(503), times=3)
    registry, sleeps = client(pool)
    with pytest.raises(
        RegistryUnavailableError, match=r"^upstream registry.example/org/app: the registry answered 503 3 times"
    ):
        registry.head_manifest("org/app", "1")
    assert len(sleeps) == 2
    assert 0.5 <= sleeps[0] <= 1.0  # base 1 s, with jitter
    assert 1.0 <= sleeps[1] <= 2.0


def test_an_unreachable_registry_is_retried_then_described_in_words() -> None:
    pool = FakePool()
    refused = urllib3.exceptions.NewConnectionError(
        None, "Failed to establish a new connection: [Errno 111] Connection refused"
    )  # type: ignore[arg-type]
    pool.answer("HEAD", BASE, refused, times=3)
    with pytest.raises(RegistryUnavailableError) as raised:
        client(pool)[0].head_manifest("org/app", "1")
    assert str(raised.value).startswith(
        "upstream registry.example/org/app: cannot reach the registry: connection refused"
    )
    assert "object at 0x" not in str(raised.value)


def test_a_streamed_body_is_not_sent_twice() -> None:
    pool = FakePool()
    pool.answer("PUT", f"{BASE}/upload/1", FakeResponse(503))
    registry, sleeps = client(pool)
    with pytest.raises(RegistryUnavailableError, match="answered 503 1 times"):
        registry.upload_blob("org/app", DIGEST, 3, io.BytesIO(b"abc"), session=f"{BASE}/upload/1")
    assert sleeps == []


def test_a_redirect_to_another_host_carries_no_authorization() -> None:
    pool = FakePool()
    pool.answer("GET", f"{BASE}/v2/org/app/blobs/", FakeResponse(401, {"WWW-Authenticate": 'Basic realm="r"'}))
    pool.answer("GET", f"{BASE}/v2/org/app/blobs/", FakeResponse(307, {"Location": "https://cdn.example/blob?sig=1"}))
    pool.answer("GET", "https://cdn.example/blob", FakeResponse(200, data=b"{}"))
    registry, _ = client(pool, Credentials("me", "pw"))
    assert (
        registry.get_blob("org/app", "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a") == b"{}"
    )
    assert "Authorization" in pool.sent[1].headers
    assert pool.sent[2].url == "https://cdn.example/blob?sig=1"
    assert "Authorization" not in pool.sent[2].headers


def test_redirects_are_followed_five_times_at_most() -> None:
    pool = FakePool()
    pool.answer("GET", BASE, FakeResponse(302, {"Location": f"{BASE}/again"}), times=6)
    with pytest.raises(RegistryError, match="more than 5 redirects"):
        client(pool)[0].get_blob("org/app", DIGEST)
    assert len(pool.sent) == 6


def test_a_404_is_named_by_the_registry_s_error_code() -> None:
    pool = FakePool()
    body = json.dumps({"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known"}]}).encode()
    pool.answer("GET", BASE, FakeResponse(404, data=body))
    with pytest.raises(NameUnknownError, match=r"1 not found \(NAME_UNKNOWN: repository name not known\)"):
        client(pool)[0].get_manifest("org/app", "1")


def test_the_retry_policy_bounds_every_wait() -> None:
    policy = RetryPolicy(attempts=8, base_delay=0.5, max_delay=10.0)
    assert all(policy.delay(n, None) <= 10.0 for n in range(20))
    assert policy.delay(0, 999.0) == 10.0
    assert policy.delay(3, 2.0) == 2.0


def test_a_small_blob_larger_than_it_may_be_is_refused_once_that_much_has_arrived() -> None:
    """A signature's payload is read with a small bound: a registry that sends more than that
    (whatever its descriptor said) gets no more read from it, and the item fails in words."""
    import hashlib

    body = b"x" * 70_000
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    pool = FakePool()
    for _ in range(2):
        pool.answer("GET", f"{BASE}/v2/acme/app/blobs/{digest}", FakeResponse(200, data=body))
    registry, _ = client(pool)
    with pytest.raises(RegistryError, match="is larger than 65536 bytes"):
        registry.get_blob("acme/app", digest, max_bytes=65_536)
    assert registry.get_blob("acme/app", digest) == body  # the default bound is for configs (8 MiB)
