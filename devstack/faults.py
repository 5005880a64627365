"""Faults injected into the stand-ins, for the tests: each good for a number of requests.

Every group uses them: the registry fronts and the CDN (:mod:`devstack.registries.proxy`'s
``Fault``, :mod:`devstack.registries.cdn`'s ``DownloadFault``) and AWS
(:mod:`devstack.aws.iam`'s ``ServiceFault``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class _Counted(Protocol):
    times: int


FaultT = TypeVar("FaultT", bound=_Counted)


class Faults(Generic[FaultT]):
    """Faults injected into a stand-in (a front, the CDN, AWS), each good for ``times`` requests."""

    def __init__(self) -> None:
        self._faults: list[FaultT] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._faults)

    def add(self, fault: FaultT) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[FaultT]:
        """The faults not met yet (each with the ``times`` it has left)."""
        with self._lock:
            return list(self._faults)

    def take(self, matches: Callable[[FaultT], bool]) -> FaultT | None:
        """The first fault that ``matches`` this request, one of its ``times`` spent; None if none."""
        with self._lock:
            for fault in self._faults:
                if matches(fault):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None
