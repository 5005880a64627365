"""Check: one batch of items -> outcomes for the settled ones, jobs for the rest."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from hubmirror.adapters.publickeys import KeyReader
from hubmirror.domain.items import WorkItem
from hubmirror.domain.pullpolicy import statements
from hubmirror.domain.sigstore import TrustRoot
from hubmirror.handlers._runtime import ecr, settings, store, target_client, tuf_trust_root, upstream_client
from hubmirror.observability import logger, metrics, tracer
from hubmirror.steps.check import CHECK_RESERVE_SECONDS, check_batch
from hubmirror.steps.payloads import CheckEvent, CheckResult
from hubmirror.steps.verify import shipped_trust_root


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: CheckEvent, context: LambdaContext) -> CheckResult:
    """``{"run", "batch": {"batch", "key"}, "force", "dry_run"}`` -> job keys and counts."""
    config = settings()
    run, batch = str(event["run"]), event["batch"]
    logger.append_keys(execution=run, batch=batch["batch"])
    items = [WorkItem.from_dict(i) for i in store().get_json(batch["key"])]
    keys = KeyReader()  # keys are read again at each invocation: a rotated key counts at once
    private_root = config.sigstore_trusted_root_parameter
    trust_root: Callable[[], TrustRoot] = shipped_trust_root
    if private_root:  # a private Sigstore's root, never refreshed from the public repository
        trust_root = partial(keys.trust_root, private_root)
    elif config.sigstore_tuf_url:
        trust_root = tuf_trust_root(config.sigstore_tuf_url)
    result = check_batch(
        run=run,
        batch=batch["batch"],
        items=items,
        store=store(),
        upstream=upstream_client,
        target=target_client(),
        target_registry=config.target_registry,
        floor=config.rate_limit_floor,
        concurrency=config.check_concurrency,
        force=bool(event.get("force")),
        dry_run=bool(event.get("dry_run")),
        public_keys=keys,
        trust_root=trust_root,
        item_deadline_seconds=config.item_deadline_seconds,
        jobs_at_once=int(batch.get("jobs_at_once") or 1),
        deadline=time.monotonic() + context.get_remaining_time_in_millis() / 1000 - CHECK_RESERVE_SECONDS,
        pull_policy=partial(ecr().sync_pull_policy, own=statements(config.pullers)),
    )
    metrics.add_metadata(key="execution", value=run)
    metrics.add_metric(name="ItemsChecked", unit=MetricUnit.Count, value=result.checked)
    if result.ratelimit_remaining is not None:
        metrics.add_metric(name="RateLimitRemaining", unit=MetricUnit.Count, value=result.ratelimit_remaining)
    logger.info("checked", extra={"counts": result.counts, "copy_job": result.copy_job, "build_job": result.build_job})
    return result.to_dict()
