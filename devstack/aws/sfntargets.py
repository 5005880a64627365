"""EventBridge rules that start Step Functions executions, which moto's EventBridge does not do.

moto 5.2 delivers a rule's events to log groups, queues, buses and API destinations, and drops
those for any other target. On AWS a rule targeting a state machine starts an execution whose
input is the event, or what the target's input transformer makes of it
(https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html). In a
JSON template a placeholder outside quotes takes the value as JSON (a string arrives quoted:
``{"instance": <instance>}`` gives ``{"instance": "i-0123456789"}``); inside quotes it is put in
as it is. moto's own template parser puts every value in bare, so this module fills the
template itself. :func:`install` wraps the rule's delivery: state machine targets start an
execution (a new name each time, as EventBridge's does); every other target is moto's.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from moto.events.models import Rule

from devstack.aws.motoversion import require_moto

_original_send = Rule.send_to_targets
_PLACEHOLDER = re.compile(r'"(?:[^"\\]|\\.)*"|<([A-Za-z0-9_.-]+)>')


def _value(event: dict[str, Any], path: str) -> Any:
    """A JSON path in dot notation (``$.detail.object.version-id``), as EventBridge takes them."""
    found: Any = event
    for part in path.removeprefix("$.").split("."):
        if not isinstance(found, dict) or part not in found:
            return None
        found = found[part]
    return found


def transform(template: str, paths: dict[str, str], event: dict[str, Any]) -> str:
    """The target input EventBridge makes of ``event`` with an input transformer.

    >>> transform('{"v": <v>, "s": "is <v>"}', {"v": "$.detail.id"}, {"detail": {"id": "a1"}})
    '{"v": "a1", "s": "is a1"}'
    """
    values = {name: _value(event, path) for name, path in paths.items()}

    def bare(match: re.Match[str]) -> str:
        if match.group(1) is None:  # a quoted string: placeholders inside go in as text
            return re.sub(r"<([A-Za-z0-9_.-]+)>", lambda m: str(values.get(m.group(1)) or ""), match.group(0))
        return json.dumps(values.get(match.group(1)))

    return _PLACEHOLDER.sub(bare, template)


def _send_to_targets(self: Rule, original_event: Any, transform_input: bool = True) -> None:
    machines = [t for t in self.targets if ":states:" in str(t["Arn"])]
    if len(machines) < len(self.targets):  # moto refuses a target type it does not know: it gets the rest
        every = self.targets
        self.targets = [t for t in every if t not in machines]
        try:
            _original_send(self, original_event, transform_input)
        finally:
            self.targets = every
    if not machines or not self.event_pattern.matches_event(original_event):
        return
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    for target in machines:
        arn = str(target["Arn"])
        transformer = target.get("InputTransformer")
        data = (
            transform(transformer["InputTemplate"], transformer.get("InputPathsMap", {}), original_event)
            if transformer
            else target.get("Input") or json.dumps(original_event)
        )
        _, _, _, region, account, _ = arn.split(":", 5)
        stepfunctions_parser_backends[account][region].start_execution(
            arn, name=str(uuid.uuid4()), execution_input=data
        )


def install() -> None:
    require_moto("sfntargets")
    Rule.send_to_targets = _send_to_targets  # type: ignore[method-assign]


def uninstall() -> None:
    Rule.send_to_targets = _original_send  # type: ignore[method-assign]
