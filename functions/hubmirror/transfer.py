"""Registry-to-registry copies that never fetch a blob the target already has.

For every blob of an image (configs and layers of every platform, attestations too):

1. the target repository already holds it (``HEAD``): nothing to do;
2. another target repository holds it (the blob index says where): mount it (one
   request, no transfer);
3. otherwise stream it from upstream to the target, once; the blob index remembers
   where it now lives, so the next image sharing it mounts it.

Manifests are written byte for byte (their digests are preserved), children before their
index, and the tag last: the tag moves only after everything it points to is in place.
Blob GETs are not pulls on Docker Hub; manifest GETs are, one per manifest fetched.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hubmirror.oci import INDEX_MEDIA_TYPES, OCI_INDEX, sha256_digest
from hubmirror.registry import Manifest, RegistryClient, RegistryError


class BlobIndex(Protocol):
    """Where blobs already live in the target registry (repository names).

    ``claim`` lets one copier, among several running at once, fetch a blob nobody holds
    yet; the others wait for it to appear and mount it.
    """

    def where(self, digest: str, *, fresh: bool = False) -> list[str]: ...
    def record(self, digest: str, repository: str) -> None: ...
    def claim(self, digest: str) -> bool: ...


class MemoryBlobIndex:
    """A blob index for one process; :class:`hubmirror.store.S3BlobIndex` persists it."""

    def __init__(self) -> None:
        self._where: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def where(self, digest: str, *, fresh: bool = False) -> list[str]:
        with self._lock:
            return list(self._where.get(digest, []))

    def claim(self, digest: str) -> bool:
        return True  # one process: its threads are serialised per blob by the transfer

    def record(self, digest: str, repository: str) -> None:
        with self._lock:
            places = self._where.setdefault(digest, [])
            if repository not in places:
                places.append(repository)


@dataclass
class TransferStats:
    """What copies cost: blobs skipped (present), mounted, and transferred (uploaded)."""

    present: int = 0
    mounted: int = 0
    transferred: int = 0
    transferred_bytes: int = 0
    manifests_fetched: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, kind: str, size: int = 0) -> None:
        with self._lock:
            setattr(self, kind, getattr(self, kind) + 1)
            if kind == "transferred":
                self.transferred_bytes += size

    def to_dict(self) -> dict[str, int]:
        return {
            "present": self.present,
            "mounted": self.mounted,
            "transferred": self.transferred,
            "transferred_bytes": self.transferred_bytes,
            "manifests_fetched": self.manifests_fetched,
        }


def _blobs(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The config and layers of an image manifest, without non-distributable layers."""
    blobs = [document["config"]] if isinstance(document.get("config"), Mapping) else []
    for layer in document.get("layers") or []:
        media_type = str(layer.get("mediaType", ""))
        if "nondistributable" in media_type or "foreign" in media_type or layer.get("urls"):
            continue  # fetched by clients from their own URLs, never pushed
        blobs.append(layer)
    return blobs


BlobSource = Callable[[Mapping[str, Any]], Any]
#: A streamed upload cannot be replayed; a failed one is started again from the source.
UPLOAD_ATTEMPTS = 2
#: How long a copier waits for a blob another copier claimed, and how often it looks.
CLAIM_WAIT_SECONDS = 600.0
CLAIM_POLL_SECONDS = 0.5


