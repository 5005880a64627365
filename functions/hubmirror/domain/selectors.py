"""Tag selectors: which of an upstream repository's tags an allowlist entry mirrors.

A selector narrows the upstream tag list in a fixed order:

1. ``include`` (globs) / ``include_regex``: keep the tags matching any of them (all tags
   when neither is given);
2. ``exclude`` (globs) / ``exclude_regex``: drop the tags matching any of them;
3. ``variant``: keep versions of that flavour (``alpine``); without it, versions with a
   variant suffix are dropped by ``semver`` and ``latest`` (``1.27-alpine`` is not a
   newer ``1.27``);
4. ``semver``: keep versions in the range (pre-releases only with ``prereleases: true``);
5. ``latest``: keep the N highest versions.

More tags than the entry's cap (``max_tags``) is an error for that entry, never a silent
truncation. Pure: no I/O, no environment.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

from hubmirror.domain.versions import Version, VersionRange

DEFAULT_MAX_TAGS = 100
MAX_TAGS_LIMIT = 1000


class SelectionError(ValueError):
    """A selector matched nothing usable, or more tags than its cap."""


@dataclass(frozen=True)
class TagSelector:
    """What an entry's ``select:`` asks for.

    Examples
    --------
    >>> selector = TagSelector(semver=">=1.26", latest=2)
    >>> selector.select(["1.25.0", "1.26.1", "1.27.0", "1.27.1-alpine", "1.28.0-rc.1", "latest"])
    ['1.26.1', '1.27.0']
    """

    include: tuple[str, ...] = ()
    include_regex: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    exclude_regex: tuple[str, ...] = ()
    variant: str | None = None
    semver: str | None = None
    latest: int | None = None
    prereleases: bool = False
    max_tags: int = DEFAULT_MAX_TAGS

    @property
    def uses_versions(self) -> bool:
        return self.semver is not None or self.latest is not None or self.variant is not None

    def _version_ok(self, version: Version) -> bool:
        if version.is_prerelease and not self.prereleases:
            return False
        return version.variant == (self.variant or "")

    def select(self, tags: Iterable[str]) -> list[str]:
        """The selected tags: by version (highest last) when versions are involved, else sorted."""
        chosen = sorted(set(tags))
        if self.include or self.include_regex:
            chosen = [t for t in chosen if _matches(t, self.include, self.include_regex)]
        if self.exclude or self.exclude_regex:
            chosen = [t for t in chosen if not _matches(t, self.exclude, self.exclude_regex)]
        if self.uses_versions:
            versions = [(v, t) for t in chosen if (v := Version.parse(t)) is not None and self._version_ok(v)]
            if self.semver is not None:
                wanted = VersionRange.parse(self.semver)
                versions = [(v, t) for v, t in versions if wanted.contains(v)]
            versions.sort(key=lambda pair: (pair[0], pair[0].precision, pair[1]))
            if self.latest is not None:
                versions = versions[-self.latest :] if self.latest else []
            chosen = [t for _, t in versions]
        if len(chosen) > self.max_tags:
            raise SelectionError(
                f"the selector matched {len(chosen)} tags; the cap is {self.max_tags} "
                "(narrow the selector, or raise max_tags up to "
                f"{MAX_TAGS_LIMIT})"
            )
        return chosen


def _matches(tag: str, globs: tuple[str, ...], regexes: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(tag, g) for g in globs) or any(re.fullmatch(r, tag) for r in regexes)
