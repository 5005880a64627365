"""Sigstore's trust root, refreshed from Sigstore's TUF repository, or the one hubmirror ships.

Sigstore publishes its trust root (``trusted_root.json``: the Fulcio certificate authorities,
the Rekor and CT log keys) as a target of a TUF repository, https://tuf-repo-cdn.sigstore.dev,
so keys can rotate without a release of every verifier. :class:`TufTrustRoot` does what
sigstore-python and cosign do: python-tuf's client starts from the TUF root metadata hubmirror
ships (``domain/sigstore_tuf_root.json``, Sigstore's root as sigstore-python embeds it), follows
the signed root rotations, reads the timestamp, snapshot and targets metadata (each signed by
its threshold of keys, unexpired, not rolled back), and downloads ``trusted_root.json`` only when
its hashes changed (kept under ``/tmp`` across warm invocations).

It refreshes at the first keyless need of a process and then at most once per ``max_age``: never
per image. When the refresh fails (the repository unreachable, metadata that does not verify or
has expired, a target whose hash does not match), the gate goes on with the trust root shipped
with hubmirror and :attr:`~hubmirror.domain.sigstore.TrustRoot.notice` says so, for the run's
report; the next invocation tries again.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote, urlsplit

from hubmirror import __version__
from hubmirror.domain.sigstore import TUF_ROOT, TrustRoot, TrustRootError

logger = logging.getLogger(__name__)

#: Sigstore's public TUF repository, the one the shipped TUF root belongs to.
SIGSTORE_TUF_URL = "https://tuf-repo-cdn.sigstore.dev"
#: The target that holds the trust root, as Sigstore's clients read it.
TRUSTED_ROOT_TARGET = "trusted_root.json"
#: Seconds a refreshed (or failed) trust root is used before the repository is asked again.
MAX_AGE_SECONDS = 3600
#: Seconds to wait for a connection or a read: a repository that cannot be reached costs little.
TIMEOUT_SECONDS = 5


class TufTrustRoot:
    """A ``Callable[[], TrustRoot]`` for the gate: the trust root from the TUF repository at
    ``url``, refreshed at most once per ``max_age`` seconds, else the shipped one with a notice."""

    def __init__(
        self,
        url: str = SIGSTORE_TUF_URL,
        *,
        cache_dir: Path | None = None,
        bootstrap: bytes | None = None,
        max_age: float = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url.rstrip("/")
        self._dir = (cache_dir or Path(tempfile.gettempdir()) / "hubmirror-tuf") / quote(self.url, safe="")
        self._bootstrap = bootstrap if bootstrap is not None else TUF_ROOT.read_bytes()
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._root: TrustRoot | None = None
        self._at = 0.0

    def __call__(self) -> TrustRoot:
        with self._lock:  # the check's threads share one refresh
            if self._root is None or self._clock() - self._at >= self._max_age:
                self._root = self._refreshed()
                self._at = self._clock()
            return self._root

    def _refreshed(self) -> TrustRoot:
        try:
            return TrustRoot.from_json(self._download())
        except TrustRootError as exc:
            cause = str(exc)
        except Exception as exc:  # python-tuf's and urllib3's errors, said in words by _cause
            cause = _cause(exc)
        host = urlsplit(self.url).netloc or self.url
        logger.warning("Sigstore trust root not refreshed", extra={"url": self.url, "error": cause})
        return replace(
            TrustRoot.shipped(),
            notice=(
                f"upstream {host}: Sigstore's trust root could not be refreshed from {self.url} ({cause}); "
                f"keyless signatures were checked against the trust root shipped with hubmirror {__version__}. "
                "The next run tries again"
            ),
        )

    def _download(self) -> bytes:
        # imported here: only a keyless gate needs the TUF client, and a cold start without one pays nothing
        from tuf.ngclient.config import UpdaterConfig
        from tuf.ngclient.updater import Updater
        from tuf.ngclient.urllib3_fetcher import Urllib3Fetcher

        metadata, targets = self._dir / "metadata", self._dir / "targets"
        metadata.mkdir(parents=True, exist_ok=True)
        targets.mkdir(parents=True, exist_ok=True)
        agent = f"hubmirror/{__version__}"
        updater = Updater(
            metadata_dir=str(metadata),
            metadata_base_url=self.url,
            target_dir=str(targets),
            target_base_url=f"{self.url}/targets/",
            fetcher=Urllib3Fetcher(socket_timeout=TIMEOUT_SECONDS, app_user_agent=agent),
            config=UpdaterConfig(app_user_agent=agent),
            bootstrap=self._bootstrap,
        )
        updater.refresh()
        info = updater.get_targetinfo(TRUSTED_ROOT_TARGET)
        if info is None:
            raise TrustRootError(f"the repository's targets name no {TRUSTED_ROOT_TARGET}")
        path = updater.find_cached_target(info) or updater.download_target(info)
        return Path(path).read_bytes()


#: python-tuf's refusals, in words (its exception names stay, for a search).
_REFUSALS = {
    "ExpiredMetadataError": "its metadata has expired",
    "UnsignedMetadataError": "its metadata is not signed by the keys the client trusts",
    "LengthOrHashMismatchError": "a file does not match the length or hash its metadata signs",
    "BadVersionNumberError": "its metadata went back to an older version",
    "EqualVersionNumberError": "its metadata repeats a version with other content",
    "DownloadLengthMismatchError": "a file is longer than its metadata allows",
}


def _cause(exc: BaseException) -> str:
    """What went wrong, in words: the network's own error where there is one (refused, no such
    host, timed out), else python-tuf's refusal.

    >>> _cause(ConnectionRefusedError(111, "Connection refused"))
    'cannot connect: Connection refused'
    >>> _cause(type("ExpiredMetadataError", (Exception,), {})("timestamp.json is expired"))
    'its metadata has expired (ExpiredMetadataError: timestamp.json is expired)'
    """
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__ or link.__context__
    for link in reversed(chain):  # the deepest first: what the network said
        if isinstance(link, TimeoutError) or "Timeout" in type(link).__name__:
            return f"no answer within {TIMEOUT_SECONDS} s"
        if isinstance(link, OSError) and link.strerror:
            return f"cannot connect: {link.strerror}"
    name = type(exc).__name__
    if name == "DownloadHTTPError":
        return f"it answered HTTP {getattr(exc, 'status_code', '?')}"
    said = _REFUSALS.get(name)
    return f"{said} ({name}: {exc})" if said else f"{name}: {exc}" if str(exc) else name
