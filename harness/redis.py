"""A scratch Redis key prefix on the machine's Redis (127.0.0.1:6379): its keys are deleted at
the end."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

HOST = "127.0.0.1"
PORT = 6379


@dataclass(frozen=True)
class ScratchRedis:
    db: int
    prefix: str
    host: str = HOST
    port: int = PORT

    def client(self) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, db=self.db)


@contextmanager
def scratch_redis(db: int, prefix: str = "chatcagoutest") -> Iterator[ScratchRedis]:
    """A key prefix `prefix<random>` in Redis database `db`; every key under it deleted at the end."""
    scratch = ScratchRedis(db, prefix + uuid.uuid4().hex[:8])
    try:
        yield scratch
    finally:
        client = scratch.client()
        for key in client.scan_iter(match=scratch.prefix + "*"):
            client.delete(key)
        client.close()
