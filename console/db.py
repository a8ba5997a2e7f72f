"""The database: Rasa's `events` table (read, and deleted from only by the purge) and the
console's own tables, all named console_*, created beside it.

Two kinds of console tables:
- derived ones (console_conversations, console_messages, console_state), rebuilt from
  `events` at any time by the indexer; they make the lists and the insights fast;
- staff work (users, sessions, tags, notes, reviews, labels), which only staff create.
"""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.url import URL, make_url

from actions import fiche_versions

metadata = sa.MetaData()

# Rasa's table, as rasa/core/tracker_store.py (SQLTrackerStore.SQLEvent) defines it. Declared
# here only to build queries: the console never creates it (Rasa does, at its first start).
events = sa.Table(
    "events",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sender_id", sa.String(255), nullable=False),
    sa.Column("type_name", sa.String(255), nullable=False),
    sa.Column("timestamp", sa.Float),
    sa.Column("intent_name", sa.String(255)),
    sa.Column("action_name", sa.String(255)),
    sa.Column("data", sa.Text),
)

# --- derived ---------------------------------------------------------------------------
conversations = sa.Table(
    "console_conversations",
    metadata,
    sa.Column("sender_id", sa.String(255), primary_key=True),
    sa.Column("channel", sa.String(64), nullable=False, index=True),
    sa.Column("start_ts", sa.Float, nullable=False, index=True),
    sa.Column("start_day", sa.String(10), nullable=False),  # date of start_ts in Nouméa
    sa.Column("last_ts", sa.Float, nullable=False),
    sa.Column("n_user", sa.Integer, nullable=False, default=0),
    sa.Column("n_bot", sa.Integer, nullable=False, default=0),
    sa.Column("min_confidence", sa.Float, index=True),
    sa.Column("has_fallback", sa.Boolean, nullable=False, default=False),
    sa.Column("has_handoff", sa.Boolean, nullable=False, default=False),
    sa.Column("has_out_of_scope", sa.Boolean, nullable=False, default=False),
    # answers the customer judged (the `avis` slot, console/feedback.py): 👍 and 👎
    sa.Column("n_utile", sa.Integer, nullable=False, default=0),
    sa.Column("n_inutile", sa.Integer, nullable=False, default=0),
    # first customer message, masked, for the list
    sa.Column("preview", sa.Text, nullable=False, default=""),
    # masked texts, lower case, accents removed: the text search runs on this
    sa.Column("search_text", sa.Text, nullable=False, default=""),
    # the last event folded in: an event is counted once even if seen twice
    sa.Column("max_event_id", sa.Integer, nullable=False),
)

# one row per customer message: intent filter and insights
messages = sa.Table(
    "console_messages",
    metadata,
    sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("sender_id", sa.String(255), nullable=False, index=True),
    sa.Column("ts", sa.Float, nullable=False, index=True),
    sa.Column("day", sa.String(10), nullable=False),  # date in Nouméa
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("intent", sa.String(255)),
    sa.Column("confidence", sa.Float),
    sa.Index("ix_console_messages_intent_sender", "intent", "sender_id"),
)

