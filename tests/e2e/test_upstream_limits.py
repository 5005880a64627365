"""Docker Hub's limits through the whole pipeline: a pull budget kept, 429s waited out, no blob twice."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.content.images import Pusher, platform_image
from devstack.registries.proxy import Fault
from devstack.stack import RunResult, Stack

pytestmark = pytest.mark.e2e

NAMES = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")


@dataclass
class World:
    stack: Stack
    pusher: Pusher
    hub: str

    def allowlist(self, names: tuple[str, ...]) -> str:
        return "images:\n" + "".join(
            f"  - source: {self.hub}/library/{name}\n    tags: ['1']\n    target: {name}\n" for name in names
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with Stack(Path(tmp_path_factory.mktemp("stack")), parameters={"RateLimitFloor": "0"}) as stack:
        assert stack.front is not None
        pusher = stack.hub_pusher()
        for name in NAMES:
            pusher.image(f"library/{name}", "1", platform_image("linux/amd64", name))
        yield World(stack, pusher, stack.front.host)


@pytest.fixture(scope="module")
def short_budget(world: World) -> RunResult:
    assert world.stack.front is not None
    world.stack.write_allowlist(world.allowlist(NAMES))
    world.stack.front.set_budget(100, remaining=3)
    return world.stack.run({})


@pytest.fixture(scope="module")
def fresh_budget(world: World, short_budget: RunResult) -> RunResult:
    assert world.stack.front is not None
    world.stack.front.set_budget(100)
    return world.stack.run({})


def test_a_short_budget_syncs_what_it_covers_and_defers_the_rest(short_budget: RunResult) -> None:
    assert short_budget.status == "SUCCEEDED", short_budget.cause  # deferred is not failed
    outcomes = list(short_budget.outcomes().values())
    assert sorted(outcomes) == ["copied"] * 3 + ["deferred"] * 3
    assert short_budget.upstream.get("rejected_429", 0) == 0
    assert short_budget.upstream.get("get_manifest", 0) == 3
    deferred = [i for i in short_budget.report["items"] if i["outcome"] == "deferred"]  # type: ignore[index]
    for item in deferred:
        assert "pull budget low (3 of 100 pulls left, floor 0)" in item["reason"]
        assert item["retry_after"].endswith("Z")  # when the window has surely reset
    assert short_budget.text is not None
    assert "retry:" in short_budget.text


def test_a_fresh_budget_completes_the_deferred_items(fresh_budget: RunResult, short_budget: RunResult) -> None:
    before = short_budget.outcomes()
    after = fresh_budget.outcomes()
    assert {t for t, o in after.items() if o == "copied"} == {t for t, o in before.items() if o == "deferred"}
    assert {t for t, o in after.items() if o == "unchanged"} == {t for t, o in before.items() if o == "copied"}


def test_an_unexpected_429_with_retry_after_is_waited_out(world: World, fresh_budget: RunResult) -> None:
    assert world.stack.front is not None
    world.pusher.image("library/alpha", "1", platform_image("linux/amd64", "alpha 2"))
    world.stack.front.inject(Fault("get_manifest", 429, {"Retry-After": "1"}, times=1, repository="library/alpha"))
    result = world.stack.run({"only": ["alpha"]})
    assert result.outcomes() == {"mirror/alpha:1": "copied"}
    assert ("get_manifest", "library/alpha", 429) in world.stack.front.log


def test_a_429_that_persists_fails_that_item_alone(world: World, fresh_budget: RunResult) -> None:
    assert world.stack.front is not None
    world.pusher.image("library/bravo", "1", platform_image("linux/amd64", "bravo 2"))
    world.pusher.image("library/charlie", "1", platform_image("linux/amd64", "charlie 2"))
    world.stack.front.inject(Fault("get_manifest", 429, {"Retry-After": "1"}, times=50, repository="library/bravo"))
    try:
        result = world.stack.run({"only": ["bravo", "charlie"]})
    finally:
        world.stack.front.faults.clear()
    assert result.status == "FAILED"
    assert result.outcomes() == {"mirror/bravo:1": "failed", "mirror/charlie:1": "copied"}
    reason = result.item("mirror/bravo:1")["reason"]
    assert "rate limited" in reason
    assert "429 Too Many Requests 3 times" in reason


def test_images_sharing_a_base_layer_fetch_it_once(world: World, fresh_budget: RunResult) -> None:
    assert world.stack.front is not None
    names = ("golf", "hotel", "india")
    images = {name: platform_image("linux/amd64", name) for name in names}
    for name, image in images.items():
        world.pusher.image(f"library/{name}", "1", image)
    world.stack.write_allowlist(world.allowlist(names))
    result = world.stack.run({})
    assert set(result.outcomes().values()) == {"copied"}
    unique = {b.digest: len(b.data) for image in images.values() for b in (*image.layers, image.config)}
    assert len(unique) == 1 + 2 * len(names)  # one shared busybox layer, then a layer and a config each
    # the shared base layer was mirrored by earlier runs: it is mounted, not fetched
    assert result.upstream["get_blob"] == 2 * len(names)
    assert result.upstream["blob_bytes"] == sum(
        size for digest, size in unique.items() if digest != images["golf"].layers[0].digest
    )
