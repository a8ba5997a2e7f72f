"""The action server and a Rasa server (REST channel and what credentials.yml enables) on free
ports, with a SQLite tracker store of their own: what `make run` starts."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import requests

from harness.ports import free_port
from harness.processes import spawn, stop
from harness.project import MODEL, RASA, ROOT, quiet_env, require_model
from harness.waiting import poll_until, wait_http


class Servers:
    """An action server and a Rasa server; `rasa_url` is the base URL of Rasa."""

    def __init__(
        self,
        workdir: Path,
        credentials: Path | None = None,
        extra_env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
        tracker_store: str | None = None,
    ) -> None:
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
        self.env = quiet_env(SANIC_GRACEFUL_SHUTDOWN_TIMEOUT="2", **(extra_env or {}))
        self.extra_args = extra_args or []
        self.endpoints = workdir / "endpoints.yml"
        tracker_store = (
            tracker_store or f'tracker_store:\n  type: SQL\n  dialect: "sqlite"\n  db: "{self.tracker_db}"\n'
        )
        self.endpoints.write_text(
            f'action_endpoint:\n  url: "http://127.0.0.1:{self.action_port}/webhook"\n' + tracker_store
        )
        self.actions: subprocess.Popen[bytes] | None = None
        self.rasa: subprocess.Popen[bytes] | None = None

    def start_actions(self) -> None:
        log = self.workdir / "actions.log"
        command = [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(self.action_port)]
        self.actions = spawn(command, log, self.env)
        wait_http(f"http://127.0.0.1:{self.action_port}/health", self.actions, log)

    def start_rasa(self) -> None:
        log = self.workdir / "rasa.log"
        command = [
            str(RASA),
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
        ]
        self.rasa = spawn(command, log, self.env)
        wait_http(self.rasa_url + "/", self.rasa, log)

    def start(self) -> Servers:
        require_model()
        try:
            self.start_actions()
            self.start_rasa()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop(self.rasa)
        stop(self.actions)

    def events(self, sender: str) -> list[dict[str, Any]]:
        """The events of the client id `sender` (see `tracker_ids`) in the SQLite tracker store."""
        ids = tracker_ids(sender)
        with closing(sqlite3.connect(self.tracker_db)) as db:
            rows = db.execute(
                f"SELECT data FROM events WHERE sender_id IN ({', '.join('?' * len(ids))}) ORDER BY id", ids
            ).fetchall()
        return [json.loads(data) for (data,) in rows]

    def user_texts(self, sender: str) -> list[str]:
        """The user messages of `sender` stored in the tracker store, in order."""
        return [e.get("text") or "" for e in self.events(sender) if e.get("event") == "user"]

    def wait_user_texts(self, sender: str, expected: list[str], timeout: float = 15) -> list[str]:
        """The stored user messages once they equal `expected`, or as they are after `timeout`
        (Rasa saves the tracker after sending the replies)."""
        return poll_until(lambda: self.user_texts(sender), expected, timeout, interval=0.1)

    def say(self, sender: str, message: Any, timeout: float = 30) -> list[dict[str, Any]]:
        """One message through the REST channel; returns the bot's messages."""
        return say_rest(self.rasa_url, sender, message, timeout)


def tracker_ids(sender: str) -> list[str]:
    """The tracker sender ids a client's id may be stored under: the channels namespace them
    ("rest:" + REST sender, "fb:" + Messenger PSID, "web:" + the id of a signed widget
    session). An id that already has its prefix is itself."""
    if sender.startswith(("rest:", "fb:", "web:")):
        return [sender]
    if re.fullmatch(r"[0-9a-f]{32}\.[A-Za-z0-9_-]{43}", sender):  # a widget session (channels/socketio.py)
        return ["web:" + sender.split(".")[0]]
    return ["rest:" + sender, "fb:" + sender]


def say_rest(base_url: str, sender: str, message: Any, timeout: float = 30) -> list[dict[str, Any]]:
    """One message to the REST channel at `base_url`; returns the bot's messages."""
    response = requests.post(
        f"{base_url}/webhooks/rest/webhook", json={"sender": sender, "message": message}, timeout=timeout
    )
    response.raise_for_status()
    messages: list[dict[str, Any]] = response.json()
    return messages


def texts(messages: list[dict[str, Any]]) -> str:
    """The texts of the bot's messages as a customer reads them (their Markdown rendered as
    plain lines, actions/markdown.py), one message a line."""
    from actions.markdown import plain

    return "\n".join(plain(m.get("text", "")) for m in messages)


@contextmanager
def running_servers(workdir: Path, **kwargs: Any) -> Iterator[Servers]:
    """`Servers(workdir, **kwargs)` started, stopped at the end."""
    servers = Servers(workdir, **kwargs).start()
    try:
        yield servers
    finally:
        servers.stop()
