"""The plan step against a real registry: selectors expanded from the paginated tag list."""

from __future__ import annotations

import pytest

from devstack.content.images import platform_image
from devstack.registries.hubfront import HubFront
from hubmirror.adapters.registry.client import RegistryClient
from hubmirror.adapters.s3 import Store
from hubmirror.allowlist.rules import AllowlistError
from hubmirror.domain.items import InputError
from hubmirror.steps.plan import NO_ALLOWLIST, StoredAllowlist, plan_run
from hubmirror.steps.runlock import take_run_lock
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
    plan_result(
        s3_store, hub, StoredAllowlist(allowlist.encode(), "v1", "s3://runs/allowlist/allowlist.yaml"), execution_input
    )
    return dict(s3_store.get_json("runs/r1/plan.json"))


def plan_result(
    s3_store: Store,
    hub: str,
    allowlist: StoredAllowlist | None,
    execution_input: object = None,
    run: str = "r1",
    *,
    batch_size: int = 50,
    copy_batch_size: int = 200,
) -> dict[str, object]:
    client = RegistryClient(hub)
    return dict(
        plan_run(
            run=run,
            allowlist=allowlist,
            execution_input=execution_input or {},
            prefix="mirror",
            batch_size=batch_size,
            copy_batch_size=copy_batch_size,
            map_concurrency=4,
            store=s3_store,
            bundle=("runner/x.zip", b"zip"),
            list_tags=lambda ref: client.tags(ref.repository, page_size=5),
        )
    )


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


def test_copies_and_builds_are_planned_in_batches_of_their_own_sizes(s3_store: Store, seeded: str) -> None:
    """Copies go several at once in a job, builds one after another: each kind is batched apart."""
    text = f"""images:
  - source: {seeded}/library/nginx
    tags: ["1.26.0", "1.27.0"]
    target: nginx
  - source: {seeded}/library/nginx
    tags: ["1.26.0", "1.27.0"]
    target: nginx-data
    build_commands: ["VOLUME /data"]
  - source: {seeded}/library/nginx
    tags: ["1.27.1"]
    target: nginx-more
"""
    stored = StoredAllowlist(text.encode(), "v1", "s3://runs/allowlist/allowlist.yaml")
    result = plan_result(s3_store, seeded, stored, batch_size=1, copy_batch_size=2)
    assert (result["items"], result["batches"]) == (5, 4)
    listed = s3_store.get_json(str(result["batches_key"]))
    assert [(b["batch"], b["items"]) for b in listed] == [("00000", 2), ("00001", 1), ("00002", 1), ("00003", 1)]
    assert {b["jobs_at_once"] for b in listed} == {2}  # the copy jobs share PutImage; a build job takes no share
    held = {
        b["batch"]: [f"{i['target_repository']}:{i['target_tag']}" for i in s3_store.get_json(b["key"])] for b in listed
    }
    assert held == {
        "00000": ["mirror/nginx:1.26.0", "mirror/nginx:1.27.0"],
        "00001": ["mirror/nginx-data:1.26.0"],
        "00002": ["mirror/nginx-more:1.27.1"],
        "00003": ["mirror/nginx-data:1.27.0"],
    }
    written = s3_store.get_json("runs/r1/plan.json")
    targets = [f"{i['target_repository']}:{i['target_tag']}" for i in written["items"]]
    assert dict(zip(targets, written["batch_of"], strict=True)) == {t: b for b, ts in held.items() for t in ts}


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


def test_a_stack_without_an_allowlist_plans_nothing_and_says_how_to_push_one(s3_store: Store, seeded: str) -> None:
    result = plan_result(s3_store, seeded, None)
    assert (result["items"], result["batches"], result["skipped"], result["allowlist_version"]) == (0, 0, None, None)
    written = s3_store.get_json("runs/r1/plan.json")
    assert written["notices"] == [NO_ALLOWLIST]
    assert written["allowlist"] is None
    assert s3_store.find_json("locks/run.json") is not None  # a run like any other: the report releases it


