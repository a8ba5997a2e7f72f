"""deploy/lock_store.py against a Redis that never answers (no Redis needed: a local TCP server
that accepts connections and stays silent, as a stalled Redis does).

A turn must fail with Rasa's `LockError` within the socket timeout, and the event loop must
keep running meanwhile: the other conversations of the instance are not frozen.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from rasa.core.lock_store import LockError
from rasa.utils.endpoints import EndpointConfig

from deploy.lock_store import SOCKET_TIMEOUT, AtomicRedisLockStore
from harness.waiting import loop_ticks_during


@pytest.fixture
def silent_redis() -> Iterator[int]:
    """The port of a server that accepts connections and never replies."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            held.append(connection)  # kept open, never read from nor written to

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=2)
        for connection in held:
            connection.close()
        server.close()


def store_at(port: int) -> AtomicRedisLockStore:
    # As Rasa builds it from deploy/endpoints.prod.yml (values substituted from the environment).
    return AtomicRedisLockStore(
        EndpointConfig(url="127.0.0.1", port=str(port), db="1", password="", key_prefix="locktest")
    )


def test_timeouts_are_short_by_default():
    store = store_at(6379)  # no connection is opened here
    kwargs = store.red.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == SOCKET_TIMEOUT <= 2
    assert kwargs["socket_connect_timeout"] == SOCKET_TIMEOUT
    custom = AtomicRedisLockStore(host="127.0.0.1", socket_timeout=1.5, socket_connect_timeout=0.5)
    assert custom.red.connection_pool.connection_kwargs["socket_timeout"] == 1.5
    assert custom.red.connection_pool.connection_kwargs["socket_connect_timeout"] == 0.5


def test_stalled_redis_fails_the_turn_quickly_without_freezing_the_loop(silent_redis):
    store = store_at(silent_redis)

    async def take_the_lock() -> float:
        started = time.monotonic()
        with pytest.raises(LockError):
            async with store.lock("client-1"):
                pass
        return time.monotonic() - started

    # the ticker stands for the other conversations the instance serves meanwhile
    elapsed, ticks = asyncio.run(asyncio.wait_for(loop_ticks_during(take_the_lock()), timeout=30))
    # Rasa's RedisLockStore: a 10 s read timeout, and the loop blocked all along.
    assert elapsed < SOCKET_TIMEOUT + 2.5
    assert ticks >= elapsed / 0.05 * 0.5  # the loop kept serving other tasks while waiting


def test_stalled_redis_while_waiting_for_a_lock_is_a_lock_error(silent_redis):
    store = AtomicRedisLockStore(host="127.0.0.1", port=silent_redis, socket_timeout=0.5)

    async def scenario() -> None:
        with pytest.raises(LockError):
            await store._acquire_lock("client-1", 0, 0.1)

    started = time.monotonic()
    asyncio.run(asyncio.wait_for(scenario(), timeout=30))
    assert time.monotonic() - started < 0.5 + 2.5
