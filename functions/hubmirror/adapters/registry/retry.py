"""How often, and how long apart, a request is tried again; how far apart a throttled one is sent."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

#: The answers worth another try: "later" (429) and a gateway's or an overloaded service's 5xx.
RETRIED = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries of 429 and 5xx answers, exponential with jitter, honouring Retry-After."""

    attempts: int = 3
    base_delay: float = 1.0
    max_delay: float = 20.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        backoff: float = min(self.max_delay, self.base_delay * 2**attempt)
        return backoff * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography

    @property
    def patience(self) -> float:
        """The longest the policy waits in all, every delay at its longest (no Retry-After)."""
        return float(sum(min(self.max_delay, self.base_delay * 2.0**attempt) for attempt in range(self.attempts - 1)))

    def again(self, attempt: int, retry_after: float | None, sleep: Callable[[float], None]) -> bool:
        """Whether attempt ``attempt`` (from 0) may be followed by another; if so, after
        sleeping the delay the policy gives it."""
        if attempt + 1 >= self.attempts:
            return False
        sleep(self.delay(attempt, retry_after))
        return True


#: ECR throttles each API action (``PutImage`` 10/s, ``InitiateLayerUpload`` 100/s, ...) with
#: ``429`` and no ``Retry-After``; concurrent jobs share the account's rate, so a copy job
#: gives the target more and longer tries (about 30 s in all) than an upstream gets.
TARGET_RETRY = RetryPolicy(attempts=8, base_delay=0.5, max_delay=10.0)


#: ECR's quota for ``PutImage`` (a manifest ``PUT``): 10 a second per account and Region,
#: adjustable (https://docs.aws.amazon.com/AmazonECR/latest/userguide/service-quotas.html).
PUT_IMAGE_RATE = 10.0


#: How far back a pacer's unused slots are kept. ECR, as AWS's APIs do, throttles with a token
#: bucket that holds about a second of its rate; a pacer uses four fifths of it. Requests that
#: leave a job evenly spaced do not reach the service so (threads, connections, a busy host),
#: and the fifth left over takes the ones that arrive bunched, where a bucket emptied to its
#: last token would answer them 429 and cut the job's rate for seconds.
BURST_SECONDS = 0.8


class Pacer:
    """Spaces out one throttled action of one process: additive increase, multiplicative decrease,
    up to this process's share of the account's rate.

    Jobs running at once share the account's rate: each paces its requests at its share, which
    the job sets again as others start and end (:meth:`reshare`). On a 429 it cuts its rate by
    30 % (at most once a second: the 429s of one burst are one signal). Between, it gains
    ``step * (1 + seconds since the last cut)`` requests a second each second, back up to its
    share. The jobs together stay at the service's rate, instead of going over it in bursts that
    end in 429s and backoff, and a job left alone takes up the rate the others leave.
    """

    def __init__(
        self,
        share: float,
        *,
        floor: float = 0.5,
        step: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.floor = floor
        self.share = max(floor, share)
        self.rate = self.share
        self.step = step
        self.clock = clock
        self.sleep = sleep
        #: 429 answers seen, and how many of them cut the rate
        self.throttled = 0
        self.cuts = 0
        self._next = 0.0
        self._cut_at: float | None = None
        self._since: float | None = None  # the first request, or the last cut
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Sleep until this process may send the next request (one every ``1 / rate`` seconds).
        The slot is taken when it comes, so a cut made meanwhile spaces the waiting requests too.
        Slots a job left unused in the last :data:`BURST_SECONDS` may be used at once, as the
        service's own bucket keeps the tokens nobody used: a job's share of that burst, and no
        more (at 10 a second, 8 requests at once where ECR's bucket holds 10)."""
        while True:
            with self._lock:
                now = self.clock()
                if now >= self._next:  # a slot left unused within the last BURST_SECONDS is still there
                    slot = 1.0 / self.rate
                    # the burst's slots, none if one slot is longer than the burst (under 1.25/s)
                    self._next = max(self._next, now - max(0.0, BURST_SECONDS - slot)) + slot
                    self._since = now if self._since is None else self._since
                    return
                delay = self._next - now
            self.sleep(delay)

    def passed(self) -> None:
        """A request went through: the rate grows (by ``1 / rate`` of a second's growth), up to the share."""
        with self._lock:
            quiet = max(0.0, self.clock() - (self._since or self.clock()))
            self.rate = min(self.share, self.rate + self.step * (1 + quiet) / self.rate)

    def refused(self) -> None:
        """The service answered 429: cut the rate by 30 %, unless it was cut less than a second ago."""
        with self._lock:
            self.throttled += 1
            now = self.clock()
            if self._cut_at is not None and now - self._cut_at < 1.0:
                return
            self._cut_at = self._since = now
            self.cuts += 1
            self.rate = max(self.floor, self.rate * 0.7)
            self._next = max(self._next, now + 1.0 / self.rate)

    def reshare(self, share: float) -> None:
        """Another job started or ended: the rate moves in proportion to the new share."""
        with self._lock:
            share = max(self.floor, share)
            self.rate = max(self.floor, min(share, self.rate * share / self.share))
            self.share = share

    def to_dict(self) -> dict[str, float | int]:
        return {
            "rate_per_s": round(self.rate, 2),
            "share_per_s": round(self.share, 2),
            "throttled": self.throttled,
            "cut": self.cuts,
        }


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (its delay-seconds form); None if absent or unreadable."""
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
