"""The signature gate: an item with ``verify:`` is copied or built only when a cosign
signature over its upstream digest verifies with the key it names, or was made keyless by the
identity it names (:mod:`hubmirror.domain.sigstore`, against the trust root hubmirror ships).

It costs one manifest GET upstream (the signature manifest, ``sha256-<hex>.sig``: a pull on
Docker Hub, reserved in the pull budget with the copy's) and one blob GET per signature in
it (blob GETs are not pulls). An image with no ``.sig`` (cosign 3) costs the manifest GETs of
its Sigstore bundles too (and of the referrers tag schema's index where the registry has no
referrers API), each reserved before it is made: a budget that cannot take one defers the item.
It runs only for an item the check decided to copy or build:
an unchanged image was verified when it was copied, and a warm run looks at no signature.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hubmirror.domain.bundles import BUNDLE_MEDIA_TYPES, MAX_BUNDLE_BYTES, bundle_problem
from hubmirror.domain.items import WorkItem
from hubmirror.domain.oci import cosign_tags, referrers_tag
from hubmirror.domain.registry.errors import NotFoundError
from hubmirror.domain.registry.model import Manifest, ManifestHead
from hubmirror.domain.signing import (
    MAX_PAYLOAD_BYTES,
    MAX_SIGNATURES,
    PublicKey,
    UnusableKeyError,
    signature_layers,
    signature_problem,
)
from hubmirror.domain.sigstore import (
    Identity,
    KeylessSignature,
    TrustRoot,
    TrustRootError,
    keyless_problem,
    keyless_signatures,
)

#: ``(source, value)`` of ``verify:`` -> the key; raises :class:`UnusableKeyError` in words.
KeyResolver = Callable[[tuple[str, str]], PublicKey]


def inline_keys(source: tuple[str, str]) -> PublicKey:
    """The resolver for keys written in the allowlist (``verify: {key: ...}``) alone.

    >>> inline_keys(("secret", "hubmirror/cosign/acme"))
    Traceback (most recent call last):
    ...
    hubmirror.domain.signing.UnusableKeyError: the key in secret hubmirror/cosign/acme cannot be read here
    """
    kind, value = source
    if kind != "key":
        raise UnusableKeyError(f"the key in {kind} {value} cannot be read here")
    return PublicKey.from_pem(value, name="the allowlist's key")


class SignatureRegistry(Protocol):
    """What the check asks of an upstream registry: the gate reads a signature manifest and its payloads too."""

    def head_manifest(self, repository: str, reference: str) -> ManifestHead: ...
    def get_manifest(self, repository: str, reference: str) -> Manifest: ...
    def get_blob(self, repository: str, digest: str, *, max_bytes: int = ...) -> bytes: ...
    def referrers(self, repository: str, digest: str) -> list[dict[str, Any]] | None: ...


class SignatureBudgetError(Exception):
    """The pull budget cannot take the next signature pull: the item waits for a later run."""


def _unlimited(pulls: int) -> bool:
    return True


#: What ``verify:`` holds for a keyless signer (its other kinds are the key sources).
KEYLESS = "keyless"


@functools.cache
def shipped_trust_root() -> TrustRoot:
    """Sigstore's trust root as hubmirror ships it, read once per process."""
    return TrustRoot.shipped()


class Verifier(Protocol):
    """One kind of policy ``verify:`` states, checking the signatures the gate finds in either
    of cosign's storage forms: a ``.sig`` manifest's layers (cosign 2) or Sigstore bundles
    among the referrers (cosign 3). :class:`KeyVerifier` and :class:`KeylessVerifier`."""

    @property
    def wanted(self) -> str:
        """What a refusal says was needed, e.g. "the allowlist's key verifies none"."""
        ...

    def layers(self, manifest: Mapping[str, Any]) -> Sequence[tuple[str, Any]]:
        """The signatures of a ``.sig`` manifest this verifier can judge: (payload digest, parts)."""
        ...

    def none_in(self, where: str) -> str:
        """What to say of a ``.sig`` manifest holding none of them."""
        ...

    def signature(self, payload: bytes, parts: Any, digest: str) -> str | None:
        """Why one ``.sig`` signature does not verify for ``digest``; None when it does."""
        ...

    def bundle(self, data: bytes, digest: str) -> str | None:
        """Why one Sigstore bundle does not verify for ``digest``; None when it does."""
        ...


@dataclass(frozen=True)
class KeyVerifier:
    """A signature made with a key (cosign's, a KMS key): simple signing in a ``.sig``, or a
    bundle whose transparency-log entries, where it carries them, must verify too."""

    key: PublicKey
    trust_root: Callable[[], TrustRoot] = shipped_trust_root

    @property
    def wanted(self) -> str:
        return f"{self.key.name} verifies none"

    def layers(self, manifest: Mapping[str, Any]) -> Sequence[tuple[str, Any]]:
        return signature_layers(manifest)

    def none_in(self, where: str) -> str:
        return f"{where} holds no simple-signing signature"

    def signature(self, payload: bytes, parts: Any, digest: str) -> str | None:
        return signature_problem(payload, str(parts), digest, self.key)

    def bundle(self, data: bytes, digest: str) -> str | None:
        try:
            root = self.trust_root()
        except TrustRootError as exc:
            return str(exc)
        return bundle_problem(data, digest, root, key=self.key)


