"""The unit tests' network guard (tests/unit/conftest.py) catches each way a socket is opened."""

from __future__ import annotations

import socket

import pytest
import urllib3

from tests.unit.conftest import NetworkInUnitTestError


@pytest.mark.parametrize(
    "open_one",
    [
        lambda: socket.socket(),  # noqa: PLW0108 (looked up when called, after the guard is in place)
        lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM),
        lambda: socket.create_connection(("127.0.0.1", 9), timeout=1),
        lambda: urllib3.PoolManager(retries=False).request("GET", "http://127.0.0.1:9/v2/"),
    ],
    ids=["ipv4", "ipv6", "create_connection", "urllib3"],
)
def test_a_network_socket_is_refused_where_it_is_opened(open_one, no_network: list[str]) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NetworkInUnitTestError, match="a unit test opened a network socket"):
        open_one()
    assert no_network  # remembered: the test fails at teardown too
    no_network.clear()  # this test expected it


def test_a_unix_socket_is_allowed() -> None:
    left, right = socket.socketpair()
    left.sendall(b"ok")
    assert right.recv(2) == b"ok"
    left.close()
    right.close()
