"""The ECR front: a local stand-in for Amazon ECR's registry API in front of a plain registry.

ECR speaks the distribution API but is stricter than a Distribution registry. The front
does what ECR documents, each rule with the page it follows:

* **Blob downloads are redirected.** A blob ``GET`` answers ``307`` to a pre-signed S3 URL
  (:mod:`devstack.registries.cdn`, which refuses an ``Authorization`` header), and only for a layer an
  image manifest in that repository references ("You can only get URLs for image layers that
  are referenced in an image"):
  https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_GetDownloadUrlForLayer.html.
  Any other blob ``GET`` answers ``404 BLOB_UNKNOWN``. Blob ``HEAD`` answers directly.
* **Cross-repository mounts** (``POST .../blobs/uploads/?mount=&from=``) happen only with the
  registry setting ``BLOB_MOUNTING`` enabled and a blob an image in the source repository
  references; otherwise ECR opens an upload session (``202``), as the distribution spec
  allows: https://docs.aws.amazon.com/AmazonECR/latest/userguide/blob-mounting.html.
* **Manifests are validated** against their media type's schema; a field the schema does not
  define (``annotations`` on a Docker manifest list, ``platform.features``) is refused with
  ``400 MANIFEST_INVALID``: https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-manifest-formats.html
  and https://github.com/distribution/distribution/blob/main/docs/content/spec/manifest-v2-2.md.
* **Repositories exist before a push, or a creation template makes them**: "The Amazon ECR
  repository must exist before you push the image, or you must have a repository creation
  template defined" (https://docs.aws.amazon.com/AmazonECR/latest/userguide/docker-push-ecr-image.html).
  A push (an upload, a manifest ``PUT``) to a missing repository under the prefix of a template
  applied for ``CREATE_ON_PUSH`` (the longest prefix; ``ROOT`` matches every name:
  https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_CreateRepositoryCreationTemplate.html)
  creates it with the template's settings (:func:`template_for`, ``create``); any other request
  on a repository that does not exist answers ``404 NAME_UNKNOWN``;
  a tag of an ``IMMUTABLE`` repository that points at another digest is not moved (``400
  TAG_INVALID``, the API's ``ImageTagAlreadyExistsException``):
  https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-tag-mutability.html.
* **Per-action rates** (``PutImage`` 10/s, ``InitiateLayerUpload`` and ``CompleteLayerUpload``
  100/s, ``UploadLayerPart`` 500/s) are enforced with ``429 TOOMANYREQUESTS`` ("Rate exceeded",
  no ``Retry-After``), as ECR answers Docker clients:
  https://docs.aws.amazon.com/AmazonECR/latest/userguide/service-quotas.html and
  https://docs.aws.amazon.com/AmazonECR/latest/userguide/common-errors.html (a throttled manifest
  ``PUT`` seen from a client: https://github.com/containerd/containerd/issues/10447). Every 429 the
  front sends is counted (``rejected_429``, and ``throttled_<action>``), and every manifest it
  accepts (``PutImage``), so a benchmark can set the calls against the rate.
* **The OCI 1.1 referrers API** lists the manifests pushed with a ``subject``
  (:mod:`devstack.registries.referrers`; https://docs.aws.amazon.com/AmazonECR/latest/userguide/images.html).
  With ``refuse_subject`` set, such a manifest is refused with ``405 UNSUPPORTED``, as ECR has
  refused ``oras copy -r``: https://github.com/aws/containers-roadmap/issues/2783.

* **Pulls from other accounts** are allowed by the repository's policy alone, evaluated for
  the caller (:class:`Principal`, its account and organisation path) by a judge injected from
  the IAM stand-in (``allows``); a caller of another account that no statement allows gets
  ``403 DENIED`` naming the action, as ECR answers. (Its own account's IAM must allow the
  call too: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic-cross-account.html;
  a :class:`Principal` stands for a caller whose own IAM does.)

Which repositories exist, and their tag mutability, come from a callable: moto's ECR backend
in the local stack, a dictionary in functional tests.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from devstack.faults import Faults
from devstack.registries.cdn import BlobCdn
from devstack.registries.proxy import (
    Answer,
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
from devstack.registries.referrers import PATH as REFERRERS
from devstack.registries.referrers import Referrers

_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
_BLOB = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<ref>sha256:[0-9a-f]{64})$")
_UPLOAD = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<session>[^/]*)$")
_TAGS = re.compile(r"^/v2/(?P<name>.+)/tags/list$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_ROUTES = (("manifest", _MANIFEST), ("blob", _BLOB), ("upload", _UPLOAD), ("tags", _TAGS), ("referrers", REFERRERS))

#: ECR's default quotas (requests per second, per account and region), by API action.
DEFAULT_RATES: dict[str, float] = {
    "PutImage": 10.0,
    "InitiateLayerUpload": 100.0,
    "UploadLayerPart": 500.0,
    "CompleteLayerUpload": 100.0,
}

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE_MANIFESTS = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})

# The fields each schema defines; anything else is refused.
_DOCKER_DESCRIPTOR = frozenset({"mediaType", "size", "digest", "urls"})
_OCI_DESCRIPTOR = frozenset({"mediaType", "size", "digest", "urls", "annotations", "data", "artifactType"})
_PLATFORM = frozenset({"architecture", "os", "os.version", "os.features", "variant"})
_SCHEMAS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    DOCKER_MANIFEST: (frozenset({"schemaVersion", "mediaType", "config", "layers"}), _DOCKER_DESCRIPTOR),
    DOCKER_LIST: (frozenset({"schemaVersion", "mediaType", "manifests"}), _DOCKER_DESCRIPTOR | {"platform"}),
    OCI_MANIFEST: (
        frozenset({"schemaVersion", "mediaType", "artifactType", "config", "layers", "subject", "annotations"}),
        _OCI_DESCRIPTOR,
    ),
    OCI_INDEX: (
        frozenset({"schemaVersion", "mediaType", "artifactType", "manifests", "subject", "annotations"}),
        _OCI_DESCRIPTOR | {"platform"},
    ),
}


class ManifestInvalidError(ValueError):
    """The manifest breaks its media type's schema; the message says where."""


