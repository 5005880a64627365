"""Keyless cosign signatures (domain/sigstore.py) against a Sigstore the tests own.

``devstack.content.sigstore`` issues what Fulcio, the CT log and Rekor issue, with keys of its own, so
each part of a keyless signature can be made wrong on purpose. The public Sigstore's own
signatures are checked in ``test_sigstore_fixtures.py``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import replace
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from devstack.content.cosign import SIGNATURE_ANNOTATION
from devstack.content.sigstore import BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, Sigstore
from hubmirror.allowlist.rules import AllowlistError, parse_allowlist
from hubmirror.allowlist.schema import allowlist_schema
from hubmirror.domain.sigstore import Identity, KeylessSignature, TrustRoot, TrustRootError, keyless_problem

DIGEST = "sha256:" + "a" * 64
WHO = "release@example.com"
ISSUER = "https://accounts.example.com"
WORKFLOW = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0"
ACTIONS = "https://token.actions.githubusercontent.com"


def payload(digest: str = DIGEST) -> bytes:
    critical = {"identity": {"docker-reference": "r/x"}, "image": {"docker-manifest-digest": digest}}
    return json.dumps({"critical": {**critical, "type": "cosign container image signature"}, "optional": None}).encode()


@pytest.fixture(scope="module")
def sigstore() -> Sigstore:
    return Sigstore()


@pytest.fixture(scope="module")
def root(sigstore: Sigstore) -> TrustRoot:
    return TrustRoot.from_json(sigstore.trusted_root())


def signed(sigstore: Sigstore, identity: str = WHO, issuer: str = ISSUER, **when: Any) -> KeylessSignature:
    notes = sigstore.sign(payload(), identity, issuer, **when)
    return KeylessSignature(
        payload(),
        notes[SIGNATURE_ANNOTATION],
        notes[CERTIFICATE_ANNOTATION],
        notes[CHAIN_ANNOTATION],
        notes[BUNDLE_ANNOTATION],
    )


def test_a_keyless_signature_by_the_named_identity_and_issuer_verifies(sigstore: Sigstore, root: TrustRoot) -> None:
    assert keyless_problem(signed(sigstore), DIGEST, Identity(WHO, issuer=ISSUER), root) is None
    by_workflow = signed(sigstore, WORKFLOW, ACTIONS)
    policy = Identity(identity_regexp=r"^https://github\.com/acme/app/\.github/workflows/", issuer=ACTIONS)
    assert keyless_problem(by_workflow, DIGEST, policy, root) is None


@pytest.mark.parametrize(
    ("policy", "said"),
    [
        (Identity("someone@example.com", issuer=ISSUER), f"it was signed by {WHO}, not someone@example.com"),
        (Identity(WHO, issuer="https://other.example.com"), f"vouched for by {ISSUER}, not https://other.example.com"),
        (Identity(identity_regexp=r"^ops@", issuer=ISSUER), f"it was signed by {WHO}, which does not match ^ops@"),
        (Identity(WHO, issuer_regexp=r"^https://token\."), f"vouched for by {ISSUER}, which does not match"),
    ],
)
def test_another_identity_or_issuer_is_refused_naming_the_one_found(
    sigstore: Sigstore, root: TrustRoot, policy: Identity, said: str
) -> None:
    problem = keyless_problem(signed(sigstore), DIGEST, policy, root)
    assert problem is not None
    assert said in problem


def test_an_altered_payload_or_another_digest_is_refused(sigstore: Sigstore, root: TrustRoot) -> None:
    good = signed(sigstore)
    policy = Identity(WHO, issuer=ISSUER)
    assert keyless_problem(good, "sha256:" + "b" * 64, policy, root) == f"it signs {DIGEST}, not sha256:{'b' * 64}"
    altered = replace(good, payload=good.payload.replace(b'"optional": null', b'"optional": {}'))
    assert keyless_problem(altered, DIGEST, policy, root) == "its signature does not verify with its certificate"


def test_a_certificate_used_outside_its_validity_is_refused(sigstore: Sigstore, root: TrustRoot) -> None:
    """Fulcio's certificates live ten minutes: Rekor must have logged the signature within them."""
    issued = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    late = signed(sigstore, issued=issued, logged=issued + dt.timedelta(hours=1))
    problem = keyless_problem(late, DIGEST, Identity(WHO, issuer=ISSUER), root)
    assert problem == (
        "Rekor logged it at 2026-01-01T13:00:00Z, outside its certificate's validity "
        "(2026-01-01T12:00:00Z to 2026-01-01T12:10:00Z)"
    )
    early = signed(sigstore, issued=issued, logged=issued - dt.timedelta(minutes=1))
    assert "outside its certificate's validity" in str(
        keyless_problem(early, DIGEST, Identity(WHO, issuer=ISSUER), root)
    )


