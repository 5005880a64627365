"""Keyless cosign signatures: a Fulcio certificate for an identity, logged in Rekor. Pure.

A keyless signature (``cosign sign`` without ``--key``, cosign 2's tag schema) is a
simple-signing layer whose annotations carry, beside the signature, the short-lived signing
certificate (``dev.sigstore.cosign/certificate``), its chain (``dev.sigstore.cosign/chain``)
and Rekor's promise to log it (``dev.sigstore.cosign/bundle``: a signed entry timestamp, SET,
over the log entry). Offline, as ``cosign verify --certificate-identity ... --certificate-oidc-issuer ...``
does it (https://github.com/sigstore/cosign/blob/main/specs/SIGNATURE_SPEC.md), it verifies when:

1. the payload is a cosign signature of the image's digest;
2. the certificate chains to a certificate authority of the trust root (each link's signature
   checked), may sign code, and embeds a certificate transparency timestamp (SCT) that a CT log
   of the trust root signed;
3. the SET verifies with a Rekor key of the trust root, and the entry it covers is this
   signature, this payload's hash and this certificate;
4. the time Rekor logged it lies within the certificate's validity (a few minutes): the
   certificate was used while it was good;
5. the certificate's identity (its e-mail or URI subject alternative name) and the OIDC issuer
   Fulcio wrote in it match the policy, exactly or by regular expression, and so do the GitHub
   workflow claims the policy names (repository, ref, trigger, commit, workflow name).

What it does not do (yet): Rekor inclusion proofs and checkpoints (cosign 2's SET is the
promise cosign itself checks offline; Sigstore bundles, cosign 3, are
:mod:`hubmirror.domain.bundles`) and timestamp authorities. The trust root ships with hubmirror
(:data:`TRUSTED_ROOT`) and is refreshed from Sigstore's TUF repository by
:mod:`hubmirror.adapters.sigstoretuf`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.certificate_transparency import LogEntryType
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from hubmirror.domain.signing import (
    MAX_PAYLOAD_BYTES,
    MAX_SIGNATURES,
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING,
    payload_problem,
)

CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
#: Sigstore's production trust root (Fulcio, Rekor and CT log keys), as its TUF repository
#: publishes it: https://github.com/sigstore/root-signing (Apache-2.0).
TRUSTED_ROOT = Path(__file__).with_name("sigstore_trusted_root.json")
#: The root metadata of Sigstore's TUF repository, as sigstore-python embeds it: where a refresh
#: of :data:`TRUSTED_ROOT` starts (:mod:`hubmirror.adapters.sigstoretuf`).
TUF_ROOT = Path(__file__).with_name("sigstore_tuf_root.json")
#: The OIDC issuer Fulcio writes into a certificate: the DER UTF8String form, then the first, raw one.
_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
#: The GitHub workflow claims Fulcio writes raw into a certificate for a GitHub Actions token,
#: the extensions cosign's ``--certificate-github-workflow-*`` flags check
#: (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md, 1.3.6.1.4.1.57264.1.2 to .6).
GITHUB_CLAIMS = {
    "github_workflow_trigger": x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.2"),
    "github_workflow_sha": x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.3"),
    "github_workflow_name": x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.4"),
    "github_workflow_repository": x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.5"),
    "github_workflow_ref": x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.6"),
}
#: A certificate or chain annotation larger than this is not one.
MAX_PEM_BYTES = 32 * 1024


class TrustRootError(ValueError):
    """A trust root that cannot be read, in words."""


@dataclass(frozen=True)
class Identity:
    """Who must have signed: the certificate's subject (e-mail or URI) and its OIDC issuer,
    each exact or a regular expression found anywhere in the value unless anchored (``^...$``),
    as cosign's ``--certificate-identity[-regexp]`` and ``--certificate-oidc-issuer[-regexp]``."""

    identity: str | None = None
    identity_regexp: str | None = None
    issuer: str | None = None
    issuer_regexp: str | None = None
    #: the GitHub workflow claims (:data:`GITHUB_CLAIMS`), each exact, as cosign's
    #: ``--certificate-github-workflow-*``
    github_workflow_repository: str | None = None
    github_workflow_ref: str | None = None
    github_workflow_trigger: str | None = None
    github_workflow_sha: str | None = None
    github_workflow_name: str | None = None

    def problem(
        self, subjects: Sequence[str], issuer: str | None, claims: Mapping[str, str] | None = None
    ) -> str | None:
        """Why a certificate of ``subjects`` from ``issuer`` is not this identity; None if it is.

        >>> Identity("a@example.com", issuer="https://accounts.google.com").problem(
        ...     ["b@example.com"], "https://accounts.google.com")
        'it was signed by b@example.com, not a@example.com'
        >>> Identity(identity_regexp="^https://github.com/acme/", issuer="https://token.actions.githubusercontent.com"
        ...          ).problem(["https://github.com/acme/app/.github/workflows/r.yml@refs/heads/main"],
        ...                    "https://token.actions.githubusercontent.com")
        """
        shown = ", ".join(subjects) or "no identity"
        if self.identity is not None and self.identity not in subjects:
            return f"it was signed by {shown}, not {self.identity}"
        if self.identity_regexp is not None and not any(re.search(self.identity_regexp, s) for s in subjects):
            return f"it was signed by {shown}, which does not match {self.identity_regexp}"
        if self.issuer is not None and issuer != self.issuer:
            return f"its identity was vouched for by {issuer or 'no issuer'}, not {self.issuer}"
        if self.issuer_regexp is not None and not (issuer and re.search(self.issuer_regexp, issuer)):
            return f"its identity was vouched for by {issuer or 'no issuer'}, which does not match {self.issuer_regexp}"
        for name in GITHUB_CLAIMS:
            wanted, found = getattr(self, name), (claims or {}).get(name)
            if wanted is not None and found != wanted:
                if found is None:
                    return f"its certificate carries no {name} (the policy asks for {wanted})"
                return f"its certificate says {name} {found}, not {wanted}"
        return None

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Identity:
        return cls(**{k: str(v) for k, v in data.items() if k in cls.__dataclass_fields__ and v is not None})


