"""Messenger's message ids: each message handled once, and only once it reached Rasa.

Messenger re-sends a webhook call it thinks failed, with the same message id (`mid`).
`channels/messenger.py` acknowledges every call at once and handles its messages in the
background; this module decides which messages to handle, and runs them:

- **Claim, then confirm.** A message is *claimed* when its webhook call arrives (a retry
  arriving while it is handled is dropped), and *confirmed* (seen for `ttl`, 7 days) only
  once Rasa has handled it. If handing it to Rasa failed (Rasa raised: lock store or tracker
  store unreachable...; or the turn was cancelled at shutdown), the claim is *released*: the
  id stays unseen and a later delivery of the same message is handled. A claim left by a
  process that died expires after `claim_ttl` (10 minutes).
- **Where.** `FB_DEDUPE_STORE=redis` (production: every Rasa instance and host shares it):
  Redis keys `REDIS_KEY_PREFIX:messenger:mid:<sha256>`, claimed with `SET key pending NX EX`,
  confirmed with `SET key done EX`, with the lock store's REDIS_* variables and 1 s socket
  timeouts. Otherwise (`make run`): a SQLite table (`FB_DEDUPE_DB`, shared by the processes
  of one host), every query in a worker thread so that a locked file never blocks the loop.
- **One queue per sender** (`SenderQueues`): the messages of one customer are handled one at
  a time, in the order they arrived; different customers' messages run side by side, so a
  slow turn delays nobody else.
- **Shutdown.** `drain(timeout)` waits for the messages being handled (the channel calls it
  from Sanic's `before_server_stop`); those still running after `timeout` are cancelled, and
  their claims released.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger(__name__)

ENV_STORE = "FB_DEDUPE_STORE"
ENV_DB = "FB_DEDUPE_DB"
ENV_SHUTDOWN_TIMEOUT = "FB_SHUTDOWN_TIMEOUT"

DEFAULT_DB = "messenger_mids.db"
DEFAULT_SHUTDOWN_TIMEOUT = 8.0
SEEN_TTL = 7 * 24 * 3600  # Messenger retries for hours, not weeks
CLAIM_TTL = 600  # a claim whose process died frees its id after this


class SeenStore(Protocol):
    async def claim(self, key: str) -> bool:
        """True if `key` is neither seen nor being handled; it is then being handled."""

    async def confirm(self, key: str) -> None:
        """`key` was handled: seen for the store's ttl."""

    async def release(self, key: str) -> None:
        """Handling `key` failed: unseen again."""


# --- SQLite (development, one host) -------------------------------------------------------


