"""Rendering the Dockerfile and build context of a derived image.

The Dockerfile starts ``FROM <upstream>@<digest>``: the build uses exactly the image the
check saw, even if the tag moves meanwhile. The context is a deterministic gzip'd tar
(``Dockerfile`` and ``hubmirror.json``), addressed by its own digest.

Pure: no I/O, no environment.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from dataclasses import dataclass
from typing import Any

from hubmirror.allowlist.rules import build_command_problem
from hubmirror.domain.items import WorkItem
from hubmirror.domain.oci import ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME, ANNOTATION_RECIPE, sha256_digest
from hubmirror.domain.references import ImageReference


class RenderError(ValueError):
    """A build line failed the allowlist rules at render time (defence in depth)."""


@dataclass(frozen=True)
class BuildContext:
    """A rendered build context: its bytes, digest and the pieces it was made of."""

    dockerfile: str
    metadata: dict[str, Any]
    archive: bytes

    @property
    def digest(self) -> str:
        return sha256_digest(self.archive)


def render_dockerfile(item: WorkItem, upstream_digest: str) -> str:
    """The Dockerfile for ``item``, pinned to ``upstream_digest``.

    >>> lines = ("RUN mkdir /etc/vault",)
    >>> item = WorkItem("docker.io/hashicorp/vault", "1.14", "m/vault", "1.14", build_commands=lines)
    >>> print(render_dockerfile(item, "sha256:" + "0" * 64), end="")
    FROM docker.io/hashicorp/vault@sha256:0000000000000000000000000000000000000000000000000000000000000000
    RUN mkdir /etc/vault
    """
    base = ImageReference.parse(item.source).with_digest(upstream_digest)
    lines = [f"FROM {base}"]
    for line in item.build_commands:
        problem = build_command_problem(line)
        if problem:
            raise RenderError(f"{item.key}: build line {line!r}: {problem}")
        lines.append(line)
    return "\n".join(lines) + "\n"


def image_annotations(item: WorkItem, upstream_digest: str, recipe: str) -> dict[str, str]:
    """The annotations every derived image carries (OCI base image, hubmirror recipe)."""
    return {
        ANNOTATION_BASE_NAME: str(item.upstream),
        ANNOTATION_BASE_DIGEST: upstream_digest,
        ANNOTATION_RECIPE: recipe,
    }


def render_context(item: WorkItem, upstream_digest: str, recipe: str) -> BuildContext:
    """The build context of ``item`` as a deterministic archive."""
    dockerfile = render_dockerfile(item, upstream_digest)
    metadata = {
        "base": str(ImageReference.parse(item.source).with_digest(upstream_digest)),
        "platforms": list(item.platforms) if item.platforms is not None else None,
        "annotations": image_annotations(item, upstream_digest, recipe),
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, text in (
            ("Dockerfile", dockerfile),
            ("hubmirror.json", json.dumps(metadata, sort_keys=True, indent=2)),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    archive = gzip.compress(raw.getvalue(), mtime=0)
    return BuildContext(dockerfile=dockerfile, metadata=metadata, archive=archive)
