"""`make run` as a person runs it (issue 14): few lines, a ready block printed only once every
server answers, and Ctrl-C stopping everything.

`make run` runs as a subprocess on free ports (RASA_PORT, ACTION_PORT, CONSOLE_PORT, WEB_PORT),
with its tracker database and logs in a temporary folder (CHAT_CAGOU_TRACKER_DB,
CHAT_CAGOU_LOG_DIR, honoured by scripts/start.py): the repository's tracker.db and logs/ are
not touched. The model must be trained already (`make test` trains it first).
"""

from __future__ import annotations

import importlib.util
import os
import queue
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from actions.fiche import load_fiche
from harness.ports import free_port
from harness.project import MODEL, NO_MODEL, ROOT

READY = "Chat Cagou is ready"
BLOCK_END = "Ctrl-C stops everything"
MAX_LINES = 40
START_DEADLINE = 600  # seconds; a few tens when the model is trained and the venv installed
PORT_NAMES = ("RASA_PORT", "ACTION_PORT", "CONSOLE_PORT", "WEB_PORT")


def distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def descendants(root: int) -> set[int]:
    """Every process below `root` (Linux /proc), whatever its session or process group."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class Output:
    """The lines `make run` prints, read in a thread."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.lines: list[str] = []
        self.queue: queue.Queue[str | None] = queue.Queue()
        assert proc.stdout is not None
        stream = proc.stdout

        def read() -> None:
            for raw in iter(stream.readline, b""):
                self.queue.put(raw.decode("utf-8", errors="replace").rstrip("\n"))
            self.queue.put(None)

        threading.Thread(target=read, daemon=True).start()

    def until(self, marker: str, timeout: float) -> bool:
        """Reads lines until one contains `marker` (True), the end of the output or `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.queue.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                return False
            self.lines.append(line)
            if marker in line:
                return True
        return False

    def rest(self, timeout: float) -> None:
        self.until("\0", timeout)

    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.mark.servers
@pytest.mark.model
def test_make_run_is_quiet_ready_when_it_says_so_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    if not MODEL.exists():
        pytest.fail(NO_MODEL)
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs Linux /proc to follow make's child processes")
    ports = dict(zip(PORT_NAMES, distinct_free_ports(len(PORT_NAMES)), strict=True))
    tracker_db = tmp_path / "tracker.db"
    env = {
        k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")
    }
    env.pop("CONSOLE_SECRET_KEY", None)
    env.pop("CONSOLE_DB_URL", None)
    env.pop("RASA_URL", None)
    env.update({name: str(port) for name, port in ports.items()})
    env.update({"CHAT_CAGOU_TRACKER_DB": str(tracker_db), "CHAT_CAGOU_LOG_DIR": str(tmp_path / "logs")})

    started = time.monotonic()
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal gives it; SIGINT below
    )
    output = Output(proc)
    try:
        ready = output.until(BLOCK_END, START_DEADLINE)
        time_to_ready = time.monotonic() - started
        assert ready, f"no ready block after {time_to_ready:.0f} s:\n{output.text()}"
        text = output.text()
        block = text[text.index(READY) :]

        # the block says where to talk to it, with this run's ports
        assert f"http://localhost:{ports['WEB_PORT']}/" in block, block
        assert f"http://localhost:{ports['CONSOLE_PORT']}/" in block, block
        assert f"curl -s http://localhost:{ports['RASA_PORT']}/webhooks/rest/webhook" in block, block
        # a fresh tracker database has no staff account: the block says how to create one
        assert "make staff-user NAME=" in block and "ROLE=admin" in block, block
        assert len(block.splitlines()) < 12, block
        # nothing was installed or trained again
        assert "Model up to date" in text, text

        # at the moment the block is printed, everything answers
        reply = requests.post(
            f"http://127.0.0.1:{ports['RASA_PORT']}/webhooks/rest/webhook",
            json={"sender": "test-make-run", "message": "code PUK ?"},
            timeout=30,
        )
        reply.raise_for_status()
        said = "\n".join(m.get("text") or "" for m in reply.json())
        assert load_fiche().agency_address in said, said  # where to get a PUK code: the agency
        console = requests.get(f"http://127.0.0.1:{ports['CONSOLE_PORT']}/", timeout=10)
        assert console.status_code == 200, console.status_code
        page = requests.get(f"http://127.0.0.1:{ports['WEB_PORT']}/", timeout=10)
        assert page.status_code == 200
        assert f"http://localhost:{ports['RASA_PORT']}" in page.text  # the widget talks to this Rasa
        # the conversation went to the temporary tracker database, not the repository's
        with sqlite3.connect(tracker_db) as db:
            senders = {row[0] for row in db.execute("SELECT DISTINCT sender_id FROM events")}
        assert "rest:test-make-run" in senders, senders  # REST senders are namespaced (channels/rest.py)

        children = descendants(proc.pid)
        assert len(children) >= 5, children  # start.py and its four servers at least
    except BaseException:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        raise

    # Ctrl-C: the terminal sends SIGINT to the foreground process group
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("make run still running 60 s after SIGINT")
    output.rest(timeout=10)
    text = output.text()

    left = sorted(pid for pid in children if alive(pid))
    assert not left, f"processes left after Ctrl-C: {left}"
    assert not [name for name, port in ports.items() if listening(port)], text
    assert text.splitlines()[-1] == "Stopping Chat Cagou… stopped.", text
    assert len(text.splitlines()) < MAX_LINES, text
    print(f"\nmake run: {len(text.splitlines())} lines, ready in {time_to_ready:.1f} s\n{text}")


def load_start_script():
    """scripts/start.py as a module (scripts/ is not a package: its scripts import each other
    as they run, with scripts/ first on sys.path)."""
    if str(ROOT / "scripts") not in sys.path:
        sys.path.append(str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location("chat_cagou_start", ROOT / "scripts" / "start.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_ready_block_counts_the_staff_accounts_of_the_store_rasa_writes_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hint to create a staff account shows for the tracker database of this run only."""
    start = load_start_script()
    db = tmp_path / "tracker.db"
    for name in ("CONSOLE_DB_URL", *PORT_NAMES):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CONSOLE_ENDPOINTS", "")  # start.py sets it: restored after the test
    monkeypatch.setenv("CHAT_CAGOU_TRACKER_DB", str(db))
    monkeypatch.setenv("CHAT_CAGOU_LOG_DIR", str(tmp_path / "logs"))
    settings = start.Settings.from_env()
    start.make_servers(settings)  # writes the endpoints Rasa and the console read (no process started)
    assert f"db: {db}" in (tmp_path / "logs" / "run" / "endpoints.yml").read_text()

    assert start.staff_accounts() in (0, None)  # no table yet, or an empty one
    assert any("make staff-user" in line for line in start.ready_block(settings, start.staff_accounts()))
    created = subprocess.run(
        [sys.executable, "-m", "console", "staff-user", "alice", "--role", "admin"],
        cwd=ROOT,
        env={**os.environ, "STAFF_PASSWORD": "un mot de passe assez long pour la console"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    assert start.staff_accounts() == 1
    assert not any("make staff-user" in line for line in start.ready_block(settings, 1))
