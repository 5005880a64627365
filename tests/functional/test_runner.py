"""The copy/build job's script against real registries: one item's failure stays its own."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from devstack.content import cosign
from devstack.content.images import Blob, platform_image, seed
from devstack.registries.ecrfront import EcrFront
from devstack.registries.proxy import Fault
from devstack.stack import ECR_PASSWORD, ECR_USER
from hubmirror.adapters.ecr import Ecr
from hubmirror.adapters.registry.client import RegistryClient
from hubmirror.adapters.s3 import Store
from hubmirror.domain import keys
from hubmirror.domain.advice import Cause, remedy
from hubmirror.domain.decisions import short
from hubmirror.domain.documents import ExtrasMark, RefusalRecord
from hubmirror.domain.items import WorkItem
from hubmirror.domain.oci import DOCKER_MANIFEST, OCI_INDEX
from hubmirror.domain.ratelimit import PullBudget
from hubmirror.domain.registry.errors import NotFoundError
from hubmirror.domain.registry.model import Credentials
from hubmirror.runner.job import run_job
from hubmirror.steps.check import check_batch, check_item
from tests.documents import problems
from tests.functional.conftest import Registries


class FixedEcr(Ecr):
    """ECR's control plane as the job meets it: the registry login alone (ECR creates each
    repository on its first push, with the stack's creation template)."""

    def __init__(self, front: EcrFront | None = None) -> None:
        self.front = front

    def credentials(self) -> Credentials:
        return Credentials(ECR_USER, ECR_PASSWORD)


def test_a_refused_push_fails_its_item_and_the_job_goes_on(registries: Registries, s3_store: Store) -> None:
    """ECR refuses the first push to one repository (say its creation is denied the KMS key)."""
    refusal = json.dumps({"errors": [{"code": "DENIED", "message": "kms:CreateGrant denied"}]}).encode()
    registries.ecr.inject(
        Fault("blob_upload", 403, {"Content-Type": "application/json"}, refusal, repository="mirror/denied", times=10)
    )
    hub = registries.front.host
    digest = seed(registries.hub_pusher(), "library/runner", "1", ["linux/amd64"])
    items = []
    for target in ("mirror/denied", "mirror/allowed"):
        item = WorkItem(f"{hub}/library/runner", "1", target, "1")
        items.append(
            {
                **item.to_dict(),
                "upstream_digest": digest,
                "upstream_media_type": "application/vnd.oci.image.manifest.v1+json",
                "recipe": None,
            }
        )
    job = {
        "run": "r",
        "batch": "00000",
        "kind": "copy",
        "target_registry": registries.ecr.host,
        "outcomes_key": "runs/r/outcomes/00000-copy.json",
        "items": items,
    }
    s3_store.put_json("runs/r/jobs/00000-copy.json", job)
    code = run_job(
        "s3://runs/runs/r/jobs/00000-copy.json",
        store_factory=lambda bucket: s3_store,
        ecr=FixedEcr(registries.ecr),
        environ={},
    )
    registries.ecr.faults.clear()
    assert code == 1
    outcomes = {o["target"]: o for o in s3_store.get_json("runs/r/outcomes/00000-copy.json")}
    assert outcomes["mirror/denied:1"]["outcome"] == "failed"
    assert "kms:CreateGrant denied" in outcomes["mirror/denied:1"]["reason"], outcomes["mirror/denied:1"]
    assert outcomes["mirror/allowed:1"]["outcome"] == "copied"
    assert outcomes["mirror/allowed:1"]["target_digest"] == digest


def test_a_job_that_is_not_an_s3_uri_is_refused(s3_store: Store) -> None:
    assert run_job("runs/r/jobs/x.json", store_factory=lambda bucket: s3_store, ecr=FixedEcr(), environ={}) == 2


def _copy_job(registries: Registries, s3_store: Store, items: list[tuple[WorkItem, str]]) -> dict[str, dict[str, Any]]:
    job = {
        "run": "r",
        "batch": "00001",
        "kind": "copy",
        "target_registry": registries.ecr.host,
        "outcomes_key": "runs/r/outcomes/00001-copy.json",
        "items": [
            {**item.to_dict(), "upstream_digest": digest, "upstream_media_type": OCI_INDEX, "recipe": None}
            for item, digest in items
        ],
    }
    s3_store.put_json("runs/r/jobs/00001-copy.json", job)
    run_job("s3://runs/runs/r/jobs/00001-copy.json", store_factory=lambda _: s3_store, ecr=FixedEcr(registries.ecr))
    return {o["target"]: o for o in s3_store.get_json("runs/r/outcomes/00001-copy.json")}


