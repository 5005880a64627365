"""Authorising requests as the registry asks: its ``WWW-Authenticate`` challenge, and tokens.

A bearer challenge (Docker Hub, ghcr.io, quay.io, public.ecr.aws) sends the client to the
realm for a token scoped to the repository, with basic auth when credentials are known; a
basic challenge (ECR, a plain Distribution registry) gets the credentials directly; ECR's
own token is sent before any challenge (:attr:`Credentials.preemptive`). The
realm, service and scope come from the challenge, never assumed. Tokens are cached per
scope until shortly before they expire, and fetched once however many threads need one;
a token service that cannot be reached, or answers 429 or 5xx, is asked again as the
registry's own requests are (the client's :class:`RetryPolicy`).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlencode

import urllib3

from hubmirror.adapters.registry.retry import RETRIED, RetryPolicy, retry_after
from hubmirror.adapters.registry.stream import describe
from hubmirror.domain.registry.errors import AuthenticationError, RateLimitedError, RegistryUnavailableError
from hubmirror.domain.registry.model import Credentials, Side

USER_AGENT = "hubmirror/1"
_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """Split a ``WWW-Authenticate`` header into its scheme and parameters.

    >>> parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io"')
    ('bearer', {'realm': 'https://auth.docker.io/token', 'service': 'registry.docker.io'})
    """
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return scheme.lower(), params


def scope_for(repository: str, *, push: bool = False, also_pull: str | None = None) -> str:
    """The token scope a request needs.

    >>> scope_for("mirror/a", push=True, also_pull="mirror/b")
    'repository:mirror/a:pull,push repository:mirror/b:pull'
    """
    scope = f"repository:{repository}:{'pull,push' if push else 'pull'}"
    return f"{scope} repository:{also_pull}:pull" if also_pull else scope


class TokenAuth:
    """The ``Authorization`` header for one registry host, learnt from its challenge."""

    def __init__(
        self,
        host: str,
        side: Side,
        credentials: Credentials | None,
        pool: urllib3.PoolManager,
        timeout: float,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.host = host
        self.side = side
        self.credentials = credentials
        self.pool = pool
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self._challenge: tuple[str, dict[str, str]] | None = None
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._fetching: dict[str, threading.Lock] = {}

    def learn(self, header: str, where: str) -> None:
        """Remember what a 401's ``WWW-Authenticate`` asks for."""
        scheme, params = parse_challenge(header)
        if scheme not in ("bearer", "basic"):
            raise AuthenticationError(
                f"{where}: the registry asks for unsupported authentication {header!r}", status=401
            )
        if scheme == "basic" and self.credentials is None:
            raise AuthenticationError(f"{where}: the registry requires credentials and none are configured", status=401)
        if scheme == "bearer" and "realm" not in params:
            raise AuthenticationError(f"{where}: bearer challenge without a realm: {header!r}", status=401)
        with self._lock:
            self._challenge = (scheme, params)

    def forget(self, scope: str) -> None:
        """Drop the token of ``scope`` (the registry refused it)."""
        with self._lock:
            self._tokens.pop(scope, None)

    def header(self, scope: str) -> str | None:
        """The ``Authorization`` value for ``scope``; None before the host has challenged, unless
        the credentials are sent unasked (ECR's token: a 401 per connection saved)."""
        with self._lock:
            challenge = self._challenge
            cached = self._tokens.get(scope)
        if challenge is None:
            return self.credentials.basic() if self.credentials is not None and self.credentials.preemptive else None
        scheme, params = challenge
        if scheme == "basic":
            return self.credentials.basic() if self.credentials else None
        if cached and cached[1] > time.monotonic():
            return f"Bearer {cached[0]}"
        with self._lock:
            fetching = self._fetching.setdefault(scope, threading.Lock())
        with fetching:  # one token request per scope, however many threads need it at once
            with self._lock:
                cached = self._tokens.get(scope)
            if cached and cached[1] > time.monotonic():
                return f"Bearer {cached[0]}"
            token, ttl = self._fetch(params, scope)
            with self._lock:
                self._tokens[scope] = (token, time.monotonic() + max(ttl - 30, 10))
        return f"Bearer {token}"

    def _fetch(self, params: Mapping[str, str], scope: str) -> tuple[str, float]:
        query: dict[str, str | list[str]] = {"scope": scope.split(" ")}
        if "service" in params:
            query["service"] = params["service"]
        headers = {"User-Agent": USER_AGENT}
        if self.credentials:
            headers["Authorization"] = self.credentials.basic()
        url = params["realm"] + ("&" if "?" in params["realm"] else "?") + urlencode(query, doseq=True)
        who = f"{self.side} {self.host}"
        attempt = 0
        while True:
            try:
                response = self.pool.request("GET", url, headers=headers, timeout=self.timeout)
            except urllib3.exceptions.HTTPError as exc:
                if not self.retry.again(attempt, None, self.sleep):
                    raise RegistryUnavailableError(
                        f"{who}: cannot reach the token service {params['realm']}: {describe(exc)}"
                    ) from exc
                attempt += 1
                continue
            if response.status not in RETRIED or not self.retry.again(
                attempt, retry_after(response.headers), self.sleep
            ):
                break
            attempt += 1
        if response.status in (401, 403):
            raise AuthenticationError(
                f"{who}: the token service refused the configured credentials ({response.status})",
                status=response.status,
            )
        if response.status == 429:
            raise RateLimitedError(f"{who}: the token service answered 429", retry_after=retry_after(response.headers))
        if response.status != 200:
            raise RegistryUnavailableError(
                f"{who}: the token service answered {response.status}", status=response.status
            )
        data = json.loads(response.data)
        token = data.get("token") or data.get("access_token")
        if not token:
            raise AuthenticationError(f"{who}: the token service sent no token")
        return str(token), float(data.get("expires_in") or 60)
