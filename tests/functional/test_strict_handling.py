"""hubmirror through the strict stand-ins: what Docker Hub and ECR refuse, the copy job gets right.

Each test runs the real job script (``run_job``) or the real transfer against the local hub
and the ECR front, with moto for S3 and ECR's control plane.
"""

from __future__ import annotations

import ast
import json
import re
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from devstack.content.images import Blob, PlatformImage, index_of, platform_image
from devstack.registries.ecrfront import DOCKER_LIST
from devstack.registries.hubfront import HubFront
from devstack.stack import ECR_PASSWORD, ECR_USER
from hubmirror.adapters.ecr import Ecr
from hubmirror.adapters.registry.client import RegistryClient
from hubmirror.adapters.s3 import Store
from hubmirror.copying.blobindex import S3BlobIndex
from hubmirror.copying.transfer import Transfer
from hubmirror.domain import keys
from hubmirror.domain.advice import Cause, remedy
from hubmirror.domain.items import WorkItem
from hubmirror.domain.oci import OCI_INDEX, OCI_MANIFEST
from hubmirror.domain.ratelimit import PullBudget
from hubmirror.domain.registry.errors import RegistryError
from hubmirror.domain.registry.model import Credentials
from hubmirror.runner import job as runner
from hubmirror.runner.job import run_job
from hubmirror.steps.check import check_item
from tests.functional.conftest import Registries
from tests.support import RegistryReader, platforms_of