def test_a_signed_image_arrives_with_its_signature_and_attestation_which_verify_against_the_target(
    registries: Registries, s3_store: Store
) -> None:
    hub, pusher, key = registries.front.host, registries.hub_pusher(), cosign.Key.generate()
    signed = seed(pusher, "library/signed", "1", ["linux/amd64", "linux/arm64"])
    signature = cosign.sign(pusher, "library/signed", signed, key)
    attestation = cosign.attest(pusher, "library/signed", signed, key, "https://spdx.dev/Document")
    arm64 = platform_image("linux/arm64", "library/signed:1").manifest.digest
    arm64_signature = cosign.sign(pusher, "library/signed", arm64, key)  # one platform signed, as --recursive would
    unsigned = seed(pusher, "library/unsigned", "1", ["linux/amd64"])
    skipped = seed(pusher, "library/skipped", "1", ["linux/amd64"])
    cosign.sign(pusher, "library/skipped", skipped, key)
    before = registries.front.snapshot()

    outcomes = _copy_job(
        registries,
        s3_store,
        [
            (WorkItem(f"{hub}/library/signed", "1", "mirror/signed", "1"), signed),
            (WorkItem(f"{hub}/library/unsigned", "1", "mirror/unsigned", "1"), unsigned),
            (WorkItem(f"{hub}/library/skipped", "1", "mirror/skipped", "1", signatures=False), skipped),
        ],
    )

    assert outcomes["mirror/signed:1"]["reason"].endswith(
        "; cosign sig, att copied; signatures of 1 of 2 platform manifests copied"
    )
    assert outcomes["mirror/unsigned:1"]["reason"].endswith("; no cosign signature upstream")
    assert outcomes["mirror/skipped:1"]["reason"] == f"copied {short(skipped)}"
    target = RegistryClient(registries.ecr.host, Credentials(ECR_USER, ECR_PASSWORD), side="target")
    tag = signed.replace(":", "-")
    copied = target.get_manifest("mirror/signed", f"{tag}.sig")
    assert copied.digest == signature  # byte for byte: the signature verifies against the mirror
    assert target.get_manifest("mirror/signed", f"{tag}.att").digest == attestation
    layers = {str(d["digest"]): target.get_blob("mirror/signed", str(d["digest"])) for d in copied.document()["layers"]}
    assert cosign.verifies(copied.body, layers, signed, key.public_pem())
    assert not cosign.verifies(copied.body, layers, signed, cosign.Key.generate().public_pem())
    with pytest.raises(NotFoundError):
        target.head_manifest("mirror/skipped", skipped.replace(":", "-") + ".sig")
    assert target.get_manifest("mirror/signed", arm64.replace(":", "-") + ".sig").digest == arm64_signature
    after = registries.front.snapshot()
    # HEADs: each image's own (3), a .sig and the OCI referrers tag for the two that copy signatures
    # (the hub has no referrers API), the .att and .sbom of the signed one and the .sig of its
    # 2 platforms; pulls: the signed index and its 2 platforms, the 2 single images, .sig, .att
    # and the arm64 .sig
    assert after.get("head_manifest", 0) - before.get("head_manifest", 0) == 3 + 2 * 2 + 2 + 2
    assert after.get("get_manifest", 0) - before.get("get_manifest", 0) == 3 + 2 + 2 + 1

    # copied again (a force run): the artifacts the target holds already cost no pull
    _copy_job(registries, s3_store, [(WorkItem(f"{hub}/library/signed", "1", "mirror/signed", "1"), signed)])
    again = registries.front.snapshot()
    assert again.get("get_manifest", 0) - after.get("get_manifest", 0) == 3  # the index and its 2 platforms


