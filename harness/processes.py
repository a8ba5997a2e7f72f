"""Starting a server process with its log file, and stopping it."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.project import ROOT


def spawn(
    command: Sequence[str],
    log: Path,
    env: Mapping[str, str],
    cwd: Path | None = ROOT,
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """`command` started with its output (stdout and stderr) appended to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=new_session,
        )


def stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    """Sends `sig` to a running process and waits for it; kills it after `timeout` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
