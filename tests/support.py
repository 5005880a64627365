"""Test helpers that read registries without hubmirror's own code (plain ``requests``)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from typing import Any

import requests

ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


@dataclass
class Fetched:
    digest: str
    media_type: str
    document: dict[str, Any]


class RegistryReader:
    """Reads (and deletes from) a basic-auth registry, computing digests itself."""

    def __init__(self, host: str, username: str, password: str) -> None:
        self.base = f"http://{host}"
        self.auth = (username, password)

    def manifest(self, repository: str, reference: str) -> Fetched | None:
        response = requests.get(
            f"{self.base}/v2/{repository}/manifests/{reference}", headers={"Accept": ACCEPT}, auth=self.auth, timeout=30
        )
        if response.status_code == 404:
            return None
        response.raise_for_status()
        digest = "sha256:" + hashlib.sha256(response.content).hexdigest()
        return Fetched(digest, response.headers["Content-Type"].split(";")[0], response.json())

    def blob(self, repository: str, digest: str) -> bytes:
        response = requests.get(f"{self.base}/v2/{repository}/blobs/{digest}", auth=self.auth, timeout=60)
        response.raise_for_status()
        assert "sha256:" + hashlib.sha256(response.content).hexdigest() == digest
        return response.content

    def config(self, repository: str, manifest: dict[str, Any]) -> dict[str, Any]:
        return dict(json.loads(self.blob(repository, manifest["config"]["digest"])))

    def layer_members(self, repository: str, manifest: dict[str, Any]) -> dict[str, tarfile.TarInfo]:
        """Every path in the image's layers (later layers win), with its tar header."""
        members: dict[str, tarfile.TarInfo] = {}
        for layer in manifest["layers"]:
            data = gzip.decompress(self.blob(repository, layer["digest"]))
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                for member in tar.getmembers():
                    members[member.name.removeprefix("./").rstrip("/")] = member
        return members

    def layer_file(self, repository: str, manifest: dict[str, Any], path: str) -> bytes | None:
        """The content of ``path`` in the image's layers (the last layer holding it wins), or None."""
        found: bytes | None = None
        for layer in manifest["layers"]:
            data = gzip.decompress(self.blob(repository, layer["digest"]))
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                for member in tar.getmembers():
                    if member.isfile() and member.name.removeprefix("./") == path:
                        extracted = tar.extractfile(member)
                        assert extracted is not None
                        found = extracted.read()
        return found

    def delete_tag(self, repository: str, tag: str) -> None:
        """Delete what ``tag`` points at (the registry API deletes manifests by digest)."""
        fetched = self.manifest(repository, tag)
        assert fetched is not None, f"{repository}:{tag} does not exist"
        response = requests.delete(
            f"{self.base}/v2/{repository}/manifests/{fetched.digest}", auth=self.auth, timeout=30
        )
        assert response.status_code == 202, response.text


def platforms_of(index: dict[str, Any]) -> list[str]:
    return sorted(
        f"{m['platform']['os']}/{m['platform']['architecture']}"
        for m in index.get("manifests", [])
        if m.get("platform", {}).get("os") not in (None, "unknown")
    )