class SqliteSeen:
    """The ids in a SQLite table; the queries run in worker threads (`asyncio.to_thread`).

    A row is a claim (`done` = 0) or a handled message (`done` = 1). The file survives a restart
    of Rasa and is shared by the processes of one host (SQLite locks it). `":memory:"` keeps
    the ids in this process only.
    """

    def __init__(self, path: str = DEFAULT_DB, ttl: float = SEEN_TTL, claim_ttl: float = CLAIM_TTL) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.ttl = ttl
        self.claim_ttl = claim_ttl
        self._lock = threading.Lock()
        self._writes = 0
        self._db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS seen_mid (mid TEXT PRIMARY KEY, seen_at REAL NOT NULL)")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(seen_mid)")}
        if "done" not in columns:  # a file of the first version: its rows are handled messages
            self._db.execute("ALTER TABLE seen_mid ADD COLUMN done INTEGER NOT NULL DEFAULT 1")

    def claim_now(self, key: str) -> bool:
        now = time.time()
        with self._lock:
            claimed = (
                self._db.execute(
                    "INSERT OR IGNORE INTO seen_mid (mid, seen_at, done) VALUES (?, ?, 0)", (key, now)
                ).rowcount
                == 1
                or self._db.execute(  # a claim left by a process that died
                    "UPDATE seen_mid SET seen_at = ? WHERE mid = ? AND done = 0 AND seen_at < ?",
                    (now, key, now - self.claim_ttl),
                ).rowcount
                == 1
            )
            self._writes += 1
            if self._writes % 500 == 0:
                self._db.execute("DELETE FROM seen_mid WHERE seen_at < ?", (now - self.ttl,))
        return claimed

    def confirm_now(self, key: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO seen_mid (mid, seen_at, done) VALUES (?, ?, 1) "
                "ON CONFLICT (mid) DO UPDATE SET seen_at = excluded.seen_at, done = 1",
                (key, time.time()),
            )

    def release_now(self, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM seen_mid WHERE mid = ? AND done = 0", (key,))

    async def claim(self, key: str) -> bool:
        return await asyncio.to_thread(self.claim_now, key)

    async def confirm(self, key: str) -> None:
        await asyncio.to_thread(self.confirm_now, key)

    async def release(self, key: str) -> None:
        await asyncio.to_thread(self.release_now, key)


# --- Redis (production, every instance) ---------------------------------------------------

_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == 'pending' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisSeen:
    """The ids in Redis, shared by every Rasa instance: `SET key pending NX EX claim_ttl`, then
    `SET key done EX ttl` (or the claim deleted). 1 s socket timeouts: a stalled Redis fails the
    webhook call (Messenger retries it), it never blocks the loop for long."""

    def __init__(
        self, prefix: str, ttl: float = SEEN_TTL, claim_ttl: float = CLAIM_TTL, **redis_kwargs: Any
    ) -> None:
        import redis.asyncio

        self.prefix = prefix
        self.ttl = int(ttl)
        self.claim_ttl = int(claim_ttl)
        self.redis = redis.asyncio.Redis(socket_timeout=1, socket_connect_timeout=1, **redis_kwargs)
        self._release = self.redis.register_script(_RELEASE_SCRIPT)

    def redis_key(self, key: str) -> str:
        return self.prefix + hashlib.sha256(key.encode("utf-8")).hexdigest()

    async def claim(self, key: str) -> bool:
        return bool(await self.redis.set(self.redis_key(key), "pending", nx=True, ex=self.claim_ttl))

    async def confirm(self, key: str) -> None:
        await self.redis.set(self.redis_key(key), "done", ex=self.ttl)

    async def release(self, key: str) -> None:
        await self._release(keys=[self.redis_key(key)])


def store_from_env(sqlite_path: str | None = None) -> SeenStore:
    """`FB_DEDUPE_STORE`: `sqlite` (default; file `sqlite_path` or `FB_DEDUPE_DB`) or `redis`
    (REDIS_HOST, REDIS_PORT, REDIS_DB, REDIS_PASSWORD, REDIS_KEY_PREFIX, as the lock store)."""
    kind = (os.environ.get(ENV_STORE) or "sqlite").lower()
    if kind == "redis":
        return RedisSeen(
            (os.environ.get("REDIS_KEY_PREFIX") or "chatcagou") + ":messenger:mid:",
            host=os.environ.get("REDIS_HOST") or "127.0.0.1",
            port=int(os.environ.get("REDIS_PORT") or 6379),
            db=int(os.environ.get("REDIS_DB") or 0),
            password=os.environ.get("REDIS_PASSWORD") or None,
        )
    if kind == "sqlite":
        return SqliteSeen(sqlite_path or os.environ.get(ENV_DB) or DEFAULT_DB)
    raise ValueError(f"{ENV_STORE} must be 'sqlite' or 'redis', not {kind!r}")


# --- did the message reach Rasa? ----------------------------------------------------------

# Set by `SenderQueues` for each message: what Rasa raised while handling it. The input guard
# (channels/guard.py) catches Rasa's errors to answer the customer with the contacts, so the
# channel cannot see them: `handed_over` records them on the way.
_rasa_errors: contextvars.ContextVar[list[BaseException] | None] = contextvars.ContextVar(
    "messenger_rasa_errors", default=None
)


def handed_over(on_new_message: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
    """Rasa's `on_new_message`, recording whether it raised (wrap it before the guard)."""

    async def handler(message: Any) -> Any:
        try:
            return await on_new_message(message)
        except BaseException as error:
            errors = _rasa_errors.get()
            if errors is not None:
                errors.append(error)
            raise

    return handler


# --- one queue per sender; drained at shutdown --------------------------------------------


class SenderQueues:
    """Runs each message's work in a task: one at a time and in order for one sender, side by
    side for different senders. Confirms the message's id when Rasa took it, releases it when
    not (see the module's docstring)."""

    def __init__(self, store: SeenStore) -> None:
        self.store = store
        self.tasks: set[asyncio.Task[None]] = set()  # strong references: asyncio keeps weak ones
        self._senders: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    def start(self, key: str, sender: str, work: Callable[[], Awaitable[Any]]) -> asyncio.Task[None]:
        """Run `work()` (which hands the message `key` of `sender` to Rasa) in its turn."""
        lock, waiting = self._senders.setdefault(sender, (asyncio.Lock(), [0]))
        waiting[0] += 1

        async def run() -> None:
            try:
                async with lock:
                    await self._handle(key, work)
            finally:
                waiting[0] -= 1
                if waiting[0] == 0:
                    self._senders.pop(sender, None)

        task = asyncio.get_running_loop().create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _handle(self, key: str, work: Callable[[], Awaitable[Any]]) -> None:
        errors: list[BaseException] = []
        _rasa_errors.set(errors)  # this task's context only
        try:
            await work()
        except BaseException as error:
            errors.append(error)
            if not isinstance(error, asyncio.CancelledError):
                logger.exception("Messenger: could not handle a message")
            raise
        finally:
            await self._settle(key, errors)

    async def _settle(self, key: str, errors: list[BaseException]) -> None:
        try:
            if errors:
                logger.warning(
                    "Messenger: a message did not reach Rasa (%s): its id stays unseen",
                    type(errors[0]).__name__,
                )
                await self.store.release(key)
            else:
                await self.store.confirm(key)
        except Exception as error:  # noqa: BLE001 - the claim expires by itself (CLAIM_TTL)
            logger.warning("Messenger: message-id store unavailable (%s)", type(error).__name__)

    async def drain(self, timeout: float) -> int:
        """Wait up to `timeout` s for the messages being handled; cancel the rest (their ids
        are released). Returns how many were cancelled."""
        pending = set(self.tasks)
        if not pending:
            return 0
        logger.info("Messenger: waiting for %d message(s) being handled", len(pending))
        _, pending = await asyncio.wait(pending, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            logger.warning("Messenger: %d message(s) cancelled at shutdown, their ids released", len(pending))
            await asyncio.wait(pending, timeout=2)
        return len(pending)


def shutdown_timeout() -> float:
    return float(os.environ.get(ENV_SHUTDOWN_TIMEOUT) or DEFAULT_SHUTDOWN_TIMEOUT)
