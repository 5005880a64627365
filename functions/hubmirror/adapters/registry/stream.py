"""A blob download read as it streams into the target: whole, on time, and the bytes its digest names."""

from __future__ import annotations

import contextlib
import hashlib
import queue
import re
import socket
import threading
import time

import urllib3

from hubmirror.domain.registry.errors import BlobDownloadError

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
