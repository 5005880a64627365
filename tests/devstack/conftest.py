"""The stand-ins' own tests: the registries of the functional tests (their fixtures, reused), and
the unit tests' network guard for a module that needs no network (``usefixtures("no_network")``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.functional.conftest import front, registries
from tests.unit.conftest import guard_network

__all__ = ["front", "no_network", "registries"]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    yield from guard_network(monkeypatch)
