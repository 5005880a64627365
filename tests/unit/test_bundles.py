"""Sigstore bundles (cosign 3): public ones others made, verified against the shipped trust root.

The fixtures (``tests/unit/data/sigstore``, origin and licence in its README): an image
attestation cosign 3 made (a DSSE in-toto statement, keyless, with Rekor's SET and an
inclusion proof), a wheel signed in GitHub Actions (a message signature), and a bundle that
carries an inclusion proof but no signed time, which sigstore-python refuses too.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from devstack.content.sigstore import key_bundle
from hubmirror.domain.bundles import bundle_problem, merkle_root
from hubmirror.domain.signing import PublicKey
from hubmirror.domain.sigstore import Identity, TrustRoot

DATA = Path(__file__).parent / "data" / "sigstore"
IMAGE = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
CODY = Identity("cody@soyland.com", issuer="https://github.com/login/oauth")
WHEEL = DATA / "rfc8785-0.1.2-py3-none-any.whl.artifact"
RELEASE = Identity(
    "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2",
    issuer="https://token.actions.githubusercontent.com",
)


@pytest.fixture(scope="module")
def root() -> TrustRoot:
    return TrustRoot.shipped()


def attestation() -> dict[str, Any]:
    return json.loads((DATA / "cosign3-image-attestation.sigstore.json").read_bytes())


def encoded(bundle: dict[str, Any]) -> bytes:
    return json.dumps(bundle).encode()


def test_a_cosign_3_bundle_about_an_image_verifies_for_its_identity(root: TrustRoot) -> None:
    assert bundle_problem(encoded(attestation()), IMAGE, root, identity=CODY) is None


def test_a_bundle_signing_a_message_digest_verifies_for_its_workflow(root: TrustRoot) -> None:
    digest = "sha256:" + hashlib.sha256(WHEEL.read_bytes()).hexdigest()
    bundle = (DATA / "rfc8785-0.1.2-py3-none-any.whl.sigstore.json").read_bytes()
    assert bundle_problem(bundle, digest, root, identity=RELEASE) is None
    policy = Identity(identity_regexp=r"^https://github\.com/trailofbits/", issuer=RELEASE.issuer)
    assert bundle_problem(bundle, digest, root, identity=policy) is None
    assert bundle_problem(bundle, IMAGE, root, identity=RELEASE) == f"it signs {digest}, not {IMAGE}"


@pytest.mark.parametrize(
    ("policy", "said"),
    [
        (
            Identity("someone@soyland.com", issuer=CODY.issuer),
            "it was signed by cody@soyland.com, not someone@soyland.com",
        ),
        (Identity(CODY.identity, issuer="https://accounts.google.com"), "not https://accounts.google.com"),
    ],
    ids=["identity", "issuer"],
)
def test_a_bundle_is_refused_for_another_identity_or_issuer(root: TrustRoot, policy: Identity, said: str) -> None:
    problem = bundle_problem(encoded(attestation()), IMAGE, root, identity=policy)
    assert problem is not None
    assert said in problem


def test_a_bundle_about_another_image_or_with_an_altered_statement_is_refused(root: TrustRoot) -> None:
    other = "sha256:" + "0" * 64
    assert bundle_problem(encoded(attestation()), other, root, identity=CODY) == (
        f"its statement is about {IMAGE.removeprefix('sha256:')}, not {other}"
    )
    bundle = attestation()
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["Data"] = "something else"
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    assert bundle_problem(encoded(bundle), IMAGE, root, identity=CODY) == (
        "its signature does not verify with its certificate"
    )


def test_the_log_entry_must_prove_itself(root: TrustRoot) -> None:
    bundle = attestation()
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    entry["inclusionProof"]["hashes"][0] = base64.b64encode(b"\0" * 32).decode()
    assert bundle_problem(encoded(bundle), IMAGE, root, identity=CODY) == (
        "its inclusion proof does not lead to the log's root"
    )
    bundle = attestation()
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    entry["integratedTime"] = str(int(entry["integratedTime"]) + 1)
    assert (
        bundle_problem(encoded(bundle), IMAGE, root, identity=CODY) == "Rekor's signed entry timestamp does not verify"
    )
    bundle = attestation()
    checkpoint = bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]
    checkpoint["envelope"] = checkpoint["envelope"].replace("wNI9ajBF", "wNI9ajBG")
    assert bundle_problem(encoded(bundle), IMAGE, root, identity=CODY) == (
        "its checkpoint is not signed by a Rekor log of the trust root"
    )


def test_a_keyless_bundle_without_a_signed_time_is_refused(root: TrustRoot) -> None:
    """Its certificate lived ten minutes: without a time Rekor signed, nothing says it was used then."""
    digest = "sha256:" + hashlib.sha256((DATA / "no-signed-time.txt").read_bytes()).hexdigest()
    bundle = (DATA / "no-signed-time.txt.sigstore.json").read_bytes()
    policy = Identity("william@yossarian.net", issuer="https://github.com/login/oauth")
    problem = bundle_problem(bundle, digest, root, identity=policy)
    assert problem is not None
    assert problem.startswith("it carries no time Rekor signed (a SET)")


def test_a_bundle_signed_with_a_key_verifies_with_that_key_only(root: TrustRoot) -> None:
    signer = ec.generate_private_key(ec.SECP256R1())
    bundle = key_bundle(signer, IMAGE)
    key = PublicKey(signer.public_key(), "the allowlist's key")
    assert bundle_problem(bundle, IMAGE, root, key=key) is None
    other = PublicKey(ec.generate_private_key(ec.SECP256R1()).public_key(), "the allowlist's key")
    assert bundle_problem(bundle, IMAGE, root, key=other) == "it does not verify with the allowlist's key"
    assert bundle_problem(bundle, IMAGE, root, identity=CODY) == (
        "the bundle carries no certificate, so it was not signed keyless"
    )


def test_a_document_that_is_not_a_bundle_is_refused_in_words(root: TrustRoot) -> None:
    assert bundle_problem(b"{", IMAGE, root, identity=CODY) == "the bundle is not JSON"
    assert bundle_problem(b'{"mediaType": "x"}', IMAGE, root, identity=CODY) == (
        "the bundle's media type 'x' is not a Sigstore bundle's"
    )


def test_merkle_proofs_of_every_leaf_of_a_small_tree_lead_to_its_root() -> None:
    leaves = [hashlib.sha256(b"\x00" + bytes([n])).digest() for n in range(7)]

    def node(a: bytes, b: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + a + b).digest()

    # RFC 9162's tree of 7: ((0,1),(2,3)),((4,5),6)
    n01, n23, n45 = node(leaves[0], leaves[1]), node(leaves[2], leaves[3]), node(leaves[4], leaves[5])
    n0123, n456 = node(n01, n23), node(n45, leaves[6])
    top = node(n0123, n456)
    proofs = {0: [leaves[1], n23, n456], 3: [leaves[2], n01, n456], 4: [leaves[5], leaves[6], n0123], 6: [n45, n0123]}
    for index, path in proofs.items():
        assert merkle_root(index, 7, leaves[index], path) == top, index
    assert merkle_root(6, 7, leaves[6], [n45]) != top
    assert merkle_root(7, 7, leaves[6], []) is None


#: What Fulcio wrote into the wheel's certificate for the GitHub Actions run that signed it.
RUN = {
    "github_workflow_repository": "trailofbits/rfc8785.py",
    "github_workflow_ref": "refs/tags/v0.1.2",
    "github_workflow_trigger": "release",
    "github_workflow_sha": "d8b4a6445f38c48b9137a8099706d9b8073146e4",
    "github_workflow_name": "release",
}


@pytest.mark.parametrize("claim", sorted(RUN))
def test_each_github_workflow_claim_passes_when_it_is_the_run_s_and_fails_naming_what_the_certificate_says(
    root: TrustRoot, claim: str
) -> None:
    """As ``cosign verify --certificate-github-workflow-*``: each claim exact, against the
    extension Fulcio wrote for the GitHub Actions run (a real bundle, not one made here)."""
    digest = "sha256:" + hashlib.sha256(WHEEL.read_bytes()).hexdigest()
    bundle = (DATA / "rfc8785-0.1.2-py3-none-any.whl.sigstore.json").read_bytes()
    assert bundle_problem(bundle, digest, root, identity=replace(RELEASE, **RUN)) is None
    other = {"github_workflow_sha": "0" * 40, "github_workflow_ref": "refs/heads/main"}.get(claim, "someone-else")
    refused = bundle_problem(bundle, digest, root, identity=replace(RELEASE, **{claim: other}))
    assert refused == f"its certificate says {claim} {RUN[claim]}, not {other}"


def test_a_github_claim_on_a_certificate_that_carries_none_is_refused(root: TrustRoot) -> None:
    """cody@soyland.com signed through GitHub's OAuth login, not a workflow: no claims."""
    policy = replace(CODY, github_workflow_repository="sigstore/cosign")
    assert bundle_problem(encoded(attestation()), IMAGE, root, identity=policy) == (
        "its certificate carries no github_workflow_repository (the policy asks for sigstore/cosign)"
    )
