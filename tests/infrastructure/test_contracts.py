"""Contracts between the files: what one file reads, another sets.

Each function is sent what its event type declares, and the state machine reads only what
its result type declares (the types are :mod:`hubmirror.steps.payloads`).

Each variable the CodeBuild job reads (the buildspec, and every module the runner imports)
must be set by its project in the template or by the state machine task that starts it;
each variable the functions' settings read must be set by the template. A name that
drifts on one side fails here, not in the middle of a deployed run.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cfn import ROOT, render, source
from tests.imports import MODULES, closure, imports, module_name
from tests.infrastructure.asl import DEFINITION, states

PACKAGE = ROOT / "functions" / "hubmirror"
BUILDSPEC = PACKAGE / "runner" / "buildspec.yml"
VARIABLE = re.compile(r"\bHUBMIRROR_[A-Z0-9_]+\b")
#: Read by the functions' settings with a safe default and set only by the local stack:
#: the functions read the allowlist shipped with them.
LOCAL_ONLY = {"HUBMIRROR_ALLOWLIST"}


def package_closure(start: Path) -> set[Path]:
    """The package's modules ``start`` imports, directly or not."""
    return {MODULES[m] for m in closure(module_name(start))}


def variables_read(paths: set[Path]) -> set[str]:
    return {name for path in paths for name in VARIABLE.findall(path.read_text())}


