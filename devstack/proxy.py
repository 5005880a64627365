"""What the fronts of the local registries share: forwarding one request to the backend."""

from __future__ import annotations

import http.client
import json
import sys
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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
    """A threaded server for the stand-ins: a client hanging up is not an error worth a trace."""

    daemon_threads = True

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