def test_a_signature_from_another_sigstore_is_refused_at_its_chain(root: TrustRoot) -> None:
    stranger = signed(Sigstore())
    problem = keyless_problem(replace(stranger, chain=""), DIGEST, Identity(WHO, issuer=ISSUER), root)
    assert problem == "its certificate does not chain to a Fulcio certificate authority of the trust root"


def test_rekor_s_promise_must_verify_and_cover_this_signature(sigstore: Sigstore, root: TrustRoot) -> None:
    good = signed(sigstore)
    policy = Identity(WHO, issuer=ISSUER)
    bundle = json.loads(good.bundle)
    bundle["Payload"]["integratedTime"] += 1  # the SET no longer covers it
    assert keyless_problem(replace(good, bundle=json.dumps(bundle)), DIGEST, policy, root) == (
        "Rekor's signed entry timestamp does not verify"
    )
    other = signed(sigstore)  # a genuine entry, of another signature
    assert keyless_problem(replace(good, bundle=other.bundle), DIGEST, policy, root) == (
        "its Rekor entry logs another signature"
    )
    assert (
        keyless_problem(replace(good, bundle="{}"), DIGEST, policy, root) == "its Rekor bundle is not one cosign writes"
    )


def test_a_certificate_transparency_timestamp_in_a_known_log_s_name_must_be_signed_by_it(
    sigstore: Sigstore, root: TrustRoot
) -> None:
    forged = signed(sigstore, forged_sct=True)
    assert keyless_problem(forged, DIGEST, Identity(WHO, issuer=ISSUER), root) == (
        "its certificate's transparency timestamp (SCT) is not signed by a CT log of the trust root"
    )


def test_the_certificate_transparency_timestamp_must_come_from_a_known_log(sigstore: Sigstore) -> None:
    document = json.loads(sigstore.trusted_root())
    document["ctlogs"] = json.loads(Sigstore().trusted_root())["ctlogs"]  # another CT log's key
    problem = keyless_problem(
        signed(sigstore), DIGEST, Identity(WHO, issuer=ISSUER), TrustRoot.from_json(json.dumps(document))
    )
    assert problem == "its certificate's transparency timestamp (SCT) is not signed by a CT log of the trust root"


def test_a_broken_signature_or_certificate_is_refused_in_words(sigstore: Sigstore, root: TrustRoot) -> None:
    good = signed(sigstore)
    policy = Identity(WHO, issuer=ISSUER)
    assert keyless_problem(replace(good, signature="%%"), DIGEST, policy, root) == "its signature is not base64"
    assert (
        keyless_problem(replace(good, certificate="x"), DIGEST, policy, root) == "its certificate or chain is not PEM"
    )
    wrong = base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode()
    assert keyless_problem(replace(good, signature=wrong), DIGEST, policy, root) == (
        "its signature does not verify with its certificate"
    )


def test_the_shipped_trust_root_is_sigstore_s_and_a_broken_one_is_refused_in_words() -> None:
    shipped = TrustRoot.shipped()
    assert len(shipped.authorities) >= 2  # Fulcio's first CA and today's (intermediate and root)
    assert bytes.fromhex("c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d") in shipped.rekor
    with pytest.raises(TrustRootError, match="cannot be read"):
        TrustRoot.from_json("{")
    with pytest.raises(TrustRootError, match="no certificate authority or no Rekor key"):
        TrustRoot.from_json('{"certificateAuthorities": [], "tlogs": []}')


def _verify(block: str) -> str:
    return f"images:\n  - source: ghcr.io/acme/app\n    tags: ['1']\n    verify:\n{block}"


def test_a_keyless_policy_is_read_into_the_item() -> None:
    text = _verify(f"      identity_regexp: '^https://github.com/acme/'\n      issuer: {ACTIONS}\n")
    (entry,) = parse_allowlist(text).entries
    assert entry.verify == (
        "keyless",
        json.dumps({"identity_regexp": "^https://github.com/acme/", "issuer": ACTIONS}, separators=(",", ":")),
    )


