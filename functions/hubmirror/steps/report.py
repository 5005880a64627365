"""The report: exactly one outcome per item, readable by people and by programs.

``collect`` reconciles what the run wrote to S3: the plan's items, the outcomes written by
the check and by the builds, and the errors of whole steps caught by the state machine.
An item that has no outcome gets ``failed`` with the best reason known, so no item can
disappear from a report.

``render`` turns a report into an SNS message: a subject with the counts, a plain-text
body for e-mail, and a JSON document for queues and functions (SNS delivers the
right one to each protocol). Failures and changes are listed in full up to a cap; unchanged
items are listed for small runs and counted for large ones. The full report is in S3.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import quote

from hubmirror import __version__
from hubmirror.domain import keys
from hubmirror.domain.advice import remedy
from hubmirror.domain.decisions import OUTCOMES, Outcome, OutcomeName, TargetState, decide, short
from hubmirror.domain.documents import JobEntry, JobFile
from hubmirror.domain.items import Kind, WorkItem
from hubmirror.steps.payloads import ReportResult

#: SNS Publish: a subject is "less than 100 characters long"
#: (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html).
SUBJECT_MAX = 99
LIST_CAP = 100
UNCHANGED_LISTED_UP_TO = 50
REASON_MAX = 500
#: SNS takes 256 KB per message, and the message also passes through a state (256 KB).
MESSAGE_BUDGET = 160 * 1024
#: Protocols that get the JSON document; every other one (e-mail, SMS, ...) gets the text.
JSON_PROTOCOLS = ("sqs", "lambda", "http", "https")
CHANGED = (OutcomeName.COPIED, OutcomeName.BUILT)
#: What a person does about a refused plan.
PLAN_REFUSED = (
    "fix the allowlist (or the execution's input) where the error says, check it with `hubmirror validate`, "
    "then `hubmirror push` it; nothing is synced until then"
)


class ReportStore(Protocol):
    bucket: str

    def get_json(self, key: str) -> Any: ...
    def put_json(self, key: str, value: Any) -> str: ...
    def keys(self, prefix: str) -> list[str]: ...
    def exists(self, key: str) -> bool: ...


@dataclass
class Report:
    """The outcome of every item of one run, or why the run could not start."""

    run: str
    outcomes: list[Outcome] = field(default_factory=list)
    plan_error: str | None = None
    dry_run: bool = False
    location: str | None = None
    #: what went wrong around the run rather than with an item (events not published, ...)
    notices: list[str] = field(default_factory=list)
    #: the allowlist the run planned with: ``version`` (S3 version id), ``location``, ``writer``
    #: and ``writer_arn`` (:meth:`hubmirror.steps.plan.StoredAllowlist.to_dict`)
    allowlist: dict[str, Any] | None = None
    #: the execution's ARN, for console links (None: not known, as in ``hubmirror report``)
    execution: str | None = None
    #: the target registry's host (``ACCOUNT.dkr.ecr.REGION.amazonaws.com``), for pull references
    registry: str | None = None

    def pull_reference(self, outcome: Outcome) -> str:
        """What a person pastes into ``docker pull``: registry, repository, tag and the digest pushed."""
        where = f"{self.registry}/{outcome.target}" if self.registry else outcome.target
        return f"{where}@{outcome.target_digest}" if outcome.target_digest else where

    def links(self) -> dict[str, str]:
        """Console addresses (https) of the execution and of the full report, in the execution's partition."""
        return console_links(self.location, self.execution)

    @property
    def allowlist_version(self) -> str | None:
        return self.allowlist["version"] if self.allowlist else None

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Report:
        """The report :func:`save` wrote (every item), read back: what ``hubmirror report`` prints."""
        return cls(
            run=str(doc["run"]),
            outcomes=[Outcome.from_dict(i) for i in doc.get("items") or []],
            plan_error=doc.get("plan_error"),
            dry_run=bool(doc.get("dry_run")),
            location=doc.get("full_report"),
            notices=list(doc.get("notices") or []),
            allowlist=doc.get("allowlist"),
            execution=doc.get("execution"),
            registry=doc.get("registry"),
        )

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {name: 0 for name in OUTCOMES if not name.startswith("would_")}
        for outcome in self.outcomes:
            counts[outcome.outcome] = counts.get(outcome.outcome, 0) + 1
        return counts

    @property
    def failed(self) -> int:
        return self.counts.get(OutcomeName.FAILED, 0) + (1 if self.plan_error else 0)

    @property
    def status(self) -> Literal["failed", "succeeded"]:
        return "failed" if self.failed else "succeeded"


