"""The stand-ins are as strict as the services they play, rule by rule (plain HTTP, no hubmirror code).

Each test pins one documented behaviour of Docker Hub or ECR (the pages are cited in
devstack/registries/cdn.py, devstack/registries/hubfront.py and devstack/registries/ecrfront.py), so a later change cannot
quietly make a stand-in lenient again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from devstack.content.images import Blob, Pusher, platform_image, tar_layer
from devstack.registries.ecrfront import DOCKER_LIST, OCI_INDEX
from devstack.registries.hubfront import HubFront
from tests.functional.conftest import Registries
from tests.support import ACCEPT


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def ecr(registries: Registries) -> Iterator[Pusher]:
    yield registries.ecr_pusher()
    registries.ecr.blob_mounting = False
    registries.ecr.set_rate("PutImage", 10.0)


def _get(pusher: Pusher, repository: str, path: str, **kwargs: object) -> requests.Response:
    return pusher._request("GET", f"{pusher.base}/v2/{repository}/{path}", repository, allow_redirects=False, **kwargs)


# -- Docker Hub ------------------------------------------------------------------------------


def test_hub_blob_get_is_redirected_to_a_cdn_that_refuses_credentials(registries: Registries, front: HubFront) -> None:
    pusher = registries.hub_pusher()
    image = platform_image("linux/amd64", "cdn")
    pusher.image("library/cdn", "1", image)
    layer = image.layers[-1]
    answer = _get(pusher, "library/cdn", f"blobs/{layer.digest}")
    assert answer.status_code == 307
    location = answer.headers["Location"]
    cdn, hub = urlsplit(location), urlsplit(pusher.base)
    assert cdn.hostname != hub.hostname  # another host, not only another port
    assert requests.get(location, headers={"Authorization": "Bearer x"}, timeout=10).status_code == 400
    assert "InvalidArgument" in requests.get(location, headers={"Authorization": "Bearer x"}, timeout=10).text
    altered = location.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert requests.get(altered, timeout=10).status_code == 403
    served = requests.get(location, timeout=10)
    assert served.status_code == 200
    assert _digest(served.content) == layer.digest
    head = pusher._request("HEAD", f"{pusher.base}/v2/library/cdn/blobs/{layer.digest}", "library/cdn")
    assert head.status_code == 200  # HEAD is answered by the registry itself


def test_an_expired_download_url_is_refused(registries: Registries, front: HubFront) -> None:
    pusher = registries.hub_pusher()
    image = platform_image("linux/amd64", "expiry")
    pusher.image("library/expiry", "1", image)
    front.cdn.ttl = -5
    try:
        location = _get(pusher, "library/expiry", f"blobs/{image.config.digest}").headers["Location"]
    finally:
        front.cdn.ttl = 600
    refused = requests.get(location, timeout=10)
    assert refused.status_code == 403
    assert "Request has expired" in refused.text


def test_the_token_service_is_a_host_of_its_own(registries: Registries, front: HubFront) -> None:
    challenge = requests.get(f"http://{front.host}/v2/", timeout=10).headers["WWW-Authenticate"]
    realm = urlsplit(challenge.split('realm="', 1)[1].split('"', 1)[0])
    assert realm.netloc == front.token_host != front.host
    assert requests.get(f"http://{front.host}/token", timeout=10).status_code != 200
    assert requests.get(f"http://{front.token_host}/v2/", timeout=10).status_code == 404


def test_pulls_are_counted_per_platform_manifest_and_head_is_free(registries: Registries, front: HubFront) -> None:
    pusher = registries.hub_pusher()
    images = [platform_image("linux/amd64", "count"), platform_image("linux/arm64", "count")]
    pusher.multi("library/count", "1", images)
    front.set_budget(100, remaining=50)
    head = pusher._request("HEAD", f"{pusher.base}/v2/library/count/manifests/1", "library/count")
    assert head.headers["ratelimit-remaining"] == "50;w=21600"
    assert head.headers["ratelimit-limit"] == "100;w=21600"
    _get(pusher, "library/count", "manifests/1", headers={"Accept": ACCEPT})  # the index: free
    assert front.remaining == 50
    for image in images:  # one pull per architecture fetched
        _get(pusher, "library/count", f"manifests/{image.manifest.digest}", headers={"Accept": ACCEPT})
    assert front.remaining == 48
    front.set_budget(100, remaining=0)
    spent = _get(pusher, "library/count", f"manifests/{images[0].manifest.digest}", headers={"Accept": ACCEPT})
    assert spent.status_code == 429
    assert spent.json()["errors"][0]["code"] == "TOOMANYREQUESTS"


# -- ECR -------------------------------------------------------------------------------------


def test_ecr_redirects_layer_downloads_to_a_presigned_url(registries: Registries, ecr: Pusher) -> None:
    registries.ecr.create_repository("strict/redirect")
    image = platform_image("linux/amd64", "ecr-redirect")
    ecr.image("strict/redirect", "1", image)
    answer = _get(ecr, "strict/redirect", f"blobs/{image.layers[-1].digest}")
    assert answer.status_code == 307
    location = answer.headers["Location"]
    assert urlsplit(location).hostname != urlsplit(ecr.base).hostname
    assert requests.get(location, auth=("AWS", "x"), timeout=10).status_code == 400  # a second auth mechanism
    assert _digest(requests.get(location, timeout=10).content) == image.layers[-1].digest


def test_ecr_serves_only_layers_an_image_references(registries: Registries, ecr: Pusher) -> None:
    registries.ecr.create_repository("strict/unreferenced")
    blob = Blob("application/octet-stream", tar_layer({"x": b"not yet in any image"}))
    ecr.blob("strict/unreferenced", blob)
    answer = _get(ecr, "strict/unreferenced", f"blobs/{blob.digest}")
    assert answer.status_code == 404
    assert answer.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    head = ecr._request("HEAD", f"{ecr.base}/v2/strict/unreferenced/blobs/{blob.digest}", "strict/unreferenced")
    assert head.status_code == 200  # it is there, it is just not served
    image = platform_image("linux/amd64", "ecr-referenced")
    ecr.image("strict/unreferenced", "1", image)
    assert _get(ecr, "strict/unreferenced", f"blobs/{image.config.digest}").status_code == 307


def test_ecr_mounts_only_with_blob_mounting_and_a_referenced_blob(registries: Registries, ecr: Pusher) -> None:
    for name in ("strict/mount-from", "strict/mount-to"):
        registries.ecr.create_repository(name)
    image = platform_image("linux/amd64", "mount")
    ecr.image("strict/mount-from", "1", image)
    loose = Blob("application/octet-stream", tar_layer({"y": b"uploaded, never referenced"}))
    ecr.blob("strict/mount-from", loose)

    def mount(digest: str) -> requests.Response:
        url = f"{ecr.base}/v2/strict/mount-to/blobs/uploads/?mount={digest}&from=strict/mount-from"
        return ecr._request("POST", url, "strict/mount-to")

    refused = mount(image.config.digest)  # BLOB_MOUNTING is off: an upload session instead
    assert refused.status_code == 202
    assert "/blobs/uploads/" in refused.headers["Location"]
    registries.ecr.blob_mounting = True
    assert mount(image.config.digest).status_code == 201
    assert mount(loose.digest).status_code == 202  # not referenced by an image in the source


def _manifest_list(platform: dict[str, object], **extra: object) -> Blob:
    image = platform_image("linux/amd64", "list")
    document = {
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [{**image.manifest.descriptor(), "platform": platform}],
        **extra,
    }
    return Blob(DOCKER_LIST, json.dumps(document).encode())


def test_ecr_refuses_fields_a_manifest_schema_does_not_define(registries: Registries, ecr: Pusher) -> None:
    registries.ecr.create_repository("strict/schema")
    image = platform_image("linux/amd64", "list")
    ecr.image("strict/schema", "child", image)
    for bad in (
        _manifest_list({"os": "linux", "architecture": "amd64"}, annotations={"a": "b"}),
        _manifest_list({"os": "linux", "architecture": "amd64", "features": ["sse4"]}),
    ):
        answer = ecr._request(
            "PUT", f"{ecr.base}/v2/strict/schema/manifests/bad", "strict/schema", data=bad.data,
            headers={"Content-Type": DOCKER_LIST},
        )  # fmt: skip
        assert answer.status_code == 400
        assert answer.json()["errors"][0]["code"] == "MANIFEST_INVALID"
    good = _manifest_list({"os": "linux", "architecture": "amd64"})
    assert ecr.manifest("strict/schema", "good", good) == good.digest
    oci = json.loads(good.data) | {"mediaType": OCI_INDEX, "annotations": {"a": "b"}}
    assert ecr.manifest("strict/schema", "oci", Blob(OCI_INDEX, json.dumps(oci).encode()))


def test_ecr_needs_the_repository_and_keeps_immutable_tags(registries: Registries, ecr: Pusher) -> None:
    answer = _get(ecr, "strict/missing", "manifests/1", headers={"Accept": ACCEPT})
    assert answer.status_code == 404
    assert answer.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    upload = ecr._request("POST", f"{ecr.base}/v2/strict/missing/blobs/uploads/", "strict/missing")
    assert upload.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    registries.ecr.create_repository("strict/frozen", mutable=False)
    first, second = platform_image("linux/amd64", "frozen-1"), platform_image("linux/amd64", "frozen-2")
    ecr.image("strict/frozen", "1", first)
    assert ecr.image("strict/frozen", "1", first) == first.manifest.digest  # the same digest again: fine
    for blob in (*second.layers, second.config):
        ecr.blob("strict/frozen", blob)
    moved = ecr._request(
        "PUT", f"{ecr.base}/v2/strict/frozen/manifests/1", "strict/frozen", data=second.manifest.data,
        headers={"Content-Type": second.manifest.media_type},
    )  # fmt: skip
    assert moved.status_code == 400
    assert moved.json()["errors"][0]["code"] == "TAG_INVALID"


def test_ecr_throttles_put_image_beyond_its_rate(registries: Registries, ecr: Pusher) -> None:
    registries.ecr.create_repository("strict/throttled")
    image = platform_image("linux/amd64", "throttle")
    ecr.image("strict/throttled", "0", image)
    registries.ecr.set_rate("PutImage", 2.0)
    answers = [
        ecr._request(
            "PUT", f"{ecr.base}/v2/strict/throttled/manifests/{n}", "strict/throttled", data=image.manifest.data,
            headers={"Content-Type": image.manifest.media_type},
        ).status_code
        for n in range(1, 7)
    ]  # fmt: skip
    assert 429 in answers
    assert answers.count(201) >= 2
