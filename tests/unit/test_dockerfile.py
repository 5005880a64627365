"""Rendering: FROM pinned by digest, lines verbatim, deterministic content-addressed contexts."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import tarfile

import pytest

from hubmirror.domain.dockerfile import RenderError, network_tool, render_context, render_dockerfile
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
    assert meta["network"] == "none"  # RUN lines have no network unless the entry says so
    assert render_context(ITEM, DIGEST, "sha256:" + "e" * 64).digest != first.digest


def test_the_context_grants_the_network_only_to_an_entry_that_asks() -> None:
    online = dataclasses.replace(ITEM, build_network=True)
    with tarfile.open(
        fileobj=io.BytesIO(gzip.decompress(render_context(online, DIGEST, "sha256:" + "d" * 64).archive))
    ) as tar:
        meta = json.loads(tar.extractfile("hubmirror.json").read())  # type: ignore[union-attr]
    assert meta["network"] == "host"


@pytest.mark.parametrize(
    ("line", "tool"),
    [
        ("RUN apt-get update && apt-get install -y --no-install-recommends curl", "apt-get update"),
        ("RUN apk add --no-cache bash", "apk add"),
        ("RUN pip install --no-cache-dir requests==2.32.3", "pip install"),
        ("RUN set -e; curl -fsSL https://example.com/tool -o /usr/local/bin/tool", "curl"),
        ("RUN /usr/bin/wget -q https://example.com/x", "wget"),
        ('RUN ["npm", "ci"]', "npm ci"),
        ("RUN git clone https://example.com/repo /src", "git clone"),
        ("RUN dnf -y install jq", "dnf install"),
    ],
)
def test_lines_that_usually_need_the_network_are_named(line: str, tool: str) -> None:
    assert network_tool(line) == tool


@pytest.mark.parametrize(
    "line",
    [
        "RUN mkdir -p /etc/vault && chmod 0750 /etc/vault",
        "RUN echo curling > /etc/motd",
        "RUN go build ./...",
        "RUN apk del build-deps",
        "ENV PIP_INSTALL=1",
        "LABEL tool=curl",
    ],
)
def test_lines_that_work_offline_are_not_named(line: str) -> None:
    assert network_tool(line) is None
