"""Folds Rasa's new events into the console's derived tables.

Reading `events` only (id > the last one folded) keeps every page fast at 100,000 events and
more: the lists and insights query small indexed tables instead of parsing the JSON of every
event at each request. It runs at the start of each page (a no-op when nothing is new), so
the console is never behind the assistant.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from actions import handoff
from console import db, feedback
from console.masking import fold, mask

NOUMEA = ZoneInfo("Pacific/Noumea")

FALLBACK_INTENT = "nlu_fallback"
FALLBACK_ACTIONS = {"action_clarifier", "action_default_fallback", "action_two_stage_fallback"}
HANDOFF_INTENTS = {"demander_humain"}
HANDOFF_ACTIONS = {"action_transfert_humain"}
# the conversation went to a person: the desk's queue or taken, or Messenger's page inbox
HANDOFF_STATES = {handoff.WAITING, handoff.HUMAN, handoff.INBOX}
OUT_OF_SCOPE_INTENTS = {"out_of_scope"}
UNKNOWN_CHANNEL = "inconnu"

BATCH = 2000
# PostgreSQL hands out ids before commit, so with several Rasa workers an event may become
# visible after one with a higher id: the last MARGIN ids are looked at again (a sender's own
# events are never reordered, Rasa's lock store serialises them, hence max_event_id per sender).
MARGIN = 200
SEARCH_TEXT_LIMIT = 20000

_lock = threading.Lock()


def noumea_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, NOUMEA).strftime("%Y-%m-%d")


def load_data(raw: str | None) -> dict[str, Any]:
    try:
        data = json.loads(raw or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def intent_and_confidence(parse_data: dict[str, Any]) -> tuple[str | None, float | None]:
    """The predicted intent and the classifier's confidence.

    For nlu_fallback, Rasa writes the fallback threshold as its confidence; the classifier's
    own best score (next in the ranking) is what tells staff how unsure the model was.
    """
    intent = parse_data.get("intent") or {}
    name, confidence = intent.get("name"), intent.get("confidence")
    if name == FALLBACK_INTENT:
        others = [
            r.get("confidence")
            for r in parse_data.get("intent_ranking") or []
            if r.get("name") != FALLBACK_INTENT and isinstance(r.get("confidence"), (int, float))
        ]
        if others:
            confidence = max(others)
    return name, float(confidence) if isinstance(confidence, (int, float)) else None


def get_state(conn: Connection, key: str, default: int = 0) -> int:
    value = conn.execute(sa.select(db.state.c.value).where(db.state.c.key == key)).scalar()
    return int(value) if value is not None else default


def set_state(conn: Connection, key: str, value: int) -> None:
    updated = conn.execute(db.state.update().where(db.state.c.key == key).values(value=str(value)))
    if updated.rowcount == 0:
        conn.execute(db.state.insert().values(key=key, value=str(value)))


def reset(conn: Connection) -> None:
    for table in db.DERIVED_BY_SENDER:
        conn.execute(table.delete())
    conn.execute(db.state.delete().where(db.state.c.key != db.INDEX_VERSION_KEY))


def _new_conversation(sender_id: str, ts: float) -> dict[str, Any]:
    return dict(
        sender_id=sender_id,
        channel=UNKNOWN_CHANNEL,
        start_ts=ts,
        start_day=noumea_day(ts),
        last_ts=ts,
        n_user=0,
        n_bot=0,
        min_confidence=None,
        has_fallback=False,
        has_handoff=False,
        has_out_of_scope=False,
        n_utile=0,
        n_inutile=0,
        preview="",
        search_text="",
        max_event_id=0,
    )


def fold_event(
    conv: dict[str, Any], row: Any, new_messages: list[dict[str, Any]], new_feedback: list[dict[str, Any]]
) -> None:
    """Adds one event to its conversation's summary (and to new_messages for a customer
    message, to new_feedback for a 👍 / 👎)."""
    ts = row.timestamp or 0.0
    conv["start_ts"] = min(conv["start_ts"], ts) if conv["max_event_id"] else ts
    conv["start_day"] = noumea_day(conv["start_ts"])
    conv["last_ts"] = max(conv["last_ts"], ts)
    conv["max_event_id"] = max(conv["max_event_id"], row.id)
    if row.type_name == "user":
        data = load_data(row.data)
        channel = data.get("input_channel") or None
        if channel and conv["channel"] == UNKNOWN_CHANNEL:
            conv["channel"] = channel
        name, confidence = intent_and_confidence(data.get("parse_data") or {})
        name = name or row.intent_name
        conv["n_user"] += 1
        if confidence is not None:
            current = conv["min_confidence"]
            conv["min_confidence"] = confidence if current is None else min(current, confidence)
        conv["has_fallback"] = conv["has_fallback"] or name == FALLBACK_INTENT
        conv["has_handoff"] = conv["has_handoff"] or name in HANDOFF_INTENTS
        conv["has_out_of_scope"] = conv["has_out_of_scope"] or name in OUT_OF_SCOPE_INTENTS
        masked = mask(data.get("text") or "")
        if not conv["preview"] and masked and not masked.startswith("/"):
            conv["preview"] = masked[:200]  # the first message typed: a button's payload says little
        if len(conv["search_text"]) < SEARCH_TEXT_LIMIT:
            conv["search_text"] = (conv["search_text"] + " | " + fold(masked))[:SEARCH_TEXT_LIMIT]
        new_messages.append(
            dict(
                event_id=row.id,
                sender_id=row.sender_id,
                ts=ts,
                day=noumea_day(ts),
                channel=channel or conv["channel"],
                intent=name,
                confidence=confidence,
            )
        )
    elif row.type_name == "bot":
        conv["n_bot"] += 1
    elif row.type_name == "action":
        name = row.action_name or load_data(row.data).get("name")
        conv["has_fallback"] = conv["has_fallback"] or name in FALLBACK_ACTIONS
        conv["has_handoff"] = conv["has_handoff"] or name in HANDOFF_ACTIONS
    elif row.type_name == "slot":
        data = load_data(row.data)
        name = row.action_name or data.get("name")
        value = data.get("value")
        if name == handoff.SLOT:
            conv["has_handoff"] = conv["has_handoff"] or value in HANDOFF_STATES
        elif name == feedback.SLOT and (judged := feedback.parse(value)) is not None:
            note, sujet = judged
            conv["n_" + note] += 1
            new_feedback.append(
                dict(
                    event_id=row.id,
                    sender_id=row.sender_id,
                    ts=ts,
                    day=noumea_day(ts),
                    channel=conv["channel"],
                    sujet=sujet,
                    note=note,
                )
            )


def _chunks(items: list[Any], size: int = 500) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _sync_batch(conn: Connection) -> tuple[int, bool]:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": db.ADVISORY_LOCK_KEY})
    last = get_state(conn, "last_event_id")
    top = conn.execute(sa.select(sa.func.max(db.events.c.id))).scalar()
    if top is None or top < last:
        # the events table was emptied or recreated: start again from nothing
        if last:
            reset(conn)
            last = 0
        if top is None:
            return 0, False
    low = max(0, last - MARGIN) if conn.dialect.name != "sqlite" and last else last
    if top <= last and low == last:
        return 0, False
    e = db.events.c
    rows = conn.execute(
        sa.select(e.id, e.sender_id, e.type_name, e.timestamp, e.intent_name, e.action_name, e.data)
        .where(e.id > low)
        .order_by(e.id)
        .limit(BATCH)
    ).all()
    if not rows:
        return 0, False
    senders = sorted({r.sender_id for r in rows})
    existing: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(senders):
        for found in conn.execute(sa.select(db.conversations).where(db.conversations.c.sender_id.in_(chunk))):
            existing[found.sender_id] = dict(found._mapping)
    known = set(existing)
    changed: set[str] = set()
    new_messages: list[dict[str, Any]] = []
    new_feedback: list[dict[str, Any]] = []
    for row in rows:
        conv = existing.get(row.sender_id)
        if conv is None:
            conv = existing[row.sender_id] = _new_conversation(row.sender_id, row.timestamp or 0.0)
        elif row.id <= conv["max_event_id"]:
            continue  # folded already (the margin looks at some events twice)
        fold_event(conv, row, new_messages, new_feedback)
        changed.add(row.sender_id)
    inserts = [existing[s] for s in changed if s not in known]
    updates = [existing[s] for s in changed if s in known]
    if inserts:
        conn.execute(db.conversations.insert(), inserts)
    if updates:
        c = db.conversations.c
        columns = [col.name for col in db.conversations.columns if col.name != "sender_id"]
        conn.execute(
            db.conversations.update()
            .where(c.sender_id == sa.bindparam("b_sender_id"))
            .values({name: sa.bindparam("b_" + name) for name in columns}),
            [{"b_" + k: v for k, v in conv.items()} for conv in updates],
        )
    if new_messages:
        conn.execute(db.messages.insert(), new_messages)
    if new_feedback:
        conn.execute(db.feedback.insert(), new_feedback)
    newest = max(r.id for r in rows)
    set_state(conn, "last_event_id", max(last, newest))
    return len(rows), len(rows) == BATCH and newest < top


def sync(engine: Engine) -> int:
    """Folds every event not folded yet; returns how many events were read."""
    with _lock:
        total = 0
        with engine.connect() as conn:
            if not db.has_events_table(conn):
                return 0  # Rasa has not started once yet
        while True:
            with engine.begin() as conn:
                count, more = _sync_batch(conn)
            total += count
            if not more:
                return total


def refold(conn: Connection, senders: list[str]) -> None:
    """Rebuilds the summaries, message and feedback rows of these conversations from the
    events they have left (after the retention purge deleted their oldest events)."""
    e = db.events.c
    for chunk in _chunks(senders):
        for table in db.DERIVED_BY_SENDER:
            conn.execute(table.delete().where(table.c.sender_id.in_(chunk)))
        convs: dict[str, dict[str, Any]] = {}
        new_messages: list[dict[str, Any]] = []
        new_feedback: list[dict[str, Any]] = []
        rows = conn.execute(
            sa.select(e.id, e.sender_id, e.type_name, e.timestamp, e.intent_name, e.action_name, e.data)
            .where(e.sender_id.in_(chunk))
            .order_by(e.id)
        )
        for row in rows:
            conv = convs.get(row.sender_id)
            if conv is None:
                conv = convs[row.sender_id] = _new_conversation(row.sender_id, row.timestamp or 0.0)
            fold_event(conv, row, new_messages, new_feedback)
        if convs:
            conn.execute(db.conversations.insert(), list(convs.values()))
        if new_messages:
            conn.execute(db.messages.insert(), new_messages)
        if new_feedback:
            conn.execute(db.feedback.insert(), new_feedback)


def after_purge(conn: Connection) -> None:
    """SQLite reuses the highest ids once they are deleted: never stay above the highest left."""
    top = conn.execute(sa.select(sa.func.max(db.events.c.id))).scalar() or 0
    if get_state(conn, "last_event_id") > top:
        set_state(conn, "last_event_id", top)
