"""EventBridge's request size limit, which moto does not enforce.

AWS: a PutEvents request's entries must total less than 256 KB, each entry counting the UTF-8
bytes of its Source, DetailType, Detail and Resources, and 14 for a Time
(https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html). moto refuses
more than 10 entries, as AWS does, but takes any size. :func:`install` makes it refuse an
oversized request with a ValidationException, so a publisher that does not batch by size
fails here as it would on AWS.
"""

from __future__ import annotations

from typing import Any

from moto.events.exceptions import ValidationException
from moto.events.models import EventsBackend

from devstack.motoversion import require_moto

LIMIT_BYTES = 256 * 1024

_original_put_events = EventsBackend.put_events


def entry_size(entry: dict[str, Any]) -> int:
    size = 14 if entry.get("Time") is not None else 0
    for key in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(key) or "").encode())
    return size + sum(len(str(r).encode()) for r in entry.get("Resources") or [])


def _put_events(self: EventsBackend, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    total = sum(entry_size(e) for e in events)
    if total >= LIMIT_BYTES:
        raise ValidationException(f"Total size of the entries in the request is over the limit ({total} bytes).")
    return _original_put_events(self, events)


def install() -> None:
    require_moto("eventsize")
    EventsBackend.put_events = _put_events  # type: ignore[method-assign]


def uninstall() -> None:
    EventsBackend.put_events = _original_put_events  # type: ignore[method-assign]
