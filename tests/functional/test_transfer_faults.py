"""A blob that does not arrive whole is the source's fault, ends the copy, and blocks no one.

Each test breaks one download at the hub's CDN (``devstack.registries.cdn.DownloadFault``) and checks
what a copier sees: an error naming the upstream side, the host and the blob, no Python
object in it, no target tag written, every claim released, so the next copier (or the next
run) fetches the blob at once instead of waiting for a claimer that is gone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from devstack.content.images import platform_image
from devstack.registries.cdn import DownloadFault
from devstack.registries.hubfront import HubFront
from devstack.stack import ECR_PASSWORD, ECR_USER
from hubmirror.adapters.registry.client import RegistryClient
from hubmirror.adapters.s3 import Store
from hubmirror.copying.blobindex import CLAIM_STALE_SECONDS, S3BlobIndex
from hubmirror.copying.transfer import UPLOAD_ATTEMPTS, Transfer
from hubmirror.domain.registry.errors import BlobDownloadError, RegistryError
from hubmirror.domain.registry.model import Credentials
from tests.functional.conftest import Registries
from tests.support import RegistryReader


@pytest.fixture
def target(registries: Registries) -> RegistryClient:
    return RegistryClient(registries.ecr.host, Credentials(ECR_USER, ECR_PASSWORD), side="target")


@pytest.fixture
def cdn_faults(front: HubFront) -> Iterator[None]:
    front.cdn.faults.clear()
    yield
    front.cdn.faults.clear()


def _no_wait(seconds: float) -> None:
    raise AssertionError(f"the copier waited ({seconds} s) for a claim nobody holds")


def _seeded(registries: Registries, name: str) -> tuple[str, str]:
    image = platform_image("linux/amd64", name, extra_layers=1)
    digest = registries.hub_pusher().image(f"library/{name}", "1", image)
    registries.ecr.create_repository(f"faults/{name}")
    return digest, max((*image.layers, image.config), key=lambda b: len(b.data)).digest


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("reset", "the connection was dropped"),
        ("truncate", ""),
        ("corrupt", "do not match the digest (corrupt)"),
    ],
)
@pytest.mark.usefixtures("cdn_faults")
def test_a_broken_download_blames_upstream_and_releases_its_claims(
    registries: Registries, front: HubFront, target: RegistryClient, s3_store: Store, mode: str, words: str
) -> None:
    name = f"broken-{mode}"
    digest, blob = _seeded(registries, name)
    front.cdn.inject(DownloadFault(mode, digest=blob, times=UPLOAD_ATTEMPTS))  # every attempt breaks
    index = S3BlobIndex(s3_store)
    transfer = Transfer(target, index, sleep=_no_wait, spool_limit=10 * 2**20)
    with pytest.raises(BlobDownloadError) as caught:
        transfer.copy(RegistryClient(front.host), f"library/{name}", digest, f"faults/{name}", "1")
    spool = transfer._spool
    parts = [p.name for p in spool.iterdir() if p.suffix == ".part"] if spool else []
    assert parts == []  # no partial copy stays
    assert transfer._spool_bytes == sum(size for _, size in transfer._spooled.values())  # its room given back
    message = str(caught.value)
    assert message.startswith(f"upstream {front.host}/library/{name}: blob {blob}:"), message
    assert words in message
    assert "object at 0x" not in message
    assert "ConnectionPool" not in message
    assert RegistryReader(registries.ecr.host, ECR_USER, ECR_PASSWORD).manifest(f"faults/{name}", "1") is None
    assert index.released(blob)
    # the next copier, with the fault gone, fetches at once: no wait for a dead claim
    again = Transfer(target, S3BlobIndex(s3_store), sleep=_no_wait)
    assert again.copy(RegistryClient(front.host), f"library/{name}", digest, f"faults/{name}", "1") == digest


@pytest.mark.usefixtures("cdn_faults")
def test_one_broken_download_is_fetched_again(
    registries: Registries, front: HubFront, target: RegistryClient, s3_store: Store
) -> None:
    digest, blob = _seeded(registries, "broken-once")
    front.cdn.inject(DownloadFault("reset", digest=blob, times=1))
    transfer = Transfer(target, S3BlobIndex(s3_store), sleep=_no_wait)
    assert transfer.copy(RegistryClient(front.host), "library/broken-once", digest, "faults/broken-once", "1") == digest
    assert not front.cdn.faults  # the fault was met


@pytest.mark.usefixtures("cdn_faults")
def test_a_blob_trickling_past_the_deadline_is_given_up(
    registries: Registries, front: HubFront, target: RegistryClient, s3_store: Store
) -> None:
    digest, blob = _seeded(registries, "trickle")
    front.cdn.inject(DownloadFault("slow", digest=blob, delay=0.5))  # one byte every half second
    started = time.monotonic()
    with pytest.raises(BlobDownloadError, match="still downloading at the item's deadline"):
        Transfer(target, S3BlobIndex(s3_store)).copy(
            RegistryClient(front.host), "library/trickle", digest, "faults/trickle", "1", deadline=started + 3
        )
    assert time.monotonic() - started < 10


@pytest.mark.usefixtures("cdn_faults")
def test_a_stalled_download_ends_at_the_idle_timeout(
    registries: Registries, front: HubFront, target: RegistryClient, s3_store: Store
) -> None:
    digest, blob = _seeded(registries, "stall")
    front.cdn.inject(DownloadFault("stall", digest=blob, delay=30, times=UPLOAD_ATTEMPTS))
    source = RegistryClient(front.host, timeout=2)  # the idle timeout: no byte for 2 s
    with pytest.raises(BlobDownloadError, match=r"upstream .*no answer in time"):
        Transfer(target, S3BlobIndex(s3_store)).copy(source, "library/stall", digest, "faults/stall", "1")


def test_a_successful_copy_leaves_its_claims_to_lapse(
    registries: Registries, front: HubFront, target: RegistryClient, s3_store: Store
) -> None:
    """The image is written: its blobs are readable where the index says, so nobody needs the
    claims released (one S3 write per new blob saved); the copier stops holding them, and they
    lapse as a dead copier's would."""
    digest, blob = _seeded(registries, "released-after")
    now = time.time()
    index = S3BlobIndex(s3_store, clock=lambda: now)
    transfer = Transfer(target, index)
    transfer.copy(RegistryClient(front.host), "library/released-after", digest, "faults/released-after", "1")
    transfer.close()  # releases what it still holds: nothing
    assert s3_store.exists(f"blobs/{blob.replace(':', '/')}.claim")
    assert not index.released(blob)
    assert S3BlobIndex(s3_store, clock=lambda: now + CLAIM_STALE_SECONDS + 1).released(blob)