#: What an e-mail subject says of the run first.
Subject = Literal["FAILED", "DRY RUN", "OK"]

#: The console's host in each partition (``{region}`` is filled in).
CONSOLE_HOSTS = {
    "aws": "{region}.console.aws.amazon.com",
    "aws-cn": "console.amazonaws.cn",
    "aws-us-gov": "console.amazonaws-us-gov.com",
}


def console_links(location: str | None, execution: str | None) -> dict[str, str]:
    """``execution`` and ``report`` console addresses, from the execution's ARN (partition and region).

    >>> links = console_links("s3://b/runs/r/report.json", "arn:aws-cn:states:cn-north-1:1:execution:m:r")
    >>> links["execution"]
    'https://console.amazonaws.cn/states/home?region=cn-north-1#/v2/executions/details/arn:aws-cn:states:cn-north-1:1:execution:m:r'
    >>> links["report"]
    'https://console.amazonaws.cn/s3/object/b?region=cn-north-1&prefix=runs/r/report.json'
    """
    parts = (execution or "").split(":")
    if len(parts) < 7 or parts[1] not in CONSOLE_HOSTS:
        return {}
    partition, region = parts[1], parts[3]
    host = CONSOLE_HOSTS[partition].format(region=region)
    links = {"execution": f"https://{host}/states/home?region={region}#/v2/executions/details/{execution}"}
    if location and location.startswith("s3://"):
        bucket, _, key = location.removeprefix("s3://").partition("/")
        links["report"] = f"https://{host}/s3/object/{bucket}?region={region}&prefix={quote(key)}"
    return links


def item_document(outcome: Outcome, report: Report) -> dict[str, Any]:
    """An item as programs read it: the outcome, its pull reference, and for a failure or a wait
    its cause, next step and whether the next run retries it."""
    data: dict[str, Any] = dict(outcome.to_dict())
    if outcome.outcome in CHANGED or outcome.outcome == OutcomeName.UNCHANGED:
        data["pull"] = report.pull_reference(outcome)
    if outcome.outcome in (OutcomeName.FAILED, OutcomeName.DEFERRED):
        found = remedy(outcome.reason)
        data |= {"cause": str(found.cause), "next_step": found.next_step, "retried": found.retried}
    return data


def _error_reason(error: Mapping[str, Any], phase: str) -> str:
    name = str(error.get("Error") or "error")
    cause = str(error.get("Cause") or "")
    try:
        parsed = json.loads(cause)
    except ValueError:
        parsed = None
    if isinstance(parsed, Mapping):
        if "errorMessage" in parsed:
            cause = f"{parsed.get('errorType', '')}: {parsed['errorMessage']}"
        elif "Build" in parsed or "buildStatus" in parsed or "BuildStatus" in parsed:
            build = parsed.get("Build", parsed)
            status = build.get("BuildStatus") or build.get("buildStatus")
            build_id = build.get("Id") or build.get("id")
            logs = build.get("Logs") or build.get("logs") or {}
            where = logs.get("DeepLink") or logs.get("deepLink")
            phase_failed = next(
                (
                    p.get("PhaseType") or p.get("phaseType")
                    for p in build.get("Phases") or build.get("phases") or []
                    if (p.get("PhaseStatus") or p.get("phaseStatus")) not in (None, "SUCCEEDED")
                ),
                None,
            )
            cause = f"CodeBuild build {build_id} ended {status}"
            if phase_failed:
                cause += f" in its {phase_failed} phase"
            if where:
                cause += f"; its log: {where}"
    return f"{phase} step failed: {name}: {cause}".strip()[:1000]


#: What the target tag of an item holds now (None: nothing); raises when it cannot be asked.
TargetLookup = Callable[[WorkItem], TargetState | None]


