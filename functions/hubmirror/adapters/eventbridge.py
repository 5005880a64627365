"""PutEvents to an EventBridge bus, batch by batch; what EventBridge refused comes back in words."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from hubmirror.adapters import aws

#: PutEvents requests in flight at once: a run of 5,000 changed images is 501 requests, which
#: one at a time would take most of a minute of the report step.
CONCURRENCY = 8

#: The per-entry ``ErrorCode`` values EventBridge calls retryable; every other code is permanent
#: (https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEventsResultEntry.html).
TRANSIENT = frozenset({"ThrottlingException", "InternalFailure"})

#: Further requests for entries refused with a :data:`TRANSIENT` code, so at most ``RETRIES + 1`` attempts.
RETRIES = 3

#: Seconds before the first re-send, doubled for each one after (times a jitter of 0.5 to 1).
BACKOFF = 0.2


class EventBus:
    """One event bus (the account's ``default`` unless named)."""

    def __init__(self, client: Any = None, *, concurrency: int = CONCURRENCY) -> None:
        self.client = client or aws.client("events")
        self.concurrency = concurrency

    def put(self, requests: Sequence[Sequence[Mapping[str, object]]]) -> tuple[int, list[str]]:
        """Send each request's entries; returns how many EventBridge took, and why others were not.

        PutEvents answers 200 with a per-entry ``ErrorCode`` for an entry it refused
        (``FailedEntryCount``), and raises for a request it refused whole; neither stops the rest.
        Entries refused with ``ThrottlingException`` or ``InternalFailure`` are sent again, in a new
        request of only those, after an exponential back-off with jitter, up to :data:`RETRIES` times
        (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevents.html#eb-putevents-response,
        https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEventsResultEntry.html);
        a request refused whole is left to the client's own retries (``aws.BOTO_CONFIG``).
        EventBridge keeps no order between events, so the requests go several at a time.
        """
        if not requests:
            return 0, []
        with ThreadPoolExecutor(max_workers=max(1, min(self.concurrency, len(requests)))) as pool:
            results = list(pool.map(self._put, requests))
        return sum(sent for sent, _ in results), [problem for _, problems in results for problem in problems]

    def _put(self, entries: Sequence[Mapping[str, object]]) -> tuple[int, list[str]]:
        sent, pending = 0, list(entries)
        problems: list[str] = []
        for attempt in range(1, RETRIES + 2):
            if attempt > 1:
                time.sleep(BACKOFF * 2 ** (attempt - 2) * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
            try:
                answer = self.client.put_events(Entries=pending)
            except (ClientError, BotoCoreError) as exc:
                return sent, [*problems, f"{len(pending)} event(s) not sent: {exc}"]
            again = []
            for entry, result in zip(pending, answer.get("Entries", []), strict=False):
                code = result.get("ErrorCode")
                if not code:
                    sent += 1
                elif code in TRANSIENT and attempt <= RETRIES:
                    again.append(entry)
                else:
                    after = f" (after {attempt} attempts)" if code in TRANSIENT else ""
                    problems.append(f"{entry['DetailType']}: {code} ({result.get('ErrorMessage', '')}){after}")
            if not again:
                break
            pending = again
        return sent, problems
