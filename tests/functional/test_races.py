"""Races on the bucket's locks and claims: two takers of one lapsed lock or stale claim, one winner.

Each test forces the race: both takers read the same record before either writes (a barrier
before the first write that changes it), as two executions or two copiers starting at the same
moment do. S3 decides conditional writes one at a time, so the writes go to moto one at a time too.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest

from hubmirror.adapters.s3 import Store
from hubmirror.copying.blobindex import S3BlobIndex
from hubmirror.domain import keys
from hubmirror.steps.runlock import RUN_LOCK_KEY, RunLockedError, take_run_lock


class RacingStore(Store):
    """The real adapter, where each taker, about to write what it read, waits until the other
    has read too: both have read the same record before either writes."""

    def __init__(self, store: Store, watched: str) -> None:
        super().__init__(store.bucket, client=store.client)
        self.watched = watched
        self.barrier = threading.Barrier(2, timeout=10)
        self.waited = threading.local()
        self.writes = threading.Lock()

    def _hold(self, key: str) -> None:
        if key == self.watched and not getattr(self.waited, "done", False):
            self.waited.done = True
            self.barrier.wait()

    def put_json(self, key: str, value: Any) -> str:
        self._hold(key)
        with self.writes:
            return super().put_json(key, value)

    def replace_json(self, key: str, value: Any, etag: str) -> str | None:
        self._hold(key)
        with self.writes:
            return super().replace_json(key, value, etag)


def test_two_executions_taking_over_one_lapsed_lock_end_with_one_syncing(s3_store: Store) -> None:
    s3_store.put_json(RUN_LOCK_KEY, {"execution": "dead", "at": 0, "expires": 1})  # its run died
    racing = RacingStore(s3_store, RUN_LOCK_KEY)

    def take(run: str) -> str:
        try:
            take_run_lock(racing, run)
        except RunLockedError:
            return "refused"
        return "syncing"

    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(("a", "b"), pool.map(take, ("a", "b")), strict=True))
    assert sorted(results.values()) == ["refused", "syncing"], results
    winner = next(run for run, result in results.items() if result == "syncing")
    assert s3_store.get_json(RUN_LOCK_KEY)["execution"] == winner


def test_two_copiers_taking_over_one_stale_claim_fetch_it_once(s3_store: Store) -> None:
    digest = "sha256:" + "ab" * 32
    claim = keys.blob(digest, ".claim")
    s3_store.put_json(claim, {"at": 0})  # its copier died long ago
    racing = RacingStore(s3_store, claim)
    with ThreadPoolExecutor(2) as pool:
        taken = list(pool.map(lambda _: S3BlobIndex(racing).claim(digest), range(2)))
    assert sorted(taken) == [False, True]


def test_a_conditional_write_s3_answers_409_is_retried_not_taken_for_a_refusal(s3_store: Store) -> None:
    """S3 answers a conditional write that meets a concurrent one with 409 ConditionalRequestConflict
    and asks for a retry (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html).
    The conflict is answered before the call reaches moto, so, as in S3, nothing was written."""
    conflicts = [1]

    def conflict_once(**_: Any) -> tuple[Any, dict[str, Any]] | None:
        if not conflicts:
            return None
        conflicts.pop()
        error = {"Code": "ConditionalRequestConflict", "Message": "A conflicting operation occurred. Please retry."}
        return SimpleNamespace(status_code=409), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 409}}

    s3_store.client.meta.events.register("before-call.s3.PutObject", conflict_once)
    try:
        assert s3_store.create_json("locks/run.json", {"execution": "a"}) is not None
    finally:
        s3_store.client.meta.events.unregister("before-call.s3.PutObject", conflict_once)
    assert conflicts == []  # the conflict was met, and the retry took the lock
    assert s3_store.get_json("locks/run.json") == {"execution": "a"}
    assert s3_store.create_json("locks/run.json", {"execution": "b"}) is None  # a real 412 is a refusal


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hubmirror.adapters.s3.time.sleep", lambda _: None)


def test_two_copiers_recording_one_blob_in_two_repositories_keep_both(s3_store: Store) -> None:
    """The blob index entry is read, extended and written back: two copiers recording the same
    blob in different repositories at once must not lose one of them (a later copy of the lost
    one would fetch the blob again instead of mounting it)."""
    digest = "sha256:" + "cd" * 32
    s3_store.put_json(keys.blob(digest), {"repositories": ["mirror/first"]})
    racing = RacingStore(s3_store, keys.blob(digest))
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda repository: S3BlobIndex(racing).record(digest, repository), ["mirror/a", "mirror/b"]))
    assert sorted(s3_store.get_json(keys.blob(digest))["repositories"]) == ["mirror/a", "mirror/b", "mirror/first"]
