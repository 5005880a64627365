"""The files in examples/ do what examples/README.md says they do.

The GitHub Actions workflow is checked against the workflow JSON Schema GitHub's editors use
(SchemaStore's, copied to tests/unit/data; its README names the commit), and against the
facts a reviewer relies on: a pull request gets ``hubmirror validate`` and a markdown
``hubmirror plan``, a push to main gets ``hubmirror push``, and the jobs that assume the AWS
role may ask for an OIDC token. The starter allowlist passes hubmirror's own validation.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from hubmirror.allowlist.rules import parse_allowlist
from hubmirror.allowlist.schema import allowlist_schema

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
WORKFLOW = EXAMPLES / "github-actions" / "allowlist.yml"
ALLOWLIST = EXAMPLES / "allowlist.yaml"
WORKFLOW_SCHEMA = Path(__file__).resolve().parent / "data" / "github-workflow.schema.json"


def load_workflow() -> dict[str, Any]:
    """The workflow as GitHub reads it.

    PyYAML follows YAML 1.1, where the bare key ``on`` is the boolean true; GitHub reads it
    as the string "on", and so does the schema.
    """
    document = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(document, dict)
    if True in document:
        document["on"] = document.pop(True)
    return document


def workflow_errors(document: dict[str, Any]) -> list[str]:
    """Every schema error of a workflow document, with the path where it is.

    A job or a step is one of several shapes (oneOf), so an error there says only "not valid
    under any of the given schemas"; the errors under it (its context) say which key is wrong.
    """
    schema = json.loads(WORKFLOW_SCHEMA.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)

    def leaves(errors: Iterable[jsonschema.ValidationError]) -> Iterator[jsonschema.ValidationError]:
        for error in errors:
            if error.context:
                yield from leaves(error.context)
            else:
                yield error

    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
        for error in leaves(validator_class(schema).iter_errors(document))
    ]


def runs(job: dict[str, Any]) -> list[str]:
    """The shell scripts of a job's steps, in order."""
    return [step["run"] for step in job["steps"] if "run" in step]


def permissions(workflow: dict[str, Any], job: dict[str, Any]) -> dict[str, str]:
    """A job's permissions: its own when it names them (they replace the workflow's), else the workflow's."""
    return job.get("permissions", workflow.get("permissions", {}))


def assumes_role(job: dict[str, Any]) -> bool:
    return any(step.get("uses", "").startswith("aws-actions/configure-aws-credentials@") for step in job["steps"])


# -- the workflow against GitHub's schema -------------------------------------------------


def test_the_schema_is_the_draft_it_names() -> None:
    schema = json.loads(WORKFLOW_SCHEMA.read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert jsonschema.validators.validator_for(schema) is jsonschema.Draft7Validator


def test_workflow_matches_the_github_workflow_schema() -> None:
    assert workflow_errors(load_workflow()) == []


def misspell_runs_on(workflow: dict[str, Any]) -> None:
    job = workflow["jobs"]["plan"]
    job["runs-onn"] = job.pop("runs-on")


def add_unknown_permission(workflow: dict[str, Any]) -> None:
    workflow["jobs"]["push"]["permissions"]["id-tokens"] = "write"


def grant_admin(workflow: dict[str, Any]) -> None:
    workflow["permissions"]["contents"] = "admin"


def add_empty_step(workflow: dict[str, Any]) -> None:
    workflow["jobs"]["push"]["steps"].append({"name": "does nothing"})


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (misspell_runs_on, "jobs/plan: Additional properties are not allowed ('runs-onn' was unexpected)"),
        (
            add_unknown_permission,
            "jobs/push/permissions: Additional properties are not allowed ('id-tokens' was unexpected)",
        ),
        (grant_admin, "permissions/contents: 'admin' is not one of ['read', 'write', 'none']"),
        (add_empty_step, "jobs/push/steps/5: 'run' is a required property"),
    ],
)
def test_the_schema_check_refuses_a_broken_workflow(change: Callable[[dict[str, Any]], None], expected: str) -> None:
    broken = copy.deepcopy(load_workflow())
    change(broken)
    assert expected in workflow_errors(broken)


def test_the_on_key_is_read_as_github_reads_it() -> None:
    workflow = load_workflow()
    assert True not in workflow
    assert set(workflow["on"]) == {"pull_request", "push"}


