"""What the registry client hands back, and the sizes it holds registries to. Pure."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from hubmirror.domain.ratelimit import RateLimit
from hubmirror.domain.registry.errors import RegistryError

#: Which side of the mirror a registry is, named in every error it causes.
Side = Literal["upstream", "target"]
#: The most tags read from one repository (the plan's setting ``tag_list_limit``).
TAG_LIST_LIMIT = 100_000
#: The largest manifest hubmirror reads: the size the OCI distribution spec asks registries
#: to accept at least ("Registries SHOULD accept manifests of at least 4 megabytes",
#: https://github.com/opencontainers/distribution-spec/blob/main/spec.md), and the limit of
#: Distribution 3. A larger one may be refused by the target; reading it first would cost a pull.
MANIFEST_MAX_BYTES = 4 * 2**20
#: The largest layer ECR stores: "Maximum layer size: 52,000 MiB", not adjustable
#: (https://docs.aws.amazon.com/AmazonECR/latest/userguide/service-quotas.html).
LAYER_MAX_BYTES = 52_000 * 2**20


@dataclass(frozen=True)
class Credentials:
    """A user name and password (or token) for one registry. Never logged.

    ``preemptive``: sent as basic auth with the first request, before the registry challenges.
    Only for ECR's own token, which ECR takes "with every HTTP request" (HTTP API
    authentication: https://docs.aws.amazon.com/AmazonECR/latest/userguide/registry_auth.html);
    any other registry's credentials go where its challenge says (a token service, a realm).
    """

    username: str
    password: str = field(repr=False)
    preemptive: bool = False

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