def _in_place(item: WorkItem, entry: JobEntry, lookup: TargetLookup, why: str) -> Outcome:
    """The outcome of a job item whose job recorded none, asked of the target (truth lives there)."""
    digest = str(entry.get("upstream_digest") or "")
    try:
        state = lookup(item)
    except Exception as exc:  # the target cannot say: the item stays failed, with both reasons
        return Outcome.for_item(
            item, OutcomeName.FAILED, f"{why}; the target could not be asked: {exc}", upstream_digest=digest
        )
    if not digest or state is None or decide(item, digest, state).needs_work:
        return Outcome.for_item(item, OutcomeName.FAILED, why, upstream_digest=digest or None)
    if state.digest == entry.get("target_digest"):  # as the check saw it: the job's work was not done
        return Outcome.for_item(item, OutcomeName.FAILED, why, upstream_digest=digest)
    return Outcome.for_item(
        item,
        OutcomeName.BUILT if item.kind == Kind.BUILD else OutcomeName.COPIED,
        f"in place in the target (its job recorded no outcome: {why})",
        upstream_digest=digest,
        target_digest=state.digest,
    )


def collect(store: ReportStore, run: str, *, target: TargetLookup | None = None) -> Report:
    """Reconcile a run's plan, outcomes, jobs and step errors into one outcome per item.

    An item whose job recorded no outcome (the job died, or could not write) is looked up in
    the target with ``target``: in place, it is reported done; otherwise failed.
    """
    plan = store.get_json(keys.plan(run))
    items = [WorkItem.from_dict(i) for i in plan["items"]]
    dry_run = bool(plan.get("options", {}).get("dry_run"))
    recorded: dict[str, Outcome] = {}
    job_of: dict[str, str] = {}
    job_entry: dict[str, JobEntry] = {}
    errors: dict[str, str] = {}
    for key in store.keys(keys.folder(run, "outcomes")):
        for data in store.get_json(key):
            outcome = Outcome.from_dict(data)
            if key.endswith("-check.json") and outcome.target in recorded:
                continue  # a build's outcome wins over the check's
            recorded[outcome.target] = outcome
    for key in store.keys(keys.folder(run, "jobs")):
        job: JobFile = store.get_json(key)
        for entry in job["items"]:
            target_ref = f"{entry['target_repository']}:{entry['target_tag']}"
            job_of[target_ref] = f"{job['batch']}-{job['kind']}"
            job_entry[target_ref] = entry
    for key in store.keys(keys.folder(run, "errors")):
        name = key.rsplit("/", 1)[-1].removesuffix(".json")
        batch, _, phase = name.partition("-")
        errors[name] = _error_reason(store.get_json(key), phase)
        errors.setdefault(batch, errors[name])
    batch_size = int(plan.get("batch_size") or 0)
    batch_of: list[str] = list(  # a plan written before batch_of: the batches follow the items
        plan.get("batch_of") or [f"{n // batch_size:05d}" if batch_size else "" for n in range(len(items))]
    )
    report = Report(
        run=run,
        dry_run=dry_run,
        location=f"s3://{store.bucket}/{keys.report(run)}",
        allowlist=plan.get("allowlist"),
        notices=list(plan.get("notices") or []),
    )
    for key in store.keys(keys.folder(run, "notices")):  # what a check could not do besides its items
        report.notices.extend(str(notice) for notice in store.get_json(key))
    report.notices = list(dict.fromkeys(report.notices))  # each batch may say the same (a trust root's refresh)
    for n, item in enumerate(items):
        found = recorded.get(item.target)
        if found is not None:
            report.outcomes.append(found)
            continue
        job_name = job_of.get(item.target, "")
        batch_id = job_name.split("-")[0] if job_name else batch_of[n]
        reason = errors.get(job_name) or errors.get(batch_id) or "no outcome was recorded (its batch did not finish)"
        if target is not None and item.target in job_entry:
            report.outcomes.append(_in_place(item, job_entry[item.target], target, reason))
        else:
            report.outcomes.append(Outcome.for_item(item, OutcomeName.FAILED, reason))
    report.outcomes.extend(Outcome.from_dict(f) for f in plan.get("failures", []))
    return report


