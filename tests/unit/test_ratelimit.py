"""Docker Hub's rate-limit headers and the pull budget of a batch."""

from __future__ import annotations

from hubmirror.domain.ratelimit import PullBudget, RateLimit


def test_headers_parse_with_and_without_window() -> None:
    limit = RateLimit.from_headers(
        {"RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "76;w=21600", "Docker-RateLimit-Source": "1.2.3.4"}
    )
    assert limit == RateLimit(100, 76, 21600, "1.2.3.4")
    assert RateLimit.from_headers({"ratelimit-limit": "200", "ratelimit-remaining": "3"}) == RateLimit(200, 3)


def test_no_headers_means_unlimited() -> None:
    assert RateLimit.from_headers({"content-type": "x"}) is None
    assert PullBudget(floor=10).reserve("ghcr.io", None, pulls=1000)


def test_budget_reserves_across_items_and_keeps_the_floor() -> None:
    budget = PullBudget(floor=2)
    seen = RateLimit(100, 6)
    assert budget.reserve("docker.io", seen, 2)
    assert budget.reserve("docker.io", seen, 2)
    assert not budget.reserve("docker.io", seen, 1)  # 6 - 4 - 1 < 2
    assert budget.reserve("ghcr.io", RateLimit(10, 10), 5)  # budgets are per registry
