"""OCI and Docker manifest facts: media types, platforms, annotations, index selection.

Pure: no I/O, no environment.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, NotRequired, TypedDict

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
#: Sent on every manifest request, so a multi-platform image answers with its index digest.
MANIFEST_MEDIA_TYPES = (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
#: Docker's deprecated image manifest v2 schema 1, signed and not, which registries still serve
#: for old images (https://distribution.github.io/distribution/spec/deprecated-schema-v1/).
SCHEMA1_MEDIA_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.docker.distribution.manifest.v1+json",
    }
)

#: What a Docker manifest list may hold as ECR validates it (the schema's fields, none of the
#: extensions other registries let through): a list with more is refused ``MANIFEST_INVALID``,
#: as ``platform.features`` has been (https://github.com/aws/containers-roadmap/issues/2439).
_DOCKER_LIST_FIELDS = frozenset({"schemaVersion", "mediaType", "manifests"})
_DOCKER_PLATFORM_FIELDS = frozenset({"architecture", "os", "os.version", "os.features", "variant"})


class Descriptor(TypedDict):
    """An OCI content descriptor, as manifests and indexes list them (image-spec descriptor.md)."""

    mediaType: str
    digest: str
    size: int
    urls: NotRequired[list[str]]
    annotations: NotRequired[dict[str, str]]
    platform: NotRequired[dict[str, Any]]
    artifactType: NotRequired[str]


def docker_list_refusal(document: Mapping[str, Any]) -> str | None:
    """What ECR would refuse in a Docker manifest list copied as it is, in ECR's words; None if nothing.

    >>> docker_list_refusal({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
    ...     {"platform": {"os": "linux", "architecture": "amd64", "features": ["sse4"]}}]})
    'manifests[0].platform has fields the schema does not define: features'
    """
    extra = sorted(set(document) - _DOCKER_LIST_FIELDS)
    if extra:
        return f"the manifest has fields the schema does not define: {', '.join(extra)}"
    for n, entry in enumerate(document.get("manifests") or []):
        platform = entry.get("platform") if isinstance(entry, Mapping) else None
        extra = sorted(set(platform) - _DOCKER_PLATFORM_FIELDS) if isinstance(platform, Mapping) else []
        if extra:
            return f"manifests[{n}].platform has fields the schema does not define: {', '.join(extra)}"
    return None


ANNOTATION_BASE_NAME = "org.opencontainers.image.base.name"
ANNOTATION_BASE_DIGEST = "org.opencontainers.image.base.digest"
ANNOTATION_RECIPE = "io.hubmirror.recipe"

#: Platforms an allowlist may name (``os/arch[/variant]``).
KNOWN_PLATFORMS = frozenset(
    {
        "linux/amd64",
        "linux/amd64/v2",
        "linux/amd64/v3",
        "linux/arm64",
        "linux/arm64/v8",
        "linux/arm/v5",
        "linux/arm/v6",
        "linux/arm/v7",
        "linux/386",
        "linux/ppc64le",
        "linux/s390x",
        "linux/riscv64",
        "linux/mips64le",
        "linux/loong64",
        "windows/amd64",
        "windows/arm64",
    }
)

#: How people often write an architecture, and what image indexes call it.
ARCHITECTURE_SPELLINGS = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "x64": "amd64",
    "aarch64": "arm64",
    "armv8": "arm64",
    "arm64v8": "arm64",
    "armhf": "arm/v7",
    "armv7": "arm/v7",
    "armv7l": "arm/v7",
    "arm32v7": "arm/v7",
    "armv6": "arm/v6",
    "armv6l": "arm/v6",
    "arm32v6": "arm/v6",
    "i386": "386",
    "i686": "386",
    "x86": "386",
    "ppc64el": "ppc64le",
}
_OPERATING_SYSTEMS = ("linux", "windows")


def platform_suggestion(text: str) -> str | None:
    """The known platform a common spelling means (``linux/x86_64`` is ``linux/amd64``), or None.

    >>> platform_suggestion("linux/x86_64"), platform_suggestion("aarch64"), platform_suggestion("arm64/v8")
    ('linux/amd64', 'linux/arm64', 'linux/arm64')
    >>> platform_suggestion("plan9/386") is None
    True
    """
    parts = text.strip().lower().split("/")
    if parts[0] not in _OPERATING_SYSTEMS:
        parts.insert(0, "linux")
    if len(parts) < 2:
        return None
    arch = ARCHITECTURE_SPELLINGS.get(parts[1], parts[1])
    candidate = "/".join([parts[0], arch, *parts[2:]])
    return normalise_platform(candidate) if candidate in KNOWN_PLATFORMS else None


#: cosign's tag schema: a signature, attestations and an SBOM about an image live in its
#: repository under tags named after its digest, ``sha256-<hex>.sig`` and so on
#: (https://github.com/sigstore/cosign/blob/main/specs/SIGNATURE_SPEC.md).
COSIGN_SUFFIXES = ("sig", "att", "sbom")


def cosign_tags(digest: str) -> list[str]:
    """The cosign tag-schema tags of an image, its signature's first.

    >>> cosign_tags("sha256:ab")
    ['sha256-ab.sig', 'sha256-ab.att', 'sha256-ab.sbom']
    """
    algorithm, _, hexdigest = digest.partition(":")
    return [f"{algorithm}-{hexdigest}.{suffix}" for suffix in COSIGN_SUFFIXES]


def referrers_tag(digest: str) -> str:
    """The OCI 1.1 referrers tag schema: the tag of the index listing ``digest``'s referrers,
    for registries without the referrers API (distribution-spec, "Referrers Tag Schema").

    >>> referrers_tag("sha256:ab")
    'sha256-ab'
    """
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}-{hexdigest}"[:128]


def sha256_digest(data: bytes) -> str:
    """The OCI digest of ``data``.

    >>> sha256_digest(b"")
    'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, no spaces), for hashing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def normalise_platform(platform: str) -> str:
    """``linux/arm64/v8`` and ``linux/arm64`` name the same platform; keep the short one.

    >>> normalise_platform("linux/arm64/v8")
    'linux/arm64'
    """
    return "linux/arm64" if platform == "linux/arm64/v8" else platform