def _job(
    registries: Registries,
    store: Store,
    entries: Sequence[tuple[WorkItem, str, str]],
    *,
    floor: int = 0,
    batch: str = "00000",
    jobs_at_once: int = 1,
    environ: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run one copy job over ``(item, upstream digest, media type)``; the outcomes by target."""
    job = {
        "run": "r",
        "batch": batch,
        "kind": "copy",
        "target_registry": registries.ecr.host,
        "ratelimit_floor": floor,
        "jobs_at_once": jobs_at_once,
        "outcomes_key": f"runs/r/outcomes/{batch}-copy.json",
        "items": [
            {**item.to_dict(), "upstream_digest": digest, "upstream_media_type": media_type, "recipe": "sha256:0"}
            for item, digest, media_type in entries
        ],
    }
    store.put_json(f"runs/r/jobs/{batch}-copy.json", job)
    ecr = Ecr(client=boto3.client("ecr", region_name="us-east-1"))
    run_job(
        f"s3://runs/runs/r/jobs/{batch}-copy.json", store_factory=lambda bucket: store, ecr=ecr, environ=environ or {}
    )
    return {o["target"]: o for o in store.get_json(f"runs/r/outcomes/{batch}-copy.json")}


@pytest.fixture
def reader(registries: Registries) -> RegistryReader:
    return RegistryReader(registries.ecr.host, ECR_USER, ECR_PASSWORD)


def _docker_list(images: Sequence[PlatformImage], *, features: bool = False) -> Blob:
    manifests = []
    for image in images:
        os_name, arch = image.platform.split("/")[:2]
        platform: dict[str, Any] = {"os": os_name, "architecture": arch}
        if features:
            platform["features"] = ["sse4"]
        manifests.append(image.manifest.descriptor(platform=platform))
    document = {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": manifests}
    return Blob(DOCKER_LIST, json.dumps(document).encode())


def _push_list(registries: Registries, repository: str, images: Sequence[PlatformImage], list_blob: Blob) -> str:
    pusher = registries.hub_pusher()
    for image in images:
        for blob in (*image.layers, image.config):
            pusher.blob(repository, blob)
        pusher.manifest(repository, image.manifest.digest, image.manifest)
    return pusher.manifest(repository, "1", list_blob)


def test_redirects_are_followed_a_bounded_number_of_times() -> None:
    class Loop(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(307)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Loop)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = RegistryClient(f"127.0.0.1:{server.server_address[1]}")
        with pytest.raises(RegistryError, match="more than 5 redirects"):
            client.get_blob("library/x", "sha256:" + "0" * 64)
    finally:
        server.shutdown()
        server.server_close()


def test_a_refused_mount_copies_within_the_target_at_once(
    registries: Registries, front: HubFront, s3_store: Store
) -> None:
    image = platform_image("linux/amd64", "relay-once")
    digest = registries.hub_pusher().image("library/relay-once", "1", image)
    for name in ("t5/first", "t5/second"):
        registries.ecr.create_repository(name)
    target = RegistryClient(registries.ecr.host, Credentials(ECR_USER, ECR_PASSWORD))
    source = RegistryClient(front.host)
    Transfer(target, S3BlobIndex(s3_store)).copy(source, "library/relay-once", digest, "t5/first", "1")
    front.reset_counts()

    def never(seconds: float) -> None:
        raise AssertionError(f"waited {seconds}s on a claim for a blob the target already serves")

    second = Transfer(target, S3BlobIndex(s3_store), sleep=never)  # another job: its own process, same index
    assert second.copy(source, "library/relay-once", digest, "t5/second", "1") == digest
    assert second.stats.relayed == len(image.layers) + 1  # through the session each refused mount opened
    assert front.snapshot().get("get_blob", 0) == 0  # nothing fetched from upstream again
    assert registries.ecr.counts["mount_refused"] >= len(image.layers) + 1


def test_a_platform_subset_of_a_docker_manifest_list_is_written_as_an_oci_index(
    registries: Registries, front: HubFront, s3_store: Store, reader: RegistryReader
) -> None:
    images = [platform_image("linux/amd64", "dlist"), platform_image("linux/arm64", "dlist")]
    digest = _push_list(registries, "library/dlist", images, _docker_list(images))
    item = WorkItem(f"{front.host}/library/dlist", "1", "mirror/dlist", "1", platforms=("linux/arm64",))
    outcomes = _job(registries, s3_store, [(item, digest, DOCKER_LIST)])
    assert outcomes["mirror/dlist:1"]["outcome"] == "copied", outcomes
    landed = reader.manifest("mirror/dlist", "1")
    assert landed is not None
    assert landed.media_type == OCI_INDEX  # a Docker list has no annotations: ECR refuses them there
    assert platforms_of(landed.document) == ["linux/arm64"]
    assert landed.document["manifests"][0]["digest"] == images[1].manifest.digest  # byte for byte


def test_a_verbatim_copy_the_target_would_refuse_fails_in_its_words_before_a_byte_moves(
    registries: Registries, front: HubFront, s3_store: Store, reader: RegistryReader
) -> None:
    """ECR refuses a Docker manifest list with ``platform.features``; copied verbatim, its images
    would be written first and stay, untagged. The copy sees it in the list and writes nothing."""
    images = [platform_image("linux/amd64", "features")]
    digest = _push_list(registries, "library/features", images, _docker_list(images, features=True))
    item = WorkItem(f"{front.host}/library/features", "1", "mirror/features", "1")
    front.reset_counts()
    outcomes = _job(registries, s3_store, [(item, digest, DOCKER_LIST)])
    assert outcomes["mirror/features:1"]["outcome"] == "failed"
    assert "MANIFEST_INVALID" in outcomes["mirror/features:1"]["reason"]
    assert "platform has fields the schema does not define: features" in outcomes["mirror/features:1"]["reason"]
    assert reader.manifest("mirror/features", "1") is None
    assert reader.manifest("mirror/features", images[0].manifest.digest) is None  # no image left behind
    assert front.snapshot().get("get_blob", 0) == 0
    remembered = s3_store.get_json(keys.refusal(digest, "sha256:0", "mirror/features"))  # next run: a HEAD, no pull
    assert remembered["reason"] == outcomes["mirror/features:1"]["reason"]
    assert remedy(remembered["reason"]).cause == Cause.ALLOWLIST


def test_an_immutable_tag_that_points_elsewhere_fails_its_item_and_keeps_its_image(
    registries: Registries, front: HubFront, s3_store: Store, reader: RegistryReader
) -> None:
    boto3.client("ecr", region_name="us-east-1").create_repository(
        repositoryName="mirror/frozen", imageTagMutability="IMMUTABLE"
    )
    kept = registries.ecr_pusher().image("mirror/frozen", "1", platform_image("linux/amd64", "frozen-old"))
    digest = registries.hub_pusher().image("library/frozen", "1", platform_image("linux/amd64", "frozen-new"))
    item = WorkItem(f"{front.host}/library/frozen", "1", "mirror/frozen", "1")
    outcomes = _job(registries, s3_store, [(item, digest, "application/vnd.oci.image.manifest.v1+json")])
    assert outcomes["mirror/frozen:1"]["outcome"] == "failed"
    assert "TAG_INVALID" in outcomes["mirror/frozen:1"]["reason"]
    fetched = reader.manifest("mirror/frozen", "1")
    assert fetched is not None
    assert fetched.digest == kept


@pytest.fixture
def put_image_rate(registries: Registries, request: pytest.FixtureRequest) -> Iterator[None]:
    """The ECR stand-in's PutImage rate for one test (``indirect`` parameter), then ECR's default."""
    registries.ecr.set_rate("PutImage", request.param)
    yield
    registries.ecr.set_rate("PutImage", 10.0)


@pytest.mark.parametrize("put_image_rate", [1.0], indirect=True)
def test_a_throttled_target_is_waited_out_and_every_item_lands(
    registries: Registries, front: HubFront, s3_store: Store, reader: RegistryReader, put_image_rate: None
) -> None:
    pusher = registries.hub_pusher()
    entries = []
    for name in ("th1", "th2", "th3"):
        images = [platform_image("linux/amd64", name), platform_image("linux/arm64", name)]
        digest = pusher.multi(f"library/{name}", "1", images)
        entries.append((WorkItem(f"{front.host}/library/{name}", "1", f"mirror/{name}", "1"), digest, OCI_INDEX))
    throttled_before = registries.ecr.counts["throttled_PutImage"]
    outcomes = _job(registries, s3_store, entries)  # 9 PutImage at once against 1 a second
    assert {o["outcome"] for o in outcomes.values()} == {"copied"}, outcomes
    assert registries.ecr.counts["throttled_PutImage"] > throttled_before
    for item, digest, _ in entries:
        fetched = reader.manifest(item.target_repository, "1")
        assert fetched is not None
        assert fetched.digest == digest


@pytest.mark.parametrize("put_image_rate", [2.0], indirect=True)
def test_two_jobs_at_once_share_the_put_image_rate_without_a_storm_of_429s(
    registries: Registries, front: HubFront, s3_store: Store, put_image_rate: None
) -> None:
    """ECR throttles PutImage per account (10 a second unless raised; 2 here): jobs running at once
    share it. Each paces its manifest PUTs at its share and adapts, rather than sending them at
    once and backing off from a burst of 429s."""
    pusher = registries.hub_pusher()
    batches = []
    for batch in range(2):
        entries = []
        for n in range(6):
            name = f"share{batch}{n:02}"
            digest = pusher.image(f"library/{name}", "1", platform_image("linux/amd64", name))
            entries.append((WorkItem(f"{front.host}/library/{name}", "1", f"mirror/{name}", "1"), digest, OCI_MANIFEST))
        batches.append(entries)
    throttled_before = registries.ecr.counts["throttled_PutImage"]
    puts_before = registries.ecr.counts["PutImage"]
    rate = {"HUBMIRROR_PUT_IMAGE_RATE": "2"}  # the account's quota, as the template passes it
    with ThreadPoolExecutor(max_workers=2) as pool:
        jobs = [
            pool.submit(_job, registries, s3_store, entries, batch=f"0000{n}", jobs_at_once=2, environ=rate)
            for n, entries in enumerate(batches)
        ]
        outcomes = {target: o for job in jobs for target, o in job.result().items()}
    assert {o["outcome"] for o in outcomes.values()} == {"copied"}, outcomes
    assert registries.ecr.counts["PutImage"] - puts_before == 12
    assert registries.ecr.counts["throttled_PutImage"] - throttled_before <= 5


@pytest.mark.parametrize("put_image_rate", [4.0], indirect=True)
@pytest.mark.parametrize(("others", "share"), [(0, 4.0), (1, 2.0)])
def test_a_job_sets_its_share_of_the_put_image_rate_by_the_jobs_still_running(
    registries: Registries,
    front: HubFront,
    s3_store: Store,
    put_image_rate: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    others: int,
    share: float,
) -> None:
    """The plan said four jobs start at once (1 a second each of the account's 4); the others
    have ended, or one is still running (its mark in the bucket): the job counts them and
    takes up the rate they leave, and its own mark is gone once it ends."""
    monkeypatch.setattr(runner, "SHARE_POLL_SECONDS", 0.2)
    pusher = registries.hub_pusher()
    entries = []
    for n in range(6):
        name = f"alone{others}{n:02}"
        digest = pusher.image(f"library/{name}", "1", platform_image("linux/amd64", name))
        entries.append((WorkItem(f"{front.host}/library/{name}", "1", f"mirror/{name}", "1"), digest, OCI_MANIFEST))
    still_running = [keys.running("r", f"0999{n}", "copy") for n in range(others)]
    for mark in still_running:
        s3_store.put_json(mark, {"started": 0})
    outcomes = _job(registries, s3_store, entries, jobs_at_once=4, environ={"HUBMIRROR_PUT_IMAGE_RATE": "4"})
    assert {o["outcome"] for o in outcomes.values()} == {"copied"}, outcomes
    pace = re.search(r"PutImage pace (\{.*\})", capsys.readouterr().out)
    assert pace is not None
    assert ast.literal_eval(pace.group(1))["share_per_s"] == share
    assert s3_store.keys(keys.folder("r", "running")) == still_running


def test_an_index_whose_platforms_would_cross_the_floor_is_deferred_before_any_is_fetched(
    registries: Registries, front: HubFront, s3_store: Store
) -> None:
    pusher = registries.hub_pusher()
    base = platform_image("linux/amd64", "wide")
    for blob in base.layers:
        pusher.blob("library/wide", blob)
    manifests = []
    for n in range(500):  # 500 platform manifests sharing one layer, each with a config of its own
        config = Blob(base.config.media_type, json.dumps({"architecture": f"arch{n}", "os": "linux"}).encode())
        pusher.blob("library/wide", config)
        document = {**json.loads(base.manifest.data), "config": config.descriptor()}
        manifest = Blob(base.manifest.media_type, json.dumps(document).encode())
        pusher.manifest("library/wide", manifest.digest, manifest)
        manifests.append(manifest.descriptor(platform={"os": "linux", "architecture": f"arch{n}"}))
    index = Blob(OCI_INDEX, json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode())
    digest = pusher.manifest("library/wide", "1", index)
    assert index_of([base]).digest != digest
    front.set_budget(100, remaining=100)
    front.reset_counts()
    item = WorkItem(f"{front.host}/library/wide", "1", "mirror/wide", "1")
    outcomes = _job(registries, s3_store, [(item, digest, OCI_INDEX)], floor=10)
    outcome = outcomes["mirror/wide:1"]
    assert outcome["outcome"] == "deferred", outcome
    assert "500 needed, floor 10" in outcome["reason"]
    assert outcome["retry_after"].endswith("Z")
    assert front.remaining == 100  # the index is free; not one of its platforms was fetched
    assert front.snapshot().get("get_manifest", 0) == 1


def test_a_schema1_image_is_refused_at_the_check_for_one_head_and_no_pull(
    registries: Registries, front: HubFront
) -> None:
    """Docker Hub still serves old images as signed schema 1, signing them anew on every GET, so
    their bytes never hash to their digest; hubmirror copies schema 2 and OCI only. The check
    tells it from the HEAD's media type and says what it is and what to do, before any pull."""
    digest = front.keep_schema1("library/ancient", "0.1")
    reader = RegistryClient(front.host)
    assert reader.head_manifest("library/ancient", "0.1").digest == digest
    front.reset_counts()
    front.set_budget(100, remaining=100)
    item = WorkItem(f"{front.host}/library/ancient", "0.1", "mirror/ancient", "0.1")
    target = RegistryClient(registries.ecr.host, Credentials(ECR_USER, ECR_PASSWORD), side="target")
    result = check_item(
        item, upstream=lambda _: reader, target=target, budget=PullBudget(0), force=False, dry_run=False
    )
    assert result.outcome is not None
    assert result.outcome.outcome == "failed"
    assert result.outcome.reason.startswith(f"upstream {front.host}/library/ancient:0.1 is a Docker schema 1 image")
    assert result.outcome.upstream_digest == digest
    assert remedy(result.outcome.reason).cause == Cause.ALLOWLIST
    assert front.snapshot() == {"head_manifest": 1, "blob_bytes": 0}  # one HEAD, no pull
    assert front.remaining == 100
