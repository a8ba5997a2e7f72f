"""Rasa's Redis lock store with atomic ticket operations.

Rasa 3.6's `RedisLockStore` reads the conversation's ticket lock, changes it in Python and
writes it back (GET ... SET). Two Rasa instances handling messages of the same
conversation at the same moment can both read the same lock: they get the same ticket
number and process the two messages at once, or one of them overwrites the other's
ticket, the lock is deleted under it and its message fails with `LockError`. Rasa knows it
(RasaHQ/rasa#9213; the fix, `ConcurrentRedisLockStore`, went to Rasa Pro only).

Here every read-modify-write of a lock is one Redis transaction (WATCH / MULTI / EXEC,
retried when another instance changed the lock meanwhile), so tickets are unique and
served in the order they were issued, across every instance. Same configuration as
Rasa's (endpoints: `type: deploy.lock_store.AtomicRedisLockStore`, url, port, db,
password, key_prefix...), same keys and format: it can replace `type: redis` in place.
Each lock key also expires (`TICKET_LOCK_LIFETIME` after its last change), so that a lock
left by an instance killed with `kill -9` never outlives its tickets.

Waiting, too, is changed (`_acquire_lock`). In Rasa, a ticket's lifetime runs from the moment
it is issued, waiting included: when an instance is killed while it holds a conversation's
ticket, the message retried on another instance waits for that ticket to expire, and its
own ticket, issued a moment later, expires in the same second. Both are removed, the lock
is left empty, and Rasa's waiting loop then waits forever (`now_serving` is 0, never its
ticket): the customer's message hangs until the proxy gives up. Here a waiting instance
renews its own ticket at each poll, so only the tickets of dead instances (or of a message
served for longer than the lifetime) expire; and it polls every 0.1 s instead of 1 s, so
that a customer's queued message starts as soon as the previous one is done.

And Redis never blocks Rasa's event loop. Rasa's lock store calls the synchronous redis client
from the loop, with a 10 s read timeout and no connect timeout: a stalled Redis (a full
network buffer, a paused container, a dropped route) froze every conversation of the instance,
not only the ones waiting for a lock. Here every Redis call runs in a worker thread
(`asyncio.to_thread`), and the client gives up after `socket_timeout` and
`socket_connect_timeout` (default 2 s each, settable in the endpoints file): the message then
fails with `LockError`, and the channel answers with the contacts (channels/guard.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

logger = logging.getLogger(__name__)

T = TypeVar("T")
MAX_ATTEMPTS = 100
POLL_SECONDS = 0.1
SOCKET_TIMEOUT = 2.0  # seconds: a Redis that does not answer fails the turn, not the process


class AtomicRedisLockStore(RedisLockStore):
    def __init__(self, endpoint_config: EndpointConfig | None = None, **kwargs: Any) -> None:
        if endpoint_config is not None:  # loaded by module path from the endpoints file
            kwargs = {"host": endpoint_config.url or "localhost", **endpoint_config.kwargs, **kwargs}
        if kwargs.get("password") == "":
            kwargs["password"] = None  # "${REDIS_PASSWORD}" set to nothing: no AUTH
        kwargs["socket_timeout"] = float(kwargs.get("socket_timeout") or SOCKET_TIMEOUT)
        connect_timeout = float(kwargs.pop("socket_connect_timeout", None) or kwargs["socket_timeout"])
        super().__init__(**kwargs)
        # Rasa's constructor has no connect timeout: without one, connecting to an address
        # that drops packets waits for the kernel (minutes). The pool opens every connection
        # with these arguments.
        self.red.connection_pool.connection_kwargs["socket_connect_timeout"] = connect_timeout

    @asynccontextmanager
    async def lock(
        self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME, wait_time_in_seconds: float = 1
    ) -> AsyncGenerator[TicketLock, None]:
        """Rasa's `LockStore.lock`, with every Redis call in a worker thread."""
        ticket = await asyncio.to_thread(self.issue_ticket, conversation_id, lock_lifetime)
        try:
            yield await self._acquire_lock(conversation_id, ticket, wait_time_in_seconds)
        finally:
            await asyncio.to_thread(self._cleanup_quietly, conversation_id, ticket)

    def _cleanup_quietly(self, conversation_id: str, ticket: int) -> None:
        try:
            self.cleanup(conversation_id, ticket)
        except Exception as error:  # noqa: BLE001 - the ticket expires by itself (TICKET_LOCK_LIFETIME)
            logger.warning(
                "Lock store: could not release a ticket of conversation %s (%s)",
                conversation_id,
                type(error).__name__,
            )

    def _transaction(
        self, conversation_id: str, change: Callable[[TicketLock | None], tuple[TicketLock | None, bool, T]]
    ) -> T:
        """Run `change(lock)` atomically. It returns (lock, write, result): the lock to
        save (None: delete it) when `write` is true, and the result to return."""
        import redis

        key = self.key_prefix + conversation_id
        with self.red.pipeline() as pipe:
            for _ in range(MAX_ATTEMPTS):
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    lock = TicketLock.from_dict(json.loads(raw)) if raw else None
                    new_lock, write, result = change(lock)
                    pipe.multi()
                    if write:
                        if new_lock is None:
                            pipe.delete(key)
                        else:
                            pipe.set(key, new_lock.dumps(), ex=max(int(LOCK_LIFETIME) * 2, 10))
                    pipe.execute()
                    return result
                except redis.WatchError:
                    continue  # another instance changed this lock: read it again
        raise LockError(f"Could not update the lock of conversation '{conversation_id}' (contention).")

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        def change(lock: TicketLock | None) -> tuple[TicketLock, bool, int]:
            lock = lock or TicketLock(conversation_id)
            return lock, True, lock.issue_ticket(lock_lifetime)

        try:
            return self._transaction(conversation_id, change)
        except LockError:
            raise
        except Exception as error:  # as Rasa's RedisLockStore: any Redis error becomes a LockError
            raise LockError(f"Error while acquiring lock. Error:\n{error}") from error

    def update_lock(self, conversation_id: str) -> None:
        def change(lock: TicketLock | None) -> tuple[TicketLock | None, bool, None]:
            if lock is None:
                return None, False, None
            lock.remove_expired_tickets()
            return lock, True, None

        self._transaction(conversation_id, change)

    def finish_serving(self, conversation_id: str, ticket_number: int) -> None:
        self.cleanup(conversation_id, ticket_number)

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        """Remove the ticket, and the lock when no ticket is left, in one transaction."""

        def change(lock: TicketLock | None) -> tuple[TicketLock | None, bool, None]:
            if lock is None:
                return None, False, None
            lock.remove_ticket_for(ticket_number)
            return (lock if lock.is_someone_waiting() else None), True, None

        self._transaction(conversation_id, change)

    async def _acquire_lock(
        self, conversation_id: str, ticket: int, wait_time_in_seconds: float
    ) -> TicketLock:
        """Wait for `ticket`'s turn, renewing it meanwhile (see the module's docstring)."""

        def renew(lock: TicketLock | None) -> tuple[TicketLock | None, bool, TicketLock | None]:
            if lock is None:
                return None, False, None
            mine = next((t for t in lock.tickets if t.number == ticket), None)
            if mine is None or mine.has_expired():
                return lock, False, None  # lost (this process stalled for a whole lifetime)
            mine.expires = max(mine.expires, time.time() + LOCK_LIFETIME)
            lock.remove_expired_tickets()
            return lock, True, lock

        while True:
            try:
                lock = await asyncio.to_thread(self._transaction, conversation_id, renew)
            except LockError:
                raise
            except Exception as error:  # Redis unreachable or too slow: as issue_ticket
                raise LockError(f"Error while waiting for the lock. Error:\n{error}") from error
            if lock is None:
                raise LockError(f"Could not acquire lock for conversation_id '{conversation_id}'.")
            if not lock.is_locked(ticket):
                return lock
            await asyncio.sleep(min(wait_time_in_seconds, POLL_SECONDS))
