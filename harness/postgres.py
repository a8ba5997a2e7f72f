"""A scratch PostgreSQL database: created with a unique name on the machine's server
(127.0.0.1:5432, user postgres, trust authentication on loopback), dropped at the end.

CHAT_CAGOU_TEST_PG_HOST, CHAT_CAGOU_TEST_PG_PORT and CHAT_CAGOU_TEST_PG_USER point it elsewhere."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg2

HOST = os.environ.get("CHAT_CAGOU_TEST_PG_HOST", "127.0.0.1")
PORT = int(os.environ.get("CHAT_CAGOU_TEST_PG_PORT", "5432"))
USER = os.environ.get("CHAT_CAGOU_TEST_PG_USER", "postgres")


@dataclass(frozen=True)
class ScratchDatabase:
    name: str
    host: str = HOST
    port: int = PORT
    user: str = USER

    @property
    def url(self) -> str:
        """Its SQLAlchemy URL."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.name}"

    def connect(self) -> Any:
        """A psycopg2 connection to it."""
        return psycopg2.connect(dbname=self.name, host=self.host, port=self.port, user=self.user)

    def tracker_store(self) -> str:
        """The tracker_store section of a Rasa endpoints.yml storing into it."""
        return (
            f'tracker_store:\n  type: SQL\n  dialect: "postgresql"\n  url: "{self.host}"\n'
            f'  port: {self.port}\n  db: "{self.name}"\n  username: "{self.user}"\n'
        )


def _admin() -> Any:
    connection = psycopg2.connect(dbname="postgres", host=HOST, port=PORT, user=USER, connect_timeout=5)
    connection.autocommit = True
    return connection


def reachable() -> bool:
    """Whether the PostgreSQL server answers."""
    try:
        _admin().close()
    except psycopg2.OperationalError:
        return False
    return True


@contextmanager
def scratch_database(prefix: str = "chat_cagou_test") -> Iterator[ScratchDatabase]:
    """A new empty database named `prefix_<random>`, dropped (connections closed) at the end."""
    database = ScratchDatabase(f"{prefix}_{uuid.uuid4().hex[:10]}")
    with closing(_admin()) as admin:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{database.name}"')
        try:
            yield database
        finally:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')
