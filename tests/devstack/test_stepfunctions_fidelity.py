"""moto's Step Functions made as strict as AWS where the local stack relies on it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core.config import default_user_config

from devstack.aws import sfnerrors

ROLE = "arn:aws:iam::123456789012:role/sfn"


@pytest.fixture
def sfn() -> Iterator[Any]:
    saved = default_user_config.get("stepfunctions")
    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    sfnerrors.install()
    try:
        with mock_aws():
            yield boto3.client("stepfunctions", region_name="us-east-1")
    finally:
        sfnerrors.uninstall()
        if saved is None:
            default_user_config.pop("stepfunctions", None)
        else:
            default_user_config["stepfunctions"] = saved


def _run(client: Any, definition: dict[str, object], execution_input: object) -> dict[str, object]:
    name = f"m-{uuid.uuid4().hex[:8]}"
    arn = client.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]
    execution = client.start_execution(stateMachineArn=arn, name=name, input=json.dumps(execution_input))[
        "executionArn"
    ]
    for _ in range(200):
        described: dict[str, object] = client.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.05)
    raise TimeoutError(execution)


def test_states_all_does_not_catch_a_runtime_error(sfn: Any) -> None:
    # A JSONPath that the input does not have is a States.Runtime error on AWS.
    definition = {
        "StartAt": "Fails",
        "States": {
            "Fails": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
                "Parameters": {"Bucket": "nope", "Key.$": "$.key"},
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Succeed"},
        },
    }
    assert _run(sfn, definition, {"key": "k"})["status"] == "SUCCEEDED"  # an ordinary error (no bucket): caught
    described = _run(sfn, definition, {"no": "key"})
    assert described["status"] == "FAILED"
    assert described.get("error") == "States.Runtime"
