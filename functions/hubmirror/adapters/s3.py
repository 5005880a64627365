"""Where a run keeps its items, outcomes and build contexts: one S3 bucket.

Layout (every key under the bucket)::

    runs/<run>/plan.json                 every item of the run, in order
    runs/<run>/batches.json              the Distributed Map's item list: one entry per batch
    runs/<run>/batches/<batch>.json      the items of one batch
    runs/<run>/jobs/<batch>-<kind>.json  what one CodeBuild build copies or builds
    runs/<run>/outcomes/<batch>-<phase>.json   outcomes written by the check and by builds
    runs/<run>/errors/<batch>-<phase>.json     a step that failed as a whole (from a Catch)
    runs/<run>/report.json               the report
    locks/run.json                       the run lock: which execution is syncing now
    contexts/<sha256>.tar.gz             rendered build contexts, content-addressed
    runner/<sha256>.zip                  the copy/build script CodeBuild runs, content-addressed

Keeping items and outcomes here keeps every state payload small, whatever the run's size.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError

from hubmirror.adapters import aws

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


_conditional = threading.local()


def _if_none_match(request: Any, **_: Any) -> None:
    """Adds ``If-None-Match: *`` to the PutObject of :meth:`Store.create_json` (any botocore version)."""
    if getattr(_conditional, "on", False):
        request.headers["If-None-Match"] = "*"


#: A claim not renewed for this long belongs to a copier that died; others fetch the blob.
#: Claimers renew every ten seconds (``transfer.CLAIM_HEARTBEAT_SECONDS``): six missed beats
#: ride out an S3 hiccup, and a crashed copier delays the others by a minute at most.
CLAIM_STALE_SECONDS = 60.0


def _missing(exc: ClientError) -> bool:
    """Whether S3 answered that the key does not exist (``GetObject`` and ``HeadObject`` say it differently)."""
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


def run_key(run: str, *parts: str) -> str:
    """``run_key("r1", "batches", "00000.json")`` -> ``runs/r1/batches/00000.json``."""
    return "/".join(("runs", run, *parts))


class Store:
    """JSON and bytes in one bucket."""

    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self.client: S3Client = client or aws.client("s3")
        self.client.meta.events.register("before-sign.s3.PutObject", _if_none_match)

    def put_json(self, key: str, value: Any) -> str:
        body = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
        return key

    def create_json(self, key: str, value: Any) -> bool:
        """Write ``key`` only if it does not exist yet (S3 conditional write); False if it did."""
        body = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
        _conditional.on = True
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise
        finally:
            _conditional.on = False
        return True

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        return key

    def get_bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                return False
            raise
        return True

    def keys(self, prefix: str) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        found: list[str] = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            found.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(found)

    def location(self, key: str) -> str:
        """``bucket/key``, as CodeBuild's S3 source location wants it."""
        return f"{self.bucket}/{key}"


class S3BlobIndex:
    """Where blobs live in the target registry, kept in the bucket (``blobs/<algo>/<hex>.json``).

    Shared by every copy and build of every run, so an image that shares layers with one
    mirrored earlier mounts them instead of fetching them again. Entries are hints: a
    mount that fails falls back to a transfer. A claim (``.claim``, written only if absent)
    lets one of several jobs running at once fetch a new blob while the others wait for it;
    its holder renews it while it works and releases it when done; a claim not renewed for
    :data:`CLAIM_STALE_SECONDS` belongs to a copier that died.
    """

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._known: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def _key(self, digest: str, suffix: str = ".json") -> str:
        return "blobs/" + digest.replace(":", "/") + suffix

    def where(self, digest: str, *, fresh: bool = False) -> list[str]:
        with self._lock:
            known = None if fresh else self._known.get(digest)
        if known is None:
            try:
                known = list(self.store.get_json(self._key(digest)).get("repositories", []))
            except ClientError as exc:
                if not _missing(exc):
                    raise
                known = []
            with self._lock:
                self._known[digest] = known
        return list(known)

    def record(self, digest: str, repository: str) -> None:
        places = self.where(digest)
        if repository in places:
            return
        with self._lock:
            places = [repository, *[p for p in self._known.get(digest, places) if p != repository]][:8]
            self._known[digest] = places
        self.store.put_json(self._key(digest), {"repositories": places})

    def claim(self, digest: str) -> bool:
        """Take the claim on fetching ``digest``: True when this copier should fetch it."""
        key = self._key(digest, ".claim")
        if self.store.create_json(key, {"at": self.clock()}):
            return True
        if not self.released(digest):
            return False
        self.store.put_json(key, {"at": self.clock()})  # released, or its copier died: take it over
        return True

    def heartbeat(self, digest: str) -> None:
        """Renew a claim this copier holds."""
        self.store.put_json(self._key(digest, ".claim"), {"at": self.clock()})

    def release(self, digest: str) -> None:
        """Give the claim up (the image is written, or its copy failed): a waiting copier
        takes the blob from the target, or fetches it, at once."""
        self.store.put_json(self._key(digest, ".claim"), {"at": 0, "released": True})

    def released(self, digest: str) -> bool:
        """Whether nobody holds the claim: released, or not renewed for :data:`CLAIM_STALE_SECONDS`."""
        try:
            claimed_at = float(self.store.get_json(self._key(digest, ".claim")).get("at", 0))
        except (ClientError, ValueError, AttributeError):
            return True
        return bool(self.clock() - claimed_at > CLAIM_STALE_SECONDS)


RUN_LOCK_KEY = "locks/run.json"
#: How long a run lock holds at most: a run that died (its report step never ran) blocks the
#: next ones this long, no longer. Six hours is the default schedule's period, and Docker
#: Hub's rate-limit window: a run still going after that has waited out a whole window.
RUN_LOCK_SECONDS = 6 * 3600


class RunLockedError(RuntimeError):
    """Another execution is syncing; this one syncs nothing (the message names the other)."""


class LockStore(Protocol):
    def create_json(self, key: str, value: Any) -> bool: ...
    def put_json(self, key: str, value: Any) -> str: ...
    def get_json(self, key: str) -> Any: ...
    def delete(self, key: str) -> None: ...


def take_run_lock(store: LockStore, run: str, *, now: float | None = None) -> None:
    """Hold the run lock for ``run`` (a conditional write), or raise :class:`RunLockedError`.

    A lock past its ``expires`` time, or already held by ``run`` (the plan step retried), is
    taken over.
    """
    now = time.time() if now is None else now
    lock = {"execution": run, "at": now, "expires": now + RUN_LOCK_SECONDS}
    if store.create_json(RUN_LOCK_KEY, lock):
        return
    try:
        held = store.get_json(RUN_LOCK_KEY)
    except ClientError:
        held = {}
    if isinstance(held, dict) and held.get("execution") == run:
        return  # the plan step retried: the lock is already this run's
    if not isinstance(held, dict) or float(held.get("expires") or 0) < now:
        store.put_json(RUN_LOCK_KEY, lock)
        return
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(held.get("at") or 0)))
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(held.get("expires") or 0)))
    raise RunLockedError(
        f"another execution, {held.get('execution')}, has been syncing since {since}; this one synced nothing "
        f"and ends here (start it again when that one has reported; its lock lapses at {until} at the latest)"
    )


def release_run_lock(store: LockStore, run: str) -> None:
    """Let the run lock go, if ``run`` holds it."""
    try:
        held = store.get_json(RUN_LOCK_KEY)
    except ClientError as exc:
        if _missing(exc):
            return
        raise
    if isinstance(held, dict) and held.get("execution") == run:
        store.delete(RUN_LOCK_KEY)
