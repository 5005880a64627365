"""Registry-to-registry copies against real registries: digests kept, no blob fetched twice."""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from devstack.content.images import Blob, index_of, platform_image, seed
from devstack.registries.hubfront import HubFront
from devstack.stack import ECR_PASSWORD, ECR_USER
from hubmirror.adapters.registry.client import RegistryClient
from hubmirror.adapters.s3 import Store
from hubmirror.copying.blobindex import Claim, MemoryBlobIndex, S3BlobIndex
from hubmirror.copying.transfer import Transfer
from hubmirror.domain.oci import OCI_INDEX, select_platforms
from hubmirror.domain.registry.errors import RegistryError
from hubmirror.domain.registry.model import Credentials, Manifest
from tests.functional.conftest import Registries
from tests.support import RegistryReader, platforms_of


@pytest.fixture
def target(registries: Registries) -> RegistryClient:
    return RegistryClient(registries.ecr.host, Credentials(ECR_USER, ECR_PASSWORD))


@pytest.fixture
def reader(registries: Registries) -> RegistryReader:
    return RegistryReader(registries.ecr.host, ECR_USER, ECR_PASSWORD)


def test_copy_keeps_the_index_digest_and_fetches_each_blob_once(
    registries: Registries, front: HubFront, target: RegistryClient, reader: RegistryReader
) -> None:
    images = [platform_image("linux/amd64", "copy-a"), platform_image("linux/arm64", "copy-a")]
    digest = registries.hub_pusher().multi("library/copya", "1", images)
    unique_blobs = {b.digest: len(b.data) for i in images for b in (*i.layers, i.config)}
    registries.ecr.create_repository("t1/copya")
    front.reset_counts()
    transfer = Transfer(target, MemoryBlobIndex())
    landed = transfer.copy(RegistryClient(front.host), "library/copya", digest, "t1/copya", "1")
    assert landed == digest
    fetched = reader.manifest("t1/copya", "1")
    assert fetched is not None
    assert fetched.digest == digest
    assert platforms_of(fetched.document) == ["linux/amd64", "linux/arm64"]
    counts = front.snapshot()
    assert counts["get_blob"] == len(unique_blobs) == transfer.stats.transferred
    assert counts["blob_bytes"] == sum(unique_blobs.values()) == transfer.stats.transferred_bytes
    assert counts["get_manifest"] == 3  # the index and one manifest per platform

    again = Transfer(target, MemoryBlobIndex())
    front.reset_counts()
    assert again.copy(RegistryClient(front.host), "library/copya", digest, "t1/copya", "1") == digest
    assert front.snapshot().get("get_blob", 0) == 0
    assert again.stats.present == sum(len(i.layers) + 1 for i in images)  # checked per platform, all present


@pytest.mark.parametrize("mounting", [False, True], ids=["ecr-default", "blob-mounting"])
def test_an_image_sharing_base_layers_takes_them_from_the_target_and_fetches_only_its_own(
    registries: Registries, front: HubFront, target: RegistryClient, mounting: bool
) -> None:
    pusher = registries.hub_pusher()
    suffix = "m" if mounting else "c"
    first = seed(pusher, "library/shared-one", "1", ["linux/amd64"], marker="one")
    second_image = platform_image("linux/amd64", f"two-{suffix}", extra_layers=2)
    second = pusher.image(f"library/shared-two-{suffix}", "1", second_image)
    for name in (f"t2{suffix}/one", f"t2{suffix}/two"):
        registries.ecr.create_repository(name)
    index = MemoryBlobIndex()
    source = RegistryClient(front.host)
    Transfer(target, index).copy(source, "library/shared-one", first, f"t2{suffix}/one", "1")
    front.reset_counts()
    transfer = Transfer(target, index)
    registries.ecr.blob_mounting = mounting
    try:
        transfer.copy(source, f"library/shared-two-{suffix}", second, f"t2{suffix}/two", "1")
    finally:
        registries.ecr.blob_mounting = False
    own = [*second_image.layers[1:], second_image.config]
    # the busybox base layer, already in t2?/one: mounted where ECR's BLOB_MOUNTING is on;
    # otherwise ECR opens an upload session (202) and it is copied within the target through it
    assert (transfer.stats.mounted, transfer.stats.relayed) == ((1, 0) if mounting else (0, 1))
    assert front.snapshot()["get_blob"] == len(own) == transfer.stats.transferred


