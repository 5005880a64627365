"""Keyless signatures the public Sigstore issued, verified against the trust root hubmirror ships.

The fixtures (``tests/unit/data/sigstore``, whose README names their origin and licence) were
made by others with cosign 2: a Fulcio certificate for ``mitr@redhat.com`` (GitHub's OAuth as
issuer), logged in Rekor. Their certificates expired long ago; they are checked at the time
Rekor logged them, as cosign checks them offline.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest

from hubmirror.domain.signing import SIGNATURE_ANNOTATION
from hubmirror.domain.sigstore import (
    BUNDLE_ANNOTATION,
    CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION,
    Identity,
    KeylessSignature,
    TrustRoot,
    keyless_problem,
    oidc_issuer,
    subjects,
)

DATA = Path(__file__).parent / "data" / "sigstore"
SIGNER = Identity("mitr@redhat.com", issuer="https://github.com/login/oauth")


def image_signature() -> tuple[KeylessSignature, str]:
    """The signature stored beside containers/image's fixture image, and that image's digest."""
    raw = (DATA / "cosign2-keyless-image.signature-1").read_bytes()
    header = b"\x00sigstore-json\n"  # containers/image's framing of a stored signature
    assert raw.startswith(header)
    stored = json.loads(raw[len(header) :])
    notes = stored["annotations"]
    signed = KeylessSignature(
        base64.b64decode(stored["payload"]),
        notes[SIGNATURE_ANNOTATION],
        notes[CERTIFICATE_ANNOTATION],
        notes[CHAIN_ANNOTATION],
        notes[BUNDLE_ANNOTATION],
    )
    digest = "sha256:" + hashlib.sha256((DATA / "cosign2-keyless-image.manifest.json").read_bytes()).hexdigest()
    return signed, digest


def alpine_signature() -> tuple[KeylessSignature, str]:
    signed = KeylessSignature(
        (DATA / "cosign2-keyless-alpine.payload.json").read_bytes(),
        (DATA / "cosign2-keyless-alpine.sig.b64").read_text().strip(),
        (DATA / "cosign2-keyless-alpine.cert.pem").read_text(),
        (DATA / "cosign2-keyless-alpine.chain.pem").read_text(),
        (DATA / "cosign2-keyless-alpine.rekor-set.json").read_text(),
    )
    return signed, "sha256:fa93b01658e3a5a1686dc3ae55f170d8de487006fb53a28efcd12ab0710a2e5f"


@pytest.fixture(scope="module")
def root() -> TrustRoot:
    return TrustRoot.shipped()


@pytest.mark.parametrize("fixture", [image_signature, alpine_signature], ids=["image", "alpine"])
def test_a_public_keyless_signature_verifies_for_its_identity_and_issuer(fixture: object, root: TrustRoot) -> None:
    signed, digest = fixture()  # type: ignore[operator]
    assert keyless_problem(signed, digest, SIGNER, root) is None
    assert (
        keyless_problem(
            signed, digest, Identity(identity_regexp=r"@redhat\.com$", issuer_regexp=r"^https://github\.com/"), root
        )
        is None
    )


def test_the_certificate_names_the_identity_and_the_issuer_fulcio_wrote() -> None:
    from cryptography import x509

    signed, _ = image_signature()
    certificate = x509.load_pem_x509_certificate(signed.certificate.encode())
    assert subjects(certificate) == ["mitr@redhat.com"]
    assert oidc_issuer(certificate) == "https://github.com/login/oauth"  # the older, raw extension


@pytest.mark.parametrize(
    ("policy", "said"),
    [
        (
            Identity("someone@redhat.com", issuer=SIGNER.issuer),
            "it was signed by mitr@redhat.com, not someone@redhat.com",
        ),
        (
            Identity(SIGNER.identity, issuer="https://accounts.google.com"),
            "its identity was vouched for by https://github.com/login/oauth, not https://accounts.google.com",
        ),
    ],
    ids=["identity", "issuer"],
)
def test_a_public_keyless_signature_is_refused_for_another_identity_or_issuer(
    policy: Identity, said: str, root: TrustRoot
) -> None:
    signed, digest = image_signature()
    assert keyless_problem(signed, digest, policy, root) == said


def test_an_altered_payload_or_another_image_is_refused(root: TrustRoot) -> None:
    signed, digest = image_signature()
    altered = replace(signed, payload=signed.payload.replace(b"fulcio-rekor-1", b"fulcio-rekor-2"))
    assert keyless_problem(altered, digest, SIGNER, root) == "its signature does not verify with its certificate"
    _, other = alpine_signature()
    assert keyless_problem(signed, other, SIGNER, root) == f"it signs {digest}, not {other}"


def test_one_signature_s_rekor_entry_does_not_vouch_for_another(root: TrustRoot) -> None:
    signed, digest = image_signature()
    alpine, _ = alpine_signature()
    assert keyless_problem(replace(signed, bundle=alpine.bundle), digest, SIGNER, root) == (
        "its Rekor entry logs another payload"
    )


def test_a_trust_root_without_sigstore_s_keys_refuses_them() -> None:
    """Without the CT log key the certificate's timestamp proves nothing; without Rekor's key its promise neither."""
    signed, digest = image_signature()
    document = json.loads((DATA / "trusted-root-public-good.json").read_text())
    no_ct = TrustRoot.from_json(json.dumps({**document, "ctlogs": []}))
    assert keyless_problem(signed, digest, SIGNER, no_ct) == (
        "its certificate's transparency timestamp (SCT) is not signed by a CT log of the trust root"
    )
    logs = [log for log in document["tlogs"] if not log["publicKey"]["keyDetails"].startswith("PKIX_ECDSA")]
    other_rekor = {
        **document,
        "tlogs": [*logs, {**document["tlogs"][0], "logId": {"keyId": base64.b64encode(b"x" * 32).decode()}}],
    }
    problem = keyless_problem(signed, digest, SIGNER, TrustRoot.from_json(json.dumps(other_rekor)))
    assert problem is not None
    assert problem.startswith("it was logged in a Rekor log the trust root does not know")
