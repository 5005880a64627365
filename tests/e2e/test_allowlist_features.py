"""Selectors and pins through the whole pipeline: chosen at each run, pinned forever."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.content.images import seed
from devstack.stack import ECR_PASSWORD, ECR_USER, RunResult, Stack
from tests.support import RegistryReader

pytestmark = pytest.mark.e2e


@dataclass
class World:
    stack: Stack
    target: RegistryReader
    digests: dict[str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with Stack(Path(tmp_path_factory.mktemp("stack"))) as stack:
        assert stack.front is not None
        assert stack.ecr is not None
        pusher = stack.hub_pusher()
        digests = {
            tag: seed(pusher, "library/redis", tag, ["linux/amd64"])
            for tag in ("7.2.4", "7.4.0", "7.4.1", "8.0.0-rc.1", "latest")
        }
        digests["busybox-approved"] = seed(pusher, "library/busybox", "1.36", ["linux/amd64"])
        digests["busybox-moved"] = seed(pusher, "library/busybox", "1.36", ["linux/amd64"], marker="busybox moved")
        hub = stack.front.host
        stack.write_allowlist(
            f"""images:
  - source: {hub}/library/redis
    target: redis
    select:
      semver: ">=7.2 <8"
      latest: 2
  - source: {hub}/library/busybox
    target: busybox
    pinned:
      "1.36": {digests["busybox-approved"]}
"""
        )
        yield World(stack, RegistryReader(stack.ecr.host, ECR_USER, ECR_PASSWORD), digests)


@pytest.fixture(scope="module")
def first(world: World) -> RunResult:
    return world.stack.run({})


@pytest.fixture(scope="module")
def second(world: World, first: RunResult) -> RunResult:
    return world.stack.run({})


@pytest.fixture(scope="module")
def after_release(world: World, second: RunResult) -> RunResult:
    world.digests["7.4.2"] = seed(world.stack.hub_pusher(), "library/redis", "7.4.2", ["linux/amd64"])
    return world.stack.run({})


def test_selector_mirrors_the_latest_versions_in_range(world: World, first: RunResult) -> None:
    assert first.status == "SUCCEEDED", first.cause
    assert first.outcomes() == {
        "mirror/redis:7.4.0": "copied",
        "mirror/redis:7.4.1": "copied",
        "mirror/busybox:1.36": "copied",
    }
    for tag in ("7.4.0", "7.4.1"):
        landed = world.target.manifest("mirror/redis", tag)
        assert landed is not None
        assert landed.digest == world.digests[tag]


def test_a_pinned_tag_lands_at_the_approved_digest_not_where_the_tag_moved(world: World, first: RunResult) -> None:
    landed = world.target.manifest("mirror/busybox", "1.36")
    assert landed is not None
    assert landed.digest == world.digests["busybox-approved"] != world.digests["busybox-moved"]


def test_second_run_is_unchanged_at_one_head_per_item(second: RunResult) -> None:
    assert set(second.outcomes().values()) == {"unchanged"}
    assert second.upstream.get("head_manifest", 0) == 3
    assert second.upstream.get("get_manifest", 0) == 0
    assert second.upstream.get("tags_list", 0) == 1  # the selector's tag list, no pull


def test_a_new_release_enters_and_nothing_is_ever_deleted(world: World, after_release: RunResult) -> None:
    assert after_release.outcomes() == {
        "mirror/redis:7.4.1": "unchanged",
        "mirror/redis:7.4.2": "copied",
        "mirror/busybox:1.36": "unchanged",
    }
    assert world.target.manifest("mirror/redis", "7.4.0") is not None  # left out of the selection, still there
