"""The state machine definition as the infrastructure tests read it, and one walk of its states."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ASL = Path(__file__).resolve().parents[2] / "statemachine" / "hubmirror.asl.yaml"
DEFINITION: dict[str, Any] = yaml.safe_load(ASL.read_text())


def states(definition: dict[str, Any] = DEFINITION, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """``(path/name, state)`` for every state, a Map's own states under ``Map/``."""
    for name, state in definition["States"].items():
        yield f"{path}{name}", state
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from states(processor, f"{path}{name}/")
