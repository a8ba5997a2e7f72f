"""The clock of servers under test (actions/hours.py, CHAT_CAGOU_TEST_CLOCK_FILE): a file
holding the instant the action server takes for "now", changed while it runs."""

from __future__ import annotations

from pathlib import Path

from actions.hours import ENV_TEST_CLOCK


class TestClock:
    """`env` goes to the action server; `set()` fixes its "now", `clear()` gives the real one."""

    __test__ = False  # not a pytest test class

    def __init__(self, path: Path) -> None:
        self.path = path
        self.env = {ENV_TEST_CLOCK: str(path)}

    def set(self, instant: str) -> None:
        """`instant`: ISO date-time with its offset, e.g. "2026-11-30T10:00:00+11:00"."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(instant, encoding="utf-8")
        tmp.replace(self.path)  # never half-written for a reader

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
