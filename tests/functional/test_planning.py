"""The plan step against a real registry: selectors expanded from the paginated tag list."""

from __future__ import annotations

import pytest

from devstack.hubfront import HubFront
from devstack.images import platform_image
from hubmirror.adapters.registry.client import RegistryClient
from hubmirror.adapters.s3 import Store
from hubmirror.domain.items import InputError
from hubmirror.steps.plan import plan_run
from tests.functional.conftest import Registries

TAGS = [
    "1.25.0", "1.25.4", "1.26", "1.26.0", "1.26.2", "1.26.2-alpine", "1.27", "1.27.0", "1.27.1", "1.27.2",
    "1.27.2-alpine", "1.27.2-perl", "1.28.0-rc.1", "mainline", "stable", "latest",
]  # fmt: skip


@pytest.fixture(scope="module")
def seeded(registries: Registries) -> str:
    pusher = registries.hub_pusher()
    image = platform_image("linux/amd64", "tags")
    for tag in TAGS:
        pusher.image("library/nginx", tag, image)
    return registries.front.host


def plan(s3_store: Store, hub: str, allowlist: str, execution_input: object = None) -> dict[str, object]:
    client = RegistryClient(hub)
    plan_run(
        run="r1",
        allowlist_text=allowlist.encode(),
        allowlist_name="allowlist.yaml",
        execution_input=execution_input or {},
        prefix="mirror",
        batch_size=50,
        map_concurrency=4,
        store=s3_store,
        bundle=("runner/x.zip", b"zip"),
        list_tags=lambda ref: client.tags(ref.repository, page_size=5),
    )
    return dict(s3_store.get_json("runs/r1/plan.json"))


def test_selectors_expand_against_the_registry_tag_list(s3_store: Store, seeded: str, front: HubFront) -> None:
    allowlist = f"""images:
  - source: {seeded}/library/nginx
    target: nginx
    select: {{semver: ">=1.26 <1.28", exclude: ["1.26", "1.27"]}}
  - source: {seeded}/library/nginx
    target: nginx-alpine
    select: {{variant: alpine, latest: 1}}
  - source: {seeded}/library/nginx
    target: nginx-named
    select: {{include: ["mainline", "stable"]}}
"""
    result = plan(s3_store, seeded, allowlist)
    targets = [i["target_repository"] + ":" + i["tag"] for i in result["items"]]  # type: ignore[index, union-attr]
    assert targets == [
        "mirror/nginx:1.26.0", "mirror/nginx:1.26.2", "mirror/nginx:1.27.0", "mirror/nginx:1.27.1", "mirror/nginx:1.27.2",
        "mirror/nginx-alpine:1.27.2-alpine",
        "mirror/nginx-named:mainline", "mirror/nginx-named:stable",
    ]  # fmt: skip
    counts = front.snapshot()
    assert counts["tags_list"] == 3 * 4  # 16 tags in pages of 5, once per entry
    assert counts.get("head_manifest", 0) == 0
    assert counts.get("get_manifest", 0) == 0


def test_a_selector_over_its_cap_fails_alone(s3_store: Store, seeded: str, front: HubFront) -> None:
    allowlist = f"""images:
  - source: {seeded}/library/nginx
    target: all
    select: {{include: ["*"]}}
    max_tags: 10
  - source: {seeded}/library/nginx
    target: one
    tags: ["stable"]
"""
    result = plan(s3_store, seeded, allowlist)
    assert [i["target_repository"] for i in result["items"]] == ["mirror/one"]  # type: ignore[index, union-attr]
    (failure,) = result["failures"]  # type: ignore[misc]
    assert failure["target"] == "mirror/all:(select)"
    assert "matched 16 tags; the cap is 10" in failure["reason"]


def test_a_repository_that_cannot_be_listed_fails_alone(s3_store: Store, seeded: str, front: HubFront) -> None:
    allowlist = f"""images:
  - source: {seeded}/library/ghost
    select: {{latest: 1}}
  - source: {seeded}/library/nginx
    tags: ["stable"]
"""
    result = plan(s3_store, seeded, allowlist)
    (failure,) = result["failures"]  # type: ignore[misc]
    assert "cannot list upstream tags" in failure["reason"]
    assert len(result["items"]) == 1  # type: ignore[arg-type]


def test_only_naming_no_entry_is_refused_before_any_request(s3_store: Store, seeded: str, front: HubFront) -> None:
    allowlist = f"images:\n  - source: {seeded}/library/nginx\n    select: {{latest: 1}}\n"
    with pytest.raises(InputError, match="'redis'"):
        plan(s3_store, seeded, allowlist, {"only": ["redis"]})
    assert front.snapshot().get("tags_list", 0) == 0
    assert s3_store.keys("runs/") == []
