"""Execution input, selection with 'only', and batches."""

from __future__ import annotations

import pytest

from hubmirror.allowlist.expansion import expand, select
from hubmirror.allowlist.rules import parse_allowlist
from hubmirror.domain.items import InputError, RunOptions, WorkItem, batches

ALLOWLIST = parse_allowlist(
    'images:\n  - source: nginx\n    tags: ["1.27", "1.26"]\n'
    '  - source: hashicorp/vault\n    tags: ["1.14"]\n    target: vault\n'
    '  - source: ghcr.io/org/app\n    tags: ["2"]\n'
)
ITEMS = expand(ALLOWLIST, prefix="mirror").items


def test_expand_prefixes_targets_and_keeps_allowlist_order() -> None:
    assert [i.target for i in ITEMS] == [
        "mirror/nginx:1.27",
        "mirror/nginx:1.26",
        "mirror/vault:1.14",
        "mirror/org/app:2",
    ]
    assert ITEMS[2].source == "docker.io/hashicorp/vault"


@pytest.mark.parametrize(
    ("only", "targets"),
    [
        (["nginx"], ["mirror/nginx:1.27", "mirror/nginx:1.26"]),
        (["nginx:1.26"], ["mirror/nginx:1.26"]),
        (["hashicorp/vault"], ["mirror/vault:1.14"]),
        (["vault"], ["mirror/vault:1.14"]),
        (["ghcr.io/org/app", "nginx:1.27"], ["mirror/nginx:1.27", "mirror/org/app:2"]),
        ([], ["mirror/nginx:1.27", "mirror/nginx:1.26", "mirror/vault:1.14", "mirror/org/app:2"]),
    ],
)
def test_only_selects_by_source_target_or_tag(only: list[str], targets: list[str]) -> None:
    assert [i.target for i in select(ITEMS, ALLOWLIST, only)] == targets


