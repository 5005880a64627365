"""Signatures through the whole pipeline: a signed image arrives signed, a gated image moves
only when its signature verifies, and a warm run looks at nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from devstack.content import cosign
from devstack.content.images import Blob, platform_image, seed
from devstack.content.sigstore import Sigstore
from devstack.stack import ECR_PASSWORD, ECR_USER, RunResult, Stack
from hubmirror.domain.oci import DOCKER_MANIFEST
from tests.support import Fetched, RegistryReader

pytestmark = pytest.mark.e2e
KEY_SECRET = "hubmirror/cosign/publisher"
#: the trust root of the tests' own Sigstore, as a deployment with a private Sigstore keeps it
TRUST_ROOT_PARAMETER = "/hubmirror/sigstore/trusted-root"
ACTIONS = "https://token.actions.githubusercontent.com"
RELEASE = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0"
IMPOSTOR = "https://github.com/evil/app/.github/workflows/release.yml@refs/tags/v1.0.0"


@dataclass
class World:
    stack: Stack
    target: RegistryReader
    key: cosign.Key
    digests: dict[str, str]
    artifacts: dict[str, str]
    sigstore: Sigstore
    allowlist: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    parameters = {"SigstoreTrustedRootParameter": TRUST_ROOT_PARAMETER}
    with Stack(Path(tmp_path_factory.mktemp("stack")), parameters=parameters) as stack:
        assert stack.front is not None
        assert stack.ecr is not None
        pusher, key = stack.hub_pusher(), cosign.Key.generate()
        digests = {
            "signed": seed(pusher, "library/signed", "1", ["linux/amd64", "linux/arm64"]),
            "unsigned": seed(pusher, "library/unsigned", "1", ["linux/amd64"]),
            "selected": seed(pusher, "library/selected", "1", ["linux/amd64", "linux/arm64"]),
            "gated": seed(pusher, "library/gated", "1", ["linux/amd64"]),
        }
        artifacts = {
            "sig": cosign.sign(pusher, "library/signed", digests["signed"], key),
            "att": cosign.attest(pusher, "library/signed", digests["signed"], key, "https://slsa.dev/provenance/v1"),
        }
        cosign.sign(pusher, "library/selected", digests["selected"], key)
        for platform in ("linux/amd64", "linux/arm64"):  # as cosign sign --recursive signs an index
            digests[f"selected {platform}"] = child = platform_image(platform, "library/selected:1").manifest.digest
            cosign.sign(pusher, "library/selected", child, key)
        cosign.sign(pusher, "library/gated", digests["gated"], key)
        hub = stack.front.host
        pem = "".join(f"        {line}\n" for line in key.public_pem().splitlines())
        boto3.client("secretsmanager").create_secret(Name=KEY_SECRET, SecretString=key.public_pem())
        sigstore = Sigstore()
        root = json.dumps(json.loads(sigstore.trusted_root()), separators=(",", ":"))
        boto3.client("ssm").put_parameter(Name=TRUST_ROOT_PARAMETER, Value=root, Type="String", Tier="Advanced")
        allowlist = f"""images:
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
  - source: {hub}/library/gated
    tags: ["1"]
    target: gated
    verify:
      key: |
{pem}  - source: {hub}/library/signed
    tags: ["1"]
    target: signed-by-secret
    verify: {{secret: {KEY_SECRET}}}
"""
        stack.write_allowlist(allowlist)
        target = RegistryReader(stack.ecr.host, ECR_USER, ECR_PASSWORD)
        yield World(stack, target, key, digests, artifacts, sigstore, allowlist)


def verifies_in_target(world: World, repository: str, signature: Fetched, digest: str) -> bool:
    """What ``cosign verify --key`` checks of ``digest``'s signature, read from the mirror."""
    layers = {str(d["digest"]): world.target.blob(repository, str(d["digest"])) for d in signature.document["layers"]}
    return cosign.verifies(json.dumps(signature.document).encode(), layers, digest, world.key.public_pem())


@pytest.fixture(scope="module")
def first(world: World) -> RunResult:
    return world.stack.run({})


@pytest.fixture(scope="module")
def second(world: World, first: RunResult) -> RunResult:
    return world.stack.run({})


