"""Naming platforms: an index of just those platforms, byte-identical manifests, unchanged next time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.content.images import platform_image
from devstack.stack import ECR_PASSWORD, ECR_USER, RunResult, Stack
from tests.support import RegistryReader, platforms_of

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunResult, RunResult, RegistryReader, dict[str, str]]]:
    with Stack(Path(tmp_path_factory.mktemp("platforms"))) as stack:
        assert stack.front is not None
        assert stack.ecr is not None
        pusher = stack.hub_pusher()
        images = [platform_image("linux/amd64", "multi"), platform_image("linux/arm64", "multi")]
        digests = {
            "multi": pusher.multi("library/multi", "1", images),
            "amd64-manifest": images[0].manifest.digest,
            "arm64-manifest": images[1].manifest.digest,
            "single": pusher.image("library/single", "1", platform_image("linux/amd64", "single")),
        }
        hub = stack.front.host
        stack.write_allowlist(
            f"images:\n"
            f"  - source: {hub}/library/multi\n    tags: ['1']\n    target: multi-arm\n    platforms: [linux/arm64]\n"
            f"  - source: {hub}/library/single\n    tags: ['1']\n    target: single-arm\n    platforms: [linux/arm64]\n"
            f"  - source: {hub}/library/single\n    tags: ['1']\n    target: single-amd\n    platforms: [linux/amd64]\n"
        )
        first = stack.run({})
        second = stack.run({})
        yield first, second, RegistryReader(stack.ecr.host, ECR_USER, ECR_PASSWORD), digests


def test_a_platform_subset_is_an_annotated_index_of_verbatim_manifests(
    runs: tuple[RunResult, RunResult, RegistryReader, dict[str, str]],
) -> None:
    first, _, target, digests = runs
    assert first.outcomes()["mirror/multi-arm:1"] == "copied"
    landed = target.manifest("mirror/multi-arm", "1")
    assert landed is not None
    assert landed.digest != digests["multi"]
    assert platforms_of(landed.document) == ["linux/arm64"]
    assert landed.document["manifests"][0]["digest"] == digests["arm64-manifest"]  # byte for byte
    assert landed.document["annotations"]["org.opencontainers.image.base.digest"] == digests["multi"]
    assert landed.document["annotations"]["io.hubmirror.recipe"].startswith("sha256:")
    assert target.manifest("mirror/multi-arm", digests["amd64-manifest"]) is None


def test_a_single_platform_image_is_copied_verbatim_only_for_its_platform(
    runs: tuple[RunResult, RunResult, RegistryReader, dict[str, str]],
) -> None:
    first, _, target, digests = runs
    assert first.outcomes()["mirror/single-amd:1"] == "copied"
    landed = target.manifest("mirror/single-amd", "1")
    assert landed is not None
    assert landed.digest == digests["single"]
    assert first.outcomes()["mirror/single-arm:1"] == "failed"
    assert (
        "is a single linux/amd64 image; the allowlist asks for linux/arm64"
        in first.item("mirror/single-arm:1")["reason"]
    )
    assert target.manifest("mirror/single-arm", "1") is None  # nothing was tagged


def test_the_next_run_finds_them_unchanged(runs: tuple[RunResult, RunResult, RegistryReader, dict[str, str]]) -> None:
    _, second, _, _ = runs
    assert second.outcomes()["mirror/multi-arm:1"] == "unchanged"
    assert second.outcomes()["mirror/single-amd:1"] == "unchanged"
    assert second.upstream.get("get_manifest", 0) == 1  # only the failing item tries again
