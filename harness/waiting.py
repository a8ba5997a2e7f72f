"""Waiting for a server to answer, or for a value to come: one readiness wait for the tests,
the benchmarks and deploy/prod.py."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import requests

T = TypeVar("T")


def tail(log: Path | None, size: int = 3000) -> str:
    """The end of a log file ('' when there is none)."""
    if log is None:
        return ""
    try:
        return log.read_text(errors="replace")[-size:]
    except OSError:
        return ""


def wait_http(
    url: str,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    timeout: float = 240,
    interval: float = 0.5,
) -> None:
    """Returns once `url` answers with a status below 500. Raises RuntimeError (with the end of
    `log`) when `proc` exits first or after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited ({proc.returncode}):\n{tail(log)}")
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(interval)
    raise RuntimeError(f"{url} did not answer within {timeout}s:\n{tail(log)}")


def poll_until(read: Callable[[], T], expected: T, timeout: float, interval: float = 0.2) -> T:
    """`read()` once it returns `expected`, or what it returns after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if value == expected or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def wait_until(predicate: Callable[[], bool], timeout: float = 15, interval: float = 0.02) -> bool:
    """Whether `predicate()` became true within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


async def loop_ticks_during(work: Awaitable[T], interval: float = 0.05) -> tuple[T, int]:
    """`work`'s result and how many times a ticker every `interval` seconds got the event loop
    meanwhile: a call in `work` that blocks the loop shows as few ticks."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(interval)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        return await work, ticks
    finally:
        task.cancel()