def test_only_naming_nothing_is_an_error_not_a_silent_no_op() -> None:
    with pytest.raises(InputError, match="'ngnix'"):
        select(ITEMS, ALLOWLIST, ["ngnix"])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "JSON object"),
        ({"only": 3}, "list of image names"),
        ({"force": "yes"}, "'force' must be true or false"),
        ({"dryrun": True}, "unknown execution input key 'dryrun'"),
    ],
)
def test_bad_execution_input_is_refused(data: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        RunOptions.parse(data)


def test_options_default_to_sync_everything() -> None:
    assert RunOptions.parse({}) == RunOptions()
    assert RunOptions.parse({"Comment": "Insert your JSON here"}) == RunOptions()  # the console's placeholder


@pytest.mark.parametrize(
    ("execution_input", "words"),
    [
        (None, "must be a JSON object such as {}"),
        ([], "not a list"),
        ("x", "not a string"),
        (42, "not a number"),
        (True, "not a boolean"),
        ({"only": []}, "'only' is empty"),
        ({"only": None}, "'only' must be a list of image names"),
        ({"only": [1]}, "'only' must be a list of image names"),
        ({"only": ["x"] * 1001}, "'only' names 1001 images, more than 1000"),
        ({"force": "yes"}, "'force' must be true or false, not a string"),
        ({"Comment": 5}, "unknown execution input key 'Comment'"),
    ],
)
def test_bad_execution_inputs_are_refused_in_words(execution_input: object, words: str) -> None:
    with pytest.raises(InputError) as caught:
        RunOptions.parse(execution_input)
    assert words in str(caught.value)


def test_a_refusal_stays_short_however_large_the_input() -> None:
    hostile = {f"key-{n}-" + "x" * 200: n for n in range(20_000)}
    with pytest.raises(InputError) as caught:
        RunOptions.parse(hostile)
    message = str(caught.value)
    assert len(message) < 600
    assert message.endswith("and 19995 more; accepted: only, force, dry_run, allowlist_version")


def test_batches_cover_every_item_once() -> None:
    chunks = batches(ITEMS, 3)
    assert [len(b.items) for b in chunks] == [3, 1]
    assert [i for b in chunks for i in b.items] == ITEMS


def test_copies_and_builds_are_batched_apart_each_in_the_allowlist_s_order_and_alternate() -> None:
    def built(n: int) -> WorkItem:
        return WorkItem("docker.io/library/app", f"b{n}", "mirror/app", f"b{n}", build_commands=("VOLUME /data",))

    def copied(n: int) -> WorkItem:
        return WorkItem("docker.io/library/app", f"c{n}", "mirror/app", f"c{n}")

    mixed = [copied(0), built(0), copied(1), built(1), copied(2), built(2), copied(3), copied(4)]
    chunks = batches(mixed, 2, copy_size=3)
    assert [b.id for b in chunks] == ["00000", "00001", "00002", "00003"]
    # copies and builds alternate: neither kind waits for all of the other
    assert [[i.tag for i in b.items] for b in chunks] == [["c0", "c1", "c2"], ["b0", "b1"], ["c3", "c4"], ["b2"]]
    assert batches([copied(0), copied(1)], 1, copy_size=5)[0].items == (copied(0), copied(1))
    assert [len(b.items) for b in batches([built(0), built(1)], 1, copy_size=5)] == [1, 1]
    with pytest.raises(ValueError, match="at least 1"):
        batches(mixed, 2, copy_size=0)


def test_work_items_round_trip_through_json_dicts() -> None:
    from hubmirror.domain.items import WorkItem

    for item in ITEMS:
        assert WorkItem.from_dict(item.to_dict()) == item
    online = WorkItem(
        "docker.io/library/nginx", "1", "m/nginx", "1", build_commands=("RUN apk add x",), build_network=True
    )
    assert WorkItem.from_dict(online.to_dict()) == online
    assert WorkItem.from_dict({**online.to_dict(), "build_network": "true"}).build_network is False  # only true is true


SELECTING = parse_allowlist(
    "images:\n"
    "  - source: nginx\n"
    "    tags: ['1.27']\n"
    "    select: {include: ['1.2*'], exclude: ['*-alpine'], latest: 2}\n"
    "  - source: docker.io/library/nginx\n"
    "    target: nginx\n"
    "    select: {include: ['1.26.*']}\n"
    "  - source: redis\n"
    "    select: {semver: '>=7'}\n"
    "    max_tags: 1\n"
    "  - source: quay.io/a/b\n"
    "    pinned: {'2.0': 'sha256:" + "1" * 64 + "'}\n"
    "    select: {latest: 1}\n"
)


def test_selectors_expand_from_tag_lists_and_failures_are_per_entry() -> None:
    expansion = expand(
        SELECTING,
        prefix="mirror",
        default_platforms=("linux/amd64",),
        tag_lists={
            0: ["1.25.1", "1.26.0", "1.26.1", "1.27", "1.27.1-alpine", "latest"],
            1: ["1.26.0", "1.26.1", "1.26.2"],
            2: ["7.0.0", "7.2.4"],
            3: "RegistryUnavailableError: quay.io/a/b: cannot reach quay.io",
        },
    )
    assert [i.target for i in expansion.items] == [
        "mirror/nginx:1.27",
        "mirror/nginx:1.26.1",
        "mirror/nginx:1.26.0",
        "mirror/nginx:1.26.2",
        "mirror/a/b:2.0",
    ]
    assert expansion.items[-1].pinned == "sha256:" + "1" * 64
    assert {i.platforms for i in expansion.items} == {("linux/amd64",)}
    reasons = [f.reason for f in expansion.failures]
    assert any("'1.26.1' is already written to mirror/nginx by images[0]" in r for r in reasons)
    assert any("matched 2 tags; the cap is 1" in r for r in reasons)
    assert any("cannot list upstream tags: RegistryUnavailableError" in r for r in reasons)
