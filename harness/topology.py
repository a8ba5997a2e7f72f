"""The production topology of deploy/prod.py (action server, two Rasa instances with the
PostgreSQL tracker store and the Redis lock store, nginx), on free ports, for the tests and
bench/load.py, with:
- a PostgreSQL database of its own (created, dropped at the end),
- a Redis key prefix of its own in Redis database `redis_db` (its keys deleted at the end),
- with `messenger=True`, Messenger enabled (random FB_* secrets) and its Graph API pointed at a
  local stub (harness.graph_stub),
- nginx's per-address limits raised (TEST_NGINX_LIMITS): every test and benchmark client comes
  from 127.0.0.1, as many customers at once. `ProdTopology.nginx_settings(...)` puts other
  values (the production defaults of deploy/prod.py) in place for a test, with an nginx reload.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import Any

from deploy.prod import Topology, settings
from harness.graph_stub import GraphStub
from harness.ports import free_ports
from harness.postgres import ScratchDatabase, scratch_database
from harness.project import require_model
from harness.redis import ScratchRedis, scratch_redis
from harness.servers import say_rest, tracker_ids
from harness.waiting import poll_until

# What deploy/prod.py reads or derives: never taken from the environment of the run.
_SETTING_PREFIXES = ("FB_", "DB_", "REDIS_", "NGINX_", "ACTION_", "RASA_")
_DEFAULTS_UNDER_TEST = ("CHAT_CAGOU_RATE_LIMIT", "CHAT_CAGOU_MAX_MESSAGE_CHARS", "CHAT_CAGOU_WEB_ORIGINS")

TEST_NGINX_LIMITS = {
    "NGINX_RATE_PER_IP": "1000r/s",
    "NGINX_BURST_PER_IP": "1000",
    "NGINX_SOCKET_RATE_PER_IP": "1000r/s",
    "NGINX_SOCKET_BURST_PER_IP": "1000",
    "NGINX_MESSENGER_RATE": "1000r/s",
    "NGINX_MESSENGER_BURST": "1000",
    "NGINX_CONN_PER_IP": "1000",
    "NGINX_SOCKET_CONN_PER_IP": "1000",
}


class ProdTopology:
    """The running topology, its database, its Redis prefix and (with Messenger) the Graph API stub."""

    def __init__(
        self,
        topology: Topology,
        database: ScratchDatabase,
        redis: ScratchRedis,
        token: str,
        fb: dict[str, str],
        graph: GraphStub | None,
    ) -> None:
        self.topology = topology
        self.database = database
        self.redis = redis
        self.token = token
        self.fb = fb
        self._graph = graph
        self.url = topology.public_url

    @property
    def graph(self) -> GraphStub:
        if self._graph is None:
            raise RuntimeError("started without Messenger: no Graph API stub")
        return self._graph

    def rasa_url(self, index: int) -> str:
        return self.topology.rasa_url(index)

    def alive_rasa_urls(self) -> list[str]:
        return [self.rasa_url(i) for i in range(len(self.topology.rasa_ports)) if self.topology.rasa_alive(i)]

    def say(
        self, sender: str, message: Any, base: str | None = None, timeout: float = 90
    ) -> list[dict[str, Any]]:
        """One message through nginx (or the instance at `base`); returns the bot's messages."""
        return say_rest(base or self.url, sender, message, timeout)

    def events(self, sender: str) -> list[dict[str, Any]]:
        """The events of the client id `sender` (harness.servers.tracker_ids) in the PostgreSQL
        tracker store, in order."""
        with self.database.connect() as db, db.cursor() as cur:
            cur.execute(
                "SELECT data FROM events WHERE sender_id = ANY(%s) ORDER BY id", (tracker_ids(sender),)
            )
            return [json.loads(data) for (data,) in cur.fetchall()]

    @contextmanager
    def nginx_settings(self, values: dict[str, str]) -> Iterator[None]:
        """nginx reloaded with `values` (e.g. the production limits), then with the old ones."""
        saved = {name: self.topology.env[name] for name in values}
        self._reload_nginx(values)
        try:
            yield
        finally:
            self._reload_nginx(saved)

    def _reload_nginx(self, values: dict[str, str]) -> None:
        self.topology.env.update(values)
        self.topology.env["NGINX_REAL_IP_DIRECTIVES"] = settings(
            {"NGINX_REAL_IP_FROM": self.topology.env.get("NGINX_REAL_IP_FROM", "")}
        )["NGINX_REAL_IP_DIRECTIVES"]
        conf = self.topology.nginx_conf()
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        run_dir = str(self.topology.run_dir)
        subprocess.run(
            [nginx, "-t", "-q", "-p", run_dir, "-e", run_dir + "/nginx-error.log", "-c", str(conf)],
            check=True,
        )
        assert self.topology.nginx is not None
        self.topology.nginx.send_signal(signal.SIGHUP)
        time.sleep(2)  # the new workers take over; the old ones finish their requests

    def user_texts(self, sender: str) -> list[str]:
        return [e.get("text") or "" for e in self.events(sender) if e.get("event") == "user"]

    def wait_user_texts(self, sender: str, expected: list[str], timeout: float = 20) -> list[str]:
        return poll_until(lambda: self.user_texts(sender), expected, timeout, interval=0.2)


