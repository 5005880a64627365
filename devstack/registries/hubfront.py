"""The hub front: a local stand-in for Docker Hub's edge in front of a plain registry.

It does what Docker Hub does around the registry protocol, so hubmirror and the tools it
drives meet the same behaviour as in production:

* a token service (``/token``) on a host:port of its own, as ``auth.docker.io`` is apart from
  ``registry-1.docker.io``, issuing RS256 JWTs with an ``x5c`` header, anonymous or with
  basic-auth users, honouring the requested ``scope`` and refusing bad credentials
  (https://distribution.github.io/distribution/spec/auth/token/);
* blob ``GET`` answered with ``307`` to a signed, expiring URL on a CDN host of its own
  (:mod:`devstack.registries.cdn`), which refuses an ``Authorization`` header; blob ``HEAD`` is answered
  directly;
* pulls counted as Docker Hub counts them (https://docs.docker.com/docker-hub/usage/pulls/):
  a manifest ``GET`` is a pull, a multi-architecture image costs one pull per architecture
  fetched (the index itself is free), ``HEAD`` is free;
* ``ratelimit-limit`` / ``ratelimit-remaining`` (``N;w=SECONDS``) and
  ``docker-ratelimit-source`` on manifest responses, a pull budget spent by manifest GETs of
  platform manifests (an index GET is free, as on Docker Hub), and ``429 TOOMANYREQUESTS``
  once the budget is spent;
* old images kept as Docker schema 1 (:meth:`HubFront.keep_schema1`) served as Docker Hub
  serves them: ``application/vnd.docker.distribution.manifest.v1+prettyjws``, whatever the
  ``Accept``, signed anew on every request (so the bytes differ from one ``GET`` to the next),
  the digest being that of the unsigned manifest
  (https://distribution.github.io/distribution/spec/manifest-v2-1/#signed-manifests);
* counters of every request by kind (HEAD manifest, GET manifest, GET blob, ...) and of the
  bytes of blobs served, and injectable faults for the tests.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import threading
import uuid
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.x509.oid import NameOID

from devstack.faults import Faults
from devstack.registries.cdn import BlobCdn
from devstack.registries.proxy import (
    Fault,
    QuietHandler,
    QuietServer,
    challenge,
    forward,
    read_body,
    registry_error,
    relay,
    reply,
    request_fault,
    request_kind,
)
from devstack.registries.referrers import Referrers
from devstack.registries.registry import TokenAuth

SERVICE = "registry.docker.io"
ISSUER = "hubmirror-devstack-auth"
WINDOW_SECONDS = 21600
INDEX_MEDIA_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)


@dataclass
class _Issuer:
    key: rsa.RSAPrivateKey
    cert_der: bytes

    @classmethod
    def create(cls) -> _Issuer:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key=key, cert_der=cert.public_bytes(serialization.Encoding.DER))

    def pem(self) -> bytes:
        return x509.load_der_x509_certificate(self.cert_der).public_bytes(serialization.Encoding.PEM)

    def token(self, subject: str, access: list[dict[str, Any]], ttl: int) -> str:
        now = dt.datetime.now(dt.UTC)
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "iat": now,
            "nbf": now - dt.timedelta(seconds=5),
            "exp": now + dt.timedelta(seconds=ttl),
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        header = {"x5c": [base64.b64encode(self.cert_der).decode()]}
        return jwt.encode(claims, self.key, algorithm="RS256", headers=header)


def _paginate_tags(data: bytes, path: str) -> tuple[bytes, str | None]:
    """Docker Hub pages tag lists (``?n=&last=``, ``Link: <...>; rel="next"``); so does the front."""
    query = parse_qs(urlsplit(path).query)
    if "n" not in query:
        return data, None
    size, last = int(query["n"][0]), query.get("last", [""])[0]
    document = json.loads(data)
    tags = sorted(document.get("tags") or [])
    rest = [t for t in tags if t > last] if last else tags
    page = rest[:size]
    link = None
    if len(rest) > size:
        link = f'<{urlsplit(path).path}?n={size}&last={page[-1]}>; rel="next"'
    return json.dumps({**document, "tags": page}).encode(), link


SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _schema1_payload(manifest: dict[str, Any]) -> tuple[bytes, str]:
    """The manifest as schema 1 formats it (three-space indent) and its digest, which is
    that of these bytes without signatures."""
    payload = json.dumps(manifest, indent=3).encode()
    return payload, "sha256:" + hashlib.sha256(payload).hexdigest()


def _schema1_signed(manifest: dict[str, Any]) -> tuple[bytes, str]:
    """The manifest with a fresh JWS signature (ES256, a new key and time each call), as
    Docker Hub signs schema 1 on every request: the bytes change, the digest does not."""
    payload, digest = _schema1_payload(manifest)
    cut = payload.rindex(b"\n}")
    protected = _b64url(
        json.dumps(
            {"formatLength": cut, "formatTail": _b64url(payload[cut:]), "time": dt.datetime.now(dt.UTC).isoformat()}
        ).encode()
    )
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.sign(f"{protected}.{_b64url(payload)}".encode(), ec.ECDSA(hashes.SHA256()))
    r, s = utils.decode_dss_signature(der)
    numbers = key.public_key().public_numbers()
    jwk = {
        "crv": "P-256",
        "kty": "EC",
        "x": _b64url(numbers.x.to_bytes(32, "big")),
        "y": _b64url(numbers.y.to_bytes(32, "big")),
    }
    signature = {
        "header": {"jwk": jwk, "alg": "ES256"},
        "signature": _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big")),
        "protected": protected,
    }
    signatures = json.dumps([signature], indent=3).replace("\n", "\n   ").encode()
    return payload[:cut] + b',\n   "signatures": ' + signatures + payload[cut:], digest


class HubFront:
    """Token server and counting, rate-limiting reverse proxy for a local "Docker Hub"."""

    def __init__(self, workdir: Path, *, admin: tuple[str, str] = ("admin", "admin-password")) -> None:
        self.workdir = workdir
        self.backend: str | None = None
        self.admin = admin
        self.users: dict[str, str] = {admin[0]: admin[1]}
        self.private: dict[str, set[str]] = {}
        self.limit: int | None = None
        self.remaining: int = 0
        self.token_ttl = 300
        self.counts: Counter[str] = Counter()
        self.blob_bytes = 0
        self.faults: Faults[Fault] = Faults()
        self.log: list[tuple[str, str, int]] = []
        #: the OCI 1.1 referrers API, for an upstream that has it; None answers 404 as
        #: Distribution 2.8 does, and a client falls back to the referrers tag schema
        self.referrers: Referrers | None = None
        #: (repository, tag) -> the unsigned schema 1 manifest kept there
        self.schema1: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._issuer = _Issuer.create()
        handler = self._handler_class()
        self._server = QuietServer(("127.0.0.1", 0), handler)
        self._token_server = QuietServer(("127.0.0.1", 0), handler)
        self._threads: list[threading.Thread] = []
        self.cdn: BlobCdn = BlobCdn(workdir / "data", on_served=self._served)

    # -- addresses ---------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def token_host(self) -> str:
        """The token service's own ``host:port`` (``auth.docker.io`` is not ``registry-1.docker.io``)."""
        return f"127.0.0.1:{self._token_server.server_address[1]}"

    def token_auth(self) -> TokenAuth:
        """The registry's ``auth.token`` settings pointing at the token service."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        cert = self.workdir / "token-issuer.pem"
        cert.write_bytes(self._issuer.pem())
        return TokenAuth(realm=f"http://{self.token_host}/token", service=SERVICE, issuer=ISSUER, cert_pem=cert)

    def _served(self, digest: str, size: int) -> None:
        with self._lock:
            self.blob_bytes += size

    # -- life cycle --------------------------------------------------------------------
    def start(self, backend: str) -> HubFront:
        self.backend = backend
        for name, server in (("hub-front", self._server), ("hub-token", self._token_server)):
            thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in (self._server, self._token_server):
            if self._threads:
                server.shutdown()
            server.server_close()
        self._threads.clear()
        self.cdn.stop()

    # -- test controls -----------------------------------------------------------------
    def set_budget(self, limit: int | None, remaining: int | None = None) -> None:
        """Announce ``limit`` pulls per window (``None``: no rate-limit headers, unlimited)."""
        with self._lock:
            self.limit = limit
            self.remaining = (limit or 0) if remaining is None else remaining

    def add_user(self, username: str, password: str) -> None:
        self.users[username] = password

    def make_private(self, repository: str, *users: str) -> None:
        """Only ``users`` (and the admin) may pull ``repository``."""
        self.private[repository] = set(users)

    def inject(self, fault: Fault) -> None:
        self.faults.add(fault)

    def keep_schema1(self, repository: str, tag: str) -> str:
        """Keep ``repository:tag`` as an old schema 1 image (one layer); returns its digest."""
        manifest = {
            "schemaVersion": 1,
            "name": repository,
            "tag": tag,
            "architecture": "amd64",
            "fsLayers": [{"blobSum": "sha256:" + "a" * 64}],
            "history": [{"v1Compatibility": json.dumps({"id": uuid.uuid4().hex * 2, "os": "linux"})}],
        }
        self.schema1[(repository, tag)] = manifest
        return _schema1_payload(manifest)[1]

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            self.blob_bytes = 0
            self.log.clear()

    def snapshot(self) -> dict[str, int]:
        """Counts by kind of authorised requests, plus ``blob_bytes`` served."""
        with self._lock:
            result = dict(self.counts)
            result["blob_bytes"] = self.blob_bytes
            return result

    # -- request handling --------------------------------------------------------------
    def _grant(self, subject: str | None, scopes: list[str]) -> list[dict[str, Any]]:
        access = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) < 3 or parts[0] != "repository":
                continue
            name, wanted = ":".join(parts[1:-1]), parts[-1].split(",")
            allowed: set[str] = set()
            if subject == self.admin[0]:
                allowed = {"pull", "push", "delete", "*"}
            elif name not in self.private or (subject is not None and subject in self.private[name]):
                allowed = {"pull"}
            actions = [a for a in wanted if a in allowed]
            if actions:
                access.append({"type": "repository", "name": name, "actions": actions})
        return access

    def _ratelimit_headers(self) -> dict[str, str]:
        if self.limit is None:
            return {}
        return {
            "ratelimit-limit": f"{self.limit};w={WINDOW_SECONDS}",
            "ratelimit-remaining": f"{max(self.remaining, 0)};w={WINDOW_SECONDS}",
            "docker-ratelimit-source": "127.0.0.1",
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        front = self

        class Handler(QuietHandler):
            def _token(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                subject: str | None = None
                auth = self.headers.get("Authorization", "")
                if auth.lower().startswith("basic "):
                    try:
                        user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                    except ValueError:
                        user, password = "", ""
                    if front.users.get(user) != password:
                        body = json.dumps({"details": "incorrect username or password"}).encode()
                        reply(self, 401, body, {"Content-Type": "application/json"})
                        return
                    subject = user
                fault = request_fault(front.faults, "token", None)  # auth.docker.io has its bad moments too
                if fault is not None and fault.status:
                    reply(self, fault.status, fault.body, fault.headers)
                    return
                with front._lock:
                    front.counts["token"] += 1
                access = front._grant(subject, query.get("scope", []))
                token = front._issuer.token(subject or "", access, front.token_ttl)
                issued = dt.datetime.now(dt.UTC).isoformat()
                body = json.dumps(
                    {"token": token, "access_token": token, "expires_in": front.token_ttl, "issued_at": issued}
                ).encode()
                reply(self, 200, body, {"Content-Type": "application/json"})

            def _count(self, kind: str, repository: str | None, status: int) -> None:
                with front._lock:
                    front.counts[kind] += 1
                    front.log.append((kind, repository or "", status))

            def _proxy(self) -> None:
                path = urlsplit(self.path).path
                kind, repository = request_kind(self.command, path)
                authorised = "Authorization" in self.headers
                fault = request_fault(front.faults, kind, repository) if authorised else None
                if fault is not None and fault.status:
                    self._count(kind, repository, fault.status)
                    reply(self, fault.status, fault.body, fault.headers)
                    return
                extra: dict[str, str] = {}
                if kind in ("head_manifest", "get_manifest") and authorised:
                    with front._lock:
                        extra = front._ratelimit_headers()
                        spent = front.limit is not None and front.remaining <= 0
                    if kind == "get_manifest" and spent:
                        with front._lock:
                            front.counts["rejected_429"] += 1
                        registry_error(self, 429, "TOOMANYREQUESTS", "You have reached your pull rate limit.", **extra)
                        return
                request_body = read_body(self)
                assert front.backend is not None
                kept = front.schema1.get((repository or "", path.rsplit("/", 1)[-1]))
                if kind in ("head_manifest", "get_manifest") and authorised and kept is not None:
                    self._count(kind, repository, 200)
                    if kind == "get_manifest" and front.limit is not None:
                        with front._lock:
                            front.remaining -= 1
                    body, digest = _schema1_signed(kept)
                    headers = {"Content-Type": SCHEMA1_SIGNED, "Docker-Content-Digest": digest, **extra}
                    reply(self, 200, body, headers)  # a HEAD gets the headers alone
                    return
                if kind == "referrers" and front.referrers is not None and not authorised:
                    challenge(self, front.backend)
                    return
                if kind == "referrers" and front.referrers is not None and repository:
                    self._count(kind, repository, 200)
                    digest = path.rsplit("/", 1)[-1]
                    body, headers = front.referrers.answer(repository, digest, urlsplit(self.path).query)
                    reply(self, 200, body, headers)
                    return
                if kind == "get_blob" and authorised:
                    # Docker Hub sends blob downloads to its CDN: 307 to a signed URL on another host
                    checked = forward(front.backend, "HEAD", self.path, self.headers, None)
                    if checked.status == 200:
                        self._count(kind, repository, 307)
                        digest = path.rsplit("/", 1)[-1]
                        reply(self, 307, b"", {"Location": front.cdn.sign(digest), "Docker-Content-Digest": digest})
                        return
                answer = forward(front.backend, self.command, self.path, self.headers, request_body)
                media_type = (answer.header("Content-Type") or "").split(";")[0].strip()
                if authorised and answer.status < 500 and answer.status != 401:
                    self._count(kind, repository, answer.status)
                    with front._lock:
                        if (
                            kind == "get_manifest"
                            and answer.status == 200
                            and front.limit is not None
                            and media_type not in INDEX_MEDIA_TYPES
                        ):
                            front.remaining -= 1
                if kind == "put_manifest" and answer.status == 201 and front.referrers is not None and repository:
                    subject = front.referrers.record(repository, request_body or b"", media_type)
                    if subject:
                        extra["OCI-Subject"] = subject
                if kind == "tags_list" and answer.status == 200:
                    answer.body, link = _paginate_tags(answer.body, self.path)
                    if link:
                        extra["Link"] = link
                relay(self, answer, extra)

            def _dispatch(self) -> None:
                if self.server is front._token_server:  # the token service is a host of its own
                    if urlsplit(self.path).path == "/token" and self.command == "GET":
                        self._token()
                    else:
                        reply(self, 404, b"404 page not found\n", {"Content-Type": "text/plain"})
                else:
                    self._proxy()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _dispatch  # noqa: N815

        return Handler
