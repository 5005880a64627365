"""The signature gate's logic: cosign keys, payloads and signatures, and the check's verdict.

The signature verified here was made by cosign itself (``tests/unit/data/cosign``, taken from
containers/image's fixtures); the keys refused are made here.
"""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hubmirror.allowlist.rules import AllowlistError, parse_allowlist
from hubmirror.domain.items import WorkItem
from hubmirror.domain.ratelimit import PullBudget, RateLimit
from hubmirror.domain.registry.model import Manifest, ManifestHead
from hubmirror.domain.signing import PublicKey, UnusableKeyError, signature_problem
from hubmirror.steps.check import ItemCheck, check_item
from hubmirror.steps.verify import unverified
from tests.cosign_fixture import CosignSignature, load
from tests.fakes import FakeRegistry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def cosign() -> CosignSignature:
    return load()


def pem(key: object) -> str:
    public = key.public_key()  # type: ignore[attr-defined]
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def test_a_signature_made_by_cosign_verifies_with_its_key_over_the_signed_digest(cosign: CosignSignature) -> None:
    key = PublicKey.from_pem(cosign.public_pem)
    assert signature_problem(cosign.payload, cosign.signature, cosign.digest, key) is None


def test_the_same_signature_is_refused_by_another_key_for_another_digest_and_once_altered(
    cosign: CosignSignature,
) -> None:
    key = PublicKey.from_pem(cosign.public_pem, name="cosign.pub")
    other = PublicKey.from_pem(cosign.other_pem, name="cosign2.pub")
    assert signature_problem(cosign.payload, cosign.signature, cosign.digest, other) == (
        "it does not verify with cosign2.pub"
    )
    elsewhere = "sha256:" + "0" * 64
    assert signature_problem(cosign.payload, cosign.signature, elsewhere, key) == (
        f"it signs {cosign.digest}, not {elsewhere}"
    )
    altered = cosign.payload.replace(b'"optional":null', b'"optional":{}')
    assert altered != cosign.payload
    assert signature_problem(altered, cosign.signature, cosign.digest, key) == "it does not verify with cosign.pub"
    assert signature_problem(cosign.payload, "not base64!", cosign.digest, key) == "its signature is not base64"


def test_a_payload_that_is_not_a_cosign_signature_is_refused_before_the_key_is_used(cosign: CosignSignature) -> None:
    key = PublicKey.from_pem(cosign.public_pem)
    document = json.loads(cosign.payload)
    document["critical"]["type"] = "atomic container signature"
    assert "not 'cosign container image signature'" in str(
        signature_problem(json.dumps(document).encode(), cosign.signature, cosign.digest, key)
    )
    assert signature_problem(b"[]", cosign.signature, cosign.digest, key) == "its payload has no 'critical' section"


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda: rsa.generate_private_key(65537, 2048), "is an RSA key; hubmirror verifies ECDSA P-256 keys"),
        (lambda: ec.generate_private_key(ec.SECP384R1()), "is an ECDSA key on secp384r1"),
    ],
)
def test_keys_cosign_does_not_make_by_default_are_refused_in_words(make: object, said: str) -> None:
    with pytest.raises(UnusableKeyError, match=said):
        PublicKey.from_pem(pem(make()))  # type: ignore[operator]


def test_validate_refuses_a_bad_key_naming_the_entry_and_the_rule(cosign: CosignSignature) -> None:
    def entry(verify: str) -> str:
        return f'images:\n  - source: nginx\n    tags: ["1.27"]\n    verify:\n{verify}'

    good = "      key: |\n" + "".join(f"        {line}\n" for line in cosign.public_pem.splitlines())
    assert parse_allowlist(entry(good)).entries[0].verify == ("key", cosign.public_pem)
    broken = good.replace("MFkwEwYH", "MFkwEwYI")
    with pytest.raises(AllowlistError) as refused:
        parse_allowlist(entry(broken))
    (line,) = refused.value.lines()
    assert line.startswith("allowlist.yaml:5: images[0].verify.key: the key is not a readable PEM public key")
    with pytest.raises(AllowlistError) as refused:
        parse_allowlist(entry("      secret: cosign/nginx\n"))
    assert refused.value.lines() == [
        "allowlist.yaml:5: images[0].verify.secret: 'cosign/nginx' is not the name of a Secrets Manager "
        "secret under hubmirror/ holding the PEM key"
    ]


def test_a_default_gate_applies_to_every_entry_and_false_turns_it_off() -> None:
    text = (
        "defaults:\n  verify: {parameter: /hubmirror/cosign/acme}\n"
        'images:\n  - source: acme/app\n    tags: ["1"]\n'
        '  - source: nginx\n    tags: ["1"]\n    verify: false\n'
    )
    first, second = parse_allowlist(text).entries
    assert first.verify == ("parameter", "/hubmirror/cosign/acme")
    assert second.verify is None


