"""What the state machine sends each function, and what it reads back.

The functions' ``event`` and return types; ``tests/infrastructure/test_contracts.py`` holds
them to the state machine's ``Parameters`` (what is sent) and ``ResultSelector`` and paths
(what is read), so a name that drifts on either side fails there, not in a deployed run.
"""

from typing import Any, NotRequired, TypedDict


class PlanEvent(TypedDict):
    execution: str
    #: the execution input, as typed in the console: validated by the plan
    input: Any


class PlanResult(TypedDict):
    """The state the Distributed Map starts from (``OutputPath: $.plan``)."""

    run: str
    bucket: str
    batches_key: str
    items: int
    batches: int
    force: bool
    dry_run: bool
    source: str
    map_concurrency: int
    entry_failures: int
    #: the S3 version of the allowlist planned (None: the stack holds none yet)
    allowlist_version: str | None
    #: why this execution has nothing to do (its allowlist version already ran, or waits for
    #: the run holding the lock); the state machine then ends without a report
    skipped: str | None


class BatchEntry(TypedDict):
    """One line of ``batches.json``: what the Map hands each child as ``$$.Map.Item.Value``."""

    batch: str
    key: str
    items: int
    #: how many jobs of the run may run at once (older plans leave it out: one)
    jobs_at_once: NotRequired[int]


class CheckEvent(TypedDict):
    run: str
    batch: BatchEntry
    force: bool
    dry_run: bool


class CheckResult(TypedDict):
    batch: str
    checked: int
    counts: dict[str, int]
    copy_job: str | None
    build_job: str | None
    ratelimit_remaining: int | None
    policies_updated: int


class RenderEvent(TypedDict):
    run: str
    job: str


class RenderResult(TypedDict):
    job: str
    contexts: int
    uploaded: int


class ReportEvent(TypedDict):
    run: str
    #: the execution's ARN, for the chat message's link
    execution: NotRequired[str]
    #: the state machine's ARN: a new allowlist version that arrived during the run starts it again
    state_machine: NotRequired[str]
    #: the plan's error (``Error``, ``Cause``) when the plan refused the run
    plan_error: NotRequired[dict[str, Any]]


class ReportResult(TypedDict):
    """What the publish step and the verdict read (``$.report``)."""

    run: str
    status: str
    failed: int
    counts: dict[str, int]
    subject: str
    message: str
    attributes: dict[str, dict[str, str]]
    cause: str
    #: the chat topic's message (:mod:`hubmirror.steps.chat`)
    chat: str
