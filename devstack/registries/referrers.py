"""The OCI 1.1 referrers API, for the fronts of registries that have it.

Distribution 2.8, behind both fronts, predates it: it stores a manifest's ``subject`` field
untouched and answers ``GET /v2/<name>/referrers/<digest>`` with 404. A registry with the
API (https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-referrers)
answers a pushed manifest that has a ``subject`` with an ``OCI-Subject`` header, and lists the
manifests that refer to a digest as an image index of their descriptors (``artifactType``
from the manifest, else its config's media type; annotations kept): ``200`` even when there
are none, ``?artifactType=`` filtering, said by ``OCI-Filters-Applied``. Amazon ECR has the
API (https://docs.aws.amazon.com/AmazonECR/latest/userguide/images.html); whether Docker Hub
or another upstream has it, the hub front's ``referrers_api`` says.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from typing import Any
from urllib.parse import parse_qs

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
PATH = re.compile(r"^/v2/(?P<name>.+)/referrers/(?P<digest>sha256:[0-9a-f]{64})$")


class Referrers:
    """What refers to what, per repository, as the pushes said."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}

    def record(self, repository: str, body: bytes, media_type: str) -> str | None:
        """Remember a pushed manifest that has a ``subject``; returns the subject's digest."""
        try:
            document = json.loads(body)
        except ValueError:
            return None
        subject = document.get("subject") if isinstance(document, dict) else None
        if not isinstance(subject, dict) or not subject.get("digest"):
            return None
        artifact_type = document.get("artifactType") or (document.get("config") or {}).get("mediaType")
        descriptor: dict[str, Any] = {
            "mediaType": document.get("mediaType") or media_type,
            "digest": "sha256:" + hashlib.sha256(body).hexdigest(),
            "size": len(body),
        }
        if artifact_type:
            descriptor["artifactType"] = artifact_type
        if document.get("annotations"):
            descriptor["annotations"] = document["annotations"]
        with self._lock:
            self._by.setdefault((repository, str(subject["digest"])), {})[descriptor["digest"]] = descriptor
        return str(subject["digest"])

    def answer(self, repository: str, digest: str, query: str) -> tuple[bytes, dict[str, str]]:
        """The body and headers of ``GET /v2/<repository>/referrers/<digest>?<query>``."""
        with self._lock:
            found = list(self._by.get((repository, digest), {}).values())
        headers = {"Content-Type": OCI_INDEX}
        wanted = parse_qs(query).get("artifactType")
        if wanted:
            found = [d for d in found if d.get("artifactType") in wanted]
            headers["OCI-Filters-Applied"] = "artifactType"
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": found}
        return json.dumps(index, separators=(",", ":")).encode(), headers
