"""The live desk (/direct): staff present, the queue of conversations waiting for a person,
taking one, replying, handing back to the assistant.

Who answers a conversation is its tracker's `handoff` slot (actions/handoff.py). The console
reads it from Rasa's `events` table and changes it only through Rasa's HTTP API (append
events, `output_channel=latest`, `execute_side_effects=true`): the staff member's message is
a bot event with the staff member in its metadata, sent by Rasa on the conversation's own
channel, so the transcript stays whole and Rasa's own locks apply. The console keeps only its
own record of each handoff taken (console_handoffs: who, when, how it ended).
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlencode

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from actions import answers, handoff
from console import db
from console.config import Settings

log = logging.getLogger("console.desk")

# A staff member counts as present while the desk page polls (every few seconds) and for
# this long after: a closed tab does not leave anyone "present" for the assistant.
PRESENCE_TTL = 45.0
# Handoff slot events older than this are not looked at (a handoff ends long before).
WINDOW = 24 * 3600
TRANSCRIPT_EVENTS = 60
MAX_REPLY = 2000
API_TIMEOUT = 10.0
# never read as the http_proxy of the environment: Rasa is on the internal network
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class DeskError(Exception):
    """A desk action that cannot be done; the message is French, for the staff member."""


# --- presence ------------------------------------------------------------------------------


def set_presence(engine: Engine, name: str, present: bool, now: float | None = None) -> None:
    now = time.time() if now is None else now
    table = db.desk_presence
    with engine.begin() as conn:
        done = conn.execute(
            table.update().where(table.c.name == name).values(present=present, seen_at=now)
        ).rowcount
        if not done:
            conn.execute(table.insert().values(name=name, present=present, seen_at=now))


def touch(engine: Engine, name: str, now: float | None = None) -> bool:
    """The desk page polled: keeps a present staff member present. Returns whether present."""
    now = time.time() if now is None else now
    table = db.desk_presence
    with engine.begin() as conn:
        conn.execute(table.update().where(table.c.name == name, table.c.present).values(seen_at=now))
        row = conn.execute(sa.select(table.c.present).where(table.c.name == name)).first()
    return bool(row and row.present)


def available(engine: Engine, now: float | None = None) -> bool:
    """At least one staff member present on the desk (what the assistant asks before handing over)."""
    now = time.time() if now is None else now
    table = db.desk_presence
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(sa.func.count()).where(table.c.present, table.c.seen_at >= now - PRESENCE_TTL)
        ).one()
    return row[0] > 0


# --- handoff states, from Rasa's events --------------------------------------------------


def live_states(engine: Engine, now: float | None = None) -> dict[str, dict[str, Any]]:
    """sender id -> {"state", "since"} for the conversations a person is asked for or answers.
    A stale handoff (actions/handoff.py's limits) is left out: the assistant takes it back."""
    now = time.time() if now is None else now
    e = db.events.c
    latest: dict[str, tuple[str | None, float]] = {}
    with engine.connect() as conn:
        if not db.has_events_table(conn):
            return {}
        rows = conn.execute(
            sa.select(e.sender_id, e.timestamp, e.data)
            .where(e.type_name == "slot", e.action_name == handoff.SLOT, e.timestamp >= now - WINDOW)
            .order_by(e.id)
        ).all()
    for row in rows:
        try:
            value = json.loads(row.data).get("value")
        except (TypeError, ValueError, AttributeError):
            value = None
        latest[row.sender_id] = (value, row.timestamp)
    found = {}
    for sender_id, (value, since) in latest.items():
        if (value == handoff.WAITING and now - since <= handoff.MAX_WAIT_SECONDS) or value == handoff.HUMAN:
            found[sender_id] = {"state": value, "since": since}
    return found


def transcript(engine: Engine, sender_id: str, limit: int = TRANSCRIPT_EVENTS) -> list[dict[str, Any]]:
    """The last messages of a conversation: who (client / assistant / conseiller), text, time."""
    e = db.events.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(e.type_name, e.timestamp, e.data)
            .where(e.sender_id == sender_id, e.type_name.in_(("user", "bot")))
            .order_by(e.id.desc())
            .limit(limit)
        ).all()
    lines = []
    for row in reversed(rows):
        try:
            data = json.loads(row.data)
        except (TypeError, ValueError):
            continue
        if row.type_name == "user":
            text = data.get("text") or ""
            if text in ("/demarrer",):
                continue  # the widget's start payload, never typed
            lines.append({"who": "client", "text": text, "ts": row.timestamp})
            continue
        custom = (data.get("data") or {}).get("custom")
        if custom == handoff.HELD or not data.get("text"):
            continue  # the assistant's deliberate silence
        # the name the customer saw (custom), else the staff login (metadata)
        agent = (custom or {}).get("agent") if isinstance(custom, dict) else None
        agent = agent or (data.get("metadata") or {}).get("agent")
        lines.append(
            {
                "who": "conseiller" if agent else "assistant",
                "agent": agent,
                "text": data["text"],
                "ts": row.timestamp,
            }
        )
    return lines