def test_a_platform_subset_copies_manifests_verbatim_under_a_new_index(
    registries: Registries, front: HubFront, target: RegistryClient, reader: RegistryReader
) -> None:
    images = [platform_image("linux/amd64", "sub"), platform_image("linux/arm64", "sub")]
    digest = registries.hub_pusher().multi("library/subset", "1", images)
    registries.ecr.create_repository("t3/subset")

    def keep(top: Manifest) -> dict[str, object]:
        document = top.document()
        kept, missing = select_platforms(document, ["linux/arm64"])
        assert missing == []
        return {**document, "manifests": kept, "annotations": {"org.opencontainers.image.base.digest": digest}}

    landed = Transfer(target, MemoryBlobIndex()).copy(
        RegistryClient(front.host), "library/subset", digest, "t3/subset", "1", keep=keep
    )
    fetched = reader.manifest("t3/subset", "1")
    assert fetched is not None
    assert fetched.digest == landed != digest
    assert platforms_of(fetched.document) == ["linux/arm64"]
    assert fetched.document["manifests"][0]["digest"] == images[1].manifest.digest
    assert reader.manifest("t3/subset", images[0].manifest.digest) is None
    assert index_of(images).digest == digest


def test_copiers_running_at_once_fetch_each_new_blob_once(
    registries: Registries, front: HubFront, target: RegistryClient, s3_store: Store
) -> None:
    pusher = registries.hub_pusher()
    images = {name: platform_image("linux/amd64", name, family="together") for name in ("p1", "p2", "p3", "p4")}
    digests = {name: pusher.image(f"library/together-{name}", "1", image) for name, image in images.items()}
    unique = {b.digest for image in images.values() for b in (*image.layers, image.config)}
    for name in images:
        registries.ecr.create_repository(f"t4/{name}")
    front.reset_counts()

    def copier(name: str) -> str:  # one "job" each: its own transfer and its own view of the index
        transfer = Transfer(RegistryClient(target.host, target.credentials), S3BlobIndex(s3_store), sleep=time.sleep)
        return transfer.copy(RegistryClient(front.host), f"library/together-{name}", digests[name], f"t4/{name}", "1")

    with ThreadPoolExecutor(max_workers=4) as pool:
        landed = dict(zip(images, pool.map(copier, images), strict=True))
    assert landed == digests
    assert front.snapshot()["get_blob"] == len(unique)  # base and family layers shared by all four: once


