"""Report: one outcome per item, saved to S3 and shaped for the SNS publish step."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from hubmirror.domain.decisions import OutcomeName
from hubmirror.domain.items import few
from hubmirror.handlers._runtime import event_bus, executions, settings, store, target_client
from hubmirror.observability import logger, metrics, tracer
from hubmirror.steps import chat, publish
from hubmirror.steps import report as reporting
from hubmirror.steps.check import target_state
from hubmirror.steps.payloads import ReportEvent, ReportResult
from hubmirror.steps.runlock import follow_up, release_run_lock

METRIC_NAMES = {
    OutcomeName.UNCHANGED: "ItemsUnchanged",
    OutcomeName.COPIED: "ItemsCopied",
    OutcomeName.BUILT: "ItemsBuilt",
    OutcomeName.DEFERRED: "ItemsDeferred",
    OutcomeName.FAILED: "ItemsFailed",
}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: ReportEvent, context: LambdaContext) -> ReportResult:
    """``{"run", "plan_error"?}`` -> subject, message, attributes and the failure count."""
    run = str(event["run"])
    logger.append_keys(execution=run)
    try:
        if event.get("plan_error"):
            report = reporting.plan_failure(run, event["plan_error"])
        else:
            client = cache(target_client)  # one login, and only if some job left items without outcomes
            report = reporting.collect(store(), run, target=lambda item: target_state(client(), item))
    finally:
        release_run_lock(store(), run)  # the run is over, whatever its report
    report.execution = event.get("execution")  # for console links
    report.registry = settings().target_registry  # for pull references
    machine = event.get("state_machine")
    if settings().run_on_allowlist_change and machine and not report.plan_error and not report.dry_run:
        # a new allowlist version whose own execution found this run holding the lock starts now
        notice = follow_up(
            store(), report.allowlist_version, lambda name, data: executions().start(machine, name, data)
        )
        if notice:
            logger.info("follow-up run", extra={"notice": notice})
            report.notices.append(notice)
    reporting.save(store(), report)  # a refused plan's report too: `hubmirror report` reads it
    bus = settings().event_bus
    if bus:  # events for programs: after the report is saved, before subscribers hear of it
        found = publish.entries(report, bus=bus)
        sent, problems = event_bus().put(publish.requests(found))
        metrics.add_metric(name="EventsPublished", unit=MetricUnit.Count, value=sent)
        if problems:
            logger.warning("events not published", extra={"problems": problems})
            report.notices.append(
                f"{len(found) - sent} of {len(found)} EventBridge events were not published: {few(problems)}"
            )
            if report.location:  # the full report in S3 says so too
                reporting.save(store(), report)
    for item in report.outcomes:  # a line per image that changed, waits or failed, to search logs by image
        if item.outcome != OutcomeName.UNCHANGED:
            log = logger.warning if item.outcome == OutcomeName.FAILED else logger.info
            log(item.outcome, extra={"image": item.key, "outcome": item.outcome, "reason": item.reason})
    metrics.add_metadata(key="execution", value=run)
    for outcome, name in METRIC_NAMES.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=report.counts.get(outcome, 0))
    metrics.add_metric(name="PlanRefused", unit=MetricUnit.Count, value=1 if report.plan_error else 0)
    logger.info("reported", extra={"status": report.status, "counts": report.counts})
    return reporting.summary(report, chat=chat.message(report, execution=event.get("execution")))
