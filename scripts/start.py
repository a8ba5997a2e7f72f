"""`make run`: the action server, Rasa, the review console and the chat page, quietly.

    .venv/bin/python scripts/start.py            # make run (scripts/run.sh)
    .venv/bin/python scripts/start.py --shell    # make shell: the action server, then `rasa shell`

Each server writes to its own log (logs/actions.log, rasa.log, console.log, web.log, replaced
at each start); the terminal gets one line while they start, then, once every one of them
answers, a short block saying where to talk to the assistant. If a server stops during the
start (or later), the terminal gets which one and the end of its log, the others are stopped
and the exit code is 1. Ctrl-C (or SIGTERM, SIGHUP) stops them all: each server runs in its
own session, so it is this script that stops them, in order, and none is left behind (on
Linux they also get SIGTERM if this script is killed outright).

Rasa is ready when it has loaded the model and parsed a question with it (scripts/launch.py
writes a readiness file before Rasa listens) and answers GET /; the action server when
GET /health answers; the console and the chat page when they answer HTTP.

Environment (all optional):
  RASA_PORT 5005, ACTION_PORT 5055, CONSOLE_PORT 8090, WEB_PORT 8080
  CHAT_CAGOU_TRACKER_DB   SQLite file of the conversations (default: endpoints.yml's, tracker.db);
                          the console reads the same file
  CHAT_CAGOU_LOG_DIR      where the logs go (default logs/)
  CONSOLE_SECRET_KEY      the console's key; without it the console runs with --dev
  RASA_URL                the Rasa address the chat page uses (default http://localhost:RASA_PORT)
  START_TIMEOUT           seconds to wait for the servers (default 300)
  CHAT_CAGOU_RETENTION_DAYS  the retention the privacy notice states (unset: no number given)
  RASA_AUTH_TOKEN         the token of Rasa's HTTP API, which the console's live desk uses
                          (default: a random one per start)
  CHAT_CAGOU_PRIVACY_URL  the privacy page of the first message (default: the chat page's
                          /confidentialite)

Rasa reads a copy of endpoints.yml (LOG_DIR/run/endpoints.yml) with the action server's port
and the tracker file filled in; nothing of the repository is modified.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from terminal import Status, duration  # scripts/ is on sys.path: this file is run as a script

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # console.* for the staff account check

PY = sys.executable
MODEL = ROOT / "models" / "chat-cagou.tar.gz"
TAIL_LINES = 20
STOP_GRACE = 15.0  # seconds between SIGTERM and SIGKILL
# HTTP probes go straight to localhost, whatever http_proxy says
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class StartError(Exception):
    """A server cannot start; the message says which and why (for the terminal)."""

    def __init__(self, message: str, server: Server | None = None) -> None:
        super().__init__(message)
        self.server = server


class Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def shown_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def exit_text(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"code {code}"


def answers(url: str, timeout: float = 2.0) -> bool:
    """True when `url` answers HTTP without a server error."""
    try:
        with OPENER.open(url, timeout=timeout) as response:
            return response.status < 500
    except urllib.error.HTTPError as error:
        return error.code < 500
    except (OSError, ValueError):
        return False


def tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    try:
        with path.open(encoding="utf-8", errors="replace") as file:
            return [line.rstrip("\n").split("\r")[-1] for line in deque(file, maxlen=lines)]
    except OSError:
        return []


_LIBC: Any = None
if sys.platform.startswith("linux"):
    try:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    except OSError:
        _LIBC = None


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when this script dies (PR_SET_PDEATHSIG, Linux)."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)


@dataclass
class Server:
    name: str  # log file name
    label: str  # for the terminal, in the middle of a sentence
    command: list[str]
    probe: Callable[[Server], bool]
    log: Path
    env: dict[str, str]
    waiting: str = ""  # what the terminal says while it is the last one not ready
    proc: subprocess.Popen | None = None
    ready: bool = False
    log_file: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_file = self.log.open("wb")
        self.proc = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches this script only; it stops the servers
            preexec_fn=_die_with_parent,  # no threads in this script: preexec_fn is safe
        )

    def stopped(self) -> str:
        return f"{self.label} stopped"

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def signal(self, signum: int) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)  # its whole group (session), should it have children

    def close(self) -> None:
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None


@dataclass
class Settings:
    rasa_port: int
    action_port: int
    console_port: int
    web_port: int
    log_dir: Path
    tracker_db: Path | None
    timeout: float

    @classmethod
    def from_env(cls) -> Settings:
        def port(name: str, default: int) -> int:
            value = os.environ.get(name, "").strip() or str(default)
            if not value.isdigit() or not 0 < int(value) < 65536:
                raise StartError(f"{name}={value!r} is not a port number")
            return int(value)

        tracker = os.environ.get("CHAT_CAGOU_TRACKER_DB", "").strip()
        return cls(
            rasa_port=port("RASA_PORT", 5005),
            action_port=port("ACTION_PORT", 5055),
            console_port=port("CONSOLE_PORT", 8090),
            web_port=port("WEB_PORT", 8080),
            log_dir=(ROOT / os.environ.get("CHAT_CAGOU_LOG_DIR", "logs")).resolve(),
            tracker_db=Path(tracker).resolve() if tracker else None,
            timeout=float(os.environ.get("START_TIMEOUT", "300")),
        )


def write_endpoints(settings: Settings, path: Path) -> None:
    """endpoints.yml with the action server's port and an absolute tracker file."""
    data = yaml.safe_load((ROOT / "endpoints.yml").read_text(encoding="utf-8")) or {}
    action = dict(data.get("action_endpoint") or {})
    parts = urlsplit(action.get("url") or "http://localhost/webhook")
    action["url"] = urlunsplit(parts._replace(netloc=f"{parts.hostname}:{settings.action_port}"))
    data["action_endpoint"] = action
    store = data.get("tracker_store") or {}
    if str(store.get("type", "")).lower() == "sql" and str(store.get("dialect", "sqlite")).startswith(
        "sqlite"
    ):
        db = settings.tracker_db or (ROOT / str(store.get("db") or "rasa.db"))
        store["db"] = str(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Written by scripts/start.py from endpoints.yml at each start: edit endpoints.yml instead.\n"
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def web_origins(settings: Settings) -> str | None:
    """CHAT_CAGOU_WEB_ORIGINS for a chat page on another port than credentials.yml's 8080."""
    if os.environ.get("CHAT_CAGOU_WEB_ORIGINS") or settings.web_port == 8080:
        return None
    credentials = yaml.safe_load((ROOT / "credentials.yml").read_text(encoding="utf-8")) or {}
    socketio = credentials.get("channels.socketio.SocketIOInput") or {}
    origins = list(socketio.get("cors_allowed_origins") or [])
    origins += [f"http://localhost:{settings.web_port}", f"http://127.0.0.1:{settings.web_port}"]
    return ",".join(origins)


def base_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("RASA_TELEMETRY_ENABLED", "false")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Sanic waits 15 s for open connections (a socket.io long-poll of an open chat tab) on stop
    env.setdefault("SANIC_GRACEFUL_SHUTDOWN_TIMEOUT", "2")
    env["PYTHONUNBUFFERED"] = "1"  # logs written as they come
    # the page the assistant's privacy notice links to (web/serve.py serves it)
    env.setdefault("CHAT_CAGOU_PRIVACY_URL", f"http://localhost:{settings.web_port}/confidentialite")
    # The live desk (console/desk.py): Rasa's HTTP API behind a token of this start, the
    # console writing through it, the action server asking the console who is present.
    env.setdefault("RASA_AUTH_TOKEN", secrets.token_urlsafe(32))
    env.setdefault("CONSOLE_RASA_URL", f"http://127.0.0.1:{settings.rasa_port}")
    env.setdefault("CHAT_CAGOU_CONSOLE_URL", f"http://127.0.0.1:{settings.console_port}")
    origins = web_origins(settings)
    if origins:
        env["CHAT_CAGOU_WEB_ORIGINS"] = origins
    return env


def fiche_db_url(endpoints: Path) -> str:
    """The console's database (the tracker store), where the fiche's versions are; empty when
    the store is not SQL (the action server then serves the file only)."""
    from sqlalchemy.engine.url import make_url

    from console.config import ConfigError, tracker_store_url

    try:
        return make_url(tracker_store_url(endpoints)).render_as_string(hide_password=False)
    except ConfigError:
        return ""


def rasa_probe(ready_file: Path, url: str) -> Callable[[Server], bool]:
    def probe(server: Server) -> bool:
        try:
            report = json.loads(ready_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        if server.proc is None or report.get("pid") != server.proc.pid:
            return False  # a file of an earlier start
        if not report.get("ready"):
            why = report.get("error") or "no model loaded"
            raise StartError(f"Rasa could not load the model ({why})", server)
        return answers(url)

    return probe


def http_probe(url: str) -> Callable[[Server], bool]:
    return lambda server: answers(url)


def make_servers(settings: Settings, shell: bool = False) -> tuple[list[Server], Path]:
    logs = settings.log_dir
    run_dir = logs / "run"
    endpoints = run_dir / "endpoints.yml"
    write_endpoints(settings, endpoints)
    # the console reads the store Rasa writes to; so does staff_accounts(), in this process
    os.environ["CONSOLE_ENDPOINTS"] = str(endpoints)
    env = base_env(settings)
    if not env.get("FICHE_DB_URL"):
        # the action server serves the fiche version published in the console's database
        env["FICHE_DB_URL"] = fiche_db_url(endpoints)
    launch = [PY, str(ROOT / "scripts" / "launch.py")]
    actions = Server(
        "actions",
        "the action server",
        [*launch, "actions", "--actions", "actions", "--port", str(settings.action_port)],
        http_probe(f"http://127.0.0.1:{settings.action_port}/health"),
        logs / "actions.log",
        env,
    )
    if shell:
        return [actions], endpoints
    ready_file = run_dir / "rasa.ready"
    rasa_env = {**env, "CHAT_CAGOU_READY_FILE": str(ready_file)}
    rasa = Server(
        "rasa",
        "Rasa",
        [*launch, "rasa", "run", "--model", str(MODEL), "--port", str(settings.rasa_port)]
        + ["--credentials", "credentials.yml", "--endpoints", str(endpoints)],
        rasa_probe(ready_file, f"http://127.0.0.1:{settings.rasa_port}/"),
        logs / "rasa.log",
        rasa_env,
        waiting="Rasa is loading the model",
    )
    console_cmd = [PY, "-m", "console", "serve", "--port", str(settings.console_port)]
    if not os.environ.get("CONSOLE_SECRET_KEY"):
        console_cmd.append("--dev")
    console = Server(
        "console",
        "the review console",
        console_cmd,
        http_probe(f"http://127.0.0.1:{settings.console_port}/"),
        logs / "console.log",
        env,
    )
    rasa_url = os.environ.get("RASA_URL") or f"http://localhost:{settings.rasa_port}"
    web = Server(
        "web",
        "the chat page",
        [PY, "web/serve.py", "--port", str(settings.web_port), "--rasa-url", rasa_url],
        http_probe(f"http://127.0.0.1:{settings.web_port}/"),
        logs / "web.log",
        env,
    )
    ready_file.unlink(missing_ok=True)  # a file of an earlier start
    return [actions, rasa, console, web], endpoints


def stop_all(servers: list[Server]) -> None:
    """SIGTERM to every server still running, SIGKILL to those alive STOP_GRACE seconds later.
    A second Ctrl-C skips the wait."""
    hurry = []
    previous = {s: signal.signal(s, lambda *_: hurry.append(1)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        running = [s for s in servers if s.exit_code() is None]
        for server in running:
            server.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        while any(s.exit_code() is None for s in running) and time.monotonic() < deadline and not hurry:
            time.sleep(0.1)
        for server in servers:
            server.signal(signal.SIGKILL)  # the stragglers, and anything left in their groups
            if server.proc is not None:
                server.proc.wait()
            server.close()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def report_failure(status: Status, error: StartError) -> None:
    status.finish(f"failed: {error}.")
    server = error.server
    if server is not None:
        lines = tail(server.log)
        if lines:
            print(f"End of {shown_path(server.log)}:")
            for line in lines:
                print("  " + line)
        print(f"Full log: {shown_path(server.log)}")


def wait_until_ready(servers: list[Server], status: Status, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for server in servers:
            code = server.exit_code()
            if code is not None:
                raise StartError(f"{server.stopped()} during start-up ({exit_text(code)})", server)
            if not server.ready:
                server.ready = server.probe(server)
        waiting = [s for s in servers if not s.ready]
        if not waiting:
            return
        if time.monotonic() > deadline:
            names = ", ".join(s.label for s in waiting)
            raise StartError(f"no answer after {duration(timeout)}: {names}", waiting[0])
        if len(waiting) == 1 and waiting[0].waiting:
            status.update(waiting[0].waiting)
        else:
            status.update("waiting for " + ", ".join(s.label for s in waiting))
        time.sleep(0.25)


def staff_accounts() -> int | None:
    """How many review console accounts exist (read-only), None if that cannot be known."""
    try:
        from console.auth import list_users
        from console.config import database_url
        from console.db import make_engine

        engine = make_engine(database_url())
        try:
            return len(list_users(engine))
        finally:
            engine.dispose()
    except Exception:  # noqa: BLE001 (no table yet, or a database the console cannot read)
        return None


def ready_block(settings: Settings, accounts: int | None) -> list[str]:
    rest = f"http://localhost:{settings.rasa_port}/webhooks/rest/webhook"
    lines = [
        "Chat Cagou is ready:",
        f"  Chat page          http://localhost:{settings.web_port}/",
        f"  Review console     http://localhost:{settings.console_port}/",
    ]
    if accounts == 0:
        lines.append("  No console account yet: make staff-user NAME=firstname.lastname ROLE=admin")
    elif accounts is None:
        lines.append("  Console accounts: make staff-user NAME=firstname.lastname ROLE=admin")
    lines += [
        f"  REST               curl -s {rest} -H 'Content-Type: application/json' \\",
        """                          -d '{"sender": "me", "message": "code PUK ?"}'""",
        f"Logs in {shown_path(settings.log_dir)}/ (rasa, actions, console, web). Ctrl-C stops everything.",
    ]
    return lines


def monitor(servers: list[Server]) -> StartError:
    """Wait until a server stops on its own (an interruption raises Interrupted)."""
    while True:
        for server in servers:
            code = server.exit_code()
            if code is not None:
                return StartError(f"{server.stopped()} ({exit_text(code)})", server)
        time.sleep(0.5)


def run(settings: Settings) -> int:
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    if not MODEL.is_file():
        print(f"No trained model ({shown_path(MODEL)}): use make run (or make train).")
        return 1
    servers, _ = make_servers(settings)
    status = Status("Starting the servers")
    status.start()
    try:
        for server in servers:
            server.start()
        wait_until_ready(servers, status, settings.timeout)
        status.finish(f"ready in {duration(status.elapsed())}")
        for line in ready_block(settings, staff_accounts()):
            print(line)
        sys.stdout.flush()
        error = monitor(servers)
        print(f"Stopping: {error}.")
        if error.server is not None:
            print(f"End of {shown_path(error.server.log)}:")
            for line in tail(error.server.log):
                print("  " + line)
        stop_all(servers)
        print("The other servers are stopped.")
        return 1
    except StartError as error:
        report_failure(status, error)
        stop_all(servers)
        print("The other servers are stopped.")
        return 1
    except (Interrupted, KeyboardInterrupt):
        if status.open:
            status.finish("interrupted")
        # on a terminal, over the "^C" it echoed
        print(("\r" if status.tty else "") + "Stopping Chat Cagou…", end=" ", flush=True)
        stop_all(servers)
        print("stopped.")
        return 0
    finally:
        stop_all(servers)  # nothing left running, whatever happened


def shell(settings: Settings) -> int:
    """The action server in the background, `rasa shell` in the foreground."""
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    servers, endpoints = make_servers(settings, shell=True)
    status = Status("Starting the action server")
    status.start()
    try:
        for server in servers:
            server.start()
        wait_until_ready(servers, status, settings.timeout)
        status.finish("ready (Ctrl-C or /stop to quit)")
        command = [PY, str(ROOT / "scripts" / "launch.py"), "rasa", "shell", "--model", str(MODEL)]
        command += ["--endpoints", str(endpoints), "--port", str(settings.rasa_port)]
        chat = subprocess.Popen(command, cwd=ROOT, env=servers[0].env)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the shell; we clean up after it
        return chat.wait()
    except StartError as error:
        report_failure(status, error)
        return 1
    except (Interrupted, KeyboardInterrupt):
        return 130
    finally:
        stop_all(servers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start Chat Cagou (make run, make shell).")
    parser.add_argument("--shell", action="store_true", help="talk to the assistant in the terminal")
    args = parser.parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_interrupted)
    try:
        settings = Settings.from_env()
    except StartError as error:
        print(f"Chat Cagou: {error}.", file=sys.stderr)
        return 2
    return shell(settings) if args.shell else run(settings)


if __name__ == "__main__":
    sys.exit(main())
