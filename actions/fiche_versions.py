"""The fiche's versions in the database (issue 16).

Version 1 is fiche/mobilis_pro.yml, the document of 26/07/2021 (the repository's file stays
the seed and the fallback). Each change staff publish from the console (/fiche) is a new
version with its author, date, reason and full content; a rollback publishes an earlier
version again. Every action server serves the published version (actions/live_fiche.py).

Three tables, in the console's database (SQLite by default, PostgreSQL in production):
- console_fiche_versions: one row per version, never changed afterwards;
- console_fiche_log: each publication and rollback; the last row names the published version;
- console_fiche_servers: the version each action server serves, and why not the published one.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from actions.fiche import DEFAULT_PATH, Fiche, FicheError, parse_fiche

NOUMEA = ZoneInfo("Pacific/Noumea")
SEED_AUTHOR = "document"
MAX_REASON = 500
# PostgreSQL: publications are numbered one at a time (the console may run several workers)
ADVISORY_LOCK_KEY = 7_412_688

metadata = sa.MetaData()

versions = sa.Table(
    "console_fiche_versions",
    metadata,
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("content", sa.Text, nullable=False),  # the whole fiche, YAML
    sa.Column("author", sa.String(100), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)

log = sa.Table(
    "console_fiche_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # seed, publish, rollback
    sa.Column("author", sa.String(100), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)

servers = sa.Table(
    "console_fiche_servers",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("serving", sa.Integer),  # None: the file (no version read yet)
    sa.Column("published", sa.Integer),  # the published version it last saw
    sa.Column("error", sa.Text, nullable=False, default=""),
    sa.Column("seen_at", sa.Float, nullable=False),
)


@dataclass(frozen=True)
class Version:
    number: int
    content: str
    author: str
    created_at: float
    reason: str

    @property
    def day(self) -> date:
        return datetime.fromtimestamp(self.created_at, NOUMEA).date()


def seed_content() -> str:
    return DEFAULT_PATH.read_text(encoding="utf-8")


def fiche_of(content: str, number: int = 1, changed: date | None = None) -> Fiche:
    """The validated Fiche of a version's content (the loader of the start-up: FicheError
    names the faulty field). Version 1 is the document; later ones carry their date."""
    try:
        raw = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        raise FicheError(f"fiche: YAML invalide: {exc}") from None
    fiche = parse_fiche(raw)
    return dataclasses.replace(fiche, version=number, changed_on=changed if number > 1 else None)


def fiche_of_version(version: Version) -> Fiche:
    return fiche_of(version.content, version.number, version.day)


def dump(raw: dict[str, Any]) -> str:
    """A version's content as staff edited it: YAML, in the file's order, accents kept."""
    return yaml.safe_dump(raw, allow_unicode=True, sort_keys=False, width=100)


# --- reading ------------------------------------------------------------------------------


def _version(row: Any) -> Version:
    return Version(row.number, row.content, row.author, row.created_at, row.reason)


def has_tables(conn: Connection) -> bool:
    return sa.inspect(conn).has_table(log.name)


def published_number(conn: Connection) -> int | None:
    """The published version: the one named by the last publication or rollback."""
    return conn.execute(sa.select(log.c.version).order_by(log.c.id.desc()).limit(1)).scalar()


def get(conn: Connection, number: int) -> Version | None:
    row = conn.execute(sa.select(versions).where(versions.c.number == number)).first()
    return _version(row) if row else None


def published(conn: Connection) -> Version:
    number = published_number(conn)
    version = get(conn, number) if number is not None else None
    if version is None:
        raise LookupError("no published version of the fiche: ensure_tables() seeds version 1")
    return version


def all_versions(conn: Connection) -> list[Version]:
    rows = conn.execute(sa.select(versions).order_by(versions.c.number.desc()))
    return [_version(r) for r in rows]


def history(conn: Connection) -> list[dict[str, Any]]:
    """Each publication and rollback, newest first."""
    rows = conn.execute(sa.select(log).order_by(log.c.id.desc()))
    return [dict(r._mapping) for r in rows]


# --- writing ------------------------------------------------------------------------------


def ensure_tables(engine: Engine) -> None:
    """Creates the tables and version 1 (the file) when there is none. Several processes may
    start at once (console workers, action servers): the first insert wins, others find it."""
    metadata.create_all(engine, checkfirst=True)
    with engine.connect() as conn:
        if published_number(conn) is not None:
            return
    now = time.time()
    reason = "Fiche « Relation client Mobilis - Professionnels » du document d'origine"
    try:
        with engine.begin() as conn:
            conn.execute(
                versions.insert().values(
                    number=1, content=seed_content(), author=SEED_AUTHOR, created_at=now, reason=reason
                )
            )
            conn.execute(
                log.insert().values(version=1, action="seed", author=SEED_AUTHOR, at=now, reason=reason)
            )
    except IntegrityError:
        pass  # another process seeded it at the same moment


class PublishError(ValueError):
    """A publication or rollback refused; the message is French, for the editor."""


def _check_reason(reason: str) -> str:
    reason = " ".join(reason.split())
    if not reason:
        raise PublishError("Indiquez la raison du changement (elle est enregistrée avec la version).")
    if len(reason) > MAX_REASON:
        raise PublishError(f"La raison dépasse {MAX_REASON} caractères.")
    return reason


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK_KEY})


def publish(engine: Engine, content: str, author: str, reason: str) -> int:
    """Validates `content` with the start-up loader and makes it the published version;
    returns its number. Nothing is written when it is invalid (FicheError) or unchanged."""
    reason = _check_reason(reason)
    fiche_of(content)  # raises FicheError: a version that fails validation is never stored
    with engine.begin() as conn:
        _lock(conn)
        current = published(conn)
        if yaml.safe_load(current.content) == yaml.safe_load(content):
            raise PublishError(f"Aucun changement par rapport à la version publiée ({current.number}).")
        number = (conn.execute(sa.select(sa.func.max(versions.c.number))).scalar() or 0) + 1
        now = time.time()
        conn.execute(
            versions.insert().values(
                number=number, content=content, author=author, created_at=now, reason=reason
            )
        )
        conn.execute(
            log.insert().values(version=number, action="publish", author=author, at=now, reason=reason)
        )
    return number


def rollback(engine: Engine, number: int, author: str, reason: str) -> None:
    """Publishes an earlier version again (the log keeps both the change and its undoing).
    One click in the console: the reason is optional."""
    reason = _check_reason(reason.strip() or f"Retour à la version {number}")
    with engine.begin() as conn:
        _lock(conn)
        version = get(conn, number)
        if version is None:
            raise PublishError(f"La version {number} n'existe pas.")
        if published_number(conn) == number:
            raise PublishError(f"La version {number} est déjà la version publiée.")
        fiche_of_version(version)  # still valid for today's loader, or refused (FicheError)
        conn.execute(
            log.insert().values(
                version=number, action="rollback", author=author, at=time.time(), reason=reason
            )
        )


def report_server(engine: Engine, name: str, serving: int | None, seen: int | None, error: str) -> None:
    """What one action server serves (the console shows it on /fiche)."""
    values = {"serving": serving, "published": seen, "error": error, "seen_at": time.time()}
    with engine.begin() as conn:
        updated = conn.execute(servers.update().where(servers.c.name == name).values(**values)).rowcount
        if not updated:
            try:
                with conn.begin_nested():
                    conn.execute(servers.insert().values(name=name, **values))
            except IntegrityError:
                conn.execute(servers.update().where(servers.c.name == name).values(**values))


def servers_seen(conn: Connection, since: float) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(servers).where(servers.c.seen_at >= since).order_by(servers.c.name))
    return [dict(r._mapping) for r in rows]
