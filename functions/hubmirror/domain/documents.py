"""The documents one part of hubmirror writes to S3 and another reads back. Pure.

The Lambda payloads are :mod:`hubmirror.steps.payloads`; these are the files in the run's
bucket that cross a boundary the state machine does not see:

- the **job file** (:class:`JobFile`), written by the check for the copy or build job, given
  each item's build context by the render step, and read by the job CodeBuild runs;
- the **outcomes** each writer keeps per batch (:class:`OutcomeRecord`), read by the report;
- the **blob index**: where a blob is (:class:`BlobRecord`) and who is fetching it
  (:class:`ClaimRecord`), read and written by every copier at once;
- the **run lock** (:class:`RunLock`), taken by the plan and released by the report;
- what the job remembers for later runs: a refusal no run can change (:class:`RefusalRecord`)
  and the extras that did not arrive beside an image (:class:`ExtrasMark`).

Each writer builds the type and each reader reads through it, so mypy ties the two sides;
``tests/infrastructure/test_documents.py`` holds the files real writers produce to the
types, so a field renamed on one side fails a test, not a run.
"""

# No ``from __future__ import annotations``: TypedDict reads NotRequired from the annotations
# themselves, and tests read the required keys at run time.
from typing import NotRequired, TypedDict

#: When a job stops starting items, in seconds from its start: the CodeBuild projects time out
#: after 120 minutes, and the provisioning and install phases and the last outcome writes need
#: the rest (a test holds it under the template's timeout). The check writes it into the job file.
JOB_DEADLINE_SECONDS = 100 * 60


class ItemDocument(TypedDict):
    """A work item as :meth:`hubmirror.domain.items.WorkItem.to_dict` writes it."""

    source: str
    tag: str
    target_repository: str
    target_tag: str
    platforms: list[str] | None
    build_commands: list[str]
    entry: int
    pinned: str | None
    signatures: bool
    #: ``[source, value]`` of ``verify:``; None when the entry names none
    verify: list[str] | None
    build_network: bool


class JobEntry(ItemDocument):
    """One item of a job: the item, what the check saw, and why it needs work."""

    upstream_digest: str
    upstream_media_type: str
    target_digest: str | None
    recipe: str | None
    reason: str
    #: the image is in place; only its signatures or referrers are to be copied again
    extras_only: NotRequired[bool]
    #: the S3 key of the build context (written by the render step, build jobs only)
    context: NotRequired[str]
    #: the Dockerfile the render step wrote into the context, for the build log
    dockerfile: NotRequired[str]


class JobFile(TypedDict):
    """What the check writes for one copy or build job of a batch."""

    run: str
    batch: str
    #: a :class:`hubmirror.domain.items.Kind` value
    kind: str
    target_registry: str
    ratelimit_floor: int
    item_deadline_seconds: int | None
    job_deadline_seconds: int
    #: how many jobs of the run may run at once: they share the target's PutImage rate
    jobs_at_once: int
    #: where the job writes its outcomes
    outcomes_key: str
    items: list[JobEntry]


class OutcomeRecord(TypedDict):
    """One item's outcome as :meth:`hubmirror.domain.decisions.Outcome.to_dict` writes it
    (None fields are left out)."""

    key: str
    #: an :class:`hubmirror.domain.decisions.OutcomeName` value
    outcome: str
    reason: str
    target: str
    upstream_digest: NotRequired[str]
    target_digest: NotRequired[str]
    #: a :class:`hubmirror.domain.items.Kind` value
    kind: str
    retry_after: NotRequired[str]


class BlobRecord(TypedDict):
    """Where a blob is in the target: up to eight repositories, the latest first."""

    repositories: list[str]


class ClaimRecord(TypedDict):
    """Who is fetching a blob, and since when (``time.time()``); a released claim says so."""

    at: float
    by: NotRequired[str]
    released: NotRequired[bool]


class RunLock(TypedDict):
    """The execution that holds the run lock, since when and until when (``time.time()``)."""

    execution: str
    at: float
    expires: float


class RefusalRecord(TypedDict):
    """A refusal no run can change while the image and its recipe stay as they are."""

    reason: str
    run: str | None
    image: str


class ExtrasMark(TypedDict):
    """An image in place whose signatures or referrers did not all arrive beside it."""

    image: str
    run: str | None
    missing: list[str]