@dataclass(frozen=True)
class _Log:
    key: ec.EllipticCurvePublicKey
    start: dt.datetime | None
    end: dt.datetime | None


@dataclass(frozen=True)
class TrustRoot:
    """Fulcio's certificate authorities, Rekor's keys and the CT logs' keys (by log id)."""

    authorities: tuple[tuple[x509.Certificate, ...], ...]
    rekor: Mapping[bytes, _Log]
    ctlogs: Mapping[bytes, _Log]
    #: what the run's report should say about where this root came from (a failed refresh)
    notice: str | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> TrustRoot:
        """Read a trust root in Sigstore's ``trusted_root.json`` format."""
        try:
            document = json.loads(text)
            authorities = tuple(
                tuple(
                    x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"]))
                    for c in authority["certChain"]["certificates"]
                )
                for authority in document.get("certificateAuthorities") or []
            )
            rekor = _logs(document.get("tlogs") or [])
            ctlogs = _logs(document.get("ctlogs") or [])
        except (ValueError, KeyError, TypeError, binascii.Error, UnsupportedAlgorithm) as exc:
            raise TrustRootError(f"the Sigstore trust root cannot be read: {exc}") from None
        if not authorities or not rekor:
            raise TrustRootError("the Sigstore trust root names no certificate authority or no Rekor key")
        return cls(authorities, rekor, ctlogs)

    @classmethod
    def shipped(cls) -> TrustRoot:
        """The trust root hubmirror ships (:data:`TRUSTED_ROOT`)."""
        return cls.from_json(TRUSTED_ROOT.read_bytes())


