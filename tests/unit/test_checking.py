"""The check of one item and of a batch, against in-memory registries (pure logic)."""

from __future__ import annotations

import threading
import time

from hubmirror.adapters.registry.client import RegistryClient
from hubmirror.adapters.registry.errors import RateLimitedError
from hubmirror.adapters.registry.model import MANIFEST_MAX_BYTES, ManifestHead
from hubmirror.domain.items import WorkItem
from hubmirror.domain.ratelimit import PullBudget
from hubmirror.steps.check import NOT_CHECKED_IN_TIME, check_batch, check_item
from tests.fakes import MemoryStore

DIGEST = "sha256:" + "a" * 64
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class FakeRegistry(RegistryClient):
    """Answers HEADs from a dict; ``slow`` tags wait on an event first; ``limited`` ones answer 429."""

    def __init__(self, heads: dict[str, ManifestHead], *, slow: frozenset[str] = frozenset()) -> None:
        super().__init__("fake.example")
        self.heads = heads
        self.slow = slow
        self.release = threading.Event()
        self.limited: set[str] = set()

    def head_manifest(self, repository: str, reference: str) -> ManifestHead:
        if reference in self.slow:
            self.release.wait(10)
        if reference in self.limited:
            raise RateLimitedError("upstream fake.example/x: the registry answered 429 3 times", retry_after=60)
        return self.heads[reference]


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
