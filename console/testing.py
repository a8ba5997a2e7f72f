"""Helpers for the console's tests and benchmark: start the console as `make run` would (a
real process, real HTTP), staff accounts through the real command, a logged-in HTTP client,
and the customer messages that the tests send to the running assistant."""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
# Chromium as the machines here allow it: no sandbox as root, and no background traffic
# (the network is closed: its connections would only be refused).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# What customers write, sent to the running assistant. Keys name what each conversation is
# for in the tests. What the model makes of them changes at each training: the tests read the
# predictions from the tracker store rather than assume them (the nonsense is there so that some
# message is likely to get a low confidence).
SCRIPT: dict[str, list[str]] = {
    "puk": ["bonjour", "code PUK svp"],
    "gibberish": ["xqzw blorf grumpf", "kjhgf lmpoiu", "bla bla bla"],
    "handoff": ["je veux parler à un conseiller"],
    "out_of_scope": ["quel temps fera-t-il demain à Nouméa ?"],
    "pii": ["j'ai perdu mon téléphone, rappelez-moi au 78 12 34 ou jean.dupont@example.nc"],
    "follow_up": ["je voudrais résilier mon abonnement", "et par mail ?"],  # "et par mail ?" is in data/nlu
    "old": ["je voudrais changer de forfait"],  # aged by the tests, for the purge
}
PHONE, EMAIL = "78 12 34", "jean.dupont@example.nc"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def console_env(db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONSOLE_", "STAFF_"))}
    env.update(CONSOLE_DB_URL=db_url, **extra)
    return env


def staff_user(db_url: str, name: str, role: str, password: str) -> subprocess.CompletedProcess:
    """Through the command that `make staff-user` runs."""
    return subprocess.run(
        [sys.executable, "-m", "console", "staff-user", name, "--role", role],
        cwd=ROOT,
        env=console_env(db_url, STAFF_PASSWORD=password),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def console_cli(db_url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "console", *args],
        cwd=ROOT,
        env=console_env(db_url),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


class Console:
    """`python -m console serve` on a free port."""

    def __init__(self, db_url: str, log: Path, **env: str | None):
        """`env`: more variables; None removes one (CONSOLE_COOKIE_SECURE=None: the production default)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        # a production start: a real secret; the cookie without 'Secure' since the test talks plain http
        self.env = console_env(
            db_url, CONSOLE_SECRET_KEY=secrets.token_urlsafe(48), CONSOLE_COOKIE_SECURE="0"
        )
        for name, value in env.items():
            if value is None:
                self.env.pop(name, None)
            else:
                self.env[name] = value
        self.proc: subprocess.Popen | None = None

    def start(self) -> Console:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "console", "serve", "--port", str(self.port), "--quiet"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"console exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}"
                )
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"console did not answer:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def running_console(db_url: str, log: Path, **env: str | None) -> Iterator[Console]:
    console = Console(db_url, log, **env).start()
    try:
        yield console
    finally:
        console.stop()


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class StaffClient(requests.Session):
    """A browser-like HTTP client: keeps the session cookie, reads the CSRF token off pages."""

    def __init__(self, base: str):
        super().__init__()
        self.base = base
        self.token: str | None = None

    def request(self, method, url, *args, **kwargs):
        kwargs.setdefault("allow_redirects", False)
        kwargs.setdefault("timeout", 30)
        response = super().request(method, self.base + url if url.startswith("/") else url, *args, **kwargs)
        found = (
            CSRF.search(response.text) if "text/html" in response.headers.get("content-type", "") else None
        )
        if found:
            self.token = found.group(1)
        return response

    def get(self, url, **kwargs):
        # requests.Session.get follows redirects by default: the tests look at them
        kwargs.setdefault("allow_redirects", False)
        return self.request("GET", url, **kwargs)

    def login(self, name: str, password: str) -> requests.Response:
        self.get("/login")
        response = self.post(
            "/login",
            data={"name": name, "password": password, "csrf_token": self.token, "next": "/conversations"},
        )
        if response.status_code == 303:
            self.get(response.headers["location"])  # as a browser lands there: the new session's token
        return response

    def submit(self, path: str, data: dict[str, str]) -> requests.Response:
        """A form as the page would send it, with the CSRF token."""
        if self.token is None:
            self.get("/conversations")
        return self.post(path, data={**data, "csrf_token": self.token})


def produce_conversations(say, prefix: str, script: dict[str, list[str]] = SCRIPT) -> dict[str, str]:
    """Sends the script to the assistant (`say(sender, text)`); returns kind -> sender id."""
    senders = {}
    for kind, turns in script.items():
        sender = f"{prefix}-{kind}"
        for text in turns:
            say(sender, text)
        senders[kind] = sender
    return senders


def say_socketio(rasa_url: str, session_id: str, texts: list[str], timeout: float = 30) -> list[dict]:
    """Customer messages over Rasa's socket.io channel (as the website widget sends them)."""
    import threading

    import socketio

    replies: list[dict] = []
    arrived = threading.Event()
    client = socketio.Client(reconnection=False)

    @client.on("bot_uttered")
    def on_bot(data):
        replies.append(data)
        arrived.set()

    client.connect(rasa_url, transports=["polling"], wait_timeout=timeout)
    try:
        client.emit("session_request", {"session_id": session_id})
        for text in texts:
            arrived.clear()
            client.emit("user_uttered", {"message": text, "session_id": session_id})
            if not arrived.wait(timeout):
                raise TimeoutError(f"no answer over socket.io to {text!r}")
    finally:
        client.disconnect()
    return replies


def validate_export(export_text: str, workdir: Path) -> subprocess.CompletedProcess:
    """`rasa data validate --fail-on-warning` on the project's domain, config and data/ with the
    export added to data/nlu/, as staff would add it."""
    import shutil

    project = workdir / "project"
    if project.exists():
        shutil.rmtree(project)
    shutil.copytree(ROOT / "data", project / "data")
    for name in ("domain.yml", "config.yml"):
        shutil.copy(ROOT / name, project / name)
    (project / "data" / "nlu" / "console_export.yml").write_text(export_text, encoding="utf-8")
    rasa = str(Path(sys.executable).parent / "rasa")
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [
            rasa,
            "data",
            "validate",
            "--fail-on-warning",
            "--domain",
            "domain.yml",
            "--data",
            "data",
            "--config",
            "config.yml",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
