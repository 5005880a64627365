"""The check of one item and of a batch, against in-memory registries (pure logic)."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import replace

from hubmirror.domain.items import WorkItem
from hubmirror.domain.ratelimit import PullBudget, RateLimit
from hubmirror.domain.registry.model import MANIFEST_MAX_BYTES, ManifestHead
from hubmirror.domain.sigstore import TrustRoot
from hubmirror.steps.check import NOT_CHECKED_IN_TIME, ItemCheck, check_batch, check_item
from tests.fakes import FakeRegistry, MemoryStore

DIGEST = "sha256:" + "a" * 64
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def item(tag: str) -> WorkItem:
    return WorkItem("docker.io/library/app", tag, "mirror/app", tag)


def test_a_manifest_over_4_mib_fails_at_the_check_without_a_pull() -> None:
    upstream = FakeRegistry({"1": ManifestHead(DIGEST, OCI_MANIFEST, MANIFEST_MAX_BYTES + 1)})
    target = FakeRegistry({})
    result = check_item(
        item("1"), upstream=lambda _: upstream, target=target, budget=PullBudget(0), force=False, dry_run=False
    )
    assert result.outcome is not None
    assert result.outcome.outcome == "failed"
    assert "more than the 4 MiB a registry accepts" in result.outcome.reason
    assert result.decision is None  # decided before the target was even asked


def test_a_persistent_429_defers_the_item_with_the_time_the_registry_gave() -> None:
    upstream = FakeRegistry({})
    upstream.limited.add("1")
    result = check_item(
        item("1"),
        upstream=lambda _: upstream,
        target=FakeRegistry({}),
        budget=PullBudget(0),
        force=False,
        dry_run=False,
    )
    assert result.outcome is not None
    assert result.outcome.outcome == "deferred"
    assert result.outcome.retry_after is not None
    assert result.outcome.reason.endswith("deferred to a later run")


def test_items_unchecked_at_the_deadline_end_deferred_and_the_rest_are_kept() -> None:
    head = ManifestHead(DIGEST, OCI_MANIFEST, 100)
    upstream = FakeRegistry({"1": head, "2": head}, slow=frozenset({"2"}))
    target = FakeRegistry({"1": head})
    store = MemoryStore({})
    started = time.monotonic()
    result = check_batch(
        run="r",
        batch="00000",
        items=[item("1"), item("2")],
        store=store,
        upstream=lambda _: upstream,
        target=target,
        target_registry="target.example",
        floor=0,
        concurrency=2,
        force=False,
        dry_run=False,
        deadline=started + 0.5,
    )
    upstream.release.set()
    assert time.monotonic() - started < 5
    outcomes = {o["target"]: o for o in store.objects["runs/r/outcomes/00000-check.json"]}
    assert outcomes["mirror/app:1"]["outcome"] == "unchanged"
    assert outcomes["mirror/app:2"]["outcome"] == "deferred"
    assert outcomes["mirror/app:2"]["reason"] == NOT_CHECKED_IN_TIME
    assert result.counts == {"unchanged": 1, "deferred": 1}


OTHER = "sha256:" + "b" * 64


def check(one: WorkItem, upstream: FakeRegistry, target: FakeRegistry, **options: object) -> ItemCheck:
    settings: dict[str, object] = {"budget": PullBudget(0), "force": False, "dry_run": False, **options}
    return check_item(one, upstream=lambda _: upstream, target=target, **settings)  # type: ignore[arg-type]


def test_a_pinned_digest_gone_upstream_fails_naming_the_digest() -> None:
    pinned = WorkItem("docker.io/library/app", "1", "mirror/app", "1", pinned=DIGEST)
    result = check(pinned, FakeRegistry({}), FakeRegistry({}))
    assert result.outcome is not None
    assert result.outcome.outcome == "failed"
    assert result.outcome.reason.startswith(f"pinned digest {DIGEST} is gone upstream: ")


def test_a_tag_gone_upstream_fails_as_not_found() -> None:
    result = check(item("1"), FakeRegistry({}), FakeRegistry({}))
    assert result.outcome is not None
    assert result.outcome.outcome == "failed"
    assert result.outcome.reason.startswith("not found upstream: ")


def test_a_target_that_cannot_answer_fails_the_item_and_keeps_the_upstream_digest() -> None:
    target = FakeRegistry({})
    target.broken.add("1")
    result = check(item("1"), FakeRegistry({"1": ManifestHead(DIGEST, OCI_MANIFEST, 100)}), target)
    assert result.outcome is not None
    assert result.outcome.outcome == "failed"
    assert result.outcome.reason == "registry: target fake.example/x: server error 500"
    assert result.outcome.upstream_digest == DIGEST


def test_a_dry_run_says_what_it_would_do_and_spends_no_pull() -> None:
    upstream = FakeRegistry({"1": ManifestHead(DIGEST, OCI_MANIFEST, 100)})
    target = FakeRegistry({"1": ManifestHead(OTHER, OCI_MANIFEST, 100)})
    result = check(item("1"), upstream, target, dry_run=True)
    assert result.outcome is not None
    assert result.outcome.outcome == "would_copy"
    assert result.outcome.reason.startswith("dry run: upstream moved to ")
    assert upstream.requests == [("HEAD", "1")]  # a HEAD only: no manifest GET


def test_a_derived_item_reads_the_target_manifest_for_its_recipe() -> None:
    built = WorkItem("docker.io/library/app", "1", "mirror/app", "1", build_commands=("RUN true",))
    target = FakeRegistry({})  # no such tag: the GET says MANIFEST_UNKNOWN
    result = check(built, FakeRegistry({"1": ManifestHead(DIGEST, OCI_MANIFEST, 100)}), target)
    assert target.requests == [("GET", "1")]
    assert result.outcome is None
    assert result.decision is not None
    assert result.decision.action == "build"


def test_a_low_pull_budget_defers_the_copy_until_the_window_resets() -> None:
    head = ManifestHead(DIGEST, OCI_MANIFEST, 100, ratelimit=RateLimit(limit=100, remaining=3, window=21600))
    now = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
    result = check(item("1"), FakeRegistry({"1": head}), FakeRegistry({}), budget=PullBudget(5), now=now)
    assert result.outcome is not None
    assert result.outcome.outcome == "deferred"
    assert "pull budget low (3 of 100 pulls left, floor 5)" in result.outcome.reason
    assert result.outcome.retry_after == "2026-12-01T18:00:00Z"


def test_an_item_that_needs_a_copy_gets_no_outcome_here() -> None:
    result = check(item("1"), FakeRegistry({"1": ManifestHead(DIGEST, OCI_MANIFEST, 100)}), FakeRegistry({}))
    assert result.outcome is None
    assert result.decision is not None
    assert result.decision.action == "copy"
    assert "does not exist in the target" in result.decision.reason


def test_a_trust_root_the_gate_used_with_a_notice_puts_the_notice_in_the_batch_s_notices_once() -> None:
    """A failed refresh of Sigstore's trust root (the adapter's notice) reaches the report once
    per batch, however many keyless items used it; a batch whose gate needed no trust root says nothing."""
    head = ManifestHead(DIGEST, OCI_MANIFEST, 100)
    upstream = FakeRegistry({"1": head, "2": head, "3": head})
    keyless = ("keyless", '{"identity":"who@example.com","issuer":"https://accounts.example.com"}')
    items = [replace(item(tag), verify=keyless) for tag in ("1", "2")] + [item("3")]
    fallback = replace(TrustRoot.shipped(), notice="upstream tuf.example: Sigstore's trust root could not be refreshed")
    asked: list[int] = []

    def trust_root() -> TrustRoot:
        asked.append(1)
        return fallback

    def run(batch: str, entries: list[WorkItem]) -> None:
        check_batch(
            run="r",
            batch=batch,
            items=entries,
            store=store,
            upstream=lambda _: upstream,
            target=FakeRegistry({}),
            target_registry="target.example",
            floor=0,
            concurrency=2,
            force=False,
            dry_run=False,
            trust_root=trust_root,
        )

    store = MemoryStore({})
    run("00000", items)
    assert len(asked) == 2  # each keyless item's gate asked for the root
    assert store.objects["runs/r/notices/00000.json"] == [fallback.notice]
    run("00001", [item("3")])
    assert "runs/r/notices/00001.json" not in store.objects
