"""OCI 1.1 referrers travel with the image: found by the referrers API or its tag schema,
copied by digest byte for byte, and rewritten without ``subject`` only where the target refuses one.

The copy job runs against the hub (with or without the referrers API) and the ECR front,
which has the API and can refuse a manifest with a ``subject`` as ECR has
(aws/containers-roadmap#2783).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devstack.content.cosign import SIGSTORE_BUNDLE, push_referrer
from devstack.content.images import seed
from devstack.registries.proxy import Fault
from devstack.registries.referrers import Referrers
from hubmirror.adapters.registry.client import RegistryClient
from hubmirror.adapters.s3 import Store
from hubmirror.domain import keys
from hubmirror.domain.items import WorkItem
from hubmirror.domain.ratelimit import PullBudget
from hubmirror.domain.registry.model import Credentials
from hubmirror.runner.job import run_job
from hubmirror.steps.check import EXTRAS_AGAIN, check_item, job_item
from tests.functional.conftest import Registries
from tests.functional.test_runner import FixedEcr, _copy_job

BUNDLE = b'{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{}}'


@pytest.fixture
def hub_api(registries: Registries) -> Iterator[Referrers]:
    registries.front.referrers = Referrers()
    try:
        yield registries.front.referrers
    finally:
        registries.front.referrers = None
        registries.ecr.refuse_subject = False


def target(registries: Registries) -> RegistryClient:
    from devstack.stack import ECR_PASSWORD, ECR_USER

    return RegistryClient(registries.ecr.host, Credentials(ECR_USER, ECR_PASSWORD), side="target")


def signed_image(registries: Registries, repository: str, *, tag_schema: bool = False) -> tuple[str, str]:
    pusher = registries.hub_pusher()
    digest = seed(pusher, repository, "1", ["linux/amd64"])
    head = RegistryClient(registries.front.host, Credentials(*registries.front.admin)).head_manifest(repository, "1")
    subject = {"mediaType": head.media_type, "digest": digest, "size": head.size}
    return digest, push_referrer(pusher, repository, subject, BUNDLE, tag_schema=tag_schema)


def test_a_referrer_found_by_the_referrers_api_arrives_byte_for_byte(
    registries: Registries, s3_store: Store, hub_api: Referrers
) -> None:
    digest, referrer = signed_image(registries, "library/bundled")
    before = registries.front.snapshot()
    outcomes = _copy_job(
        registries,
        s3_store,
        [(WorkItem(f"{registries.front.host}/library/bundled", "1", "mirror/bundled", "1"), digest)],
    )
    assert outcomes["mirror/bundled:1"]["reason"].endswith("; OCI referrers: 1 of 1 copied")
    listed = target(registries).referrers("mirror/bundled", digest)
    assert [(d["digest"], d.get("artifactType")) for d in listed or []] == [(referrer, SIGSTORE_BUNDLE)]
    assert target(registries).get_manifest("mirror/bundled", referrer).digest == referrer
    after = registries.front.snapshot()
    assert after.get("referrers", 0) - before.get("referrers", 0) == 1  # one request finds them


def test_a_registry_without_the_api_is_read_through_the_referrers_tag_schema(
    registries: Registries, s3_store: Store
) -> None:
    digest, referrer = signed_image(registries, "library/tagged", tag_schema=True)
    plain = seed(registries.hub_pusher(), "library/plain", "1", ["linux/amd64"])
    before = registries.front.snapshot()
    hub = registries.front.host
    outcomes = _copy_job(
        registries,
        s3_store,
        [
            (WorkItem(f"{hub}/library/tagged", "1", "mirror/tagged", "1"), digest),
            (WorkItem(f"{hub}/library/plain", "1", "mirror/plain", "1"), plain),
        ],
    )
    assert outcomes["mirror/tagged:1"]["reason"].endswith("; OCI referrers: 1 of 1 copied")
    assert "referrers" not in outcomes["mirror/plain:1"]["reason"]
    listed = target(registries).referrers("mirror/tagged", digest)
    assert [d["digest"] for d in listed or []] == [referrer]
    after = registries.front.snapshot()
    # the API is asked until it says it has none (404; items run side by side, so up to once each),
    # and each image's referrers tag costs a HEAD; only the tagged one's index is fetched
    assert 1 <= after.get("referrers", 0) - before.get("referrers", 0) <= 2


def test_a_target_that_refuses_a_subject_gets_the_referrer_without_it_under_the_tag_schema(
    registries: Registries, s3_store: Store, hub_api: Referrers
) -> None:
    digest, referrer = signed_image(registries, "library/refused")
    registries.ecr.refuse_subject = True
    outcomes = _copy_job(
        registries,
        s3_store,
        [(WorkItem(f"{registries.front.host}/library/refused", "1", "mirror/refused", "1"), digest)],
    )
    tag = digest.replace(":", "-")
    assert outcomes["mirror/refused:1"]["outcome"] == "copied"
    assert outcomes["mirror/refused:1"]["reason"].endswith(
        f"; OCI referrers: 0 of 1 copied; 1 refused by the target (405 to a manifest with a subject), "
        f"written without it and listed under the referrers tag {tag}"
    )
    index = target(registries).get_manifest("mirror/refused", tag).document()
    (entry,) = index["manifests"]
    assert entry["artifactType"] == SIGSTORE_BUNDLE
    written = target(registries).get_manifest("mirror/refused", entry["digest"]).document()
    original = RegistryClient(registries.front.host, Credentials(*registries.front.admin)).get_manifest(
        "library/refused", referrer
    )
    assert written == {k: v for k, v in original.document().items() if k != "subject"}
    assert target(registries).get_blob("mirror/refused", written["layers"][0]["digest"]) == BUNDLE


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [(500, b"", "server error 500"), (200, b"not json", "are not JSON")],
    ids=["500", "not-json"],
)
def test_a_broken_referrers_answer_never_costs_the_image_and_the_next_run_copies_them_alone(
    registries: Registries, s3_store: Store, hub_api: Referrers, status: int, body: bytes, said: str
) -> None:
    repository = f"library/broken-referrers-{status}"
    digest, referrer = signed_image(registries, repository)
    registries.front.inject(Fault("referrers", status, body=body, times=5, repository=repository))
    item = WorkItem(f"{registries.front.host}/{repository}", "1", f"mirror/broken-referrers-{status}", "1")
    first = _copy_job(registries, s3_store, [(item, digest)])[f"{item.target}"]
    registries.front.faults.clear()
    assert first["outcome"] == "copied"
    assert "; OCI referrers not copied (" in first["reason"]
    assert said in first["reason"]
    assert target(registries).head_manifest(item.target_repository, "1").digest == digest  # the tag moved
    assert s3_store.find_json(keys.extras(digest, item.target_repository)) is not None

    # the next run: the image is unchanged, but marked; the check sends it back for what is missing
    missing = set(s3_store.keys("extras/"))
    before = registries.front.snapshot()
    check = check_item(
        item,
        upstream=lambda _: RegistryClient(registries.front.host),
        target=target(registries),
        budget=PullBudget(0),
        force=False,
        dry_run=False,
        missing_extras=missing,
    )
    assert (check.outcome, check.extras_only) == (None, True)
    second = _run_entries(registries, s3_store, [job_item(check)])[f"{item.target}"]
    assert second["outcome"] == "unchanged"
    assert second["reason"].startswith(EXTRAS_AGAIN)
    assert second["reason"].endswith("OCI referrers: 1 of 1 copied")
    listed = target(registries).referrers(item.target_repository, digest)
    assert [d["digest"] for d in listed or []] == [referrer]
    assert s3_store.find_json(keys.extras(digest, item.target_repository)) is None  # cleared
    after = registries.front.snapshot()
    assert after.get("get_manifest", 0) - before.get("get_manifest", 0) == 1  # the referrer; not the image again


def _run_entries(registries: Registries, s3_store: Store, entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    job = {
        "run": "r2",
        "batch": "00001",
        "kind": "copy",
        "target_registry": registries.ecr.host,
        "outcomes_key": "runs/r2/outcomes/00001-copy.json",
        "items": entries,
    }
    s3_store.put_json("runs/r2/jobs/00001-copy.json", job)
    run_job("s3://runs/runs/r2/jobs/00001-copy.json", store_factory=lambda _: s3_store, ecr=FixedEcr(registries.ecr))
    return {o["target"]: o for o in s3_store.get_json("runs/r2/outcomes/00001-copy.json")}
