#!/usr/bin/env python3
"""Run one long step of `make` (install, training) on a single terminal line.

    python3 scripts/phase.py [--log FILE] [--append] [--progress rasa|pip] LABEL -- CMD [ARGS...]

CMD's output (stdout and stderr) goes to the log file only, one line per line: carriage-return
updates (progress bars) collapsed to their last state, colour codes removed. On the terminal:

- stdout is a tty: "LABEL… detail (elapsed)" rewritten in place with \\r, then the outcome;
- otherwise: "LABEL… " at the start and the outcome at the end, on the same line.

On failure: the end of the log and its path, and CMD's exit code. Standard library only:
the install phase runs before the virtualenv exists.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import signal
import subprocess
import sys
from collections import deque
from datetime import datetime

from terminal import Status, duration  # scripts/ is on sys.path: this file is run as a script

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TAIL_LINES = 25


class RasaTrainProgress:
    """What `rasa train` is doing, from its log lines and tqdm bars."""

    COMPONENT = re.compile(r"Starting to train component '([^']+)'")
    FINISHED = re.compile(r"Finished training component '([^']+)'")
    EPOCHS = re.compile(r"Epochs:\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)")
    VALIDATING = re.compile(r"Started validating domain and training data")

    def __init__(self) -> None:
        self.component = ""
        self.epochs = ""
        self.stage = ""

    def feed(self, segment: str) -> None:
        found = self.COMPONENT.search(segment)
        if found:
            self.component, self.epochs, self.stage = found.group(1), "", ""
            return
        if self.FINISHED.search(segment):
            self.component, self.epochs = "", ""
            return
        found = self.EPOCHS.search(segment)
        if found:
            self.epochs = f"epoch {found.group(1)}/{found.group(2)}"
            return
        if self.VALIDATING.search(segment):
            self.stage = "validating the data"

    def detail(self) -> str:
        if self.component:
            return f"{self.component} {self.epochs}".strip()
        return self.stage


class PipProgress:
    """The package pip is on."""

    PACKAGE = re.compile(r"^\s*(?:Collecting|Processing|Downloading)\s+(\S+)")

    def __init__(self) -> None:
        self.current = ""

    def feed(self, segment: str) -> None:
        found = self.PACKAGE.search(segment)
        if found:
            self.current = os.path.basename(found.group(1))
        elif segment.startswith("Installing collected packages"):
            self.current = "installing the packages"

    def detail(self) -> str:
        return self.current


class NoProgress:
    def feed(self, segment: str) -> None:
        pass

    def detail(self) -> str:
        return ""


PROGRESS = {"rasa": RasaTrainProgress, "pip": PipProgress, "none": NoProgress}


class LogWriter:
    """Writes CMD's output to the log line by line, a line's \\r updates reduced to the last."""

    def __init__(self, path: str, append: bool, progress) -> None:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self.file = open(path, "a" if append else "w", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self.pending = ""
        self.progress = progress
        self.tail: deque = deque(maxlen=TAIL_LINES)

    def header(self, command: list[str]) -> None:
        self.file.write(f"==== {datetime.now():%Y-%m-%d %H:%M:%S} : {' '.join(command)}\n")
        self.file.flush()

    def feed(self, text: str) -> None:
        text = ANSI.sub("", self.pending + text)
        *lines, self.pending = text.split("\n")
        for line in lines:
            for segment in line.split("\r"):
                if segment.strip():
                    self.progress.feed(segment)
            self.write_line(self.last_state(line))
        for segment in self.pending.split("\r")[:-1]:
            if segment.strip():
                self.progress.feed(segment)
        self.file.flush()  # `tail -f` on the log follows the step

    @staticmethod
    def last_state(line: str) -> str:
        segments = [s for s in line.split("\r") if s.strip()]
        return segments[-1].rstrip() if segments else ""

    def write_line(self, line: str) -> None:
        self.file.write(line + "\n")
        self.tail.append(line)

    def close(self) -> None:
        if self.pending.strip():
            self.write_line(self.last_state(self.pending))
        self.pending = ""
        self.file.close()


def stop(proc: subprocess.Popen) -> int:
    for action, grace in ((None, 5), (proc.terminate, 15), (proc.kill, None)):
        if action is not None:
            action()
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()


def interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(label: str, command: list[str], log_path: str, append: bool, progress_kind: str) -> int:
    progress = PROGRESS[progress_kind]()
    log = LogWriter(log_path, append, progress)
    log.header(command)
    status = Status(label)
    status.start()
    try:
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    except OSError as error:
        log.write_line(f"{command[0]}: {error}")
        log.close()
        status.finish(f"failed: {error} (log: {log_path})")
        return 127
    fd = proc.stdout.fileno()
    interrupted = False
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                log.feed(chunk.decode("utf-8", errors="replace"))
            status.update(progress.detail())
        code = proc.wait()
    except KeyboardInterrupt:
        # Ctrl-C reached CMD as well (same process group): give it time to stop, then insist
        interrupted = True
        code = stop(proc)
    finally:
        log.close()
    if interrupted:
        status.finish(f"interrupted (log: {log_path})")
        return 130
    if code == 0:
        status.finish(f"done in {duration(status.elapsed())} (log: {log_path})")
        return 0
    status.finish(f"failed (code {code}) after {duration(status.elapsed())}. End of {log_path}:")
    for line in log.tail:
        print("  " + line)
    print(f"Full log: {log_path}")
    return code if code > 0 else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    split = argv.index("--")
    parser = argparse.ArgumentParser(description="Run one make step on a single terminal line.")
    parser.add_argument("label")
    parser.add_argument("--log", required=True)
    parser.add_argument("--append", action="store_true", help="append to the log instead of replacing it")
    parser.add_argument("--progress", choices=sorted(PROGRESS), default="none")
    args = parser.parse_args(argv[:split])
    command = argv[split + 1 :]
    if not command:
        parser.error("no command after --")
    signal.signal(signal.SIGTERM, interrupt)
    return run(args.label, command, args.log, args.append, args.progress)


if __name__ == "__main__":
    sys.exit(main())
