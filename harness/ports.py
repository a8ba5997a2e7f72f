"""Free loopback ports for servers started by the tests and benchmarks.

The ports are drawn below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999
by default). A port the kernel hands out for `bind(0)` comes from that range, and so does the local
port of every outgoing connection: between the moment a port is picked and the moment a Rasa
server binds it (its model loads first, several seconds), a connection to PostgreSQL or Redis
could take it ("address already in use", seen in CI). Below the range, only a server asking for
that very port can.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_handed_out: set[int] = set()  # not bound yet by their server: never hand one out twice


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _pool() -> range:
    low, _ = _ephemeral_range()
    return range(20000, low) if low > 21000 else range(61000, 65536)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> range:
    """`count` consecutive loopback ports nothing listens on, outside the ephemeral range, not
    handed out before by this process (deploy/prod.py numbers its instances from a base)."""
    pool = _pool()
    rng = random.SystemRandom()
    for _ in range(500):
        base = rng.randrange(pool.start, pool.stop - count + 1)
        ports = range(base, base + count)
        if any(p in _handed_out for p in ports) or not all(_bindable(p) for p in ports):
            continue
        _handed_out.update(ports)
        return ports
    raise RuntimeError(f"no {count} consecutive free loopback ports in {pool.start}-{pool.stop - 1}")


def free_port() -> int:
    """A loopback port that nothing listens on now (outside the ephemeral range)."""
    return free_ports(1)[0]
