"""Decisions from the target's truth, and recipe hashes that move with what shapes an image."""

from __future__ import annotations

import pytest

from hubmirror.domain.decisions import TargetState, decide, recipe_hash
from hubmirror.domain.items import WorkItem

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
UP = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
COPY = WorkItem("docker.io/library/nginx", "1.27", "mirror/nginx", "1.27")
BUILD = WorkItem("docker.io/hashicorp/vault", "1.14", "mirror/vault", "1.14", build_commands=("RUN mkdir /x",))
SUBSET = WorkItem("docker.io/library/redis", "7", "mirror/redis", "7", platforms=("linux/amd64",))


def test_verbatim_copy_is_unchanged_only_when_digests_match() -> None:
    assert decide(COPY, UP, TargetState(UP, INDEX)).action == "unchanged"
    moved = decide(COPY, UP, TargetState(OTHER, INDEX))
    assert moved.action == "copy"
    assert "upstream moved to sha256:aaaaaaaaaaaa" in moved.reason
    assert decide(COPY, UP, None).action == "copy"


def test_force_syncs_even_when_unchanged() -> None:
    decision = decide(COPY, UP, TargetState(UP, INDEX), force=True)
    assert decision.action == "copy"
    assert "forced" in decision.reason


def test_build_is_unchanged_only_when_the_recipe_annotation_matches() -> None:
    recipe = recipe_hash(BUILD, UP)
    assert decide(BUILD, UP, TargetState(OTHER, INDEX, {"io.hubmirror.recipe": recipe})).action == "unchanged"
    assert decide(BUILD, OTHER, TargetState(OTHER, INDEX, {"io.hubmirror.recipe": recipe})).action == "build"
    assert decide(BUILD, UP, TargetState(UP, INDEX)).action == "build"  # something else holds the tag


def test_platform_subset_copy_uses_the_recipe_but_accepts_a_verbatim_single_image() -> None:
    recipe = recipe_hash(SUBSET, UP)
    assert decide(SUBSET, UP, TargetState(OTHER, INDEX, {"io.hubmirror.recipe": recipe})).action == "unchanged"
    assert decide(SUBSET, UP, TargetState(UP, MANIFEST)).action == "unchanged"
    assert decide(SUBSET, UP, TargetState(UP, INDEX)).action == "copy"


@pytest.mark.parametrize(
    "changed",
    [
        WorkItem("docker.io/hashicorp/vault", "1.14", "mirror/vault", "1.14", build_commands=("RUN mkdir /y",)),
        WorkItem(
            "docker.io/hashicorp/vault", "1.14", "mirror/vault", "1.14", build_commands=("RUN mkdir /x", "ENV A=1")
        ),
        WorkItem("docker.io/hashicorp/vault", "1.14", "mirror/vault", "1.14", ("linux/amd64",), ("RUN mkdir /x",)),
        WorkItem("docker.io/hashicorp/vault2", "1.14", "mirror/vault", "1.14", build_commands=("RUN mkdir /x",)),
        WorkItem(
            "docker.io/hashicorp/vault",
            "1.14",
            "mirror/vault",
            "1.14",
            build_commands=("RUN mkdir /x",),
            build_network=True,
        ),
    ],
)
def test_recipe_changes_with_lines_platforms_source_and_network(changed: WorkItem) -> None:
    assert recipe_hash(changed, UP) != recipe_hash(BUILD, UP)


def test_recipe_ignores_whitespace_and_target_names() -> None:
    spaced = WorkItem(
        "docker.io/hashicorp/vault", "1.14", "elsewhere/vault", "latest", build_commands=("RUN  mkdir   /x",)
    )
    assert recipe_hash(spaced, UP) == recipe_hash(BUILD, UP)


def test_a_recipe_without_network_is_the_one_earlier_releases_made() -> None:
    """Adding build_network must not rebuild every built image of an existing mirror.

    The hash was recorded from release 0.2.0, before the network was part of the recipe.
    """
    item = WorkItem(
        "docker.io/hashicorp/vault",
        "1.14",
        "mirror/vault",
        "1.14",
        platforms=("linux/amd64", "linux/arm64"),
        build_commands=("RUN mkdir /etc/vault",),
    )
    assert recipe_hash(item, "sha256:" + "0" * 64) == (
        "sha256:e047256ca28d15c4bcd711b9b41c352889065f1b956bc93defbf38642d3dbf6c"
    )
