"""Upstream registry credentials, from one AWS Secrets Manager secret.

The secret's value is a JSON object keyed by registry, as image references name them::

    {
      "docker.io": {"username": "platform-bot", "password": "dckr_pat_..."},
      "ghcr.io":   {"username": "platform-bot", "password": "ghp_..."}
    }

``docker.io``, ``index.docker.io`` and ``registry-1.docker.io`` all mean Docker Hub.
Credentials are used for token requests (the check, the plan's tag lists) and for the
copy/build job's pulls; they are never logged, never put in an environment variable and
never written to a report: :class:`~hubmirror.adapters.registry.client.Credentials` hides the password
from its ``repr``, and messages name the secret and the key, never a value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hubmirror.adapters import aws
from hubmirror.domain.references import DOCKER_HUB_API_HOST, DOCKER_HUB_NAMES
from hubmirror.domain.registry.model import Credentials


class CredentialsError(ValueError):
    """The credentials secret cannot be read or is not in the expected shape."""


def _host(registry: str) -> str:
    registry = registry.strip().lower()
    return DOCKER_HUB_API_HOST if registry in DOCKER_HUB_NAMES else registry


def parse_credentials(text: str, *, secret: str = "the secret") -> dict[str, Credentials]:  # noqa: S107 - a name, not a password
    """Credentials by API host from the secret's JSON text.

    >>> creds = parse_credentials('{"docker.io": {"username": "u", "password": "p"}}')
    >>> list(creds), creds["registry-1.docker.io"].username
    (['registry-1.docker.io'], 'u')
    """
    try:
        value = json.loads(text)
    except ValueError:
        raise CredentialsError(
            f'{secret} is not JSON; expected {{"docker.io": {{"username": ..., "password": ...}}}}'
        ) from None
    if not isinstance(value, Mapping):
        raise CredentialsError(f'{secret} must be a JSON object keyed by registry, such as "docker.io"')
    found: dict[str, Credentials] = {}
    for registry, entry in value.items():
        if not isinstance(entry, Mapping) or not all(
            isinstance(entry.get(k), str) and entry.get(k) for k in ("username", "password")
        ):
            raise CredentialsError(
                f'{secret}: the entry {registry!r} needs non-empty "username" and "password" strings'
            )
        found[_host(str(registry))] = Credentials(username=str(entry["username"]), password=str(entry["password"]))
    return found


def load_credentials(secret_id: str | None, client: Any = None) -> dict[str, Credentials]:
    """Read the secret (``None`` or empty: no credentials, anonymous pulls)."""
    if not secret_id:
        return {}
    client = client or aws.client("secretsmanager")
    try:
        text = client.get_secret_value(SecretId=secret_id)["SecretString"]
    except Exception as exc:  # the error names the secret, never its value
        raise CredentialsError(
            f"cannot read the upstream credentials secret {secret_id}: {type(exc).__name__}"
        ) from None
    return parse_credentials(text, secret=f"the secret {secret_id}")


def for_host(credentials: Mapping[str, Credentials], host: str) -> Credentials | None:
    """The credentials for an API host (``registry-1.docker.io`` for Docker Hub)."""
    return credentials.get(_host(host))
