"""Executions of the sync state machine: start one (once per name), read how one is going."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from hubmirror.adapters import aws


class Executions:
    """Start and describe executions (``states:StartExecution``, ``DescribeExecution``)."""

    def __init__(self, client: Any = None) -> None:
        self.client = client or aws.client("stepfunctions")

    def start(self, state_machine: str, name: str, data: str) -> str:
        """Start an execution and return its ARN; a name already started returns that execution's ARN."""
        try:
            answer = self.client.start_execution(stateMachineArn=state_machine, name=name, input=data)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                raise
            return f"{state_machine.replace(':stateMachine:', ':execution:')}:{name}"
        return str(answer["executionArn"])

    def describe(self, execution: str) -> dict[str, Any]:
        return dict(self.client.describe_execution(executionArn=execution))

    def recent(self, state_machine: str, count: int = 50) -> list[str]:
        """The names of the state machine's latest executions, newest first."""
        listed = self.client.list_executions(stateMachineArn=state_machine, maxResults=count)["executions"]
        return [str(e["name"]) for e in sorted(listed, key=lambda e: e["startDate"], reverse=True)]
