"""A small client for the OCI distribution API: HEAD, GET and PUT of manifests, tag lists.

Authentication follows what the registry asks for in ``WWW-Authenticate``: a bearer
challenge (Docker Hub, ghcr.io, quay.io, public.ecr.aws) sends the client to the realm for
a token scoped to the repository, with basic auth when credentials are known; a basic
challenge (ECR, a plain Distribution registry) gets the credentials directly. The realm,
service and scope come from the challenge, never assumed. Once a host has challenged,
tokens are fetched before the first request to a new repository, so a check costs exactly
one manifest request.

Loopback registries (``127.0.0.1:5000``, ``localhost``) are spoken to over plain HTTP, as
Docker does; every other registry over HTTPS.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import queue
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import urlencode, urljoin, urlsplit

import urllib3

from hubmirror.domain.oci import MANIFEST_MEDIA_TYPES, sha256_digest
from hubmirror.domain.ratelimit import RateLimit
from hubmirror.domain.references import is_loopback

USER_AGENT = "hubmirror/1"
#: The most tags read from one repository (the plan's setting ``tag_list_limit``).
TAG_LIST_LIMIT = 100_000
#: Registries send blob downloads elsewhere: Docker Hub to its CDN, ECR to pre-signed S3 URLs.
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
#: The largest manifest hubmirror reads: the size the OCI distribution spec asks registries
#: to accept at least ("Registries SHOULD accept manifests of at least 4 megabytes",
#: https://github.com/opencontainers/distribution-spec/blob/main/spec.md), and the limit of
#: Distribution 3. A larger one may be refused by the target; reading it first would cost a pull.
MANIFEST_MAX_BYTES = 4 * 2**20
#: The largest layer ECR stores: "Maximum layer size: 52,000 MiB", not adjustable
#: (https://docs.aws.amazon.com/AmazonECR/latest/userguide/service-quotas.html).
LAYER_MAX_BYTES = 52_000 * 2**20
#: Seconds without a byte (connecting, or within an answer) before a request gives up. A
#: registry that answers at all does so within a second or two; twenty leaves room for a
#: slow link and a busy CDN, and bounds a stalled blob download to that long.
IDLE_TIMEOUT_SECONDS = 20.0
_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class RegistryError(RuntimeError):
    """A registry request failed; ``reason`` is a short word for reports."""

    reason = "registry"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFoundError(RegistryError):
    """The registry answered 404: what was asked for does not exist there."""

    reason = "not found"


class ManifestUnknownError(NotFoundError):
    """No manifest has that tag or digest in the repository (``MANIFEST_UNKNOWN``)."""


class BlobUnknownError(NotFoundError):
    """The repository holds no such blob, or does not serve it (``BLOB_UNKNOWN``)."""


class NameUnknownError(NotFoundError):
    """The repository does not exist (``NAME_UNKNOWN``)."""


class AuthenticationError(RegistryError):
    """The registry refused our credentials, or asks for some we do not have."""

    reason = "authentication"


class RateLimitedError(RegistryError):
    """The registry answered 429 and kept doing so through the bounded retries."""

    reason = "rate limited"

    def __init__(self, message: str, *, retry_after: float | None = None, ratelimit: RateLimit | None = None) -> None:
        super().__init__(message, status=429)
        self.retry_after = retry_after
        self.ratelimit = ratelimit


class TagListTooLongError(RegistryError):
    """A repository's tag list is longer than hubmirror reads."""

    reason = "tag list too long"


class RegistryUnavailableError(RegistryError):
    """The registry could not be reached or answered with a server error."""

    reason = "unavailable"


class BlobDownloadError(RegistryUnavailableError):
    """A blob's bytes did not arrive whole from its source: dropped, cut short, too slow, or
    not the bytes its digest names. The source is to blame, whoever was receiving them."""

    reason = "download"


