"""Start the real action server and Rasa server for end-to-end tests, on free ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import requests

from deploy.prod import wait_http  # the same readiness wait as production

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
MODEL = ROOT / "models" / "chat-cagou.tar.gz"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def poll_until(read: Callable[[], T], expected: T, timeout: float, interval: float) -> T:
    """`read()` once it returns `expected`, or what it returns after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if value == expected or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Servers:
    """An action server and a Rasa server; `rasa_url` is the base URL of Rasa."""

    def __init__(
        self,
        workdir: Path,
        credentials: Path | None = None,
        extra_env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
        tracker_store: str | None = None,
    ):
        """`tracker_store`: the YAML of endpoints.yml's tracker_store section (default: a SQLite
        file in workdir)."""
        self.workdir = workdir
        self.action_port = free_port()
        self.rasa_port = free_port()
        self.rasa_url = f"http://127.0.0.1:{self.rasa_port}"
        self.tracker_db = workdir / "tracker.db"
        self.credentials = credentials or ROOT / "credentials.yml"
        # SANIC_GRACEFUL_SHUTDOWN_TIMEOUT: Sanic waits 15 s by default for open connections, and a
        # socket.io long-poll stays open after its client disconnected; tests need no grace.
        self.env = {
            **os.environ,
            "RASA_TELEMETRY_ENABLED": "false",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "SANIC_GRACEFUL_SHUTDOWN_TIMEOUT": "2",
            **(extra_env or {}),
        }
        self.extra_args = extra_args or []
        self.endpoints = workdir / "endpoints.yml"
        tracker_store = (
            tracker_store or f'tracker_store:\n  type: SQL\n  dialect: "sqlite"\n  db: "{self.tracker_db}"\n'
        )
        self.endpoints.write_text(
            f'action_endpoint:\n  url: "http://127.0.0.1:{self.action_port}/webhook"\n' + tracker_store
        )
        self.actions: subprocess.Popen | None = None
        self.rasa: subprocess.Popen | None = None

    def start_actions(self) -> None:
        log = self.workdir / "actions.log"
        self.actions = subprocess.Popen(
            [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(self.action_port)],
            cwd=ROOT,
            env=self.env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_http(f"http://127.0.0.1:{self.action_port}/health", self.actions, log)

    def start_rasa(self) -> None:
        log = self.workdir / "rasa.log"
        self.rasa = subprocess.Popen(
            [
                str(VENV_BIN / "rasa"),
                "run",
                "--model",
                str(MODEL),
                "--port",
                str(self.rasa_port),
                "--interface",
                "127.0.0.1",
                "--credentials",
                str(self.credentials),
                "--endpoints",
                str(self.endpoints),
                *self.extra_args,
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_http(self.rasa_url + "/", self.rasa, log)

    def start(self) -> Servers:
        self.start_actions()
        self.start_rasa()
        return self

    def stop(self) -> None:
        for proc in (self.rasa, self.actions):
            if proc is not None:
                stop(proc)

    def user_texts(self, sender: str) -> list[str]:
        """The user messages of `sender` stored in the tracker store."""
        with sqlite3.connect(self.tracker_db) as db:
            rows = db.execute(
                "SELECT data FROM events WHERE sender_id = ? AND type_name = 'user'", (sender,)
            ).fetchall()
        return [json.loads(data).get("text") for (data,) in rows]

    def wait_user_texts(self, sender: str, expected: list[str], timeout: float = 15) -> list[str]:
        """The stored user messages once they equal `expected`, or as they are after `timeout`
        (Rasa saves the tracker after sending the replies)."""
        return poll_until(lambda: self.user_texts(sender), expected, timeout, interval=0.1)

    def say(self, sender: str, message, timeout: float = 30) -> list[dict]:
        """One message through the REST channel; returns the bot's messages."""
        response = requests.post(
            f"{self.rasa_url}/webhooks/rest/webhook",
            json={"sender": sender, "message": message},
            timeout=timeout,
        )
        response.raise_for_status()
        return response.json()


@contextmanager
def running_servers(workdir: Path, **kwargs) -> Iterator[Servers]:
    servers = Servers(workdir, **kwargs)
    try:
        yield servers.start()
    finally:
        servers.stop()
