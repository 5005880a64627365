"""The local stack's IAM evaluator (devstack.aws.iam): actions, resources and conditions all count."""

from __future__ import annotations

import json

import pytest

from devstack.aws.iam import Policies, Request, describe

#: pure: no network, as in the unit tests
pytestmark = pytest.mark.usefixtures("no_network")

BUCKET = "arn:aws:s3:::b"
ROLE = [
    {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": f"{BUCKET}/runs/*/jobs/*"},
    {
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": BUCKET,
        "Condition": {"StringLike": {"s3:prefix": "runs/*"}},
    },
    {"Effect": "Allow", "Action": ["ecr:*"], "Resource": "arn:aws:ecr:us-east-1:123456789012:repository/mirror/*"},
]
DENY_HTTP = {
    "Effect": "Deny",
    "Action": "s3:*",
    "Resource": f"{BUCKET}/*",
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}


def test_an_action_is_allowed_only_on_the_resources_its_statement_names() -> None:
    policies = Policies({"R": ROLE}, [DENY_HTTP])
    assert policies.evaluate("R", Request("s3", "s3:GetObject", f"{BUCKET}/runs/r/jobs/x.json"))[0]
    allowed, why = policies.evaluate("R", Request("s3", "s3:GetObject", f"{BUCKET}/runs/r/plan.json"))
    assert not allowed
    assert why == "because no identity-based policy allows the s3:GetObject action"
    assert not policies.evaluate("R", Request("s3", "s3:PutObject", f"{BUCKET}/runs/r/jobs/x.json"))[0]


def test_conditions_are_evaluated() -> None:
    policies = Policies({"R": ROLE}, [])
    assert policies.evaluate("R", Request("s3", "s3:ListBucket", BUCKET, {"s3:prefix": "runs/r/"}))[0]
    assert not policies.evaluate("R", Request("s3", "s3:ListBucket", BUCKET, {"s3:prefix": "blobs/"}))[0]
    assert not policies.evaluate("R", Request("s3", "s3:ListBucket", BUCKET))[0]  # no prefix: no match


def test_an_explicit_deny_wins() -> None:
    deny = {**DENY_HTTP, "Condition": {"Bool": {"aws:SecureTransport": "true"}}}
    policies = Policies({"R": ROLE}, [deny])
    request = Request("s3", "s3:GetObject", f"{BUCKET}/runs/r/jobs/x.json", {"aws:SecureTransport": "true"})
    assert policies.evaluate("R", request) == (False, "with an explicit deny")


def test_requests_are_read_as_iam_reads_them() -> None:
    head = describe("s3", "HEAD", path="/b/runner/abc.zip", query="", headers={}, body=b"")
    assert (head.action, head.resource, head.s3_object) == (
        "s3:GetObject",
        f"{BUCKET}/runner/abc.zip",
        ("b", "runner/abc.zip"),
    )
    listing = describe("s3", "GET", path="/b", query="list-type=2&prefix=runs%2Fr%2F", headers={}, body=b"")
    assert (listing.action, listing.resource, dict(listing.context)) == (
        "s3:ListBucket",
        BUCKET,
        {"s3:prefix": "runs/r/"},
    )
    create = describe(
        "ecr",
        "POST",
        path="/",
        query="",
        headers={"X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.CreateRepository"},
        body=json.dumps({"repositoryName": "mirror/nginx"}).encode(),
    )
    assert (create.action, create.resource) == (
        "ecr:CreateRepository",
        "arn:aws:ecr:us-east-1:123456789012:repository/mirror/nginx",
    )
    invoke = describe(
        "lambda", "POST", path="/2015-03-31/functions/hubmirror-Check/invocations", query="", headers={}, body=b"{}"
    )
    assert invoke.resource == "arn:aws:lambda:us-east-1:123456789012:function:hubmirror-Check"


WRITERS_ONLY = {
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:PutObject",
    "Resource": f"{BUCKET}/allowlist/*",
    "Condition": {
        "ArnNotLike": {"aws:PrincipalArn": ["arn:aws:iam::123456789012:role/team-ci"]},
        "StringNotEquals": {"aws:PrincipalTag/hubmirror-allowlist-writer": "true"},
    },
}
NAMES_ITS_WRITER = {
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:PutObject",
    "Resource": f"{BUCKET}/allowlist/allowlist.yaml",
    "Condition": {"StringNotEquals": {"s3:RequestObjectTag/hubmirror-writer": "${aws:userid}"}},
}
ANYTHING = [{"Effect": "Allow", "Action": "*", "Resource": "*"}]


def test_a_bucket_policy_names_its_writers_by_arn_or_tag_and_holds_the_writer_tag_to_the_caller() -> None:
    from devstack.aws.iam import user_id

    policies = Policies({"team-ci": ANYTHING, "admin": ANYTHING, "bot": ANYTHING}, [WRITERS_ONLY, NAMES_ITS_WRITER])
    policies.tags["bot"] = {"hubmirror-allowlist-writer": "true"}

    def put(role: str, writer: str | None) -> bool:
        header = {"X-Amz-Tagging": f"hubmirror-writer={writer}"} if writer else {}
        request = describe("s3", "PUT", path="/b/allowlist/allowlist.yaml", query="", headers=header, body=b"")
        return policies.evaluate(role, request)[0]

    assert put("team-ci", user_id("team-ci"))  # named by ARN, tagged with itself
    assert put("bot", user_id("bot"))  # carries the writer tag
    assert not put("admin", user_id("admin"))  # may do anything by its own IAM, but is not a writer
    assert not put("team-ci", user_id("bot"))  # a writer naming another
    assert not put("team-ci", None)  # or none


def test_tagging_and_version_requests_are_read_as_iam_reads_them() -> None:
    tags = describe(
        "s3", "GET", path="/b/allowlist/allowlist.yaml", query="tagging=&versionId=v1", headers={}, body=b""
    )
    assert tags.action == "s3:GetObjectVersionTagging"
    retag = describe("s3", "PUT", path="/b/allowlist/allowlist.yaml", query="tagging=", headers={}, body=b"")
    assert retag.action == "s3:PutObjectTagging"
    gone = describe("s3", "DELETE", path="/b/allowlist/allowlist.yaml", query="versionId=v1", headers={}, body=b"")
    assert gone.action == "s3:DeleteObjectVersion"
