"""The signature gate against a real registry (the hub, token auth) and the key stores under moto.

The signature is the one cosign made (``tests/unit/data/cosign``), put into the registry as
cosign puts it: a manifest tagged ``sha256-<hex>.sig`` whose layer is the simple-signing
payload, the signature in the layer's annotation.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from moto import mock_aws

from devstack.content.cosign import SIGNATURE_ANNOTATION, SIMPLE_SIGNING, artifact, push_referrer
from devstack.content.images import Blob, seed
from devstack.content.sigstore import Sigstore, key_bundle
from devstack.registries.hubfront import HubFront
from devstack.registries.referrers import Referrers
from devstack.stack import ECR_PASSWORD, ECR_USER
from hubmirror.adapters.publickeys import KeyReader
from hubmirror.adapters.registry.client import RegistryClient
from hubmirror.domain.items import WorkItem
from hubmirror.domain.ratelimit import PullBudget
from hubmirror.domain.registry.model import Credentials
from hubmirror.domain.signing import UnusableKeyError, signature_problem
from hubmirror.domain.sigstore import TrustRoot, TrustRootError
from hubmirror.steps.check import ItemCheck, check_item
from hubmirror.steps.verify import inline_keys, unverified
from tests.cosign_fixture import load
from tests.fakes import FakeRegistry
from tests.functional.conftest import Registries

REPOSITORY = "cosign/signed-single-sample"


@pytest.fixture(scope="module")
def signed(registries: Registries) -> str:
    """The cosign-made signature in the hub, beside a digest it signs (the image itself is not needed)."""
    cosign = load()
    pusher = registries.hub_pusher()
    payload, config, manifest = cosign.artifact()
    pusher.blob(REPOSITORY, payload)
    pusher.blob(REPOSITORY, config)
    pusher.manifest(REPOSITORY, cosign.digest.replace(":", "-") + ".sig", manifest)
    return cosign.digest


def item(verify: tuple[str, str]) -> WorkItem:
    return WorkItem(f"docker.io/{REPOSITORY}", "1", "mirror/signed", "1", verify=verify)


def test_the_signature_cosign_made_verifies_through_the_registry_at_one_pull(
    registries: Registries, front: HubFront, signed: str
) -> None:
    cosign = load()
    client = RegistryClient(registries.front.host)
    assert unverified(client, item(("key", cosign.public_pem)), signed, inline_keys) is None
    counts = front.snapshot()
    assert counts.get("get_manifest") == 1  # the signature manifest: the one pull the gate costs
    assert counts.get("get_blob") == 1  # its payload (not a pull)
    assert counts.get("head_manifest", 0) == 0


def test_another_key_or_another_digest_is_refused_through_the_registry(registries: Registries, signed: str) -> None:
    cosign = load()
    client = RegistryClient(registries.front.host)
    problem = unverified(client, item(("key", cosign.other_pem)), signed, inline_keys)
    assert problem is not None
    assert problem.endswith("verifies: it does not verify with the allowlist's key")
    elsewhere = "sha256:" + "1" * 64
    problem = unverified(client, item(("key", cosign.public_pem)), elsewhere, inline_keys)
    assert problem == (
        f"docker.io/{REPOSITORY} has no cosign signature of {elsewhere} (no tag sha256-{'1' * 64}.sig); "
        "the allowlist's key verifies none"
    )


@pytest.fixture
def aws(aws_credentials: None) -> Iterator[dict[str, Any]]:
    with mock_aws():
        yield {name: boto3.client(name) for name in ("secretsmanager", "ssm", "kms")}


class Counting:
    """boto3 clients, each call counted: the reader must read a key once per invocation."""

    def __init__(self, clients: dict[str, Any]) -> None:
        self.clients = clients
        self.calls: list[str] = []

    def __call__(self, service: str) -> Any:
        self.calls.append(service)
        return self.clients[service]


def test_keys_are_read_from_secrets_manager_ssm_and_kms_once_each(aws: dict[str, Any]) -> None:
    cosign = load()
    aws["secretsmanager"].create_secret(Name="hubmirror/cosign/sample", SecretString=cosign.public_pem)
    aws["ssm"].put_parameter(Name="/hubmirror/cosign/sample", Value=cosign.public_pem, Type="String")
    kms_key = aws["kms"].create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["Arn"]
    counting = Counting(aws)
    reader = KeyReader(counting)
    for _ in range(2):
        for source in (("secret", "hubmirror/cosign/sample"), ("parameter", "/hubmirror/cosign/sample")):
            assert signature_problem(cosign.payload, cosign.signature, cosign.digest, reader(source)) is None
        assert signature_problem(cosign.payload, cosign.signature, cosign.digest, reader(("kms", kms_key))) == (
            f"it does not verify with the key in kms {kms_key}"
        )
    assert counting.calls == ["secretsmanager", "ssm", "kms"]


def test_a_private_sigstore_s_trust_root_is_read_once_from_ssm_and_a_broken_one_fails_closed_in_words(
    aws: dict[str, Any],
) -> None:
    sigstore = Sigstore()
    aws["ssm"].put_parameter(Name="/hubmirror/sigstore/root", Value=sigstore.trusted_root(), Type="String")
    aws["ssm"].put_parameter(Name="/hubmirror/sigstore/broken", Value="{not json", Type="String")
    counting = Counting(aws)
    reader = KeyReader(counting)
    for _ in range(2):
        assert reader.trust_root("/hubmirror/sigstore/root").rekor.keys() == {sigstore.rekor_log_id}
    assert counting.calls == ["ssm"]
    with pytest.raises(TrustRootError, match=r"cannot be read: .* \(parameter /hubmirror/sigstore/broken\)"):
        reader.trust_root("/hubmirror/sigstore/broken")
    with pytest.raises(
        TrustRootError,
        match="target AWS: cannot read the Sigstore trust root in parameter /hubmirror/none: ParameterNotFound",
    ):
        reader.trust_root("/hubmirror/none")
    gated = WorkItem(
        "docker.io/app", "1", "mirror/app", "1", verify=("keyless", '{"identity":"a@b.c","issuer":"https://i"}')
    )
    refused = unverified(
        FakeRegistry({}), gated, "sha256:" + "1" * 64, inline_keys, partial(reader.trust_root, "/hubmirror/none")
    )
    assert refused is not None
    assert refused.startswith("target AWS: cannot read the Sigstore trust root")


def test_a_kms_signature_verifies_with_the_public_key_kms_gives(aws: dict[str, Any], registries: Registries) -> None:
    """cosign's ``--key awskms:///...`` signs the payload's SHA-256 with the KMS key (ECDSA_SHA_256)."""
    kms = aws["kms"]
    arn = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["Arn"]
    digest = "sha256:" + "2" * 64
    payload = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": f"{registries.front.host}/kms/app"},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        },
        separators=(",", ":"),
    ).encode()
    signature = kms.sign(KeyId=arn, Message=payload, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    layer = Blob(SIMPLE_SIGNING, payload)
    config, manifest = artifact(layer, {SIGNATURE_ANNOTATION: base64.b64encode(signature).decode()})
    pusher = registries.hub_pusher()
    pusher.blob("kms/app", layer)
    pusher.blob("kms/app", config)
    pusher.manifest("kms/app", digest.replace(":", "-") + ".sig", manifest)
    client = RegistryClient(registries.front.host)
    gated = WorkItem("docker.io/kms/app", "1", "mirror/kms/app", "1", verify=("kms", arn))
    reader = KeyReader(Counting(aws))
    assert unverified(client, gated, digest, reader) is None
    other = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["Arn"]
    refused = unverified(client, WorkItem("docker.io/kms/app", "1", "m/k", "1", verify=("kms", other)), digest, reader)
    assert refused is not None
    assert refused.endswith(f"it does not verify with the key in kms {other}")


def test_a_missing_or_wrong_key_is_said_in_words_and_asked_for_once(aws: dict[str, Any]) -> None:
    aws["secretsmanager"].create_secret(Name="hubmirror/cosign/junk", SecretString="hello")
    rsa = aws["kms"].create_key(KeyUsage="SIGN_VERIFY", KeySpec="RSA_2048")["KeyMetadata"]["Arn"]
    counting = Counting(aws)
    reader = KeyReader(counting)
    for _ in range(3):
        with pytest.raises(UnusableKeyError) as missing:
            reader(("secret", "hubmirror/cosign/gone"))
    assert str(missing.value).startswith(
        "target AWS: cannot read the key in secret hubmirror/cosign/gone: ResourceNotFoundException"
    )
    assert counting.calls == ["secretsmanager"]
    with pytest.raises(UnusableKeyError, match="the key in secret hubmirror/cosign/junk is not a PEM public key"):
        reader(("secret", "hubmirror/cosign/junk"))
    with pytest.raises(UnusableKeyError, match="is a RSA_2048 SIGN_VERIFY key; cosign signs with ECC_NIST_P256"):
        reader(("kms", rsa))
    with pytest.raises(UnusableKeyError, match="ParameterNotFound"):
        reader(("parameter", "/hubmirror/cosign/gone"))


def test_a_real_signature_under_another_digest_s_tag_is_refused_for_what_its_payload_signs(
    registries: Registries, signed: str
) -> None:
    """The ``sha256-<hex>.sig`` tag only says where to look: cosign's own signature, copied under
    the tag of another digest, reaches the payload's digest comparison and is refused there."""
    cosign = load()
    elsewhere = "sha256:" + "5" * 64
    _payload, _config, manifest = cosign.artifact()  # its blobs are in the repository already (``signed``)
    registries.hub_pusher().manifest(REPOSITORY, elsewhere.replace(":", "-") + ".sig", manifest)
    client = RegistryClient(registries.front.host)
    problem = unverified(client, item(("key", cosign.public_pem)), elsewhere, inline_keys)
    assert problem == (
        f"none of the 1 cosign signature(s) in docker.io/{REPOSITORY}:sha256-{'5' * 64}.sig verifies: "
        f"it signs {signed}, not {elsewhere}"
    )
    assert unverified(client, item(("key", cosign.public_pem)), signed, inline_keys) is None  # the same key, its digest