def plan_failure(run: str, error: Mapping[str, Any]) -> Report:
    """The report of a run whose plan step failed (invalid allowlist or input)."""
    cause = str(error.get("Cause") or "")
    try:
        parsed = json.loads(cause)
        if isinstance(parsed, Mapping) and "errorMessage" in parsed:
            cause = str(parsed["errorMessage"])
    except ValueError:
        pass
    name = str(error.get("Error") or "Error")
    return Report(run=run, plan_error=f"{name}: {cause}" if cause else name)


def subject(report: Report) -> str:
    """An SNS subject (ASCII, one line, fewer than 100 characters) carrying the counts.

    >>> subject(Report(run="r", plan_error="AllowlistError: x"))
    'hubmirror FAILED: the plan was refused, nothing synced (r)'
    """
    if report.plan_error:
        text = f"hubmirror FAILED: the plan was refused, nothing synced ({report.run})"
    else:
        counts = report.counts
        shown = [f"{n} {name}" for name, n in counts.items() if n and name != OutcomeName.UNCHANGED]
        shown.append(f"{counts.get(OutcomeName.UNCHANGED, 0)} unchanged")
        status: Literal["FAILED", "DRY RUN", "OK"] = (
            "FAILED" if report.failed else ("DRY RUN" if report.dry_run else "OK")
        )
        text = f"hubmirror {status}: {', '.join(shown)} of {len(report.outcomes)} ({report.run})"
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
    return text if len(text) <= SUBJECT_MAX else text[: SUBJECT_MAX - 3] + "..."


def _listed(report: Report, cap: int = LIST_CAP) -> tuple[list[Outcome], int]:
    order: dict[str, int] = {name: n for n, name in enumerate(OUTCOMES)}
    notable = sorted(
        (o for o in report.outcomes if o.outcome != OutcomeName.UNCHANGED), key=lambda o: order.get(o.outcome, 99)
    )
    unchanged = [o for o in report.outcomes if o.outcome == OutcomeName.UNCHANGED]
    if len(report.outcomes) <= UNCHANGED_LISTED_UP_TO:
        notable += unchanged
    listed = [_shortened(o) for o in notable[:cap]]
    return listed, len(report.outcomes) - len(listed)


def _shortened(outcome: Outcome) -> Outcome:
    if len(outcome.reason) <= REASON_MAX:
        return outcome
    return Outcome(**{**outcome.__dict__, "reason": outcome.reason[: REASON_MAX - 3] + "..."})


def document(report: Report, cap: int = LIST_CAP) -> dict[str, Any]:
    """The JSON report for programs (queues, functions, webhooks)."""
    listed, omitted = _listed(report, cap)
    return {
        "run": report.run,
        "status": report.status,
        "dry_run": report.dry_run,
        "counts": report.counts,
        "total": len(report.outcomes),
        "plan_error": report.plan_error,
        "items": [item_document(o, report) for o in listed],
        "items_not_listed": omitted,
        "full_report": report.location,
        "links": report.links(),
        "execution": report.execution,
        "registry": report.registry,
        "notices": report.notices,
        "allowlist": report.allowlist,
        "hubmirror_version": __version__,
    }


def text(report: Report, cap: int = LIST_CAP) -> str:
    """The plain-text report for people (e-mail)."""
    lines = [f"hubmirror run {report.run}: {report.status.upper()}" + (" (dry run)" if report.dry_run else ""), ""]
    if report.plan_error:
        lines += ["The plan step refused to start; nothing was contacted or synced:", ""]
        lines += [f"  {line}" for line in report.plan_error.splitlines()]
        lines += ["", f"What to do: {PLAN_REFUSED}"]
        return "\n".join(lines + _notices(report)) + "\n"
    if report.allowlist:
        lines += [f"Allowlist: version {report.allowlist['version']} ({report.allowlist['location']})"]
        lines += [f"  {writer_text(report.allowlist)}", ""]
    width = max(len(name) for name in report.counts)
    lines += [f"  {name.ljust(width)}  {n}" for name, n in report.counts.items()]
    lines.append(f"  {'total'.ljust(width)}  {len(report.outcomes)}")
    listed, omitted = _listed(report, cap)
    current = None
    for outcome in listed:
        if outcome.outcome != current:
            current = outcome.outcome
            lines += ["", current.replace("_", " ").capitalize() + ":"]
        if outcome.outcome in CHANGED and outcome.target_digest:
            lines.append(f"  {outcome.key} -> {report.pull_reference(outcome)}")
        else:
            digests = f" [{short(outcome.upstream_digest)}]" if outcome.upstream_digest else ""
            lines.append(f"  {outcome.key} -> {outcome.target}{digests}")
        if outcome.reason:
            lines.append(f"      {outcome.reason}")
        if outcome.outcome in (OutcomeName.FAILED, OutcomeName.DEFERRED):
            found = remedy(outcome.reason)
            retried = "yes" if found.retried else "no"
            lines.append(f"      cause: {found.title}; retried by the next run: {retried}")
            lines.append(f"      what to do: {found.next_step}")
        if outcome.retry_after:
            lines.append(f"      retry: {outcome.retry_after}")
    if omitted:
        lines += ["", f"{omitted} more item(s) are in the full report, not listed here."]
    lines += _notices(report)
    links = report.links()
    if links:
        lines += ["", f"Execution: {links['execution']}"]
        if "report" in links:
            lines.append(f"Full report: {links['report']}")
    if report.location:
        lines += [] if links else [""]
        lines.append(f"Report in S3: {report.location}")
    lines += ["", f"hubmirror {__version__}"]
    return "\n".join(lines) + "\n"


