"""Sigstore bundles (cosign 3's signatures and attestations): what makes one good. Pure.

A bundle (``application/vnd.dev.sigstore.bundle.v0.3+json``, and the older ``...bundle+json;
version=0.1|0.2``) holds in one JSON document what cosign 2 spread over annotations: the
signing certificate (or a key hint), the signed content (a DSSE envelope of an in-toto
statement, or a signature over a message digest) and the transparency-log entries
(https://github.com/sigstore/protobuf-specs/blob/main/protos/sigstore_bundle.proto). A bundle
is good for an image's digest when:

1. the content names the digest (a statement whose subject has it, or a message digest equal
   to it) and its signature verifies with the certificate's key (or the policy's key);
2. for a keyless policy, the certificate is Fulcio's for code signing
   (:func:`hubmirror.domain.sigstore.certificate_problem`), Rekor signed the time it logged the
   entry (its SET) within the certificate's validity, and the identity and issuer match;
3. every log entry it carries is this content, signature and certificate, with a SET that
   verifies, or an inclusion proof whose root a Rekor checkpoint signed (RFC 9162 2.1.3.2).

Not read: timestamp authorities' signed times (a keyless bundle without Rekor's SET is
refused) and Rekor v2 (Ed25519) logs.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from hubmirror.domain.signing import PublicKey
from hubmirror.domain.sigstore import (
    Identity,
    TrustRoot,
    certificate_problem,
    github_claims,
    oidc_issuer,
    subjects,
    validity_problem,
    verify_set,
)

#: The media types of a Sigstore bundle, as a referrer's ``artifactType`` and in the document.
BUNDLE_MEDIA_TYPES = (
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
)
IN_TOTO = "application/vnd.in-toto+json"
#: The largest bundle read (a few KB: a certificate, a signature, a log entry with its proof).
MAX_BUNDLE_BYTES = 256 * 1024


class _RefusedError(ValueError):
    """A reason a bundle is not good, in words."""


def bundle_problem(
    data: bytes, digest: str, root: TrustRoot, *, identity: Identity | None = None, key: PublicKey | None = None
) -> str | None:
    """Why a bundle is not a good signature of ``digest`` by ``identity`` (keyless) or ``key``;
    None when it is."""
    try:
        _check(data, digest, root, identity, key)
    except _RefusedError as exc:
        return str(exc)
    return None


def _check(data: bytes, digest: str, root: TrustRoot, identity: Identity | None, key: PublicKey | None) -> None:
    try:
        bundle = json.loads(data)
        media_type = str(bundle.get("mediaType", ""))
    except (ValueError, AttributeError):
        raise _RefusedError("the bundle is not JSON") from None
    if media_type not in BUNDLE_MEDIA_TYPES:
        raise _RefusedError(f"the bundle's media type {media_type!r} is not a Sigstore bundle's")
    material = bundle.get("verificationMaterial") or {}
    leaf = _certificate(material)
    content, signature, verify = _content(bundle, digest)
    if identity is not None:
        if leaf is None:
            raise _RefusedError("the bundle carries no certificate, so it was not signed keyless")
        signer = leaf.public_key()
        if not isinstance(signer, ec.EllipticCurvePublicKey):
            raise _RefusedError("its certificate's key is not ECDSA")
        problem = certificate_problem(leaf, [], root)
        if problem:
            raise _RefusedError(problem)
    elif key is not None:
        signer = key.key
    else:
        raise _RefusedError("no key or identity to verify the bundle with")
    try:
        verify(signer)
    except InvalidSignature:
        said = (
            f"it does not verify with {key.name}"
            if key is not None
            else "its signature does not verify with its certificate"
        )
        raise _RefusedError(said) from None
    entries = material.get("tlogEntries") or []
    logged = [_entry_time(entry, root, content=content, signature=signature, leaf=leaf, key=key) for entry in entries]
    if identity is not None:
        assert leaf is not None
        signed_times = [t for t in logged if t is not None]
        if not signed_times:
            raise _RefusedError(
                "it carries no time Rekor signed (a SET), so its short-lived certificate cannot be checked; "
                "timestamp authorities' times are not read"
            )
        problem = validity_problem(leaf, [], root, signed_times[0])
        if problem:
            raise _RefusedError(problem)
        problem = identity.problem(subjects(leaf), oidc_issuer(leaf), github_claims(leaf))
        if problem:
            raise _RefusedError(problem)


def _certificate(material: Mapping[str, Any]) -> x509.Certificate | None:
    raw = (material.get("certificate") or {}).get("rawBytes")
    if raw is None:
        chain = (material.get("x509CertificateChain") or {}).get("certificates") or []
        raw = chain[0].get("rawBytes") if chain else None
    if raw is None:
        return None
    try:
        return x509.load_der_x509_certificate(base64.b64decode(raw))
    except (ValueError, binascii.Error):
        raise _RefusedError("its certificate is not DER") from None


def _content(bundle: Mapping[str, Any], digest: str) -> tuple[bytes, bytes, Any]:
    """``(what the log entry hashes, the raw signature, a verifier taking the public key)``,
    once the content is shown to name ``digest``."""
    algorithm, _, hex_digest = digest.partition(":")
    envelope = bundle.get("dsseEnvelope")
    message = bundle.get("messageSignature")
    try:
        if envelope is not None:
            payload = base64.b64decode(envelope["payload"])
            payload_type = str(envelope["payloadType"])
            (only,) = envelope["signatures"]
            signature = base64.b64decode(only["sig"])
            if payload_type != IN_TOTO:
                raise _RefusedError(f"its envelope holds {payload_type}, not an in-toto statement")
            statement = json.loads(payload)
            named = [
                s.get("digest", {}).get(algorithm) for s in statement.get("subject") or [] if isinstance(s, Mapping)
            ]
            if hex_digest not in named:
                raise _RefusedError(
                    f"its statement is about {', '.join(str(n) for n in named) or 'nothing'}, not {digest}"
                )
            pae = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(payload), payload)

            def verify_envelope(public: ec.EllipticCurvePublicKey) -> None:
                public.verify(signature, pae, ec.ECDSA(hashes.SHA256()))

            return payload, signature, verify_envelope
        if message is not None:
            signed_digest = base64.b64decode(message["messageDigest"]["digest"])
            signature = base64.b64decode(message["signature"])
            if algorithm != "sha256" or message["messageDigest"].get("algorithm") != "SHA2_256":
                raise _RefusedError("its message digest is not SHA-256")
            if signed_digest.hex() != hex_digest:
                raise _RefusedError(f"it signs sha256:{signed_digest.hex()}, not {digest}")

            def verify_message(public: ec.EllipticCurvePublicKey) -> None:
                public.verify(signature, signed_digest, ec.ECDSA(Prehashed(hashes.SHA256())))

            return signed_digest, signature, verify_message
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        if isinstance(exc, _RefusedError):
            raise
        raise _RefusedError("its signed content is not one a Sigstore bundle holds") from None
    raise _RefusedError("the bundle holds neither a DSSE envelope nor a message signature")


def _entry_time(
    entry: Mapping[str, Any],
    root: TrustRoot,
    *,
    content: bytes,
    signature: bytes,
    leaf: x509.Certificate | None,
    key: PublicKey | None,
) -> dt.datetime | None:
    """The time Rekor signed for this entry (None if it carries no SET), once the entry is
    shown to log this content and to be in the log (SET, or inclusion proof and checkpoint)."""
    try:
        body_text = str(entry["canonicalizedBody"])
        body = json.loads(base64.b64decode(body_text))
        log_id = base64.b64decode(entry["logId"]["keyId"])
        integrated = int(entry["integratedTime"])
        index = int(entry["logIndex"])
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise _RefusedError("its transparency-log entry is not one Rekor writes") from None
    _body_problem(body, content, signature, leaf, key)
    promise = (entry.get("inclusionPromise") or {}).get("signedEntryTimestamp")
    proof = entry.get("inclusionProof")
    if promise is None and proof is None:
        raise _RefusedError("its transparency-log entry has neither Rekor's promise nor an inclusion proof")
    if proof is not None:
        _inclusion(proof, base64.b64decode(body_text), root)
    if promise is None:
        return None
    problem = verify_set(
        root,
        {"body": body_text, "integratedTime": integrated, "logID": log_id.hex(), "logIndex": index},
        base64.b64decode(promise),
    )
    if problem:
        raise _RefusedError(problem)
    return dt.datetime.fromtimestamp(integrated, dt.UTC)


def _body_problem(
    body: Any, content: bytes, signature: bytes, leaf: x509.Certificate | None, key: PublicKey | None
) -> None:
    """The log entry must be this content, this signature and this signer."""
    if leaf is not None:
        signer_pem = leaf.public_bytes(serialization.Encoding.PEM)
    elif key is not None:
        signer_pem = key.key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    else:
        signer_pem = b""
    try:
        kind, spec = body["kind"], body["spec"]
        if kind == "hashedrekord":
            hashed = spec["data"]["hash"]["value"]
            logged = [(spec["signature"]["content"], spec["signature"]["publicKey"]["content"])]
            expected_hash = content.hex() if len(content) == 32 else hashlib.sha256(content).hexdigest()
        elif kind == "dsse":
            hashed = spec["payloadHash"]["value"]
            logged = [(s["signature"], s["verifier"]) for s in spec["signatures"]]
            expected_hash = hashlib.sha256(content).hexdigest()
        else:
            raise _RefusedError(f"its transparency-log entry is a {kind}, which hubmirror does not read")
        pairs = [(base64.b64decode(sig), base64.b64decode(verifier)) for sig, verifier in logged]
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise _RefusedError("its transparency-log entry is not one Rekor writes") from None
    if hashed != expected_hash:
        raise _RefusedError("its transparency-log entry logs other content")
    if not any(sig == signature and _same_signer(verifier, signer_pem) for sig, verifier in pairs):
        raise _RefusedError("its transparency-log entry logs another signature or signer")


def _same_signer(logged: bytes, signer_pem: bytes) -> bool:
    return logged.strip() == signer_pem.strip()


def _inclusion(proof: Mapping[str, Any], body: bytes, root: TrustRoot) -> None:
    """The entry is in the log: its leaf hashes up to a root a Rekor checkpoint signed."""
    try:
        index, size = int(proof["logIndex"]), int(proof["treeSize"])
        root_hash = base64.b64decode(proof["rootHash"])  # bytes are base64 in a bundle's JSON
        path = [base64.b64decode(h) for h in proof["hashes"]]
        envelope = str(proof["checkpoint"]["envelope"])
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise _RefusedError("its inclusion proof is not one Rekor writes") from None
    if merkle_root(index, size, hashlib.sha256(b"\x00" + body).digest(), path) != root_hash:
        raise _RefusedError("its inclusion proof does not lead to the log's root")
    _checkpoint(envelope, size, root_hash, root)


def merkle_root(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes | None:
    """The root an inclusion proof leads to (RFC 9162 2.1.3.2), or None if it is malformed.

    >>> a, b = hashlib.sha256(b"\\x00a").digest(), hashlib.sha256(b"\\x00b").digest()
    >>> merkle_root(1, 2, b, [a]) == hashlib.sha256(b"\\x01" + a + b).digest()
    True
    """
    if index >= size:
        return None
    fn, sn, node = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            node = hashlib.sha256(b"\x01" + sibling + node).digest()
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            node = hashlib.sha256(b"\x01" + node + sibling).digest()
        fn, sn = fn >> 1, sn >> 1
    return node if sn == 0 else None


def _checkpoint(envelope: str, size: int, root_hash: bytes, root: TrustRoot) -> None:
    """A Rekor checkpoint (a signed note) that signs this tree size and root."""
    note, _, signatures = envelope.partition("\n\n")
    lines = note.split("\n")
    if len(lines) < 3 or lines[1] != str(size) or base64.b64decode(lines[2]) != root_hash:
        raise _RefusedError("its checkpoint is not of the tree its inclusion proof leads to")
    for line in signatures.strip().split("\n"):
        _, _, signed = line.rpartition(" ")
        try:
            raw = base64.b64decode(signed)
        except (ValueError, binascii.Error):
            continue
        for log_id, log in root.rekor.items():
            if raw[:4] != log_id[:4]:
                continue
            try:
                log.key.verify(raw[4:], (note + "\n").encode(), ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                continue
            return
    raise _RefusedError("its checkpoint is not signed by a Rekor log of the trust root")