# --- the desk's view -----------------------------------------------------------------------


def open_handoffs(engine: Engine) -> list[dict[str, Any]]:
    table = db.handoffs
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(table).where(table.c.closed_at.is_(None)).order_by(table.c.taken_at)
        ).all()
    return [dict(r._mapping) for r in rows]


def close(engine: Engine, handoff_id: int, by: str, now: float | None = None) -> None:
    now = time.time() if now is None else now
    table = db.handoffs
    with engine.begin() as conn:
        conn.execute(
            table.update()
            .where(table.c.id == handoff_id, table.c.closed_at.is_(None))
            .values(closed_at=now, closed_by=by)
        )


def view(engine: Engine, name: str, now: float | None = None) -> dict[str, Any]:
    """What the desk page shows `name`: the queue and the conversations `name` handles. An
    open handoff whose conversation went back to the assistant (the customer's button, or
    stale) is closed here."""
    now = time.time() if now is None else now
    states = live_states(engine, now)
    mine, others = [], set()
    for row in open_handoffs(engine):
        if states.get(row["sender_id"], {}).get("state") != handoff.HUMAN:
            close(engine, row["id"], "customer", now)
            continue
        if row["agent"] == name:
            mine.append({**row, "messages": transcript(engine, row["sender_id"])})
        else:
            others.add(row["sender_id"])
    queue = [
        {
            "sender_id": sender_id,
            "since": info["since"],
            "waited": now - info["since"],
            "messages": transcript(engine, sender_id, limit=12),
        }
        for sender_id, info in sorted(states.items(), key=lambda item: item[1]["since"])
        if info["state"] == handoff.WAITING
    ]
    return {"queue": queue, "mine": mine, "taken_by_others": len(others)}


# --- acting through Rasa's HTTP API ----------------------------------------------------------


def post_events(settings: Settings, sender_id: str, events: Iterable[dict[str, Any]]) -> None:
    """Appends `events` to the conversation and sends its bot messages on its own channel."""
    if not settings.rasa_url:
        raise DeskError("Le desk n'est pas relié à Rasa (CONSOLE_RASA_URL) : impossible d'écrire au client.")
    query = urlencode(
        {"output_channel": "latest", "execute_side_effects": "true", "token": settings.rasa_token}
    )
    # Rasa's route takes the id as written (Sanic does not decode %3A): the characters a
    # sender id may hold (channels/guard.py SENDER_ID) are all left as they are
    url = f"{settings.rasa_url}/conversations/{quote(sender_id, safe=':@+=')}/tracker/events?{query}"
    body = json.dumps(list(events)).encode("utf-8")
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with OPENER.open(request, timeout=API_TIMEOUT) as reply:
            reply.read()
    except urllib.error.HTTPError as error:
        log.error("desk: Rasa refused the events (HTTP %s)", error.code)
        raise DeskError(f"Rasa a refusé le message (HTTP {error.code}). Réessayez.") from error
    except (urllib.error.URLError, OSError) as error:
        log.error("desk: Rasa unreachable (%s)", type(error).__name__)
        raise DeskError("Rasa ne répond pas : le message n'est pas parti. Réessayez.") from error


