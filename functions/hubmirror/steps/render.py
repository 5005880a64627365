"""The render step: build contexts for a batch's build job, content-addressed in S3."""

from __future__ import annotations

from typing import Any, Protocol

from hubmirror.domain import keys
from hubmirror.domain.dockerfile import render_context
from hubmirror.domain.documents import JobFile
from hubmirror.domain.items import WorkItem
from hubmirror.steps.payloads import RenderResult


class RenderStore(Protocol):
    def get_json(self, key: str) -> Any: ...
    def put_json(self, key: str, value: Any) -> str: ...
    def put_bytes(self, key: str, data: bytes, content_type: str = ...) -> str: ...
    def exists(self, key: str) -> bool: ...


def render_job(store: RenderStore, job_key: str) -> RenderResult:
    """Render and upload the build context of every item of a build job.

    The job file is rewritten with each item's ``context`` key and Dockerfile, so the
    build and the report see exactly what was rendered.
    """
    job: JobFile = store.get_json(job_key)
    rendered = 0
    for entry in job["items"]:
        item = WorkItem.from_dict(entry)
        recipe = entry["recipe"]
        if recipe is None:  # the check gives every build its recipe
            raise ValueError(f"the build job {job_key} has no recipe for {item.key}")
        context = render_context(item, entry["upstream_digest"], recipe)
        key = keys.context(context.digest)
        if not store.exists(key):
            store.put_bytes(key, context.archive, "application/gzip")
            rendered += 1
        entry["context"] = key
        entry["dockerfile"] = context.dockerfile
    store.put_json(job_key, job)
    return RenderResult(job=job_key, contexts=len(job["items"]), uploaded=rendered)