def _logs(logs: Sequence[Mapping[str, Any]]) -> dict[bytes, _Log]:
    """The ECDSA logs by id (cosign 2's SETs and SCTs are ECDSA; Rekor v2's Ed25519 logs sign
    checkpoints, which this module does not read)."""
    found = {}
    for log in logs:
        if log["publicKey"].get("keyDetails", "").startswith("PKIX_ECDSA"):
            key = serialization.load_der_public_key(base64.b64decode(log["publicKey"]["rawBytes"]))
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise ValueError(f"the key of {log.get('baseUrl')} is not the ECDSA key it says")
            valid = log["publicKey"].get("validFor") or {}
            found[base64.b64decode(log["logId"]["keyId"])] = _Log(
                key, _time(valid.get("start")), _time(valid.get("end"))
            )
    return found


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


@dataclass(frozen=True)
class KeylessSignature:
    """One keyless signature as cosign stores it: payload, signature and its three annotations."""

    payload: bytes
    signature: str
    certificate: str
    chain: str
    bundle: str

    @classmethod
    def of(cls, payload: bytes, parts: KeylessParts) -> KeylessSignature:
        return cls(payload, parts.signature, parts.certificate, parts.chain, parts.bundle)


def keyless_signatures(manifest: Mapping[str, Any]) -> list[tuple[str, KeylessParts]]:
    """``(payload digest, parts)`` of each keyless simple-signing layer of a signature manifest
    (one with a certificate annotation); the payload is fetched by the caller.

    >>> keyless_signatures({"layers": [{"mediaType": SIMPLE_SIGNING, "digest": "sha256:ab", "size": 9,
    ...     "annotations": {SIGNATURE_ANNOTATION: "MEUC", CERTIFICATE_ANNOTATION: "PEM", BUNDLE_ANNOTATION: "{}"}}]})
    [('sha256:ab', KeylessParts(signature='MEUC', certificate='PEM', chain='', bundle='{}'))]
    """
    found = []
    for layer in manifest.get("layers") or []:
        if not isinstance(layer, Mapping) or layer.get("mediaType") != SIMPLE_SIGNING:
            continue
        notes = layer.get("annotations") or {}
        parts = [
            notes.get(name, "")
            for name in (SIGNATURE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, BUNDLE_ANNOTATION)
        ]
        if not all(isinstance(part, str) and len(part) <= MAX_PEM_BYTES for part in parts):
            continue
        if parts[0] and parts[1] and int(layer.get("size") or 0) <= MAX_PAYLOAD_BYTES:
            found.append((str(layer.get("digest")), KeylessParts(*parts)))
    return found[:MAX_SIGNATURES]


@dataclass(frozen=True)
class KeylessParts:
    """The annotations of one keyless signature layer."""

    signature: str
    certificate: str
    chain: str
    bundle: str


