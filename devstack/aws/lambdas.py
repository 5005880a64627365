"""Real Lambda invocations for moto: the function's own handler, in its own process.

moto 5's Lambda without Docker (``LambdaSimpleBackend``) answers every invocation with a
canned payload. :func:`install` replaces its ``invoke`` so that an invocation (from a test,
or from a Step Functions task run by moto) runs the function's real ``Handler``, with the
function's own environment variables, in a warm worker process kept per function, as the
Lambda service does. An exception in the handler becomes ``x-amz-function-error:
Unhandled`` with ``errorType`` set to the exception's class name, so ``ErrorEquals`` on
class names works in the state machine exactly as on AWS.

What the handler prints goes to ``<logdir>/<function>.log`` (CloudWatch Logs' stand-in).

An invocation that runs past the function's timeout is stopped, its worker killed, and
answered as Lambda answers it: function error ``Sandbox.Timedout``, "Task timed out after
N seconds" (https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html;
https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moto.awslambda_simple.models import LambdaSimpleBackend

from devstack.aws.motoversion import require_moto

ROOT = Path(__file__).resolve().parents[2]
CODE_ROOT = ROOT / "functions"


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    answers: Any

    def call(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.answers], [], [], timeout)
        if not ready:
            self.proc.kill()
            self.proc.wait()
            raise TimeoutError(f"Task timed out after {timeout:.2f} seconds")
        line = self.answers.readline()
        if not line:
            raise RuntimeError(f"the Lambda worker exited with {self.proc.wait()}")
        return dict(json.loads(line))

    def stop(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.answers.close()


@dataclass
class LambdaRuntime:
    """Warm worker processes per function, started on demand, stopped by :meth:`stop`."""

    logdir: Path
    base_env: dict[str, str]
    python: str = sys.executable
    invocations: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    _idle: dict[str, list[_Worker]] = field(default_factory=dict)
    _all: list[_Worker] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _spawn(self, name: str, handler: str, env: dict[str, str], memory: int) -> _Worker:
        read_fd, write_fd = os.pipe()
        self.logdir.mkdir(parents=True, exist_ok=True)
        log = (self.logdir / f"{name}.log").open("ab")
        worker_env = {
            **self.base_env,
            **env,
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
            "PYTHONPATH": os.pathsep.join([str(CODE_ROOT), str(ROOT)]),
            "PYTHONUNBUFFERED": "1",
            "DEVSTACK_ANSWER_FD": str(write_fd),
        }
        proc = subprocess.Popen(
            [self.python, "-m", "devstack.aws.lambda_worker", handler],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=worker_env,
            cwd=str(CODE_ROOT),
            pass_fds=(write_fd,),
        )
        os.close(write_fd)
        log.close()
        worker = _Worker(proc=proc, answers=os.fdopen(read_fd, "r"))
        with self._lock:
            self._all.append(worker)
        return worker

    def invoke(
        self, *, name: str, arn: str, handler: str, env: dict[str, str], memory: int, timeout: int, event: Any
    ) -> dict[str, Any]:
        """Run one invocation; returns ``{"result": ...}`` or ``{"error": {...}}``."""
        with self._lock:
            idle = self._idle.setdefault(name, [])
            worker = idle.pop() if idle else None
            self.invocations[name] += 1
        if worker is None or worker.proc.poll() is not None:
            worker = self._spawn(name, handler, env, memory)
        started = time.monotonic()
        try:
            answer = worker.call({"event": event, "arn": arn, "timeout": timeout}, timeout)
        except TimeoutError as exc:
            worker.stop()
            return {"error": {"errorType": "Sandbox.Timedout", "errorMessage": f"Error: {exc}", "stackTrace": []}}
        except Exception:
            worker.stop()
            raise
        with self._lock:
            self.seconds += time.monotonic() - started
            self._idle.setdefault(name, []).append(worker)
        return answer

    def stop(self) -> None:
        with self._lock:
            workers, self._all, self._idle = list(self._all), [], {}
        for worker in workers:
            worker.stop()


_installed: dict[str, LambdaRuntime] = {}
_original_invoke = LambdaSimpleBackend.invoke


def _invoke(  # noqa: PLR0917 - moto's signature
    self: LambdaSimpleBackend,
    function_name: str,
    qualifier: str | None,
    body: Any,
    headers: Any,
    response_headers: Any,
) -> bytes:
    runtime = _installed.get("runtime")
    if runtime is None:
        canned = _original_invoke(self, function_name, qualifier, body, headers, response_headers)
        return canned.encode() if isinstance(canned, str) else (canned or b"")
    function = self.get_function(function_name, qualifier)
    event = json.loads(body) if body else {}
    answer = runtime.invoke(
        name=function.function_name,
        arn=function.function_arn,
        handler=str(function.handler),
        env=dict(function.environment_vars or {}),
        memory=int(function.memory_size or 128),
        timeout=int(function.timeout or 3),
        event=event,
    )
    if "error" in answer:
        error = answer["error"]
        response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps({k: error[k] for k in ("errorType", "errorMessage", "stackTrace")}).encode()
    return json.dumps(answer["result"]).encode()


def install(runtime: LambdaRuntime) -> None:
    """Route moto's Lambda invocations to ``runtime``."""
    require_moto("lambdas")
    _installed["runtime"] = runtime
    LambdaSimpleBackend.invoke = _invoke  # type: ignore[method-assign]


def uninstall() -> None:
    _installed.pop("runtime", None)
    LambdaSimpleBackend.invoke = _original_invoke  # type: ignore[method-assign]