def test_the_signature_and_attestation_arrive_and_verify_against_the_mirror(world: World, first: RunResult) -> None:
    assert first.status == "SUCCEEDED"
    assert "; cosign sig, att copied;" in first.item("mirror/signed:1")["reason"]
    tag = world.digests["signed"].replace(":", "-")
    signature = world.target.manifest("mirror/signed", f"{tag}.sig")
    attestation = world.target.manifest("mirror/signed", f"{tag}.att")
    assert signature is not None
    assert attestation is not None
    assert (signature.digest, attestation.digest) == (world.artifacts["sig"], world.artifacts["att"])
    assert verifies_in_target(world, "mirror/signed", signature, world.digests["signed"])


def test_the_report_says_why_other_images_carry_no_signature(world: World, first: RunResult) -> None:
    assert first.item("mirror/unsigned:1")["reason"].endswith("; no cosign signature upstream")
    signed = first.item("mirror/signed:1")["reason"]
    assert signed.endswith("; cosign sig, att copied; signatures of 0 of 2 platform manifests copied")


def test_the_selected_platform_s_own_signature_arrives_though_the_index_is_hubmirror_s(
    world: World, first: RunResult
) -> None:
    assert first.item("mirror/selected:1")["reason"].endswith(
        "; the index written for the selected platforms is hubmirror's own, unsigned; "
        "signatures of 1 of 1 platform manifests copied"
    )
    assert world.target.manifest("mirror/selected", world.digests["selected"].replace(":", "-") + ".sig") is None
    child = world.digests["selected linux/amd64"]
    signature = world.target.manifest("mirror/selected", child.replace(":", "-") + ".sig")
    assert signature is not None
    assert verifies_in_target(world, "mirror/selected", signature, child)
    arm64 = world.digests["selected linux/arm64"]
    assert world.target.manifest("mirror/selected", arm64.replace(":", "-") + ".sig") is None  # not mirrored


def test_finding_signatures_costs_one_head_per_copied_image_and_more_only_for_signed_ones(first: RunResult) -> None:
    # the check HEADs each image (5) and the job each image it copies (5); the job HEADs the .sig of each
    # copied image (5) and, of the four whose index is copied as it is, the OCI referrers tag (4: the
    # hub has no referrers API); then, of the signed ones only, the .att and .sbom of the three whose
    # index is copied (6) and the .sig of each platform manifest (2 + 2 for the two-platform index,
    # 1 selected)
    assert first.upstream.get("head_manifest", 0) == 5 + 5 + 5 + 4 + 6 + 5


def test_a_gated_image_whose_signature_verifies_is_copied_and_says_so(world: World, first: RunResult) -> None:
    gated = first.item("mirror/gated:1")
    assert gated["outcome"] == "copied"
    assert "its cosign signature verified" in gated["reason"]
    copied = world.target.manifest("mirror/gated", "1")
    assert copied is not None
    assert copied.digest == world.digests["gated"]


def test_a_key_kept_in_secrets_manager_is_read_once_under_the_check_role_s_own_permission(
    world: World, first: RunResult
) -> None:
    assert first.item("mirror/signed-by-secret:1")["outcome"] == "copied"
    reads = [c for c in world.stack.iam_calls if c.action == "secretsmanager:GetSecretValue"]
    assert [(c.principal.split("/")[-1], c.allowed) for c in reads] == [("CheckFunctionRole", True)]
    assert reads[0].resource.split(":secret:")[1].startswith(KEY_SECRET)


def test_a_warm_run_looks_for_no_signature_and_pulls_nothing(second: RunResult) -> None:
    assert set(second.outcomes().values()) == {"unchanged"}
    assert second.upstream.get("head_manifest", 0) == 5  # the check's one HEAD per item, nothing more
    assert second.upstream.get("get_manifest", 0) == 0
    assert [e["detail-type"] for e in second.published] == ["Sync Completed"]


@pytest.fixture(scope="module")
def forged(world: World, second: RunResult) -> RunResult:
    """The gated tag moves upstream to an image signed by another key."""
    pusher, other = world.stack.hub_pusher(), cosign.Key.generate()
    moved = seed(pusher, "library/gated", "1", ["linux/amd64"], marker="not the publisher's")
    assert moved != world.digests["gated"]
    cosign.sign(pusher, "library/gated", moved, other)
    world.digests["moved"] = moved
    return world.stack.run({})


