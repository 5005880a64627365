"""EventBridge's request size limit, and its refusal of single entries, which moto does not have.

AWS: a PutEvents request's entries must total less than 256 KB, each entry counting the UTF-8
bytes of its Source, DetailType, Detail and Resources, and 14 for a Time
(https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html). moto refuses
more than 10 entries, as AWS does, but takes any size. :func:`install` makes it refuse an
oversized request with a ValidationException, so a publisher that does not batch by size
fails here as it would on AWS.

AWS may also refuse some entries of a request it takes, answering 200 with ``FailedEntryCount``
and an ``ErrorCode`` and ``ErrorMessage`` in each refused entry's result slot, for instance
``ThrottlingException`` or ``InternalFailure``, which a sender should retry
(https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEventsResultEntry.html).
moto refuses an entry only when it is malformed. A test appends ``(error_code, message)`` pairs
to :data:`refusals`; each entry put while the list is not empty takes the first pair and is
answered with it instead of being put (moto's responses count it in ``FailedEntryCount``)::

    eventsize.refusals.extend([("ThrottlingException", "Rate exceeded")] * 2)

:func:`install` and :func:`uninstall` empty the list.
"""

from __future__ import annotations

from typing import Any

from moto.events.exceptions import ValidationException
from moto.events.models import EventsBackend

from devstack.aws.motoversion import require_moto

LIMIT_BYTES = 256 * 1024

#: ``(error_code, message)`` answers for the next entries put, one per entry, in order.
refusals: list[tuple[str, str]] = []

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
    if not refusals or len(events) > 10:
        return _original_put_events(self, events)
    refused = {}
    for n in range(min(len(events), len(refusals))):
        code, message = refusals.pop(0)
        refused[n] = {"ErrorCode": code, "ErrorMessage": message}
    taken = iter(_original_put_events(self, [e for n, e in enumerate(events) if n not in refused]))
    return [refused[n] if n in refused else next(taken) for n in range(len(events))]


def install() -> None:
    require_moto("eventsize")
    refusals.clear()
    EventsBackend.put_events = _put_events  # type: ignore[method-assign]


def uninstall() -> None:
    refusals.clear()
    EventsBackend.put_events = _original_put_events  # type: ignore[method-assign]