def keyless_problem(signed: KeylessSignature, digest: str, identity: Identity, root: TrustRoot) -> str | None:
    """Why a keyless signature is not a good one of ``digest`` by ``identity``; None if it is."""
    problem = payload_problem(signed.payload, digest)
    if problem:
        return problem
    try:
        leaf = x509.load_pem_x509_certificate(signed.certificate.encode())
        chain = x509.load_pem_x509_certificates(signed.chain.encode()) if signed.chain.strip() else []
    except ValueError:
        return "its certificate or chain is not PEM"
    try:
        raw = base64.b64decode(signed.signature, validate=True)
    except (binascii.Error, ValueError):
        return "its signature is not base64"
    public = leaf.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return "its certificate's key is not ECDSA"
    try:
        public.verify(raw, signed.payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return "its signature does not verify with its certificate"
    problem = certificate_problem(leaf, chain, root)
    if problem:
        return problem
    logged, problem = _logged(signed, raw, leaf, root)
    if problem:
        return problem
    assert logged is not None
    problem = validity_problem(leaf, chain, root, logged)
    if problem:
        return problem
    return identity.problem(subjects(leaf), oidc_issuer(leaf), github_claims(leaf))


def certificate_problem(leaf: x509.Certificate, chain: Sequence[x509.Certificate], root: TrustRoot) -> str | None:
    """Why a signing certificate is not one Fulcio issued for code signing; None if it is: it
    chains to an authority of the trust root, may sign code, and carries an SCT a CT log signed."""
    authority, problem = _chained(leaf, chain, root)
    if problem:
        return problem
    return _sct_problem(leaf, authority[0], root) or _usage_problem(leaf)


def validity_problem(
    leaf: x509.Certificate, chain: Sequence[x509.Certificate], root: TrustRoot, logged: dt.datetime
) -> str | None:
    """Why the certificate and its authority were not valid when the log says it signed."""
    if not leaf.not_valid_before_utc <= logged <= leaf.not_valid_after_utc:
        return (
            f"Rekor logged it at {logged:%Y-%m-%dT%H:%M:%SZ}, outside its certificate's validity "
            f"({leaf.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ} to {leaf.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ})"
        )
    authority, _ = _chained(leaf, chain, root)
    if not all(c.not_valid_before_utc <= logged <= c.not_valid_after_utc for c in authority):
        return f"its certificate authority was not valid when Rekor logged it ({logged:%Y-%m-%dT%H:%M:%SZ})"
    return None


def verify_set(root: TrustRoot, entry: Mapping[str, Any], promise: bytes) -> str | None:
    """Why Rekor's signed entry timestamp ``promise`` over ``entry`` (``body``, ``integratedTime``,
    ``logID`` in hex, ``logIndex``) does not verify with a Rekor key of the root; None if it does."""
    log = root.rekor.get(bytes.fromhex(str(entry["logID"])))
    if log is None:
        return f"it was logged in a Rekor log the trust root does not know ({entry['logID']})"
    canonical = json.dumps(
        {k: entry[k] for k in ("body", "integratedTime", "logID", "logIndex")}, sort_keys=True, separators=(",", ":")
    ).encode()
    try:
        log.key.verify(promise, canonical, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return "Rekor's signed entry timestamp does not verify"
    return None


def subjects(certificate: x509.Certificate) -> list[str]:
    """The e-mail addresses and URIs a Fulcio certificate was issued for."""
    try:
        names = certificate.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return []
    assert isinstance(names, x509.SubjectAlternativeName)
    return [*names.get_values_for_type(x509.RFC822Name), *names.get_values_for_type(x509.UniformResourceIdentifier)]


def github_claims(certificate: x509.Certificate) -> dict[str, str]:
    """The GitHub workflow claims the certificate carries, by their ``verify:`` names."""
    found = {}
    for name, oid in GITHUB_CLAIMS.items():
        try:
            value = certificate.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        if isinstance(value, x509.UnrecognizedExtension):
            found[name] = value.value.decode(errors="replace")
    return found


def oidc_issuer(certificate: x509.Certificate) -> str | None:
    """The OIDC issuer Fulcio wrote into the certificate (its DER form, else the first raw one)."""
    for oid in (_ISSUER_V2, _ISSUER_V1):
        try:
            value = certificate.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        data = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
        if oid == _ISSUER_V2:
            data = _der_utf8(data)
        return data.decode(errors="replace") if data else None
    return None


def _der_utf8(data: bytes) -> bytes:
    """The contents of a DER UTF8String (tag 12), or b"" if it is not one."""
    if len(data) < 2 or data[0] != 0x0C:
        return b""
    length, start = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, start = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
    return data[start : start + length]


def _chained(
    leaf: x509.Certificate, chain: Sequence[x509.Certificate], root: TrustRoot
) -> tuple[tuple[x509.Certificate, ...], str | None]:
    """The trust root's authority the leaf chains to (each link verified; its first
    certificate the leaf's issuer); the chain annotation counts only where it equals it."""
    for authority in root.authorities:
        if chain and [c.public_bytes(serialization.Encoding.DER) for c in chain] != [
            c.public_bytes(serialization.Encoding.DER) for c in authority
        ]:
            continue
        links = [leaf, *authority]
        try:
            for child, parent in itertools.pairwise(links):
                child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature):
            continue
        top = authority[-1]
        try:
            top.verify_directly_issued_by(top)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return authority, None
    return (), "its certificate does not chain to a Fulcio certificate authority of the trust root"


def _usage_problem(leaf: x509.Certificate) -> str | None:
    try:
        usage = leaf.extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE).value
    except x509.ExtensionNotFound:
        return "its certificate may not sign code (no extended key usage)"
    assert isinstance(usage, x509.ExtendedKeyUsage)
    return None if ExtendedKeyUsageOID.CODE_SIGNING in usage else "its certificate may not sign code"


