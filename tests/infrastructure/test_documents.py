"""The documents that cross a boundary in S3 are what their types declare, as written by the
real writers (:mod:`hubmirror.domain.documents`).

mypy ties each writer and reader to the type at lint time; these tests hold what the writers
actually put into the store to the same types at run time: a key a writer adds, drops or
renames without the type, or a type that no longer says what is written, fails here. The
job's deadline is held under the CodeBuild projects' timeout.
"""

from __future__ import annotations

from typing import get_type_hints, is_typeddict

import hubmirror.domain.documents as documents
from hubmirror.copying.blobindex import S3BlobIndex
from hubmirror.domain import keys
from hubmirror.domain.documents import (
    JOB_DEADLINE_SECONDS,
    BlobRecord,
    ClaimRecord,
    JobEntry,
    JobFile,
    OutcomeRecord,
    RunLock,
)
from hubmirror.domain.items import WorkItem
from hubmirror.domain.registry.model import ManifestHead
from hubmirror.steps.check import check_batch
from hubmirror.steps.render import render_job
from hubmirror.steps.runlock import RUN_LOCK_KEY, take_run_lock
from tests.cfn import source
from tests.documents import problems
from tests.fakes import FakeRegistry, MemoryStore

DIGEST = "sha256:" + "a" * 64
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def test_the_checker_finds_a_renamed_key_a_missing_one_and_a_wrong_type() -> None:
    """The control: what the other tests rely on to fail."""
    lock = {"execution": "r", "at": 1.0, "expires": 2.0}
    assert problems(lock, RunLock) == []
    assert problems({"execution": "r", "at": 1.0, "until": 2.0}, RunLock) == [
        "$.expires is missing",
        "$.until is not a key of RunLock",
    ]
    assert problems({**lock, "at": "now"}, RunLock) == ["$.at is not a number"]
    assert problems({"repositories": ["a", 1]}, BlobRecord) == ["$.repositories[1] is int, not str"]


def _checked_batch(store: MemoryStore) -> None:
    head = ManifestHead(DIGEST, OCI_MANIFEST, 100)
    upstream = FakeRegistry({"1": head, "2": head, "3": head})
    items = [
        WorkItem("docker.io/library/app", "1", "mirror/app", "1"),  # no target yet: a copy
        WorkItem("docker.io/library/app", "2", "mirror/app", "2", build_commands=("RUN true",)),  # a build
        WorkItem("docker.io/library/app", "3", "mirror/gone", "3", pinned="sha256:" + "b" * 64),  # failed here
    ]
    check_batch(
        run="r",
        batch="00000",
        items=items,
        store=store,
        upstream=lambda _: upstream,
        target=FakeRegistry({}),
        target_registry="target.example",
        floor=0,
        concurrency=1,
        force=False,
        dry_run=False,
        item_deadline_seconds=1200,
    )


def test_the_job_files_the_check_writes_are_job_files_and_the_render_step_keeps_them_so() -> None:
    store = MemoryStore({})
    _checked_batch(store)
    copy, build = store.objects[keys.job("r", "00000", "copy")], store.objects[keys.job("r", "00000", "build")]
    assert problems(copy, JobFile) == []
    assert problems(build, JobFile) == []
    assert copy["job_deadline_seconds"] == JOB_DEADLINE_SECONDS  # written, so the job reads what the check says
    render_job(store, keys.job("r", "00000", "build"))
    rendered = store.objects[keys.job("r", "00000", "build")]
    assert problems(rendered, JobFile) == []
    assert set(rendered["items"][0]) == set(get_type_hints(JobEntry)) - {"extras_only"}
    assert problems(store.objects[keys.outcomes("r", "00000", "check")], list[OutcomeRecord]) == []


def test_the_blob_index_writes_blob_records_and_claims() -> None:
    store = MemoryStore({})
    index = S3BlobIndex(store, clock=lambda: 1000.0)  # type: ignore[arg-type]
    index.record(DIGEST, "mirror/app")
    assert index.claim(DIGEST)
    assert problems(store.objects[keys.blob(DIGEST)], BlobRecord) == []
    assert problems(store.objects[keys.blob(DIGEST, ".claim")], ClaimRecord) == []
    index.release(DIGEST)
    assert problems(store.objects[keys.blob(DIGEST, ".claim")], ClaimRecord) == []


def test_the_run_lock_is_a_run_lock() -> None:
    store = MemoryStore({})
    take_run_lock(store, "r", now=1000.0)  # type: ignore[arg-type]
    assert problems(store.objects[RUN_LOCK_KEY], RunLock) == []


def test_every_document_type_is_checked_somewhere() -> None:
    declared = {name for name, value in vars(documents).items() if is_typeddict(value)}
    checked = {"ItemDocument", "JobEntry", "JobFile", "OutcomeRecord", "BlobRecord", "ClaimRecord", "RunLock"}
    # RefusalRecord and ExtrasMark are written by the job: tests/functional/test_runner.py checks them
    assert declared == checked | {"RefusalRecord", "ExtrasMark"}


def test_the_job_stops_starting_items_well_before_codebuild_ends_the_build() -> None:
    """The job's deadline leaves the install phase and the last item's outcome time to finish."""
    resources = source()["Resources"]
    timeouts = [
        int(r["Properties"]["TimeoutInMinutes"]) for r in resources.values() if r["Type"] == "AWS::CodeBuild::Project"
    ]
    assert timeouts
    assert all(minutes * 60 - 15 * 60 >= JOB_DEADLINE_SECONDS for minutes in timeouts)
