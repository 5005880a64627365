"""The state machine definition: linted, wired to the template, retried and caught as agreed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devstack.aws.deploy import load_template, render_definition
from tests.infrastructure.asl import ASL, DEFINITION, states

ROOT = Path(__file__).resolve().parents[2]
TRANSIENT_LAMBDA_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
# statelint 3.1 lags the language in two places the definition needs:
# - ItemReader.ReaderConfig.InputType, which AWS documents for JSON item files
#   (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html);
# - ToleratedFailurePercentage as a decimal: the service models it as a Float (see
#   DescribeMapRun), and moto's ASL grammar accepts only the decimal form.
KNOWN_STATELINT_GAPS = (
    'Field "InputType" not allowed in State Machine.States.Sync.ItemReader.ReaderConfig',
    "State Machine.States.Sync.ToleratedFailurePercentage is 100.0 but should be an Integer",
)


def _as_json(tmp_path: Path) -> Path:
    """The definition as written, in JSON (the validators read JSON)."""
    path = tmp_path / "hubmirror.asl.json"
    path.write_text(json.dumps(DEFINITION))
    return path


def test_statelint_finds_nothing_but_its_known_gap(tmp_path: Path) -> None:
    statelint = Path(sys.executable).parent / "statelint"
    written = _as_json(tmp_path)
    result = subprocess.run([str(statelint), "--ignore=URI", str(written)], capture_output=True, text=True, check=False)
    problems = [line.strip() for line in result.stdout.splitlines()[1:] if line.strip()]
    assert [p for p in problems if p not in KNOWN_STATELINT_GAPS] == []


ASL_VALIDATOR = ROOT / "tools" / "asl" / "node_modules" / ".bin" / "asl-validator"


def _as_deployed() -> str:
    """The definition with its substitutions filled in the way CloudFormation fills them."""

    def value(name: str) -> str:
        if name.endswith("Arn"):
            service = "lambda" if "Function" in name else "sns" if "Topic" in name else "s3"
            return f"arn:aws:{service}:us-east-1:123456789012:{name.removesuffix('Arn').lower()}"
        return name.lower()

    names = set(re.findall(r"\$\{(\w+)\}", ASL.read_text()))
    return render_definition(ASL, {name: value(name) for name in names})


def test_a_second_validator_accepts_the_definition_as_written_and_as_deployed(tmp_path: Path) -> None:
    """asl-validator (npm) checks what statelint does not; both must accept what AWS accepts."""
    deployed = tmp_path / "deployed.asl.json"
    deployed.write_text(_as_deployed())
    for path in (_as_json(tmp_path), deployed):
        result = subprocess.run(
            [str(ASL_VALIDATOR), "--json-path", str(path)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_placeholder_has_a_substitution_and_every_substitution_is_used() -> None:
    placeholders = set(re.findall(r"\$\{(\w+)\}", ASL.read_text()))
    machine = load_template()["Resources"]["SyncStateMachine"]["Properties"]
    assert placeholders == set(machine["DefinitionSubstitutions"])
    assert machine["DefinitionUri"] == "statemachine/hubmirror.asl.yaml"


def test_every_task_has_a_timeout() -> None:
    missing = [name for name, s in states() if s["Type"] == "Task" and "TimeoutSeconds" not in s]
    assert missing == []


def test_every_lambda_task_retries_the_transient_lambda_errors() -> None:
    for name, state in states():
        if state.get("Resource") == "arn:aws:states:::lambda:invoke":
            retried = {e for r in state.get("Retry", []) for e in r["ErrorEquals"]}
            assert retried >= TRANSIENT_LAMBDA_ERRORS, name


def test_nothing_retries_programming_errors() -> None:
    for name, state in states():
        for retrier in state.get("Retry", []):
            assert not {"States.ALL", "States.TaskFailed"} & set(retrier["ErrorEquals"]), name


def test_every_retrier_and_catcher_says_why() -> None:
    for name, state in states():
        for rule in [*state.get("Retry", []), *state.get("Catch", [])]:
            assert rule.get("Comment"), name


def test_every_step_of_a_batch_is_caught_so_items_reach_the_report() -> None:
    sync = DEFINITION["States"]["Sync"]["ItemProcessor"]["States"]
    for name, state in sync.items():
        if state["Type"] == "Task" and not name.startswith("Record"):
            assert any("States.ALL" in c["ErrorEquals"] for c in state.get("Catch", [])), name


def test_error_names_are_aws_errors_or_exceptions_of_the_package() -> None:
    import hubmirror.allowlist.rules
    import hubmirror.domain.items
    import hubmirror.domain.registry.errors
    import hubmirror.settings

    classes = {
        name
        for module in (
            hubmirror.allowlist.rules,
            hubmirror.domain.items,
            hubmirror.domain.registry.errors,
            hubmirror.settings,
        )
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, Exception)
    }
    for name, state in states():
        for rule in [*state.get("Retry", []), *state.get("Catch", [])]:
            for error in rule["ErrorEquals"]:
                prefix = error.split(".")[0]
                assert prefix in ("States", "Lambda", "CodeBuild", "SNS") or error in classes, (name, error)


def test_the_report_goes_out_to_e_mail_then_chat_before_the_verdict() -> None:
    assert DEFINITION["States"]["Report"]["Next"] == "Publish"
    assert DEFINITION["States"]["Publish"]["Next"] == "PublishChat"
    chat = DEFINITION["States"]["PublishChat"]
    assert chat["Next"] == "Any item failed?"
    assert [c["Next"] for c in chat["Catch"]] == ["Any item failed?"]  # a chat down changes no verdict
    assert DEFINITION["States"]["Any item failed?"]["Choices"][0]["Next"] == "SyncFailed"


def test_the_last_resort_message_carries_no_stack_trace() -> None:
    """A Lambda error's Cause holds the Python stack trace: subscribers get the error's name only."""
    message = DEFINITION["States"]["PublishReportFailure"]["Parameters"]["Message.$"]
    assert "report_error.Error" in message
    assert "Cause" not in message


def test_the_interpreter_parses_the_definition_without_a_syntax_error(capfd: pytest.CaptureFixture[str]) -> None:
    """Both validators accept strings the interpreter's grammar refuses (a quote in States.Format);
    its parser reports them on stderr and goes on, and the state then fails when it runs."""
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    AmazonStateLanguageParser.parse(_as_deployed())
    errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("line ")]
    assert errors == []


def test_every_choice_asks_a_question_and_says_why() -> None:
    for name, state in states():
        if state["Type"] == "Choice":
            assert name.endswith("?"), name
            assert state.get("Comment"), name


def test_the_lambda_retrier_is_the_same_everywhere() -> None:
    """Written out at each Lambda task (the language has no reference); the copies stay equal."""
    retriers = [
        json.dumps(state["Retry"], sort_keys=True)
        for _, state in states()
        if state.get("Resource") == "arn:aws:states:::lambda:invoke"
    ]
    assert len(retriers) == 5
    assert len(set(retriers)) == 1


def test_the_record_error_states_differ_only_in_their_phase_and_next() -> None:
    sync = DEFINITION["States"]["Sync"]["ItemProcessor"]["States"]
    records = {name: state for name, state in sync.items() if name.startswith("Record")}
    assert set(records) == {"RecordCheckError", "RecordCopyError", "RecordBuildError"}

    def shape(state: dict[str, Any]) -> str:
        same = {k: v for k, v in state.items() if k not in ("Comment", "Next")}
        return re.sub(r"-(check|copy|build)\.json", "-PHASE.json", json.dumps(same, sort_keys=True))

    assert len({shape(s) for s in records.values()}) == 1


def test_the_error_keys_the_state_machine_writes_are_the_ones_the_report_reads() -> None:
    """The three ``States.Format`` keys of the Record*Error states are :func:`keys.errors`."""
    from hubmirror.domain import keys

    sync = DEFINITION["States"]["Sync"]["ItemProcessor"]["States"]
    for phase in ("check", "copy", "build"):
        written = sync[f"Record{phase.title()}Error"]["Parameters"]["Key.$"]
        template, arguments = re.fullmatch(r"States\.Format\('([^']*)', (.*)\)", written).groups()  # type: ignore[union-attr]
        assert arguments == "$.run, $.batch.batch"
        assert template.format("RUN", "BATCH") == keys.errors("RUN", "BATCH", phase)
        assert keys.folder("RUN", "errors") in keys.errors("RUN", "BATCH", phase)
