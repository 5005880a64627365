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

import contextlib
import itertools
import json
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypedDict, Unpack

from hubmirror.adapters.registry.client import RegistryClient
from hubmirror.copying.blobindex import BlobIndex, Claim
from hubmirror.domain.oci import (
    DOCKER_LIST,
    INDEX_MEDIA_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    docker_list_refusal,
    sha256_digest,
)
from hubmirror.domain.registry.errors import BlobDownloadError, RegistryError
from hubmirror.domain.registry.model import LAYER_MAX_BYTES, Manifest


@dataclass
class TransferStats:
    """What copies cost: blobs skipped (present), mounted, relayed (uploaded from a copy this
    job or the target already had: a registry that would not mount) and transferred
    (fetched from the source and uploaded)."""

    present: int = 0
    mounted: int = 0
    relayed: int = 0
    transferred: int = 0
    transferred_bytes: int = 0
    manifests_fetched: int = 0
    #: local copies dropped to keep under the spool's bound, and blobs fetched from the source
    #: again because their copy had been dropped
    spool_evicted: int = 0
    refetched: int = 0
    spool_peak_bytes: int = 0
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
            "relayed": self.relayed,
            "transferred": self.transferred,
            "transferred_bytes": self.transferred_bytes,
            "manifests_fetched": self.manifests_fetched,
            "spool_evicted": self.spool_evicted,
            "refetched": self.refetched,
            "spool_peak_bytes": self.spool_peak_bytes,
        }


class RefusedImageError(RegistryError):
    """The image itself, as it is, can never be written to the target (a nested index, a blob
    over ECR's size limit, a manifest the target refuses as invalid): no run changes that until
    the upstream digest or the recipe does, so the job remembers it. A refusal of anything
    copied beside the image (a signature, a referrer) is not one: those change on their own, and
    the job never lets them cost the image.
    """


def _blobs(document: Mapping[str, Any], where: str = "the image") -> list[Descriptor]:
    """The config and layers of an image manifest, without non-distributable layers.

    Only the media type makes a layer non-distributable (Docker's ``foreign``, OCI's
    ``nondistributable``): a layer that merely lists ``urls`` is on the registry too, and is
    copied (https://github.com/opencontainers/image-spec/blob/main/layer.md#non-distributable-layers).
    A blob whose declared size no target could take is refused before any byte moves.
    """
    blobs = [document["config"]] if isinstance(document.get("config"), Mapping) else []
    for layer in document.get("layers") or []:
        media_type = str(layer.get("mediaType", ""))
        if "nondistributable" in media_type or "foreign" in media_type:
            continue  # fetched by clients from their own URLs, never pushed
        blobs.append(layer)
    for blob in blobs:
        size = blob.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= LAYER_MAX_BYTES:
            raise RefusedImageError(
                f"{where}: blob {blob.get('digest')} declares a size of {size!r} bytes; "
                f"a layer is at most {LAYER_MAX_BYTES} bytes (ECR's limit)"
            )
    return blobs


BlobSource = Callable[[Descriptor], Any]
#: A streamed upload cannot be replayed; a failed one is started again from the source.
UPLOAD_ATTEMPTS = 2
#: How often a copier waiting for a blob another copier claimed looks at it again.
CLAIM_POLL_SECONDS = 0.5
#: How often a copier renews the claims it holds (see :data:`hubmirror.copying.blobindex.CLAIM_STALE_SECONDS`).
CLAIM_HEARTBEAT_SECONDS = 10.0


class _Tee:
    """Reads a stream for an upload and keeps what it read in a local file."""

    def __init__(self, source: Any, path: Path) -> None:
        self.source = source
        self.path = path
        self._file = path.open("wb")

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.source.read(size)
        self._file.write(data)
        return data

    def close(self) -> None:
        self._file.close()

    def keep(self) -> Path:
        kept = self.path.with_suffix("")
        self.path.rename(kept)
        return kept


