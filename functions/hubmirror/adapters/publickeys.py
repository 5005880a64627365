"""The cosign public keys ``verify:`` names, read from where they are kept.

- ``key``: the PEM text in the allowlist itself;
- ``secret``: a Secrets Manager secret whose string is the PEM (``cosign.pub``);
- ``parameter``: an SSM parameter whose value is the PEM (a SecureString is decrypted);
- ``kms``: an asymmetric KMS key, whose public key ``kms:GetPublicKey`` returns as DER
  (https://docs.aws.amazon.com/kms/latest/APIReference/API_GetPublicKey.html); it must be
  an ``ECC_NIST_P256`` signing key, as ``cosign generate-key-pair --kms awskms:///...`` makes.

Each key is read once per invocation, its failure included, so a batch of items naming one
missing secret costs one request and says the same thing for each. So is a Sigstore trust root
kept in an SSM parameter (``SigstoreTrustedRootParameter``, for a private Sigstore).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from hubmirror.adapters import aws
from hubmirror.domain.signing import PublicKey, UnusableKeyError
from hubmirror.domain.sigstore import TrustRoot, TrustRootError


class KeyReader:
    """A :data:`~hubmirror.steps.verify.KeyResolver` over AWS, caching each key it reads."""

    def __init__(self, client: Callable[[str], Any] = aws.client) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._read: dict[tuple[str, str], PublicKey | UnusableKeyError] = {}
        self._roots: dict[str, TrustRoot | TrustRootError] = {}

    def __call__(self, source: tuple[str, str]) -> PublicKey:
        with self._lock:
            if source not in self._read:
                try:
                    self._read[source] = self._load(*source)
                except UnusableKeyError as exc:
                    self._read[source] = exc
            found = self._read[source]
        if isinstance(found, UnusableKeyError):
            raise found
        return found

    def trust_root(self, parameter: str) -> TrustRoot:
        """The Sigstore trust root (``trusted_root.json``) kept in the SSM parameter ``parameter``;
        a failure is a :class:`TrustRootError` in words (the gate then fails keyless items closed)."""
        with self._lock:
            if parameter not in self._roots:
                try:
                    answer = self._client("ssm").get_parameter(Name=parameter, WithDecryption=True)
                    self._roots[parameter] = TrustRoot.from_json(str(answer["Parameter"]["Value"]))
                except TrustRootError as exc:
                    self._roots[parameter] = TrustRootError(f"{exc} (parameter {parameter})")
                except ClientError as exc:
                    error = exc.response.get("Error", {})
                    self._roots[parameter] = TrustRootError(
                        f"target AWS: cannot read the Sigstore trust root in parameter {parameter}: "
                        f"{error.get('Code', 'error')} ({error.get('Message', '')})"
                    )
                except BotoCoreError as exc:
                    self._roots[parameter] = TrustRootError(
                        f"target AWS: cannot read the Sigstore trust root in parameter {parameter}: {exc}"
                    )
            found = self._roots[parameter]
        if isinstance(found, TrustRootError):
            raise found
        return found

    def _load(self, kind: str, value: str) -> PublicKey:
        name = f"the key in {kind} {value}" if kind != "key" else "the allowlist's key"
        if kind == "key":
            return PublicKey.from_pem(value, name=name)
        try:
            if kind == "secret":
                answer = self._client("secretsmanager").get_secret_value(SecretId=value)
                return PublicKey.from_pem(str(answer.get("SecretString") or ""), name=name)
            if kind == "parameter":
                answer = self._client("ssm").get_parameter(Name=value, WithDecryption=True)
                return PublicKey.from_pem(str(answer["Parameter"]["Value"]), name=name)
            if kind == "kms":
                answer = self._client("kms").get_public_key(KeyId=value)
                spec = answer.get("KeySpec") or answer.get("CustomerMasterKeySpec")  # the older name of the field
                if answer.get("KeyUsage") != "SIGN_VERIFY" or spec != "ECC_NIST_P256":
                    raise UnusableKeyError(
                        f"{name} is a {spec} {answer.get('KeyUsage')} key; "
                        "cosign signs with ECC_NIST_P256 SIGN_VERIFY keys"
                    )
                return PublicKey.from_der(bytes(answer["PublicKey"]), name=name)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise UnusableKeyError(
                f"target AWS: cannot read {name}: {error.get('Code', 'error')} ({error.get('Message', '')})"
            ) from None
        except BotoCoreError as exc:
            raise UnusableKeyError(f"target AWS: cannot read {name}: {exc}") from None
        raise UnusableKeyError(f"verify names its key by {kind!r}, which is not one of key, secret, parameter, kms")
