"""The signature gate: an item with ``verify:`` is copied or built only when a cosign
signature over its upstream digest verifies with the key it names.

It costs one manifest GET upstream (the signature manifest, ``sha256-<hex>.sig``: a pull on
Docker Hub, reserved in the pull budget with the copy's) and one blob GET per signature in
it (blob GETs are not pulls). It runs only for an item the check decided to copy or build:
an unchanged image was verified when it was copied, and a warm run looks at no signature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from hubmirror.domain.items import WorkItem
from hubmirror.domain.oci import cosign_tags
from hubmirror.domain.registry.errors import NotFoundError
from hubmirror.domain.registry.model import Manifest, ManifestHead
from hubmirror.domain.signing import MAX_PAYLOAD_BYTES, PublicKey, UnusableKeyError, signature_layers, signature_problem

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


def unverified(registry: SignatureRegistry, item: WorkItem, digest: str, keys: KeyResolver) -> str | None:
    """Why no cosign signature over ``digest`` verifies with the item's key; None when one does.

    Registry errors other than a missing signature are raised, for the check to name by
    side and cause (a 429 defers the item, as any other).
    """
    assert item.verify is not None
    try:
        key = keys(item.verify)
    except UnusableKeyError as exc:
        return str(exc)
    repository = item.upstream.repository
    tag = cosign_tags(digest)[0]
    where = f"{item.upstream.registry}/{repository}"
    try:
        manifest = registry.get_manifest(repository, tag)
    except NotFoundError:
        return f"{where} has no cosign signature of {digest} (no tag {tag}); {key.name} verifies none"
    try:
        document = manifest.document()
    except ValueError:
        return f"{where}:{tag} is not a JSON manifest"
    layers = signature_layers(document)
    if not layers:
        return f"{where}:{tag} holds no simple-signing signature"
    problems = []
    for payload_digest, signature in layers:
        payload = registry.get_blob(repository, payload_digest, max_bytes=MAX_PAYLOAD_BYTES)
        problem = signature_problem(payload, signature, digest, key)
        if problem is None:
            return None
        problems.append(problem)
    shown = "; ".join(dict.fromkeys(problems))
    return f"none of the {len(layers)} cosign signature(s) in {where}:{tag} verifies: {shown}"
