"""Realistic generated workloads for the benchmark and the scale test.

Repositories with several tags each; the tags of a repository share a family layer and
every image shares the busybox base; a third of the repositories are two-platform indexes;
a few items add build lines. Pushing is parallel, one client per thread.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from devstack.content.images import Blob, PlatformImage, Pusher, platform_image

TWO_PLATFORMS = ["linux/amd64", "linux/arm64"]
ONE_PLATFORM = ["linux/amd64"]


@dataclass(frozen=True)
class Item:
    repository: str
    tag: str
    platforms: tuple[str, ...]
    build: tuple[str, ...] = ()


@dataclass
class Workload:
    items: list[Item]
    digests: dict[tuple[str, str], str] = field(default_factory=dict)
    blobs: dict[str, int] = field(default_factory=dict)

    @property
    def copies(self) -> list[Item]:
        return [i for i in self.items if not i.build]

    @property
    def builds(self) -> list[Item]:
        return [i for i in self.items if i.build]

    def _copies_by_repository(self) -> dict[str, list[str]]:
        return tags_by_repository((item.repository, item.tag) for item in self.copies)

    def allowlist(self, hub: str) -> str:
        """The hubmirror allowlist: one entry per repository (copies), one per built item."""
        lines = ["images:", *allowlist_entries(hub, self._copies_by_repository())]
        for item in self.builds:
            lines += [
                f"  - source: {hub}/{item.repository}",
                f"    tags: ['{item.tag}']",
                f"    target: built/{item.repository.rsplit('/', 1)[-1]}",
                "    build_commands:",
                *(f"      - {line}" for line in item.build),
            ]
        return "\n".join(lines) + "\n"

    def skopeo_sync(self, hub: str) -> str:
        """The same copies as a ``skopeo sync --src yaml`` file (skopeo cannot build)."""
        return skopeo_sync_file(hub, self._copies_by_repository())


def skopeo_sync_file(hub: str, tags: dict[str, list[str]]) -> str:
    """A ``skopeo sync --src yaml`` file of the hub's repositories and their tags."""
    lines = [f"{hub}:", "  tls-verify: false", "  images:"]
    lines += [f"    {repository}: [{', '.join(repr(t) for t in names)}]" for repository, names in tags.items()]
    return "\n".join(lines) + "\n"


def tags_by_repository(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """``(repository, tag)`` pairs grouped by repository, in first-seen order."""
    grouped: dict[str, list[str]] = {}
    for repository, tag in pairs:
        grouped.setdefault(repository, []).append(tag)
    return grouped


def allowlist_entries(hub: str, tags: dict[str, list[str]]) -> list[str]:
    """Allowlist lines: one entry per repository of the hub, with its tags."""
    lines: list[str] = []
    for repository, names in tags.items():
        lines += [f"  - source: {hub}/{repository}", f"    tags: [{', '.join(repr(t) for t in names)}]"]
    return lines


def plan(count: int, *, tags_per_repository: int = 4, two_platform_every: int = 3, build_every: int = 25) -> list[Item]:
    """``count`` items: repositories of ``tags_per_repository`` tags, a mix of platforms and builds
    (one in ``build_every``; none with 0, a copy-only workload)."""
    items: list[Item] = []
    repositories = math.ceil(count / tags_per_repository)
    for r in range(repositories):
        platforms = tuple(TWO_PLATFORMS if r % two_platform_every == 0 else ONE_PLATFORM)
        for t in range(tags_per_repository):
            if len(items) == count:
                break
            n = len(items)
            build: tuple[str, ...] = ()
            if build_every and n % build_every == build_every - 1:
                build = build_lines(platforms)
            items.append(Item(f"bench/app{r:04d}", f"1.{t}.0", platforms, build))
    return items


def build_lines(platforms: tuple[str, ...]) -> tuple[str, ...]:
    """The extra lines of a built item: no ``RUN`` on two platforms (no emulation needed)."""
    if len(platforms) > 1:
        return ("ENV HUBMIRROR_BENCH=1", "LABEL org.example.mirrored=true")
    return ("RUN mkdir -p /opt/bench", 'VOLUME ["/opt/bench"]')


def with_builds(items: list[Item], *, build_every: int = 25) -> list[Item]:
    """The items of a copy-only plan (``plan(n, build_every=0)``) that ``plan(n)`` would build,
    with their build lines: the same upstream images built into their own targets, so builds
    can be measured apart from the copies.

    >>> [(i.repository, i.tag) for i in with_builds(plan(60, build_every=0))]
    [('bench/app0006', '1.0.0'), ('bench/app0012', '1.1.0')]
    >>> [i for i in plan(60) if i.build] == with_builds(plan(60, build_every=0))
    True
    """
    return [
        replace(item, build=build_lines(item.platforms))
        for n, item in enumerate(items)
        if n % build_every == build_every - 1
    ]


def push(items: list[Item], pusher_factory: Callable[[], Pusher], *, workers: int = 8) -> Workload:
    """Push every item's image to the hub; returns the workload with digests and unique blobs."""
    workload = Workload(items=items)
    lock = threading.Lock()
    local = threading.local()

    def one(item: Item) -> None:
        if not hasattr(local, "pusher"):
            local.pusher = pusher_factory()
        images: list[PlatformImage] = [
            platform_image(p, f"{item.repository}:{item.tag}", family=item.repository) for p in item.platforms
        ]
        if len(images) == 1:
            digest = local.pusher.image(item.repository, item.tag, images[0])
        else:
            digest = local.pusher.multi(item.repository, item.tag, images)
        blobs: list[Blob] = [b for image in images for b in (*image.layers, image.config)]
        with lock:
            workload.digests[(item.repository, item.tag)] = digest
            for blob in blobs:
                workload.blobs[blob.digest] = len(blob.data)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, items))
    return workload


def many_tags(pusher: Pusher, repositories: int, tags: int, *, workers: int = 8) -> list[tuple[str, str]]:
    """A few images under many tags (the scale test): ``repositories`` x ``tags`` tags."""
    images = {r: platform_image("linux/amd64", f"scale{r}", family=f"scale{r}") for r in range(repositories)}
    for r, image in images.items():
        pusher.image(f"scale/app{r:02d}", "seed", image)
    wanted = [(f"scale/app{r:02d}", f"{t}.0.0") for r in range(repositories) for t in range(tags)]
    local = threading.local()

    def one(pair: tuple[str, str]) -> None:
        if not hasattr(local, "pusher"):
            local.pusher = Pusher(pusher.base.removeprefix("http://"), *pusher.auth)
        repository, tag = pair
        image = images[int(repository[-2:])]
        local.pusher.manifest(repository, tag, image.manifest)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, wanted))
    return wanted
