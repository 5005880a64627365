"""Keep the histories of Distributed Map runs, which moto otherwise throws away.

On AWS every child execution of a Distributed Map has its own history; moto runs the
children with one event manager per map run and keeps none of it. :func:`install` wraps
the map run so its events are kept by execution: the tests and the benchmark count state
transitions and read the largest payload of the children from them.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (
    DistributedIterationComponent,
)

from devstack.aws.motoversion import require_moto

_original_map_run = DistributedIterationComponent._map_run
_events: dict[str, list[dict[str, Any]]] = {}
_lock = threading.Lock()


def _map_run(self: DistributedIterationComponent, env: Any, eval_input: Any) -> None:
    try:
        _original_map_run(self, env=env, eval_input=eval_input)
    finally:
        execution = str(env.states.context_object.context_object_data["Execution"]["Id"])
        with _lock:
            _events.setdefault(execution, []).extend(dict(e) for e in env.event_manager.get_event_history())


def install() -> None:
    require_moto("mapruns")
    DistributedIterationComponent._map_run = _map_run  # type: ignore[method-assign]


def uninstall() -> None:
    DistributedIterationComponent._map_run = _original_map_run  # type: ignore[method-assign]


def events_of(execution_arn: str) -> list[dict[str, Any]]:
    """Every event of every map run of the execution."""
    with _lock:
        return list(_events.get(execution_arn, []))
