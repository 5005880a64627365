"""Step Functions' uncatchable errors, as AWS has them: ``States.ALL`` does not match them.

AWS: "States.ALL ... can't catch the States.DataLimitExceeded terminal error type and
runtime error types" (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html).
A definition that relies on ``Catch: [States.ALL]`` to turn such an error into a report
fails the whole execution on AWS with no report. moto's interpreter matches ``States.ALL``
against every error, so here it passed. :func:`install` makes ``States.ALL`` skip them, so
a test meets the execution failure AWS would give.
"""

from __future__ import annotations

from typing import Any

from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl

from devstack.aws.motoversion import require_moto

UNCATCHABLE = frozenset({"States.Runtime", "States.DataLimitExceeded"})

_original_eval_body = ErrorEqualsDecl._eval_body


def _eval_body(self: ErrorEqualsDecl, env: Any) -> None:
    error_name = env.stack[-1]
    if ErrorEqualsDecl._STATE_ALL_ERROR in self.error_names and getattr(error_name, "error_name", None) in UNCATCHABLE:
        env.stack.pop()
        env.stack.append(False)
        return
    _original_eval_body(self, env)


def install() -> None:
    require_moto("sfnerrors")
    ErrorEqualsDecl._eval_body = _eval_body  # type: ignore[method-assign]


def uninstall() -> None:
    ErrorEqualsDecl._eval_body = _original_eval_body  # type: ignore[method-assign]
