"""Image references parsed by the distribution reference grammar.

The grammar is the one of ``github.com/distribution/reference``::

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [domain '/'] remote-name
    domain           := host [':' port-number]
    host             := domain-name | IPv4address | \\[ IPv6address \\]
    domain-name      := domain-component ['.' domain-component]*
    domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
    remote-name      := path-component ['/' path-component]*
    path-component   := alpha-numeric [separator alpha-numeric]*
    alpha-numeric    := /[a-z0-9]+/
    separator        := /[_.]|__|[-]+/
    tag              := /[\\w][\\w.-]{0,127}/
    digest           := algorithm ":" hex

plus Docker's normalisation: a name whose first component is not a host (no ``.``, no
``:``, not ``localhost``) lives on ``docker.io``, and a one-component Docker Hub name lives
under ``library/``. Docker Hub's API host is ``registry-1.docker.io``.

This module is pure: no I/O, no environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DOCKER_HUB = "docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
#: Every name Docker Hub goes by.
DOCKER_HUB_NAMES = frozenset({DOCKER_HUB, "index.docker.io", DOCKER_HUB_API_HOST, "registry.hub.docker.com"})
NAME_TOTAL_LENGTH_MAX = 255

_ALPHA_NUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALPHA_NUMERIC}(?:{_SEPARATOR}{_ALPHA_NUMERIC})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = rf"(?:{_DOMAIN_NAME}|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

TAG_RE = re.compile(rf"^{_TAG}$", re.ASCII)
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_REFERENCE_RE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN}/)?{_REMOTE_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$", re.ASCII
)
_DOMAIN_RE = re.compile(rf"^{_DOMAIN}$", re.ASCII)
_REMOTE_NAME_RE = re.compile(rf"^{_REMOTE_NAME}$", re.ASCII)


class InvalidReferenceError(ValueError):
    """A string is not a valid image reference; the message says which rule it breaks."""


@dataclass(frozen=True, order=True)
class ImageReference:
    """An immutable, normalised image reference.

    Examples
    --------
    >>> ref = ImageReference.parse("nginx:1.27")
    >>> ref.registry, ref.repository, ref.tag
    ('docker.io', 'library/nginx', '1.27')
    >>> str(ref)
    'docker.io/library/nginx:1.27'
    >>> ref.api_host
    'registry-1.docker.io'
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageReference:
        """Parse ``text`` by the distribution grammar, normalising Docker Hub names."""
        if not isinstance(text, str) or not text:
            raise InvalidReferenceError("an image reference must be a non-empty string")
        if text != text.strip():
            raise InvalidReferenceError("an image reference must not have leading or trailing whitespace")
        match = _REFERENCE_RE.match(text)
        if match is None:
            raise InvalidReferenceError(_explain(text))
        name = match.group("name")
        if len(name) > NAME_TOTAL_LENGTH_MAX:
            raise InvalidReferenceError(f"the repository name is longer than {NAME_TOTAL_LENGTH_MAX} characters")
        digest = match.group("digest")
        if digest is not None and not DIGEST_RE.match(digest):
            raise InvalidReferenceError("a digest must be 'sha256:' followed by 64 lower-case hex digits")
        registry, repository = split_domain(name)
        return cls(registry=registry, repository=repository, tag=match.group("tag"), digest=digest)

    @property
    def name(self) -> str:
        """``registry/repository``, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """The host that serves the registry API (Docker Hub's differs from its name)."""
        return DOCKER_HUB_API_HOST if self.registry == DOCKER_HUB else self.registry

    @property
    def familiar(self) -> str:
        """The short form people type: ``nginx:1.27`` rather than ``docker.io/library/nginx:1.27``."""
        name = self.name
        if self.registry == DOCKER_HUB:
            name = self.repository.removeprefix("library/")
        return name + self._suffix()

    def with_tag(self, tag: str) -> ImageReference:
        if not TAG_RE.match(tag):
            raise InvalidReferenceError(f"{tag!r} is not a valid tag: {TAG_RULE}")
        return ImageReference(self.registry, self.repository, tag, None)

    def with_digest(self, digest: str) -> ImageReference:
        if not DIGEST_RE.match(digest):
            raise InvalidReferenceError(f"{digest!r} is not a sha256 digest")
        return ImageReference(self.registry, self.repository, self.tag, digest)

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.name + self._suffix()


HOST_RULE = "(a host name or IP address, then an optional :port)"
TAG_RULE = "a tag is 1 to 128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'"


def split_domain(name: str) -> tuple[str, str]:
    """Split a reference name into (registry, repository) with Docker's normalisation.

    >>> split_domain("nginx")
    ('docker.io', 'library/nginx')
    >>> split_domain("localhost:5000/team/app")
    ('localhost:5000', 'team/app')
    """
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        if not _DOMAIN_RE.match(first):
            raise InvalidReferenceError(f"{first!r} is not a valid registry host {HOST_RULE}")
        registry, repository = first, rest
    else:
        registry, repository = DOCKER_HUB, name
    if registry in DOCKER_HUB_NAMES:
        registry = DOCKER_HUB
    if not _REMOTE_NAME_RE.match(repository):
        raise InvalidReferenceError(_explain(repository))
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    return registry, repository


#: Docker Hub's web site: a page's address is not an image name.
DOCKER_HUB_WEB_HOSTS = frozenset({"hub.docker.com", "www.hub.docker.com"})
_DOCKER_HUB_PAGE_RE = re.compile(
    r"^(?:https?://)?(?:www\.)?hub\.docker\.com/(?:(?P<official>_)|r)/(?P<name>[^/?#\s]+(?:/[^/?#\s]+)?)",
    re.IGNORECASE,
)


def docker_hub_page_source(text: str) -> str | None:
    """The image a Docker Hub web page address names (what to write instead), or None.

    >>> docker_hub_page_source("hub.docker.com/r/bitnami/redis")
    'bitnami/redis'
    >>> docker_hub_page_source("https://hub.docker.com/_/nginx/tags")
    'nginx'
    >>> docker_hub_page_source("ghcr.io/org/app") is None
    True
    """
    match = _DOCKER_HUB_PAGE_RE.match(text.strip())
    if match is None:
        return None
    name = match.group("name")
    if match.group("official"):
        name = name.split("/", 1)[0]
    elif "/" not in name:
        return None
    return name.lower()


def is_loopback(host: str) -> bool:
    """Whether a registry host is on the loopback interface (spoken to over plain HTTP)."""
    hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]", maxsplit=1)[0] + "]"
    return hostname in ("localhost", "[::1]") or hostname.startswith("127.")


