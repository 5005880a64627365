"""A blob claim is never taken over while its holder is alive (pure logic: the claims over a dict store).

A copier that claimed a blob renews the claim every ``CLAIM_HEARTBEAT_SECONDS`` while it
copies; a claim not renewed for ``CLAIM_STALE_SECONDS`` is taken to belong to a copier that
died. These tests are written in terms of the heartbeat, so a stale time shorter than the
heartbeat (a holder losing its claim while still copying, and two copiers fetching one blob)
cannot pass.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from hubmirror.copying import transfer as transfer_module
from hubmirror.copying.blobindex import CLAIM_STALE_SECONDS, S3BlobIndex
from hubmirror.copying.transfer import CLAIM_HEARTBEAT_SECONDS, Transfer
from hubmirror.domain import keys
from tests.fakes import MemoryStore

DIGEST = "sha256:" + "e" * 64
CLAIM_KEY = keys.blob(DIGEST, ".claim")
#: An S3 write may fail now and then (a missed beat is retried at the next one): a live holder
#: keeps its claim through this many missed beats in a row.
MISSED_BEATS_RIDDEN_OUT = 2


def test_the_stale_time_outlasts_several_heartbeats() -> None:
    assert CLAIM_STALE_SECONDS > (MISSED_BEATS_RIDDEN_OUT + 0.5) * CLAIM_HEARTBEAT_SECONDS, (
        f"a claim goes stale after {CLAIM_STALE_SECONDS} s but is renewed only every {CLAIM_HEARTBEAT_SECONDS} s"
    )


def _at(moment: float) -> Callable[[], float]:
    """A clock stopped at ``moment``."""
    return lambda: moment


def test_a_holder_that_keeps_beating_keeps_its_claim_against_a_second_copier() -> None:
    store = MemoryStore({})
    now = [1000.0]
    holder = S3BlobIndex(store, clock=lambda: now[0])
    assert holder.claim(DIGEST)
    for _ in range(30):  # a long copy: thirty beats
        beat = now[0]
        for late in (0.5, 1.0, MISSED_BEATS_RIDDEN_OUT + 0.5):  # between beats; then beats missed
            second = S3BlobIndex(store, clock=_at(beat + late * CLAIM_HEARTBEAT_SECONDS))
            assert not second.released(DIGEST), f"the claim looked dead {late} heartbeats after a beat"
            assert not second.claim(DIGEST), f"a second copier took a live claim {late} heartbeats after a beat"
        now[0] = beat + CLAIM_HEARTBEAT_SECONDS
        holder.heartbeat(DIGEST)
    gone = S3BlobIndex(store, clock=lambda: now[0] + CLAIM_STALE_SECONDS + 1)  # the holder stopped beating
    assert gone.claim(DIGEST)


def test_a_holder_whose_claim_was_taken_over_neither_renews_nor_releases_the_new_holder_s() -> None:
    """A copier that stalled past the stale time (a long GC pause, a frozen container) lost its
    claim to a second one; when it wakes, its beat and its release must leave the second's
    claim alone, or a third copier would fetch the blob the second is fetching."""
    store = MemoryStore({})
    first = S3BlobIndex(store, clock=_at(1000.0))
    assert first.claim(DIGEST)
    woke = 1000.0 + CLAIM_STALE_SECONDS + 1
    second = S3BlobIndex(store, clock=_at(woke))
    assert second.claim(DIGEST)  # the first one's claim had lapsed
    taken = store.objects[CLAIM_KEY]
    first.clock = _at(woke)
    first.heartbeat(DIGEST)
    first.release(DIGEST)
    assert store.objects[CLAIM_KEY] == taken
    third = S3BlobIndex(store, clock=_at(woke + CLAIM_HEARTBEAT_SECONDS))
    assert not third.released(DIGEST)
    assert not third.claim(DIGEST)
    second.release(DIGEST)  # its own: let go
    assert third.claim(DIGEST)


class _SlowTarget:
    """A target registry whose one upload lasts until ``done`` is set (a long copy); nothing is there yet."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.uploading = threading.Event()

    def has_blob(self, repository: str, digest: str) -> bool:
        return False

    def upload_blob(self, repository: str, digest: str, size: int, data: Any, *, session: str | None = None) -> None:
        data.read()
        self.uploading.set()
        assert self.done.wait(30)


#: The claims' clock runs this much faster than the wall clock, and the heartbeat thread's
#: period is shortened by as much: a minute of claims in a second and a half.
SPEED = 40.0


@pytest.fixture
def fast_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[], float]:
    started = time.monotonic()
    monkeypatch.setattr(transfer_module, "CLAIM_HEARTBEAT_SECONDS", transfer_module.CLAIM_HEARTBEAT_SECONDS / SPEED)
    return lambda: 1000.0 + (time.monotonic() - started) * SPEED


def test_a_copier_s_heartbeat_keeps_its_claim_while_it_copies_and_lets_it_go_after(
    fast_clock: Callable[[], float],
) -> None:
    store = MemoryStore({})
    target = _SlowTarget()
    copier = Transfer(target, S3BlobIndex(store, clock=fast_clock), sleep=lambda _: None)  # type: ignore[arg-type]
    descriptor: Mapping[str, Any] = {"digest": DIGEST, "size": 4}
    held: list[str] = []
    copying = threading.Thread(
        target=copier.ensure_blobs,
        args=("mirror/app", [descriptor], lambda _: io.BytesIO(b"data")),
        kwargs={"held": held},
    )
    copying.start()
    try:
        assert target.uploading.wait(10)
        second = S3BlobIndex(store, clock=fast_clock)
        watch_until = time.monotonic() + 1.6 * CLAIM_STALE_SECONDS / SPEED  # past a stale time
        oldest = 0.0
        while time.monotonic() < watch_until:
            assert not second.claim(DIGEST), "a second copier took the blob while its holder was still copying"
            oldest = max(oldest, fast_clock() - float(store.objects[CLAIM_KEY]["at"]))
            time.sleep(0.05)
        # renewed at every beat: a beat or two late at worst, never near the stale time
        assert oldest < (MISSED_BEATS_RIDDEN_OUT + 2) * CLAIM_HEARTBEAT_SECONDS, (
            f"the claim went {oldest:.0f} s unrenewed"
        )
    finally:
        target.done.set()
        copying.join(10)
    assert held == [DIGEST]
    copier.let_go(held)  # the image is written
    assert S3BlobIndex(store, clock=fast_clock).claim(DIGEST)  # at once, not after a stale time
    copier.close()
