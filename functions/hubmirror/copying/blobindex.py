"""Where blobs already live in the target registry, and who is fetching a new one now.

Hints, not truth: a mount that fails falls back to a transfer. Two backends: in memory
(one process) and in the run bucket (every copy and build of every run, and the claims that
let one of several jobs running at once fetch a new blob while the others wait for it).
"""

from __future__ import annotations

import enum
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from hubmirror.domain import keys
from hubmirror.domain.documents import BlobRecord, ClaimRecord

#: A claim not renewed for this long belongs to a copier that died; others fetch the blob.
#: Claimers renew every ten seconds (``transfer.CLAIM_HEARTBEAT_SECONDS``): six missed beats
#: ride out an S3 hiccup, and a crashed copier delays the others by a minute at most.
CLAIM_STALE_SECONDS = 60.0


class Claim(enum.IntEnum):
    """What :meth:`BlobIndex.claim` got; true when the caller is to fetch the blob.

    ``FIRST``: nobody ever claimed the blob, so no copier fetched it into the target; what the
    caller saw of the index just before still stands. ``TAKEN``: a claim released, or whose
    copier died, is now the caller's; the blob may have landed meanwhile, so look again."""

    HELD = 0  # another copier holds it: wait for it
    TAKEN = 1
    FIRST = 2


class JsonStore(Protocol):
    def put_json(self, key: str, value: Any) -> str: ...
    def create_json(self, key: str, value: Any) -> str | None: ...
    def find_json(self, key: str) -> Any | None: ...
    def read_json(self, key: str) -> tuple[Any, str] | None: ...
    def replace_json(self, key: str, value: Any, etag: str) -> str | None: ...


class BlobIndex(Protocol):
    """Where blobs already live in the target registry (repository names).

    ``claim`` lets one copier, among several running at once, fetch a blob nobody holds
    yet; the others wait for it to appear and mount it. The claimer keeps its claim alive
    (``heartbeat``) while it works and gives it up (``release``) when its copy ends, however
    it ends; a claim that is released, or whose heartbeat stopped, is nobody's.
    """

    def where(self, digest: str, *, fresh: bool = False) -> list[str]: ...
    def record(self, digest: str, repository: str) -> bool: ...
    def claim(self, digest: str) -> Claim: ...
    def heartbeat(self, digest: str) -> None: ...
    def release(self, digest: str) -> None: ...
    def released(self, digest: str) -> bool: ...


class MemoryBlobIndex:
    """A blob index for one process; :class:`S3BlobIndex` persists it."""

    def __init__(self) -> None:
        self._where: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def where(self, digest: str, *, fresh: bool = False) -> list[str]:
        with self._lock:
            return list(self._where.get(digest, []))

    def claim(self, digest: str) -> Claim:
        return Claim.FIRST  # one process: its threads are serialised per blob by the transfer

    def heartbeat(self, digest: str) -> None:
        return None

    def release(self, digest: str) -> None:
        return None

    def released(self, digest: str) -> bool:
        return False

    def record(self, digest: str, repository: str) -> bool:
        with self._lock:
            places = self._where.setdefault(digest, [])
            if repository not in places:
                places.append(repository)
        return True


#: How often :meth:`S3BlobIndex.record` reads an entry again that changed under it (a hint: after
#: that, the entry is left as another copier wrote it).
RECORD_ATTEMPTS = 4


