"""Docker Hub style rate limits: the headers, and a pull budget shared by a batch.

Docker Hub answers manifest requests with::

    ratelimit-limit: 100;w=21600
    ratelimit-remaining: 76;w=21600
    docker-ratelimit-source: 203.0.113.7

No headers at all means the registry does not limit pulls. A pull is a manifest GET; HEAD
requests are free.

Pure: no I/O, no environment.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass

_VALUE = re.compile(r"^\s*(\d+)\s*(?:;\s*w\s*=\s*(\d+))?")


@dataclass(frozen=True)
class RateLimit:
    """What a registry said about its pull budget in one response.

    Examples
    --------
    >>> RateLimit.from_headers({"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "76;w=21600"})
    RateLimit(limit=100, remaining=76, window=21600, source=None)
    >>> RateLimit.from_headers({}) is None
    True
    """

    limit: int
    remaining: int
    window: int | None = None
    source: str | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimit | None:
        lowered = {k.lower(): v for k, v in headers.items()}
        limit = _VALUE.match(lowered.get("ratelimit-limit", ""))
        remaining = _VALUE.match(lowered.get("ratelimit-remaining", ""))
        if not limit or not remaining:
            return None
        window = remaining.group(2) or limit.group(2)
        return cls(
            limit=int(limit.group(1)),
            remaining=int(remaining.group(1)),
            window=int(window) if window else None,
            source=lowered.get("docker-ratelimit-source"),
        )


class PullBudget:
    """Pulls a batch may still spend on one registry, above a floor kept for people.

    The first observation of a registry sets the budget; every item that will pull
    reserves its pulls, so later items see what the earlier ones will spend.

    >>> budget = PullBudget(floor=10)
    >>> budget.reserve("docker.io", RateLimit(100, 12), pulls=1)
    True
    >>> budget.reserve("docker.io", RateLimit(100, 12), pulls=2)
    False
    """

    def __init__(self, floor: int) -> None:
        self.floor = floor
        self._left: dict[str, int] = {}
        self._lock = threading.Lock()

    def reserve(self, registry: str, limit: RateLimit | None, pulls: int) -> bool:
        """Reserve ``pulls`` on ``registry``; False when that would go below the floor."""
        if limit is None:
            return True
        with self._lock:
            left = min(self._left.get(registry, limit.remaining), limit.remaining)
            if left - pulls < self.floor:
                self._left[registry] = left
                return False
            self._left[registry] = left - pulls
            return True


def budget_text(limit: RateLimit | None) -> str:
    if limit is None:
        return "unknown"
    return f"{limit.remaining} of {limit.limit} pulls left"


def reset_time(limit: RateLimit | None, now: dt.datetime) -> str | None:
    """When the spent budget is back at the latest: now plus the registry's window.

    >>> reset_time(RateLimit(100, 5, 21600), dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    '2026-01-01T06:00:00Z'
    """
    if limit is None or limit.window is None:
        return None
    return (now + dt.timedelta(seconds=limit.window)).strftime("%Y-%m-%dT%H:%M:%SZ")
