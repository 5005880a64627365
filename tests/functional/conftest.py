"""Real registries on 127.0.0.1 for functional tests: the hub (token auth, front) and an "ECR" (front).

ECR wants a repository created before a push: a test creates the ones it pushes to, with
``registries.ecr.create_repository`` or, under moto (``s3_store``), with ``CreateRepository``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from devstack.aws import s3objects
from devstack.content.images import Pusher
from devstack.registries.ecrfront import EcrFront
from devstack.registries.hubfront import HubFront
from devstack.registries.registry import BasicAuth, Registry
from devstack.stack import ECR_PASSWORD, ECR_USER, moto_repository
from hubmirror.adapters.s3 import Store


@dataclass
class Registries:
    front: HubFront
    hub: Registry
    ecr: EcrFront

    def hub_pusher(self) -> Pusher:
        return Pusher(self.front.host, *self.front.admin)

    def ecr_pusher(self) -> Pusher:
        return Pusher(self.ecr.host, ECR_USER, ECR_PASSWORD)


@pytest.fixture(scope="module")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registries]:
    workdir = Path(tmp_path_factory.mktemp("registries"))
    front = HubFront(workdir / "hub")
    hub = Registry(workdir / "hub", auth=front.token_auth()).start()
    front.start(hub.host)
    ecr_backend = Registry(workdir / "ecr", auth=BasicAuth(ECR_USER, ECR_PASSWORD)).start()
    ecr = EcrFront(workdir / "ecr")
    # the stack's creation template: a push under mirror/ creates its repository (create on push)
    ecr.templates = [{"Prefix": "mirror", "AppliedFor": ["CREATE_ON_PUSH", "REPLICATION"]}]
    created = ecr.repositories
    ecr.repositories = lambda name: created(name) or moto_repository(name)  # CreateRepository under mock_aws
    ecr.start(ecr_backend.host)
    try:
        yield Registries(front, hub, ecr)
    finally:
        front.stop()
        hub.stop()
        ecr.stop()
        ecr_backend.stop()


@pytest.fixture
def s3_store() -> Iterator[Store]:
    """A bucket in moto (in process), as the run's store; GETs racing a PUT or DELETE of their
    object end as on S3 (``devstack.aws.s3objects``)."""
    s3objects.install()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="runs")
        yield Store("runs", client=s3)


@pytest.fixture
def front(registries: Registries) -> Iterator[HubFront]:
    registries.front.reset_counts()
    registries.front.set_budget(None)
    registries.front.faults.clear()
    yield registries.front
    registries.front.faults.clear()


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test credentials and region for boto3 under ``mock_aws`` (and no endpoint of a running stack)."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
