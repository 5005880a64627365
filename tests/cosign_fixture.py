"""The signature cosign made (``tests/unit/data/cosign``, from containers/image), read once."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from devstack.content.cosign import SIGNATURE_ANNOTATION, SIMPLE_SIGNING, artifact
from devstack.content.images import Blob

DATA = Path(__file__).parent / "unit" / "data" / "cosign"


@dataclass(frozen=True)
class CosignSignature:
    payload: bytes
    signature: str
    #: the digest of the signed image's manifest, from its bytes
    digest: str
    public_pem: str
    other_pem: str

    def artifact(self) -> tuple[Blob, Blob, Blob]:
        """``(payload, config, manifest)`` as cosign puts them under ``sha256-<hex>.sig``."""
        layer = Blob(SIMPLE_SIGNING, self.payload)
        config, manifest = artifact(layer, {SIGNATURE_ANNOTATION: self.signature})
        return layer, config, manifest


def load() -> CosignSignature:
    raw = (DATA / "signature-1").read_bytes()
    header = b"\x00sigstore-json\n"  # containers/image's framing of a stored signature
    assert raw.startswith(header)
    stored = json.loads(raw[len(header) :])
    assert stored["mimeType"] == SIMPLE_SIGNING
    return CosignSignature(
        payload=base64.b64decode(stored["payload"]),
        signature=stored["annotations"][SIGNATURE_ANNOTATION],
        digest="sha256:" + hashlib.sha256((DATA / "manifest.json").read_bytes()).hexdigest(),
        public_pem=(DATA / "cosign.pub").read_text(),
        other_pem=(DATA / "cosign2.pub").read_text(),
    )