def test_selected_platforms_arrive_with_their_own_signatures_and_no_other(
    registries: Registries, s3_store: Store
) -> None:
    """``cosign sign --recursive`` signs the index and each platform manifest. With platforms
    selected the target's index is hubmirror's own (its digest is not the one signed): the
    selected platform's signature is copied byte for byte and verifies in the mirror; the
    index's signature and the unselected platform's are not copied."""
    from hubmirror.domain.decisions import recipe_hash

    hub, pusher, key = registries.front.host, registries.hub_pusher(), cosign.Key.generate()
    index = seed(pusher, "library/selected", "1", ["linux/amd64", "linux/arm64"])
    amd64 = platform_image("linux/amd64", "library/selected:1").manifest.digest
    arm64 = platform_image("linux/arm64", "library/selected:1").manifest.digest
    cosign.sign(pusher, "library/selected", index, key)
    amd64_signature = cosign.sign(pusher, "library/selected", amd64, key)
    cosign.sign(pusher, "library/selected", arm64, key)
    item = WorkItem(f"{hub}/library/selected", "1", "mirror/selected", "1", platforms=("linux/amd64",))
    s3_store.put_json(
        "runs/r/jobs/00002-copy.json",
        {
            "run": "r",
            "batch": "00002",
            "kind": "copy",
            "target_registry": registries.ecr.host,
            "outcomes_key": "runs/r/outcomes/00002-copy.json",
            "items": [
                {
                    **item.to_dict(),
                    "upstream_digest": index,
                    "upstream_media_type": OCI_INDEX,
                    "recipe": recipe_hash(item, index),
                }
            ],
        },
    )
    run_job("s3://runs/runs/r/jobs/00002-copy.json", store_factory=lambda _: s3_store, ecr=FixedEcr(registries.ecr))
    (outcome,) = s3_store.get_json("runs/r/outcomes/00002-copy.json")
    assert outcome["outcome"] == "copied", outcome
    assert outcome["reason"].endswith(
        "; the index written for the selected platforms is hubmirror's own, unsigned; "
        "signatures of 1 of 1 platform manifests copied"
    )
    target = RegistryClient(registries.ecr.host, Credentials(ECR_USER, ECR_PASSWORD), side="target")
    written = target.get_manifest("mirror/selected", "1")
    assert written.digest != index
    assert [d["digest"] for d in written.document()["manifests"]] == [amd64]
    copied = target.get_manifest("mirror/selected", amd64.replace(":", "-") + ".sig")
    assert copied.digest == amd64_signature  # byte for byte
    layers = {
        str(d["digest"]): target.get_blob("mirror/selected", str(d["digest"])) for d in copied.document()["layers"]
    }
    assert cosign.verifies(copied.body, layers, amd64, key.public_pem())
    for absent in (index, arm64):  # the index's own (not the index written) and the platform not mirrored
        with pytest.raises(NotFoundError):
            target.head_manifest("mirror/selected", absent.replace(":", "-") + ".sig")


def test_buildah_is_handed_none_of_the_job_s_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """The job's environment holds the role's keys; the tools it starts get a short list instead."""
    from hubmirror.runner.job import Toolbox

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "job-secret")
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc")
    monkeypatch.setenv("HUBMIRROR_JOB", "s3://bucket/runs/r/jobs/0-build.json")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    tools = Toolbox.create(tmp_path, {"ghcr.io": Credentials("user", "token")})
    assert "job-secret" not in tools.env.values()
    assert not [name for name in tools.env if name.startswith(("AWS_", "HUBMIRROR_", "CODEBUILD_"))]
    assert tools.env["HTTPS_PROXY"] == "http://proxy.internal:3128"  # pulls behind a proxy still work
    assert (tools.env["BUILDAH_ISOLATION"], tools.env["BUILDAH_RUNTIME"]) == ("oci", "/usr/bin/runc")


def _nested_index(registries: Registries, repository: str) -> str:
    """An index whose only entry is an index: no run can mirror it as it is."""
    pusher = registries.hub_pusher()
    image = platform_image("linux/amd64", "nested remembered")
    pusher.image(repository, image.manifest.digest, image)
    inner = Blob(
        OCI_INDEX,
        json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [image.manifest.descriptor()]}).encode(),
    )
    pusher.manifest(repository, inner.digest, inner)
    outer = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [inner.descriptor()]}
    return pusher.manifest(repository, "1", Blob(OCI_INDEX, json.dumps(outer).encode()))


