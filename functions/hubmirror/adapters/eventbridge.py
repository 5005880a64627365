"""PutEvents to an EventBridge bus, batch by batch; what EventBridge refused comes back in words."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from hubmirror.adapters import aws


class EventBus:
    """One event bus (the account's ``default`` unless named)."""

    def __init__(self, client: Any = None) -> None:
        self.client = client or aws.client("events")

    def put(self, requests: Sequence[Sequence[Mapping[str, object]]]) -> tuple[int, list[str]]:
        """Send each request's entries; returns how many EventBridge took, and why others were not.

        PutEvents answers 200 with a per-entry ``ErrorCode`` for an entry it refused
        (``FailedEntryCount``), and raises for a request it refused whole; neither stops the rest.
        """
        sent = 0
        problems: list[str] = []
        for entries in requests:
            try:
                answer = self.client.put_events(Entries=list(entries))
            except (ClientError, BotoCoreError) as exc:
                problems.append(f"{len(entries)} event(s) not sent: {exc}")
                continue
            for entry, result in zip(entries, answer.get("Entries", []), strict=False):
                if result.get("ErrorCode"):
                    problems.append(f"{entry['DetailType']}: {result['ErrorCode']} ({result.get('ErrorMessage', '')})")
                else:
                    sent += 1
        return sent, problems
