"""The registry client against real registries: challenges, digests, errors, retries, pages."""

from __future__ import annotations

import pytest

from devstack.content.images import platform_image, seed
from devstack.registries.hubfront import HubFront
from devstack.registries.proxy import Fault
from devstack.stack import ECR_PASSWORD, ECR_USER
from hubmirror.adapters.registry.client import RegistryClient
from hubmirror.adapters.registry.retry import RetryPolicy
from hubmirror.domain.registry.errors import (
    AuthenticationError,
    BlobUnknownError,
    ManifestUnknownError,
    NameUnknownError,
    RateLimitedError,
    RegistryUnavailableError,
    TagListTooLongError,
)
from hubmirror.domain.registry.model import Credentials
from tests.functional.conftest import Registries

OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@pytest.fixture(scope="module")
def digests(registries: Registries) -> dict[str, str]:
    pusher = registries.hub_pusher()
    return {
        "multi": seed(pusher, "library/multi", "1", ["linux/amd64", "linux/arm64"]),
        "single": seed(pusher, "library/single", "1", ["linux/amd64"]),
    }


def test_head_of_a_multi_platform_image_gives_the_index_digest(
    registries: Registries, front: HubFront, digests: dict[str, str]
) -> None:
    front.set_budget(100)
    head = RegistryClient(front.host).head_manifest("library/multi", "1")
    assert head.digest == digests["multi"]
    assert head.media_type == OCI_INDEX
    assert head.ratelimit is not None
    assert (head.ratelimit.limit, head.ratelimit.remaining, head.ratelimit.window) == (100, 100, 21600)


def test_bearer_challenge_is_learned_once_then_tokens_are_fetched_first(
    registries: Registries, front: HubFront, digests: dict[str, str]
) -> None:
    client = RegistryClient(front.host)
    client.head_manifest("library/multi", "1")
    client.head_manifest("library/single", "1")
    counts = front.snapshot()
    assert counts["head_manifest"] == 2  # authorised HEADs: exactly one per image
    assert counts["token"] == 2  # one token per repository scope
    assert counts.get("get_manifest", 0) == 0


def test_get_manifest_verifies_the_bytes_against_the_digest(
    registries: Registries, front: HubFront, digests: dict[str, str]
) -> None:
    manifest = RegistryClient(front.host).get_manifest("library/multi", digests["multi"])
    assert manifest.digest == digests["multi"]
    assert len(manifest.document()["manifests"]) == 2


def test_unknown_tag_is_manifest_unknown(registries: Registries, front: HubFront) -> None:
    with pytest.raises(ManifestUnknownError, match=r"9\.99 not found"):
        RegistryClient(front.host).head_manifest("library/single", "9.99")


def test_a_missing_blob_and_a_missing_repository_are_named_as_such(registries: Registries, front: HubFront) -> None:
    with pytest.raises(BlobUnknownError, match="not found"):
        RegistryClient(front.host).get_blob("library/single", "sha256:" + "0" * 64)
    target = RegistryClient(registries.ecr.host, Credentials(ECR_USER, ECR_PASSWORD), side="target")
    with pytest.raises(NameUnknownError, match=r"^target .*/nowhere/app: 1 not found \(NAME_UNKNOWN"):
        target.get_manifest("nowhere/app", "1")  # a GET: a HEAD's 404 has no body to say which


def test_basic_auth_registry_with_and_without_credentials(registries: Registries) -> None:
    registries.ecr.create_repository("mirror/x")
    registries.ecr_pusher().image(
        "mirror/x",
        "1",
        __import__("devstack.content.images", fromlist=["platform_image"]).platform_image("linux/amd64", "x"),
    )
    good = RegistryClient(registries.ecr.host, Credentials(ECR_USER, ECR_PASSWORD))
    assert good.head_manifest("mirror/x", "1").digest.startswith("sha256:")
    with pytest.raises(AuthenticationError, match="requires credentials"):
        RegistryClient(registries.ecr.host).head_manifest("mirror/x", "1")
    with pytest.raises(AuthenticationError, match="access denied with the configured credentials"):
        RegistryClient(registries.ecr.host, Credentials(ECR_USER, "wrong")).head_manifest("mirror/x", "1")