class Transfer:
    """Copies images from one registry to another through a shared blob index."""

    def __init__(
        self,
        target: RegistryClient,
        index: BlobIndex,
        *,
        workers: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        spool_limit: int | None = None,
    ) -> None:
        self.target = target
        self.index = index
        self.workers = workers
        self.sleep = sleep
        self.stats = TransferStats()
        self._lock = threading.Lock()
        self._blob_locks: dict[str, threading.Lock] = {}
        #: blobs fetched from a source by this process, kept on disk for other repositories
        #: (a blob uploaded to one repository is readable from it only once an image there
        #: references it), least recently used first; at most ``spool_limit`` bytes of them
        self._spooled: OrderedDict[str, tuple[Path, int]] = OrderedDict()
        self._spool: Path | None = None
        self.spool_limit = spool_limit
        self._spool_bytes = 0
        self._dropped: set[str] = set()
        self._names = itertools.count()  # each local copy a file of its own
        #: uploads from the source under way in this process, by digest
        self._inflight: dict[str, Future[None]] = {}
        #: claims this process holds (renewed by a heartbeat thread until released or settled)
        self._held: set[str] = set()
        #: blobs uploaded whose place the blob index may not name (others kept changing the entry)
        self._unrecorded: set[str] = set()
        self._claims = threading.Lock()  # a heartbeat and a release of one claim never cross
        self._closing = threading.Event()
        self._heartbeat: threading.Thread | None = None

    # -- blobs -------------------------------------------------------------------------
    def ensure_blobs(
        self,
        repository: str,
        descriptors: Sequence[Descriptor],
        fetch: BlobSource,
        *,
        held: list[str] | None = None,
        deadline: float | None = None,
    ) -> None:
        """Make ``repository`` hold every blob: present, mounted, relayed, or uploaded from ``fetch``.

        Claims taken are added to ``held``: the caller settles them once its image is written
        (:meth:`settle`), or releases them if it failed (:meth:`let_go`). ``deadline``
        (``time.monotonic()``) bounds the wait for another copier's blob.

        A blob another copier fetched becomes readable (and mountable) in the target only once
        an image manifest there references it (ECR's rule), that is once that copier's image
        is complete. So a copier that finds a blob claimed waits for the claimer's image; to
        make such waits end, claims are taken in digest order, one blob after the other (a
        chain of copiers each waiting on a larger digest cannot close into a cycle), while
        the data of the blobs already claimed moves in parallel.
        """
        unique = sorted({str(d["digest"]): d for d in descriptors}.values(), key=lambda d: str(d["digest"]))
        if not unique:
            return
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(unique)))) as pool:
            present = list(pool.map(lambda d: self._present(repository, str(d["digest"])), unique))
            moving = []
            for descriptor, there in zip(unique, present, strict=True):
                if not there:
                    work = self._plan_blob(repository, descriptor, fetch, held, deadline)
                    if work is not None:
                        moving.append(pool.submit(work))
            for future in moving:
                future.result()

    def _plan_blob(
        self,
        repository: str,
        descriptor: Descriptor,
        fetch: BlobSource,
        held: list[str] | None,
        deadline: float | None,
    ) -> Callable[[], None] | None:
        """Settle how the blob gets there; returns the data-moving work, or None when done."""
        digest = str(descriptor["digest"])
        with self._lock:
            blob_lock = self._blob_locks.setdefault(digest, threading.Lock())
        with blob_lock:  # one thread of this process at a time plans a blob
            with self._lock:
                inflight = self._inflight.get(digest)
            if inflight is not None:
                with contextlib.suppress(RegistryError, OSError):
                    inflight.result()  # another image of this job is uploading it: wait for that upload
            if self._from_spool(repository, descriptor) or self._from_target(repository, descriptor, fresh=False):
                return None
            claimed = self.index.claim(digest)
            if not claimed and self._wait_for_claimer(repository, descriptor, deadline):
                return None
            # the claim is this copier's. A first claim ever: nobody fetched the blob, and what
            # was just seen stands. A claim taken over: what was seen before may be stale, as a
            # claim released meanwhile leaves the blob in this repository, or readable in another
            if claimed is not Claim.FIRST and (
                self._present(repository, digest) or self._from_target(repository, descriptor, fresh=True)
            ):
                self.index.release(digest)
                return None
            self._hold(digest, held)
            uploaded: Future[None] = Future()
            with self._lock:
                self._inflight[digest] = uploaded

        def upload() -> None:
            try:
                self._upload(repository, descriptor, fetch, spool=True)
            except BaseException as exc:
                self.let_go([digest])  # a claim dies with its transfer: others need not wait
                uploaded.set_exception(exc)
                raise
            else:
                self.stats.add("transferred", int(descriptor["size"]))
                uploaded.set_result(None)
            finally:
                with self._lock:
                    self._inflight.pop(digest, None)

        return upload

    def _wait_for_claimer(self, repository: str, descriptor: Descriptor, deadline: float | None) -> bool:
        """Wait for the blob another copier claimed to become readable in the target, then take
        it from there; False as soon as that copier lets the claim go, or its heartbeat stops
        (fetch it then). The claimer's own deadlines bound the wait; ``deadline`` bounds it too."""
        digest = str(descriptor["digest"])
        while True:  # a look at once: what this copier knew of the index may predate the claimer's image
            if self._present(repository, digest) or self._from_spool(repository, descriptor):
                return True
            if self._from_target(repository, descriptor, fresh=True):
                return True
            if self.index.released(digest) and self.index.claim(digest):
                return False
            if deadline is not None and time.monotonic() > deadline:
                raise BlobDownloadError(
                    f"blob {digest}: another copier still holds it at the item's deadline; a later run copies it"
                )
            self.sleep(CLAIM_POLL_SECONDS)

    def _hold(self, digest: str, held: list[str] | None) -> None:
        with self._lock:
            self._held.add(digest)
            if self._heartbeat is None:
                self._heartbeat = threading.Thread(target=self._keep_claims, name="claim-heartbeat", daemon=True)
                self._heartbeat.start()
        if held is not None:
            held.append(digest)

    def _keep_claims(self) -> None:
        while not self._closing.wait(CLAIM_HEARTBEAT_SECONDS):
            with self._lock:
                held = sorted(self._held)
            for digest in held:
                with self._claims, contextlib.suppress(Exception):  # a missed beat is retried; many let others in
                    if digest in self._held:  # not released since: a beat must not revive a released claim
                        self.index.heartbeat(digest)

    def settle(self, digests: Sequence[str]) -> None:
        """The image that needed these claims is written: each blob is readable in its
        repository, which the blob index names, so a copier waiting for one takes it from
        there. The claims are dropped without a write (no more heartbeats; they lapse after
        :data:`~hubmirror.copying.blobindex.CLAIM_STALE_SECONDS`): one S3 request saved per
        new blob. A claim on a blob whose place the index may not name is released, so that a
        waiting copier fetches it at once rather than wait for the lapse."""
        with self._lock:
            unnamed = [d for d in digests if d in self._unrecorded]
            self._held.difference_update(d for d in digests if d not in self._unrecorded)
        self.let_go(unnamed)

    def let_go(self, digests: Sequence[str]) -> None:
        """Release claims: the image that needed them failed, or the index may not name their blobs."""
        for digest in digests:
            with self._claims:
                with self._lock:
                    if digest not in self._held:
                        continue
                    self._held.discard(digest)
                with contextlib.suppress(Exception):  # an unreleased claim goes stale when its heartbeat stops
                    self.index.release(digest)

    def _present(self, repository: str, digest: str) -> bool:
        if not self.target.has_blob(repository, digest):
            return False
        self.stats.add("present")
        self.index.record(digest, repository)
        return True

    def _from_spool(self, repository: str, descriptor: Descriptor) -> bool:
        """Upload a blob this process fetched before, from its local copy."""
        digest = str(descriptor["digest"])
        with self._lock:
            kept = self._spooled.get(digest)
            if kept is not None:
                self._spooled.move_to_end(digest)  # used: the last to be dropped
        if kept is None:
            return False
        try:
            self._upload(repository, descriptor, lambda _: kept[0].open("rb"))
        except FileNotFoundError:
            return False  # dropped meanwhile to keep under the bound: taken from elsewhere
        self.stats.add("relayed")
        return True

    def _spools(self, size: int) -> bool:
        """Whether to keep a local copy of a blob of ``size`` bytes about to be fetched; if so,
        it counts against the bound from now on (while it downloads too), and the least recently
        used copies are dropped to make room. A blob larger than the bound, or one that would
        not fit beside the downloads already counted, is not kept."""
        if self.spool_limit is not None and size > self.spool_limit:
            return False
        dropped: list[Path] = []
        with self._lock:
            self._spool_bytes += size
            while self.spool_limit is not None and self._spool_bytes > self.spool_limit and self._spooled:
                old, (old_path, old_size) = self._spooled.popitem(last=False)
                self._spool_bytes -= old_size
                self._dropped.add(old)
                dropped.append(old_path)
                self.stats.spool_evicted += 1
            kept = self.spool_limit is None or self._spool_bytes <= self.spool_limit
            if not kept:  # other downloads fill the bound: this one streams without a copy
                self._spool_bytes -= size
            self.stats.spool_peak_bytes = max(self.stats.spool_peak_bytes, self._spool_bytes)
        for old_path in dropped:
            old_path.unlink(missing_ok=True)
        return kept

    def _keep(self, digest: str, path: Path, size: int) -> None:
        """Keep a fetched blob's local copy (counted since :meth:`_spools`)."""
        with self._lock:
            replaced = self._spooled.pop(digest, None)
            self._spooled[digest] = (path, size)
            if replaced is not None:
                self._spool_bytes -= replaced[1]
        if replaced is not None and replaced[0] != path:
            replaced[0].unlink(missing_ok=True)

    def _unspool(self, size: int, part: Path | None) -> None:
        """Give back the room of a copy that was not kept (its upload failed)."""
        with self._lock:
            self._spool_bytes -= size
        if part is not None:
            part.unlink(missing_ok=True)

    def _from_target(self, repository: str, descriptor: Descriptor, *, fresh: bool) -> bool:
        """Take the blob from a target repository that can serve it: mount it; where the
        registry opens an upload session instead (ECR without ``BLOB_MOUNTING``), copy it
        within the target through that session at once."""
        digest = str(descriptor["digest"])
        for other in self.index.where(digest, fresh=fresh):
            if other == repository:
                continue
            try:
                if not self.target.blob_readable(other, digest):
                    continue  # uploaded there, but no image references it yet: not readable
                session = self.target.mount_blob(repository, digest, other)
                if session is None:
                    self.stats.add("mounted")
                    self._record(digest, repository)
                    return True
                self._upload(repository, descriptor, partial(self._target_blob, other), session=session)
            except RegistryError:
                continue  # the other repository is gone or not readable
            self.stats.add("relayed")
            return True
        return False

    def _target_blob(self, repository: str, descriptor: Descriptor) -> Any:
        return self.target.open_blob(repository, str(descriptor["digest"]))

    def _upload(
        self,
        repository: str,
        descriptor: Descriptor,
        fetch: BlobSource,
        *,
        session: str | None = None,
        spool: bool = False,
    ) -> None:
        digest, size = str(descriptor["digest"]), int(descriptor["size"])
        spool = spool and self._spools(size)
        copy: _Tee | None = None
        try:
            for attempt in range(UPLOAD_ATTEMPTS):
                data = fetch(descriptor)
                if spool:
                    copy = _Tee(data, self._spool_dir() / f"{digest.replace(':', '-')}-{next(self._names)}.part")
                try:
                    self.target.upload_blob(repository, digest, size, copy or data, session=session)
                    break
                except RegistryError:
                    if attempt + 1 == UPLOAD_ATTEMPTS:
                        raise
                    session = None  # the failed session is spent: the retry opens its own
                    if copy is not None:
                        copy.path.unlink(missing_ok=True)  # the retry writes a copy of its own
                finally:
                    done = getattr(data, "release_conn", None) or getattr(data, "close", None)
                    if done is not None:
                        done()
                    if copy is not None:
                        copy.close()
        except BaseException:
            if spool:
                self._unspool(size, copy.path if copy is not None else None)
            raise
        if copy is not None:
            with self._lock:
                again = digest in self._dropped
            if again:
                self.stats.add("refetched")
            self._keep(digest, copy.keep(), size)
        self._record(digest, repository)

    def _record(self, digest: str, repository: str) -> None:
        """Tell the blob index that ``digest`` now lives in ``repository`` (see :meth:`settle`)."""
        recorded = self.index.record(digest, repository)
        with self._lock:
            if recorded:
                self._unrecorded.discard(digest)
            else:
                self._unrecorded.add(digest)

    def _spool_dir(self) -> Path:
        with self._lock:
            if self._spool is None:
                self._spool = Path(tempfile.mkdtemp(prefix="hubmirror-blobs-"))
            return self._spool

    def close(self) -> None:
        """Release every claim still held; remove the local copies of the blobs fetched."""
        self._closing.set()
        with self._lock:
            held = sorted(self._held)
        self.let_go(held)
        with self._lock:
            spool, self._spool = self._spool, None
            self._spooled.clear()
            self._dropped.clear()
            self._spool_bytes = 0
        if spool is not None:
            shutil.rmtree(spool, ignore_errors=True)

    # -- an image, from a registry or an OCI layout ---------------------------------------
    def copy(
        self,
        source: RegistryClient,
        source_repository: str,
        digest: str,
        repository: str,
        tag: str | None,
        **options: Unpack[PushOptions],
    ) -> str:
        """Copy ``source_repository@digest`` from a registry to ``repository:tag`` (see :meth:`push`)."""
        return self.push(RegistrySource(source, source_repository), digest, repository, tag, **options)

    def push_layout(self, layout: Path, index_digest: str, repository: str, tag: str) -> str:
        """Push the index ``index_digest`` of an OCI image layout, and what it lists, to ``repository:tag``."""
        return self.push(LayoutSource(layout), index_digest, repository, tag)

    def push(
        self,
        source: ImageSource,
        digest: str,
        repository: str,
        tag: str | None,
        *,
        keep: Callable[[Manifest], dict[str, Any] | None] | None = None,
        before_tag: Callable[[Manifest], None] | None = None,
        deadline: float | None = None,
    ) -> str:
        """Write the image ``digest`` of ``source`` to ``repository:tag``; returns the tag's digest.

        Blobs first (see :meth:`ensure_blobs`), then each image manifest byte for byte, then
        the index, the tag last. With ``tag`` None the image is written by digest only
        (untagged), as a build stages its base image next to the image it builds.
        ``before_tag`` may refuse the image (raise) once everything it points to is in the
        target, before the tag is written.

        ``keep`` sees the top manifest first: it may refuse it (raise), or return a rewritten
        index (platforms selected, annotations added; its own ``mediaType``) to write
        instead; the image manifests an index lists are always copied byte for byte.

        ``deadline`` (``time.monotonic()``) ends a blob download, or a wait for another
        copier's blob, that is still going on then. The claims the copy took are released if it
        raises, and left to lapse once the image is written (:meth:`settle`).
        """
        held: list[str] = []
        try:
            landed = self._write(
                source, digest, repository, tag, held=held, keep=keep, before_tag=before_tag, deadline=deadline
            )
        except BaseException:
            self.let_go(held)  # the others need not wait: they fetch what this copy claimed
            raise
        self.settle(held)
        return landed

    def _write(
        self,
        source: ImageSource,
        digest: str,
        repository: str,
        tag: str | None,
        *,
        held: list[str],
        keep: Callable[[Manifest], dict[str, Any] | None] | None,
        before_tag: Callable[[Manifest], None] | None,
        deadline: float | None,
    ) -> str:
        """:meth:`push`'s work: blobs, image manifests, then the tag; claims taken go to ``held``."""
        top = self._manifest(source, digest)
        rewritten = keep(top) if keep else None
        refused = docker_list_refusal(top.document()) if top.media_type == DOCKER_LIST and not rewritten else None
        if refused:  # its images would be written first and stay, untagged
            raise RefusedImageError(
                f"{self.target.where(repository)}: ECR refuses this Docker manifest list as it is "
                f"(MANIFEST_INVALID: {refused}); nothing was written"
            )
        fetch = partial(source.blob, deadline=deadline)
        ensure = partial(self.ensure_blobs, repository, fetch=fetch, held=held, deadline=deadline)
        if top.media_type in INDEX_MEDIA_TYPES:
            listed = (rewritten or top.document())["manifests"]
            children = []  # every listed manifest read and judged before a byte moves
            for child_digest in dict.fromkeys(str(child["digest"]) for child in listed):  # each fetched once
                manifest = self._manifest(source, child_digest)
                if manifest.media_type in INDEX_MEDIA_TYPES:
                    raise RefusedImageError(
                        f"{source.where}: {manifest.digest} is an index inside an index; "
                        "nested indexes are not supported"
                    )
                children.append((manifest, _blobs(manifest.document(), source.where)))
            for manifest, blobs in children:
                ensure(blobs)
                self._put(repository, manifest.digest, manifest.body, manifest.media_type)
            if rewritten is not None:
                body = json.dumps(rewritten, separators=(",", ":")).encode()
                media_type = str(rewritten.get("mediaType") or OCI_INDEX)
                if before_tag is not None:
                    before_tag(top)
                return self._put(repository, tag or sha256_digest(body), body, media_type)
        else:
            ensure(_blobs(top.document(), source.where))
        if before_tag is not None:
            before_tag(top)
        return self._put(repository, tag or top.digest, top.body, top.media_type)

    def _put(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        """Write one of the image's own manifests; the target's ``MANIFEST_INVALID`` refuses the image."""
        try:
            return self.target.put_manifest(repository, reference, body, media_type)
        except RegistryError as exc:
            if exc.status == 400 and "MANIFEST_INVALID" in str(exc) and not isinstance(exc, RefusedImageError):
                raise RefusedImageError(str(exc), status=exc.status) from exc
            raise

    def _manifest(self, source: ImageSource, digest: str) -> Manifest:
        manifest = source.manifest(digest)
        if source.pulls:
            self.stats.add("manifests_fetched")
        return manifest


class PushOptions(TypedDict, total=False):
    """The options of :meth:`Transfer.push`, for the callers that pass them on."""

    keep: Callable[[Manifest], dict[str, Any] | None] | None
    before_tag: Callable[[Manifest], None] | None
    deadline: float | None


class ImageSource(Protocol):
    """Where an image's manifests and blobs come from: a registry, or an OCI layout on disk."""

    #: named in every error: ``upstream HOST/REPOSITORY``, or the layout's path
    where: str
    #: whether reading a manifest costs a pull (counted in :class:`TransferStats`)
    pulls: bool

    def manifest(self, digest: str) -> Manifest: ...
    def blob(self, descriptor: Descriptor, *, deadline: float | None = None) -> Any: ...


class RegistrySource:
    """An image in a registry repository: manifest GETs (pulls on Docker Hub), streamed blobs."""

    pulls = True

    def __init__(self, client: RegistryClient, repository: str) -> None:
        self.client = client
        self.repository = repository
        self.where = client.where(repository)

    def manifest(self, digest: str) -> Manifest:
        return self.client.get_manifest(self.repository, digest)

    def blob(self, descriptor: Descriptor, *, deadline: float | None = None) -> Any:
        digest, size = str(descriptor["digest"]), int(descriptor["size"])
        return self.client.open_blob(self.repository, digest, size=size, deadline=deadline)


class LayoutSource:
    """An image in an OCI image layout (what buildah writes): files under ``blobs/sha256/``."""

    pulls = False

    def __init__(self, layout: Path) -> None:
        self.blobs = layout / "blobs" / "sha256"
        self.where = str(layout)

    def _path(self, digest: str) -> Path:
        return self.blobs / digest.split(":", 1)[1]

    def manifest(self, digest: str) -> Manifest:
        body = self._path(digest).read_bytes()
        if sha256_digest(body) != digest:
            raise RegistryError(f"{self.where}: blob {digest} does not match its content")
        document = json.loads(body)
        fallback = OCI_INDEX if "manifests" in document else OCI_MANIFEST
        return Manifest(digest=digest, media_type=str(document.get("mediaType") or fallback), body=body)

    def blob(self, descriptor: Descriptor, *, deadline: float | None = None) -> Any:
        return self._path(str(descriptor["digest"])).open("rb")
