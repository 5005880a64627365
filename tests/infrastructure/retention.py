"""What the artifacts bucket's lifecycle must do for each kind of key hubmirror writes.

The bucket is versioned: every overwrite (a claim's heartbeat, each 10 s while its blob is
copied) and every delete (a released run lock) keeps a noncurrent version until a lifecycle
rule expires it. Each kind of key below says what its rules must do; :func:`problems` judges
one key against rules as S3's ``GetBucketLifecycleConfiguration`` answers them. The table is
written from what each key is for (``domain/keys.py``), not from the template.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The template's defaults, which the tests deploy with.
RUN_RETENTION_DAYS = 30
ALLOWLIST_HISTORY_DAYS = 365


@dataclass(frozen=True)
class Retention:
    prefix: str
    what: str
    #: None: the current version must never expire; else the (shortest, longest) days allowed
    current: tuple[int, int] | None
    #: replaced versions must go within this many days (``exactly``: the rule must say this number)
    noncurrent: int
    exactly: bool = False
    #: delete markers left once the versions behind them expired must be removed
    delete_markers: bool = False
    #: replaced versions kept whatever their age (``NewerNoncurrentVersions``), at least
    keep_newest: int = 0


#: Most specific prefix first.
RETENTIONS = (
    Retention("runs/", "a run's documents", (RUN_RETENTION_DAYS, RUN_RETENTION_DAYS), 1),
    # a version's history is what `hubmirror restore` can bring back
    Retention("allowlist/", "the allowlist and its history", None, ALLOWLIST_HISTORY_DAYS, exactly=True, keep_newest=1),
    # needed while EventBridge may deliver the version's event again (up to 24 hours)
    Retention("locks/allowlist/", "which run an allowlist version started", (2, 30), 1),
    Retention("locks/", "the run lock", None, 1, delete_markers=True),
    Retention("blobs/", "the blob index and its claims", None, 1, delete_markers=True),
    Retention("contexts/", "rendered build contexts", (30, 3650), 1),
    # a refusal is remembered a while, then the image is tried once more
    Retention("refusals/", "refusals no run can change", (7, 90), 1),
    # cleared by the job once the image's signatures and referrers arrive
    Retention("extras/", "images whose signatures or referrers did not all arrive", (7, 90), 1, delete_markers=True),
    Retention("runner/", "the job's script bundle", None, 7),
)


def _prefix(rule: Mapping[str, Any]) -> str:
    return str(rule.get("Filter", {}).get("Prefix", rule.get("Prefix", "")))


def problems(rules: Sequence[Mapping[str, Any]], key: str) -> list[str]:
    """What the rules covering ``key`` fail to do for its kind of key (empty: nothing)."""
    retention = next((r for r in RETENTIONS if key.startswith(r.prefix)), None)
    if retention is None:
        return [f"{key}: no retention is meant for this key (add its kind to RETENTIONS)"]
    covering = [r for r in rules if r.get("Status") == "Enabled" and key.startswith(_prefix(r))]
    found: list[str] = []
    current = [int(r["Expiration"]["Days"]) for r in covering if "Days" in r.get("Expiration", {})]
    if retention.current is None and current:
        found.append(f"{key} ({retention.what}): its current version expires after {min(current)} days")
    if retention.current is not None:
        low, high = retention.current
        if not current or not low <= min(current) <= high:
            after = f"after {min(current)} days" if current else "never"
            found.append(f"{key} ({retention.what}): its current version expires {after}, not after {low}-{high} days")
    noncurrent = [r["NoncurrentVersionExpiration"] for r in covering if "NoncurrentVersionExpiration" in r]
    days = min((int(n["NoncurrentDays"]) for n in noncurrent), default=None)
    if days is None or days > retention.noncurrent or (retention.exactly and days != retention.noncurrent):
        after = "never" if days is None else f"after {days} days"
        found.append(f"{key} ({retention.what}): replaced versions expire {after}, not after {retention.noncurrent}")
    newest = max((int(n.get("NewerNoncurrentVersions", 0)) for n in noncurrent), default=0)
    if newest < retention.keep_newest:
        found.append(f"{key} ({retention.what}): keeps {newest} newest replaced versions whatever their age")
    # "When you specify the Days tag, Amazon S3 automatically performs ExpiredObjectDeleteMarker
    # cleanup when the delete markers are old enough" (S3 User Guide, lifecycle configuration elements)
    markers = any(
        r.get("Expiration", {}).get("ExpiredObjectDeleteMarker") or "Days" in r.get("Expiration", {}) for r in covering
    )
    if retention.delete_markers and not markers:
        found.append(f"{key} ({retention.what}): its delete markers are never removed")
    if not any("AbortIncompleteMultipartUpload" in r for r in covering):
        found.append(f"{key}: incomplete multipart uploads are never aborted")
    return found