def _explain(text: str) -> str:
    if any(c.isspace() for c in text):
        return "an image reference must not contain whitespace"
    if "://" in text:
        return "an image reference has no URL scheme (write 'ghcr.io/org/app', not 'https://...')"
    name = text.split("@", 1)[0]
    first, sep, _ = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost") and not _DOMAIN_RE.match(first):
        return f"{first!r} is not a valid registry host {HOST_RULE}"
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, _, tag = name.rpartition(":")
        if not TAG_RE.match(tag):
            return f"{tag!r} is not a valid tag: {TAG_RULE}"
    path = name.split("/", 1)[1] if "/" in name and ("." in name.split("/")[0] or ":" in name.split("/")[0]) else name
    if any(c.isupper() for c in path):
        return "repository names must be lower case"
    if "//" in name or name.endswith("/") or name.startswith("/"):
        return "repository path components must not be empty"
    if "@" in text:
        return "a digest must be 'sha256:' followed by 64 lower-case hex digits"
    return (
        "repository path components are lower-case letters and digits, "
        "separated by '.', '_', '__' or dashes, and joined by '/'"
    )


#: Amazon ECR's repository name grammar, and its longest name.
ECR_REPOSITORY_MAX = 256
ECR_REPOSITORY_PATTERN = r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$"
ECR_REPOSITORY_RE = re.compile(ECR_REPOSITORY_PATTERN)