def buildspec_variables() -> set[str]:
    spec = yaml.safe_load(BUILDSPEC.read_text())
    commands = [c for phase in spec["phases"].values() for c in phase.get("commands", [])]
    return {m for c in commands for m in re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", c) if not m.startswith("CODEBUILD_")}


def set_for_project(project: str) -> set[str]:
    """Variables a build of ``project`` gets: the project's own, and the starting task's overrides."""
    resources = source()["Resources"]
    names = {v["Name"] for v in resources[project]["Properties"]["Environment"].get("EnvironmentVariables", [])}
    substitutions = resources["SyncStateMachine"]["Properties"]["DefinitionSubstitutions"]
    placeholder = next("${" + k + "}" for k, v in substitutions.items() if v == {"Ref": project})

    for _, task in states():
        parameters = task.get("Parameters")
        if isinstance(parameters, dict) and parameters.get("ProjectName") == placeholder:
            names |= {v["Name"] for v in parameters.get("EnvironmentVariablesOverride", [])}
    return names


def test_the_runner_reads_what_its_variables_are_called() -> None:
    runner = package_closure(PACKAGE / "runner" / "__main__.py")
    assert PACKAGE / "adapters" / "ecr.py" in runner
    assert "HUBMIRROR_UPSTREAM_SECRET" in variables_read(runner)
    assert buildspec_variables() == {"HUBMIRROR_JOB"}


def test_every_variable_a_build_reads_is_set_for_both_projects() -> None:
    needed = variables_read(package_closure(PACKAGE / "runner" / "__main__.py")) | buildspec_variables()
    for project in ("CopyProject", "BuildProject"):
        assert needed - set_for_project(project) == set(), project


def test_both_projects_set_the_same_variables_to_the_same_values() -> None:
    resources = source()["Resources"]
    copy, build = (
        resources[p]["Properties"]["Environment"]["EnvironmentVariables"] for p in ("CopyProject", "BuildProject")
    )
    assert copy == build


#: Settings only one function uses, set on that function alone (with a safe default elsewhere).
ONE_FUNCTION_ONLY = {"HUBMIRROR_CHECK_CONCURRENCY": ".check.handler", "HUBMIRROR_EVENT_BUS": ".report.handler"}


def test_every_variable_the_functions_settings_read_is_set_by_the_template() -> None:
    template = source()
    functions = [r for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::Function"]
    shared = set(template["Globals"]["Function"]["Environment"]["Variables"])
    read = variables_read({PACKAGE / "settings.py"}) - LOCAL_ONLY
    for function in functions:
        own = set(function["Properties"].get("Environment", {}).get("Variables", {}))
        assert read - shared - own - set(ONE_FUNCTION_ONLY) == set(), function["Properties"]["Handler"]
    for variable, handler in ONE_FUNCTION_ONLY.items():
        (function,) = [f for f in functions if f["Properties"]["Handler"].endswith(handler)]
        assert variable in function["Properties"]["Environment"]["Variables"]


def test_log_groups_named_in_the_key_policy_are_the_log_groups_of_the_stack() -> None:
    resources = source()["Resources"]
    (logs,) = [s for s in resources["StackKey"]["Properties"]["KeyPolicy"]["Statement"] if s["Sid"].startswith("Logs")]
    patterns = [
        render(p).rsplit(":log-group:", 1)[1]
        for p in logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    ]
    groups = [render(r["Properties"]["LogGroupName"]) for r in resources.values() if r["Type"] == "AWS::Logs::LogGroup"]
    for group in groups:
        assert any(re.fullmatch(re.escape(p).replace(r"\*", ".*"), group) for p in patterns), group
    for resource in resources.values():
        if resource["Type"] == "AWS::Logs::LogGroup":
            assert resource["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
            assert resource["Properties"]["KmsKeyId"] == {
                "Fn::If": ["CreateKey", {"Fn::GetAtt": ["StackKey", "Arn"]}, {"Ref": "KmsKeyArn"}]
            }


def test_each_function_and_build_may_write_to_the_log_group_it_logs_to() -> None:
    """A role without logs:PutLogEvents on its log group loses its logs silently."""
    resources = source()["Resources"]
    writers = [
        (p["Role"]["Fn::GetAtt"][0], p["LoggingConfig"]["LogGroup"]["Ref"])
        for p in (r["Properties"] for r in resources.values() if r["Type"] == "AWS::Serverless::Function")
    ]
    writers += [
        (p["ServiceRole"]["Fn::GetAtt"][0], p["LogsConfig"]["CloudWatchLogs"]["GroupName"]["Ref"])
        for p in (r["Properties"] for r in resources.values() if r["Type"] == "AWS::CodeBuild::Project")
    ]
    assert len(writers) == 6
    for role, group in writers:
        policies = [p["Fn::If"][1] if "Fn::If" in p else p for p in resources[role]["Properties"]["Policies"]]
        statements = [s for p in policies for s in p["PolicyDocument"]["Statement"]]
        writable = [render(s["Resource"]) for s in statements if "logs:PutLogEvents" in s.get("Action", [])]
        assert writable == [
            f"arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:${{{group}}}:log-stream:*"
        ], role


# -- the state machine and the functions' event and result types ---------------------------

PATH = re.compile(r"^\$\.([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*))?")


#: every state by name (names are unique in the whole definition, the Map's own included)
STATES = {name.rsplit("/", 1)[-1]: state for name, state in states()}


def _handler_types(state: dict[str, Any]) -> tuple[type, type]:
    """The event and return types of the function a Lambda task invokes, from the template's Handler."""
    placeholder = state["Parameters"]["FunctionName"]
    logical = re.fullmatch(r"\$\{(\w+)Arn\}", placeholder).group(1)  # type: ignore[union-attr]
    resources = source()["Resources"]
    attribute = resources["SyncStateMachine"]["Properties"]["DefinitionSubstitutions"][f"{logical}Arn"]["Fn::GetAtt"]
    function = (attribute.split(".") if isinstance(attribute, str) else attribute)[0]
    module, _, name = resources[function]["Properties"]["Handler"].rpartition(".")
    handler = inspect.unwrap(getattr(importlib.import_module(module), name))
    hints = typing.get_type_hints(handler)
    return hints["event"], hints["return"]


def _paths(value: Any) -> Iterator[str]:
    """Every ``$.a.b`` path a state reads, in its parameters and its ``*Path`` fields."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and (key.endswith(".$") or key.endswith("Path")):
                yield item
            else:
                yield from _paths(item)
    elif isinstance(value, list):
        for item in value:
            yield from _paths(item)


LAMBDA_TASKS = {name: s for name, s in STATES.items() if s.get("Resource") == "arn:aws:states:::lambda:invoke"}


@pytest.mark.parametrize("name", sorted(LAMBDA_TASKS))
def test_each_function_is_sent_what_its_event_type_declares(name: str) -> None:
    event, _ = _handler_types(LAMBDA_TASKS[name])
    sent = {key.removesuffix(".$") for key in LAMBDA_TASKS[name]["Parameters"]["Payload"]}
    assert event.__required_keys__ <= sent <= event.__required_keys__ | event.__optional_keys__, (name, sent)


@pytest.mark.parametrize("name", sorted(LAMBDA_TASKS))
def test_the_state_machine_reads_only_what_each_function_returns(name: str) -> None:
    _, result = _handler_types(LAMBDA_TASKS[name])
    selected = LAMBDA_TASKS[name]["ResultSelector"]
    for path in selected.values():
        if path == "$.Payload":
            continue
        field = re.fullmatch(r"\$\.Payload\.(\w+)", path).group(1)  # type: ignore[union-attr]
        assert field in result.__annotations__, (name, path)


def _read_from(states: dict[str, dict[str, Any]], skip: tuple[str, ...] = ()) -> set[tuple[str, str | None]]:
    found = set()
    for name, state in states.items():
        if name in skip:
            continue
        for path in _paths(
            {k: v for k, v in state.items() if k not in ("ResultPath", "ResultSelector", "ItemProcessor")}
        ):
            match = PATH.match(path)
            if match:
                found.add((match.group(1), match.group(2)))
    return found


def test_the_map_reads_what_the_plan_returns_and_hands_each_batch_what_the_check_is_sent() -> None:
    from hubmirror.steps.payloads import BatchEntry, CheckEvent, PlanResult

    sync = DEFINITION["States"]["Sync"]
    read = {top for top, _ in _read_from({"Sync": sync})}
    assert read <= set(PlanResult.__annotations__), read - set(PlanResult.__annotations__)
    assert sync["ItemSelector"]["batch.$"] == "$$.Map.Item.Value"  # one line of batches.json: a BatchEntry
    assert CheckEvent.__annotations__["batch"] is BatchEntry
    handed = {key.removesuffix(".$") for key in sync["ItemSelector"]}
    children = _read_from(sync["ItemProcessor"]["States"])
    written = {"check", "copy", "render", "build", "error"}  # ResultPaths of the child states
    assert {top for top, _ in children} <= handed | written


def test_after_the_report_the_state_machine_reads_only_what_the_report_returns() -> None:
    from hubmirror.steps.payloads import ReportResult

    after = {n: STATES[n] for n in ("Publish", "Any item failed?", "SyncFailed")}
    read = _read_from(after)
    assert {top for top, _ in read} == {"report"}
    assert {field for _, field in read} <= set(ReportResult.__annotations__)


def test_the_contract_checks_see_the_functions() -> None:
    """The walk finds each Lambda task and its handler's types (a wrong walk would pass everything)."""
    assert set(LAMBDA_TASKS) == {"Plan", "Check", "Render", "Report", "ReportRefusedPlan"}
    event, result = _handler_types(LAMBDA_TASKS["Check"])
    assert event.__name__ == "CheckEvent"
    assert result.__name__ == "CheckResult"
    assert ("report", "subject") in _read_from({"Publish": STATES["Publish"]})


def test_the_check_returns_exactly_the_fields_of_its_result_type() -> None:
    """``BatchResult`` becomes ``CheckResult`` field for field."""
    import dataclasses

    from hubmirror.steps.check import BatchResult
    from hubmirror.steps.payloads import CheckResult

    assert [f.name for f in dataclasses.fields(BatchResult)] == list(CheckResult.__annotations__)


#: What the job's image provides beside the standard library (tools.env's python3-boto3, with
#: its dependencies python3-botocore and python3-urllib3).
IMAGE_LIBRARIES = {"boto3", "botocore", "urllib3"}


def test_the_job_imports_nothing_its_image_does_not_install() -> None:
    import sys

    imported = {i.split(".")[0] for m in closure("hubmirror.runner.__main__") for i in imports(m)}
    third_party = (
        imported - set(sys.stdlib_module_names) - {"hubmirror", "__future__", "mypy_boto3_ecr", "mypy_boto3_s3"}
    )
    assert third_party <= IMAGE_LIBRARIES, third_party - IMAGE_LIBRARIES
    assert "python3-boto3" in (PACKAGE / "runner" / "tools.env").read_text()


@pytest.mark.parametrize("handler", ["plan", "check", "render", "report"])
def test_the_sample_events_are_what_the_state_machine_sends(handler: str) -> None:
    """``events/<function>*.json`` (for ``sam local invoke`` and the console's test events) keep to
    the function's event type: every required key, and no key the state machine never sends."""
    module = importlib.import_module(f"hubmirror.handlers.{handler}")
    event = typing.get_type_hints(inspect.unwrap(module.handler))["event"]
    samples = sorted((ROOT / "events").glob(f"{handler}*.json"))
    assert samples, handler
    for sample in samples:
        keys = set(json.loads(sample.read_text()))
        assert event.__required_keys__ <= keys <= event.__required_keys__ | event.__optional_keys__, sample.name