def signed_upstream(cosign: CosignSignature, tag: str = "1") -> FakeRegistry:
    payload, _config, manifest = cosign.artifact()
    head = ManifestHead(cosign.digest, OCI_MANIFEST, 100, RateLimit(100, 50, 21600))
    signature_tag = cosign.digest.replace(":", "-") + ".sig"
    return FakeRegistry(
        {tag: head},
        manifests={signature_tag: Manifest(manifest.digest, OCI_MANIFEST, manifest.data)},
        blobs={payload.digest: payload.data},
    )


def gated(verify: tuple[str, str]) -> WorkItem:
    return WorkItem("docker.io/acme/app", "1", "mirror/acme/app", "1", verify=verify)


def checked(
    item: WorkItem, upstream: FakeRegistry, *, budget: PullBudget | None = None, dry_run: bool = False
) -> ItemCheck:
    """The check of ``item`` against ``upstream`` and an empty target."""
    return check_item(
        item,
        upstream=lambda _: upstream,
        target=FakeRegistry({}),
        budget=budget or PullBudget(0),
        force=False,
        dry_run=dry_run,
    )


def test_an_item_with_a_good_signature_goes_on_to_its_copy_with_the_signature_pull_reserved(
    cosign: CosignSignature,
) -> None:
    upstream = signed_upstream(cosign)
    budget = PullBudget(10)
    result = checked(gated(("key", cosign.public_pem)), upstream, budget=budget)
    assert result.outcome is None
    assert result.decision is not None
    assert result.decision.action == "copy"
    signature_tag = cosign.digest.replace(":", "-") + ".sig"
    assert upstream.requests == [("HEAD", "1"), ("GET", signature_tag), ("GET blob", cosign.artifact()[0].digest)]
    assert not budget.reserve("docker.io", RateLimit(100, 50, 21600), 39)  # 50 - 2 reserved - 39 < floor 10


def test_an_item_whose_signature_does_not_verify_fails_and_gets_no_job(cosign: CosignSignature) -> None:
    upstream = signed_upstream(cosign)
    result = checked(gated(("key", cosign.other_pem)), upstream)
    assert result.outcome is not None
    assert result.outcome.outcome == "failed"
    assert result.outcome.reason == (
        f"signature: none of the 1 cosign signature(s) in docker.io/acme/app:{cosign.digest.replace(':', '-')}.sig "
        "verifies: it does not verify with the allowlist's key; the target tag is left as it is"
    )
    assert result.outcome.upstream_digest == cosign.digest


def test_an_unsigned_image_fails_in_words_and_a_dry_run_spends_no_pull_on_the_signature(
    cosign: CosignSignature,
) -> None:
    upstream = FakeRegistry({"1": ManifestHead(cosign.digest, OCI_MANIFEST, 100)})
    result = checked(gated(("key", cosign.public_pem)), upstream)
    assert result.outcome is not None
    assert result.outcome.outcome == "failed"
    assert result.outcome.reason.startswith(f"signature: docker.io/acme/app has no cosign signature of {cosign.digest}")
    upstream.requests.clear()
    result = checked(gated(("key", cosign.public_pem)), upstream, dry_run=True)
    assert result.outcome is not None
    assert result.outcome.outcome == "would_copy"
    assert upstream.requests == [("HEAD", "1")]


def test_a_key_that_cannot_be_read_fails_the_item_with_the_reader_s_words(cosign: CosignSignature) -> None:
    def unreadable(source: tuple[str, str]) -> PublicKey:
        raise UnusableKeyError(
            f"target AWS: cannot read the key in {source[0]} {source[1]}: AccessDeniedException (no)"
        )

    upstream = signed_upstream(cosign)
    problem = unverified(upstream, gated(("secret", "hubmirror/cosign/acme")), cosign.digest, unreadable)
    assert problem == "target AWS: cannot read the key in secret hubmirror/cosign/acme: AccessDeniedException (no)"
    assert upstream.requests == []  # no pull spent before the key is known


def test_a_429_on_the_signature_defers_the_item(cosign: CosignSignature) -> None:
    upstream = signed_upstream(cosign)
    upstream.limited.add(cosign.digest.replace(":", "-") + ".sig")
    result = checked(gated(("key", cosign.public_pem)), upstream)
    assert result.outcome is not None
    assert result.outcome.outcome == "deferred"
    assert result.outcome.reason.startswith("signature: ")
    assert result.outcome.retry_after is not None


def test_a_build_is_gated_on_its_base_image_s_signature(cosign: CosignSignature) -> None:
    built = WorkItem(
        "docker.io/acme/app",
        "1",
        "mirror/acme/app",
        "1",
        build_commands=("RUN mkdir /data",),
        verify=("key", cosign.other_pem),
    )
    result = checked(built, signed_upstream(cosign))
    assert result.decision is not None
    assert result.decision.action == "build"
    assert result.outcome is not None
    assert result.outcome.outcome == "failed"
    assert result.outcome.reason.startswith("signature: none of the 1 cosign signature(s)")
