"""A warm Lambda "container": imports one handler, then serves invocations one at a time.

Started by :mod:`devstack.aws.lambdas` with the function's own environment, like the Lambda
runtime: ``python -m devstack.aws.lambda_worker MODULE.FUNCTION``. Requests arrive as JSON
lines on stdin; answers go out as JSON lines on the file descriptor named by
``DEVSTACK_ANSWER_FD``, so whatever the handler
prints (its logs) goes to stdout and stderr, as on Lambda.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
import uuid
from dataclasses import dataclass
from typing import Any


@dataclass
class Context:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline: float

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def _error(exc: BaseException) -> dict[str, Any]:
    return {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(exc),
    }


def main() -> None:
    handler_name = sys.argv[1]
    answers = os.fdopen(int(os.environ.pop("DEVSTACK_ANSWER_FD")), "w", buffering=1)
    module_name, _, function_name = handler_name.rpartition(".")
    init_error: dict[str, Any] | None = None
    handler: Any = None
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as exc:  # the runtime reports an init error on every invocation
        init_error = _error(exc) | {"errorType": f"Runtime.ImportModuleError: {type(exc).__name__}"}
        print(f"[ERROR] {init_error['errorType']}: {exc}", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if init_error is not None:
            answers.write(json.dumps({"error": init_error}) + "\n")
            continue
        context = Context(
            function_name=os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "function"),
            function_version="$LATEST",
            invoked_function_arn=request["arn"],
            memory_limit_in_mb=int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")),
            aws_request_id=str(uuid.uuid4()),
            log_group_name=f"/aws/lambda/{os.environ.get('AWS_LAMBDA_FUNCTION_NAME', 'function')}",
            log_stream_name="local",
            deadline=time.monotonic() + float(request.get("timeout", 300)),
        )
        print(f"START RequestId: {context.aws_request_id}", flush=True)
        try:
            result = handler(request["event"], context)
            answer: dict[str, Any] = {"result": result}
        except Exception as exc:
            answer = {"error": _error(exc)}
            print(json.dumps({"level": "ERROR", **answer["error"]}), flush=True)
        print(f"END RequestId: {context.aws_request_id}", flush=True)
        sys.stdout.flush()
        sys.stderr.flush()
        answers.write(json.dumps(answer, default=str) + "\n")


if __name__ == "__main__":
    main()
