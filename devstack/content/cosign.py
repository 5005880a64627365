"""Images signed the way cosign signs them, for the local stack: the tag schema.

cosign stores a signature over an image digest as an OCI image manifest in the image's own
repository, tagged ``sha256-<hex>.sig``: its one layer is the "simple signing" payload (JSON
naming the digest), with the base64 signature of those bytes in the layer's
``dev.cosignproject.cosign/signature`` annotation; attestations go under ``.att`` as DSSE
envelopes (https://github.com/sigstore/cosign/blob/main/specs/SIGNATURE_SPEC.md,
https://github.com/sigstore/cosign/blob/main/specs/ATTESTATION_SPEC.md). Keys here are
ECDSA P-256 with SHA-256, as ``cosign generate-key-pair`` makes them. cosign 3 writes no tag:
it pushes a Sigstore bundle as an OCI 1.1 referrer of the image (:func:`push_referrer`).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devstack.content.images import OCI_INDEX, Blob, Pusher

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGNATURE_TYPE = "cosign container image signature"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
EMPTY = b"{}"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


@dataclass(frozen=True)
class Key:
    private: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls) -> Key:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self.private.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


def artifact(layer: Blob, annotations: dict[str, str]) -> tuple[Blob, Blob]:
    """The config and manifest of a cosign artifact of one layer, as cosign writes them."""
    config = Blob(
        OCI_CONFIG,
        json.dumps(
            {
                "architecture": "",
                "os": "",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
            },
            separators=(",", ":"),
        ).encode(),
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor(annotations=annotations)],
    }
    return config, Blob(OCI_MANIFEST, json.dumps(manifest, separators=(",", ":")).encode())


def _push(pusher: Pusher, repository: str, tag: str, layer: Blob, annotations: dict[str, str]) -> str:
    config, manifest = artifact(layer, annotations)
    pusher.blob(repository, layer)
    pusher.blob(repository, config)
    return pusher.manifest(repository, tag, manifest)


def _reference(pusher: Pusher, repository: str) -> str:
    return f"{pusher.base.removeprefix('http://')}/{repository}"


def sign(pusher: Pusher, repository: str, digest: str, key: Key) -> str:
    """Push a cosign signature of ``repository@digest``; returns the signature manifest's digest."""
    payload = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": _reference(pusher, repository)},
                "image": {"docker-manifest-digest": digest},
                "type": SIGNATURE_TYPE,
            },
            "optional": None,
        },
        separators=(",", ":"),
    ).encode()
    tag = digest.replace(":", "-") + ".sig"
    return _push(pusher, repository, tag, Blob(SIMPLE_SIGNING, payload), {SIGNATURE_ANNOTATION: key.sign(payload)})


def attest(pusher: Pusher, repository: str, digest: str, key: Key, predicate_type: str) -> str:
    """Push a cosign attestation (an in-toto statement in a DSSE envelope) about ``repository@digest``."""
    statement = json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": predicate_type,
            "subject": [{"name": _reference(pusher, repository), "digest": {"sha256": digest.split(":", 1)[1]}}],
            "predicate": {},
        },
        separators=(",", ":"),
    ).encode()
    payload_type = "application/vnd.in-toto+json"
    pae = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(statement), statement)
    envelope = {
        "payloadType": payload_type,
        "payload": base64.b64encode(statement).decode(),
        "signatures": [{"keyid": "", "sig": key.sign(pae)}],
    }
    tag = digest.replace(":", "-") + ".att"
    layer = Blob(DSSE, json.dumps(envelope, separators=(",", ":")).encode())
    return _push(pusher, repository, tag, layer, {"dev.cosignproject.cosign/signature": ""})


def verifies(manifest: bytes, layers: dict[str, bytes], digest: str, public_pem: str) -> bool:
    """Whether a cosign signature manifest holds a signature by ``public_pem`` over ``digest``
    (what ``cosign verify --key`` checks of a key-based signature)."""
    public = serialization.load_pem_public_key(public_pem.encode())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    for layer in json.loads(manifest).get("layers") or []:
        payload = layers.get(str(layer.get("digest")))
        signature = (layer.get("annotations") or {}).get(SIGNATURE_ANNOTATION)
        if layer.get("mediaType") != SIMPLE_SIGNING or payload is None or not signature:
            continue
        critical = json.loads(payload).get("critical") or {}
        if critical.get("type") != SIGNATURE_TYPE or critical.get("image", {}).get("docker-manifest-digest") != digest:
            continue
        try:
            public.verify(base64.b64decode(signature), payload, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        return True
    return False


def push_referrer(
    pusher: Pusher,
    repository: str,
    subject: dict[str, Any],
    payload: bytes,
    *,
    artifact_type: str = SIGSTORE_BUNDLE,
    tag_schema: bool = False,
) -> str:
    """Push an artifact that refers to ``subject`` (a descriptor), as cosign 3 pushes a Sigstore
    bundle: an OCI manifest with ``artifactType``, the empty config, one layer and ``subject``.
    With ``tag_schema`` the referrers tag ``sha256-<hex>`` is written too, as a client does for
    a registry without the API. Returns the artifact manifest's digest."""
    layer, config = Blob(artifact_type, payload), Blob(EMPTY_MEDIA_TYPE, EMPTY)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
        "subject": subject,
        "annotations": {"org.opencontainers.image.created": "2026-12-01T00:00:00Z"},
    }
    pusher.blob(repository, layer)
    pusher.blob(repository, config)
    body = Blob(OCI_MANIFEST, json.dumps(manifest, separators=(",", ":")).encode())
    digest = pusher.manifest(repository, body.digest, body)
    if tag_schema:
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [body.descriptor(artifactType=artifact_type)],
        }
        tag = str(subject["digest"]).replace(":", "-")
        pusher.manifest(repository, tag, Blob(OCI_INDEX, json.dumps(index, separators=(",", ":")).encode()))
    return str(digest)
