"""The console's suite again, over a PostgreSQL tracker store: a scratch database of its own
(harness/postgres.py), written by an assistant that also takes socket.io conversations (a
second channel for the channel filter)."""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

from harness import postgres
from harness.servers import running_servers
from harness.socketio_client import say_socketio
from tests.test_console import ConsoleSuite, listed, make_backend, wait_for_events

pytestmark = [pytest.mark.servers, pytest.mark.model, pytest.mark.postgres]

CREDENTIALS = """rest:
socketio:
  user_message_evt: user_uttered
  bot_message_evt: bot_uttered
  session_persistence: true
"""


@pytest.fixture(scope="module")
def postgres_db():
    """A new database on the machine's PostgreSQL, dropped at the end."""
    if not postgres.reachable():
        where = f"{postgres.HOST}:{postgres.PORT}"
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {where}")
        pytest.skip(f"PostgreSQL is not reachable at {where}")
    with postgres.scratch_database("console_test") as database:
        yield database


@pytest.fixture(scope="module")
def backend(postgres_db, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("console-postgres")
    credentials = workdir / "credentials.yml"
    credentials.write_text(CREDENTIALS)
    tracker_store = postgres_db.tracker_store()
    with running_servers(workdir, tracker_store=tracker_store, credentials=credentials) as servers:
        web = "console-web-" + uuid.uuid4().hex[:8]
        say_socketio(servers.rasa_url, web, ["bonjour", "comment joindre le service client ?"])
        engine = sa.create_engine(postgres_db.url)
        wait_for_events(engine, web, 2)
        engine.dispose()
        # Rasa's own rest channel (CREDENTIALS above): sender ids stored as sent
        yield from make_backend(
            servers.say, postgres_db.url, workdir, extra_senders={"socketio": web}, stored_prefix=""
        )


class TestConsolePostgres(ConsoleSuite):
    def test_both_channels_are_told_apart(self, backend):
        client = backend.client()
        assert listed(client, backend, channel="socketio") == ["socketio"]
        assert "socketio" not in listed(client, backend, channel="rest")
        assert "puk" in listed(client, backend, channel="rest")
