"""The fiche an action server answers from: the version published in the console's database,
checked every FICHE_CHECK_SECONDS (3 by default) by a background thread, so that a publication
or a rollback reaches every action server within seconds, without a restart (issue 16). The
answers never wait for the database: they read the fiche the thread last loaded.

FICHE_DB_URL (an SQLAlchemy URL: the console's database) turns this on. Without it, or until
the database answers, the server answers from the file (fiche/mobilis_pro.yml, or
CHAT_CAGOU_FICHE), which is version 1. A version it cannot read or validate is not served: the
server keeps the one it has, says so in its log, and reports it to the console (/fiche).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from actions import fiche_versions
from actions.fiche import Fiche, FicheError, load_fiche

log = logging.getLogger(__name__)

DEFAULT_CHECK_SECONDS = 3.0
# A heartbeat to the console even when nothing changes: it lists the servers seen lately.
REPORT_EVERY = 60.0


class LiveFiche:
    def __init__(
        self,
        engine: Engine | None,
        name: str,
        interval: float = DEFAULT_CHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.name = name
        self.interval = interval
        self.clock = clock
        self.fiche = load_fiche()  # version 1 until the database says otherwise
        self.serving: int | None = None  # the version read from the database; None: the file
        self.refused: int | None = None  # a version that failed: not tried again
        self.error = ""
        self.db_down = False
        self.next_check = 0.0
        self.next_report = 0.0
        self.thread: threading.Thread | None = None

    def current(self) -> Fiche:
        """The fiche to answer from. Without the background thread (tests, tools), checked here
        at most every `interval` seconds."""
        if self.engine is not None and self.thread is None and self.clock() >= self.next_check:
            self.check()
        return self.fiche

    def start(self) -> None:
        """Checks in a daemon thread, every `interval` seconds after the first check (live()),
        for the life of the process."""
        if self.engine is None or self.thread is not None:
            return

        def loop() -> None:
            while True:  # live() has just checked once: wait first
                time.sleep(self.interval)
                try:
                    self.check()
                except Exception:
                    log.exception("fiche: check failed; still serving version %s", self.shown)

        self.thread = threading.Thread(target=loop, name="fiche-check", daemon=True)
        self.thread.start()

    def check(self) -> None:
        assert self.engine is not None
        self.next_check = self.clock() + self.interval
        try:
            with self.engine.connect() as conn:
                if not fiche_versions.has_tables(conn):
                    return  # no console has created them yet: the file is version 1
                number = fiche_versions.published_number(conn)
                version = (
                    fiche_versions.get(conn, number)
                    if number not in (None, self.serving, self.refused)
                    else None
                )
        except SQLAlchemyError as exc:
            if not self.db_down:
                log.warning("fiche: database unreachable, still serving version %s: %s", self.shown, exc)
            self.db_down = True
            return
        if self.db_down:
            log.info("fiche: database reachable again")
            self.db_down = False
        if version is not None:
            self.load(version)
        elif number == self.serving and self.refused is not None:
            self.refused, self.error = None, ""  # rolled back to what it serves: no error left
            self.next_report = 0.0
        if self.clock() >= self.next_report:
            self.report(number)

    def load(self, version: fiche_versions.Version) -> None:
        try:
            fiche = fiche_versions.fiche_of_version(version)
        except FicheError as exc:
            self.refused = version.number
            self.error = f"version {version.number} refusée : {exc}"
            log.error(
                "fiche: version %s not served (%s); still serving version %s", version.number, exc, self.shown
            )
        else:
            if version.number != self.serving:
                log.info("fiche: now serving version %s (was %s)", version.number, self.shown)
            self.fiche, self.serving, self.refused, self.error = fiche, version.number, None, ""
        self.next_report = 0.0

    @property
    def shown(self) -> str:
        return str(self.serving) if self.serving is not None else "1 (file)"

    def report(self, published: int | None) -> None:
        assert self.engine is not None
        try:
            fiche_versions.report_server(self.engine, self.name, self.serving, published, self.error)
        except SQLAlchemyError as exc:
            log.warning("fiche: could not report to the console: %s", exc)
        self.next_report = self.clock() + REPORT_EVERY


def from_environment() -> LiveFiche:
    url = os.environ.get("FICHE_DB_URL", "").strip()
    name = os.environ.get("ACTION_SERVER_NAME", "").strip() or f"{socket.gethostname()}:{os.getpid()}"
    try:
        interval = float(os.environ.get("FICHE_CHECK_SECONDS", "") or DEFAULT_CHECK_SECONDS)
    except ValueError:
        raise ValueError(
            f"FICHE_CHECK_SECONDS must be a number of seconds: {os.environ['FICHE_CHECK_SECONDS']!r}"
        ) from None
    if interval <= 0:
        raise ValueError("FICHE_CHECK_SECONDS must be positive")
    engine = None
    if url:
        from console.db import make_engine  # the console's engine settings (SQLite wait, PG schema)

        engine = make_engine(url)
        log.info("fiche: published versions read from %s every %s s", engine.url.render_as_string(), interval)
    else:
        log.info("fiche: FICHE_DB_URL unset, the file only (no published versions)")
    return LiveFiche(engine, name, interval)


_live: LiveFiche | None = None


def live() -> LiveFiche:
    """This process's LiveFiche, created (the file read and validated) on first use: the
    action server at start-up, a Rasa instance at its first "service unavailable" reply. With
    a database, the published version is read at once, then checked in the background."""
    global _live
    if _live is None:
        live = from_environment()
        if live.engine is not None:
            live.check()  # the published version from the first answer on
        live.start()
        _live = live
    return _live


def current() -> Fiche:
    """The fiche of this action server, as published now."""
    return live().current()