def test_an_image_whose_signature_does_not_verify_fails_alone_and_its_tag_stays(
    world: World, forged: RunResult
) -> None:
    assert forged.status == "FAILED"  # a failed item fails the execution, after the report
    outcomes = forged.outcomes()
    assert outcomes.pop("mirror/gated:1") == "failed"
    assert set(outcomes.values()) == {"unchanged"}
    reason = forged.item("mirror/gated:1")["reason"]
    moved = world.digests["moved"]
    assert reason == (
        f"signature: none of the 1 cosign signature(s) in {world.stack.front.host}/library/gated:"  # type: ignore[union-attr]
        f"{moved.replace(':', '-')}.sig verifies: it does not verify with the allowlist's key; "
        "the target tag is left as it is"
    )
    kept = world.target.manifest("mirror/gated", "1")
    assert kept is not None
    assert kept.digest == world.digests["gated"]
    assert world.target.manifest("mirror/gated", moved) is None  # nothing of the forged image was pushed
    assert forged.upstream.get("get_manifest", 0) == 1  # the signature manifest, and no image manifest
    failed = [e for e in forged.published if e["detail-type"] == "Image Failed"]
    assert [e["detail"]["reason"] for e in failed] == [reason]


def test_the_chat_topic_gets_the_run_as_a_custom_notification(world: World, forged: RunResult) -> None:
    import jsonschema

    from tests.unit.test_chat import SCHEMA

    assert forged.chat is not None
    jsonschema.validate(forged.chat, SCHEMA)
    content = forged.chat["content"]
    assert content["title"] == ":x: hubmirror FAILED: 1 failed, 4 unchanged of 5"
    assert "*Failed*\n• `mirror/gated:1`" in content["description"]
    assert "signature: none of the 1 cosign signature(s)" in content["description"]
    execution = forged.execution_arn
    assert any(step.endswith(f"#/v2/executions/details/{execution}") for step in content["nextSteps"])
    assert forged.chat["metadata"]["relatedResources"][0] == execution


@pytest.fixture(scope="module")
def keyless(world: World, forged: RunResult) -> RunResult:
    """Two images signed keyless in the tests' own Sigstore, one by the release workflow the
    allowlist names, one by another repository's; the stack verifies against that Sigstore's
    trust root, kept in the SSM parameter ``SigstoreTrustedRootParameter`` names."""
    pusher, hub = world.stack.hub_pusher(), world.stack.front.host  # type: ignore[union-attr]
    for name, identity, repository in (("keyless", RELEASE, "acme/app"), ("impostor", IMPOSTOR, "evil/app")):
        world.digests[name] = seed(pusher, f"library/{name}", "1", ["linux/amd64"])
        world.artifacts[name] = world.sigstore.sign_image(
            pusher,
            f"library/{name}",
            world.digests[name],
            identity,
            ACTIONS,
            workflow={"repository": repository, "trigger": "push", "ref": "refs/tags/v1.0.0"},
        )
    policy = f"""    verify:
      identity_regexp: ^https://github\\.com/acme/app/\\.github/workflows/release\\.yml@refs/tags/
      issuer: {ACTIONS}
      github_workflow_repository: acme/app
      github_workflow_trigger: push
"""
    world.stack.write_allowlist(
        world.allowlist
        + f"""  - source: {hub}/library/keyless
    tags: ["1"]
    target: keyless
{policy}  - source: {hub}/library/impostor
    tags: ["1"]
    target: impostor
{policy}"""
    )
    return world.stack.run({})


def test_a_keyless_signed_image_passes_the_gate_for_its_workflow_and_arrives_with_its_signature(
    world: World, keyless: RunResult
) -> None:
    item = keyless.item("mirror/keyless:1")
    assert item["outcome"] == "copied"
    assert "its cosign signature verified" in item["reason"]
    copied = world.target.manifest("mirror/keyless", "1")
    assert copied is not None
    assert copied.digest == world.digests["keyless"]
    signature = world.target.manifest("mirror/keyless", world.digests["keyless"].replace(":", "-") + ".sig")
    assert signature is not None
    assert signature.digest == world.artifacts["keyless"]  # byte for byte: it verifies against the mirror too


