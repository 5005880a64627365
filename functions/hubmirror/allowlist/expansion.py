"""An allowlist -> the run's work items: tags listed and selected, targets named, ``only`` applied. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hubmirror.allowlist.rules import Allowlist, ImageEntry
from hubmirror.domain.items import InputError, WorkItem, few, target_repository
from hubmirror.domain.selectors import SelectionError


@dataclass(frozen=True)
class EntryFailure:
    """An entry that could not be expanded into items (its tag list, its selector)."""

    entry: int
    source: str
    target_repository: str
    reason: str

    @property
    def target(self) -> str:
        """Stands in for ``repository:tag`` in reports, unique per entry."""
        return f"{self.target_repository}:(select)"


@dataclass(frozen=True)
class Expansion:
    """The items an allowlist expands to, and the entries that could not be expanded."""

    items: list[WorkItem]
    failures: list[EntryFailure]


def expand(
    allowlist: Allowlist,
    *,
    prefix: str,
    default_platforms: tuple[str, ...] | None = None,
    tag_lists: Mapping[int, Sequence[str] | str] | None = None,
) -> Expansion:
    """Every (entry, tag) of the allowlist as a work item, in allowlist order.

    ``tag_lists`` holds, per entry index, the upstream tags of entries with a selector
    (or the reason they could not be listed). Exact and pinned tags come first, then the
    selected ones; a selected tag another entry already writes is skipped and reported.
    """
    tag_lists = tag_lists or {}
    items: list[WorkItem] = []
    failures: list[EntryFailure] = []
    taken: dict[tuple[str, str], int] = {}

    def add(entry: ImageEntry, repository: str, tag: str, pinned: str | None = None) -> None:
        owner = taken.setdefault((repository, tag), entry.index)
        if owner != entry.index:
            failures.append(
                EntryFailure(
                    entry.index,
                    entry.source.name,
                    repository,
                    f"selected tag {tag!r} is already written to {repository} by images[{owner}]; skipped",
                )
            )
            return
        items.append(
            WorkItem(
                source=entry.source.name,
                tag=tag,
                target_repository=repository,
                target_tag=tag,
                platforms=entry.platforms if entry.platforms is not None else default_platforms,
                build_commands=entry.build_commands,
                entry=entry.index,
                pinned=pinned,
                signatures=entry.signatures,
                verify=entry.verify,
                build_network=entry.build_network,
            )
        )

    for entry in allowlist.entries:
        repository = target_repository(prefix, entry.target)
        for tag in entry.tags:
            add(entry, repository, tag)
        for tag, digest in entry.pinned:
            add(entry, repository, tag, digest)
    for entry in allowlist.entries:
        if entry.selector is None or entry.index not in tag_lists:
            continue
        repository = target_repository(prefix, entry.target)
        listed = tag_lists[entry.index]
        if isinstance(listed, str):
            failures.append(
                EntryFailure(entry.index, entry.source.name, repository, f"cannot list upstream tags: {listed}")
            )
            continue
        try:
            chosen = entry.selector.select(listed)
        except SelectionError as exc:
            failures.append(EntryFailure(entry.index, entry.source.name, repository, f"{entry.name}: {exc}"))
            continue
        if not chosen:
            failures.append(
                EntryFailure(
                    entry.index, entry.source.name, repository, f"{entry.name}: the selector matched no tag upstream"
                )
            )
        fixed = set(entry.tags) | {tag for tag, _ in entry.pinned}
        for tag in chosen:
            if tag not in fixed:
                add(entry, repository, tag)
    order = {entry.index: n for n, entry in enumerate(allowlist.entries)}
    items.sort(key=lambda item: order[item.entry])
    return Expansion(items=items, failures=failures)


def _names(entry: ImageEntry, prefix: str) -> set[str]:
    """What an ``only`` selector may call an entry: its image (long or short) or its target."""
    return {entry.source.name, entry.source.familiar, entry.target, target_repository(prefix, entry.target)}


def entry_selected(entry: ImageEntry, only: Sequence[str], prefix: str) -> bool:
    """Whether an ``only`` list names this entry (by image or target, with or without a tag)."""
    if not only:
        return True
    names = _names(entry, prefix)
    return any(selector in names or selector.rpartition(":")[0] in names for selector in only)


def _matches(selector: str, item: WorkItem, entry: ImageEntry, prefix: str) -> bool:
    names = _names(entry, prefix) | {item.target_repository}
    if selector in names:
        return True
    name, sep, tag = selector.rpartition(":")
    return bool(sep) and "/" not in tag and tag == item.tag and name in names


def select(items: Sequence[WorkItem], allowlist: Allowlist, only: Sequence[str], prefix: str = "") -> list[WorkItem]:
    """Items named by ``only`` (image names, target names, or ``name:tag``); all if empty.

    A selector that matches nothing is an error: a typo must not turn into a silent no-op.
    (A selector naming an entry whose tags could not be listed matches that entry.)
    """
    if not only:
        return list(items)
    entries = {e.index: e for e in allowlist.entries}
    chosen: list[WorkItem] = []
    unmatched = []
    for selector in only:
        hits = [i for i in items if _matches(selector, i, entries[i.entry], prefix)]
        named = any(e.selector is not None and entry_selected(e, [selector], prefix) for e in allowlist.entries)
        if not hits and not named:
            unmatched.append(selector)
        chosen.extend(i for i in hits if i not in chosen)
    if unmatched:
        raise InputError(f"'only' names images the allowlist does not hold: {few(unmatched)}")
    order = {item: n for n, item in enumerate(items)}
    return sorted(chosen, key=order.__getitem__)
