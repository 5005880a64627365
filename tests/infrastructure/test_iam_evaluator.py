"""The local stack's IAM evaluator (devstack.iam): actions, resources and conditions all count."""

from __future__ import annotations

import json

from devstack.iam import Policies, Request, describe

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
