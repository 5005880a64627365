"""What every handler shares: settings read once, and the adapters built from them."""

from __future__ import annotations

from functools import cache

from hubmirror.adapters.ecr import Ecr
from hubmirror.adapters.eventbridge import EventBus
from hubmirror.adapters.registry.client import RegistryClient
from hubmirror.adapters.s3 import Store
from hubmirror.adapters.secrets import for_host, load_credentials
from hubmirror.adapters.sigstoretuf import TufTrustRoot
from hubmirror.adapters.stepfunctions import Executions
from hubmirror.domain.registry.model import Credentials
from hubmirror.settings import Settings


@cache
def settings() -> Settings:
    """The environment, read at the first invocation (the cold start) and kept."""
    return Settings.from_env()


@cache
def store() -> Store:
    return Store(settings().bucket)


@cache
def upstream_credentials() -> dict[str, Credentials]:
    """Upstream credentials from the secret named in the settings (none: anonymous)."""
    return load_credentials(settings().upstream_secret)


@cache
def upstream_client(host: str) -> RegistryClient:
    """One client per upstream registry host, kept warm (connections, tokens)."""
    return RegistryClient(host, for_host(upstream_credentials(), host))


@cache
def ecr() -> Ecr:
    return Ecr()


def target_client() -> RegistryClient:
    """The target registry with fresh ECR credentials (they last 12 hours)."""
    return RegistryClient(settings().target_registry, ecr().credentials(), side="target")


@cache
def event_bus() -> EventBus:
    return EventBus()


@cache
def executions() -> Executions:
    return Executions()


@cache
def tuf_trust_root(url: str) -> TufTrustRoot:
    """Sigstore's trust root from the TUF repository at ``url``, refreshed at most once an hour
    per warm function (never per image)."""
    return TufTrustRoot(url)