def test_a_keyless_signature_passes_the_gate_for_its_identity_only_at_one_pull(
    registries: Registries, front: HubFront
) -> None:
    """A keyless signature (Fulcio certificate, Rekor SET) from the tests' own Sigstore, read
    through the registry as the check reads it."""
    sigstore = Sigstore()
    root = TrustRoot.from_json(sigstore.trusted_root())
    pusher = registries.hub_pusher()
    digest = seed(pusher, "keyless/app", "1", ["linux/amd64"])
    workflow = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
    sigstore.sign_image(pusher, "keyless/app", digest, workflow, "https://token.actions.githubusercontent.com")
    client = RegistryClient(registries.front.host)

    def keyless(**policy: str) -> WorkItem:
        text = json.dumps(policy, sort_keys=True, separators=(",", ":"))
        return WorkItem(f"{front.host}/keyless/app", "1", "mirror/keyless", "1", verify=("keyless", text))

    issuer = "https://token.actions.githubusercontent.com"
    front.reset_counts()
    passes = keyless(identity_regexp=r"^https://github\.com/acme/app/", issuer=issuer)
    assert unverified(client, passes, digest, inline_keys, lambda: root) is None
    counts = front.snapshot()
    assert (counts.get("get_manifest"), counts.get("get_blob"), counts.get("head_manifest", 0)) == (1, 1, 0)
    refused = unverified(
        client,
        keyless(identity_regexp=r"^https://github\.com/other/", issuer=issuer),
        digest,
        inline_keys,
        lambda: root,
    )
    assert refused == (
        f"none of the 1 cosign signature(s) in {front.host}/keyless/app:{digest.replace(':', '-')}.sig verifies: "
        f"it was signed by {workflow}, which does not match ^https://github\\.com/other/"
    )
    # the production trust root does not know the tests' Sigstore
    stranger = unverified(client, passes, digest, inline_keys)
    assert stranger is not None
    assert stranger.endswith("its certificate does not chain to a Fulcio certificate authority of the trust root")


