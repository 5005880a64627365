"""Unit tests are pure logic: one that opens a network socket (IPv4 or IPv6) fails.

The guard replaces :class:`socket.socket` for every unit test, so urllib3, boto3 and
``socket.create_connection`` all meet it. The refusal is raised where the socket is opened and
also remembered: code under test that swallows errors (a retry loop, a broad ``except``) cannot
hide it, because the test fails at teardown all the same. Unix sockets (``AF_UNIX``) stay allowed.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

NETWORK_FAMILIES = (socket.AF_INET, socket.AF_INET6)


class NetworkInUnitTestError(AssertionError):
    """A unit test opened a network socket."""


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    yield from guard_network(monkeypatch)


def guard_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The guard, for a fixture: yields the families refused, and fails the test at teardown if any."""
    opened: list[str] = []
    real = socket.socket

    class GuardedSocket(real):  # type: ignore[misc, valid-type]
        def __init__(self, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None) -> None:
            if fileno is None and (family == -1 or family in NETWORK_FAMILIES):
                what = socket.AddressFamily(socket.AF_INET if family == -1 else family).name
                opened.append(what)
                raise NetworkInUnitTestError(
                    f"a unit test opened a network socket ({what}): use a fake or a functional test"
                )
            super().__init__(family, type, proto, fileno)

    monkeypatch.setattr(socket, "socket", GuardedSocket)
    yield opened
    if opened:
        pytest.fail(f"a unit test opened network sockets: {', '.join(opened)} (the error may have been caught)")
