"""The review console (console/) for its tests and benchmark: started as `make run` would (a
real process, real HTTP), staff accounts through the real command, a logged-in HTTP client,
and the customer messages that the tests send to the running assistant."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from harness.ports import free_port
from harness.processes import spawn, stop
from harness.project import RASA, ROOT, quiet_env
from harness.waiting import wait_http

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


def console_env(db_url: str, **extra: str) -> dict[str, str]:
    """This environment without CONSOLE_* and STAFF_* settings, the database set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONSOLE_", "STAFF_"))}
    env.update(CONSOLE_DB_URL=db_url, **extra)
    return env


def console_cli(
    db_url: str, *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m console ARGS` on `db_url` (what the Makefile's targets run)."""
    return subprocess.run(
        [sys.executable, "-m", "console", *args],
        cwd=ROOT,
        env=env or console_env(db_url),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def staff_user(db_url: str, name: str, role: str, password: str) -> subprocess.CompletedProcess[str]:
    """Through the command that `make staff-user` runs."""
    return console_cli(
        db_url,
        "staff-user",
        name,
        "--role",
        role,
        timeout=60,
        env=console_env(db_url, STAFF_PASSWORD=password),
    )


class Console:
    """`python -m console serve` on a free port."""

    def __init__(self, db_url: str, log: Path, port: int | None = None, **env: str | None) -> None:
        """`env`: more variables; None removes one (CONSOLE_COOKIE_SECURE=None: the production default).
        `port`: one reserved earlier (a server told the console's address before it starts)."""
        self.port = port or free_port()
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
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Console:
        command = [sys.executable, "-m", "console", "serve", "--port", str(self.port), "--quiet"]
        self.proc = spawn(command, self.log, self.env)
        try:
            wait_http(self.url + "/healthz", self.proc, self.log, timeout=60, interval=0.2)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop(self.proc, timeout=15)

    def conversation_path(self, sender_id: str) -> str:
        """The page of a conversation: the console names it by a keyed reference, never by
        its sender id (console.app.conversation_url), with this console's key."""
        from console.app import conversation_url, ref_key

        return conversation_url(ref_key(self.env["CONSOLE_SECRET_KEY"]), sender_id)


@contextmanager
def running_console(db_url: str, log: Path, port: int | None = None, **env: str | None) -> Iterator[Console]:
    """The console on `db_url`, logging to `log`, stopped at the end."""
    console = Console(db_url, log, port, **env).start()
    try:
        yield console
    finally:
        console.stop()


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class StaffClient(requests.Session):
    """A browser-like HTTP client: keeps the session cookie, reads the CSRF token off pages."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base
        self.token: str | None = None

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("allow_redirects", False)
        kwargs.setdefault("timeout", 30)
        target = str(url, "utf-8") if isinstance(url, bytes) else url
        response = super().request(
            method, self.base + target if target.startswith("/") else target, *args, **kwargs
        )
        found = (
            CSRF.search(response.text) if "text/html" in response.headers.get("content-type", "") else None
        )
        if found:
            self.token = found.group(1)
        return response

    def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:
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


def produce_conversations(
    say: Callable[[str, str], object],
    prefix: str,
    script: dict[str, list[str]] = SCRIPT,
    stored_prefix: str = "rest:",
) -> dict[str, str]:
    """Sends the script to the assistant over REST (`say(sender, text)`); returns kind -> the
    tracker sender id (our REST channel stores "rest:" + sender, channels/rest.py; Rasa's own
    `rest` channel, in a credentials file without ours, stores the sender as sent: "")."""
    senders = {}
    for kind, turns in script.items():
        sender = f"{prefix}-{kind}"
        for text in turns:
            say(sender, text)
        senders[kind] = stored_prefix + sender
    return senders


def validate_export(export_text: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    """`rasa data validate --fail-on-warning` on the project's domain, config and data/ with the
    export added to data/nlu/, as staff would add it."""
    project = workdir / "project"
    if project.exists():
        shutil.rmtree(project)
    shutil.copytree(ROOT / "data", project / "data")
    for name in ("domain.yml", "config.yml"):
        shutil.copy(ROOT / name, project / name)
    (project / "data" / "nlu" / "console_export.yml").write_text(export_text, encoding="utf-8")
    command = [str(RASA), "data", "validate", "--fail-on-warning"]
    command += ["--domain", "domain.yml", "--data", "data", "--config", "config.yml"]
    return subprocess.run(command, cwd=project, env=quiet_env(), capture_output=True, text=True, timeout=300)
