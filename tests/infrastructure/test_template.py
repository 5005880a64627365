"""The SAM template: valid, and wired to code that exists."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.aws.deploy import bucket_lifecycle, creation_template, load_template
from hubmirror.domain import keys, pullpolicy
from tests.infrastructure import retention

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template()


def test_sam_validate_lint_passes() -> None:
    sam = Path(sys.executable).parent / "sam"
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    result = subprocess.run(
        [str(sam), "validate", "--lint", "--template", str(ROOT / "template.yaml")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_function_handler_imports_from_the_code_uri() -> None:
    code_uri = TEMPLATE["Globals"]["Function"]["CodeUri"]
    assert code_uri == "functions/"
    functions = {k: v for k, v in TEMPLATE["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}
    assert set(functions) == {"PlanFunction", "CheckFunction", "RenderFunction", "ReportFunction"}
    for resource in functions.values():
        module, _, name = resource["Properties"]["Handler"].rpartition(".")
        assert callable(getattr(importlib.import_module(module), name))


def test_runtime_is_python313_the_buildspec_ships_with_the_code_and_the_allowlist_does_not() -> None:
    """The deployed stack reads its allowlist from its bucket: the package holds none."""
    assert TEMPLATE["Globals"]["Function"]["Runtime"] == "python3.13"
    assert not list((ROOT / "functions").rglob("allowlist.yaml"))
    assert (ROOT / "functions/hubmirror/runner/buildspec.yml").resolve() == (ROOT / "buildspec.yml").resolve()


def test_no_literal_account_region_or_arn() -> None:
    text = (ROOT / "template.yaml").read_text()
    assert "123456789012" not in text
    for region in ("us-east-1", "eu-west-1", "us-west-2"):
        assert region not in text
    assert "arn:aws:" not in text


def test_one_version_everywhere() -> None:
    """The package, the command's --version, the template's metadata and output, pyproject and the
    CHANGELOG's newest release name one version."""
    import tomllib

    from hubmirror import __version__

    assert TEMPLATE["Metadata"]["AWS::ServerlessRepo::Application"]["SemanticVersion"] == __version__
    assert TEMPLATE["Outputs"]["Version"]["Value"] == __version__
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"] == __version__
    newest = next(
        line
        for line in (ROOT / "CHANGELOG.md").read_text().splitlines()
        if line.startswith("## [") and not line.startswith("## [Unreleased]")  # changes not yet released
    )
    assert newest.startswith(f"## [{__version__}]")


# Every kind of key domain/keys.py lays out, one example each; a key function without an
# example here fails the test below, so a new kind of key comes with its retention.
_DIGEST = "sha256:" + "ab" * 32
KEY_EXAMPLES = {
    "run_key": keys.run_key("r1", "x.json"),
    "plan": keys.plan("r1"),
    "batches": keys.batches("r1"),
    "batch": keys.batch("r1", "00000"),
    "job": keys.job("r1", "00000", "copy"),
    "running": keys.running("r1", "00000", "copy"),
    "outcomes": keys.outcomes("r1", "00000", "copy"),
    "errors": keys.errors("r1", "00000", "copy"),
    "report": keys.report("r1"),
    "notices": keys.notices("r1", "00000"),
    "folder": keys.folder("r1", "outcomes") + "00000-copy.json",
    "ALLOWLIST": keys.ALLOWLIST,
    "RUN_LOCK": keys.RUN_LOCK,
    "allowlist_run": keys.allowlist_run("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"),
    "blob": keys.blob(_DIGEST),
    "blob claim": keys.blob(_DIGEST, ".claim"),
    "context": keys.context(_DIGEST),
    "refusal": keys.refusal(_DIGEST, None, "mirror/app"),
    "extras": keys.extras(_DIGEST, "mirror/app"),
    "runner_bundle": keys.runner_bundle(_DIGEST),
}


