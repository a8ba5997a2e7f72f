"""The console's suite again, over a PostgreSQL tracker store: a database of its own, created
and dropped here, written by an assistant that also takes socket.io conversations (a second
channel for the channel filter)."""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

from console.testing import say_socketio
from tests.conftest import MODEL
from tests.test_console import ConsoleSuite, make_backend, wait_for_events

pytestmark = pytest.mark.slow

SERVER = os.environ.get("CONSOLE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
CREDENTIALS = """rest:
socketio:
  user_message_evt: user_uttered
  bot_message_evt: bot_uttered
  session_persistence: true
"""


@pytest.fixture(scope="module")
def postgres_db():
    """A new database on the machine's PostgreSQL, dropped at the end."""
    server = sa.create_engine(SERVER, isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as error:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {SERVER}: {error}")
        pytest.skip(f"PostgreSQL is not reachable at {SERVER}")
    name = "console_test_" + uuid.uuid4().hex[:10]
    with server.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield name, sa.engine.make_url(SERVER).set(database=name)
    finally:
        with server.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


@pytest.fixture(scope="module")
def backend(postgres_db, tmp_path_factory):
    from tests.servers import running_servers

    if not MODEL.exists():
        pytest.fail("no trained model: run `make train` (make test does it)")
    name, url = postgres_db
    workdir = tmp_path_factory.mktemp("console-postgres")
    credentials = workdir / "credentials.yml"
    credentials.write_text(CREDENTIALS)
    tracker_store = (
        f'tracker_store:\n  type: SQL\n  dialect: "postgresql"\n  url: "{url.host}"\n'
        f'  port: {url.port or 5432}\n  db: "{name}"\n  username: "{url.username}"\n'
    )
    if url.password:
        tracker_store += f'  password: "{url.password}"\n'
    db_url = url.render_as_string(hide_password=False)
    with running_servers(workdir, tracker_store=tracker_store, credentials=credentials) as servers:
        web = "console-web-" + uuid.uuid4().hex[:8]
        say_socketio(servers.rasa_url, web, ["bonjour", "comment joindre le service client ?"])
        engine = sa.create_engine(db_url)
        wait_for_events(engine, web, 2)
        engine.dispose()
        yield from make_backend(servers.say, db_url, workdir, extra_senders={"socketio": web})


class TestConsolePostgres(ConsoleSuite):
    def test_both_channels_are_told_apart(self, backend):
        from tests.test_console import listed

        client = backend.client()
        assert listed(client, backend, channel="socketio") == ["socketio"]
        assert "socketio" not in listed(client, backend, channel="rest")
        assert "puk" in listed(client, backend, channel="rest")
