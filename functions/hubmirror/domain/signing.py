"""cosign signatures over image digests: public keys, and what makes a signature good.

cosign signs an image by signing a "simple signing" payload, a JSON document naming the
image's manifest digest; the signature manifest (tag ``sha256-<hex>.sig``) holds one layer
per signature, the payload as the layer and the base64 signature of its bytes in the layer's
``dev.cosignproject.cosign/signature`` annotation
(https://github.com/sigstore/cosign/blob/main/specs/SIGNATURE_SPEC.md). A key-based
signature verifies when the payload's ``critical.type`` is cosign's, its
``critical.image.docker-manifest-digest`` is the image's digest, and the ECDSA signature of
the payload bytes verifies with the key (``cosign generate-key-pair`` and an AWS KMS key
made by cosign are ECDSA P-256 with SHA-256).

Pure: no I/O, no environment.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGNATURE_TYPE = "cosign container image signature"
#: A simple-signing payload is a few hundred bytes; anything much larger is not one.
MAX_PAYLOAD_BYTES = 64 * 1024
#: The signatures of one manifest looked at, at most (cosign appends one layer per signing).
MAX_SIGNATURES = 32
#: What ``verify:`` may name a key by: the PEM itself, or where it is kept.
KEY_SOURCES = ("key", "secret", "parameter", "kms")


class UnusableKeyError(ValueError):
    """A public key that cannot verify cosign signatures, in words."""


@dataclass(frozen=True)
class PublicKey:
    """A cosign public key, and the name messages give it."""

    key: ec.EllipticCurvePublicKey
    name: str

    @classmethod
    def from_pem(cls, pem: str | bytes, *, name: str = "the key") -> PublicKey:
        """Read a PEM public key (``cosign.pub``).

        >>> PublicKey.from_pem("not a key")
        Traceback (most recent call last):
        ...
        hubmirror.domain.signing.UnusableKeyError: the key is not a PEM public key (-----BEGIN PUBLIC KEY----- ...)
        """
        data = pem.encode() if isinstance(pem, str) else pem
        if b"-----BEGIN PUBLIC KEY-----" not in data:
            raise UnusableKeyError(f"{name} is not a PEM public key (-----BEGIN PUBLIC KEY----- ...)")
        try:
            key = serialization.load_pem_public_key(data.strip())
        except UnsupportedAlgorithm:
            raise UnusableKeyError(f"{name} is of a kind hubmirror cannot read; it verifies ECDSA P-256 keys") from None
        except ValueError:
            raise UnusableKeyError(
                f"{name} is not a readable PEM public key (its base64 or what it encodes is damaged)"
            ) from None
        return cls._checked(key, name)

    @classmethod
    def from_der(cls, der: bytes, *, name: str = "the key") -> PublicKey:
        """Read a DER SubjectPublicKeyInfo (what ``kms:GetPublicKey`` returns)."""
        try:
            key = serialization.load_der_public_key(der)
        except (ValueError, UnsupportedAlgorithm):
            raise UnusableKeyError(f"{name} is not a readable DER public key") from None
        return cls._checked(key, name)

    @classmethod
    def _checked(cls, key: Any, name: str) -> PublicKey:
        if not isinstance(key, ec.EllipticCurvePublicKey):
            kind = "an RSA" if isinstance(key, rsa.RSAPublicKey) else "not an ECDSA"
            raise UnusableKeyError(
                f"{name} is {kind} key; hubmirror verifies ECDSA P-256 keys, as cosign generate-key-pair makes them"
            )
        if not isinstance(key.curve, ec.SECP256R1):
            raise UnusableKeyError(
                f"{name} is an ECDSA key on {key.curve.name}; hubmirror verifies P-256 (secp256r1) keys"
            )
        return cls(key, name)


def signature_layers(manifest: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(payload digest, base64 signature)`` of each simple-signing layer of a signature manifest.

    >>> signature_layers({"layers": [{"mediaType": SIMPLE_SIGNING, "digest": "sha256:ab",
    ...                               "annotations": {SIGNATURE_ANNOTATION: "MEUC"}},
    ...                              {"mediaType": "text/plain", "digest": "sha256:cd"}]})
    [('sha256:ab', 'MEUC')]
    """
    found = []
    for layer in manifest.get("layers") or []:
        if not isinstance(layer, Mapping) or layer.get("mediaType") != SIMPLE_SIGNING:
            continue
        signature = (layer.get("annotations") or {}).get(SIGNATURE_ANNOTATION)
        if isinstance(signature, str) and signature and int(layer.get("size") or 0) <= MAX_PAYLOAD_BYTES:
            found.append((str(layer.get("digest")), signature))
    return found[:MAX_SIGNATURES]


def payload_problem(payload: bytes, digest: str) -> str | None:
    """Why a simple-signing payload is not a cosign signature of ``digest``; None if it is.

    >>> payload_problem(b'{"critical": {"type": "cosign container image signature",'
    ...                 b' "image": {"docker-manifest-digest": "sha256:ab"}}}', "sha256:ab")
    >>> payload_problem(b'{"critical": {"type": "cosign container image signature",'
    ...                 b' "image": {"docker-manifest-digest": "sha256:cd"}}}', "sha256:ab")
    'it signs sha256:cd, not sha256:ab'
    """
    try:
        document = json.loads(payload)
    except ValueError:
        return "its payload is not JSON"
    critical = document.get("critical") if isinstance(document, Mapping) else None
    if not isinstance(critical, Mapping):
        return "its payload has no 'critical' section"
    if critical.get("type") != SIGNATURE_TYPE:
        return f"its payload's type is {critical.get('type')!r}, not {SIGNATURE_TYPE!r}"
    image = critical.get("image")
    signed = image.get("docker-manifest-digest") if isinstance(image, Mapping) else None
    if signed != digest:
        return f"it signs {signed}, not {digest}"
    return None


def signature_problem(payload: bytes, signature: str, digest: str, key: PublicKey) -> str | None:
    """Why one signature (payload and base64 signature) does not verify; None if it does."""
    problem = payload_problem(payload, digest)
    if problem:
        return problem
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return "its signature is not base64"
    try:
        key.key.verify(raw, payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return f"it does not verify with {key.name}"
    return None