class S3BlobIndex:
    """Where blobs live in the target registry, kept in the bucket (``blobs/<algo>/<hex>.json``).

    Shared by every copy and build of every run, so an image that shares layers with one
    mirrored earlier mounts them instead of fetching them again. Entries are hints: a
    mount that fails falls back to a transfer. A claim (``.claim``, written only if absent)
    lets one of several jobs running at once fetch a new blob while the others wait for it;
    its holder renews it while it works and releases it if its copy fails (once the image is
    written, the blob is readable where the entry says, and the claim is left to lapse); a
    claim not renewed for :data:`CLAIM_STALE_SECONDS` belongs to a copier that died or is
    done. A claim names its holder (``by``, one per index), and every write to a claim is
    conditional on what was read: a holder whose claim was taken over (it stalled past the
    stale time) neither renews nor releases the new holder's claim.
    """

    def __init__(self, store: JsonStore, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self.holder = uuid.uuid4().hex
        self._known: dict[str, list[str]] = {}
        self._etags: dict[str, str] = {}  # the claims this copier holds: the ETag it last wrote
        self._lock = threading.Lock()

    def where(self, digest: str, *, fresh: bool = False) -> list[str]:
        with self._lock:
            known = None if fresh else self._known.get(digest)
        if known is None:
            known = list((self.store.find_json(keys.blob(digest)) or {}).get("repositories", []))
            with self._lock:
                self._known[digest] = known
        return list(known)

    def record(self, digest: str, repository: str) -> bool:
        """Add ``repository`` to where ``digest`` lives (newest first, at most 8). The entry is
        read and written back only if nobody changed it meanwhile (its ETag): two copiers
        recording one blob at once both stay in it. False when others kept changing it and
        ``repository`` is not in it."""
        if repository in self.where(digest):
            return True
        key = keys.blob(digest)
        places = [repository]
        if not self.where(digest) and self.store.create_json(key, BlobRecord(repositories=places)) is not None:
            with self._lock:  # a new blob's first record: one write, no read
                self._known[digest] = places
            return True
        written: str | None = None
        for _ in range(RECORD_ATTEMPTS):
            found = self.store.read_json(key)
            held = found[0] if found is not None and isinstance(found[0], dict) else {}
            places = [repository, *[str(p) for p in held.get("repositories", []) if p != repository]][:8]
            value = BlobRecord(repositories=places)
            written = (
                self.store.create_json(key, value) if found is None else self.store.replace_json(key, value, found[1])
            )
            if written is not None:
                break
        with self._lock:
            self._known[digest] = places
        return written is not None

    def claim(self, digest: str) -> Claim:
        """Take the claim on fetching ``digest``: true when this copier should fetch it."""
        key = keys.blob(digest, ".claim")
        if (etag := self.store.create_json(key, self._claim())) is not None:
            self._hold(digest, etag)
            return Claim.FIRST
        try:
            found = self.store.read_json(key)
        except Exception:
            return Claim.HELD  # cannot tell: let the others' claim stand; the wait gives up in time
        if found is None:  # released and gone a moment ago: take it as new
            etag = self.store.create_json(key, self._claim())
            self._hold(digest, etag)
            return Claim.TAKEN if etag is not None else Claim.HELD
        held, etag = found
        own = isinstance(held, dict) and held.get("by") == self.holder  # a release of ours that failed
        if not own and not self._lapsed(held):
            return Claim.HELD
        # released, or its copier died: take it over only if it is still what was read, so of
        # several copiers taking over one claim exactly one fetches
        taken = self.store.replace_json(key, self._claim(), etag)
        self._hold(digest, taken)
        return Claim.TAKEN if taken is not None else Claim.HELD

    def heartbeat(self, digest: str) -> None:
        """Renew a claim this copier holds; nothing is written if it is no longer its own."""
        self._rewrite(digest, self._claim())

    def release(self, digest: str) -> None:
        """Give the claim up (the image is written, or its copy failed): a waiting copier
        takes the blob from the target, or fetches it, at once. A claim another copier took
        over meanwhile stays theirs."""
        self._rewrite(digest, ClaimRecord(at=0, released=True))

    def _claim(self) -> ClaimRecord:
        return ClaimRecord(at=self.clock(), by=self.holder)

    def _hold(self, digest: str, etag: str | None) -> None:
        """Remember the ETag of the claim this copier last wrote (None: it holds none)."""
        with self._lock:
            if etag:
                self._etags[digest] = etag
            else:
                self._etags.pop(digest, None)

    def _rewrite(self, digest: str, value: ClaimRecord) -> bool:
        """Write over this copier's own claim. With the ETag of its last write, no read is
        needed: the write lands only if the claim is still exactly that (nobody took it over)."""
        key = keys.blob(digest, ".claim")
        with self._lock:
            etag = self._etags.get(digest)
        if etag is None:
            found = self.store.read_json(key)
            if found is None or not isinstance(found[0], dict) or found[0].get("by") != self.holder:
                return False
            etag = found[1]
        written = self.store.replace_json(key, value, etag)
        self._hold(digest, written if written and not value.get("released") else None)
        return written is not None

    def released(self, digest: str) -> bool:
        """Whether nobody holds the claim: released, or not renewed for :data:`CLAIM_STALE_SECONDS`."""
        try:
            held = self.store.find_json(keys.blob(digest, ".claim"))
        except Exception:
            return True
        return self._lapsed(held)

    def _lapsed(self, held: Any) -> bool:
        claimed_at = float((held or {}).get("at", 0)) if isinstance(held, dict) else 0.0
        return bool(self.clock() - claimed_at > CLAIM_STALE_SECONDS)