@pytest.mark.parametrize("api", [False, True], ids=["tag-schema", "referrers-api"])
def test_a_cosign_3_image_with_a_bundle_referrer_and_no_sig_tag_passes_a_key_policy(
    registries: Registries, front: HubFront, api: bool
) -> None:
    """cosign 3 writes no ``.sig`` tag: its signature is a Sigstore bundle among the image's
    referrers, found through the referrers API where the registry has it (not a pull), else
    through the referrers tag schema's index."""
    signer = ec.generate_private_key(ec.SECP256R1())
    pem = signer.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    pusher = registries.hub_pusher()
    repository = f"cosign3/app-{'api' if api else 'tags'}"
    front.referrers = Referrers() if api else None
    try:
        digest = seed(pusher, repository, "1", ["linux/amd64"])
        head = RegistryClient(front.host, Credentials(*front.admin)).head_manifest(repository, "1")
        subject = {"mediaType": head.media_type, "digest": digest, "size": head.size}
        push_referrer(pusher, repository, subject, key_bundle(signer, digest), tag_schema=not api)
        client = RegistryClient(front.host)
        entry = WorkItem(f"{front.host}/{repository}", "1", "mirror/cosign3", "1", verify=("key", pem.decode()))
        front.reset_counts()
        assert unverified(client, entry, digest, inline_keys) is None
        counts = front.snapshot()
        # the .sig tag (absent), then the tag schema's index or the API, then the bundle's manifest and blob
        assert counts.get("get_manifest") == (2 if api else 3)
        assert counts.get("referrers", 0) == 1  # asked once: answered, or 404 (no API)
        other = ec.generate_private_key(ec.SECP256R1()).public_key()
        other_pem = other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        refused = unverified(client, replace(entry, verify=("key", other_pem.decode())), digest, inline_keys)
        assert refused == (
            f"none of the 1 Sigstore bundle(s) among the referrers of {front.host}/{repository}@{digest} verifies: "
            "it does not verify with the allowlist's key"
        )
    finally:
        front.referrers = None


