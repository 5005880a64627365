"""The run lock never lets a second run sync while the first is still at work (pure logic, a dict store)."""

from __future__ import annotations

import pytest

from hubmirror.steps.runlock import RUN_LOCK_KEY, RUN_LOCK_SECONDS, RunLockedError, take_run_lock
from tests.fakes import MemoryStore
from tests.infrastructure.asl import states

#: The longest a run waits on one of its states (a copy or build job: CodeBuild's own timeout and more).
LONGEST_STATE_SECONDS = max(int(state.get("TimeoutSeconds", 0)) for _, state in states())


def test_the_lock_outlasts_the_longest_state_a_run_waits_on() -> None:
    assert LONGEST_STATE_SECONDS >= 2 * 3600  # the copy and build jobs: CodeBuild's 120 minutes, and more
    assert RUN_LOCK_SECONDS > LONGEST_STATE_SECONDS


def test_a_run_whose_copy_job_is_still_going_keeps_the_lock() -> None:
    store = MemoryStore({})
    take_run_lock(store, "first", now=1000.0)
    with pytest.raises(RunLockedError, match="another execution, first, has been syncing"):
        take_run_lock(store, "second", now=1000.0 + LONGEST_STATE_SECONDS)
    assert store.objects[RUN_LOCK_KEY]["execution"] == "first"


def test_two_runs_starting_at_once_do_not_both_hold_the_lock() -> None:
    store = MemoryStore({})
    take_run_lock(store, "first", now=1000.0)
    with pytest.raises(RunLockedError):
        take_run_lock(store, "second", now=1000.0)
    assert store.objects[RUN_LOCK_KEY]["execution"] == "first"


@pytest.mark.parametrize("damaged", [["not", "a", "lock"], {"execution": "first"}, {}])
def test_a_lock_that_cannot_be_read_blocks_no_run_for_ever(damaged: object) -> None:
    """A lock without a readable expiry (written by hand, or by an older version) is taken over."""
    store = MemoryStore({RUN_LOCK_KEY: damaged})
    take_run_lock(store, "second", now=1000.0)
    assert store.objects[RUN_LOCK_KEY]["execution"] == "second"
    assert store.objects[RUN_LOCK_KEY]["expires"] == 1000.0 + RUN_LOCK_SECONDS
