"""The production topology on one machine: action servers, Rasa instances, nginx.

    python -m deploy.prod          # what `make run-prod` (deploy/run-prod.sh) runs

Everything is configured through environment variables (defaults below are for one machine
with PostgreSQL and Redis on loopback; secrets have no default, deploy/check_env.py checks
them). The same files are used by deploy/docker-compose.yml: deploy/endpoints.prod.yml,
credentials.yml, deploy/nginx/chat-cagou.conf.template.

    ACTION_SERVERS x rasa_sdk (ACTION_PORT_BASE, +1...)    <- nginx :ACTION_LB_PORT (internal)
    RASA_INSTANCES x `rasa run` (RASA_PORT_BASE, +1...)    <- nginx :NGINX_PORT (public)
    PostgreSQL tracker store (DB_*), Redis lock store and rate limit (REDIS_*)

`Topology` is also what the reliability tests and bench/load.py start, kill and restart.
nginx runs as its own process with its own configuration, pid and logs under the run
directory (RUN_DIR, default logs/prod): no system service is involved.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from deploy.check_env import check_or_exit
from harness.processes import spawn
from harness.processes import stop as stop_process
from harness.waiting import wait_http

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
NGINX_TEMPLATE = DEPLOY / "nginx" / "chat-cagou.conf.template"
ENDPOINTS = DEPLOY / "endpoints.prod.yml"
CREDENTIALS = ROOT / "credentials.yml"
PYTHON = Path(sys.executable)

# Non-secret settings and their defaults (one machine, services on loopback).
DEFAULTS: dict[str, str] = {
    "RASA_INSTANCES": "2",
    "RASA_PORT_BASE": "5005",
    "RASA_INTERFACE": "127.0.0.1",
    "ACTION_SERVERS": "1",
    "ACTION_PORT_BASE": "5055",
    "ACTION_LB_PORT": "5050",
    "ACTION_TIMEOUT": "10s",
    "NGINX_HOST": "127.0.0.1",
    "NGINX_PORT": "8000",
    # Flood guard per client address: the values and why are in deploy/nginx/chat-cagou.conf.template.
    "NGINX_RATE_PER_IP": "5r/s",
    "NGINX_BURST_PER_IP": "20",
    "NGINX_SOCKET_RATE_PER_IP": "10r/s",
    "NGINX_SOCKET_BURST_PER_IP": "40",
    "NGINX_MESSENGER_RATE": "20r/s",
    "NGINX_MESSENGER_BURST": "100",
    "NGINX_CONN_PER_IP": "10",
    "NGINX_SOCKET_CONN_PER_IP": "20",
    "NGINX_REAL_IP_FROM": "",  # addresses of a trusted load balancer (comma-separated), none by default
    "DB_HOST": "127.0.0.1",
    "DB_PORT": "5432",
    "DB_NAME": "chat_cagou",
    "DB_USER": "postgres",
    "DB_PASSWORD": "",
    "DB_LOGIN_DB": "postgres",
    "REDIS_HOST": "127.0.0.1",
    "REDIS_PORT": "6379",
    "REDIS_DB": "1",
    "REDIS_PASSWORD": "",
    "REDIS_KEY_PREFIX": "chatcagou",
    "TICKET_LOCK_LIFETIME": "20",
    "CHAT_CAGOU_RATE_LIMIT_STORE": "redis",
    "CHAT_CAGOU_SOCKETIO_STORE": "redis",
    "CHAT_CAGOU_SESSION_MAX_EVENTS": "400",
    "CHAT_CAGOU_SESSION_MAX_HOURS": "24",
    "FB_DEDUPE_STORE": "redis",
    "FB_SHUTDOWN_TIMEOUT": "8",
    "CHAT_CAGOU_MODEL": "models/chat-cagou.tar.gz",
    "RASA_TELEMETRY_ENABLED": "false",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "SANIC_GRACEFUL_SHUTDOWN_TIMEOUT": "5",
}

_TEMPLATE_VAR = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def render(template: str, values: Mapping[str, str]) -> str:
    """${NAME} replaced from `values`, like the nginx image's envsubst; an unknown name is an error."""
    lines = template.splitlines(keepends=True)
    code = [line for line in lines if not line.lstrip().startswith("#")]  # comments kept as they are
    missing = sorted({m for line in code for m in _TEMPLATE_VAR.findall(line) if m not in values})
    if missing:
        raise KeyError(f"template variables not set: {', '.join(missing)}")
    return "".join(
        line if line.lstrip().startswith("#") else _TEMPLATE_VAR.sub(lambda m: values[m.group(1)], line)
        for line in lines
    )