# one row per 👍 / 👎 the customer gave (the `avis` slot): satisfaction per topic and day
feedback = sa.Table(
    "console_feedback",
    metadata,
    sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("sender_id", sa.String(255), nullable=False, index=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("day", sa.String(10), nullable=False),  # date in Nouméa
    # the conversation's, copied: per-channel figures without a join (which triples their time)
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("sujet", sa.String(255)),  # the topic intent the answer was about
    sa.Column("note", sa.String(16), nullable=False),  # "utile" or "inutile"
    # covers the insights' one query (console/feedback.py): half its time, rows never change
    sa.Index("ix_console_feedback_period", "ts", "day", "sujet", "channel", "note"),
)

state = sa.Table(
    "console_state",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)

# --- staff work ------------------------------------------------------------------------
users = sa.Table(
    "console_users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# open sessions: the cookie carries a random id, this table its SHA-256; logout deletes the row
sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.Integer, nullable=False, index=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

tags = sa.Table(
    "console_tags",
    metadata,
    sa.Column("sender_id", sa.String(255), primary_key=True),
    sa.Column("tag", sa.String(50), primary_key=True, index=True),
    sa.Column("author", sa.String(100), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

notes = sa.Table(
    "console_notes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sender_id", sa.String(255), nullable=False, index=True),
    sa.Column("author", sa.String(100), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
)

reviews = sa.Table(
    "console_reviews",
    metadata,
    sa.Column("sender_id", sa.String(255), primary_key=True),
    sa.Column("author", sa.String(100), nullable=False),
    sa.Column("reviewed_at", sa.Float, nullable=False),
)

labels = sa.Table(
    "console_labels",
    metadata,
    sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("sender_id", sa.String(255), nullable=False, index=True),
    sa.Column("text", sa.Text, nullable=False),  # masked
    sa.Column("example", sa.Text, nullable=False),  # masked, with entity annotations
    sa.Column("predicted_intent", sa.String(255)),
    sa.Column("intent", sa.String(255), nullable=False),
    sa.Column("author", sa.String(100), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

# the opaque references in the console's URLs (an HMAC of the sender id): the pages and
# their addresses never show a sender id (a phone number for some channels)
refs = sa.Table(
    "console_refs",
    metadata,
    sa.Column("ref", sa.String(64), primary_key=True),
    sa.Column("sender_id", sa.String(255), nullable=False, index=True),
)

DERIVED = (conversations, messages, feedback, state)
# the derived rows of one conversation: deleted with it (purge, erasure), rebuilt by refold
DERIVED_BY_SENDER = (conversations, messages, feedback)
# deleted with the conversation (purge, erasure)
# live desk (console/desk.py): who is present, and each handoff taken by a staff member
desk_presence = sa.Table(
    "console_desk_presence",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("present", sa.Boolean, nullable=False),
    sa.Column("seen_at", sa.Float, nullable=False),
)
handoffs = sa.Table(
    "console_handoffs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sender_id", sa.String(255), nullable=False, index=True),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("waiting_since", sa.Float, nullable=False),
    sa.Column("taken_at", sa.Float, nullable=False, index=True),
    sa.Column("agent", sa.String(100), nullable=False),
    sa.Column("closed_at", sa.Float),
    # "agent" (Rendre la main), "customer" (back to the assistant), "expired"
    sa.Column("closed_by", sa.String(16)),
)

# callback requests (console/callbacks.py): the request is a tracker event (slot
# rappel_demande); this table holds what staff did with it
callbacks = sa.Table(
    "console_callbacks",
    metadata,
    sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("sender_id", sa.String(255), nullable=False, index=True),
    sa.Column("done_by", sa.String(100), nullable=False),
    sa.Column("done_at", sa.Float, nullable=False),
)

STAFF_WORK_BY_SENDER = (tags, notes, reviews, labels, refs, handoffs, callbacks)


def make_engine(url: str | URL) -> Engine:
    url = make_url(url)
    kwargs: dict[str, Any] = {"future": True}
    if url.get_backend_name() == "sqlite":
        # Rasa writes to the same file: wait for its short write locks instead of failing
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    elif url.get_backend_name() == "postgresql":
        kwargs["pool_pre_ping"] = True
        # an unreachable server fails in seconds instead of the system's TCP timeout
        connect_args: dict[str, Any] = {"connect_timeout": 10}
        schema = os.environ.get("POSTGRESQL_SCHEMA")  # the variable Rasa's SQL store reads
        if schema:
            connect_args["options"] = f"-csearch_path={schema}"
        kwargs["connect_args"] = connect_args
    return sa.create_engine(url, **kwargs)


# The layout of the derived tables and what the indexer folds into them. When it changes,
# create_tables drops them and the indexer rebuilds them from the events: an older console's
# index lacks columns (a crash) or counts differently (wrong figures). Version 2: feedback
# (console_feedback, n_utile/n_inutile, start_day) and the handoff slot in has_handoff.
INDEX_VERSION = 3  # 3: the preview skips button payloads (/demarrer)
INDEX_VERSION_KEY = "index_version"
# PostgreSQL: one process at a time folds events or rebuilds the index (several workers)
ADVISORY_LOCK_KEY = 7_412_687  # any constant of our own


def _index_version(conn: Connection) -> int | None:
    if not sa.inspect(conn).has_table(state.name):
        return None
    value = conn.execute(sa.select(state.c.value).where(state.c.key == INDEX_VERSION_KEY)).scalar()
    return int(value) if value is not None and value.isdigit() else None


def create_tables(engine: Engine) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
        outdated = _index_version(conn) != INDEX_VERSION
        if outdated:
            for table in reversed(DERIVED):
                table.drop(conn, checkfirst=True)
        metadata.create_all(conn)
        if outdated:
            conn.execute(state.insert().values(key=INDEX_VERSION_KEY, value=str(INDEX_VERSION)))
    # the fiche's versions (actions/fiche_versions.py): version 1 is the file of the repository
    fiche_versions.ensure_tables(engine)


def has_events_table(conn: Connection) -> bool:
    return sa.inspect(conn).has_table("events")
