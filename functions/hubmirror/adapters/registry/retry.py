"""How often, and how long apart, a request is tried again."""

from __future__ import annotations

import random
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


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (its delay-seconds form); None if absent or unreadable."""
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