def test_a_renewed_claim_stays_held_and_an_abandoned_one_goes_stale(s3_store: Store) -> None:
    digest = "sha256:" + "3" * 64
    now = [1000.0]
    holder = S3BlobIndex(s3_store, clock=lambda: now[0])
    assert holder.claim(digest)
    now[0] += CLAIM_STALE_SECONDS * 3
    holder.heartbeat(digest)  # a copier still at work renews its claim
    watcher = S3BlobIndex(s3_store, clock=lambda: now[0] + CLAIM_STALE_SECONDS / 2)
    assert not watcher.released(digest)
    assert not watcher.claim(digest)
    late = S3BlobIndex(s3_store, clock=lambda: now[0] + CLAIM_STALE_SECONDS + 1)  # its heartbeat stopped
    assert late.released(digest)
    assert late.claim(digest)


def test_an_unreachable_target_is_named_without_python_objects() -> None:
    client = RegistryClient("127.0.0.1:9", side="target")  # discard port: nothing listens
    with pytest.raises(RegistryError) as caught:
        client.head_manifest("mirror/x", "1")
    message = str(caught.value)
    assert message.startswith("target 127.0.0.1:9/mirror/x: cannot reach the registry: connection refused"), message
    assert "object at 0x" not in message


@pytest.mark.usefixtures("cdn_faults")
def test_one_broken_download_releases_every_other_claim_of_the_image_too(
    registries: Registries, front: HubFront, target: RegistryClient, s3_store: Store
) -> None:
    """The blobs whose uploads went well are claimed too; the copy ends, so each of them is let go
    at once: another copier fetches them without waiting for a heartbeat to stop."""
    name = "broken-among-many"
    image = platform_image("linux/amd64", name, extra_layers=3)
    digest = registries.hub_pusher().image(f"library/{name}", "1", image)
    for repository in (f"faults/{name}", f"faults/{name}-next"):
        registries.ecr.create_repository(repository)
    blobs = [b.digest for b in (*image.layers, image.config)]
    broken = image.layers[1].digest  # one of the image's own layers
    front.cdn.inject(DownloadFault("reset", digest=broken, times=UPLOAD_ATTEMPTS))
    index = S3BlobIndex(s3_store)
    transfer = Transfer(target, index, sleep=_no_wait)
    with pytest.raises(BlobDownloadError, match=broken):
        transfer.copy(RegistryClient(front.host), f"library/{name}", digest, f"faults/{name}", "1")
    claimed = [b for b in blobs if s3_store.exists(f"blobs/{b.replace(':', '/')}.claim")]
    assert claimed == blobs  # every blob was claimed: the copy got that far
    held = [b for b in blobs if not index.released(b)]
    assert held == [], f"claims still held after the copy failed: {held} (the broken one is {broken})"
    # the next copier, into another repository (the blobs are not readable where no image references
    # them), takes every claim at once: no wait for a copier that gave up
    again = Transfer(target, S3BlobIndex(s3_store), sleep=_no_wait)
    assert again.copy(RegistryClient(front.host), f"library/{name}", digest, f"faults/{name}-next", "1") == digest
    transfer.close()
    again.close()