def _staff_message(text: str, login: str, notice: str | None = None) -> dict[str, Any]:
    custom: dict[str, str] = {"agent": answers.agent_name(login)}
    if notice:
        custom["notice"] = notice
    return {"event": "bot", "text": text, "data": {"custom": custom}, "metadata": {"agent": login}}


def _slot(value: str | None) -> dict[str, Any]:
    return {"event": "slot", "name": handoff.SLOT, "value": value}


def take(engine: Engine, settings: Settings, sender_id: str, login: str, now: float | None = None) -> None:
    now = time.time() if now is None else now
    info = live_states(engine, now).get(sender_id)
    if info is None or info["state"] != handoff.WAITING:
        raise DeskError("Cette conversation n'attend plus de conseiller.")
    table = db.handoffs
    with engine.begin() as conn:
        taken = conn.execute(
            sa.select(table.c.agent).where(table.c.sender_id == sender_id, table.c.closed_at.is_(None))
        ).first()
        if taken is not None:
            raise DeskError(f"Conversation déjà prise en charge par {taken.agent}.")
        handoff_id = conn.execute(
            table.insert().values(
                sender_id=sender_id,
                channel=sender_id.partition(":")[0],
                waiting_since=info["since"],
                taken_at=now,
                agent=login,
            )
        ).inserted_primary_key[0]
    try:
        post_events(
            settings,
            sender_id,
            [
                _slot(handoff.HUMAN),
                _staff_message(answers.agent_joined(answers.agent_name(login)), login, "joined"),
            ],
        )
    except DeskError:
        with engine.begin() as conn:
            conn.execute(table.delete().where(table.c.id == handoff_id))
        raise


def _my_open_handoff(engine: Engine, sender_id: str, login: str) -> dict[str, Any]:
    for row in open_handoffs(engine):
        if row["sender_id"] == sender_id:
            if row["agent"] != login:
                raise DeskError(f"Cette conversation est prise en charge par {row['agent']}.")
            return row
    raise DeskError("Cette conversation n'est plus prise en charge : le client est revenu à l'assistant.")


def reply(engine: Engine, settings: Settings, sender_id: str, login: str, text: str) -> None:
    text = text.strip()
    if not text:
        raise DeskError("Message vide.")
    if len(text) > MAX_REPLY:
        raise DeskError(f"Message trop long ({len(text)} caractères, {MAX_REPLY} au plus).")
    _my_open_handoff(engine, sender_id, login)
    post_events(settings, sender_id, [_staff_message(text, login)])


def release(engine: Engine, settings: Settings, sender_id: str, login: str, now: float | None = None) -> None:
    row = _my_open_handoff(engine, sender_id, login)
    post_events(settings, sender_id, [_staff_message(answers.AGENT_LEFT, login, "left"), _slot(None)])
    close(engine, row["id"], "agent", now)


# --- insights ------------------------------------------------------------------------------


def handoff_stats(engine: Engine, since: float, until: float) -> dict[str, Any]:
    """Handoffs asked (conversations put in the queue), taken, mean wait, closed by a person."""
    e = db.events.c
    table = db.handoffs
    with engine.connect() as conn:
        asked = 0
        if db.has_events_table(conn):
            asked = conn.execute(
                sa.select(sa.func.count(sa.distinct(e.sender_id))).where(
                    e.type_name == "slot",
                    e.action_name == handoff.SLOT,
                    e.timestamp >= since,
                    e.timestamp < until,
                    e.data.like('%"waiting"%'),
                )
            ).one()[0]
        rows = conn.execute(
            sa.select(table.c.waiting_since, table.c.taken_at, table.c.closed_by).where(
                table.c.taken_at >= since, table.c.taken_at < until
            )
        ).all()
    waits = [r.taken_at - r.waiting_since for r in rows]
    return {
        "asked": asked,
        "taken": len(rows),
        "mean_wait": sum(waits) / len(waits) if waits else None,
        "closed_by_agent": sum(1 for r in rows if r.closed_by == "agent"),
    }
