"""Free loopback ports for servers started by the tests and benchmarks."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback port that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int) -> range:
    """`count` consecutive free loopback ports (deploy/prod.py numbers its instances from a base)."""
    for _ in range(200):
        base = free_port()
        if base + count > 65536:
            continue
        try:
            for port in range(base, base + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return range(base, base + count)
    raise RuntimeError(f"no {count} consecutive free ports")
