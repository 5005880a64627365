"""Rendering: FROM pinned by digest, lines verbatim, deterministic content-addressed contexts."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from hubmirror.domain.dockerfile import RenderError, render_context, render_dockerfile
from hubmirror.domain.items import WorkItem

DIGEST = "sha256:" + "c" * 64
ITEM = WorkItem(
    "docker.io/hashicorp/vault",
    "1.14",
    "mirror/vault",
    "1.14",
    ("linux/amd64",),
    ("RUN mkdir /etc/vault", 'VOLUME ["/etc/vault"]'),
)


def test_dockerfile_pins_the_base_by_digest() -> None:
    assert (
        render_dockerfile(ITEM, DIGEST)
        == f'FROM docker.io/hashicorp/vault@{DIGEST}\nRUN mkdir /etc/vault\nVOLUME ["/etc/vault"]\n'
    )


def test_a_smuggled_line_is_refused_even_past_validation() -> None:
    bad = WorkItem("docker.io/library/nginx", "1", "m/nginx", "1", build_commands=("RUN true\nFROM evil",))
    with pytest.raises(RenderError, match="one line"):
        render_dockerfile(bad, DIGEST)


def test_context_is_deterministic_and_carries_annotations() -> None:
    first, second = (
        render_context(ITEM, DIGEST, "sha256:" + "d" * 64),
        render_context(ITEM, DIGEST, "sha256:" + "d" * 64),
    )
    assert first.archive == second.archive
    assert first.digest == second.digest
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(first.archive))) as tar:
        names = tar.getnames()
        meta = json.loads(tar.extractfile("hubmirror.json").read())  # type: ignore[union-attr]
    assert names == ["Dockerfile", "hubmirror.json"]
    assert meta["platforms"] == ["linux/amd64"]
    assert meta["annotations"]["org.opencontainers.image.base.digest"] == DIGEST
    assert render_context(ITEM, DIGEST, "sha256:" + "e" * 64).digest != first.digest