def upstream_servers(addresses: list[str], options: str = "") -> str:
    return " ".join(f"server {a}{' ' + options if options else ''};" for a in addresses)


def settings(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of the topology: defaults, then `env`, then derived values."""
    values = {**DEFAULTS, **(os.environ if env is None else env)}
    rasa_ports = [int(values["RASA_PORT_BASE"]) + i for i in range(int(values["RASA_INSTANCES"]))]
    action_ports = [int(values["ACTION_PORT_BASE"]) + i for i in range(int(values["ACTION_SERVERS"]))]
    values.setdefault("ACTION_SERVER_URL", f"http://127.0.0.1:{values['ACTION_LB_PORT']}/webhook")
    values.setdefault(
        "RASA_UPSTREAM_SERVERS",
        upstream_servers([f"127.0.0.1:{p}" for p in rasa_ports], "max_fails=1 fail_timeout=5s"),
    )
    values.setdefault(
        "ACTION_UPSTREAM_SERVERS",
        upstream_servers([f"127.0.0.1:{p}" for p in action_ports], "max_fails=1 fail_timeout=2s"),
    )
    values.setdefault("NGINX_LISTEN", f"{values['NGINX_HOST']}:{values['NGINX_PORT']}")
    values.setdefault("ACTION_LB_LISTEN", f"127.0.0.1:{values['ACTION_LB_PORT']}")
    values.setdefault("NGINX_REAL_IP_DIRECTIVES", real_ip_directives(values["NGINX_REAL_IP_FROM"]))
    # the action servers read the fiche's published version in the tracker store's database
    values.setdefault("FICHE_DB_URL", database_url(values))
    return values


def database_url(values: Mapping[str, str]) -> str:
    """The SQLAlchemy URL of the PostgreSQL tracker store that DB_* describe."""
    from sqlalchemy.engine.url import URL

    return URL.create(
        "postgresql",
        username=values["DB_USER"] or None,
        password=values["DB_PASSWORD"] or None,
        host=values["DB_HOST"],
        port=int(values["DB_PORT"]),
        database=values["DB_NAME"],
    ).render_as_string(hide_password=False)


def real_ip_directives(trusted: str) -> str:
    """One `set_real_ip_from` per address or range of NGINX_REAL_IP_FROM (empty: none)."""
    return " ".join(f"set_real_ip_from {item};" for item in re.split(r"[,\s]+", trusted.strip()) if item)


class Topology:
    """Action servers + Rasa instances + nginx, started from `settings(env)`."""

    def __init__(self, run_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.env = settings(env)
        self.rasa_ports = [
            int(self.env["RASA_PORT_BASE"]) + i for i in range(int(self.env["RASA_INSTANCES"]))
        ]
        self.action_ports = [
            int(self.env["ACTION_PORT_BASE"]) + i for i in range(int(self.env["ACTION_SERVERS"]))
        ]
        self.public_url = f"http://{self.env['NGINX_HOST']}:{self.env['NGINX_PORT']}"
        self.actions: list[subprocess.Popen[bytes] | None] = [None] * len(self.action_ports)
        self.rasa: list[subprocess.Popen[bytes] | None] = [None] * len(self.rasa_ports)
        self.nginx: subprocess.Popen[bytes] | None = None
        self.retention: subprocess.Popen[bytes] | None = None

    # --- addresses ------------------------------------------------------------------
    def rasa_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.rasa_ports[index]}"

    def action_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.action_ports[index]}"

    # --- action servers -------------------------------------------------------------
    def start_actions(self, index: int | None = None, wait: bool = True) -> None:
        started = []
        for i in range(len(self.action_ports)) if index is None else [index]:
            log = self.run_dir / f"actions-{i + 1}.log"
            command = [
                str(PYTHON),
                "-m",
                "rasa_sdk",
                "--actions",
                "actions",
                "--port",
                str(self.action_ports[i]),
            ]
            env = {**self.env, "SANIC_HOST": "127.0.0.1", "ACTION_SERVER_NAME": f"actions-{i + 1}"}
            proc = spawn(command, log, env, new_session=True)
            self.actions[i] = proc
            started.append((self.action_url(i) + "/health", proc, log))
        if wait:
            for url, proc, log in started:
                wait_http(url, proc, log)

    def stop_actions(self, index: int | None = None, sig: int = signal.SIGTERM) -> None:
        for i in range(len(self.action_ports)) if index is None else [index]:
            stop_process(self.actions[i], sig)

    # --- Rasa -----------------------------------------------------------------------
    def rasa_command(self, index: int) -> list[str]:
        return [
            str(PYTHON),
            "-m",
            "deploy.rasa_run",
            "--model",
            self.env["CHAT_CAGOU_MODEL"],
            "--interface",
            self.env["RASA_INTERFACE"],
            "--port",
            str(self.rasa_ports[index]),
            "--credentials",
            str(CREDENTIALS),
            "--endpoints",
            str(ENDPOINTS),
        ]

    def start_rasa(self, index: int | None = None, wait: bool = True) -> None:
        indexes = range(len(self.rasa_ports)) if index is None else [index]
        for i in indexes:
            log = self.run_dir / f"rasa-{i + 1}.log"
            self.rasa[i] = spawn(self.rasa_command(i), log, self.env, new_session=True)
        if wait:
            for i in indexes:
                self.wait_rasa(i)

    def wait_rasa(self, index: int, timeout: float = 300) -> None:
        wait_http(
            self.rasa_url(index) + "/", self.rasa[index], self.run_dir / f"rasa-{index + 1}.log", timeout
        )

    def kill_rasa(self, index: int, sig: int = signal.SIGKILL) -> None:
        proc = self.rasa[index]
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(timeout=30)

    def rasa_alive(self, index: int) -> bool:
        proc = self.rasa[index]
        return proc is not None and proc.poll() is None

    # --- nginx ----------------------------------------------------------------------
    def nginx_conf(self) -> Path:
        """The rendered site configuration and a main file with every path in run_dir."""
        site = self.run_dir / "chat-cagou.conf"
        site.write_text(render(NGINX_TEMPLATE.read_text(), self.env))
        temp = self.run_dir / "nginx-temp"
        temp.mkdir(exist_ok=True)
        user = "user www-data www-data;\n" if os.geteuid() == 0 else ""
        main = self.run_dir / "nginx.conf"
        main.write_text(
            "# Generated by deploy/prod.py: nginx as a process of the topology, not a system service.\n"
            f"{user}worker_processes 1;\n"
            f"pid {self.run_dir / 'nginx.pid'};\n"
            f"error_log {self.run_dir / 'nginx-error.log'} warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            f"    access_log {self.run_dir / 'nginx-access.log'};\n"
            "    default_type application/octet-stream;\n"
            + "".join(
                f"    {kind}_temp_path {temp / kind};\n"
                for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            )
            + f"    include {site};\n"
            "}\n"
        )
        return main

    def start_nginx(self) -> None:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        conf = self.nginx_conf()
        log = self.run_dir / "nginx-error.log"
        check = subprocess.run(
            [nginx, "-t", "-q", "-p", str(self.run_dir), "-e", str(log), "-c", str(conf)],
            capture_output=True,
            text=True,
        )
        if check.returncode != 0:
            raise RuntimeError(f"nginx configuration refused:\n{check.stderr}")
        command = [nginx, "-p", str(self.run_dir), "-e", str(log), "-c", str(conf), "-g", "daemon off;"]
        self.nginx = spawn(command, self.run_dir / "nginx.out", os.environ, cwd=None, new_session=True)
        wait_http(self.public_url + "/healthz", self.nginx, log, timeout=30)

    def stop_nginx(self) -> None:
        stop_process(self.nginx, signal.SIGQUIT)  # graceful: finish the requests in progress

    # --- retention purge (docs/console.md) ------------------------------------------
    def retention_command(self) -> list[str] | None:
        """With CHAT_CAGOU_RETENTION_DAYS set: events older than that are deleted at start and
        then daily by `python -m console retention`, on the tracker store of ENDPOINTS."""
        if not self.env.get("CHAT_CAGOU_RETENTION_DAYS", "").strip():
            return None
        return [str(PYTHON), "-m", "console", "retention"]

    def start_retention(self) -> None:
        command = self.retention_command()
        if command:
            env = {**self.env, "CONSOLE_ENDPOINTS": str(ENDPOINTS)}
            self.retention = spawn(command, self.run_dir / "retention.log", env, new_session=True)

    # --- all ------------------------------------------------------------------------
    def start(self) -> Topology:
        try:
            self.start_actions()
            self.start_nginx()
            self.start_rasa()  # all instances load their model in parallel
            self.start_retention()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop_process(self.retention)
        for proc in self.rasa:
            stop_process(proc)
        self.stop_nginx()
        for proc in self.actions:
            stop_process(proc)

    def supervise(self, max_restarts: int = 5) -> None:
        """Until SIGINT/SIGTERM: restart a process that died (at most `max_restarts` each)."""
        restarts: dict[str, int] = {}
        stopping = []
        for sig in (signal.SIGTERM, signal.SIGINT):  # SIGINT too: it may be inherited as ignored
            signal.signal(sig, lambda *_: stopping.append(True))
        try:
            while not stopping:
                time.sleep(2)
                for kind, procs, start in (
                    ("actions", self.actions, self.start_actions),
                    ("rasa", self.rasa, self.start_rasa),
                ):
                    for i, proc in enumerate(procs):
                        if proc is not None and proc.poll() is not None and not stopping:
                            name = f"{kind}-{i + 1}"
                            restarts[name] = restarts.get(name, 0) + 1
                            if restarts[name] > max_restarts:
                                raise RuntimeError(f"{name} keeps stopping: see {self.run_dir}/{name}.log")
                            print(f"{name} exited ({proc.returncode}): restarting", flush=True)
                            start(i, wait=False)
                if self.nginx is not None and self.nginx.poll() is not None:
                    raise RuntimeError(f"nginx exited: see {self.run_dir}/nginx-error.log")
                if self.retention is not None and self.retention.poll() is not None:
                    # the chat goes on without it; the operator is told
                    print(f"retention purge stopped: see {self.run_dir}/retention.log", flush=True)
                    self.retention = None
        except KeyboardInterrupt:
            pass


def main() -> None:
    check_or_exit()
    env = settings()
    run_dir = Path(env.get("RUN_DIR") or ROOT / "logs" / "prod")
    topology = Topology(run_dir, env)
    print(
        f"Chat Cagou (production): starting {len(topology.action_ports)} action server(s), "
        f"{len(topology.rasa_ports)} Rasa instance(s) and nginx; logs in {run_dir}",
        flush=True,
    )
    topology.start()
    try:
        print(
            f"Ready: {topology.public_url}/webhooks/rest/webhook (REST), {topology.public_url}/socket.io/ "
            f"(widget), {topology.public_url}/webhooks/facebook/webhook (Messenger).\n"
            f"Rasa instances: {', '.join(topology.rasa_url(i) for i in range(len(topology.rasa_ports)))} "
            "(HTTP API with RASA_AUTH_TOKEN). Ctrl-C stops everything.",
            flush=True,
        )
        topology.supervise()
    finally:
        topology.stop()


if __name__ == "__main__":
    main()
