"""The production topology (deploy/prod.py) for the tests, started once per test session.

A pytest plugin: test modules load it with `pytest_plugins = ["tests.prod_topology"]` and ask
for the `prod` fixture. It starts what `make run-prod` starts (action server, two Rasa
instances with the PostgreSQL tracker store and the Redis lock store, nginx), on free ports,
with:
- its own PostgreSQL database (created here, dropped at the end),
- its own Redis database number (CHAT_CAGOU_TEST_REDIS_DB, default 9) and key prefix
  (keys deleted at the end),
- Messenger enabled (FB_* test secrets), its Graph API pointed to a local stub server.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg2
import pytest
import redis
import requests

from deploy.prod import Topology
from tests.servers import MODEL, poll_until

PG = dict(
    host=os.environ.get("CHAT_CAGOU_TEST_PG_HOST", "127.0.0.1"),
    port=int(os.environ.get("CHAT_CAGOU_TEST_PG_PORT", "5432")),
    user=os.environ.get("CHAT_CAGOU_TEST_PG_USER", "postgres"),
)
REDIS_DB = int(os.environ.get("CHAT_CAGOU_TEST_REDIS_DB", "9"))
FB = {
    "FB_VERIFY": "verify-" + secrets.token_hex(16),
    "FB_SECRET": "secret-" + secrets.token_hex(16),
    "FB_PAGE_ACCESS_TOKEN": "page-" + secrets.token_hex(16),
}


def free_ports(count: int) -> int:
    """The first of `count` consecutive free loopback ports."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count > 65535:
            continue
        ok = True
        for port in range(base, base + count):
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port range")


class GraphStub:
    """Records what Chat Cagou would have sent to Facebook's Send API."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with stub.lock:
                    stub.sent.append(json.loads(body or b"{}"))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"recipient_id": "x", "message_id": "m"}')

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self, recipient: str) -> list[str]:
        with self.lock:
            return [
                m["message"]["text"]
                for m in self.sent
                if m.get("recipient", {}).get("id") == recipient and "text" in m.get("message", {})
            ]

    def wait_texts(self, recipient: str, count: int, timeout: float = 60) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            texts = self.texts(recipient)
            if len(texts) >= count:
                return texts
            time.sleep(0.2)
        return self.texts(recipient)

    def stop(self) -> None:
        self.server.shutdown()


class Prod:
    """The running topology, its database, its Redis and the Graph API stub."""

    def __init__(
        self, topology: Topology, db_name: str, token: str, graph: GraphStub, redis_prefix: str
    ) -> None:
        self.topology = topology
        self.db_name = db_name
        self.token = token
        self.graph = graph
        self.redis_prefix = redis_prefix
        self.redis_db = REDIS_DB
        self.fb = FB
        self.url = topology.public_url

    def rasa_url(self, index: int) -> str:
        return self.topology.rasa_url(index)

    def alive_rasa_urls(self) -> list[str]:
        return [self.rasa_url(i) for i in range(len(self.topology.rasa_ports)) if self.topology.rasa_alive(i)]

    def say(self, sender: str, message, base: str | None = None, timeout: float = 90) -> list[dict]:
        response = requests.post(
            f"{base or self.url}/webhooks/rest/webhook",
            json={"sender": sender, "message": message},
            timeout=timeout,
        )
        response.raise_for_status()
        return response.json()

    def connect(self):
        return psycopg2.connect(dbname=self.db_name, **PG)

    def events(self, sender: str) -> list[dict]:
        with self.connect() as db, db.cursor() as cur:
            cur.execute("SELECT data FROM events WHERE sender_id = %s ORDER BY id", (sender,))
            return [json.loads(data) for (data,) in cur.fetchall()]

    def user_texts(self, sender: str) -> list[str]:
        return [e.get("text") for e in self.events(sender) if e.get("event") == "user"]

    def wait_user_texts(self, sender: str, expected: list[str], timeout: float = 20) -> list[str]:
        return poll_until(lambda: self.user_texts(sender), expected, timeout, interval=0.2)


def texts(messages: list[dict]) -> str:
    return "\n".join(m.get("text", "") for m in messages)


@pytest.fixture(scope="session")
def prod(tmp_path_factory) -> Iterator[Prod]:
    if not MODEL.exists():
        pytest.fail("no trained model: run `make train` (make test does it)")
    if not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists():
        pytest.fail("nginx is not installed (.ci/run installs it: apt-get install -y nginx)")
    run_dir = tmp_path_factory.mktemp("prod")
    db_name = f"chat_cagou_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(dbname="postgres", **PG)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{db_name}"')
    prefix = "chatcagoutest" + uuid.uuid4().hex[:8]
    token = secrets.token_hex(32)
    graph = GraphStub()
    rasa_base, action_base, lb = free_ports(2), free_ports(1), free_ports(2)
    env = {
        **os.environ,
        "RASA_AUTH_TOKEN": token,
        "DB_HOST": PG["host"],
        "DB_PORT": str(PG["port"]),
        "DB_USER": PG["user"],
        "DB_PASSWORD": "",
        "DB_NAME": db_name,
        "DB_LOGIN_DB": "",
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": "6379",
        "REDIS_DB": str(REDIS_DB),
        "REDIS_PASSWORD": "",
        "REDIS_KEY_PREFIX": prefix,
        "RASA_INSTANCES": "2",
        "RASA_PORT_BASE": str(rasa_base),
        "ACTION_SERVERS": "1",
        "ACTION_PORT_BASE": str(action_base),
        "NGINX_HOST": "127.0.0.1",
        "NGINX_PORT": str(lb),
        "ACTION_LB_PORT": str(lb + 1),
        "FB_MESSENGER_REQUIRED": "true",
        **FB,
        "FB_GRAPH_API_URL": graph.url,
        "FB_DEDUPE_DB": str(run_dir / "messenger_mids.db"),
        "SANIC_GRACEFUL_SHUTDOWN_TIMEOUT": "2",
    }
    for name in (
        "ACTION_SERVER_URL",
        "RASA_UPSTREAM_SERVERS",
        "ACTION_UPSTREAM_SERVERS",
        "NGINX_LISTEN",
        "ACTION_LB_LISTEN",
        "CHAT_CAGOU_RATE_LIMIT",
        "CHAT_CAGOU_MAX_MESSAGE_CHARS",
    ):
        env.pop(name, None)  # derived by deploy/prod.py, or defaults under test
    topology = Topology(run_dir, env)
    try:
        topology.start()
        yield Prod(topology, db_name, token, graph, prefix)
    finally:
        topology.stop()
        graph.stop()
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        admin.close()
        red = redis.Redis(db=REDIS_DB)
        for key in red.scan_iter(match=prefix + "*"):
            red.delete(key)