def _version(seeded: str, version: str) -> StoredAllowlist:
    text = f'images:\n  - source: {seeded}/library/nginx\n    tags: ["1.27"]\n'
    return StoredAllowlist(text.encode(), version, "s3://runs/allowlist/allowlist.yaml")


def test_a_version_runs_once_however_often_its_event_arrives(s3_store: Store, seeded: str) -> None:
    first = plan_result(s3_store, seeded, _version(seeded, "v7"), {"allowlist_version": "v7"}, run="e1")
    assert (first["skipped"], first["items"], first["allowlist_version"]) == (None, 1, "v7")
    assert (
        plan_result(s3_store, seeded, _version(seeded, "v7"), {"allowlist_version": "v7"}, run="e1")["skipped"] is None
    )
    s3_store.delete("locks/run.json")  # e1 reported
    again = plan_result(s3_store, seeded, _version(seeded, "v7"), {"allowlist_version": "v7"}, run="e2")
    assert again["skipped"] == "allowlist version v7 already started e1"
    assert s3_store.find_json("locks/run.json") is None  # the duplicate held the lock only to look
    assert not s3_store.exists("runs/e2/plan.json")


def test_a_new_version_finding_the_lock_held_is_skipped_not_refused(s3_store: Store, seeded: str) -> None:
    take_run_lock(s3_store, "e1")
    result = plan_result(s3_store, seeded, _version(seeded, "v8"), {"allowlist_version": "v8"}, run="e2")
    assert result["skipped"] is not None
    assert result["skipped"].startswith("another execution, e1, has been syncing since")
    assert result["skipped"].endswith("that run starts one for this version")
    assert s3_store.find_json("locks/allowlist/v8.json") is None  # not marked: the follow-up runs it
    assert s3_store.find_json("locks/run.json")["execution"] == "e1"


def test_an_entry_a_stricter_rule_refuses_is_left_out_and_the_rest_syncs(s3_store: Store, seeded: str) -> None:
    """An allowlist stored before a release made a rule stricter keeps its mirror running.

    ``ghcr.io/acme/nginx`` writing ``mirror/nginx`` beside ``nginx`` was accepted before 0.2.0;
    the plan leaves the second entry out, says so with the rule and the remedy, and plans the rest.
    """
    text = (
        f'images:\n  - source: {seeded}/library/nginx\n    tags: ["1.27"]\n    target: nginx\n'
        '  - source: ghcr.io/acme/nginx\n    tags: ["2.0"]\n    target: nginx\n'
    )
    stored = StoredAllowlist(text.encode(), "v3", "s3://runs/allowlist/allowlist.yaml")
    result = plan_result(s3_store, seeded, stored)
    assert result["items"] == 1
    written = s3_store.get_json("runs/r1/plan.json")
    assert [i["source"] for i in written["items"]] == [f"{seeded}/library/nginx"]
    (notice,) = written["notices"]
    assert notice.startswith("images[1] was left out of this run: allowlist.yaml (version v3):7: images[1].target: ")
    assert "give one of them another target:" in notice
    assert "(a rule hubmirror 0.2.0 made stricter; see the CHANGELOG)" in notice


def test_a_stored_allowlist_with_any_other_problem_is_still_refused_whole(s3_store: Store, seeded: str) -> None:
    text = (
        f'images:\n  - source: {seeded}/library/nginx\n    tags: ["1.27"]\n    build_commands: ["ENV FOO"]\n'
        "  - source: redis\n    tags: [7]\n"
    )
    with pytest.raises(AllowlistError, match="came from the number 7"):
        plan_result(s3_store, seeded, StoredAllowlist(text.encode(), "v4", "s3://runs/allowlist/allowlist.yaml"))
    assert s3_store.keys("runs/") == []
