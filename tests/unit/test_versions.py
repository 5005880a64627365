"""Versions as tags spell them, ranges over them, and tag selectors."""

from __future__ import annotations

import pytest

from hubmirror.domain.selectors import SelectionError, TagSelector
from hubmirror.domain.versions import RangeError, Version, VersionRange

REALISTIC = [
    "1.25.0", "1.25.4", "1.26", "1.26.0", "1.26.2", "1.26.2-alpine", "1.27", "1.27.0", "1.27.1",
    "1.27.2", "1.27.2-alpine", "1.27.2-perl", "1.28.0-rc.1", "1.28.0-beta2", "mainline", "stable",
    "latest", "alpine", "v2.0.0",
]  # fmt: skip


@pytest.mark.parametrize(
    ("tag", "numbers", "release", "variant"),
    [
        ("1.27", (1, 27, 0), True, ""),
        ("v1.8.2", (1, 8, 2), True, ""),
        ("1.27.3-alpine", (1, 27, 3), True, "alpine"),
        ("7.4.1-bookworm", (7, 4, 1), True, "bookworm"),
        ("2.0.0-rc.1", (2, 0, 0), False, ""),
        ("3.13.0b4", None, None, None),
        ("8", (8, 0, 0), True, ""),
    ],
)
def test_tags_read_as_versions(
    tag: str, numbers: tuple[int, int, int] | None, release: bool | None, variant: str | None
) -> None:
    version = Version.parse(tag)
    if numbers is None:
        assert version is None
        return
    assert version is not None
    assert (version.numbers, version.release, version.variant) == (numbers, release, variant)


def test_releases_sort_after_their_prereleases() -> None:
    assert sorted(["2.0.0", "2.0.0-rc.1", "1.9.9", "2.0.0-alpha"], key=Version.parse) == [  # type: ignore[arg-type, return-value]
        "1.9.9", "2.0.0-alpha", "2.0.0-rc.1", "2.0.0",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [
        (">=1.26 <1.28", ["1.26.0", "1.27.9"], ["1.25.9", "1.28.0"]),
        ("^1.26", ["1.26.0", "1.99.0"], ["2.0.0", "1.25.0"]),
        ("^0.27", ["0.27.5"], ["0.28.0"]),
        ("~1.26.1", ["1.26.1", "1.26.9"], ["1.27.0", "1.26.0"]),
        ("=1.27", ["1.27.0", "1.27.4"], ["1.28.0"]),
        ("1.27.2", ["1.27.2"], ["1.27.3"]),
        (">= 7.2, < 8", ["7.2.0", "7.4.1"], ["8.0.0", "7.1.9"]),
    ],
)
def test_ranges(text: str, inside: list[str], outside: list[str]) -> None:
    wanted = VersionRange.parse(text)
    assert all(wanted.contains(Version.parse(t)) for t in inside)
    assert not any(wanted.contains(Version.parse(t)) for t in outside)


@pytest.mark.parametrize("text", ["", ">=", "1.x", ">>1", "1.2.3.4", "latest"])
def test_bad_ranges_are_refused(text: str) -> None:
    with pytest.raises(RangeError):
        VersionRange.parse(text)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (TagSelector(include=("1.27*",)), ["1.27", "1.27.0", "1.27.1", "1.27.2", "1.27.2-alpine", "1.27.2-perl"]),
        (TagSelector(include=("1.27.*",), exclude=("*-*",)), ["1.27.0", "1.27.1", "1.27.2"]),
        (TagSelector(include_regex=(r"1\.2[67]\.\d+",)), ["1.26.0", "1.26.2", "1.27.0", "1.27.1", "1.27.2"]),
        (TagSelector(semver=">=1.26 <1.28"), ["1.26", "1.26.0", "1.26.2", "1.27", "1.27.0", "1.27.1", "1.27.2"]),
        (TagSelector(latest=2), ["1.27.2", "v2.0.0"]),
        (TagSelector(latest=2, exclude=("v*",)), ["1.27.1", "1.27.2"]),
        (TagSelector(variant="alpine"), ["1.26.2-alpine", "1.27.2-alpine"]),
        (TagSelector(variant="alpine", latest=1), ["1.27.2-alpine"]),
        (TagSelector(semver=">=1.28", prereleases=True), ["1.28.0-beta2", "1.28.0-rc.1", "v2.0.0"]),
        (TagSelector(include=("mainline", "stable")), ["mainline", "stable"]),
    ],
    ids=[
        "glob",
        "glob-exclude",
        "regex",
        "semver",
        "latest",
        "latest-exclude",
        "variant",
        "variant-latest",
        "prereleases",
        "names",
    ],
)
def test_selectors_on_a_realistic_tag_set(selector: TagSelector, expected: list[str]) -> None:
    assert sorted(selector.select(REALISTIC)) == sorted(expected)


def test_more_tags_than_the_cap_is_an_error_not_a_truncation() -> None:
    with pytest.raises(SelectionError, match="matched 7 tags; the cap is 3"):
        TagSelector(semver=">=1.26 <1.28", max_tags=3).select(REALISTIC)