def test_a_refusal_no_run_can_change_is_remembered_and_costs_the_next_run_one_head(
    registries: Registries, s3_store: Store
) -> None:
    front = registries.front
    digest = _nested_index(registries, "library/nested-again")
    item = WorkItem(f"{front.host}/library/nested-again", "1", "mirror/nested-again", "1")
    outcomes = _copy_job(registries, s3_store, [(item, digest)])
    failed = outcomes["mirror/nested-again:1"]
    assert failed["outcome"] == "failed"
    assert "nested indexes are not supported" in failed["reason"]
    target = RegistryClient(registries.ecr.host, Credentials(ECR_USER, ECR_PASSWORD), side="target")

    def check(*, force: bool) -> Any:
        return check_item(
            item,
            upstream=lambda _: RegistryClient(front.host),
            target=target,
            budget=PullBudget(0),
            force=force,
            dry_run=False,
            refusals=s3_store.find_json,
        )

    front.reset_counts()
    again = check(force=False)
    assert again.outcome is not None
    assert again.outcome.outcome == "failed"
    assert again.outcome.reason.startswith(failed["reason"] + " (remembered from run r; not tried again")
    assert again.outcome.upstream_digest == digest
    assert remedy(again.outcome.reason).cause == Cause.ALLOWLIST
    assert {k: v for k, v in front.snapshot().items() if v and k != "token"} == {"head_manifest": 1}  # no pull
    assert check(force=True).outcome is None  # a force run tries it again

    def unreadable(key: str) -> Any:
        raise EndpointConnectionError(endpoint_url=f"https://s3.amazonaws.com/{key}")

    tried = check_item(
        item, upstream=lambda _: RegistryClient(front.host), target=target, budget=PullBudget(0),
        force=False, dry_run=False, refusals=unreadable,
    )  # fmt: skip
    assert tried.outcome is None  # what cannot be read costs only the memory: the image is tried again


def test_a_batch_reads_its_remembered_refusals_with_one_listing_not_a_read_per_image(
    registries: Registries, s3_store: Store
) -> None:
    """A cold batch checks many images no job ever refused: one listing of ``refusals/`` tells
    the check so, and only a refusal listed there is read. A listing S3 refuses leaves the
    reads key by key, and the remembered refusal still stands."""
    front = registries.front
    refused_digest = _nested_index(registries, "library/nested-listed")
    refused = WorkItem(f"{front.host}/library/nested-listed", "1", "mirror/nested-listed", "1")
    _copy_job(registries, s3_store, [(refused, refused_digest)])
    new = [WorkItem(f"{front.host}/library/fresh-{n}", "1", f"mirror/fresh-{n}", "1") for n in range(3)]
    for one in new:
        seed(registries.hub_pusher(), one.source.split("/", 1)[1], "1", ["linux/amd64"])
    target = RegistryClient(registries.ecr.host, Credentials(ECR_USER, ECR_PASSWORD), side="target")
    calls: list[tuple[str, str]] = []
    listing_refused = False

    def count(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, str(params.get("Key") or params.get("Prefix") or "")))
        if listing_refused and model.name == "ListObjectsV2" and params.get("Prefix") == "refusals/":
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "ListObjectsV2")

    def batch() -> dict[str, str]:
        calls.clear()
        check_batch(
            run="r2", batch="00000", items=[refused, *new], store=s3_store,
            upstream=lambda _: RegistryClient(front.host), target=target, target_registry=registries.ecr.host,
            floor=0, concurrency=4, force=False, dry_run=False,
        )  # fmt: skip
        return {o["target"]: o["outcome"] for o in s3_store.get_json("runs/r2/outcomes/00000-check.json")}

    s3_store.client.meta.events.register("provide-client-params.s3", count)
    try:
        outcomes = batch()
        first = list(calls)
        listing_refused = True
        refused_listing = batch()
        second = list(calls)
    finally:
        s3_store.client.meta.events.unregister("provide-client-params.s3", count)
    assert outcomes == refused_listing == {"mirror/nested-listed:1": "failed"}  # the three others go to the job
    assert [c for c in first if c[1].startswith("refusals/")] == [
        ("ListObjectsV2", "refusals/"),
        ("GetObject", keys.refusal(refused_digest, None, "mirror/nested-listed")),
    ]
    assert sorted(c for c in second if c[0] == "GetObject" and c[1].startswith("refusals/")) == sorted(
        ("GetObject", keys.refusal(d, None, one.target_repository))
        for one, d in [(refused, refused_digest), *((one, _upstream_digest(front.host, one)) for one in new)]
    )