def nginx_installed() -> bool:
    return bool(shutil.which("nginx")) or Path("/usr/sbin/nginx").exists()


@contextmanager
def running_prod(
    run_dir: Path, redis_db: int, messenger: bool = False, extra_env: dict[str, str] | None = None
) -> Iterator[ProdTopology]:
    """The topology started in `run_dir` (logs, nginx files), stopped and cleaned up at the end.
    `extra_env`: more variables for every process (a test clock, the console's address)."""
    require_model()
    if not nginx_installed():
        raise RuntimeError("nginx is not installed (.ci/run installs it: apt-get install -y nginx)")
    with ExitStack() as stack:
        database = stack.enter_context(scratch_database())
        redis = stack.enter_context(scratch_redis(redis_db))
        graph = stack.enter_context(closing(GraphStub())) if messenger else None
        token = secrets.token_hex(32)
        fb = {
            "FB_VERIFY": "verify-" + secrets.token_hex(16),
            "FB_SECRET": "secret-" + secrets.token_hex(16),
            "FB_PAGE_ACCESS_TOKEN": "page-" + secrets.token_hex(16),
        }
        # 2 Rasa instances, 1 action server (deploy/prod.py's default; the tests run 2, extra_env
        # ACTION_SERVERS, each reading the fiche's published version: issue 16), nginx public +
        # action balancer
        ports = free_ports(6)
        env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(_SETTING_PREFIXES) and k not in _DEFAULTS_UNDER_TEST
            },
            "RASA_AUTH_TOKEN": token,
            "CHAT_CAGOU_SESSION_SECRET": secrets.token_hex(32),
            **TEST_NGINX_LIMITS,
            "DB_HOST": database.host,
            "DB_PORT": str(database.port),
            "DB_USER": database.user,
            "DB_PASSWORD": "",
            "DB_NAME": database.name,
            "DB_LOGIN_DB": "",
            "REDIS_HOST": redis.host,
            "REDIS_PORT": str(redis.port),
            "REDIS_DB": str(redis.db),
            "REDIS_PASSWORD": "",
            "REDIS_KEY_PREFIX": redis.prefix,
            "RASA_INSTANCES": "2",
            "RASA_PORT_BASE": str(ports[0]),
            "ACTION_SERVERS": "1",
            "ACTION_PORT_BASE": str(ports[2]),
            "NGINX_HOST": "127.0.0.1",
            "NGINX_PORT": str(ports[4]),
            "ACTION_LB_PORT": str(ports[5]),
            "FB_DEDUPE_DB": str(run_dir / "messenger_mids.db"),
            "SANIC_GRACEFUL_SHUTDOWN_TIMEOUT": "2",
        }
        if graph is not None:
            env.update(fb, FB_MESSENGER_REQUIRED="true", FB_GRAPH_API_URL=graph.url)
        env.update(extra_env or {})
        topology = Topology(run_dir, env)
        topology.start()  # stops what it started when a part fails
        stack.callback(topology.stop)
        yield ProdTopology(topology, database, redis, token, fb, graph)