class CountingStore:
    """A store that counts the calls made to it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return method(*args, **kwargs)

        return counted


def test_a_new_blob_costs_one_index_read_besides_its_claim_and_record(
    registries: Registries, front: HubFront, target: RegistryClient, s3_store: Store
) -> None:
    """A first claim on a blob means no copier ever fetched it: what the index said a moment
    before stands, and the copier does not read it again (nor ask the target again). Once the
    image is written its claims are left to lapse: no release is written."""
    image = platform_image("linux/amd64", "index-cost")
    digest = registries.hub_pusher().image("library/indexcost", "1", image)
    registries.ecr.create_repository("t1/indexcost")
    store = CountingStore(s3_store)
    transfer = Transfer(target, S3BlobIndex(store))  # type: ignore[arg-type]
    assert transfer.copy(RegistryClient(front.host), "library/indexcost", digest, "t1/indexcost", "1") == digest
    transfer.close()
    blobs = len(image.layers) + 1
    assert store.calls["find_json"] + store.calls["read_json"] == blobs
    assert store.calls["create_json"] == 2 * blobs  # each blob's claim and its first record
    assert store.calls["replace_json"] == 0  # the blobs are readable where the index says: nothing to release
    assert transfer.stats.transferred == blobs


def _two_of_a_family(
    registries: Registries, family: str, names: tuple[str, str], prefix: str
) -> tuple[dict[str, str], set[str]]:
    """Two images sharing a base and a family layer, pushed as ``library/FAMILY-NAME:1``, with
    their target repositories ``PREFIX/NAME`` made: their digests, and the blobs they share."""
    pusher = registries.hub_pusher()
    images = {name: platform_image("linux/amd64", name, family=family) for name in names}
    digests = {name: pusher.image(f"library/{family}-{name}", "1", image) for name, image in images.items()}
    for name in images:
        registries.ecr.create_repository(f"{prefix}/{name}")
    first, second = ({b.digest for b in (*image.layers, image.config)} for image in images.values())
    return digests, first & second


def test_a_copier_waiting_on_a_claim_takes_the_blob_once_the_claimer_s_image_is_written(
    registries: Registries, front: HubFront, target: RegistryClient, s3_store: Store
) -> None:
    """The claimer of a shared blob writes its image and leaves its claim to lapse: the copier
    waiting on that claim finds the blob where the index says, readable, at its next look."""
    digests, blobs = _two_of_a_family(registries, "waiting", ("w1", "w2"), "t7")
    shared = min(blobs)
    claimer = Transfer(RegistryClient(target.host, target.credentials), S3BlobIndex(s3_store))
    assert claimer.index.claim(shared)  # the claimer is fetching it when the other copier plans it
    looks: list[float] = []

    def sleep(seconds: float) -> None:
        looks.append(seconds)
        if len(looks) == 1:  # while the other copier waits, the claimer writes its image
            claimer.copy(RegistryClient(front.host), "library/waiting-w1", digests["w1"], "t7/w1", "1")
        assert len(looks) < 3, "the waiting copier did not find the written blob: it waits for the claim to lapse"

    waiter = Transfer(RegistryClient(target.host, target.credentials), S3BlobIndex(s3_store), sleep=sleep)
    assert waiter.copy(RegistryClient(front.host), "library/waiting-w2", digests["w2"], "t7/w2", "1") == digests["w2"]
    assert looks  # it did wait on the claim
    assert waiter.stats.relayed >= 1  # the shared blob came from the claimer's repository
    assert not claimer.index.released(shared)  # the claim was never released: it lapses on its own


def test_a_blob_another_copier_wrote_since_the_index_said_nowhere_is_taken_without_waiting(
    registries: Registries, front: HubFront, target: RegistryClient, s3_store: Store
) -> None:
    """A copier that read "nowhere" for a blob, before another copier wrote an image with it,
    reads the index again at its next image: it takes the blob from there, and never waits on
    the other copier's claim (which is left to lapse)."""
    digests, shared = _two_of_a_family(registries, "later", ("l1", "l2"), "t9")
    late = S3BlobIndex(s3_store)
    assert all(late.where(digest) == [] for digest in shared)  # nobody has them yet

    def no_wait(seconds: float) -> None:
        raise AssertionError("the copier waited on a claim for a blob the index names")

    first = Transfer(RegistryClient(target.host, target.credentials), S3BlobIndex(s3_store))
    assert first.copy(RegistryClient(front.host), "library/later-l1", digests["l1"], "t9/l1", "1") == digests["l1"]
    second = Transfer(RegistryClient(target.host, target.credentials), late, sleep=no_wait)
    assert second.copy(RegistryClient(front.host), "library/later-l2", digests["l2"], "t9/l2", "1") == digests["l2"]
    assert second.stats.relayed == len(shared)


class Unrecorded(S3BlobIndex):
    """A blob index whose entries others keep changing: no record of this copier lands."""

    def record(self, digest: str, repository: str) -> bool:
        return False


def test_a_claim_on_a_blob_the_index_may_not_name_is_released_once_the_image_is_written(
    registries: Registries, front: HubFront, target: RegistryClient, s3_store: Store
) -> None:
    """Left to lapse, such a claim would keep a waiting copier from a blob it cannot find for
    a minute: it is released instead, so that copier fetches the blob at once."""
    image = platform_image("linux/amd64", "unrecorded")
    digest = registries.hub_pusher().image("library/unrecorded", "1", image)
    registries.ecr.create_repository("t8/unrecorded")
    index = Unrecorded(s3_store)
    assert Transfer(target, index).copy(RegistryClient(front.host), "library/unrecorded", digest, "t8/unrecorded", "1")
    assert all(index.released(b.digest) for b in (*image.layers, image.config))


