"""Metrics, logs and the dashboard agree: what the code emits is what the template shows.

The metric names come from the code itself (every ``add_metric`` call of the package, read
with ``ast``), never from a copied list, so a renamed metric fails here instead of leaving
an empty graph or an alarm that never fires.
"""

from __future__ import annotations

import ast
import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hubmirror import observability
from hubmirror.settings import Settings
from tests.cfn import ROOT, source
from tests.fakes import FakeContext, MemoryStore

PACKAGE = ROOT / "functions" / "hubmirror"
STATE_MACHINE_METRICS = {"ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut"}


def _literal_strings(node: ast.AST) -> list[str]:
    """The string values of a dict, list, tuple or set literal."""
    values = node.values if isinstance(node, ast.Dict) else getattr(node, "elts", [])
    return [v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str)]


def _loop_bindings(tree: ast.Module) -> dict[str, list[str]]:
    """``for k, name in NAMES.items()`` / ``for name in NAMES`` -> ``{"name": NAMES' values}``."""
    literals = {
        target.id: _literal_strings(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    bound: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.For):
            continue
        source, target = node.iter, node.target
        if isinstance(source, ast.Call) and isinstance(source.func, ast.Attribute):
            method, source = source.func.attr, source.func.value
            if method == "items" and isinstance(target, ast.Tuple):
                target = target.elts[1]
        if isinstance(source, ast.Name) and isinstance(target, ast.Name) and source.id in literals:
            bound[target.id] = literals[source.id]
    return bound


def emitted_metrics(package: Path = PACKAGE) -> dict[str, str]:
    """``{metric name: file:line}`` of every ``add_metric`` call in the package."""
    found: dict[str, str] = {}
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text())
        bindings = _loop_bindings(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr != "add_metric":
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            name = next((k.value for k in node.keywords if k.arg == "name"), node.args[0] if node.args else None)
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                found[name.value] = where
            elif isinstance(name, ast.Name) and name.id in bindings:
                found.update(dict.fromkeys(bindings[name.id], where))
            else:
                raise AssertionError(f"{where}: a metric name this test cannot read; use a literal or a literal table")
    return found


def dashboard() -> dict[str, Any]:
    body = source()["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    return dict(json.loads(re.sub(r"\$\{[^}]+\}", "1", body)))


def dashboard_metrics() -> Iterator[tuple[str, str, dict[str, str]]]:
    for widget in dashboard()["widgets"]:
        for entry in widget["properties"].get("metrics", []):
            names = [e for e in entry if isinstance(e, str)]
            assert not {".", "..."} & set(names), "spell each metric out"
            namespace, metric, *dims = names
            yield namespace, metric, dict(zip(dims[::2], dims[1::2], strict=True))


def test_the_package_emits_the_per_run_metrics_the_issue_names() -> None:
    emitted = set(emitted_metrics())
    wanted = {"ItemsChecked", "ItemsUnchanged", "ItemsCopied", "ItemsBuilt", "ItemsDeferred", "ItemsFailed"}
    assert wanted | {"RateLimitRemaining"} <= emitted


def test_the_dashboard_shows_every_emitted_metric_and_nothing_else() -> None:
    emitted = emitted_metrics()
    shown = {metric for namespace, metric, _ in dashboard_metrics() if namespace == observability.NAMESPACE}
    assert shown - set(emitted) == set(), "the dashboard shows metrics nothing emits"
    assert set(emitted) - shown == set(), "metrics emitted but not on the dashboard"


def test_the_dashboard_uses_the_namespace_and_dimension_powertools_writes() -> None:
    env = source()["Globals"]["Function"]["Environment"]["Variables"]
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == observability.NAMESPACE
    assert env["POWERTOOLS_SERVICE_NAME"] == observability.SERVICE
    for namespace, metric, dims in dashboard_metrics():
        if namespace == observability.NAMESPACE:
            assert dims == {"service": observability.SERVICE}, metric


def test_the_dashboard_shows_the_state_machine_executions() -> None:
    body = source()["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    shown = {metric for namespace, metric, _ in dashboard_metrics() if namespace == "AWS/States"}
    assert shown == STATE_MACHINE_METRICS
    assert body.count('"StateMachineArn", "${SyncStateMachine}"') == len(STATE_MACHINE_METRICS)


def test_the_alarm_watches_failed_and_timed_out_executions_and_notifies_the_report_topic() -> None:
    alarm = source()["Resources"]["ExecutionsFailedAlarm"]["Properties"]
    stats = {m["Id"]: m["MetricStat"]["Metric"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert {m["MetricName"] for m in stats.values()} == {"ExecutionsFailed", "ExecutionsTimedOut"}
    for metric in stats.values():
        assert metric["Namespace"] == "AWS/States"
        assert metric["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": "SyncStateMachine"}}]
    (expression,) = [m for m in alarm["Metrics"] if "Expression" in m]
    assert set(re.findall(r"\b[a-z]\w*\b(?=\s*,\s*0\))", expression["Expression"])) == set(stats)
    assert expression["ReturnData"] is True
    assert alarm["AlarmActions"] == [{"Ref": "ReportTopic"}]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)


def test_the_alarm_name_is_one_the_key_and_topic_policies_let_publish() -> None:
    """CloudWatch may publish to the encrypted topic only for alarms named ``STACK-*``."""
    resources = source()["Resources"]
    name = resources["ExecutionsFailedAlarm"]["Properties"]["AlarmName"]["Fn::Sub"]
    pattern = ":alarm:${AWS::StackName}-*"
    assert name.startswith("${AWS::StackName}-")
    key = resources["StackKey"]["Properties"]["KeyPolicy"]["Statement"]
    topic = resources["ReportTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    for statement in [*key, *topic]:
        if statement.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}:
            assert statement["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"].endswith(pattern)


# -- logs and metrics of a real handler ------------------------------------------------


@contextmanager
def captured_logs() -> Iterator[list[dict[str, Any]]]:
    """Every line the Powertools logger writes inside the block, parsed when it ends."""
    handler = observability.logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        handler.setStream(previous)
        lines.extend(json.loads(line) for line in buffer.getvalue().splitlines())


def test_report_lines_carry_the_execution_and_the_image(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hubmirror.handlers import report

    failure = {
        "key": "docker.io/library/nginx:1.27",
        "outcome": "failed",
        "reason": "boom",
        "target": "mirror/nginx:1.27",
    }
    store = MemoryStore({"runs/run-7/plan.json": {"items": [], "failures": [failure]}})
    monkeypatch.setattr(report, "store", lambda: store)
    monkeypatch.setattr(report, "settings", lambda: Settings(bucket="bucket", target_registry="target.example"))
    with captured_logs() as lines:
        summary = report.handler({"run": "run-7"}, FakeContext())  # type: ignore[arg-type]
    assert summary["failed"] == 1
    assert lines
    assert all(line["execution"] == "run-7" for line in lines)
    (about_image,) = [line for line in lines if "image" in line]
    assert (about_image["image"], about_image["level"]) == ("docker.io/library/nginx:1.27", "WARNING")
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    (blob,) = emf
    assert blob["execution"] == "run-7"
    assert blob["ItemsFailed"] == [1.0]
    names = {m["Name"] for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert names <= set(emitted_metrics())


def test_lines_of_the_package_modules_carry_the_execution_too() -> None:
    """Domain modules log with ``logging.getLogger(__name__)``: their lines go through the same formatter."""
    with captured_logs() as lines:
        observability.logger.append_keys(execution="run-8")
        try:
            logging.getLogger("hubmirror.steps.check").warning("check failed", extra={"image": "nginx:1.27"})
        finally:
            observability.logger.remove_keys(["execution"])
    (line,) = lines
    assert (line["execution"], line["image"], line["message"]) == ("run-8", "nginx:1.27", "check failed")
