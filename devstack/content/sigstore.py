"""A Sigstore of the local stack's own: a Fulcio CA, a CT log and a Rekor log with test keys.

It issues what the public Sigstore issues for ``cosign sign`` without a key (cosign 2, tag
schema): a short-lived certificate for an identity, with the OIDC issuer Fulcio writes
(extension 1.3.6.1.4.1.57264.1.8) and an embedded SCT over the precertificate (RFC 6962), a
signature with its key, and Rekor's signed entry timestamp over a ``hashedrekord`` entry
(https://github.com/sigstore/cosign/blob/main/specs/SIGNATURE_SPEC.md). Its trust root is
written in Sigstore's ``trusted_root.json`` format, so the verifier reads it as it reads the
production root. Every part can be made wrong on purpose (another identity, a log time outside
the certificate's validity) to show the verifier refuses it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devstack.content.cosign import OCI_CONFIG, OCI_MANIFEST, SIGNATURE_ANNOTATION, SIGNATURE_TYPE, SIMPLE_SIGNING
from devstack.content.images import Blob, Pusher

CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
ISSUER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
SCT_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
#: The GitHub workflow claims Fulcio writes raw for a GitHub Actions token (its docs/oid-info.md).
WORKFLOW_OIDS = {
    "trigger": x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.2"),
    "sha": x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.3"),
    "name": x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.4"),
    "repository": x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.5"),
    "ref": x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.6"),
}
EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _utf8(text: str) -> bytes:
    data = text.encode()
    assert len(data) < 128
    return bytes([0x0C, len(data)]) + data


def _ca(name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None, signer: Any) -> x509.Certificate:
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hubmirror.test"), x509.NameAttribute(NameOID.COMMON_NAME, name)]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(EPOCH)
        .not_valid_after(EPOCH + dt.timedelta(days=365 * 30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(signer, hashes.SHA384())
    )


@dataclass
class Sigstore:
    """Keys and certificates of a test Sigstore; :meth:`trusted_root` is what a verifier trusts."""

    root_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP384R1()))
    intermediate_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP384R1())
    )
    ct_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    rekor_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    log_index: int = 0

    def __post_init__(self) -> None:
        self.root = _ca("test-sigstore", self.root_key, None, self.root_key)
        self.intermediate = _ca("test-sigstore-intermediate", self.intermediate_key, self.root, self.root_key)

    @property
    def rekor_log_id(self) -> bytes:
        return hashlib.sha256(_spki(self.rekor_key.public_key())).digest()

    @property
    def ct_log_id(self) -> bytes:
        return hashlib.sha256(_spki(self.ct_key.public_key())).digest()

    def trusted_root(self) -> str:
        """This Sigstore in the ``trusted_root.json`` format Sigstore's TUF repository serves."""

        def log(key: ec.EllipticCurvePrivateKey, log_id: bytes, url: str) -> dict[str, Any]:
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": base64.b64encode(_spki(key.public_key())).decode(),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": "2020-01-01T00:00:00Z"},
                },
                "logId": {"keyId": base64.b64encode(log_id).decode()},
            }

        chain = [self.intermediate, self.root]
        return json.dumps(
            {
                "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                "tlogs": [log(self.rekor_key, self.rekor_log_id, "https://rekor.test")],
                "certificateAuthorities": [
                    {
                        "subject": {"organization": "hubmirror.test", "commonName": "test-sigstore"},
                        "uri": "https://fulcio.test",
                        "certChain": {
                            "certificates": [
                                {"rawBytes": base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()}
                                for c in chain
                            ]
                        },
                        "validFor": {"start": "2020-01-01T00:00:00Z"},
                    }
                ],
                "ctlogs": [log(self.ct_key, self.ct_log_id, "https://ctfe.test")],
            },
            indent=2,
        )

    def certificate(
        self,
        key: ec.EllipticCurvePrivateKey,
        identity: str,
        issuer: str,
        *,
        issued: dt.datetime,
        forged_sct: bool = False,
        workflow: Mapping[str, str] | None = None,
    ) -> x509.Certificate:
        """A Fulcio-style certificate for ``identity`` (an e-mail, or a URI), valid ten minutes
        from ``issued``, with an SCT from this Sigstore's CT log embedded (``forged_sct``: in
        the log's name, signed by another key), and the GitHub ``workflow`` claims given
        (``repository``, ``ref``, ``trigger``, ``sha``, ``name``), raw, as Fulcio writes them."""
        name = x509.UniformResourceIdentifier(identity) if "://" in identity else x509.RFC822Name(identity)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.intermediate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(issued)
            .not_valid_after(issued + dt.timedelta(minutes=10))
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(x509.SubjectAlternativeName([name]), critical=True)
            .add_extension(x509.UnrecognizedExtension(ISSUER_OID, _utf8(issuer)), critical=False)
        )
        for claim, said in (workflow or {}).items():
            builder = builder.add_extension(x509.UnrecognizedExtension(WORKFLOW_OIDS[claim], said.encode()), False)
        precertificate = builder.sign(self.intermediate_key, hashes.SHA384())
        tbs = precertificate.tbs_certificate_bytes
        timestamp = int(issued.timestamp() * 1000)
        issuer_key_hash = hashlib.sha256(_spki(self.intermediate_key.public_key())).digest()
        signed = (
            b"\x00\x00" + timestamp.to_bytes(8, "big") + b"\x00\x01" + issuer_key_hash
            + len(tbs).to_bytes(3, "big") + tbs + b"\x00\x00"
        )  # fmt: skip
        signer = ec.generate_private_key(ec.SECP256R1()) if forged_sct else self.ct_key
        signature = signer.sign(signed, ec.ECDSA(hashes.SHA256()))
        sct = (
            b"\x00" + self.ct_log_id + timestamp.to_bytes(8, "big") + b"\x00\x00"
            + b"\x04\x03" + len(signature).to_bytes(2, "big") + signature
        )  # fmt: skip
        sct_list = len(sct).to_bytes(2, "big") + sct
        sct_list = len(sct_list).to_bytes(2, "big") + sct_list
        value = b"\x04" + _der_length(len(sct_list)) + sct_list
        final = builder.add_extension(x509.UnrecognizedExtension(SCT_OID, value), critical=False).sign(
            self.intermediate_key, hashes.SHA384()
        )
        assert final.tbs_precertificate_bytes == tbs  # what the SCT signed is what a verifier rebuilds
        return final

    def sign(
        self,
        payload: bytes,
        identity: str,
        issuer: str,
        *,
        issued: dt.datetime | None = None,
        logged: dt.datetime | None = None,
        forged_sct: bool = False,
        workflow: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """The annotations of a keyless signature of ``payload``: the signature, the
        certificate, the chain and Rekor's bundle (logged at ``logged``, by default one minute
        after the certificate was issued)."""
        issued = issued or dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=2)
        logged = logged or issued + dt.timedelta(minutes=1)
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = self.certificate(key, identity, issuer, issued=issued, forged_sct=forged_sct, workflow=workflow)
        signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
        body = {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}},
                "signature": {
                    "content": base64.b64encode(signature).decode(),
                    "publicKey": {"content": base64.b64encode(_pem(certificate).encode()).decode()},
                },
            },
        }
        self.log_index += 1
        entry = {
            "body": base64.b64encode(json.dumps(body, separators=(",", ":")).encode()).decode(),
            "integratedTime": int(logged.timestamp()),
            "logID": self.rekor_log_id.hex(),
            "logIndex": self.log_index,
        }
        canonical = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
        timestamp = self.rekor_key.sign(canonical, ec.ECDSA(hashes.SHA256()))
        return {
            SIGNATURE_ANNOTATION: base64.b64encode(signature).decode(),
            CERTIFICATE_ANNOTATION: _pem(certificate),
            CHAIN_ANNOTATION: _pem(self.intermediate) + _pem(self.root),
            BUNDLE_ANNOTATION: json.dumps(
                {"SignedEntryTimestamp": base64.b64encode(timestamp).decode(), "Payload": entry}
            ),
        }

    def sign_image(self, pusher: Pusher, repository: str, digest: str, identity: str, issuer: str, **when: Any) -> str:
        """Push a keyless cosign signature of ``repository@digest`` (tag ``sha256-<hex>.sig``)."""
        payload = json.dumps(
            {
                "critical": {
                    "identity": {"docker-reference": f"{pusher.base.removeprefix('http://')}/{repository}"},
                    "image": {"docker-manifest-digest": digest},
                    "type": SIGNATURE_TYPE,
                },
                "optional": None,
            },
            separators=(",", ":"),
        ).encode()
        layer = Blob(SIMPLE_SIGNING, payload)
        config = Blob(
            OCI_CONFIG,
            json.dumps(
                {"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers", "diff_ids": [layer.digest]}}
            ).encode(),
        )
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [layer.descriptor(annotations=self.sign(payload, identity, issuer, **when))],
        }
        pusher.blob(repository, layer)
        pusher.blob(repository, config)
        return pusher.manifest(
            repository, digest.replace(":", "-") + ".sig", Blob(OCI_MANIFEST, json.dumps(manifest).encode())
        )