def writer_text(allowlist: Mapping[str, Any]) -> str:
    """Who stored an allowlist version, as the bucket policy holds it.

    >>> writer_text({"writer": "AROAEXAMPLE:ci-42", "writer_arn": "arn:aws:sts::1:assumed-role/ci/ci-42"})
    'pushed by arn:aws:sts::1:assumed-role/ci/ci-42 (user id AROAEXAMPLE:ci-42, checked by the bucket policy)'
    >>> writer_text({})
    'stored without a writer (not by hubmirror push)'
    """
    writer = allowlist.get("writer")
    if not writer:
        return "stored without a writer (not by hubmirror push)"
    said = allowlist.get("writer_arn")
    return (
        f"pushed by {said} (user id {writer}, checked by the bucket policy)" if said else f"pushed by user id {writer}"
    )


def _notices(report: Report) -> list[str]:
    return ["", "Notices:", *(f"  {notice}" for notice in report.notices)] if report.notices else []


def sns_message(report: Report) -> str:
    """The ``MessageStructure=json`` message: text for people, JSON for programs.

    Fewer items are listed until the message fits :data:`MESSAGE_BUDGET`; the full report
    is always in S3.
    """
    cap = LIST_CAP
    while True:
        doc = json.dumps(document(report, cap), sort_keys=True)
        message = json.dumps({"default": text(report, cap), **dict.fromkeys(JSON_PROTOCOLS, doc)})
        if len(message.encode()) <= MESSAGE_BUDGET or cap == 0:
            return message
        cap //= 2


def sns_attributes(report: Report) -> dict[str, dict[str, str]]:
    """Message attributes subscribers can filter on (``status``, counts)."""
    counts = report.counts
    changed = sum(counts.get(name, 0) for name in CHANGED)
    return {
        "status": {"DataType": "String", "StringValue": report.status},
        "failed": {"DataType": "Number", "StringValue": str(report.failed)},
        "changed": {"DataType": "Number", "StringValue": str(changed)},
        "deferred": {"DataType": "Number", "StringValue": str(counts.get(OutcomeName.DEFERRED, 0))},
    }


def summary(report: Report, *, chat: str = "") -> ReportResult:
    """What the state machine carries after the report step (small); ``chat`` is the chat
    topic's message (:func:`hubmirror.steps.chat.message`)."""
    return ReportResult(
        run=report.run,
        status=report.status,
        failed=report.failed,
        counts=report.counts,
        subject=subject(report),
        message=sns_message(report),
        attributes=sns_attributes(report),
        cause=f"{report.failed} item(s) failed; see {report.location or 'the report'}"
        if report.outcomes or not report.plan_error
        else (report.plan_error or "")[:2000],
        chat=chat,
    )


def save(store: ReportStore, report: Report) -> str:
    """Write the full report (every item) next to the run's data."""
    return store.put_json(
        keys.report(report.run),
        {**document(report), "items": [o.to_dict() for o in report.outcomes], "items_not_listed": 0},
    )
