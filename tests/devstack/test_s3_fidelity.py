"""moto's S3 made as AWS's where many copiers share the run's bucket: a GET under way is not cut
short by a PUT or DELETE of its object (``devstack.aws.s3objects``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends

from devstack.aws import s3objects

#: pure: no network, as in the unit tests
pytestmark = pytest.mark.usefixtures("no_network")


@pytest.fixture
def s3() -> Iterator[Any]:
    s3objects.install()
    try:
        with mock_aws():
            client = boto3.client("s3", region_name="us-east-1")
            client.create_bucket(Bucket="runs")
            yield client
    finally:
        s3objects.uninstall()


def _found(key: str) -> Any:
    """The object as a GET holds it once it has looked the key up, before it reads the bytes."""
    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_object("runs", key)


def test_a_get_that_found_an_object_reads_it_whole_though_it_is_overwritten_meanwhile(s3: Any) -> None:
    """Without the extension moto closes the object's bytes on the overwrite, and the GET
    under way fails with ``ValueError: I/O operation on closed file``."""
    s3.put_object(Bucket="runs", Key="claims/sha256-a", Body=b"first")
    found = _found("claims/sha256-a")
    s3.put_object(Bucket="runs", Key="claims/sha256-a", Body=b"second")
    assert found.value == b"first"
    assert s3.get_object(Bucket="runs", Key="claims/sha256-a")["Body"].read() == b"second"


def test_a_get_that_found_an_object_reads_it_whole_though_it_is_deleted_meanwhile(s3: Any) -> None:
    s3.put_object(Bucket="runs", Key="claims/sha256-b", Body=b"claimed")
    found = _found("claims/sha256-b")
    s3.delete_object(Bucket="runs", Key="claims/sha256-b")
    assert found.value == b"claimed"
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket="runs", Key="claims/sha256-b")


def test_a_head_that_loses_its_object_to_a_delete_finds_no_object(s3: Any) -> None:
    """moto looks whether the key is there, then reads it: a DELETE between the two made the
    HEAD (or GET) fail with ``KeyError``, a 500 from the server, where S3 answers 404."""
    bucket = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_bucket("runs")

    class DeletedOnLook(type(bucket.keys)):  # type: ignore[misc]
        def __contains__(self, key: object) -> bool:
            there = bool(super().__contains__(key))
            if there:
                self.pop(key)  # the DELETE lands just after the look
            return there

    bucket.keys = DeletedOnLook()
    s3.put_object(Bucket="runs", Key="claims/sha256-c", Body=b"claimed")
    with pytest.raises(s3.exceptions.ClientError, match="404"):
        s3.head_object(Bucket="runs", Key="claims/sha256-c")
