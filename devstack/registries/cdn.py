"""The download endpoint registries redirect blob GETs to: a CDN or a pre-signed S3 URL.

Neither Docker Hub nor ECR serves layer bytes from its registry API host:

* Docker Hub answers a blob ``GET`` with ``307`` to its CDN (Cloudflare, or S3 pre-signed
  URLs), hosts apart from ``registry-1.docker.io``; the hosts a firewall must let through
  for layer downloads are listed at https://docs.docker.com/desktop/setup/allow-list/
  (``production.cloudflare.docker.com``, ``docker-images-prod.*.r2.cloudflarestorage.com``).
* ECR answers ``GetDownloadUrlForLayer`` and a blob ``GET`` with a pre-signed S3 URL:
  https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_GetDownloadUrlForLayer.html.

A pre-signed URL carries its own authentication in the query string, so S3 refuses a
request that also sends an ``Authorization`` header ("Only one auth mechanism allowed",
``400 InvalidArgument``), an altered signature (``403 SignatureDoesNotMatch``) and an
expired one (``403 AccessDenied``, "Request has expired"):
https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html and
https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html. This endpoint does the
same. It listens on its own loopback address (``127.0.0.2``), not only its own port: a
client that forwards credentials to "the same host" (Go's ``net/http`` compares host names,
not ports) would otherwise pass here while it fails against the real CDN.

The bytes come straight from the registry's own storage directory (the filesystem driver's
layout), as the real CDN serves the registry's storage.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from devstack.faults import Faults
from devstack.registries.proxy import QuietHandler, QuietServer

CDN_ADDRESS = "127.0.0.2"
#: ECR's layer URLs are valid for an hour, Docker Hub's a few minutes; the tests can shorten it.
DEFAULT_TTL_SECONDS = 600
_CHUNK = 256 * 1024


@dataclass
class DownloadFault:
    """How the next ``times`` downloads (of ``digest``, or of any blob) go wrong.

    ``reset``: half the bytes, then a TCP reset; ``truncate``: half the bytes, then a clean
    close; ``corrupt``: every byte sent, one of them flipped; ``slow``: one byte every
    ``delay`` seconds; ``stall``: half the bytes, then nothing for ``delay`` seconds.
    """

    mode: str
    digest: str | None = None
    times: int = 1
    delay: float = 2.0


def _s3_error(code: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
    ).encode()


class BlobCdn:
    """Serves blobs of one registry's storage at signed, expiring URLs on ``127.0.0.2``."""

    def __init__(
        self,
        storage: Path,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        on_served: Callable[[str, int], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.ttl = ttl
        self.on_served = on_served
        self.clock = clock
        self.refused: dict[str, int] = {}
        self.served = 0
        self.faults: Faults[DownloadFault] = Faults()
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._server = QuietServer((CDN_ADDRESS, 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, name="blob-cdn", daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"{CDN_ADDRESS}:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _signature(self, path: str, expires: str) -> str:
        return hmac.new(self._key, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def sign(self, digest: str) -> str:
        """A URL that serves ``digest`` until the TTL runs out, to anyone holding it."""
        path = "/blobs/" + digest.replace(":", "/")
        expires = str(int(self.clock() + self.ttl))
        query = urlencode({"X-Amz-Expires": expires, "X-Amz-Signature": self._signature(path, expires)})
        return f"http://{self.host}{path}?{query}"

    def blob_path(self, digest: str) -> Path:
        algorithm, _, hex_digest = digest.partition(":")
        return self.storage / "docker/registry/v2/blobs" / algorithm / hex_digest[:2] / hex_digest / "data"

    def inject(self, fault: DownloadFault) -> None:
        self.faults.add(fault)

    def _refuse(self, reason: str) -> None:
        with self._lock:
            self.refused[reason] = self.refused.get(reason, 0) + 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        cdn = self

        class Handler(QuietHandler):
            def _error(self, status: int, code: str, message: str) -> None:
                cdn._refuse(code)
                body = _s3_error(code, message)
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if "Authorization" in self.headers:
                    self._error(
                        400,
                        "InvalidArgument",
                        "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
                        "Signature query string parameter or the Authorization header should be specified",
                    )
                    return
                expires = query.get("X-Amz-Expires", "")
                expected = cdn._signature(parts.path, expires)
                if not expires.isdigit() or not hmac.compare_digest(expected, query.get("X-Amz-Signature", "")):
                    self._error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match")
                    return
                if int(expires) < cdn.clock():
                    self._error(403, "AccessDenied", "Request has expired")
                    return
                segments = parts.path.split("/")  # /blobs/<algorithm>/<hex>
                digest = f"{segments[2]}:{segments[3]}" if len(segments) == 4 else ""
                path = cdn.blob_path(digest) if digest else None
                if path is None or not path.is_file():
                    self._error(404, "NoSuchKey", "The specified key does not exist.")
                    return
                size = path.stat().st_size
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                if self.command == "HEAD":
                    return
                fault = cdn.faults.take(lambda f: f.digest in (None, digest))
                if fault is not None:
                    self._faulty(path.read_bytes(), fault)
                    return
                sent = 0
                with path.open("rb") as data:
                    while chunk := data.read(_CHUNK):
                        self.wfile.write(chunk)
                        sent += len(chunk)
                with cdn._lock:
                    cdn.served += 1
                if cdn.on_served is not None:
                    cdn.on_served(digest, sent)

            def _faulty(self, data: bytes, fault: DownloadFault) -> None:
                half = data[: len(data) // 2]
                try:
                    if fault.mode == "corrupt":
                        flipped = bytes([data[0] ^ 0xFF]) + data[1:] if data else data
                        self.wfile.write(flipped)
                    elif fault.mode == "slow":
                        for n in range(len(data)):
                            self.wfile.write(data[n : n + 1])
                            self.wfile.flush()
                            time.sleep(fault.delay)
                    elif fault.mode == "stall":
                        self.wfile.write(half)
                        self.wfile.flush()
                        time.sleep(fault.delay)
                    else:  # reset, truncate
                        self.wfile.write(half)
                        self.wfile.flush()
                        if fault.mode == "reset":  # SO_LINGER 0: close() sends RST, not FIN
                            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass  # the client gave up first
                self.close_connection = True  # the server closes the socket after this answer

            do_HEAD = do_GET  # noqa: N815

        return Handler