# -- what the workflow does ---------------------------------------------------------------


def test_pull_requests_that_touch_the_allowlist_get_a_plan() -> None:
    workflow = load_workflow()
    assert "allowlist.yaml" in workflow["on"]["pull_request"]["paths"]
    job = workflow["jobs"]["plan"]
    assert "pull_request" in job["if"]
    scripts = runs(job)
    validate = next(i for i, s in enumerate(scripts) if "hubmirror validate allowlist.yaml" in s)
    plan = next(i for i, s in enumerate(scripts) if "hubmirror plan allowlist.yaml" in s)
    comment = next(i for i, s in enumerate(scripts) if "gh pr comment" in s)
    assert validate < plan < comment
    assert "--format markdown" in scripts[plan]
    assert "> plan.md" in scripts[plan]
    assert "--body-file plan.md" in scripts[comment]
    assert not any("hubmirror push" in s for s in scripts), "a pull request must not change the deployed allowlist"


def test_a_plan_with_failing_entries_is_still_commented_then_fails_the_job() -> None:
    steps = load_workflow()["jobs"]["plan"]["steps"]
    names = [step.get("id") for step in steps]
    plan = steps[names.index("plan")]
    assert plan["continue-on-error"] is True
    after = steps[names.index("plan") + 1 :]
    comment = next(step for step in after if "gh pr comment" in step.get("run", ""))
    assert "if" not in comment, "the comment step runs whenever the plan ran"
    assert comment["env"]["GH_TOKEN"] == "${{ github.token }}"
    last = steps[-1]
    assert last["if"] == "steps.plan.outcome == 'failure'"
    assert "exit 1" in last["run"]


def test_a_merge_to_main_pushes_the_allowlist() -> None:
    workflow = load_workflow()
    assert workflow["on"]["push"]["branches"] == ["main"]
    assert workflow["on"]["push"]["paths"] == ["allowlist.yaml"]
    job = workflow["jobs"]["push"]
    assert job["if"] == "github.event_name == 'push'"
    scripts = runs(job)
    validate = next(i for i, s in enumerate(scripts) if "hubmirror validate allowlist.yaml" in s)
    push = next(i for i, s in enumerate(scripts) if "hubmirror push allowlist.yaml" in s)
    assert validate < push
    assert '--stack "$STACK"' in scripts[push]
    assert job["concurrency"]["cancel-in-progress"] is False, "a push under way is never cancelled"


def test_both_jobs_assume_the_role_through_oidc() -> None:
    workflow = load_workflow()
    assert workflow["env"]["STACK"] == "${{ vars.HUBMIRROR_STACK || 'hubmirror' }}"
    for name, job in workflow["jobs"].items():
        assert assumes_role(job), name
        granted = permissions(workflow, job)
        assert granted["id-token"] == "write", name
        assert granted["contents"] == "read", name
        credentials = next(
            s for s in job["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")
        )
        assert credentials["uses"] == "aws-actions/configure-aws-credentials@v4"
        assert credentials["with"] == {
            "role-to-assume": "${{ vars.HUBMIRROR_ROLE_ARN }}",
            "aws-region": "${{ vars.AWS_REGION }}",
        }
    assert permissions(workflow, workflow["jobs"]["plan"])["pull-requests"] == "write"
    assert "pull-requests" not in permissions(workflow, workflow["jobs"]["push"])
    assert workflow["permissions"] == {"contents": "read"}


def test_both_jobs_install_the_same_release() -> None:
    installs = {
        name: [s for s in runs(job) if s.startswith("pipx install")] for name, job in load_workflow()["jobs"].items()
    }
    assert installs == {name: ['pipx install "git+https://github.com/OWNER/hubmirror@v0.3.0"'] for name in installs}


# -- the starter allowlist ----------------------------------------------------------------


def test_the_starter_allowlist_passes_validation() -> None:
    allowlist = parse_allowlist(ALLOWLIST.read_bytes(), source=str(ALLOWLIST))
    assert 2 <= len(allowlist.entries) <= 3


def test_the_starter_allowlist_matches_the_schema_it_names() -> None:
    text = ALLOWLIST.read_text()
    assert text.splitlines()[0] == "# yaml-language-server: $schema=./allowlist.schema.json"
    assert "hubmirror schema > allowlist.schema.json" in text
    jsonschema.validate(yaml.safe_load(text), allowlist_schema())
