"""What a registry request can fail with, named by the registry's error codes and by side.

Pure: the classes and the reading of an error answer's body (the distribution spec's
``{"errors": [{"code": ..., "message": ...}]}``), without a connection. The steps catch these.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from hubmirror.domain.ratelimit import RateLimit


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


def error_list(data: bytes) -> list[dict[str, Any]]:
    """The ``errors`` of a registry's error answer (the distribution spec's shape); [] if none."""
    try:
        errors = json.loads(data).get("errors") or []
    except (ValueError, AttributeError):
        return []
    return [e for e in errors if isinstance(e, dict)]


def not_found_class(data: bytes, path: str) -> type[NotFoundError]:
    """The 404's error class, by the registry's error code, else by what was asked for."""
    codes = {str(e.get("code")) for e in error_list(data)}
    if "NAME_UNKNOWN" in codes:
        return NameUnknownError
    if "BLOB_UNKNOWN" in codes or "/blobs/" in path:
        return BlobUnknownError
    if "MANIFEST_UNKNOWN" in codes or "/manifests/" in path:
        return ManifestUnknownError
    return NotFoundError


def error_detail(data: bytes) -> str:
    parts = [f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in error_list(data)]
    return f" ({'; '.join(parts)})" if parts else ""


def error_for(
    status: int, answer: bytes, *, where: str, path: str, url: str, base_url: str, credentials: bool
) -> RegistryError:
    """The error for an answer nothing retries or follows: by status, error code and host.

    >>> error_for(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"no repo"}]}', where="upstream h/r",
    ...           path="/v2/r/manifests/1", url="https://h/v2/r/manifests/1", base_url="https://h", credentials=False)
    NameUnknownError('upstream h/r: 1 not found (NAME_UNKNOWN: no repo)')
    """
    detail = error_detail(answer)
    thing = path.rsplit("/", 1)[-1]
    elsewhere = urlsplit(url).netloc
    if elsewhere != urlsplit(base_url).netloc:  # the download host a redirect sent us to
        return RegistryUnavailableError(
            f"{where}: the download of {thing} from {elsewhere} (a redirect) answered {status}", status=status
        )
    if status == 404:
        return not_found_class(answer, path)(f"{where}: {thing} not found{detail}", status=status)
    if status in (401, 403):
        who = "with the configured credentials" if credentials else "anonymously"
        return AuthenticationError(f"{where}: access denied {who} ({status}){detail}", status=status)
    if status >= 500:
        return RegistryUnavailableError(f"{where}: server error {status}{detail}", status=status)
    return RegistryError(f"{where}: unexpected answer {status}{detail}", status=status)
