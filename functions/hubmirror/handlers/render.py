"""Render: the build contexts of a batch's build job, into S3."""

from __future__ import annotations

from aws_lambda_powertools.utilities.typing import LambdaContext

from hubmirror.handlers._runtime import store
from hubmirror.observability import logger, tracer
from hubmirror.steps.payloads import RenderEvent, RenderResult
from hubmirror.steps.render import render_job


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: RenderEvent, context: LambdaContext) -> RenderResult:
    """``{"run", "job": KEY}`` -> ``{"job", "contexts", "uploaded"}``."""
    logger.append_keys(execution=event.get("run"), job=event["job"])
    result = render_job(store(), str(event["job"]))
    logger.info("rendered", extra=result)
    return result