_OBJECT_REPR = re.compile(r"<[^<>]*? object at 0x[0-9a-fA-F]+>:?\s*")
_POOL_REPR = re.compile(r"(?:\w*HTTPS?ConnectionPool\([^)]*\)|^None):?\s*")  # urllib3 writes "None:" for no pool


def describe(exc: BaseException) -> str:
    """What went wrong with a connection, in plain words, without Python object reprs.

    >>> describe(urllib3.exceptions.ReadTimeoutError(None, "/v2/", "Read timed out. (read timeout=20)"))
    'no answer in time (Read timed out. (read timeout=20))'
    """
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        return describe(exc.reason)
    text = _POOL_REPR.sub("", _OBJECT_REPR.sub("", str(exc))).strip(" :")
    if isinstance(exc, urllib3.exceptions.NewConnectionError | ConnectionRefusedError):
        plain = "connection refused" if "refused" in text.lower() else "cannot connect"
    elif isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError):
        plain = "no answer in time"
    elif isinstance(exc, urllib3.exceptions.SSLError):
        plain = "TLS failed"
    elif isinstance(exc, urllib3.exceptions.ProtocolError | ConnectionError):
        plain = "the connection was dropped"
    else:
        plain = type(exc).__name__
    return f"{plain} ({text})" if text and text != plain else plain


@dataclass(frozen=True)
class Credentials:
    """A user name and password (or token) for one registry. Never logged."""

    username: str
    password: str = field(repr=False)

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


@dataclass(frozen=True)
class ManifestHead:
    """What a manifest HEAD tells: digest, media type, size and the rate-limit headers."""

    digest: str
    media_type: str
    size: int
    ratelimit: RateLimit | None = None


@dataclass(frozen=True)
class Manifest:
    """A fetched manifest: its exact bytes, digest, media type and parsed document."""

    digest: str
    media_type: str
    body: bytes
    ratelimit: RateLimit | None = None

    def document(self) -> dict[str, Any]:
        value = json.loads(self.body)
        if not isinstance(value, dict):
            raise RegistryError("the manifest is not a JSON object")
        return value