@dataclass(frozen=True)
class KeylessVerifier:
    """A keyless signature: a Fulcio certificate for the identity and issuer named, logged in
    Rekor, checked against the trust root (:mod:`hubmirror.domain.sigstore`)."""

    identity: Identity
    root: TrustRoot

    @property
    def wanted(self) -> str:
        return f"a keyless signature by {self.identity.identity or self.identity.identity_regexp} is needed"

    def layers(self, manifest: Mapping[str, Any]) -> Sequence[tuple[str, Any]]:
        return keyless_signatures(manifest)

    def none_in(self, where: str) -> str:
        return f"{where} holds no keyless signature (one with a certificate); {self.wanted}"

    def signature(self, payload: bytes, parts: Any, digest: str) -> str | None:
        return keyless_problem(KeylessSignature.of(payload, parts), digest, self.identity, self.root)

    def bundle(self, data: bytes, digest: str) -> str | None:
        return bundle_problem(data, digest, self.root, identity=self.identity)


def verifier(
    item: WorkItem, keys: KeyResolver, trust_root: Callable[[], TrustRoot] = shipped_trust_root
) -> Verifier | str:
    """The verifier the item's ``verify:`` states, or why there can be none (a key that cannot
    be read, a trust root that cannot), in words."""
    assert item.verify is not None
    kind, value = item.verify
    if kind == KEYLESS:
        try:
            return KeylessVerifier(Identity.from_dict(json.loads(value)), trust_root())
        except TrustRootError as exc:
            return str(exc)
    try:
        return KeyVerifier(keys(item.verify), trust_root)
    except UnusableKeyError as exc:
        return str(exc)


def unverified(
    registry: SignatureRegistry,
    item: WorkItem,
    digest: str,
    keys: KeyResolver,
    trust_root: Callable[[], TrustRoot] = shipped_trust_root,
    *,
    reserve: Callable[[int], bool] = _unlimited,
) -> str | None:
    """Why no cosign signature over ``digest`` verifies as the item's ``verify:`` asks; None
    when one does.

    Registry errors other than a missing signature are raised, for the check to name by
    side and cause (a 429 defers the item, as any other). ``reserve(n)`` takes ``n`` pulls from
    the budget for each pull beyond the ``.sig`` (already reserved with the copy's); when it
    cannot, :class:`SignatureBudgetError` is raised before the pull is made.
    """
    judge = verifier(item, keys, trust_root)
    if isinstance(judge, str):
        return judge
    repository = item.upstream.repository
    tag = cosign_tags(digest)[0]
    where = f"{item.upstream.registry}/{repository}"
    try:
        manifest = registry.get_manifest(repository, tag)
    except NotFoundError:
        bundles = sigstore_bundles(registry, repository, digest, reserve)
        if not bundles:
            return f"{where} has no cosign signature of {digest} (no tag {tag}); {judge.wanted}"
        refusals = [judge.bundle(bundle, digest) for bundle in bundles]
        if None in refusals:
            return None
        shown = "; ".join(dict.fromkeys(str(r) for r in refusals))
        return (
            f"none of the {len(bundles)} Sigstore bundle(s) among the referrers of {where}@{digest} verifies: {shown}"
        )
    try:
        document = manifest.document()
    except ValueError:
        return f"{where}:{tag} is not a JSON manifest"
    layers = judge.layers(document)
    if not layers:
        return judge.none_in(f"{where}:{tag}")
    problems: list[str] = []
    for payload_digest, parts in layers:
        payload = registry.get_blob(repository, payload_digest, max_bytes=MAX_PAYLOAD_BYTES)
        problem = judge.signature(payload, parts, digest)
        if problem is None:
            return None
        problems.append(problem)
    shown = "; ".join(dict.fromkeys(problems))
    return f"none of the {len(layers)} cosign signature(s) in {where}:{tag} verifies: {shown}"


def sigstore_bundles(
    registry: SignatureRegistry, repository: str, digest: str, reserve: Callable[[int], bool] = _unlimited
) -> list[bytes]:
    """The Sigstore bundles (cosign 3's signatures) among the referrers of ``digest``: from the
    referrers API (not a pull), else the referrers tag schema's index (one pull where it
    exists); each bundle's manifest is a pull, its bundle a blob GET. At most
    :data:`~hubmirror.domain.signing.MAX_SIGNATURES`. Each pull is reserved first (``reserve``)."""

    def pull(reference: str) -> Manifest:
        if not reserve(1):
            raise SignatureBudgetError(f"the pull budget cannot take the signature manifest {reference}")
        return registry.get_manifest(repository, reference)

    listed: Sequence[Mapping[str, Any]] | None = registry.referrers(repository, digest)
    if listed is None:
        try:
            index = pull(referrers_tag(digest)).document()
        except (NotFoundError, ValueError):
            return []
        listed = [d for d in index.get("manifests") or [] if isinstance(d, Mapping)]
    found: list[bytes] = []
    for descriptor in listed:
        if descriptor.get("artifactType") not in BUNDLE_MEDIA_TYPES or len(found) >= MAX_SIGNATURES:
            continue
        try:
            document = pull(str(descriptor["digest"])).document()
        except ValueError:
            continue
        for layer in document.get("layers") or []:
            if isinstance(layer, Mapping) and layer.get("mediaType") in BUNDLE_MEDIA_TYPES:
                found.append(registry.get_blob(repository, str(layer["digest"]), max_bytes=MAX_BUNDLE_BYTES))
    return found[:MAX_SIGNATURES]