def test_a_claim_says_whether_it_is_the_first_on_its_blob(s3_store: Store) -> None:
    digest = "sha256:" + "4" * 64
    first, second = S3BlobIndex(s3_store), S3BlobIndex(s3_store)
    assert first.claim(digest) is Claim.FIRST
    assert second.claim(digest) is Claim.HELD
    first.release(digest)
    assert second.claim(digest) is Claim.TAKEN  # the blob may have landed meanwhile: look again


def test_a_stale_claim_does_not_block_a_fetch(s3_store: Store) -> None:
    now = [1000.0]
    index = S3BlobIndex(s3_store, clock=lambda: now[0])
    assert index.claim("sha256:" + "1" * 64)
    assert not S3BlobIndex(s3_store, clock=lambda: now[0] + 5).claim("sha256:" + "1" * 64)
    assert S3BlobIndex(s3_store, clock=lambda: now[0] + 10_000).claim("sha256:" + "1" * 64)


def test_a_released_claim_is_taken_at_once(s3_store: Store) -> None:
    digest = "sha256:" + "2" * 64
    first, second = S3BlobIndex(s3_store), S3BlobIndex(s3_store)
    assert first.claim(digest)
    assert not second.claim(digest)  # held, and fresh
    first.release(digest)  # its transfer failed
    assert second.released(digest)
    assert second.claim(digest)
    assert not first.claim(digest)  # taken over: held again


def test_a_claim_whose_release_failed_is_its_holder_s_own_to_take_again(s3_store: Store) -> None:
    """A copier whose release did not reach S3 fetches the blob again at once, not after the
    claim goes stale; a second copier still waits."""
    digest = "sha256:" + "3" * 64
    now = [1000.0]
    first, second = S3BlobIndex(s3_store, clock=lambda: now[0]), S3BlobIndex(s3_store, clock=lambda: now[0])
    assert first.claim(digest)
    now[0] += 5  # its release was lost; the claim is still fresh
    assert first.claim(digest)
    assert not second.claim(digest)


def test_a_failed_transfer_releases_its_claims(
    registries: Registries, front: HubFront, target: RegistryClient, s3_store: Store
) -> None:
    image = platform_image("linux/amd64", "released")
    digest = registries.hub_pusher().image("library/released", "1", image)
    index = S3BlobIndex(s3_store)
    with pytest.raises(RegistryError, match="NAME_UNKNOWN"):  # ECR refuses a repository nobody created
        Transfer(target, index).copy(RegistryClient(front.host), "library/released", digest, "t6/missing", "1")
    claimed = [
        b.digest for b in (*image.layers, image.config) if s3_store.exists(f"blobs/{b.digest.replace(':', '/')}.claim")
    ]
    assert claimed  # the copy got as far as claiming
    assert all(index.released(d) for d in claimed)  # and let go of every claim when it failed


def test_a_layer_that_lists_urls_is_copied_when_its_media_type_is_distributable(
    registries: Registries, front: HubFront, target: RegistryClient, reader: RegistryReader
) -> None:
    """The image-spec: ``urls`` are other places to fetch a layer from, and only the
    non-distributable media types say a blob may be absent from the registry
    (https://github.com/opencontainers/image-spec/blob/main/descriptor.md#properties,
    https://github.com/opencontainers/image-spec/blob/main/layer.md#non-distributable-layers).
    A layer that lists urls and sits on the registry is copied, or the mirrored tag points at
    an image that cannot be pulled without reaching those URLs."""
    image = platform_image("linux/amd64", "urls-layer")
    document = json.loads(image.manifest.data)
    document["layers"][-1]["urls"] = ["https://downloads.example.com/layer.tar.gz"]
    manifest = Blob(image.manifest.media_type, json.dumps(document, sort_keys=True).encode())
    pusher = registries.hub_pusher()
    for blob in (*image.layers, image.config):
        pusher.blob("library/urlslayer", blob)
    digest = pusher.manifest("library/urlslayer", "1", manifest)
    registries.ecr.create_repository("t1/urlslayer")
    transfer = Transfer(target, MemoryBlobIndex())
    assert transfer.copy(RegistryClient(front.host), "library/urlslayer", digest, "t1/urlslayer", "1") == digest
    fetched = reader.manifest("t1/urlslayer", "1")
    assert fetched is not None
    assert fetched.digest == digest
    for layer in image.layers:
        assert reader.blob("t1/urlslayer", layer.digest) == layer.data