def descriptor_platform(descriptor: Descriptor | Mapping[str, Any]) -> str | None:
    """``os/arch[/variant]`` of an index entry, or None for entries without a platform."""
    platform = descriptor.get("platform")
    if not isinstance(platform, Mapping):
        return None
    os_name, arch = platform.get("os"), platform.get("architecture")
    if not os_name or not arch or os_name == "unknown" or arch == "unknown":
        return None
    variant = platform.get("variant")
    return normalise_platform(f"{os_name}/{arch}" + (f"/{variant}" if variant else ""))


def index_platforms(index: Mapping[str, Any]) -> list[str]:
    """Platforms of the runnable images of an index, in index order (attestations skipped)."""
    seen: list[str] = []
    for descriptor in index.get("manifests", []):
        platform = descriptor_platform(descriptor)
        if platform is not None and platform not in seen:
            seen.append(platform)
    return seen


def select_platforms(index: Mapping[str, Any], platforms: Iterable[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The index entries for ``platforms`` plus the attestations that refer to them.

    Returns ``(descriptors, missing)``: the entries kept verbatim, in index order, and the
    requested platforms the index does not hold.
    """
    wanted = {normalise_platform(p) for p in platforms}
    kept: list[dict[str, Any]] = []
    kept_digests: set[str] = set()
    found: set[str] = set()
    manifests = list(index.get("manifests", []))
    for descriptor in manifests:
        platform = descriptor_platform(descriptor)
        if platform in wanted:
            kept.append(dict(descriptor))
            kept_digests.add(descriptor["digest"])
            found.add(platform)
    for descriptor in manifests:
        refers_to = (descriptor.get("annotations") or {}).get("vnd.docker.reference.digest")
        if refers_to in kept_digests:
            kept.append(dict(descriptor))
    order = {d["digest"]: n for n, d in enumerate(manifests)}
    kept.sort(key=lambda d: order[d["digest"]])
    return kept, sorted(wanted - found)


def rewritten_index(
    index: Mapping[str, Any], manifests: Iterable[Mapping[str, Any]], annotations: Mapping[str, str]
) -> dict[str, Any]:
    """An OCI index listing ``manifests`` with ``annotations``, written from an index of either kind.

    A Docker manifest list has no ``annotations`` (ECR refuses them there), so the index a
    rewrite writes is always an OCI index; the manifests it lists are untouched, their
    descriptors kept but for ``platform.features``, which neither schema lets a registry
    such as ECR accept.

    >>> docker = {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": []}
    >>> child = {"mediaType": DOCKER_MANIFEST, "digest": "sha256:ab", "size": 1,
    ...          "platform": {"os": "linux", "architecture": "amd64", "features": ["sse4"]}}
    >>> rewritten_index(docker, [child], {"k": "v"})["manifests"][0]["platform"]
    {'os': 'linux', 'architecture': 'amd64'}
    >>> rewritten_index(docker, [child], {"k": "v"})["mediaType"] == OCI_INDEX
    True
    """
    listed = []
    for descriptor in manifests:
        copy = dict(descriptor)
        if isinstance(copy.get("platform"), Mapping):
            copy["platform"] = {k: v for k, v in copy["platform"].items() if k != "features"}
        listed.append(copy)
    return {
        **{k: v for k, v in index.items() if k not in ("manifests", "mediaType")},
        "mediaType": OCI_INDEX,
        "manifests": listed,
        "annotations": {**(index.get("annotations") or {}), **annotations},
    }
