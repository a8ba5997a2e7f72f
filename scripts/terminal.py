"""The one status line that `make install`, `make train` and `make run` print (stdlib only:
scripts/phase.py runs before the venv exists)."""

from __future__ import annotations

import shutil
import sys
import time


def duration(seconds: float) -> str:
    total = round(seconds)
    return f"{total} s" if total < 60 else f"{total // 60} min {total % 60:02d} s"


class Status:
    """One terminal line: rewritten in place on a tty, written once otherwise."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.tty = sys.stdout.isatty()
        self.started = time.monotonic()
        self.shown = ""
        self.open = False  # the line is started and not finished

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def start(self) -> None:
        self.open = True
        if self.tty:
            self.update("")
        else:
            sys.stdout.write(f"{self.label}… ")
            sys.stdout.flush()

    def update(self, detail: str) -> None:
        if not self.tty:
            return
        text = f"{self.label}… {detail + ' ' if detail else ''}({duration(self.elapsed())})"
        text = text[: shutil.get_terminal_size((80, 24)).columns - 1]
        if text != self.shown:
            sys.stdout.write("\r\x1b[K" + text)
            sys.stdout.flush()
            self.shown = text

    def finish(self, outcome: str) -> None:
        self.open = False
        sys.stdout.write((f"\r\x1b[K{self.label}… " if self.tty else "") + outcome + "\n")
        sys.stdout.flush()
