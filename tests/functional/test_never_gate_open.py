"""The signature gate fails closed through the real registry client: a 5xx or a 401 on the
signature manifest, or an error reading its payload, fails the item with a ``signature:`` reason
naming the cause (the hub front injects each fault; the control before it shows the item goes
on when nothing is broken)."""

from __future__ import annotations

import pytest

from devstack.content import cosign as cosign_keys
from devstack.content.images import seed
from devstack.registries.hubfront import HubFront
from devstack.registries.proxy import Fault
from devstack.stack import ECR_PASSWORD, ECR_USER
from hubmirror.adapters.registry.client import RegistryClient
from hubmirror.domain.items import WorkItem
from hubmirror.domain.ratelimit import PullBudget
from hubmirror.domain.registry.model import Credentials
from hubmirror.steps.check import ItemCheck, check_item
from tests.functional.conftest import Registries


@pytest.fixture(scope="module")
def gated_image(registries: Registries) -> tuple[str, cosign_keys.Key]:
    """An image in the hub signed as cosign signs it, with its key."""
    key = cosign_keys.Key.generate()
    pusher = registries.hub_pusher()
    digest = seed(pusher, "library/gated", "1", ["linux/amd64"])
    cosign_keys.sign(pusher, "library/gated", digest, key)
    return digest, key


def _check(registries: Registries, key: cosign_keys.Key) -> ItemCheck:
    upstream = RegistryClient(registries.front.host, sleep=lambda _: None)
    target = RegistryClient(registries.ecr.host, Credentials(ECR_USER, ECR_PASSWORD), side="target")
    gated = WorkItem(
        f"{registries.front.host}/library/gated", "1", "mirror/gated", "1", verify=("key", key.public_pem())
    )
    return check_item(
        gated, upstream=lambda _: upstream, target=target, budget=PullBudget(0), force=False, dry_run=False
    )


@pytest.mark.parametrize(
    ("kind", "status", "times", "cause"),
    [
        ("get_manifest", 503, 3, "unavailable: upstream {host}/library/gated: the registry answered 503 3 times"),
        ("get_manifest", 500, 1, "unavailable: upstream {host}/library/gated: server error 500"),
        ("get_manifest", 401, 2, "authentication: upstream {host}/library/gated: access denied anonymously (401)"),
        ("get_blob", 500, 1, "unavailable: upstream {host}/library/gated: server error 500"),
    ],
    ids=["503-on-the-signature", "500-on-the-signature", "401-on-the-signature", "500-on-the-payload"],
)
def test_a_registry_error_on_the_signature_fails_the_item_through_the_real_client(
    registries: Registries,
    front: HubFront,
    gated_image: tuple[str, cosign_keys.Key],
    kind: str,
    status: int,
    times: int,
    cause: str,
) -> None:
    digest, key = gated_image
    assert _check(registries, key).outcome is None  # the control: the signature verifies, the item goes on
    challenge = {"WWW-Authenticate": f'Bearer realm="http://{front.token_host}/token",service="registry.docker.io"'}
    front.inject(Fault(kind, status, challenge if status == 401 else {}, times=times, repository="library/gated"))
    result = _check(registries, key)
    assert result.outcome is not None, "the gate let the image through"
    assert result.outcome.outcome == "failed"
    assert result.outcome.reason == (f"signature: {cause.format(host=front.host)}; the target tag is left as it is"), (
        result.outcome.reason
    )
    assert result.outcome.upstream_digest == digest
    assert not front.faults  # each fault was met
