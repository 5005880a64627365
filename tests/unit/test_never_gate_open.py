"""The signature gate never lets an image through that it could not verify (pure logic, fakes).

Only a rate limit defers a gated item (a later run looks again). Any other error while the
signature is read or verified fails the item with a ``signature:`` reason naming the cause,
and the item gets no job: an image is copied only after a signature over its digest verified.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from devstack.content.cosign import SIGNATURE_ANNOTATION, SIGNATURE_TYPE, SIMPLE_SIGNING, Key, artifact
from devstack.content.images import Blob
from hubmirror.domain.items import WorkItem
from hubmirror.domain.ratelimit import PullBudget
from hubmirror.domain.registry.errors import (
    AuthenticationError,
    BlobDownloadError,
    BlobUnknownError,
    RegistryError,
    RegistryUnavailableError,
)
from hubmirror.domain.registry.model import Manifest, ManifestHead
from hubmirror.steps.check import BatchResult, ItemCheck, check_batch, check_item
from tests.cosign_fixture import CosignSignature, load
from tests.fakes import FakeRegistry, MemoryStore

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DIGEST = "sha256:" + "c" * 64
SIGNATURE_TAG = "sha256-" + "c" * 64 + ".sig"


class Failing(FakeRegistry):
    """A registry answering one reference (a manifest tag or a blob digest) with an error."""

    def __init__(self, *args: object, fails: Mapping[str, Exception], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fails = fails

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        if reference in self.fails:
            self.requests.append(("GET", reference))
            raise self.fails[reference]
        return super().get_manifest(repository, reference)

    def get_blob(self, repository: str, digest: str, *, max_bytes: int = 8 * 2**20) -> bytes:
        if digest in self.fails:
            self.requests.append(("GET blob", digest))
            raise self.fails[digest]
        return super().get_blob(repository, digest, max_bytes=max_bytes)


def payload(digest: str) -> bytes:
    """A simple-signing payload naming ``digest``, as cosign writes it."""
    document = {
        "critical": {
            "identity": {"docker-reference": "docker.io/acme/app"},
            "image": {"docker-manifest-digest": digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": None,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def signature_manifest(*signers: Key, digest: str = DIGEST) -> tuple[Manifest, dict[str, bytes]]:
    """A signature manifest with one simple-signing layer per signer (cosign appends them), and its payloads."""
    layers, blobs = [], {}
    for n, signer in enumerate(signers):
        data = payload(digest)[:-1] + f',"n":{n}}}'.encode()  # each layer a payload of its own
        layer = Blob(SIMPLE_SIGNING, data)
        layers.append(layer.descriptor(annotations={SIGNATURE_ANNOTATION: signer.sign(data)}))
        blobs[layer.digest] = data
    _config, manifest = artifact(Blob(SIMPLE_SIGNING, b"{}"), {})
    body = json.dumps({**json.loads(manifest.data), "layers": layers}, separators=(",", ":")).encode()
    return Manifest(Blob(OCI_MANIFEST, body).digest, OCI_MANIFEST, body), blobs


def upstream_with(
    manifest: Manifest, blobs: dict[str, bytes], *, fails: Mapping[str, Exception] | None = None
) -> Failing:
    return Failing(
        {"1": ManifestHead(DIGEST, OCI_MANIFEST, 100)},
        manifests={SIGNATURE_TAG: manifest},
        blobs=blobs,
        fails=fails or {},
    )


def gated(key: Key) -> WorkItem:
    return WorkItem("docker.io/acme/app", "1", "mirror/acme/app", "1", verify=("key", key.public_pem()))


def checked(item: WorkItem, upstream: FakeRegistry) -> ItemCheck:
    return check_item(
        item, upstream=lambda _: upstream, target=FakeRegistry({}), budget=PullBudget(0), force=False, dry_run=False
    )


@pytest.fixture(scope="module")
def key() -> Key:
    return Key.generate()


def test_a_good_signature_lets_the_item_through_to_its_job(key: Key) -> None:
    """The control for every refusal below: the same fakes, nothing broken, the item goes on."""
    result = checked(gated(key), upstream_with(*signature_manifest(key)))
    assert result.outcome is None
    assert result.decision is not None
    assert result.decision.action == "copy"


BREAKS = {
    "a 5xx on the signature manifest": (
        SIGNATURE_TAG,
        RegistryUnavailableError("upstream docker.io/acme/app: the registry answered 503 3 times", status=503),
    ),
    "a 500 on the signature manifest": (
        SIGNATURE_TAG,
        RegistryUnavailableError("upstream docker.io/acme/app: server error 500", status=500),
    ),
    "a 401 on the signature manifest": (
        SIGNATURE_TAG,
        AuthenticationError("upstream docker.io/acme/app: access denied anonymously (401)", status=401),
    ),
    "an unexpected answer on the signature manifest": (
        SIGNATURE_TAG,
        RegistryError("upstream docker.io/acme/app: unexpected answer 400", status=400),
    ),
}
PAYLOAD_BREAKS = {
    "a payload that is gone": BlobUnknownError("upstream docker.io/acme/app: blob not found", status=404),
    "a payload that does not match its digest": RegistryError(
        "upstream docker.io/acme/app: does not match its content"
    ),
    "a payload larger than a payload may be": RegistryError("upstream docker.io/acme/app: larger than 65536 bytes"),
    "a payload whose download broke": BlobDownloadError("upstream docker.io/acme/app: the connection was dropped"),
    "a payload behind a 401": AuthenticationError("upstream docker.io/acme/app: access denied (401)", status=401),
}


def _broken_upstream(key: Key, case: str) -> tuple[Failing, RegistryError]:
    manifest, blobs = signature_manifest(key)
    if case in BREAKS:
        reference, error = BREAKS[case]
    else:
        reference, error = _first_payload(manifest), PAYLOAD_BREAKS[case]
    return upstream_with(manifest, blobs, fails={reference: error}), error


def _first_payload(manifest: Manifest) -> str:
    return str(manifest.document()["layers"][0]["digest"])


@pytest.mark.parametrize("case", [*BREAKS, *PAYLOAD_BREAKS])
def test_an_error_reading_the_signature_fails_the_item_naming_the_cause(key: Key, case: str) -> None:
    upstream, error = _broken_upstream(key, case)
    result = checked(gated(key), upstream)
    assert result.outcome is not None, "the gate let an unverified image through"
    assert result.outcome.outcome == "failed"
    reason = result.outcome.reason
    assert reason.startswith("signature: "), reason
    assert str(error) in reason, reason  # the cause, in the registry's words
    assert error.reason in reason
    assert reason.endswith("; the target tag is left as it is")
    assert result.outcome.upstream_digest == DIGEST


def _batch(store: MemoryStore, item: WorkItem, upstream: FakeRegistry) -> BatchResult:
    return check_batch(
        run="r",
        batch="00000",
        items=[item],
        store=store,
        upstream=lambda _: upstream,
        target=FakeRegistry({}),
        target_registry="target.example",
        floor=0,
        concurrency=1,
        force=False,
        dry_run=False,
    )


@pytest.mark.parametrize("case", [*BREAKS, *PAYLOAD_BREAKS])
def test_an_item_whose_signature_could_not_be_read_gets_no_job(key: Key, case: str) -> None:
    upstream, _ = _broken_upstream(key, case)
    store = MemoryStore({})
    result = _batch(store, gated(key), upstream)
    assert result.copy_job is None
    assert result.build_job is None
    assert [k for k in store.objects if "/jobs/" in k] == []
    assert result.counts == {"failed": 1}
    (outcome,) = store.objects["runs/r/outcomes/00000-check.json"]
    assert outcome["outcome"] == "failed"
    assert outcome["reason"].startswith("signature: ")


def test_the_same_batch_with_a_readable_signature_gets_its_job(key: Key) -> None:
    """So the test above would see a job if the gate let the item through."""
    store = MemoryStore({})
    result = _batch(store, gated(key), upstream_with(*signature_manifest(key)))
    assert result.copy_job == "runs/r/jobs/00000-copy.json"
    assert [entry["target_tag"] for entry in store.objects["runs/r/jobs/00000-copy.json"]["items"]] == ["1"]


def test_an_exception_the_gate_does_not_know_still_fails_the_item_and_gives_no_job(key: Key) -> None:
    """Not a registry error (a defect, an unwrapped connection error): the batch fails the item, never copies it."""
    manifest, blobs = signature_manifest(key)
    broken = {_first_payload(manifest): ConnectionResetError("connection reset by peer")}
    upstream = upstream_with(manifest, blobs, fails=broken)
    store = MemoryStore({})
    result = _batch(store, gated(key), upstream)
    assert result.copy_job is None
    (outcome,) = store.objects["runs/r/outcomes/00000-check.json"]
    assert outcome["outcome"] == "failed"
    assert "connection reset by peer" in outcome["reason"]


def test_a_rate_limit_is_the_one_error_that_defers(key: Key) -> None:
    upstream = upstream_with(*signature_manifest(key))
    upstream.limited.add(SIGNATURE_TAG)
    result = checked(gated(key), upstream)
    assert result.outcome is not None
    assert result.outcome.outcome == "deferred"


def test_a_signature_manifest_without_a_signature_in_it_fails_the_item(key: Key) -> None:
    manifest, blobs = signature_manifest()  # a .sig tag holding no simple-signing layer
    result = checked(gated(key), upstream_with(manifest, blobs))
    assert result.outcome is not None
    assert result.outcome.outcome == "failed"
    assert result.outcome.reason == (
        f"signature: docker.io/acme/app:{SIGNATURE_TAG} holds no simple-signing signature; the target tag is left as it is"
    )


def test_a_signature_manifest_that_is_not_json_fails_the_item(key: Key) -> None:
    garbage = Manifest("sha256:" + "0" * 64, OCI_MANIFEST, b"<html>not a manifest</html>")
    result = checked(gated(key), upstream_with(garbage, {}))
    assert result.outcome is not None
    assert result.outcome.outcome == "failed"
    assert result.outcome.reason.startswith(f"signature: docker.io/acme/app:{SIGNATURE_TAG} is not a JSON manifest")


def test_one_good_signature_among_others_is_enough_wherever_it_is(key: Key) -> None:
    """cosign appends a layer per signing: a key rotated, or a second signer, leaves the older ones first."""
    other = Key.generate()
    for signers in ((other, key), (key, other), (other, other, key)):
        result = checked(gated(key), upstream_with(*signature_manifest(*signers)))
        assert result.outcome is None, [s is key for s in signers]


def test_signatures_by_other_keys_only_fail_the_item_counting_each(key: Key) -> None:
    other = Key.generate()
    result = checked(gated(key), upstream_with(*signature_manifest(other, other, other)))
    assert result.outcome is not None
    assert result.outcome.outcome == "failed"
    assert result.outcome.reason.startswith(
        f"signature: none of the 3 cosign signature(s) in docker.io/acme/app:{SIGNATURE_TAG}"
    )


def test_a_good_signature_of_another_image_fails_the_item(key: Key) -> None:
    """A signature the publisher really made, for another digest, put under this digest's tag."""
    elsewhere = "sha256:" + "d" * 64
    result = checked(gated(key), upstream_with(*signature_manifest(key, digest=elsewhere)))
    assert result.outcome is not None
    assert result.outcome.outcome == "failed"
    assert f"it signs {elsewhere}, not {DIGEST}" in result.outcome.reason


def test_the_cosign_made_signature_of_another_digest_fails_the_item() -> None:
    cosign: CosignSignature = load()
    payload_blob, config, manifest = cosign.artifact()
    upstream = upstream_with(
        Manifest(manifest.digest, OCI_MANIFEST, manifest.data),
        {payload_blob.digest: payload_blob.data, config.digest: config.data},
    )
    item = WorkItem("docker.io/acme/app", "1", "mirror/acme/app", "1", verify=("key", cosign.public_pem))
    result = checked(item, upstream)
    assert result.outcome is not None
    assert result.outcome.outcome == "failed"
    assert f"it signs {cosign.digest}, not {DIGEST}" in result.outcome.reason
