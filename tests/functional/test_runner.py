"""The copy/build job's script against real registries: one item's failure stays its own."""

from __future__ import annotations

from botocore.exceptions import ClientError

from devstack.ecrfront import EcrFront
from devstack.images import seed
from devstack.stack import ECR_PASSWORD, ECR_USER
from hubmirror.adapters.ecr import Ecr
from hubmirror.adapters.registry.model import Credentials
from hubmirror.adapters.s3 import Store
from hubmirror.domain.items import WorkItem
from hubmirror.runner.job import run_job
from tests.functional.conftest import Registries


class DenyingEcr(Ecr):
    """ECR whose CreateRepository is refused for one repository (a key policy, say); the
    others are created in the ECR front, as CreateRepository creates them in ECR."""

    def __init__(self, front: EcrFront | None = None) -> None:
        self.front = front

    def credentials(self) -> Credentials:
        return Credentials(ECR_USER, ECR_PASSWORD)

    def ensure_repository(self, name: str) -> bool:
        if name == "mirror/denied":
            raise ClientError(
                {"Error": {"Code": "AccessDeniedException", "Message": "kms:CreateGrant denied"}}, "CreateRepository"
            )
        if self.front is not None:
            self.front.create_repository(name)
        return True


def test_an_aws_refusal_fails_its_item_and_the_job_goes_on(registries: Registries, s3_store: Store) -> None:
    hub = registries.front.host
    digest = seed(registries.hub_pusher(), "library/runner", "1", ["linux/amd64"])
    items = []
    for target in ("mirror/denied", "mirror/allowed"):
        item = WorkItem(f"{hub}/library/runner", "1", target, "1")
        items.append(
            {
                **item.to_dict(),
                "upstream_digest": digest,
                "upstream_media_type": "application/vnd.oci.image.manifest.v1+json",
                "recipe": None,
            }
        )
    job = {
        "run": "r",
        "batch": "00000",
        "kind": "copy",
        "target_registry": registries.ecr.host,
        "outcomes_key": "runs/r/outcomes/00000-copy.json",
        "items": items,
    }
    s3_store.put_json("runs/r/jobs/00000-copy.json", job)
    code = run_job(
        "s3://runs/runs/r/jobs/00000-copy.json",
        store_factory=lambda bucket: s3_store,
        ecr=DenyingEcr(registries.ecr),
        environ={},
    )
    assert code == 1
    outcomes = {o["target"]: o for o in s3_store.get_json("runs/r/outcomes/00000-copy.json")}
    assert outcomes["mirror/denied:1"]["outcome"] == "failed"
    assert "AWS:" in outcomes["mirror/denied:1"]["reason"]
    assert "AccessDeniedException" in outcomes["mirror/denied:1"]["reason"]
    assert outcomes["mirror/allowed:1"]["outcome"] == "copied"
    assert outcomes["mirror/allowed:1"]["target_digest"] == digest


def test_a_job_that_is_not_an_s3_uri_is_refused(s3_store: Store) -> None:
    assert run_job("runs/r/jobs/x.json", store_factory=lambda bucket: s3_store, ecr=DenyingEcr(), environ={}) == 2
