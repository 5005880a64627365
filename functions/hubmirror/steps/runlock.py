"""The run lock: one execution syncs at a time (``locks/run.json``, a conditional write).

Taken by the plan step (not for a dry run), released by the report step or by a plan that
failed; a lock whose run died lapses after :data:`RUN_LOCK_SECONDS`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any, Protocol

from hubmirror.domain import keys
from hubmirror.domain.documents import RunLock

RUN_LOCK_KEY = keys.RUN_LOCK
#: How long a run lock holds at most: a run that died (its report step never ran) blocks the
#: next ones this long, no longer. Six hours is the default schedule's period, and Docker
#: Hub's rate-limit window: a run still going after that has waited out a whole window.
RUN_LOCK_SECONDS = 6 * 3600


class RunLockedError(RuntimeError):
    """Another execution is syncing; this one syncs nothing (the message names the other)."""


class LockStore(Protocol):
    def create_json(self, key: str, value: Any) -> str | None: ...
    def put_json(self, key: str, value: Any) -> str: ...
    def find_json(self, key: str) -> Any | None: ...
    def delete(self, key: str) -> None: ...
    def read_json(self, key: str) -> tuple[Any, str] | None: ...
    def replace_json(self, key: str, value: Any, etag: str) -> str | None: ...
    def delete_if(self, key: str, etag: str) -> bool: ...


#: How often a plan looks again when the lock changed hands under it (taken, released, taken over).
LOCK_ATTEMPTS = 5


def take_run_lock(store: LockStore, run: str, *, now: float | None = None) -> None:
    """Hold the run lock for ``run`` (a conditional write), or raise :class:`RunLockedError`.

    A lock past its ``expires`` time, or already held by ``run`` (the plan step retried), is
    taken over.
    """
    now = time.time() if now is None else now
    lock = RunLock(execution=run, at=now, expires=now + RUN_LOCK_SECONDS)
    held: Any = {}
    for _ in range(LOCK_ATTEMPTS):
        if store.create_json(RUN_LOCK_KEY, lock) is not None:
            return
        found = store.read_json(RUN_LOCK_KEY)
        if found is None:
            continue  # released a moment ago: try to create it again
        held, etag = found
        if isinstance(held, dict) and held.get("execution") == run:
            return  # the plan step retried: the lock is already this run's
        if isinstance(held, dict) and float(held.get("expires") or 0) >= now:
            break  # held, and live
        # lapsed (or unreadable): take it over only if it is still what was read, so of two
        # executions taking over one lapsed lock exactly one wins; the other looks again
        if store.replace_json(RUN_LOCK_KEY, lock, etag) is not None:
            return
    if not isinstance(held, dict):
        held = {}
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(held.get("at") or 0)))
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(held.get("expires") or 0)))
    raise RunLockedError(
        f"another execution, {held.get('execution')}, has been syncing since {since}; this one synced nothing "
        f"and ends here (start it again when that one has reported; its lock lapses at {until} at the latest)"
    )


def release_run_lock(store: LockStore, run: str) -> None:
    """Let the run lock go, if ``run`` holds it."""
    found = store.read_json(RUN_LOCK_KEY)
    if found is not None and isinstance(found[0], dict) and found[0].get("execution") == run:
        store.delete_if(RUN_LOCK_KEY, found[1])  # not a lock another run took over meanwhile


class VersionStore(Protocol):
    def current_version(self, key: str) -> str | None: ...


#: Starts an execution of this state machine: (name, input as JSON text).
Starter = Callable[[str, str], object]


def follow_up_name(version: str) -> str:
    """The execution name of the run a new allowlist version gets when a run ends: one per version,
    so two runs ending at once start it once (Step Functions refuses a second start of a name).

    >>> follow_up_name("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")
    'allowlist-3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY'
    """
    return "allowlist-" + re.sub(r"[^A-Za-z0-9_.-]", "-", version)[:70]


def follow_up(store: VersionStore, planned: str | None, start: Starter) -> str | None:
    """After a run lets the lock go: start a run for the allowlist in force if it is not the version
    this run planned (it arrived during the run, and its own execution was skipped). Returns a
    notice for the report, or None when the run planned the newest version.

    The run's own verdict does not depend on it: a follow-up that cannot be started is a notice
    saying how to start it, and the next schedule syncs the version anyway.
    """
    try:
        current = store.current_version(keys.ALLOWLIST)
        if current is None or current == planned:
            return None
        name = follow_up_name(current)
        start(name, json.dumps({"allowlist_version": current}))
    except Exception as exc:  # the report goes out whatever happened here; the notice says what
        return (
            f"an allowlist version may have arrived during this run, and no run could be started for it "
            f"({type(exc).__name__}: {exc}); start one with `hubmirror run`, or the schedule will"
        )
    return f"allowlist version {current} arrived during this run: execution {name} syncs it now"