def test_ecr_s_token_goes_with_the_first_request_and_other_credentials_wait_for_the_challenge(
    registries: Registries,
) -> None:
    """ECR takes its token as basic auth on every request (AWS, "HTTP API authentication"):
    a copy job's threads each save the 401 round trip a challenge costs; wrong credentials
    sent that way still end in the same error."""
    registries.ecr.create_repository("mirror/first")
    registries.ecr_pusher().image("mirror/first", "1", platform_image("linux/amd64", "first"))
    challenged = registries.ecr.snapshot().get("challenged", 0)
    token = RegistryClient(registries.ecr.host, Credentials(ECR_USER, ECR_PASSWORD, preemptive=True))
    assert token.head_manifest("mirror/first", "1").digest.startswith("sha256:")
    assert registries.ecr.snapshot().get("challenged", 0) == challenged
    other = RegistryClient(registries.ecr.host, Credentials(ECR_USER, ECR_PASSWORD))
    assert other.head_manifest("mirror/first", "1").digest.startswith("sha256:")
    assert registries.ecr.snapshot().get("challenged", 0) == challenged + 1
    wrong = RegistryClient(registries.ecr.host, Credentials(ECR_USER, "wrong", preemptive=True))
    with pytest.raises(AuthenticationError, match="access denied with the configured credentials"):
        wrong.head_manifest("mirror/first", "1")


def test_token_service_refusing_credentials_is_an_authentication_error(
    registries: Registries, front: HubFront, digests: dict[str, str]
) -> None:
    with pytest.raises(AuthenticationError, match="refused the configured credentials"):
        RegistryClient(front.host, Credentials("someone", "bad")).head_manifest("library/single", "1")


def test_429_with_retry_after_is_waited_out(registries: Registries, front: HubFront, digests: dict[str, str]) -> None:
    slept: list[float] = []
    front.inject(Fault("head_manifest", 429, {"Retry-After": "2"}, times=1))
    client = RegistryClient(front.host, retry=RetryPolicy(attempts=3), sleep=slept.append)
    assert client.head_manifest("library/single", "1").digest == digests["single"]
    assert slept == [2.0]


def test_a_429_that_persists_gives_up_after_bounded_tries(
    registries: Registries, front: HubFront, digests: dict[str, str]
) -> None:
    slept: list[float] = []
    front.inject(Fault("head_manifest", 429, {"Retry-After": "1"}, times=10))
    client = RegistryClient(front.host, retry=RetryPolicy(attempts=3), sleep=slept.append)
    with pytest.raises(RateLimitedError, match="429 Too Many Requests 3 times"):
        client.head_manifest("library/single", "1")
    assert slept == [1.0, 1.0]


def test_a_token_service_that_fails_once_is_asked_again(
    registries: Registries, front: HubFront, digests: dict[str, str]
) -> None:
    slept: list[float] = []
    front.inject(Fault("token", 503, times=1))
    client = RegistryClient(front.host, retry=RetryPolicy(attempts=3), sleep=slept.append)
    assert client.head_manifest("library/single", "1").digest == digests["single"]
    assert len(slept) == 1  # one wait, then the token, then the HEAD


def test_a_token_service_that_stays_down_is_named_after_bounded_tries(
    registries: Registries, front: HubFront, digests: dict[str, str]
) -> None:
    slept: list[float] = []
    front.inject(Fault("token", 503, times=10))
    client = RegistryClient(front.host, retry=RetryPolicy(attempts=3), sleep=slept.append)
    with pytest.raises(RegistryUnavailableError, match=r"^upstream 127\.0\.0\.1:\d+: the token service answered 503"):
        client.head_manifest("library/single", "1")
    assert len(slept) == 2
    front.faults.clear()


def test_tag_list_follows_link_pages(registries: Registries, front: HubFront) -> None:
    pusher = registries.hub_pusher()
    from devstack.content.images import platform_image

    image = platform_image("linux/amd64", "paged")
    for n in range(7):
        pusher.image("library/paged", f"1.{n}", image)
    tags = RegistryClient(front.host).tags("library/paged", page_size=3)
    assert sorted(tags) == [f"1.{n}" for n in range(7)]
    assert front.snapshot()["tags_list"] == 3
    assert len(RegistryClient(front.host).tags("library/paged", page_size=3, limit=7)) == 7  # at the bound: whole
    with pytest.raises(TagListTooLongError, match="more than 6 tags"):  # past it: refused, never cut
        RegistryClient(front.host).tags("library/paged", page_size=3, limit=6)