def _descriptor(value: Any, allowed: frozenset[str], where: str) -> None:
    if not isinstance(value, Mapping):
        raise ManifestInvalidError(f"{where} is not an object")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ManifestInvalidError(f"{where} has fields the schema does not define: {', '.join(unknown)}")
    if not isinstance(value.get("mediaType"), str) or not isinstance(value.get("size"), int):
        raise ManifestInvalidError(f"{where} needs a mediaType and an integer size")
    if not _DIGEST.match(str(value.get("digest", ""))):
        raise ManifestInvalidError(f"{where} has no valid digest")
    platform = value.get("platform")
    if platform is not None:
        if not isinstance(platform, Mapping) or not {"architecture", "os"} <= set(platform):
            raise ManifestInvalidError(f"{where}.platform needs architecture and os")
        extra = sorted(set(platform) - _PLATFORM)
        if extra:
            raise ManifestInvalidError(f"{where}.platform has fields the schema does not define: {', '.join(extra)}")


def validate_manifest(content_type: str, body: bytes) -> dict[str, Any]:
    """Check a manifest as ECR does; returns the parsed document, or raises ManifestInvalidError.

    >>> validate_manifest(DOCKER_LIST, b'{"schemaVersion":2,"mediaType":"%s","manifests":[],"annotations":{}}'
    ...                   % DOCKER_LIST.encode())
    Traceback (most recent call last):
    ...
    devstack.registries.ecrfront.ManifestInvalidError: the manifest has fields the schema does not define: annotations
    """
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise ManifestInvalidError(f"the manifest is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ManifestInvalidError("the manifest is not a JSON object")
    media_type = str(document.get("mediaType") or content_type)
    if content_type and media_type != content_type:
        raise ManifestInvalidError(f"mediaType {media_type} does not match Content-Type {content_type}")
    if media_type not in _SCHEMAS:
        raise ManifestInvalidError(f"unsupported manifest media type {media_type!r}")
    top, descriptor = _SCHEMAS[media_type]
    unknown = sorted(set(document) - top)
    if unknown:
        raise ManifestInvalidError(f"the manifest has fields the schema does not define: {', '.join(unknown)}")
    if document.get("schemaVersion") != 2:
        raise ManifestInvalidError("schemaVersion must be 2")
    if media_type in IMAGE_MANIFESTS:
        _descriptor(document.get("config"), descriptor, "config")
        layers = document.get("layers")
        if not isinstance(layers, list):
            raise ManifestInvalidError("layers must be a list")
        for n, layer in enumerate(layers):
            _descriptor(layer, descriptor, f"layers[{n}]")
    else:
        manifests = document.get("manifests")
        if not isinstance(manifests, list):
            raise ManifestInvalidError("manifests must be a list")
        for n, child in enumerate(manifests):
            _descriptor(child, descriptor, f"manifests[{n}]")
    if document.get("subject") is not None:
        _descriptor(document["subject"], _OCI_DESCRIPTOR, "subject")
    return document


@dataclass
class Repository:
    """What the front needs to know of an ECR repository."""

    name: str
    mutable: bool = True
    #: its repository policy (JSON text), if any
    policy: str | None = None


@dataclass(frozen=True)
class Principal:
    """A caller of another account: its ARN, account and ``aws:PrincipalOrgPaths``."""

    arn: str
    account: str
    org_paths: tuple[str, ...] = ()


#: The API action a registry request is authorised as, by route and method.
_ACTIONS = {
    ("manifest", "GET"): "ecr:BatchGetImage",
    ("manifest", "HEAD"): "ecr:BatchGetImage",
    ("blob", "GET"): "ecr:GetDownloadUrlForLayer",
    ("blob", "HEAD"): "ecr:BatchCheckLayerAvailability",
    ("tags", "GET"): "ecr:ListImages",
    ("referrers", "GET"): "ecr:BatchGetImage",
}


def template_for(
    templates: list[dict[str, Any]], name: str, applied_for: str = "CREATE_ON_PUSH"
) -> dict[str, Any] | None:
    """The creation template that makes repository ``name``: the longest prefix, ``ROOT`` last.

    >>> template_for([{"Prefix": "ROOT", "AppliedFor": ["CREATE_ON_PUSH"]},
    ...               {"Prefix": "mirror", "AppliedFor": ["CREATE_ON_PUSH"]}], "mirror/nginx")["Prefix"]
    'mirror'
    """
    fitting = [
        t
        for t in templates
        if applied_for in t.get("AppliedFor", [])
        and (t["Prefix"] == "ROOT" or name.startswith(str(t["Prefix"]).rstrip("/") + "/"))
    ]
    return max(fitting, key=lambda t: -1 if t["Prefix"] == "ROOT" else len(t["Prefix"]), default=None)


@dataclass
class _Bucket:
    """A token bucket: ``rate`` tokens a second, at most ``rate`` held (one second of burst)."""

    rate: float
    tokens: float = 0.0
    at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.rate

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class EcrFront:
    """A strict "ECR" in front of a Distribution registry with basic auth."""

    def __init__(
        self,
        workdir: Path,
        *,
        repositories: Callable[[str], Repository | None] | None = None,
        create: Callable[[str], Repository | None] | None = None,
        allows: Callable[[Repository, Principal, str, str], bool] | None = None,
        blob_mounting: bool = False,
        rates: Mapping[str, float] | None = None,
        account: str = "123456789012",
        region: str = "us-east-1",
    ) -> None:
        self.workdir = workdir
        #: the registry's account and region, in the ARNs it names
        self.account, self.region = account, region
        self.backend: str | None = None
        self._created: dict[str, Repository] = {}
        self.repositories = repositories or self._created.get
        #: the registry's creation templates (resolved), for a front without moto
        self.templates: list[dict[str, Any]] = []
        #: makes a missing repository on a push, or says it may not be made (None)
        self.create = create or self._create_from_templates
        #: whether a repository's policy lets a caller of another account do an action
        self.allows = allows
        #: the Authorization header of each caller of another account
        self.principals: dict[str, Principal] = {}
        #: what the front sends the backend registry for those callers
        self.backend_authorization = ""
        self.blob_mounting = blob_mounting
        self.counts: Counter[str] = Counter()
        #: answers injected by the tests (a refused push, a server error), by request kind
        self.faults: Faults[Fault] = Faults()
        self._lock = threading.Lock()
        #: one creation on push per repository at a time; pushes to other repositories go on
        self._creating: dict[str, threading.Lock] = {}
        self._buckets = {action: _Bucket(rate) for action, rate in {**DEFAULT_RATES, **(rates or {})}.items()}
        #: repository -> image manifest digest -> the blobs it references
        self._references: dict[str, dict[str, frozenset[str]]] = {}
        #: ECR has the OCI 1.1 referrers API (https://docs.aws.amazon.com/AmazonECR/latest/userguide/images.html)
        self.referrers = Referrers()
        #: answer 405 to a manifest with a ``subject``, as ECR has answered ``oras copy -r``
        #: (https://github.com/aws/containers-roadmap/issues/2783)
        self.refuse_subject = False
        self.cdn = BlobCdn(workdir / "data")
        self._server = QuietServer(("127.0.0.1", 0), self._handler_class())
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def start(self, backend: str) -> EcrFront:
        self.backend = backend
        self._thread = threading.Thread(target=self._server.serve_forever, name="ecr-front", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()
        self.cdn.stop()

    # -- controls for tests ------------------------------------------------------------
    def create_repository(self, name: str, *, mutable: bool = True) -> None:
        """For a front without moto: make a repository exist (``CreateRepository``)."""
        self._created[name] = Repository(name, mutable)

    def _create_from_templates(self, name: str) -> Repository | None:
        template = template_for(self.templates, name)
        if template is None:
            return None
        created = Repository(name, template.get("ImageTagMutability", "MUTABLE") != "IMMUTABLE")
        self._created[name] = created
        return created

    def _create_on_push(self, name: str) -> Repository | None:
        """Create a missing repository on a push, with its template's settings (None: no template
        applies). Concurrent pushes to it (a job's uploads of one image's blobs) create it once,
        and every one of them goes on, as on ECR."""
        with self._lock:
            creating = self._creating.setdefault(name, threading.Lock())
        with creating:
            found = self.repositories(name)
            if found is not None:
                return found
            created = self.create(name)
            if created is not None:
                with self._lock:
                    self.counts["created_on_push"] += 1
            return created

    def add_principal(self, principal: Principal, authorization: str) -> None:
        """Let a caller of another account in with ``authorization`` (its own registry token)."""
        self.principals[authorization] = principal

    def inject(self, fault: Fault) -> None:
        self.faults.add(fault)

    def snapshot(self) -> dict[str, int]:
        """Counts of what the front refused, redirected or throttled, by kind."""
        with self._lock:
            return {**self.counts, "cdn_served": self.cdn.served}

    def set_rate(self, action: str, rate: float) -> None:
        with self._lock:
            self._buckets[action] = _Bucket(rate)

    def referenced(self, repository: str, digest: str) -> bool:
        with self._lock:
            return any(digest in blobs for blobs in self._references.get(repository, {}).values())

    # -- rules -------------------------------------------------------------------------
    def _throttled(self, action: str) -> bool:
        with self._lock:
            bucket = self._buckets.get(action)
            if bucket is None or bucket.take():
                return False
            self.counts[f"throttled_{action}"] += 1
            self.counts["rejected_429"] += 1
            return True

    def _remember(self, repository: str, digest: str, document: Mapping[str, Any]) -> None:
        blobs = {str(document["config"]["digest"])} | {str(layer["digest"]) for layer in document["layers"]}
        with self._lock:
            self._references.setdefault(repository, {})[digest] = frozenset(blobs)

    def _forget(self, repository: str, digest: str) -> None:
        with self._lock:
            self._references.get(repository, {}).pop(digest, None)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        front = self

        class Handler(QuietHandler):
            def _forward(self, path: str | None = None, body: bytes | None = None) -> Answer:
                assert front.backend is not None
                return forward(front.backend, self.command, path or self.path, self.headers, body)

            def _name_unknown(self, name: str) -> None:
                registry_error(
                    self,
                    404,
                    "NAME_UNKNOWN",
                    f"The repository with name '{name}' does not exist in the registry",
                )

            def _dispatch(self) -> None:
                parts = urlsplit(self.path)
                path = parts.path
                body = read_body(self)
                matched = next(((kind, m) for kind, rx in _ROUTES if (m := rx.match(path))), None)
                if matched is not None and matched[0] == "referrers" and "Authorization" not in self.headers:
                    challenge(self, str(front.backend))  # ECR asks for credentials first, as on any route
                    return
                if matched is None or "Authorization" not in self.headers:
                    if matched is not None:
                        front.counts["challenged"] += 1  # a request sent without the token: a 401
                    relay(self, self._forward(body=body))  # the ping, the catalogue, the 401 challenge
                    return
                kind, match = matched
                name = match.group("name")
                fault = request_fault(front.faults, request_kind(self.command, path)[0], name)
                if fault is not None and fault.status:
                    reply(self, fault.status, fault.body, fault.headers)
                    return
                caller = front.principals.get(str(self.headers.get("Authorization")))
                repository = front.repositories(name)
                pushing = (kind == "upload" and self.command == "POST") or (
                    kind == "manifest" and self.command == "PUT"
                )
                if repository is None and pushing and caller is None:
                    repository = front._create_on_push(name)
                if repository is None:
                    front.counts["name_unknown"] += 1
                    self._name_unknown(name)
                    return
                if caller is not None and not self._allowed(repository, caller, kind):
                    return
                if kind == "manifest":
                    self._manifest(repository, match.group("ref"), body)
                elif kind == "referrers":
                    front.counts["referrers"] += 1
                    answer, headers = front.referrers.answer(repository.name, match.group("digest"), parts.query)
                    reply(self, 200, answer, headers)
                elif kind == "blob":
                    self._blob(repository, match.group("ref"), body)
                elif kind == "upload":
                    self._upload(repository, match.group("session"), parse_qs(parts.query), body)
                else:
                    relay(self, self._forward(body=body))

            def _allowed(self, repository: Repository, caller: Principal, kind: str) -> bool:
                """A caller of another account: the repository's policy decides (pushes are not
                modelled, so refused); allowed, the front reaches the backend with its own login."""
                action = _ACTIONS.get((kind, self.command), "ecr:PutImage")
                arn = f"arn:aws:ecr:{front.region}:{front.account}:repository/{repository.name}"
                if front.allows is None or not front.allows(repository, caller, action, arn):
                    front.counts["denied"] += 1
                    message = (
                        f"User: {caller.arn} is not authorized to perform: {action} on resource: {arn} "
                        f"because no resource-based policy allows the {action} action"
                    )
                    registry_error(self, 403, "DENIED", message)
                    return False
                del self.headers["Authorization"]
                self.headers["Authorization"] = front.backend_authorization
                return True

            def _manifest(self, repository: Repository, reference: str, body: bytes | None) -> None:
                if self.command == "PUT":
                    if front._throttled("PutImage"):
                        registry_error(self, 429, "TOOMANYREQUESTS", "Rate exceeded")
                        return
                    content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                    try:
                        document = validate_manifest(content_type, body or b"")
                    except ManifestInvalidError as exc:
                        front.counts["manifest_invalid"] += 1
                        registry_error(self, 400, "MANIFEST_INVALID", f"Invalid parameter at 'imageManifest': {exc}")
                        return
                    if document.get("subject") is not None and front.refuse_subject:
                        front.counts["subject_refused"] += 1
                        registry_error(self, 405, "UNSUPPORTED", "The operation is unsupported.")
                        return
                    if not repository.mutable and not _DIGEST.match(reference):
                        existing = forward(str(front.backend), "HEAD", self.path, self._accept_all(), None).header(
                            "Docker-Content-Digest"
                        )
                        digest = "sha256:" + hashlib.sha256(body or b"").hexdigest()
                        if existing and existing != digest:
                            front.counts["tag_invalid"] += 1
                            registry_error(
                                self,
                                400,
                                "TAG_INVALID",
                                f"The image tag '{reference}' already exists in the '{repository.name}' repository "
                                "and cannot be overwritten because the repository is immutable.",
                            )
                            return
                    answer = self._forward(body=body)
                    if answer.status == 201:
                        with front._lock:
                            front.counts["PutImage"] += 1
                    if answer.status == 201 and document.get("mediaType", content_type) in IMAGE_MANIFESTS:
                        front._remember(repository.name, str(answer.header("Docker-Content-Digest")), document)
                    subject = (
                        front.referrers.record(repository.name, body or b"", content_type)
                        if answer.status == 201
                        else None
                    )
                    relay(self, answer, {"OCI-Subject": subject} if subject else None)
                    return
                answer = self._forward(body=body)
                if self.command == "DELETE" and answer.status == 202:
                    front._forget(repository.name, reference)
                relay(self, answer)

            def _accept_all(self) -> Any:
                headers = self.headers.__class__()
                headers["Authorization"] = self.headers["Authorization"]
                headers["Host"] = self.headers.get("Host", "")
                headers["Accept"] = ", ".join(_SCHEMAS)
                return headers

            def _blob(self, repository: Repository, digest: str, body: bytes | None) -> None:
                if self.command != "GET":
                    answer = self._forward(body=body)
                    if self.command == "HEAD" and answer.status == 500:
                        # the backing registry reads a blob's link file while another request of
                        # the repository writes it, and answers 500 "invalid checksum digest
                        # format"; ECR answers such a HEAD 200 or 404, so the front asks again
                        time.sleep(0.05)
                        answer = self._forward(body=body)
                    relay(self, answer)
                    return
                if not front.referenced(repository.name, digest):
                    front.counts["blob_unknown"] += 1
                    registry_error(self, 404, "BLOB_UNKNOWN", f"blob {digest} is not referenced by an image")
                    return
                front.counts["blob_redirect"] += 1
                reply(self, 307, b"", {"Location": front.cdn.sign(digest), "Docker-Content-Digest": digest})

            def _upload(
                self, repository: Repository, session: str, query: dict[str, list[str]], body: bytes | None
            ) -> None:
                action = {"POST": "InitiateLayerUpload", "PATCH": "UploadLayerPart", "PUT": "CompleteLayerUpload"}
                if self.command in action and front._throttled(action[self.command]):
                    registry_error(self, 429, "TOOMANYREQUESTS", "Rate exceeded")
                    return
                path = self.path
                if self.command == "POST" and "mount" in query:
                    source = query.get("from", [""])[0]
                    digest = query["mount"][0]
                    if front.blob_mounting and front.repositories(source) and front.referenced(source, digest):
                        front.counts["mounted"] += 1
                    else:  # ECR opens an upload session instead: 202, as the spec allows
                        front.counts["mount_refused"] += 1
                        rest = urlencode({k: v[0] for k, v in query.items() if k not in ("mount", "from")})
                        path = urlsplit(self.path).path + (f"?{rest}" if rest else "")
                relay(self, self._forward(path=path, body=body))

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _dispatch  # noqa: N815

        return Handler