def _der_length(length: int) -> bytes:
    if length < 128:
        return bytes([length])
    data = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(data)]) + data


SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"


def key_bundle(key: ec.EllipticCurvePrivateKey, digest: str, *, name: str = "registry.test/app") -> bytes:
    """A Sigstore bundle (v0.3) as cosign 3 writes for ``cosign sign --key``: a DSSE envelope of
    an in-toto statement about ``digest``, signed with ``key``, with no log entry (``--tlog-upload=false``)."""
    algorithm, _, hex_digest = digest.partition(":")
    statement = json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": name, "digest": {algorithm: hex_digest}}],
            "predicateType": SIGN_PREDICATE,
            "predicate": {},
        },
        separators=(",", ":"),
    ).encode()
    payload_type = "application/vnd.in-toto+json"
    pae = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(statement), statement)
    signature = key.sign(pae, ec.ECDSA(hashes.SHA256()))
    hint = base64.b64encode(hashlib.sha256(_spki(key.public_key())).digest()).decode()
    return json.dumps(
        {
            "mediaType": BUNDLE_V03,
            "verificationMaterial": {"publicKey": {"hint": hint}, "tlogEntries": []},
            "dsseEnvelope": {
                "payload": base64.b64encode(statement).decode(),
                "payloadType": payload_type,
                "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": ""}],
            },
        }
    ).encode()
