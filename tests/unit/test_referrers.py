"""Finding OCI 1.1 referrers where a registry has no referrers API (pure logic, a fake registry)."""

from __future__ import annotations

import json

from hubmirror.copying.extras import find_referrers
from hubmirror.domain.items import WorkItem
from hubmirror.domain.oci import OCI_INDEX, OCI_MANIFEST, referrers_tag, sha256_digest
from hubmirror.domain.registry.model import Manifest, ManifestHead
from tests.fakes import FakeRegistry

DIGEST = "sha256:" + "c" * 64
ITEM = WorkItem("docker.io/acme/app", "1", "mirror/acme/app", "1")


class NoApi(FakeRegistry):
    def referrers(self, repository: str, digest: str) -> None:
        self._answer("GET referrers", digest)


def test_a_registry_without_the_api_is_read_through_the_tag_schema_and_a_missing_tag_costs_one_head() -> None:
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "d" * 64, "size": 10, "artifactType": "x/y"}
    ]}).encode()  # fmt: skip
    tag = referrers_tag(DIGEST)
    upstream = NoApi(
        {tag: ManifestHead(sha256_digest(index), OCI_INDEX, len(index))},
        manifests={tag: Manifest(sha256_digest(index), OCI_INDEX, index)},
    )
    assert [d["artifactType"] for d in find_referrers(ITEM, DIGEST, upstream=upstream, budget=None)] == ["x/y"]  # type: ignore[arg-type]
    assert upstream.requests == [("GET referrers", DIGEST), ("HEAD", tag), ("GET", tag)]
    empty = NoApi({})
    assert find_referrers(ITEM, DIGEST, upstream=empty, budget=None) == []  # type: ignore[arg-type]
    assert empty.requests == [("GET referrers", DIGEST), ("HEAD", referrers_tag(DIGEST))]


def test_a_registry_that_answers_the_tag_with_the_image_itself_has_no_referrers() -> None:
    """Some registries without the API read ``sha256-<hex>`` as the digest (oras-project/oras#2148)."""
    tag = referrers_tag(DIGEST)
    upstream = NoApi({tag: ManifestHead(DIGEST, OCI_INDEX, 500)})
    assert find_referrers(ITEM, DIGEST, upstream=upstream, budget=None) == []  # type: ignore[arg-type]
    assert ("GET", tag) not in upstream.requests  # no pull spent on it
