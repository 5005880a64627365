"""A small client for the OCI distribution API: manifests, blobs, uploads, mounts, tag lists.

Requests are authorised as the registry asks (:mod:`.auth`), retried within a bounded
:class:`~.retry.RetryPolicy`, and follow redirects themselves: blob downloads are sent to a
CDN (Docker Hub) or a pre-signed S3 URL (ECR), which must not receive the registry's
``Authorization``. Once a host has challenged, tokens are fetched before the first request
to a new repository, so a check costs exactly one manifest request. Every error names the
side (upstream or target), the host and the repository (:mod:`.errors`).

Loopback registries (``127.0.0.1:5000``, ``localhost``) are spoken to over plain HTTP, as
Docker does; every other registry over HTTPS.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO
from urllib.parse import urlencode, urljoin, urlsplit

import urllib3

from hubmirror.adapters.registry.auth import USER_AGENT, TokenAuth, scope_for
from hubmirror.adapters.registry.retry import RETRIED, Pacer, RetryPolicy, retry_after
from hubmirror.adapters.registry.stream import BlobStream, describe
from hubmirror.domain.oci import MANIFEST_MEDIA_TYPES, OCI_INDEX, sha256_digest
from hubmirror.domain.ratelimit import RateLimit
from hubmirror.domain.references import is_loopback
from hubmirror.domain.registry.errors import (
    RateLimitedError,
    RegistryError,
    RegistryUnavailableError,
    TagListTooLongError,
    error_for,
)
from hubmirror.domain.registry.model import (
    MANIFEST_MAX_BYTES,
    TAG_LIST_LIMIT,
    Credentials,
    Manifest,
    ManifestHead,
    Side,
)

#: Registries send blob downloads elsewhere: Docker Hub to its CDN, ECR to pre-signed S3 URLs.
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
#: Seconds without a byte (connecting, or within an answer) before a request gives up. A
#: registry that answers at all does so within a second or two; twenty leaves room for a
#: slow link and a busy CDN, and bounds a stalled blob download to that long.
IDLE_TIMEOUT_SECONDS = 20.0
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
#: The most :meth:`RegistryClient.get_blob` reads: configs are kilobytes, a signature's payload less.
SMALL_BLOB_MAX_BYTES = 8 * 1024 * 1024


class RegistryClient:
    """One registry host.

    Examples
    --------
    >>> client = RegistryClient("registry-1.docker.io")
    >>> client.base_url
    'https://registry-1.docker.io'
    """

    def __init__(
        self,
        host: str,
        credentials: Credentials | None = None,
        *,
        pool: urllib3.PoolManager | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = IDLE_TIMEOUT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        side: Side = "upstream",
        pacer: Pacer | None = None,
    ) -> None:
        self.host = host
        #: which side of the mirror this registry is ("upstream" or "target"), named in every error
        self.side = side
        self.credentials = credentials
        self.base_url = f"{'http' if is_loopback(host) else 'https'}://{host}"
        self.pool = pool or urllib3.PoolManager(num_pools=4, maxsize=16, retries=False)
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.sleep = sleep
        self.auth = TokenAuth(host, side, credentials, self.pool, timeout, retry=self.retry, sleep=sleep)
        #: spaces out manifest PUTs (ECR's throttled ``PutImage``) when set
        self.pacer = pacer
        #: False once the registry answered that it has no referrers API: not asked again
        self.referrers_api: bool | None = None

    # -- public API --------------------------------------------------------------------
    def where(self, repository: str) -> str:
        """How errors name a repository of this registry: ``upstream HOST/REPOSITORY``."""
        return f"{self.side} {self.host}/{repository}"

    def head_manifest(self, repository: str, reference: str) -> ManifestHead:
        """HEAD a manifest with all four manifest media types accepted."""
        response = self._request("HEAD", f"/v2/{repository}/manifests/{reference}", repository)
        digest = response.headers.get("Docker-Content-Digest")
        if not digest:
            raise RegistryError(
                f"{self.side} {self.host}/{repository}:{reference}: the registry sent no Docker-Content-Digest"
            )
        return ManifestHead(
            digest=digest,
            media_type=media_type(response.headers),
            size=int(response.headers.get("Content-Length") or 0),
            ratelimit=RateLimit.from_headers(response.headers),
        )

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """GET a manifest (on Docker Hub this counts as a pull)."""
        response = self._request("GET", f"/v2/{repository}/manifests/{reference}", repository, stream=True)
        body = response.read(MANIFEST_MAX_BYTES + 1)
        if len(body) > MANIFEST_MAX_BYTES:
            response.close()
            raise RegistryError(
                f"{self.side} {self.host}/{repository}:{reference}: the manifest is larger than "
                f"{MANIFEST_MAX_BYTES // 2**20} MiB, the most a registry accepts"
            )
        response.release_conn()
        digest = sha256_digest(body)
        claimed = response.headers.get("Docker-Content-Digest")
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(
                f"{self.side} {self.host}/{repository}@{reference}: the manifest's bytes hash to {digest}"
            )
        if claimed and claimed.startswith("sha256:") and claimed != digest:
            raise RegistryError(
                f"{self.side} {self.host}/{repository}:{reference}: Docker-Content-Digest {claimed} != {digest}"
            )
        return Manifest(
            digest=digest,
            media_type=media_type(response.headers),
            body=body,
            ratelimit=RateLimit.from_headers(response.headers),
        )

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        """PUT a manifest under a tag or digest; returns its digest."""
        self._request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            repository,
            push=True,
            body=body,
            headers={"Content-Type": media_type},
        )
        return sha256_digest(body)

    def get_blob(self, repository: str, digest: str, *, max_bytes: int = SMALL_BLOB_MAX_BYTES) -> bytes:
        """GET a small blob, such as an image config or a signature's payload (blob GETs are
        not pulls); one larger than ``max_bytes`` is refused once that much has arrived, whatever
        the registry claimed of its size."""
        response = self._request("GET", f"/v2/{repository}/blobs/{digest}", repository, stream=True)
        data = response.read(max_bytes + 1)
        if len(data) > max_bytes:
            response.close()
            raise RegistryError(f"{self.where(repository)}: blob {digest} is larger than {max_bytes} bytes")
        response.release_conn()
        if sha256_digest(data) != digest:
            raise RegistryError(f"{self.side} {self.host}/{repository}: blob {digest} does not match its content")
        return data

    def referrers(self, repository: str, digest: str) -> list[dict[str, Any]] | None:
        """The descriptors of the manifests whose ``subject`` is ``digest`` (the OCI 1.1
        referrers API; not a manifest request, so not a pull); None when the registry has no
        such API, which it says with a 404 (one that has it answers 200, an empty index for none).
        """
        if self.referrers_api is False:
            return None
        response = self._request(
            "GET",
            f"/v2/{repository}/referrers/{digest}",
            repository,
            headers={"Accept": OCI_INDEX},
            accept=(200, 404),
        )
        self.referrers_api = response.status != 404
        if response.status == 404:
            return None
        body = response.data
        try:
            document = json.loads(body[: MANIFEST_MAX_BYTES + 1])
        except ValueError:
            raise RegistryError(f"{self.where(repository)}: the referrers of {digest} are not JSON") from None
        listed = document.get("manifests") if isinstance(document, dict) else None
        if not isinstance(listed, list) or len(body) > MANIFEST_MAX_BYTES:
            raise RegistryError(f"{self.where(repository)}: the referrers of {digest} are not an image index")
        return [d for d in listed if isinstance(d, dict) and isinstance(d.get("digest"), str)]

    def has_blob(self, repository: str, digest: str) -> bool:
        """Whether the repository holds the blob (a HEAD; nothing is transferred)."""
        response = self._request("HEAD", f"/v2/{repository}/blobs/{digest}", repository, push=True, accept=(200, 404))
        return response.status == 200

    def blob_readable(self, repository: str, digest: str) -> bool:
        """Whether a GET would serve the blob, without downloading it.

        A registry may hold a blob it does not serve: ECR serves only layers an image manifest
        in the repository references (a blob uploaded for an image still being pushed is not).
        """
        response = self._request(
            "GET",
            f"/v2/{repository}/blobs/{digest}",
            repository,
            stream=True,
            follow=False,
            accept=(200, 404, *REDIRECTS),
        )
        if response.status == 200:
            response.close()  # a registry that serves the bytes itself: do not read them
        else:
            response.drain_conn()
            response.release_conn()
        return response.status != 404

    def open_blob(
        self,
        repository: str,
        digest: str,
        *,
        size: int | None = None,
        deadline: float | None = None,
    ) -> BlobStream:
        """Start streaming a blob; the caller reads it and releases the connection.

        The stream checks the bytes against ``digest`` (and ``size``) as they come and gives
        up at ``deadline`` (``time.monotonic()``); a connection that sends nothing for the
        client's timeout ends it too.
        """
        response = self._request("GET", f"/v2/{repository}/blobs/{digest}", repository, stream=True)
        return BlobStream(response, self.where(repository), digest, size=size, deadline=deadline)

    def mount_blob(self, repository: str, digest: str, source_repository: str) -> str | None:
        """Ask the registry to link a blob it already holds in another repository (no transfer).

        Returns None when the blob is mounted (``201``). A registry that does not mount it
        (ECR without ``BLOB_MOUNTING``, a blob the source repository does not reference)
        opens an upload session instead (``202``): its location is returned, for
        :meth:`upload_blob` to use at once.
        """
        query = urlencode({"mount": digest, "from": source_repository})
        response = self._request(
            "POST",
            f"/v2/{repository}/blobs/uploads/?{query}",
            repository,
            push=True,
            also_pull=source_repository,
            accept=(201, 202),
        )
        if response.status == 201:
            return None
        return self._absolute(response.headers.get("Location", ""))

    def upload_blob(
        self, repository: str, digest: str, size: int, data: BinaryIO | bytes | Any, *, session: str | None = None
    ) -> None:
        """Upload a blob whose digest and size are known, monolithically: POST (unless
        ``session`` is an open upload location), then one PUT with the digest and the bytes.

        Registries take this form (the distribution spec's "POST then PUT" monolithic push,
        https://github.com/opencontainers/distribution-spec/blob/main/spec.md#post-then-put),
        ECR among them: it is how containerd, and so BuildKit, pushes every blob
        (``core/remotes/docker/pusher.go``). One request fewer per blob than a PATCH with the
        bytes, then an empty PUT.
        """
        if session is None:
            started = self._request("POST", f"/v2/{repository}/blobs/uploads/", repository, push=True, accept=(202,))
            session = self._absolute(started.headers.get("Location", ""))
        separator = "&" if "?" in session else "?"
        self._request(
            "PUT",
            f"{session}{separator}{urlencode({'digest': digest})}",
            repository,
            push=True,
            body=data,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            accept=(201, 204),
        )

    def _absolute(self, location: str) -> str:
        if not location:
            raise RegistryError(f"{self.side} {self.host}: the registry sent no upload location")
        return location if location.startswith(("http://", "https://")) else self.base_url + location

    def tags(self, repository: str, *, page_size: int = 1000, limit: int = TAG_LIST_LIMIT) -> list[str]:
        """Every tag of a repository, following ``Link: <...>; rel="next"`` pages.

        A list longer than ``limit`` raises :class:`TagListTooLongError`: a selector such as
        ``latest: 1`` over part of a list would pick the wrong tag as if all were well.
        """
        path = f"/v2/{repository}/tags/list?{urlencode({'n': page_size})}"
        tags: list[str] = []
        while path:
            response = self._request("GET", path, repository)
            tags.extend(json.loads(response.data).get("tags") or [])
            if len(tags) > limit:
                raise TagListTooLongError(
                    f"{self.side} {self.host}/{repository}: the tag list has more than {limit} tags, the most "
                    "hubmirror reads (its tag-list limit); the entry is not synced rather than synced from part of it"
                )
            match = _LINK_NEXT.search(response.headers.get("Link", ""))
            path = match.group(1) if match else ""
            if path.startswith("http"):
                path = "/" + path.split("/", 3)[3]
        return tags

    # -- internals ---------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        repository: str,
        *,
        push: bool = False,
        body: bytes | BinaryIO | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        accept: tuple[int, ...] = (200, 201, 202),
        also_pull: str | None = None,
        follow: bool = True,
    ) -> urllib3.BaseHTTPResponse:
        """One request, authorised as the registry asks, redirects followed, with bounded retries.

        ``path`` may be an absolute URL (an upload location). A streamed ``body`` cannot be
        sent twice, so an answer that would need a retry raises at once instead.
        """
        scope = scope_for(repository, push=push, also_pull=also_pull)
        request_headers = {"User-Agent": USER_AGENT, **(headers or {})}
        if "/manifests/" in path and method in ("GET", "HEAD"):
            request_headers["Accept"] = ", ".join(MANIFEST_MEDIA_TYPES)
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        where = self.where(repository)
        replayable = body is None or isinstance(body, bytes)
        attempt = redirects = 0
        challenged = False
        pacer = self.pacer if method == "PUT" and "/manifests/" in path else None
        paced_until = 0.0
        while True:
            if pacer is not None:
                pacer.wait()
            try:
                response = self._send(method, url, request_headers, body=body, stream=stream, scope=scope)
            except urllib3.exceptions.HTTPError as exc:
                if not self._again(attempt, replayable, None):
                    raise RegistryUnavailableError(f"{where}: cannot reach the registry: {describe(exc)}") from exc
                attempt += 1
                continue
            status = response.status
            if pacer is not None and status == 429:
                pacer.refused()
            elif pacer is not None and status in accept:
                pacer.passed()
            if status in accept:
                return response
            answer = response.read() if stream else response.data  # an error's body says why
            if stream:
                response.release_conn()
            if follow and status in REDIRECTS and method in ("GET", "HEAD") and response.headers.get("Location"):
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    raise RegistryError(f"{where}: more than {MAX_REDIRECTS} redirects for {path}", status=status)
                url = urljoin(url, response.headers["Location"])
                continue
            if status == 401 and not challenged and replayable and self._on_host(url):
                challenged = True
                self.auth.learn(response.headers.get("WWW-Authenticate", ""), where)
                self.auth.forget(scope)
                continue
            if pacer is not None and status == 429:
                # sent again at the pace this 429 cut, for as long as the policy's backoff would wait
                paced_until = paced_until or time.monotonic() + self.retry.patience
                if not replayable or time.monotonic() > paced_until:
                    raise self._exhausted(status, response.headers, attempt, where)
                attempt += 1
                continue
            if status in RETRIED:
                if not self._again(attempt, replayable, retry_after(response.headers)):
                    raise self._exhausted(status, response.headers, attempt, where)
                attempt += 1
                continue
            raise error_for(
                status,
                answer,
                where=where,
                path=path,
                url=url,
                base_url=self.base_url,
                credentials=bool(self.credentials),
            )

    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        *,
        body: bytes | BinaryIO | None,
        stream: bool,
        scope: str,
    ) -> urllib3.BaseHTTPResponse:
        """One attempt, authorised (:meth:`_authorise`); redirects are the caller's to follow."""
        self._authorise(headers, url, scope)
        return self.pool.request(
            method, url, headers=headers, body=body, timeout=self.timeout, redirect=False, preload_content=not stream
        )

    def _authorise(self, headers: dict[str, str], url: str, scope: str) -> None:
        """Set the registry's ``Authorization`` for a request to the registry's own host only: a
        redirect to another host (a CDN, a pre-signed S3 URL) carries its own authentication,
        and S3 refuses a request that also sends an ``Authorization`` header."""
        headers.pop("Authorization", None)
        if self._on_host(url):
            authorization = self.auth.header(scope)
            if authorization:
                headers["Authorization"] = authorization

    def _on_host(self, url: str) -> bool:
        return urlsplit(url).netloc == urlsplit(self.base_url).netloc

    def _again(self, attempt: int, replayable: bool, wait: float | None) -> bool:
        """Whether to try once more (after sleeping as the policy says): not past the last
        attempt, and the body can be sent again."""
        return replayable and self.retry.again(attempt, wait, self.sleep)

    def _exhausted(self, status: int, headers: Mapping[str, str], attempt: int, where: str) -> RegistryError:
        """The error once a retried answer has come back on every attempt."""
        if status == 429:
            return RateLimitedError(
                f"{where}: the registry answered 429 Too Many Requests {attempt + 1} times",
                retry_after=retry_after(headers),
                ratelimit=RateLimit.from_headers(headers),
            )
        return RegistryUnavailableError(f"{where}: the registry answered {status} {attempt + 1} times", status=status)


def media_type(headers: Mapping[str, str]) -> str:
    """The media type of a ``Content-Type`` header, without its parameters."""
    return (headers.get("Content-Type") or "").split(";")[0].strip()
