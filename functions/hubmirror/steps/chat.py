"""The report as a chat message: an Amazon Q Developer in chat applications (AWS Chatbot)
custom notification, for Slack and Microsoft Teams channels.

Chatbot forwards only messages in its custom-notification format (version ``1.0``, source
``custom``, a ``content`` with markdown text, and ``metadata``); anything else it drops without
a word (https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html). The run
publishes it to a topic of its own, the chat topic, that a Chatbot channel subscribes to:
the report topic keeps its text for e-mail and its JSON document for queues and functions.

The title carries the counts; the description lists the failed images first, then the
changed and deferred ones, each with its reason, at most :data:`LISTED` of them; the next
steps link to the execution and the report. A deployment's runs share a thread
(``metadata.threadId``, the state machine's name).
"""

from __future__ import annotations

import json
from typing import Any

from hubmirror.domain.advice import remedy
from hubmirror.domain.decisions import Outcome, OutcomeName, short
from hubmirror.steps import report as reporting
from hubmirror.steps.report import CHANGED, PLAN_REFUSED, Report, subject

#: Images listed in the message; the rest are counted, and are in the full report.
LISTED = 15
#: A listed image's reason, cut to this many characters.
REASON_CHARS = 300
#: The description, at most (a chat message is read, not searched).
DESCRIPTION_CHARS = 6000
TITLE_ICON = {"failed": ":x:", "deferred": ":hourglass:", "ok": ":white_check_mark:", "dry_run": ":mag:"}
ORDER = (OutcomeName.FAILED, OutcomeName.COPIED, OutcomeName.BUILT, OutcomeName.DEFERRED)


def console_links(report: Report, execution: str | None) -> list[str]:
    """Console addresses of the execution and of the full report, in the execution's partition.

    >>> report = Report(run="r", location="s3://bucket/runs/r/report.json")
    >>> console_links(report, "arn:aws:states:eu-west-1:123456789012:execution:hubmirror-sync:r")[0]
    'https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/arn:aws:states:eu-west-1:123456789012:execution:hubmirror-sync:r'
    """
    return list(reporting.console_links(report.location, execution or report.execution).values())


def _line(outcome: Outcome, report: Report) -> str:
    reason = outcome.reason if len(outcome.reason) <= REASON_CHARS else outcome.reason[: REASON_CHARS - 3] + "..."
    if outcome.outcome in CHANGED and outcome.target_digest:
        return f"• `{report.pull_reference(outcome)}`: {reason}"
    digest = f" `{short(outcome.upstream_digest)}`" if outcome.upstream_digest else ""
    line = f"• `{outcome.target}`{digest}: {reason}"
    if outcome.outcome in (OutcomeName.FAILED, OutcomeName.DEFERRED):
        found = remedy(outcome.reason)
        line += f" _({found.title}; {'retried by the next run' if found.retried else 'not retried until fixed'})_"
    return line


def description(report: Report) -> str:
    """The markdown body: the images that need a look or changed, grouped, failed first."""
    if report.plan_error:
        return f"*The plan was refused; nothing was synced.*\n```\n{report.plan_error[:2000]}\n```"
    counts = report.counts
    lines = [", ".join(f"*{n}* {name.replace('_', ' ')}" for name, n in counts.items() if n) or "*nothing* to sync"]
    listed = 0
    for name in ORDER:
        group = [o for o in report.outcomes if o.outcome == name]
        if not group:
            continue
        room = max(0, LISTED - listed)
        lines += ["", f"*{name.capitalize()}*", *(_line(o, report) for o in group[:room])]
        listed += min(room, len(group))
        if len(group) > room:
            lines.append(f"…and {len(group) - room} more, in the full report")
    if report.notices:
        lines += ["", "*Notices*", *(f"• {notice}" for notice in report.notices)]
    text = "\n".join(lines)
    return text if len(text) <= DESCRIPTION_CHARS else text[: DESCRIPTION_CHARS - 1] + "…"


#: Remedies listed as next steps, at most (each once, in the order the failed images come).
MAX_REMEDIES = 3
PLAN_REFUSED_STEP = f"{PLAN_REFUSED[0].upper()}{PLAN_REFUSED[1:]}."


def _icon(report: Report) -> str:
    if report.failed or report.plan_error:
        return TITLE_ICON["failed"]
    if report.dry_run:
        return TITLE_ICON["dry_run"]
    return TITLE_ICON["deferred"] if report.counts.get(OutcomeName.DEFERRED) else TITLE_ICON["ok"]


def notification(report: Report, *, execution: str | None = None) -> dict[str, Any]:
    """The custom notification of a report (a JSON object; the chat topic's message).

    Runs of one deployment share a thread, named after its state machine.
    """
    thread = execution.split(":")[6] if execution and execution.count(":") >= 7 else "hubmirror"
    links = console_links(report, execution)
    next_steps = []
    if report.plan_error:
        next_steps.append(PLAN_REFUSED_STEP)
    failed = [o for o in report.outcomes if o.outcome == OutcomeName.FAILED]
    remedies = list(dict.fromkeys(remedy(o.reason).next_step for o in failed))  # each remedy once, in order
    next_steps += [f"{remedy[0].upper()}{remedy[1:]}." for remedy in remedies[:MAX_REMEDIES]]
    if len(remedies) > MAX_REMEDIES:
        next_steps.append("Other failed images: each one's reason is in the full report.")
    if links:
        next_steps.append(f"Execution: {links[0]}")
    if len(links) > 1:
        next_steps.append(f"Full report: {links[1]}")
    elif report.location:
        next_steps.append(f"Full report: {report.location}")
    counts = report.counts
    related = [r for r in (execution, _s3_arn(report.location)) if r]
    return {
        "version": "1.0",
        "source": "custom",
        "id": report.run,
        "content": {
            "textType": "client-markdown",
            "title": f"{_icon(report)} {subject(report).removesuffix(f' ({report.run})')}",
            "description": description(report),
            "nextSteps": next_steps,
            "keywords": ["hubmirror", report.status, *(["dry run"] if report.dry_run else [])],
        },
        "metadata": {
            "threadId": thread,
            "summary": subject(report),
            "eventType": "hubmirror-sync",
            "relatedResources": related,
            "additionalContext": {
                "run": report.run,
                "status": report.status,
                **{name: str(n) for name, n in counts.items()},
            },
        },
    }


def _s3_arn(location: str | None) -> str | None:
    if not location or not location.startswith("s3://"):
        return None
    return "arn:aws:s3:::" + location.removeprefix("s3://")


def message(report: Report, *, execution: str | None = None) -> str:
    """The chat topic's SNS message: the notification as JSON text."""
    return json.dumps(notification(report, execution=execution), ensure_ascii=False)