def _sct_problem(leaf: x509.Certificate, issuer: x509.Certificate, root: TrustRoot) -> str | None:
    """Whether a CT log of the trust root signed the certificate's embedded timestamp (RFC 6962 3.2)."""
    try:
        scts = leaf.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps).value
    except x509.ExtensionNotFound:
        return "its certificate carries no certificate transparency timestamp (SCT)"
    issuer_key_hash = hashlib.sha256(
        issuer.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).digest()
    tbs = leaf.tbs_precertificate_bytes
    for sct in scts:
        log = root.ctlogs.get(sct.log_id)
        if log is None or sct.entry_type != LogEntryType.PRE_CERTIFICATE:
            continue
        timestamp = int(sct.timestamp.replace(tzinfo=dt.UTC).timestamp() * 1000 + 0.5)
        signed = (
            b"\x00\x00"
            + timestamp.to_bytes(8, "big")
            + b"\x00\x01"
            + issuer_key_hash
            + len(tbs).to_bytes(3, "big")
            + tbs
            + len(sct.extension_bytes).to_bytes(2, "big")
            + sct.extension_bytes
        )
        try:
            log.key.verify(sct.signature, signed, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        return None
    return "its certificate's transparency timestamp (SCT) is not signed by a CT log of the trust root"


def _logged(
    signed: KeylessSignature, raw_signature: bytes, leaf: x509.Certificate, root: TrustRoot
) -> tuple[dt.datetime | None, str | None]:
    """When Rekor logged this signature, once its SET and the entry it covers are verified."""
    try:
        bundle = json.loads(signed.bundle)
        set_signature = base64.b64decode(bundle["SignedEntryTimestamp"])
        payload = bundle["Payload"]
        bytes.fromhex(str(payload["logID"]))
        integrated = int(payload["integratedTime"])
        body = json.loads(base64.b64decode(payload["body"]))
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None, "its Rekor bundle is not one cosign writes"
    problem = verify_set(root, payload, set_signature)
    if problem:
        return None, problem
    problem = _entry_problem(body, signed.payload, raw_signature, leaf)
    if problem:
        return None, problem
    return dt.datetime.fromtimestamp(integrated, dt.UTC), None


def _entry_problem(body: Any, payload: bytes, raw_signature: bytes, leaf: x509.Certificate) -> str | None:
    """Whether the Rekor entry is this signature (a ``hashedrekord``: hash, signature, certificate)."""
    try:
        spec = body["spec"]
        kind = body["kind"]
        logged_signature = base64.b64decode(spec["signature"]["content"])
        logged_certificate = x509.load_pem_x509_certificate(base64.b64decode(spec["signature"]["publicKey"]["content"]))
        logged_hash = spec["data"]["hash"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        return "its Rekor entry is not a hashedrekord cosign writes"
    if kind != "hashedrekord":
        return f"its Rekor entry is a {kind}, not a hashedrekord"
    if logged_hash.get("algorithm") != "sha256" or logged_hash.get("value") != hashlib.sha256(payload).hexdigest():
        return "its Rekor entry logs another payload"
    if logged_signature != raw_signature:
        return "its Rekor entry logs another signature"
    if logged_certificate != leaf:
        return "its Rekor entry logs another certificate"
    return None
