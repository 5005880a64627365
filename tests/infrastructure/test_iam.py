"""Everything the stack grants, compared with a reviewed table (``iam_expected.yaml``).

The template is first translated by the SAM translator, so what SAM adds on its own (a
function's default role with ``AWSLambdaBasicExecutionRole``, an event's role, a policy
template such as ``S3CrudPolicy``) is in the list too. A widening - a new action, a resource
that grows, a condition that goes away, a new principal - fails the test until the table is
changed in the same pull request, where a reviewer sees it. Regenerate the table with
``.venv/bin/python -m tests.infrastructure.test_iam > tests/infrastructure/iam_expected.yaml`` and read the diff.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.cfn import TEMPLATE, render, translate, translated

EXPECTED = Path(__file__).with_name("iam_expected.yaml")
NO_VALUE = {"Ref": "AWS::NoValue"}
HEADER = """\
# Every permission template.yaml grants, after the SAM transform: identity policies of each
# role (who may assume it, then each action on each resource), and the resource policies of
# the bucket, the topic and the key. tests/infrastructure/test_iam.py compares this table with the
# template: a change of what the stack may do shows here, in review.
# Regenerate: .venv/bin/python -m tests.infrastructure.test_iam > tests/infrastructure/iam_expected.yaml
"""


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _alternatives(statements: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Statements with the template condition they depend on (``!If [Cond, stmt, NoValue]``)."""
    for statement in _listed(statements):
        if isinstance(statement, dict) and set(statement) == {"Fn::If"}:
            condition, yes, no = statement["Fn::If"]
            if yes != NO_VALUE:
                yield f"if {condition}: ", yes
            if no != NO_VALUE:
                yield f"unless {condition}: ", no
        else:
            yield "", statement


def _principals(principal: Any) -> list[str]:
    if principal == "*":
        return ["*"]
    return [render(p) for kind in sorted(principal) for p in _listed(principal[kind])]


def _tests(condition: dict[str, Any]) -> str:
    resolved = {
        op: {k: [render(x) for x in v] if isinstance(v, list) else render(v) for k, v in tests.items()}
        for op, tests in condition.items()
    }
    return json.dumps(resolved, sort_keys=True, separators=(",", ":"))


def _condition(statement: dict[str, Any]) -> str:
    if "Condition" not in statement:
        return ""
    condition = statement["Condition"]
    if set(condition) == {"Fn::If"}:  # a condition that depends on a template condition
        name, yes, no = condition["Fn::If"]
        return f" when (if {name}: {_tests(yes)} else {_tests(no)})"
    return " when " + _tests(condition)


def statement_lines(document: dict[str, Any], *, with_principal: bool, with_resource: bool = True) -> list[str]:
    """One line per (principal, action, resource) of a policy document."""
    lines = []
    for prefix, statement in _alternatives(document["Statement"]):
        forbidden = {"NotAction", "NotResource", "NotPrincipal"} & set(statement)
        assert not forbidden, f"{sorted(forbidden)} grant by exclusion; list what is granted instead"
        principals = _principals(statement["Principal"]) if with_principal else [""]
        resources = [render(r) for r in _listed(statement["Resource"])] if with_resource else [""]
        for principal in principals:
            for action in _listed(statement["Action"]):
                for resource in resources:
                    words = [statement["Effect"], principal, action, resource]
                    lines.append(prefix + " ".join(w for w in words if w) + _condition(statement))
    return lines


def grants(template: dict[str, Any]) -> dict[str, list[str]]:
    """``{logical id: sorted lines}`` for every role and resource policy of a CloudFormation template."""
    table: dict[str, list[str]] = {}
    for logical, resource in template["Resources"].items():
        kind, props = resource["Type"], resource.get("Properties", {})
        lines: list[str] = []
        if kind == "AWS::IAM::Role":
            lines += [
                "assumed: " + line
                for line in statement_lines(props["AssumeRolePolicyDocument"], with_principal=True, with_resource=False)
            ]
            lines += [f"managed policy {render(arn)}" for arn in props.get("ManagedPolicyArns", [])]
            for prefix, policy in _alternatives(props.get("Policies", [])):  # a policy may be conditional too
                lines += [prefix + line for line in statement_lines(policy["PolicyDocument"], with_principal=False)]
        elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            lines += statement_lines(props["PolicyDocument"], with_principal=False)
        elif kind in ("AWS::S3::BucketPolicy", "AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy"):
            lines += statement_lines(props["PolicyDocument"], with_principal=True)
        elif kind == "AWS::KMS::Key":
            lines += statement_lines(props["KeyPolicy"], with_principal=True)
        elif kind == "AWS::Lambda::Permission":
            source = f" from {render(props['SourceArn'])}" if "SourceArn" in props else ""
            lines.append(
                f"Allow {render(props['Principal'])} {props['Action']} {render(props['FunctionName'])}{source}"
            )
        if lines:
            condition = f"if {resource['Condition']}: " if "Condition" in resource else ""
            table[logical] = sorted(condition + line for line in lines)
    return dict(sorted(table.items()))


def dump(table: dict[str, list[str]]) -> str:
    return HEADER + yaml.safe_dump(table, sort_keys=True, width=1000, default_flow_style=False)


def test_the_template_grants_exactly_the_reviewed_table() -> None:
    actual = grants(translated())
    expected = yaml.safe_load(EXPECTED.read_text())
    widened = {k: sorted(set(v) - set(expected.get(k, []))) for k, v in actual.items()}
    narrowed = {k: sorted(set(v) - set(actual.get(k, []))) for k, v in expected.items()}
    widened = {k: v for k, v in widened.items() if v}
    narrowed = {k: v for k, v in narrowed.items() if v}
    assert (widened, narrowed) == ({}, {}), (
        "template.yaml grants differ from tests/infrastructure/iam_expected.yaml\n"
        f"granted, not in the table: {json.dumps(widened, indent=1)}\n"
        f"in the table, not granted: {json.dumps(narrowed, indent=1)}"
    )


def test_the_table_sees_what_sam_adds_on_its_own() -> None:
    """A function without a role of its own gets SAM's role: the walk must show it."""
    template = {
        "Transform": "AWS::Serverless-2016-10-31",
        "Resources": {
            "Fn": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "Handler": "x.handler",
                    "Runtime": "python3.13",
                    "CodeUri": "functions/",
                    "Policies": [{"S3ReadPolicy": {"BucketName": "some-bucket"}}],
                },
            }
        },
    }
    lines = grants(translate(template))["FnRole"]
    assert "managed policy arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole" in lines
    assert "Allow s3:GetObject arn:${AWS::Partition}:s3:::some-bucket/*" in lines
    assert "assumed: Allow lambda.amazonaws.com sts:AssumeRole" in lines


def test_no_role_has_a_managed_policy_or_a_wildcard_action() -> None:
    resources = translated()["Resources"]
    roles = {k: v for k, v in resources.items() if v["Type"] == "AWS::IAM::Role"}
    for logical, lines in grants({"Resources": roles}).items():
        assert not [line for line in lines if line.startswith("managed policy")], logical
        actions = [line.split()[1] for line in lines if line.startswith("Allow")]
        assert not [a for a in actions if a.endswith(":*") or a == "*"], logical


def test_every_wildcard_resource_says_why_next_to_it() -> None:
    lines = TEMPLATE.read_text().splitlines()
    bare = [n for n, line in enumerate(lines, 1) if re.search(r'Resource: "\*"\s*$', line)]
    assert bare == [], f'template.yaml lines with Resource: "*" and no comment saying why: {bare}'


if __name__ == "__main__":
    print(dump(grants(translated())), end="")
