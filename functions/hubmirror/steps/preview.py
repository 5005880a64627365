"""What ``hubmirror plan`` shows a reviewer: the allowlist change, and what the next run would do.

The entries of the proposed allowlist are compared with the deployed one (added, removed,
changed, unchanged); every item of the proposed one is checked with the check step's own
:func:`hubmirror.steps.check.check_item`, as a run would, without writing anything: one upstream
``HEAD`` per tag (tag lists for selectors), one look at the target, and no manifest ``GET`` but
what a ``verify:`` gate reads. Pure: the registries come in behind the check's Protocols.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from hubmirror.allowlist.expansion import expand
from hubmirror.allowlist.rules import Allowlist, ImageEntry
from hubmirror.domain.decisions import Action, OutcomeName
from hubmirror.domain.items import WorkItem
from hubmirror.domain.ratelimit import PullBudget, RateLimit
from hubmirror.domain.registry.errors import NotFoundError
from hubmirror.domain.registry.model import Manifest, ManifestHead
from hubmirror.steps.check import ItemCheck, Registry, check_item, expected_pulls
from hubmirror.steps.plan import TagLister, list_selected_tags
from hubmirror.steps.verify import KeyResolver, SignatureRegistry, inline_keys

#: How a build whose RUN lines get the network is marked, for the reviewer of the change.
NETWORK_GRANTED = "its RUN lines get the network (build_network: true)"
#: What the next run would do to an item.
COPY, BUILD, UNCHANGED, DEFERRED, FAILS = "copy", "build", "unchanged", "deferred", "fails"
ACTIONS = (COPY, BUILD, UNCHANGED, DEFERRED, FAILS)


@dataclass(frozen=True)
class EntryChange:
    """One entry of either allowlist, and how the proposed one changes it."""

    name: str
    change: str  # added, removed, changed, unchanged
    detail: str = ""


@dataclass(frozen=True)
class ItemPreview:
    """One item of the proposed allowlist, and what the next run would do to it."""

    source: str
    target: str
    action: str
    reason: str
    pulls: int = 0


@dataclass
class Preview:
    entries: list[EntryChange] = field(default_factory=list)
    items: list[ItemPreview] = field(default_factory=list)
    #: entry name -> the tags its selector picks today
    selected: dict[str, list[str]] = field(default_factory=dict)
    #: upstream registry -> the lowest ``ratelimit-remaining`` seen (this machine's budget)
    budgets: dict[str, RateLimit] = field(default_factory=dict)
    #: what the preview could not see, and what the reviewer should read (allowlist notes), in words
    notes: list[str] = field(default_factory=list)
    #: whether the target was read (False: copies are shown for tags the target may already hold)
    target_read: bool = True

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(ACTIONS, 0)
        for item in self.items:
            counts[item.action] += 1
        return counts

    @property
    def pulls(self) -> int:
        return sum(i.pulls for i in self.items)

    @property
    def failed(self) -> bool:
        return any(i.action == FAILS for i in self.items)

    def to_dict(self) -> dict[str, Any]:
        return {
            "entries": [asdict(e) for e in self.entries],
            "items": [asdict(i) for i in self.items],
            "counts": self.counts,
            "pulls": self.pulls,
            "selected": self.selected,
            "budgets": {r: {"limit": b.limit, "remaining": b.remaining} for r, b in self.budgets.items()},
            "target_read": self.target_read,
            "notes": self.notes,
        }


class UnreadTarget:
    """A target the preview may not read: it holds nothing, as far as the preview can tell."""

    def head_manifest(self, repository: str, reference: str) -> ManifestHead:
        raise NotFoundError(f"{repository}:{reference} was not read")

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        raise NotFoundError(f"{repository}:{reference} was not read")


def _label(entry: ImageEntry) -> str:
    return f"{entry.source.familiar} -> {entry.target}"


def _comparable(entry: ImageEntry) -> dict[str, Any]:
    data = asdict(entry)
    data.pop("index")
    data.pop("line")
    return data


def entry_changes(proposed: Allowlist, deployed: Allowlist | None) -> list[EntryChange]:
    """Each entry added, removed, changed or unchanged, matched by source and target."""
    before: dict[str, list[ImageEntry]] = {}
    for entry in deployed.entries if deployed is not None else ():
        before.setdefault(_label(entry), []).append(entry)
    changes: list[EntryChange] = []
    for entry in proposed.entries:
        label = _label(entry)
        old = before.get(label, [])
        if not old:
            changes.append(EntryChange(label, "added"))
            continue
        previous = old.pop(0)
        new, was = _comparable(entry), _comparable(previous)
        differ = [k for k in new if new[k] != was[k]]
        changes.append(EntryChange(label, "changed", ", ".join(differ)) if differ else EntryChange(label, "unchanged"))
    for label, left in before.items():
        changes.extend(EntryChange(label, "removed", "stays in the target: a sync deletes nothing") for _ in left)
    return changes


def preview(
    proposed: Allowlist,
    *,
    deployed: Allowlist | None,
    prefix: str,
    list_tags: TagLister,
    upstream: Callable[[str], SignatureRegistry],
    target: Registry | None,
    floor: int,
    default_platforms: tuple[str, ...] | None = None,
    public_keys: KeyResolver = inline_keys,
    concurrency: int = 8,
) -> Preview:
    """Compare ``proposed`` with ``deployed`` and check every item of ``proposed`` as a run would.

    ``target`` None: the target could not be read, and items it might hold show as copies.
    """
    result = Preview(entries=entry_changes(proposed, deployed), target_read=target is not None)
    tag_lists = list_selected_tags(proposed.entries, list_tags, concurrency=concurrency)
    expansion = expand(proposed, prefix=prefix, default_platforms=default_platforms, tag_lists=tag_lists)
    entries = {e.index: e for e in proposed.entries}
    for item in expansion.items:
        entry = entries[item.entry]
        if entry.selector is not None:
            result.selected.setdefault(_label(entry), []).append(item.tag)
    budget = PullBudget(floor)

    def one(item: WorkItem) -> ItemCheck:
        return check_item(
            item,
            upstream=upstream,
            target=target if target is not None else UnreadTarget(),
            budget=budget,
            force=False,
            dry_run=False,
            public_keys=public_keys,
        )

    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(expansion.items) or 1))) as pool:
        checks = list(pool.map(one, expansion.items))
    for check in checks:
        item = check.item
        head = check.upstream
        if head is not None and head.ratelimit is not None:
            seen = result.budgets.get(item.upstream.registry)
            if seen is None or head.ratelimit.remaining < seen.remaining:
                result.budgets[item.upstream.registry] = head.ratelimit
        outcome = check.outcome
        if outcome is None and check.decision is not None and head is not None:
            action = BUILD if check.decision.action == Action.BUILD else COPY
            reason = check.decision.reason
            if action == BUILD and item.build_network:
                reason += f"; {NETWORK_GRANTED}"
            result.items.append(ItemPreview(item.key, item.target, action, reason, expected_pulls(item, head)))
            continue
        assert outcome is not None  # check_item gives an outcome or a decision to act on
        action = {str(OutcomeName.UNCHANGED): UNCHANGED, str(OutcomeName.DEFERRED): DEFERRED}.get(
            outcome.outcome, FAILS
        )
        result.items.append(ItemPreview(item.key, item.target, action, outcome.reason))
    for failure in expansion.failures:
        result.items.append(ItemPreview(f"{failure.source} (select)", failure.target, FAILS, failure.reason))
    return result


def summary_line(preview: Preview) -> str:
    """``2 copy, 1 build, 5 unchanged ...; 4 upstream pulls``: what a reviewer reads first."""
    counts = ", ".join(f"{n} {name}" for name, n in preview.counts.items() if n) or "no items"
    return f"{counts}; {preview.pulls} upstream pull(s)"


def changed_entries(preview: Preview) -> Sequence[EntryChange]:
    return [e for e in preview.entries if e.change != "unchanged"]


def budget_lines(budgets: Mapping[str, RateLimit]) -> list[str]:
    return [f"{registry}: {b.remaining} of {b.limit} pulls left" for registry, b in sorted(budgets.items())]