def test_an_image_signed_by_another_identity_fails_alone_naming_the_identity_it_found(
    world: World, keyless: RunResult
) -> None:
    outcomes = keyless.outcomes()
    assert (outcomes.pop("mirror/impostor:1"), outcomes.pop("mirror/gated:1")) == ("failed", "failed")
    assert outcomes.pop("mirror/keyless:1") == "copied"
    assert set(outcomes.values()) == {"unchanged"}
    reason = keyless.item("mirror/impostor:1")["reason"]
    assert reason.startswith("signature: none of the 1 cosign signature(s) in ")
    assert f"it was signed by {IMPOSTOR}, which does not match ^https://github" in reason
    assert world.target.manifest("mirror/impostor", "1") is None
    assert world.target.manifest("mirror/impostor", world.digests["impostor"]) is None
    reads = [c for c in world.stack.iam_calls if c.action == "ssm:GetParameter"]
    assert {(c.principal.split("/")[-1], c.allowed) for c in reads} == {("CheckFunctionRole", True)}


def _refused_signature(world: World, repository: str, digest: str) -> None:
    """A ``.sig`` whose manifest ECR refuses (a Docker manifest with ``annotations``, a field its
    schema lacks): the hub keeps it, the mirror cannot take it."""
    pusher = world.stack.hub_pusher()
    image = platform_image("linux/amd64", f"{repository} signature that ECR refuses")
    for blob in (image.config, *image.layers):
        pusher.blob(repository, blob)
    document = {**json.loads(image.manifest.data), "mediaType": DOCKER_MANIFEST, "annotations": {"x": "y"}}
    pusher.manifest(repository, digest.replace(":", "-") + ".sig", Blob(DOCKER_MANIFEST, json.dumps(document).encode()))


@pytest.fixture(scope="module")
def extras(world: World, keyless: RunResult) -> list[RunResult]:
    """An image whose signature the mirror refuses is copied anyway; the next run tries the
    signature again, alone; once the publisher signs again, the run after copies it."""
    pusher, hub = world.stack.hub_pusher(), world.stack.front.host  # type: ignore[union-attr]
    world.digests["extras"] = digest = seed(pusher, "library/extras", "1", ["linux/amd64"])
    _refused_signature(world, "library/extras", digest)
    world.stack.write_allowlist(
        f"""images:
  - source: {hub}/library/extras
    tags: ["1"]
    target: extras
"""
    )
    runs = [world.stack.run({}), world.stack.run({})]
    world.artifacts["extras"] = cosign.sign(pusher, "library/extras", digest, world.key)  # signed again, properly
    runs.append(world.stack.run({}))
    return runs


def test_a_signature_the_mirror_refuses_never_costs_the_image_and_later_runs_retry_it_alone(
    world: World, extras: list[RunResult]
) -> None:
    first, second, third = extras
    copied = first.item("mirror/extras:1")
    assert copied["outcome"] == "copied"
    assert "cosign signatures not copied (registry: target " in copied["reason"]
    assert copied["reason"].endswith("; the next run tries again")
    landed = world.target.manifest("mirror/extras", "1")
    assert landed is not None
    assert landed.digest == world.digests["extras"]  # the tag moved all the same
    retried = second.item("mirror/extras:1")
    assert retried["outcome"] == "unchanged"
    assert retried["reason"].startswith("its signatures or referrers did not all arrive with it; copying them again: ")
    assert second.upstream.get("get_manifest", 0) == 1  # the signature tried again; not the image
    done = third.item("mirror/extras:1")
    assert (done["outcome"], done["reason"].endswith("cosign sig copied")) == ("unchanged", True)
    signature = world.target.manifest("mirror/extras", world.digests["extras"].replace(":", "-") + ".sig")
    assert signature is not None
    assert signature.digest == world.artifacts["extras"]
    assert all(run.status == "SUCCEEDED" for run in extras)
    assert not [c for run in extras for c in run.iam_refused]
    bucket = world.stack.deployment.bucket  # type: ignore[union-attr]
    assert boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="extras/").get("KeyCount") == 0  # cleared
