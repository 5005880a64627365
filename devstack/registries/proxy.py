"""What the fronts of the local registries share: forwarding one request to the backend."""

from __future__ import annotations

import http.client
import json
import re
import sys
import time
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from devstack.faults import Faults

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)


class QuietServer(ThreadingHTTPServer):
    """A threaded server for the stand-ins: a client hanging up is not an error worth a trace.

    Its listen backlog is a real server's, not socketserver's 5: with 5, a burst of new
    connections (the check's threads, a job's copies) overflowed it hundreds of times a
    run, and each connection dropped so waited for the client's SYN to be sent again (1 s,
    then 3 s, 7 s, ...) until its connect timed out, which no registry or AWS endpoint does.
    """

    daemon_threads = True
    request_queue_size = 1024  # the kernel caps it at net.core.somaxconn (4096 on Debian 12)

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client closed its connection (a download given up, a test tearing down)
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, and no access log on stderr."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return


@dataclass
class Answer:
    """The backend's answer: status, headers (repeated ones kept) and the whole body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def forward(
    backend: str, method: str, path: str, headers: Message, body: bytes | None, *, timeout: float = 120
) -> Answer:
    """Send ``method path`` to ``backend`` (``host:port``) with the client's own headers."""
    conn = http.client.HTTPConnection(backend, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():  # repeated headers (Accept) kept
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        data = b"" if method == "HEAD" else resp.read()
        return Answer(resp.status, list(resp.getheaders()), data)
    finally:
        conn.close()


def challenge(handler: BaseHTTPRequestHandler, backend: str) -> None:
    """Answer an unauthenticated request the backend does not route (the referrers API) as the
    backend answers any other: its ``401`` and ``WWW-Authenticate`` challenge, from ``/v2/``."""
    answer = forward(backend, "GET", "/v2/", handler.headers, None)
    relay(handler, answer)


def read_body(handler: BaseHTTPRequestHandler) -> bytes | None:
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else None


def relay(handler: BaseHTTPRequestHandler, answer: Answer, extra: dict[str, str] | None = None) -> None:
    """Send the backend's answer on to the client (``extra`` headers added)."""
    handler.send_response(answer.status)
    for name, value in answer.headers:
        if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
            handler.send_header(name, value)
    for name, value in (extra or {}).items():
        handler.send_header(name, value)
    if handler.command == "HEAD":
        handler.send_header("Content-Length", answer.header("Content-Length") or "0")
    else:
        handler.send_header("Content-Length", str(len(answer.body)))
    handler.end_headers()
    if answer.body and handler.command != "HEAD":
        handler.wfile.write(answer.body)


def reply(
    handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: dict[str, str] | None = None
) -> None:
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD" and body:
        handler.wfile.write(body)


def registry_error(handler: BaseHTTPRequestHandler, status: int, code: str, message: str, **extra: str) -> None:
    """An error in the distribution spec's shape: ``{"errors": [{"code", "message"}]}``."""
    body = json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()
    reply(handler, status, body, {"Content-Type": "application/json; charset=utf-8", **extra})


_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
_BLOB = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<ref>[^/]+)$")
_TAGS = re.compile(r"^/v2/(?P<name>.+)/tags/list$")


def request_kind(method: str, path: str) -> tuple[str, str | None]:
    """Classify a registry request: ``("head_manifest", "library/nginx")`` and so on."""
    if path in ("/v2/", "/v2"):
        return "ping", None
    for pattern, noun in ((_MANIFEST, "manifest"), (_BLOB, "blob"), (_TAGS, "tags")):
        match = pattern.match(path)
        if match:
            name = match.group("name")
            if noun == "tags":
                return "tags_list", name
            return f"{method.lower()}_{noun}", name
    if "/referrers/" in path:
        return "referrers", path.split("/referrers/", maxsplit=1)[0].removeprefix("/v2/")
    if "/blobs/uploads" in path:
        return "blob_upload", path.split("/blobs/uploads", maxsplit=1)[0].removeprefix("/v2/")
    return "other", None


@dataclass
class Fault:
    """An injected answer: the next ``times`` requests of ``kind`` (on ``repository``) get it,
    after ``delay`` seconds; status 0 answers as usual, only late."""

    kind: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    times: int = 1
    repository: str | None = None
    delay: float = 0.0


def request_fault(faults: Faults[Fault], kind: str, repository: str | None) -> Fault | None:
    """The fault for a registry request of ``kind`` on ``repository``, after sleeping its delay."""
    fault = faults.take(lambda f: f.kind == kind and f.repository in (None, repository))
    if fault is not None:
        time.sleep(fault.delay)
    return fault
