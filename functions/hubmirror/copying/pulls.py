"""The copy job's own view of the upstream pull budget.

The check and the job leave from different addresses, and Docker Hub counts pulls per
address: the job reserves each pull it is about to make against the ``ratelimit-*`` headers
of its own requests, and defers the item (:class:`DeferredError`) rather than go below the
floor kept for people.
"""

from __future__ import annotations

import datetime as dt

from hubmirror.domain.items import WorkItem
from hubmirror.domain.ratelimit import PullBudget, RateLimit, budget_text, reset_time


class DeferredError(RuntimeError):
    """The item's pulls would take this job's own pull budget below the floor."""

    def __init__(self, message: str, *, retry_after: str | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def reserve_pulls(budget: PullBudget | None, item: WorkItem, pulls: int, limit: RateLimit | None) -> None:
    """Reserve ``pulls`` of the budget this job sees, or defer the item (DeferredError).

    The check and the job leave from different addresses, and Docker Hub counts pulls per
    address: the job goes by the ``ratelimit-*`` headers of its own requests.
    """
    if budget is None or budget.reserve(item.upstream.registry, limit, pulls):
        return
    raise DeferredError(
        f"{item.upstream.registry} pull budget low at the copy job ({budget_text(limit)}, "
        f"{pulls} needed, floor {budget.floor}); deferred to a later run",
        retry_after=reset_time(limit, dt.datetime.now(dt.UTC)),
    )
