"""Upstream credentials: the secret's shape, Docker Hub's aliases, and values never shown."""

from __future__ import annotations

import pytest

from hubmirror.adapters.secrets import CredentialsError, for_host, load_credentials, parse_credentials

SECRET = "s3cr3t-value-never-shown"


def test_registries_map_to_api_hosts() -> None:
    creds = parse_credentials(
        f'{{"docker.io": {{"username": "bot", "password": "{SECRET}"}}, "ghcr.io": {{"username": "gh", "password": "x"}}}}'
    )
    assert for_host(creds, "registry-1.docker.io") == creds["registry-1.docker.io"]
    assert for_host(creds, "docker.io") is not None
    assert for_host(creds, "ghcr.io") is not None
    assert for_host(creds, "quay.io") is None
    assert SECRET not in repr(creds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "is not JSON"),
        ('["docker.io"]', "JSON object keyed by registry"),
        (f'{{"docker.io": {{"username": "bot"}}, "x": "{SECRET}"}}', "needs non-empty"),
        (f'{{"docker.io": {{"username": "", "password": "{SECRET}"}}}}', "needs non-empty"),
    ],
)
def test_malformed_secrets_are_refused_without_showing_values(text: str, message: str) -> None:
    with pytest.raises(CredentialsError) as raised:
        parse_credentials(text, secret="the secret hubmirror/upstream")
    assert message in str(raised.value)
    assert SECRET not in str(raised.value)
    assert "hubmirror/upstream" in str(raised.value)


class _Failing:
    def get_secret_value(self, SecretId: str) -> dict[str, str]:  # noqa: N803 - boto3's name
        raise RuntimeError(f"denied, and here is {SECRET}")


def test_an_unreadable_secret_names_the_secret_not_the_error_text() -> None:
    with pytest.raises(CredentialsError) as raised:
        load_credentials("hubmirror/upstream", client=_Failing())
    assert "hubmirror/upstream" in str(raised.value)
    assert SECRET not in str(raised.value)
    assert raised.value.__cause__ is None


def test_no_secret_means_anonymous() -> None:
    assert load_credentials(None) == {}
    assert load_credentials("") == {}
