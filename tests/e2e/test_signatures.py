"""Signatures through the whole pipeline: a signed image arrives signed, and a warm run looks at nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack import cosign
from devstack.images import seed
from devstack.stack import ECR_PASSWORD, ECR_USER, RunResult, Stack
from tests.support import RegistryReader

pytestmark = pytest.mark.e2e


@dataclass
class World:
    stack: Stack
    target: RegistryReader
    key: cosign.Key
    digests: dict[str, str]
    artifacts: dict[str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with Stack(Path(tmp_path_factory.mktemp("stack"))) as stack:
        assert stack.front is not None
        assert stack.ecr is not None
        pusher, key = stack.hub_pusher(), cosign.Key.generate()
        digests = {
            "signed": seed(pusher, "library/signed", "1", ["linux/amd64", "linux/arm64"]),
            "unsigned": seed(pusher, "library/unsigned", "1", ["linux/amd64"]),
            "selected": seed(pusher, "library/selected", "1", ["linux/amd64", "linux/arm64"]),
        }
        artifacts = {
            "sig": cosign.sign(pusher, "library/signed", digests["signed"], key),
            "att": cosign.attest(pusher, "library/signed", digests["signed"], key, "https://slsa.dev/provenance/v1"),
        }
        cosign.sign(pusher, "library/selected", digests["selected"], key)
        hub = stack.front.host
        stack.write_allowlist(
            f"""images:
  - source: {hub}/library/signed
    tags: ["1"]
    target: signed
  - source: {hub}/library/unsigned
    tags: ["1"]
    target: unsigned
  - source: {hub}/library/selected
    tags: ["1"]
    target: selected
    platforms: [linux/amd64]
"""
        )
        yield World(stack, RegistryReader(stack.ecr.host, ECR_USER, ECR_PASSWORD), key, digests, artifacts)


@pytest.fixture(scope="module")
def first(world: World) -> RunResult:
    return world.stack.run({})


@pytest.fixture(scope="module")
def second(world: World, first: RunResult) -> RunResult:
    return world.stack.run({})


def test_the_signature_and_attestation_arrive_and_verify_against_the_mirror(world: World, first: RunResult) -> None:
    assert first.status == "SUCCEEDED"
    assert first.item("mirror/signed:1")["reason"].endswith("; cosign sig, att copied")
    tag = world.digests["signed"].replace(":", "-")
    signature = world.target.manifest("mirror/signed", f"{tag}.sig")
    attestation = world.target.manifest("mirror/signed", f"{tag}.att")
    assert signature is not None
    assert attestation is not None
    assert (signature.digest, attestation.digest) == (world.artifacts["sig"], world.artifacts["att"])
    layers = {
        str(d["digest"]): world.target.blob("mirror/signed", str(d["digest"])) for d in signature.document["layers"]
    }
    body = json.dumps(signature.document).encode()
    assert cosign.verifies(body, layers, world.digests["signed"], world.key.public_pem())


def test_the_report_says_why_other_images_carry_no_signature(world: World, first: RunResult) -> None:
    assert first.item("mirror/unsigned:1")["reason"].endswith("; no cosign signature upstream")
    selected = first.item("mirror/selected:1")["reason"]
    assert selected.endswith(
        "; signatures not copied: the platforms selected make an index of its own, no upstream one"
    )
    assert world.target.manifest("mirror/selected", world.digests["selected"].replace(":", "-") + ".sig") is None


def test_finding_signatures_costs_one_head_per_copied_image_and_the_signed_one_two_more(first: RunResult) -> None:
    # the check HEADs each image (3), the job HEADs each image it copies (3), then the .sig of the two
    # verbatim copies, and the .att and .sbom of the signed one
    assert first.upstream.get("head_manifest", 0) == 3 + 3 + 2 + 2


def test_a_warm_run_looks_for_no_signature_and_pulls_nothing(second: RunResult) -> None:
    assert set(second.outcomes().values()) == {"unchanged"}
    assert second.upstream.get("head_manifest", 0) == 3  # the check's one HEAD per item, nothing more
    assert second.upstream.get("get_manifest", 0) == 0
    assert [e["detail-type"] for e in second.published] == ["Sync Completed"]