class BlobStream:
    """A blob being downloaded, read by an upload: checks that the bytes arrive whole.

    Any failure while reading (dropped connection, no byte for the client's idle timeout,
    the ``deadline`` passed, fewer or other bytes than the digest names) raises
    :class:`BlobDownloadError` naming the source. The error is neither an ``OSError`` nor a
    urllib3 error, so the upload reading this stream lets it through unchanged instead of
    taking it for a failure of its own connection.

    A thread reads the download ahead, a few chunks at most: a read that blocks on a source
    trickling bytes then still ends at the deadline.
    """

    CHUNK = 256 * 1024
    AHEAD = 4

    def __init__(
        self,
        response: urllib3.BaseHTTPResponse,
        where: str,
        digest: str,
        *,
        size: int | None = None,
        deadline: float | None = None,
    ) -> None:
        self._response = response
        self._where = where
        self.digest = digest
        self.size = size
        self.deadline = deadline
        self.received = 0
        self._hash = hashlib.sha256()
        self._pending = b""
        self._ended = False
        self._chunks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=self.AHEAD)
        self._stop = threading.Event()
        self._pumper = threading.Thread(target=self._pump, name="blob-download", daemon=True)
        self._pumper.start()

    def _pump(self) -> None:
        while not self._stop.is_set():
            try:
                data: bytes | BaseException = self._response.read(self.CHUNK)
            except BaseException as exc:  # handed to the reader, which names it
                data = exc
            while not self._stop.is_set():
                try:
                    self._chunks.put(data, timeout=1.0)
                    break
                except queue.Full:
                    continue
            if not isinstance(data, bytes) or not data:
                return

    def _fail(self, what: str) -> BlobDownloadError:
        got = f"{self.received} of {self.size} bytes" if self.size is not None else f"{self.received} bytes"
        return BlobDownloadError(f"{self._where}: blob {self.digest}: {what} after {got}")

    def _next(self) -> bytes:
        timeout = None if self.deadline is None else self.deadline - time.monotonic()
        try:
            if timeout is not None and timeout <= 0:
                raise queue.Empty
            data = self._chunks.get(timeout=timeout)
        except queue.Empty:
            raise self._fail("still downloading at the item's deadline") from None
        if isinstance(data, BaseException):
            raise self._fail(describe(data)) from data
        return data

    def read(self, amount: int = -1) -> bytes:
        if self._ended:
            return b""
        if not self._pending:
            self._pending = self._next()
        if amount is None or amount < 0:
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:amount], self._pending[amount:]
        self.received += len(data)
        self._hash.update(data)
        if self.size is not None and self.received > self.size:
            raise self._fail("more bytes than its size")
        if not data:
            self._ended = True
            self._verify()
        return data

    def _verify(self) -> None:
        if self.size is not None and self.received != self.size:
            raise self._fail("the download ended short")
        algorithm, _, expected = self.digest.partition(":")
        if algorithm == "sha256" and self._hash.hexdigest() != expected:
            raise self._fail("the bytes do not match the digest (corrupt)")

    def release_conn(self) -> None:
        """Give the connection back to the pool if the download ended whole; else close it."""
        if self._ended:
            self._stop.set()
            self._pumper.join()
            self._response.release_conn()
        else:
            self.close()

    def close(self) -> None:
        """Abandon the download: wake the reading thread (shut its socket down), then close."""
        self._stop.set()
        sock = getattr(getattr(self._response, "connection", None), "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._pumper.join(timeout=5)
        if not self._pumper.is_alive():
            self._response.close()


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


#: ECR throttles each API action (``PutImage`` 10/s, ``InitiateLayerUpload`` 100/s, ...) with
#: ``429`` and no ``Retry-After``; concurrent jobs share the account's rate, so a copy job
#: gives the target more and longer tries (about 30 s in all) than an upstream gets.
TARGET_RETRY = RetryPolicy(attempts=8, base_delay=0.5, max_delay=10.0)


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """Split a ``WWW-Authenticate`` header into its scheme and parameters.

    >>> parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io"')
    ('bearer', {'realm': 'https://auth.docker.io/token', 'service': 'registry.docker.io'})
    """
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return scheme.lower(), params


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


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
        side: str = "upstream",
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
        self._challenge: tuple[str, dict[str, str]] | None = None
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._fetching: dict[str, threading.Lock] = {}

    # -- public API --------------------------------------------------------------------
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
            media_type=_media_type(response.headers),
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
            media_type=_media_type(response.headers),
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

    def get_blob(self, repository: str, digest: str) -> bytes:
        """GET a (small) blob, such as an image config; blob GETs are not pulls."""
        response = self._request("GET", f"/v2/{repository}/blobs/{digest}", repository)
        data = response.data
        if sha256_digest(data) != digest:
            raise RegistryError(f"{self.side} {self.host}/{repository}: blob {digest} does not match its content")
        return data

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
        return BlobStream(response, f"{self.side} {self.host}/{repository}", digest, size=size, deadline=deadline)

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
        """Upload a blob whose digest and size are known: POST (unless ``session`` is an open
        upload location), one PATCH, PUT with the digest."""
        if session is None:
            started = self._request("POST", f"/v2/{repository}/blobs/uploads/", repository, push=True, accept=(202,))
            session = self._absolute(started.headers.get("Location", ""))
        location = session
        patched = self._request(
            "PATCH",
            location,
            repository,
            push=True,
            body=data,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            accept=(202, 204),
        )
        location = self._absolute(patched.headers.get("Location", "") or location)
        separator = "&" if "?" in location else "?"
        self._request(
            "PUT",
            f"{location}{separator}{urlencode({'digest': digest})}",
            repository,
            push=True,
            body=b"",
            headers={"Content-Length": "0"},
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
        """One request, authorised as the registry asks, with bounded retries.

        ``path`` may be an absolute URL (an upload location). A streamed ``body`` cannot be
        sent twice, so an answer that would need a retry raises at once instead.
        """
        scope = f"repository:{repository}:{'pull,push' if push else 'pull'}"
        if also_pull:
            scope += f" repository:{also_pull}:pull"
        request_headers = {"User-Agent": USER_AGENT, **(headers or {})}
        if "/manifests/" in path and method in ("GET", "HEAD"):
            request_headers["Accept"] = ", ".join(MANIFEST_MEDIA_TYPES)
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        where = f"{self.side} {self.host}/{repository}"
        replayable = body is None or isinstance(body, bytes)
        attempt = 0
        authorised_once = False
        redirects = 0
        while True:
            request_headers.pop("Authorization", None)
            on_host = urlsplit(url).netloc == urlsplit(self.base_url).netloc
            if on_host:
                auth = self._authorization(scope)
                if auth:
                    request_headers["Authorization"] = auth
            # else: a redirect to another host (a CDN, a pre-signed S3 URL) carries its own
            # authentication, and S3 refuses a request that also sends an Authorization header
            try:
                response = self.pool.request(
                    method,
                    url,
                    headers=request_headers,
                    body=body,
                    timeout=self.timeout,
                    redirect=False,
                    preload_content=not stream,
                )
            except urllib3.exceptions.HTTPError as exc:
                if attempt + 1 >= self.retry.attempts or not replayable:
                    raise RegistryUnavailableError(f"{where}: cannot reach the registry: {describe(exc)}") from exc
                self.sleep(self.retry.delay(attempt, None))
                attempt += 1
                continue
            status = response.status
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
            if status == 401 and not authorised_once and replayable and on_host:
                authorised_once = True
                self._learn_challenge(response.headers.get("WWW-Authenticate", ""), where)
                self._forget_token(scope)
                continue
            if status in (429, 502, 503, 504):
                retry_after = _retry_after(response.headers)
                if attempt + 1 >= self.retry.attempts or not replayable:
                    if status == 429:
                        raise RateLimitedError(
                            f"{where}: the registry answered 429 Too Many Requests {attempt + 1} times",
                            retry_after=retry_after,
                            ratelimit=RateLimit.from_headers(response.headers),
                        )
                    raise RegistryUnavailableError(
                        f"{where}: the registry answered {status} {attempt + 1} times", status=status
                    )
                self.sleep(self.retry.delay(attempt, retry_after))
                attempt += 1
                continue
            raise self._error(status, answer, where, path, url)

    def _error(self, status: int, answer: bytes, where: str, path: str, url: str) -> RegistryError:
        detail = _error_detail(answer)
        elsewhere = urlsplit(url).netloc
        if elsewhere != urlsplit(self.base_url).netloc:  # the download host a redirect sent us to
            thing = path.rsplit("/", 1)[-1]
            return RegistryUnavailableError(
                f"{where}: the download of {thing} from {elsewhere} (a redirect) answered {status}", status=status
            )
        if status == 404:
            thing = path.rsplit("/", 1)[-1]
            return _not_found(answer, path)(f"{where}: {thing} not found{detail}", status=status)
        if status in (401, 403):
            who = "with the configured credentials" if self.credentials else "anonymously"
            return AuthenticationError(f"{where}: access denied {who} ({status}){detail}", status=status)
        if status >= 500:
            return RegistryUnavailableError(f"{where}: server error {status}{detail}", status=status)
        return RegistryError(f"{where}: unexpected answer {status}{detail}", status=status)

    def _learn_challenge(self, header: str, where: str) -> None:
        scheme, params = parse_challenge(header)
        if scheme not in ("bearer", "basic"):
            raise AuthenticationError(
                f"{where}: the registry asks for unsupported authentication {header!r}", status=401
            )
        if scheme == "basic" and self.credentials is None:
            raise AuthenticationError(f"{where}: the registry requires credentials and none are configured", status=401)
        if scheme == "bearer" and "realm" not in params:
            raise AuthenticationError(f"{where}: bearer challenge without a realm: {header!r}", status=401)
        with self._lock:
            self._challenge = (scheme, params)

    def _forget_token(self, scope: str) -> None:
        with self._lock:
            self._tokens.pop(scope, None)

    def _authorization(self, scope: str) -> str | None:
        with self._lock:
            challenge = self._challenge
            cached = self._tokens.get(scope)
        if challenge is None:
            return None
        scheme, params = challenge
        if scheme == "basic":
            return self.credentials.basic() if self.credentials else None
        if cached and cached[1] > time.monotonic():
            return f"Bearer {cached[0]}"
        with self._lock:
            fetching = self._fetching.setdefault(scope, threading.Lock())
        with fetching:  # one token request per scope, however many threads need it at once
            with self._lock:
                cached = self._tokens.get(scope)
            if cached and cached[1] > time.monotonic():
                return f"Bearer {cached[0]}"
            token, ttl = self._fetch_token(params, scope)
            with self._lock:
                self._tokens[scope] = (token, time.monotonic() + max(ttl - 30, 10))
        return f"Bearer {token}"

    def _fetch_token(self, params: Mapping[str, str], scope: str) -> tuple[str, float]:
        query: dict[str, str | list[str]] = {"scope": scope.split(" ")}
        if "service" in params:
            query["service"] = params["service"]
        headers = {"User-Agent": USER_AGENT}
        if self.credentials:
            headers["Authorization"] = self.credentials.basic()
        url = params["realm"] + ("&" if "?" in params["realm"] else "?") + urlencode(query, doseq=True)
        try:
            response = self.pool.request("GET", url, headers=headers, timeout=self.timeout)
        except urllib3.exceptions.HTTPError as exc:
            raise RegistryUnavailableError(
                f"{self.side} {self.host}: cannot reach the token service {params['realm']}: {describe(exc)}"
            ) from exc
        if response.status in (401, 403):
            raise AuthenticationError(
                f"{self.side} {self.host}: the token service refused the configured credentials ({response.status})",
                status=response.status,
            )
        if response.status == 429:
            raise RateLimitedError(
                f"{self.side} {self.host}: the token service answered 429", retry_after=_retry_after(response.headers)
            )
        if response.status != 200:
            raise RegistryUnavailableError(
                f"{self.side} {self.host}: the token service answered {response.status}", status=response.status
            )
        data = json.loads(response.data)
        token = data.get("token") or data.get("access_token")
        if not token:
            raise AuthenticationError(f"{self.side} {self.host}: the token service sent no token")
        return str(token), float(data.get("expires_in") or 60)


def _media_type(headers: Mapping[str, str]) -> str:
    return (headers.get("Content-Type") or "").split(";")[0].strip()


def _errors(data: bytes) -> list[dict[str, Any]]:
    """The ``errors`` of a registry's error answer (the distribution spec's shape); [] if none."""
    try:
        errors = json.loads(data).get("errors") or []
    except (ValueError, AttributeError):
        return []
    return [e for e in errors if isinstance(e, dict)]


def _not_found(data: bytes, path: str) -> type[NotFoundError]:
    """The 404's error class, by the registry's error code, else by what was asked for."""
    codes = {str(e.get("code")) for e in _errors(data)}
    if "NAME_UNKNOWN" in codes:
        return NameUnknownError
    if "BLOB_UNKNOWN" in codes or "/blobs/" in path:
        return BlobUnknownError
    if "MANIFEST_UNKNOWN" in codes or "/manifests/" in path:
        return ManifestUnknownError
    return NotFoundError


def _error_detail(data: bytes) -> str:
    parts = [f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in _errors(data)]
    return f" ({'; '.join(parts)})" if parts else ""