@pytest.mark.parametrize(
    ("block", "said"),
    [
        (f"      identity: {WHO}\n", "images[0].verify: a keyless signer needs exactly one of issuer"),
        (
            f"      identity: {WHO}\n      identity_regexp: x\n      issuer: {ISSUER}\n",
            "images[0].verify: a keyless signer needs exactly one of identity",
        ),
        (
            f"      identity_regexp: '(unclosed'\n      issuer: {ISSUER}\n",
            "images[0].verify.identity_regexp: '(unclosed' is not a regular expression",
        ),
        (
            f"      identity: {WHO}\n      issuer: {ISSUER}\n      audience: x\n",
            "images[0].verify.audience: unknown key 'audience'",
        ),
        (
            f"      identity: {WHO}\n      issuer: {ISSUER}\n      github_workflow_ref: main\n",
            "images[0].verify.github_workflow_ref: 'main' is not the git ref the workflow ran for, such as "
            "refs/heads/main or refs/tags/v1.2.0",
        ),
        (
            f"      identity: {WHO}\n      issuer: {ISSUER}\n      github_workflow_sha: d8b4a64\n",
            "images[0].verify.github_workflow_sha: 'd8b4a64' is not the commit the workflow ran at, its full hex digest",
        ),
        (
            "      github_workflow_repository: acme/app\n",
            "images[0].verify: a keyless signer needs exactly one of identity",
        ),
    ],
    ids=["no-issuer", "both-identities", "bad-regexp", "unknown-key", "ref-not-a-ref", "short-sha", "claims-alone"],
)
def test_validate_refuses_a_broken_keyless_policy_naming_the_entry_field_and_rule(block: str, said: str) -> None:
    with pytest.raises(AllowlistError) as caught:
        parse_allowlist(_verify(block))
    assert said in str(caught.value)
    if "is not a regular expression" not in said:  # a JSON Schema cannot say what a valid pattern is
        document = yaml.safe_load(_verify(block))
        assert list(Draft202012Validator(allowlist_schema()).iter_errors(document)), "the published schema refuses it"


def test_github_workflow_claims_are_read_into_the_item_with_the_identity() -> None:
    text = _verify(
        f"      identity_regexp: '^https://github.com/acme/'\n      issuer: {ACTIONS}\n"
        "      github_workflow_repository: acme/app\n      github_workflow_ref: refs/tags/v1.2.0\n"
    )
    (entry,) = parse_allowlist(text).entries
    assert entry.verify is not None
    assert json.loads(entry.verify[1]) == {
        "identity_regexp": "^https://github.com/acme/",
        "issuer": ACTIONS,
        "github_workflow_repository": "acme/app",
        "github_workflow_ref": "refs/tags/v1.2.0",
    }
    assert not list(Draft202012Validator(allowlist_schema()).iter_errors(yaml.safe_load(text)))


def test_a_cosign_2_keyless_signature_is_held_to_the_github_workflow_claims_named(
    sigstore: Sigstore, root: TrustRoot
) -> None:
    run = {"repository": "acme/app", "ref": "refs/tags/v1.2.0", "trigger": "push"}
    notes = sigstore.sign(payload(), WORKFLOW, ACTIONS, workflow=run)
    signed = KeylessSignature(
        payload(),
        notes[SIGNATURE_ANNOTATION],
        notes[CERTIFICATE_ANNOTATION],
        notes[CHAIN_ANNOTATION],
        notes[BUNDLE_ANNOTATION],
    )
    policy = Identity(WORKFLOW, issuer=ACTIONS, github_workflow_repository="acme/app", github_workflow_trigger="push")
    assert keyless_problem(signed, DIGEST, policy, root) is None
    fork = replace(policy, github_workflow_repository="evil/app")
    assert keyless_problem(signed, DIGEST, fork, root) == (
        "its certificate says github_workflow_repository acme/app, not evil/app"
    )
    unsigned_sha = replace(policy, github_workflow_sha="0" * 40)
    assert keyless_problem(signed, DIGEST, unsigned_sha, root) == (
        f"its certificate carries no github_workflow_sha (the policy asks for {'0' * 40})"
    )
