"""The pull budget never lets a batch spend pulls below the floor (pure logic)."""

from __future__ import annotations

from hubmirror.domain.items import WorkItem
from hubmirror.domain.ratelimit import PullBudget, RateLimit
from hubmirror.domain.registry.model import ManifestHead
from hubmirror.steps.check import check_item
from tests.fakes import FakeRegistry

DIGEST = "sha256:" + "a" * 64
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def test_a_lower_count_seen_later_wins_over_what_the_budget_remembers() -> None:
    """Another job spent pulls meanwhile: the registry's newer, lower count is the budget now."""
    budget = PullBudget(floor=10)
    assert budget.reserve("docker.io", RateLimit(100, 50), 5)  # 45 left, as far as this batch knows
    assert not budget.reserve("docker.io", RateLimit(100, 12), 5)  # the registry says 12: 7 would be below 10
    assert budget.reserve("docker.io", RateLimit(100, 12), 2)  # 10: at the floor, not below it


def test_a_refused_reservation_remembers_the_low_count_it_saw() -> None:
    """Within a batch the budget never rises: an answer from before the others spent pulls (or
    from another address) does not give back what a lower count took away."""
    budget = PullBudget(floor=10)
    assert budget.reserve("docker.io", RateLimit(100, 50), 5)
    assert not budget.reserve("docker.io", RateLimit(100, 12), 5)
    assert not budget.reserve("docker.io", RateLimit(100, 50), 5)  # still 12 left as far as this batch knows


def test_reservations_add_up_until_the_floor() -> None:
    budget = PullBudget(floor=10)
    seen = RateLimit(100, 20)
    assert [budget.reserve("docker.io", seen, 3) for _ in range(4)] == [True, True, True, False]  # 20-9=11; 11-3 < 10


def test_a_refused_reservation_spends_nothing() -> None:
    budget = PullBudget(floor=10)
    seen = RateLimit(100, 14)
    assert not budget.reserve("docker.io", seen, 5)
    assert budget.reserve("docker.io", seen, 4)  # the 5 refused were not taken


def _copy(platforms: tuple[str, ...] | None, remaining: int, floor: int, *, verify: bool = False) -> str | None:
    head = ManifestHead(DIGEST, OCI_INDEX, 100, RateLimit(100, remaining, 21600))
    item = WorkItem(
        "docker.io/library/app",
        "1",
        "mirror/app",
        "1",
        platforms=platforms,
        verify=("key", "unused: the item is deferred first") if verify else None,
    )
    result = check_item(
        item,
        upstream=lambda _: FakeRegistry({"1": head}),
        target=FakeRegistry({}),
        budget=PullBudget(floor),
        force=False,
        dry_run=False,
    )
    return result.outcome.outcome if result.outcome else None


def test_an_index_reserves_a_pull_per_platform_it_will_fetch() -> None:
    three = ("linux/amd64", "linux/arm64", "linux/s390x")
    assert _copy(three, remaining=13, floor=10) is None  # 13 - 3 = 10: at the floor
    assert _copy(three, remaining=12, floor=10) == "deferred"  # 12 - 3 < 10
    assert _copy(None, remaining=12, floor=10) is None  # every platform: the index and one platform at least
    assert _copy(None, remaining=11, floor=10) == "deferred"


def test_a_gated_item_reserves_its_signature_s_pull_too() -> None:
    assert _copy(("linux/amd64",), remaining=11, floor=10) is None
    assert _copy(("linux/amd64",), remaining=11, floor=10, verify=True) == "deferred"  # 11 - 1 - 1 < 10
