"""The copy job's own deadline: an item not started by then ends ``deferred`` and costs nothing;
an item started in time is finished (the job script against real registries, S3 under moto).

The job stops starting items at its deadline (``job_deadline_seconds`` in the job, else
``JOB_DEADLINE_SECONDS``), before CodeBuild's own timeout would end the build with no outcome
for them: each of them is deferred to a later run, never failed and never silently dropped.
"""

from __future__ import annotations

from typing import Any, cast

from devstack.content.images import platform_image
from devstack.registries.ecrfront import EcrFront
from devstack.registries.proxy import Fault
from devstack.stack import ECR_PASSWORD, ECR_USER
from hubmirror.adapters.ecr import Ecr
from hubmirror.adapters.s3 import Store
from hubmirror.domain.items import WorkItem
from hubmirror.domain.oci import OCI_MANIFEST
from hubmirror.domain.registry.model import Credentials
from hubmirror.runner.job import COPY_WORKERS, NOT_STARTED_IN_TIME, run_job
from tests.functional.conftest import Registries
from tests.support import RegistryReader

JOB_KEY = "runs/r/jobs/00000-copy.json"
OUTCOMES_KEY = "runs/r/outcomes/00000-copy.json"


class FixedEcr(Ecr):
    """ECR's control plane as the job meets it: the registry login alone."""

    def __init__(self) -> None:
        self.client = cast(Any, None)  # the job makes no control-plane call but the login

    def credentials(self) -> Credentials:
        return Credentials(ECR_USER, ECR_PASSWORD)


def _hold_first_request(front: EcrFront, targets: list[str], seconds: float) -> None:
    """Each target's first request from the job (a blob HEAD) waits ``seconds``: a slow ECR."""
    for target in targets:
        front.inject(Fault("head_blob", 0, repository=target, delay=seconds))


def _started(front: EcrFront, targets: list[str]) -> list[str]:
    """The targets the job sent a request to (their held request was met)."""
    waiting = {f.repository for f in front.faults.pending()}
    return [t for t in targets if t not in waiting]


def _run(registries: Registries, s3_store: Store, targets: list[str], **job: Any) -> dict[str, Any]:
    hub = registries.front.host
    image = platform_image("linux/amd64", "late")
    digest = registries.hub_pusher().image("library/late", "1", image)
    entries = [
        {
            **WorkItem(f"{hub}/library/late", "1", target, "1").to_dict(),
            "upstream_digest": digest,
            "upstream_media_type": OCI_MANIFEST,
            "recipe": None,
        }
        for target in targets
    ]
    s3_store.put_json(
        JOB_KEY,
        {
            "run": "r",
            "batch": "00000",
            "kind": "copy",
            "target_registry": registries.ecr.host,
            "outcomes_key": OUTCOMES_KEY,
            "items": entries,
            **job,
        },
    )
    code = run_job(f"s3://runs/{JOB_KEY}", store_factory=lambda _: s3_store, ecr=FixedEcr(), environ={})
    outcomes = s3_store.get_json(OUTCOMES_KEY)
    assert sorted(o["target"] for o in outcomes) == sorted(f"{t}:1" for t in targets)  # one outcome each
    return {"code": code, "digest": digest, "image": image, **{o["target"]: o for o in outcomes}}


def test_items_not_started_by_the_job_s_deadline_end_deferred_and_cost_nothing(
    registries: Registries, s3_store: Store
) -> None:
    targets = [f"mirror/late-{n}" for n in range(3)]
    _hold_first_request(registries.ecr, targets, 0.0)
    before = registries.front.snapshot()
    seen = _run(registries, s3_store, targets, job_deadline_seconds=1e-6)
    assert seen["code"] == 0  # deferred is not failed: the build succeeds
    for target in targets:
        outcome = seen[f"{target}:1"]
        assert outcome["outcome"] == "deferred"
        assert outcome["reason"] == NOT_STARTED_IN_TIME
        assert outcome["upstream_digest"] == seen["digest"]
    assert _started(registries.ecr, targets) == []  # nothing asked of the target
    registries.ecr.faults.clear()
    after = registries.front.snapshot()
    job_requests = {k: after.get(k, 0) - before.get(k, 0) for k in ("head_manifest", "get_manifest", "get_blob")}
    assert job_requests == {"head_manifest": 0, "get_manifest": 0, "get_blob": 0}  # no upstream request either


def test_items_started_in_time_are_finished_and_the_rest_wait_for_a_later_run(
    registries: Registries, s3_store: Store
) -> None:
    """As many copies as the job has workers start at once; each is slow to get its repository,
    past the deadline. The two items queued behind them start after it: deferred. Those started
    are copied (the target holds their blobs already, so the deadline cuts no download of theirs)."""
    deadline = 1.5
    targets = [f"mirror/started-{n}" for n in range(COPY_WORKERS + 2)]
    image = platform_image("linux/amd64", "late")
    for target in targets:
        registries.ecr.create_repository(target)
        registries.ecr_pusher().image(target, "before", image)
    _hold_first_request(registries.ecr, targets, deadline + 0.5)
    seen = _run(registries, s3_store, targets, job_deadline_seconds=deadline)
    assert seen["code"] == 0
    started = set(_started(registries.ecr, targets))
    registries.ecr.faults.clear()
    deferred = [t for t in targets if t not in started]
    assert len(deferred) >= 2  # at most COPY_WORKERS items were started before the deadline
    reader = RegistryReader(registries.ecr.host, ECR_USER, ECR_PASSWORD)
    for target in targets:
        outcome = seen[f"{target}:1"]
        if target in started:
            assert outcome["outcome"] == "copied", outcome
            fetched = reader.manifest(target, "1")
            assert fetched is not None
            assert fetched.digest == seen["digest"]
        else:
            assert (outcome["outcome"], outcome["reason"]) == ("deferred", NOT_STARTED_IN_TIME)
            assert reader.manifest(target, "1") is None  # its tag is left as it was