def test_a_nested_index_is_refused_before_a_byte_moves(
    registries: Registries, front: HubFront, target: RegistryClient, reader: RegistryReader
) -> None:
    """An index whose second entry is an index: refused once every manifest it lists is read,
    before its first image's blobs and manifest are written (they would stay, untagged)."""
    pusher = registries.hub_pusher()
    first = platform_image("linux/amd64", "nested first")
    pusher.image("library/nested", first.manifest.digest, first)
    second = platform_image("linux/arm64", "nested second")
    pusher.image("library/nested", second.manifest.digest, second)
    inner = Blob(
        OCI_INDEX,
        json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [second.manifest.descriptor()]}).encode(),
    )
    pusher.manifest("library/nested", inner.digest, inner)
    listed = [first.manifest.descriptor(platform={"os": "linux", "architecture": "amd64"}), inner.descriptor()]
    outer = Blob(OCI_INDEX, json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": listed}).encode())
    digest = pusher.manifest("library/nested", "1", outer)
    registries.ecr.create_repository("t1/nested")
    front.reset_counts()
    with pytest.raises(RegistryError, match="nested indexes are not supported"):
        Transfer(target, MemoryBlobIndex()).copy(RegistryClient(front.host), "library/nested", digest, "t1/nested", "1")
    assert front.snapshot().get("get_blob", 0) == 0
    assert reader.manifest("t1/nested", first.manifest.digest) is None
    for blob in (*first.layers, first.config):
        assert not target.has_blob("t1/nested", blob.digest)


def test_the_local_copies_of_fetched_blobs_stay_under_their_bound(
    registries: Registries, front: HubFront, target: RegistryClient, reader: RegistryReader
) -> None:
    """A job keeps each blob it fetched on disk, for the other repositories of the batch that need
    it before the first one's image is complete. With a bound smaller than the batch's blobs,
    the least recently used copies go; what needs one later takes the blob from the target (its
    image is complete by then) or, failing that, fetches it again, and says so."""
    pusher = registries.hub_pusher()
    images = [platform_image("linux/amd64", f"spool {n}", extra_layers=2) for n in range(3)]
    digests = [pusher.image(f"library/spool{n}", "1", image) for n, image in enumerate(images)]
    largest = max(len(blob.data) for image in images for blob in (*image.layers, image.config))
    bound = largest + 1000
    transfer = Transfer(target, MemoryBlobIndex(), spool_limit=bound)
    for n, digest in enumerate(digests):
        for copy in ("a", "b"):  # every image into two repositories, as a batch of two entries does
            repository = f"mirror/spool-{copy}{n}"
            assert transfer.copy(RegistryClient(front.host), f"library/spool{n}", digest, repository, "1") == digest
            fetched = reader.manifest(repository, "1")
            assert fetched is not None
            assert fetched.digest == digest
            spool = transfer._spool
            on_disk = sum(p.stat().st_size for p in spool.iterdir()) if spool else 0
            assert on_disk <= bound, (repository, on_disk, bound)
    stats = transfer.stats
    assert stats.spool_evicted > 0
    assert largest <= stats.spool_peak_bytes <= bound  # blobs downloading count too: never over
    transfer.close()


def test_a_blob_larger_than_the_bound_is_copied_without_a_local_copy(
    registries: Registries, front: HubFront, target: RegistryClient, reader: RegistryReader
) -> None:
    image = platform_image("linux/amd64", "spool too large", extra_layers=1)
    digest = registries.hub_pusher().image("library/spool-large", "1", image)
    smallest = min(len(blob.data) for blob in (*image.layers, image.config))
    transfer = Transfer(target, MemoryBlobIndex(), spool_limit=smallest)
    assert transfer.copy(RegistryClient(front.host), "library/spool-large", digest, "mirror/spool-large", "1") == digest
    assert transfer.stats.spool_peak_bytes <= smallest
    transfer.close()