def test_every_kind_of_key_in_the_bucket_is_covered_by_a_lifecycle_rule_meant_for_it() -> None:
    public = {name for name, value in vars(keys).items() if inspect.isfunction(value) and not name.startswith("_")}
    assert public <= set(KEY_EXAMPLES), f"key functions without an example here: {public - set(KEY_EXAMPLES)}"
    rules = bucket_lifecycle(TEMPLATE, "ArtifactsBucket")
    assert [p for key in KEY_EXAMPLES.values() for p in retention.problems(rules, key)] == []


def test_run_retention_and_allowlist_history_are_the_stack_s_parameters() -> None:
    rules = bucket_lifecycle(TEMPLATE, "ArtifactsBucket", {"RunRetentionDays": "7", "AllowlistHistoryDays": "90"})
    assert retention.problems(rules, keys.plan("r1")) == [
        "runs/r1/plan.json (a run's documents): its current version expires after 7 days, not after 30-30 days"
    ]
    assert retention.problems(rules, keys.ALLOWLIST) == [
        "allowlist/allowlist.yaml (the allowlist and its history): replaced versions expire after 90 days, not after 365"
    ]


@pytest.mark.parametrize(
    "parameters",
    [
        {},
        {"PullOrganizationId": "o-a1b2c3d4e5"},
        {
            "PullOrganizationalUnitPaths": "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/*,o-a1b2c3d4e5/r-ab12/ou-ab12-22222222/*"
        },
        {"PullAccountIds": "111122223333,444455556666"},
        {
            "PullOrganizationId": "o-a1b2c3d4e5",
            "PullOrganizationalUnitPaths": "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/*",
            "PullAccountIds": "111122223333",
        },
    ],
    ids=["nobody", "organisation", "units", "accounts", "all-three"],
)
def test_the_creation_template_s_policy_is_the_statements_the_check_writes(parameters: dict[str, str]) -> None:
    """New repositories get their policy from the template (CloudFormation strings), older ones
    from the check (domain/pullpolicy.py): the two must say the same."""
    template = creation_template(TEMPLATE, "MirrorRepositoryTemplate", parameters)
    env = {
        "HUBMIRROR_PULL_ORGANIZATION_ID": parameters.get("PullOrganizationId", ""),
        "HUBMIRROR_PULL_ORGANIZATIONAL_UNIT_PATHS": parameters.get("PullOrganizationalUnitPaths", ""),
        "HUBMIRROR_PULL_ACCOUNT_IDS": parameters.get("PullAccountIds", ""),
    }
    expected = pullpolicy.statements(pullpolicy.Pullers.parse(*env.values()))
    found = json.loads(template["RepositoryPolicy"])["Statement"] if "RepositoryPolicy" in template else []
    assert found == expected
    globals_env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert set(env) <= set(globals_env)  # the check reads what the template sets


@pytest.mark.parametrize(
    "paths",
    [
        "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/*",
        "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/,o-a1b2c3d4e5/r-ab12/*",
        "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111",
        "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/*,o-a1b2c3d4e5/r-ab12",
        "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111*",
    ],
)
def test_cloudformation_and_the_check_agree_on_which_unit_paths_are_valid(paths: str) -> None:
    """A path CloudFormation takes but the check refuses would deploy a stack whose checks fail."""
    pattern = TEMPLATE["Parameters"]["PullOrganizationalUnitPaths"]["AllowedPattern"]
    try:
        pullpolicy.Pullers.parse("", paths, "")
        parsed = True
    except pullpolicy.PullersError:
        parsed = False
    assert bool(re.fullmatch(pattern, paths)) == parsed


def test_the_creation_template_makes_every_repository_under_the_prefix_on_push_and_on_replication() -> None:
    template = creation_template(TEMPLATE, "MirrorRepositoryTemplate", {"TargetPrefix": "team/mirror"})
    assert template["Prefix"] == "team/mirror"
    assert set(template["AppliedFor"]) == {"CREATE_ON_PUSH", "REPLICATION"}
    assert {"Key": "managed-by", "Value": "hubmirror"} in template["ResourceTags"]
    role = TEMPLATE["Resources"]["RepositoryCreationRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "ecr.amazonaws.com"}
