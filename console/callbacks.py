"""Callback requests left out of hours (/rappels): read from Rasa's events (the slot
`rappel_demande` that actions/callback.py sets), with what staff did (console_callbacks).
A request erased or purged with its conversation disappears from the list with it."""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from console import db

SLOT = "rappel_demande"
MAX_LISTED = 500


def requests(engine: Engine, status: str = "todo") -> list[dict[str, Any]]:
    """The requests, oldest first when to do ("todo"), newest first when done ("done")."""
    e = db.events.c
    c = db.callbacks.c
    with engine.connect() as conn:
        if not db.has_events_table(conn):
            return []
        rows = conn.execute(
            sa.select(e.id, e.sender_id, e.timestamp, e.data, c.done_by, c.done_at)
            .select_from(db.events.outerjoin(db.callbacks, c.event_id == e.id))
            .where(e.type_name == "slot", e.action_name == SLOT)
            .where(c.event_id.is_(None) if status == "todo" else c.event_id.is_not(None))
            .order_by(e.id if status == "todo" else e.id.desc())
            .limit(MAX_LISTED)
        ).all()
    found = []
    for row in rows:
        try:
            value = json.loads(row.data).get("value")
        except (TypeError, ValueError, AttributeError):
            continue
        if not isinstance(value, dict):
            continue  # the slot cleared
        found.append(
            {
                "event_id": row.id,
                "sender_id": row.sender_id,
                "ts": row.timestamp,
                "name": str(value.get("nom") or ""),
                "contact": str(value.get("contact") or ""),
                "subject": str(value.get("sujet") or ""),
                "done_by": row.done_by,
                "done_at": row.done_at,
            }
        )
    return found


def mark(engine: Engine, event_id: int, by: str, done: bool, now: float | None = None) -> bool:
    """Marks a request done (or to do again). False if there is no such request."""
    e = db.events.c
    table = db.callbacks
    with engine.begin() as conn:
        sender_id = conn.execute(
            sa.select(e.sender_id).where(e.id == event_id, e.type_name == "slot", e.action_name == SLOT)
        ).scalar()
        if sender_id is None:
            return False
        conn.execute(table.delete().where(table.c.event_id == event_id))
        if done:
            conn.execute(
                table.insert().values(
                    event_id=event_id,
                    sender_id=sender_id,
                    done_by=by,
                    done_at=time.time() if now is None else now,
                )
            )
    return True
