"""The ports the tests give their servers: never one an outgoing connection can take meanwhile."""

from __future__ import annotations

import socket

import pytest

from harness import ports


def test_ports_are_drawn_below_the_ephemeral_range_and_never_twice() -> None:
    low, _ = ports._ephemeral_range()
    drawn = [ports.free_port() for _ in range(50)] + list(ports.free_ports(4))
    assert all(1024 < port < low for port in drawn)
    assert len(set(drawn)) == len(drawn)
    consecutive = ports.free_ports(3)
    assert list(consecutive) == [consecutive.start, consecutive.start + 1, consecutive.start + 2]


def test_a_port_in_use_is_not_handed_out(monkeypatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        monkeypatch.setattr(ports, "_pool", lambda: range(taken, taken + 1))
        with pytest.raises(RuntimeError, match="no 1 consecutive free loopback ports"):
            ports.free_port()