def test_a_bundle_s_pulls_are_reserved_one_by_one_and_a_budget_that_cannot_take_them_defers_the_item(
    registries: Registries, front: HubFront
) -> None:
    """The check reserves the copy's pull and one for the ``.sig``; a cosign 3 image without
    the referrers API spends two more (the tag schema's index, the bundle's manifest), each
    reserved before it is made. Two pulls above the floor: the item waits, and no pull beyond
    the two reserved is made; enough budget: it passes with all four."""
    signer = ec.generate_private_key(ec.SECP256R1())
    pem = signer.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    pusher = registries.hub_pusher()
    repository = "cosign3/budget"
    digest = seed(pusher, repository, "1", ["linux/amd64"])
    head = RegistryClient(front.host, Credentials(*front.admin)).head_manifest(repository, "1")
    subject = {"mediaType": head.media_type, "digest": digest, "size": head.size}
    push_referrer(pusher, repository, subject, key_bundle(signer, digest), tag_schema=True)
    upstream = RegistryClient(front.host, sleep=lambda _: None)
    target = RegistryClient(registries.ecr.host, Credentials(ECR_USER, ECR_PASSWORD), side="target")
    entry = WorkItem(f"{front.host}/{repository}", "1", "mirror/budget", "1", verify=("key", pem.decode()))

    def check(remaining: int) -> ItemCheck:
        front.set_budget(100, remaining)
        front.reset_counts()
        return check_item(
            entry, upstream=lambda _: upstream, target=target, budget=PullBudget(10), force=False, dry_run=False
        )

    low = check(12)
    assert low.outcome is not None
    assert low.outcome.outcome == "deferred"
    assert low.outcome.reason == (
        f"signature: {front.host} pull budget low (12 of 100 pulls left): the pull budget cannot take the "
        f"signature manifest {digest.replace(':', '-')}; deferred to a later run"
    )
    assert low.outcome.retry_after is not None
    assert front.snapshot().get("get_manifest") == 1  # the absent .sig, within what was reserved

    enough = check(14)
    assert enough.outcome is None  # the gate passed: the item goes to a job
    assert front.snapshot().get("get_manifest") == 3  # the absent .sig, the index, the bundle
