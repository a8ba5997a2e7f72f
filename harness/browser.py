"""Headless Chromium for the browser tests: the machine's (Debian's chromium package), driven by
Playwright; never a browser download."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
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


def chromium_installed() -> bool:
    return CHROMIUM.exists()


@contextmanager
def launched_chromium(extra_args: list[str] | None = None) -> Iterator[Any]:
    """A Playwright Browser on the machine's Chromium, closed at the end."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS + (extra_args or [])
        )
        try:
            yield chromium
        finally:
            chromium.close()