class Transfer:
    """Copies images from one registry to another through a shared blob index."""

    def __init__(
        self, target: RegistryClient, index: BlobIndex, *, workers: int = 4, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.target = target
        self.index = index
        self.workers = workers
        self.sleep = sleep
        self.stats = TransferStats()
        self._lock = threading.Lock()
        self._blob_locks: dict[str, threading.Lock] = {}

    # -- blobs -------------------------------------------------------------------------
    def ensure_blob(self, repository: str, descriptor: Mapping[str, Any], fetch: BlobSource) -> None:
        """Make ``repository`` hold the blob: present, mounted, or uploaded from ``fetch``.

        Threads of this process are serialised per blob; copiers in other processes are
        coordinated through the index's claims, so a blob nobody holds is fetched once.
        """
        digest = str(descriptor["digest"])
        with self._lock:
            blob_lock = self._blob_locks.setdefault(digest, threading.Lock())
        with blob_lock:
            if self._present_or_mounted(repository, digest, fresh=False):
                return
            if not self.index.claim(digest):
                deadline = time.monotonic() + CLAIM_WAIT_SECONDS
                while time.monotonic() < deadline:  # another copier is fetching it: wait, then mount
                    self.sleep(CLAIM_POLL_SECONDS)
                    if self._present_or_mounted(repository, digest, fresh=True):
                        return
            self._upload(repository, descriptor, fetch)

    def _present_or_mounted(self, repository: str, digest: str, *, fresh: bool) -> bool:
        if self.target.has_blob(repository, digest):
            self.stats.add("present")
            self.index.record(digest, repository)
            return True
        for other in self.index.where(digest, fresh=fresh):
            if other != repository and self._mount(repository, digest, other):
                self.stats.add("mounted")
                self.index.record(digest, repository)
                return True
        return False

    def _upload(self, repository: str, descriptor: Mapping[str, Any], fetch: BlobSource) -> None:
        digest, size = str(descriptor["digest"]), int(descriptor["size"])
        for attempt in range(UPLOAD_ATTEMPTS):
            data = fetch(descriptor)
            try:
                self.target.upload_blob(repository, digest, size, data)
                break
            except RegistryError:
                if attempt + 1 == UPLOAD_ATTEMPTS:
                    raise
            finally:
                done = getattr(data, "release_conn", None) or getattr(data, "close", None)
                if done is not None:
                    done()
        self.stats.add("transferred", size)
        self.index.record(digest, repository)

    def _mount(self, repository: str, digest: str, other: str) -> bool:
        try:
            return self.target.mount_blob(repository, digest, other)
        except RegistryError:
            return False  # the other repository is gone or not readable: upload instead

    def ensure_blobs(self, repository: str, descriptors: Sequence[Mapping[str, Any]], fetch: BlobSource) -> None:
        unique = list({str(d["digest"]): d for d in descriptors}.values())
        if len(unique) <= 1 or self.workers <= 1:
            for descriptor in unique:
                self.ensure_blob(repository, descriptor, fetch)
            return
        with ThreadPoolExecutor(max_workers=min(self.workers, len(unique))) as pool:
            list(pool.map(lambda d: self.ensure_blob(repository, d, fetch), unique))

    # -- registry to registry ------------------------------------------------------------
    def copy(
        self,
        source: RegistryClient,
        source_repository: str,
        digest: str,
        repository: str,
        tag: str | None,
        *,
        keep: Callable[[Manifest], dict[str, Any] | None] | None = None,
        before_tag: Callable[[Manifest], None] | None = None,
    ) -> str:
        """Copy ``source_repository@digest`` to ``repository:tag``; returns the tag's digest.

        With ``tag`` None the image is written by digest only (untagged), as a build stages
        its base image next to the image it builds. ``before_tag`` may refuse the image
        (raise) once everything it points to is in the target, before the tag is written.

        ``keep`` sees the top manifest first: it may refuse it (raise), or return a rewritten
        index (platforms selected, annotations added) to write instead; the image manifests
        an index lists are always copied byte for byte.
        """
        top = self._fetch_manifest(source, source_repository, digest)
        rewritten = keep(top) if keep else None

        def fetch(descriptor: Mapping[str, Any]) -> Any:
            return source.open_blob(source_repository, str(descriptor["digest"]))

        if top.media_type in INDEX_MEDIA_TYPES:
            for child in (rewritten or top.document())["manifests"]:
                manifest = self._fetch_manifest(source, source_repository, str(child["digest"]))
                if manifest.media_type in INDEX_MEDIA_TYPES:
                    raise RegistryError(f"{source.host}/{source_repository}: nested indexes are not supported")
                self.ensure_blobs(repository, _blobs(manifest.document()), fetch)
                self.target.put_manifest(repository, manifest.digest, manifest.body, manifest.media_type)
            if rewritten is not None:
                body = json.dumps(rewritten, separators=(",", ":")).encode()
                return self.target.put_manifest(
                    repository, tag or sha256_digest(body), body, top.media_type or OCI_INDEX
                )
        else:
            self.ensure_blobs(repository, _blobs(top.document()), fetch)
        if before_tag is not None:
            before_tag(top)
        return self.target.put_manifest(repository, tag or top.digest, top.body, top.media_type)

    def _fetch_manifest(self, source: RegistryClient, repository: str, digest: str) -> Manifest:
        manifest = source.get_manifest(repository, digest)
        self.stats.add("manifests_fetched")
        return manifest

    # -- OCI layout to registry ------------------------------------------------------------
    def push_layout(self, layout: Path, index_digest: str, repository: str, tag: str) -> str:
        """Push the index ``index_digest`` of an OCI image layout, and what it lists, to ``repository:tag``."""
        blobs = layout / "blobs" / "sha256"

        def read(digest: str) -> bytes:
            data = (blobs / digest.split(":", 1)[1]).read_bytes()
            if sha256_digest(data) != digest:
                raise RegistryError(f"{layout}: blob {digest} does not match its content")
            return data

        def fetch(descriptor: Mapping[str, Any]) -> Any:
            return (blobs / str(descriptor["digest"]).split(":", 1)[1]).open("rb")

        index_body = read(index_digest)
        index = json.loads(index_body)
        for child in index["manifests"]:
            body = read(str(child["digest"]))
            self.ensure_blobs(repository, _blobs(json.loads(body)), fetch)
            self.target.put_manifest(repository, str(child["digest"]), body, str(child["mediaType"]))
        return self.target.put_manifest(repository, tag, index_body, str(index.get("mediaType") or OCI_INDEX))
