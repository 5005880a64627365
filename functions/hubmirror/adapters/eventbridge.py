"""PutEvents to an EventBridge bus, batch by batch; what EventBridge refused comes back in words."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from hubmirror.adapters import aws

#: PutEvents requests in flight at once: a run of 5,000 changed images is 501 requests, which
#: one at a time would take most of a minute of the report step.
CONCURRENCY = 8


class EventBus:
    """One event bus (the account's ``default`` unless named)."""

    def __init__(self, client: Any = None, *, concurrency: int = CONCURRENCY) -> None:
        self.client = client or aws.client("events")
        self.concurrency = concurrency

    def put(self, requests: Sequence[Sequence[Mapping[str, object]]]) -> tuple[int, list[str]]:
        """Send each request's entries; returns how many EventBridge took, and why others were not.

        PutEvents answers 200 with a per-entry ``ErrorCode`` for an entry it refused
        (``FailedEntryCount``), and raises for a request it refused whole; neither stops the rest.
        EventBridge keeps no order between events, so the requests go several at a time.
        """
        if not requests:
            return 0, []
        with ThreadPoolExecutor(max_workers=max(1, min(self.concurrency, len(requests)))) as pool:
            results = list(pool.map(self._put, requests))
        return sum(sent for sent, _ in results), [problem for _, problems in results for problem in problems]

    def _put(self, entries: Sequence[Mapping[str, object]]) -> tuple[int, list[str]]:
        try:
            answer = self.client.put_events(Entries=list(entries))
        except (ClientError, BotoCoreError) as exc:
            return 0, [f"{len(entries)} event(s) not sent: {exc}"]
        sent, problems = 0, []
        for entry, result in zip(entries, answer.get("Entries", []), strict=False):
            if result.get("ErrorCode"):
                problems.append(f"{entry['DetailType']}: {result['ErrorCode']} ({result.get('ErrorMessage', '')})")
            else:
                sent += 1
        return sent, problems