def _upstream_digest(host: str, item: WorkItem) -> str:
    """The digest upstream serves for ``item`` (what the check keys its refusal by)."""
    return RegistryClient(host).head_manifest(item.upstream.repository, item.tag).digest


def _docker_manifest_with_annotations(registries: Registries, repository: str, tag: str, what: str) -> str:
    """A Docker image manifest carrying ``annotations``, a field its schema does not define: the
    hub stores it, ECR refuses it ``MANIFEST_INVALID``."""
    image = platform_image("linux/amd64", what)
    pusher = registries.hub_pusher()
    for blob in (image.config, *image.layers):
        pusher.blob(repository, blob)
    document = json.loads(image.manifest.data)
    document["mediaType"] = DOCKER_MANIFEST
    document["annotations"] = {"org.example": what}
    return pusher.manifest(repository, tag, Blob(DOCKER_MANIFEST, json.dumps(document).encode()))


def test_only_a_refusal_of_the_image_itself_is_remembered_and_a_refused_signature_never_costs_the_image(
    registries: Registries, s3_store: Store
) -> None:
    """ECR refuses both manifests below as invalid. The image's own refusal depends on its digest
    alone: it fails and is remembered. A signature copied beside an image can be replaced upstream
    without the image changing: the image is copied and its tag moves, the signature's refusal is a
    note, and the image is marked for the next run to try the signature again."""
    hub = registries.front.host
    refused = _docker_manifest_with_annotations(registries, "library/refused", "1", "refused itself")
    signed = seed(registries.hub_pusher(), "library/badsig", "1", ["linux/amd64"])
    _docker_manifest_with_annotations(
        registries, "library/badsig", signed.replace(":", "-") + ".sig", "a bad signature"
    )
    outcomes = _copy_job(
        registries,
        s3_store,
        [
            (WorkItem(f"{hub}/library/refused", "1", "mirror/refused", "1"), refused),
            (WorkItem(f"{hub}/library/badsig", "1", "mirror/badsig", "1"), signed),
        ],
    )
    assert outcomes["mirror/refused:1"]["outcome"] == "failed"
    assert "MANIFEST_INVALID" in outcomes["mirror/refused:1"]["reason"]
    badsig = outcomes["mirror/badsig:1"]
    assert badsig["outcome"] == "copied"
    assert "; cosign signatures not copied (registry: target " in badsig["reason"]
    assert "MANIFEST_INVALID" in badsig["reason"]
    assert badsig["reason"].endswith("; the next run tries again")
    target = RegistryClient(registries.ecr.host, Credentials(ECR_USER, ECR_PASSWORD), side="target")
    assert target.head_manifest("mirror/badsig", "1").digest == signed  # the tag moved
    remembered = [s3_store.get_json(key)["image"] for key in s3_store.keys("refusals/")]
    assert remembered == [f"{hub}/library/refused:1"]
    assert problems(s3_store.find_json(keys.refusal(refused, None, "mirror/refused")), RefusalRecord) == []
    marked = s3_store.get_json(keys.extras(signed, "mirror/badsig"))
    assert problems(marked, ExtrasMark) == []
    assert (marked["image"], marked["missing"]) == (f"{hub}/library/badsig:1", ["cosign signatures"])


def test_a_passing_failure_is_not_remembered(registries: Registries, s3_store: Store) -> None:
    digest = seed(registries.hub_pusher(), "library/flaky", "1", ["linux/amd64"])
    registries.front.inject(Fault("get_manifest", 503, times=10, repository="library/flaky"))
    item = WorkItem(f"{registries.front.host}/library/flaky", "1", "mirror/flaky", "1")
    outcomes = _copy_job(registries, s3_store, [(item, digest)])
    registries.front.faults.clear()
    assert outcomes["mirror/flaky:1"]["outcome"] == "failed"
    assert s3_store.keys("refusals/") == []
