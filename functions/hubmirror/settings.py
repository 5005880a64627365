"""The Lambdas' configuration, read from the environment once, at cold start.

A missing or malformed variable fails the cold start with a message naming it, instead of
failing later in the middle of a run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hubmirror.domain.oci import KNOWN_PLATFORMS, normalise_platform
from hubmirror.domain.pullpolicy import Pullers, PullersError

PACKAGE_DIR = Path(__file__).resolve().parent


class SettingsError(RuntimeError):
    """An environment variable is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    """Everything the handlers read from their environment."""

    bucket: str
    target_registry: str
    target_prefix: str = "mirror"
    batch_size: int = 50
    #: items copied as they are (no lines added) go in batches of their own, this large: a copy
    #: job copies several at once, paced by the account's PutImage rate, where a build job
    #: builds one after another
    copy_batch_size: int = 200
    check_concurrency: int = 8
    rate_limit_floor: int = 10
    map_concurrency: int = 10
    default_platforms: tuple[str, ...] | None = None
    upstream_secret: str | None = None
    tag_list_limit: int = 100_000
    #: seconds one item may take in a copy or build job (None: the job's own default)
    item_deadline_seconds: int | None = None
    #: the EventBridge bus the report puts the run's events on (None: no events)
    event_bus: str | None = None
    #: a new allowlist version starts a run (the report starts one for a version that arrived
    #: during its run)
    run_on_allowlist_change: bool = False
    #: who may pull from the mirror's repositories, besides this account
    pullers: Pullers = field(default_factory=Pullers)
    #: the SSM parameter holding the Sigstore trust root keyless signatures verify against
    #: (None: Sigstore's public one, shipped with hubmirror)
    sigstore_trusted_root_parameter: str | None = None
    #: the TUF repository Sigstore's trust root is refreshed from (None: no refresh, the shipped
    #: root); a private root (above) takes precedence
    sigstore_tuf_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``HUBMIRROR_*`` variables.

        >>> Settings.from_env({"HUBMIRROR_BUCKET": "b", "HUBMIRROR_TARGET_REGISTRY": "127.0.0.1:5001"}).batch_size
        50
        """
        env = os.environ if env is None else env

        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise SettingsError(f"environment variable {name} is required")
            return value

        def integer(name: str, default: int, minimum: int) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise SettingsError(f"environment variable {name} must be an integer, not {raw!r}") from None
            if value < minimum:
                raise SettingsError(f"environment variable {name} must be at least {minimum}, not {value}")
            return value

        def platforms(name: str) -> tuple[str, ...] | None:
            raw = [p.strip() for p in env.get(name, "").split(",") if p.strip()]
            unknown = [p for p in raw if p not in KNOWN_PLATFORMS]
            if unknown:
                raise SettingsError(f"environment variable {name} names unknown platforms: {', '.join(unknown)}")
            return tuple(normalise_platform(p) for p in raw) or None

        try:
            pullers = Pullers.parse(
                env.get("HUBMIRROR_PULL_ORGANIZATION_ID", ""),
                env.get("HUBMIRROR_PULL_ORGANIZATIONAL_UNIT_PATHS", ""),
                env.get("HUBMIRROR_PULL_ACCOUNT_IDS", ""),
            )
        except PullersError as exc:
            raise SettingsError(f"who may pull from the mirror (PullOrganizationId, ...): {exc}") from None
        return cls(
            bucket=required("HUBMIRROR_BUCKET"),
            target_registry=required("HUBMIRROR_TARGET_REGISTRY"),
            target_prefix=env.get("HUBMIRROR_TARGET_PREFIX", "mirror").strip().strip("/"),
            batch_size=integer("HUBMIRROR_BATCH_SIZE", 50, 1),
            copy_batch_size=integer("HUBMIRROR_COPY_BATCH_SIZE", 200, 1),
            check_concurrency=integer("HUBMIRROR_CHECK_CONCURRENCY", 8, 1),
            rate_limit_floor=integer("HUBMIRROR_RATE_LIMIT_FLOOR", 10, 0),
            map_concurrency=integer("HUBMIRROR_MAP_CONCURRENCY", 10, 1),
            default_platforms=platforms("HUBMIRROR_DEFAULT_PLATFORMS"),
            upstream_secret=env.get("HUBMIRROR_UPSTREAM_SECRET", "").strip() or None,
            tag_list_limit=integer("HUBMIRROR_TAG_LIST_LIMIT", 100_000, 1),
            item_deadline_seconds=integer("HUBMIRROR_ITEM_DEADLINE_SECONDS", 0, 0) or None,
            event_bus=env.get("HUBMIRROR_EVENT_BUS", "").strip() or None,
            run_on_allowlist_change=env.get("HUBMIRROR_RUN_ON_ALLOWLIST_CHANGE", "").strip().lower() == "true",
            pullers=pullers,
            sigstore_trusted_root_parameter=env.get("HUBMIRROR_SIGSTORE_TRUSTED_ROOT_PARAMETER", "").strip() or None,
            sigstore_tuf_url=env.get("HUBMIRROR_SIGSTORE_TUF_URL", "").strip() or None,
        )
