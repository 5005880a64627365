"""Sigstore's trust root refreshed from a TUF repository (python-tuf's client against a real
repository served over HTTP), and the shipped root, with a notice, whenever that fails.

The repository publishes the tests' own Sigstore's ``trusted_root.json``: a keyless signature
that Sigstore made verifies only against the refreshed root, so each test shows which root
the gate got by what it accepts, not by reading the adapter's state.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.content.sigstore import Sigstore
from devstack.registries.tufrepo import TufRepository
from hubmirror.adapters.sigstoretuf import TufTrustRoot
from hubmirror.domain.signing import SIGNATURE_ANNOTATION
from hubmirror.domain.sigstore import (
    BUNDLE_ANNOTATION,
    CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION,
    TUF_ROOT,
    Identity,
    KeylessSignature,
    TrustRoot,
    keyless_problem,
)

ISSUER = "https://token.actions.githubusercontent.com"
WORKFLOW = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def sigstore() -> Sigstore:
    return Sigstore()


@pytest.fixture
def repository(tmp_path: Path, sigstore: Sigstore) -> Iterator[TufRepository]:
    repo = TufRepository(tmp_path / "repo", sigstore.trusted_root().encode()).start()
    try:
        yield repo
    finally:
        repo.stop()


def accepts(root: TrustRoot, sigstore: Sigstore) -> bool:
    """Whether ``root`` verifies a keyless signature the tests' Sigstore made just now."""
    critical = {"identity": {"docker-reference": "r/x"}, "image": {"docker-manifest-digest": DIGEST}}
    payload = json.dumps({"critical": {**critical, "type": "cosign container image signature"}, "optional": None})
    notes = sigstore.sign(payload.encode(), WORKFLOW, ISSUER)
    signed = KeylessSignature(
        payload.encode(),
        notes[SIGNATURE_ANNOTATION],
        notes[CERTIFICATE_ANNOTATION],
        notes[CHAIN_ANNOTATION],
        notes[BUNDLE_ANNOTATION],
    )
    return keyless_problem(signed, DIGEST, Identity(identity=WORKFLOW, issuer=ISSUER), root) is None


def refresher(repository: TufRepository, tmp_path: Path, **kwargs: object) -> TufTrustRoot:
    return TufTrustRoot(repository.url, cache_dir=tmp_path / "cache", bootstrap=repository.root_bytes, **kwargs)  # type: ignore[arg-type]


def test_the_trust_root_is_read_from_the_tuf_repository_once_per_max_age(
    repository: TufRepository, sigstore: Sigstore, tmp_path: Path
) -> None:
    now = [0.0]
    source = refresher(repository, tmp_path, max_age=3600, clock=lambda: now[0])
    root = source()
    assert root.notice is None
    assert accepts(root, sigstore)
    assert not accepts(TrustRoot.shipped(), sigstore)  # the control: the shipped root does not know it
    fetched = list(repository.requests)
    assert any(path.endswith(".trusted_root.json") for path in fetched)
    assert "/timestamp.json" in fetched
    for _ in range(20):  # the check's items: not one request more
        assert source() is root
    assert repository.requests == fetched
    now[0] = 3600.0  # an hour on: asked again; the trust root's hash is unchanged, so not downloaded again
    assert accepts(source(), sigstore)
    again = repository.requests[len(fetched) :]
    assert "/timestamp.json" in again
    assert not any(path.endswith(".trusted_root.json") for path in again)


def test_a_rotated_root_and_a_new_trust_root_are_followed(
    repository: TufRepository, sigstore: Sigstore, tmp_path: Path
) -> None:
    other = Sigstore()
    repository.rotate_root()
    repository.publish(other.trusted_root().encode())
    root = refresher(repository, tmp_path)()
    assert root.notice is None
    assert accepts(root, other)
    assert not accepts(root, sigstore)
    assert "/2.root.json" in repository.requests


@pytest.mark.parametrize(
    ("spoil", "cause"),
    [
        ("stop", "(cannot connect: Connection refused)"),
        ("expire_timestamp", "(its metadata has expired (ExpiredMetadataError: timestamp.json is expired))"),
        ("tamper_target", "(a file does not match the length or hash its metadata signs (LengthOrHashMismatchError"),
        ("stranger", "(its metadata is not signed by the keys the client trusts (UnsignedMetadataError"),
    ],
    ids=["unreachable", "expired-timestamp", "altered-trust-root", "another-repository"],
)
def test_a_refresh_that_fails_falls_back_to_the_shipped_root_and_says_so(
    repository: TufRepository, sigstore: Sigstore, tmp_path: Path, spoil: str, cause: str
) -> None:
    bootstrap = repository.root_bytes
    if spoil == "stranger":  # a repository whose root is not the one the client trusts
        bootstrap = TufRepository(tmp_path / "other", b"{}").root_bytes
    else:
        getattr(repository, spoil)()
    url = repository.url if spoil != "stop" else "http://127.0.0.1:9"
    root = TufTrustRoot(url, cache_dir=tmp_path / "cache", bootstrap=bootstrap)()
    assert not accepts(root, sigstore)
    assert root == TrustRoot.shipped()
    assert root.notice is not None
    assert root.notice.startswith(
        f"upstream 127.0.0.1:{url.rsplit(':', 1)[1]}: Sigstore's trust root could not be refreshed"
    )
    assert cause in root.notice
    assert root.notice.endswith(
        "keyless signatures were checked against the trust root shipped with hubmirror "
        f"{__import__('hubmirror').__version__}. The next run tries again"
    )


def test_the_shipped_tuf_root_is_sigstore_s_and_signed_by_its_threshold() -> None:
    """The TUF root hubmirror ships verifies itself (python-tuf checks the threshold of root
    keys) and is Sigstore's public repository's."""
    from tuf.api.metadata import Metadata, Root

    document = json.loads(TUF_ROOT.read_bytes())
    root = Metadata[Root].from_bytes(TUF_ROOT.read_bytes())
    root.signed.verify_delegate(Root.type, root.signed_bytes, root.signatures)
    assert document["signed"]["_type"] == "root"
    assert root.signed.consistent_snapshot
    assert root.signed.roles[Root.type].threshold >= 3
