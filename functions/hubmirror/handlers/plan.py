"""Plan: the allowlist and the execution input -> the run's items and batches in S3."""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from hubmirror.adapters.bundle import runner_bundle
from hubmirror.domain import keys
from hubmirror.handlers._runtime import settings, store, upstream_client
from hubmirror.observability import logger, metrics, tracer
from hubmirror.steps.payloads import PlanEvent, PlanResult
from hubmirror.steps.plan import StoredAllowlist, plan_run


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: PlanEvent, context: LambdaContext) -> PlanResult:
    """``{"execution": NAME, "input": {...}}`` -> the plan (run id, batch list location, counts)."""
    config = settings()
    run = str(event["execution"])
    logger.append_keys(execution=run)
    found = store().find_version(keys.ALLOWLIST)
    allowlist = None
    if found is not None:
        writer = store().tags(keys.ALLOWLIST, found[1])
        allowlist = StoredAllowlist(found[0], found[1], f"s3://{config.bucket}/{keys.ALLOWLIST}", writer)
    plan = plan_run(
        run=run,
        allowlist=allowlist,
        execution_input=event.get("input"),
        prefix=config.target_prefix,
        batch_size=config.batch_size,
        copy_batch_size=config.copy_batch_size,
        map_concurrency=config.map_concurrency,
        store=store(),
        bundle=runner_bundle(),
        list_tags=lambda ref: upstream_client(ref.api_host).tags(ref.repository, limit=config.tag_list_limit),
        default_platforms=config.default_platforms,
    )
    metrics.add_metadata(key="execution", value=run)
    metrics.add_metric(name="ItemsPlanned", unit=MetricUnit.Count, value=plan["items"])
    logger.info(
        "planned",
        extra={
            "items": plan["items"],
            "batches": plan["batches"],
            "dry_run": plan["dry_run"],
            "force": plan["force"],
            "allowlist_version": plan["allowlist_version"],
            "skipped": plan["skipped"],
        },
    )
    return plan
