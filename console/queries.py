"""Reads and writes behind the pages. Everything takes an Engine and runs synchronously
(the app calls it in a thread pool)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from actions import handoff
from console import db, feedback, indexer
from console.indexer import FALLBACK_INTENT, NOUMEA, intent_and_confidence, load_data
from console.masking import fold, mask, pii_spans

c = db.conversations.c
FLAGS = {
    "fallback": "repli (fallback)",
    "handoff": "demande de conseiller",
    "out_of_scope": "hors sujet",
    "fallback_or_handoff": "repli ou conseiller",
}
SUGGESTED_TAGS = ("à revoir", "erreur NLU", "traité")
MAX_TRANSCRIPT_EVENTS = 5000
# Dates a filter accepts: outside, date arithmetic overflows (9999-12-31 + 1 day)
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2999, 12, 31)
# Rasa's event ids are integers of the database: a larger number is no event (and would
# overflow SQLite's INTEGER)
MAX_EVENT_ID = 2**63 - 1


def text_param(value: str | None, limit: int) -> str:
    """A text parameter, stripped, without NUL (PostgreSQL refuses it in a string), cut."""
    return (value or "").replace("\x00", "").strip()[:limit]


def noumea_midnight(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=NOUMEA).timestamp()


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass
class Filters:
    channel: str = ""
    intent: str = ""
    below: float | None = None  # lowest confidence under this
    flag: str = ""
    date_from: date | None = None
    date_to: date | None = None
    tag: str = ""
    q: str = ""
    reviewed: str = ""  # "", "yes", "no"
    avis: str = ""  # "" or "inutile": at least one answer judged useless (👎)
    errors: list[str] = field(default_factory=list)

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> Filters:
        f = cls()
        f.channel = text_param(params.get("channel"), 64)
        f.intent = text_param(params.get("intent"), 255)
        f.flag = params.get("flag") or ""
        if f.flag not in FLAGS:
            f.flag = ""
        f.tag = text_param(params.get("tag"), 50)
        f.q = text_param(params.get("q"), 200)
        reviewed = params.get("reviewed") or ""
        f.reviewed = reviewed if reviewed in ("yes", "no") else ""
        f.avis = feedback.USELESS if params.get("avis") == feedback.USELESS else ""
        below = (params.get("below") or "").strip().replace(",", ".")
        if below:
            try:
                f.below = float(below)
                if not 0 <= f.below <= 1:
                    raise ValueError
            except ValueError:
                f.below = None
                f.errors.append("Le seuil de confiance doit être un nombre entre 0 et 1.")
        for name in ("date_from", "date_to"):
            value = text_param(params.get(name), 40)
            if value:
                try:
                    day = date.fromisoformat(value)
                except ValueError:
                    f.errors.append(f"Date invalide : {value}")
                    continue
                if FIRST_DAY <= day <= LAST_DAY:
                    setattr(f, name, day)
                else:
                    f.errors.append(f"Date hors limites : {value}")
        return f

    def as_query(self) -> dict[str, str]:
        out = {
            "channel": self.channel,
            "intent": self.intent,
            "flag": self.flag,
            "tag": self.tag,
            "q": self.q,
            "reviewed": self.reviewed,
            "avis": self.avis,
            "below": "" if self.below is None else f"{self.below:g}",
            "date_from": self.date_from.isoformat() if self.date_from else "",
            "date_to": self.date_to.isoformat() if self.date_to else "",
        }
        return {k: v for k, v in out.items() if v}

    def where(self) -> list[Any]:
        clauses: list[Any] = [sa.or_(c.n_user > 0, c.n_bot > 0)]  # not the empty trackers
        if self.channel:
            clauses.append(c.channel == self.channel)
        if self.intent:
            clauses.append(
                c.sender_id.in_(sa.select(db.messages.c.sender_id).where(db.messages.c.intent == self.intent))
            )
        if self.below is not None:
            clauses.append(c.min_confidence < self.below)
        if self.flag == "fallback":
            clauses.append(c.has_fallback == sa.true())
        elif self.flag == "handoff":
            clauses.append(c.has_handoff == sa.true())
        elif self.flag == "out_of_scope":
            clauses.append(c.has_out_of_scope == sa.true())
        elif self.flag == "fallback_or_handoff":
            clauses.append(sa.or_(c.has_fallback == sa.true(), c.has_handoff == sa.true()))
        if self.avis == feedback.USELESS:
            clauses.append(c.n_inutile > 0)
        if self.date_from:
            clauses.append(c.start_ts >= noumea_midnight(self.date_from))
        if self.date_to:
            clauses.append(c.start_ts < noumea_midnight(self.date_to + timedelta(days=1)))
        if self.tag:
            clauses.append(c.sender_id.in_(sa.select(db.tags.c.sender_id).where(db.tags.c.tag == self.tag)))
        if self.q:
            clauses.append(c.search_text.like(_like(fold(self.q)), escape="\\"))
        reviewed = sa.select(db.reviews.c.sender_id)
        if self.reviewed == "yes":
            clauses.append(c.sender_id.in_(reviewed))
        elif self.reviewed == "no":
            clauses.append(c.sender_id.not_in(reviewed))
        return clauses


def list_conversations(engine: Engine, f: Filters, page: int, per_page: int) -> tuple[list[dict], int]:
    indexer.sync(engine)
    with engine.connect() as conn:
        where = f.where()
        total = conn.execute(sa.select(sa.func.count()).select_from(db.conversations).where(*where)).scalar()
        rows = conn.execute(
            sa.select(
                c.sender_id,
                c.channel,
                c.start_ts,
                c.last_ts,
                c.n_user,
                c.n_bot,
                c.min_confidence,
                c.has_fallback,
                c.has_handoff,
                c.has_out_of_scope,
                c.n_utile,
                c.n_inutile,
                c.preview,
            )
            .where(*where)
            .order_by(c.start_ts.desc(), c.sender_id)
            .limit(per_page)
            .offset((page - 1) * per_page)
        ).all()
        items = [dict(r._mapping) for r in rows]
        senders = [i["sender_id"] for i in items]
        tag_map: dict[str, list[str]] = {}
        reviewed = set()
        if senders:
            for t in conn.execute(
                sa.select(db.tags.c.sender_id, db.tags.c.tag)
                .where(db.tags.c.sender_id.in_(senders))
                .order_by(db.tags.c.tag)
            ):
                tag_map.setdefault(t.sender_id, []).append(t.tag)
            reviewed = set(
                conn.execute(
                    sa.select(db.reviews.c.sender_id).where(db.reviews.c.sender_id.in_(senders))
                ).scalars()
            )
        for item in items:
            item["tags"] = tag_map.get(item["sender_id"], [])
            item["reviewed"] = item["sender_id"] in reviewed
        return items, total


def filter_choices(engine: Engine) -> dict[str, list[str]]:
    with engine.connect() as conn:
        channels = list(conn.execute(sa.select(c.channel).distinct().order_by(c.channel)).scalars())
        intents = list(
            conn.execute(
                sa.select(db.messages.c.intent)
                .distinct()
                .where(db.messages.c.intent.is_not(None))
                .order_by(db.messages.c.intent)
            ).scalars()
        )
        tags = list(conn.execute(sa.select(db.tags.c.tag).distinct().order_by(db.tags.c.tag)).scalars())
    return {"channels": channels, "intents": intents, "tags": sorted(set(tags) | set(SUGGESTED_TAGS))}


# --- opaque references of conversations ------------------------------------------------


def conversation_ref(key: bytes, sender_id: str) -> str:
    """The reference of a conversation in URLs and pages: a keyed hash of its sender id."""
    return hmac.new(key, sender_id.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32]


def remember_refs(engine: Engine, key: bytes, senders: Iterable[str]) -> None:
    """Records the references of these conversations, so that their links can be followed."""
    wanted = {conversation_ref(key, s): s for s in set(senders)}
    if not wanted:
        return
    with engine.connect() as conn:
        known = set(conn.execute(sa.select(db.refs.c.ref).where(db.refs.c.ref.in_(list(wanted)))).scalars())
    for ref, sender_id in wanted.items():
        if ref in known:
            continue
        try:
            with engine.begin() as conn:
                conn.execute(db.refs.insert().values(ref=ref, sender_id=sender_id))
        except sa.exc.IntegrityError:
            pass  # another request recorded it meanwhile


def backfill_refs(engine: Engine, key: bytes) -> None:
    """Records the references of every indexed conversation that has none yet."""
    indexer.sync(engine)
    with engine.connect() as conn:
        missing = list(
            conn.execute(
                sa.select(c.sender_id)
                .outerjoin(db.refs, db.refs.c.sender_id == c.sender_id)
                .where(db.refs.c.ref.is_(None))
            ).scalars()
        )
    for i in range(0, len(missing), 500):
        rows = [{"ref": conversation_ref(key, s), "sender_id": s} for s in missing[i : i + 500]]
        try:
            with engine.begin() as conn:
                conn.execute(db.refs.insert(), rows)
        except sa.exc.IntegrityError:
            remember_refs(engine, key, [r["sender_id"] for r in rows])  # one by one


def sender_of_ref(engine: Engine, ref: str, key: bytes | None = None) -> str | None:
    """The sender id of a reference; with `key`, conversations not given a reference yet
    are given theirs first if the reference is unknown."""
    query = sa.select(db.refs.c.sender_id).where(db.refs.c.ref == ref)
    with engine.connect() as conn:
        found = conn.execute(query).scalar()
    if found is None and key is not None:
        backfill_refs(engine, key)
        with engine.connect() as conn:
            found = conn.execute(query).scalar()
    return found


def conversation_exists(engine: Engine, sender_id: str) -> bool:
    indexer.sync(engine)
    with engine.connect() as conn:
        return conn.execute(sa.select(c.sender_id).where(c.sender_id == sender_id)).first() is not None


# --- one conversation --------------------------------------------------------------------


def _ranking(intent: str | None, parse: dict[str, Any]) -> dict[str, Any]:
    """The classifier's best intent (for nlu_fallback, the one it hesitated on) and the next two."""
    ranking = [
        (r.get("name"), r.get("confidence"))
        for r in (parse.get("intent_ranking") or [])
        if r.get("name") not in (FALLBACK_INTENT, None)
    ]
    if intent == FALLBACK_INTENT:
        return {"best": ranking[0][0] if ranking else None, "others": ranking[1:3]}
    return {"best": intent, "others": [r for r in ranking if r[0] != intent][:2]}


def conversation(engine: Engine, sender_id: str) -> dict[str, Any] | None:
    indexer.sync(engine)
    e = db.events.c
    with engine.connect() as conn:
        summary = conn.execute(sa.select(db.conversations).where(c.sender_id == sender_id)).first()
        if summary is None:
            return None
        rows = conn.execute(
            sa.select(e.id, e.type_name, e.timestamp, e.action_name, e.data)
            .where(e.sender_id == sender_id)
            .order_by(e.id)
            .limit(MAX_TRANSCRIPT_EVENTS)
        ).all()
        labels = {
            r.event_id: dict(r._mapping)
            for r in conn.execute(sa.select(db.labels).where(db.labels.c.sender_id == sender_id))
        }
        tag_rows = conn.execute(
            sa.select(db.tags).where(db.tags.c.sender_id == sender_id).order_by(db.tags.c.tag)
        ).all()
        note_rows = conn.execute(
            sa.select(db.notes).where(db.notes.c.sender_id == sender_id).order_by(db.notes.c.created_at)
        ).all()
        review = conn.execute(sa.select(db.reviews).where(db.reviews.c.sender_id == sender_id)).first()
    timeline = []
    # a 👍 / 👎 click waiting for the `avis` slot that records it (and names the topic)
    click: dict[str, Any] | None = None
    for row in rows:
        data = load_data(row.data)
        item: dict[str, Any] = {"id": row.id, "type": row.type_name, "ts": row.timestamp}
        note = feedback.click_note(data.get("text") or "") if row.type_name == "user" else None
        if note is not None:
            item.update(type="feedback", note=note, sujet=None, click=True)
            item["text"] = feedback.describe(note, None)
            click = item
        elif row.type_name == "user":
            click = None
            parse = data.get("parse_data") or {}
            intent, confidence = intent_and_confidence(parse)
            text = data.get("text") or ""
            pii = pii_spans(text)

            def entity_value(x: dict[str, Any], pii: list[Any] = pii) -> str:
                # a piece of a phone number taken for an entity ('78' of '78 12 34') is masked too
                start, end = x.get("start"), x.get("end")
                if (
                    isinstance(start, int)
                    and isinstance(end, int)
                    and any(s < end and start < e for s, e, _ in pii)
                ):
                    return "‹masqué›"
                return mask(str(x.get("value")))

            item.update(
                text=mask(text),
                intent=intent,
                confidence=confidence,
                entities=[
                    {"entity": x.get("entity"), "value": entity_value(x), "extractor": x.get("extractor")}
                    for x in parse.get("entities") or []
                ],
                **_ranking(intent, parse),
                channel=data.get("input_channel"),
                label=labels.get(row.id),
            )
        elif row.type_name == "bot":
            custom = (data.get("data") or {}).get("custom")
            if custom == handoff.HELD:
                continue  # the assistant's deliberate silence while a person answers
            agent = custom.get("agent") if isinstance(custom, dict) else None
            item.update(
                text=data.get("text") or "",
                buttons=[b.get("title") for b in ((data.get("data") or {}).get("buttons") or [])],
                agent=agent or (data.get("metadata") or {}).get("agent"),
            )
        elif row.type_name == "action":
            name = row.action_name or data.get("name")
            if name == "action_listen":
                continue  # after every turn: noise for the reader
            item.update(name=name)
        elif row.type_name == "slot" and data.get("name") == feedback.SLOT:
            judged = feedback.parse(data.get("value"))
            if judged is None:
                continue  # the slot cleared: bookkeeping of the assistant
            note, sujet = judged
            if click is not None and click["note"] == note:
                # the slot records the click shown above: one line, with the topic
                click.update(sujet=sujet, text=feedback.describe(note, sujet))
                click = None
                continue
            item.update(
                type="feedback", note=note, sujet=sujet, click=False, text=feedback.describe(note, sujet)
            )
        elif row.type_name == "slot":
            item.update(name=data.get("name"), value=data.get("value"))
        elif row.type_name != "session_started":
            continue
        timeline.append(item)
    return {
        "summary": dict(summary._mapping),
        "timeline": timeline,
        "truncated": len(rows) == MAX_TRANSCRIPT_EVENTS,
        "tags": [dict(t._mapping) for t in tag_rows],
        "notes": [dict(n._mapping) for n in note_rows],
        "review": dict(review._mapping) if review else None,
    }


def add_tag(engine: Engine, sender_id: str, tag: str, author: str) -> None:
    with engine.begin() as conn:
        exists = conn.execute(
            sa.select(db.tags.c.tag).where(db.tags.c.sender_id == sender_id, db.tags.c.tag == tag)
        ).first()
        if not exists:
            conn.execute(
                db.tags.insert().values(sender_id=sender_id, tag=tag, author=author, created_at=time.time())
            )


def remove_tag(engine: Engine, sender_id: str, tag: str) -> None:
    with engine.begin() as conn:
        conn.execute(db.tags.delete().where(db.tags.c.sender_id == sender_id, db.tags.c.tag == tag))


def add_note(engine: Engine, sender_id: str, text: str, author: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            db.notes.insert().values(sender_id=sender_id, text=text, author=author, created_at=time.time())
        )


def set_reviewed(engine: Engine, sender_id: str, reviewed: bool, author: str) -> None:
    with engine.begin() as conn:
        conn.execute(db.reviews.delete().where(db.reviews.c.sender_id == sender_id))
        if reviewed:
            conn.execute(
                db.reviews.insert().values(sender_id=sender_id, author=author, reviewed_at=time.time())
            )


def customer_message(engine: Engine, sender_id: str, event_id: int) -> dict[str, Any] | None:
    e = db.events.c
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(e.data).where(e.id == event_id, e.sender_id == sender_id, e.type_name == "user")
        ).first()
    if row is None:
        return None
    data = load_data(row.data)
    return {"text": data.get("text") or "", "parse_data": data.get("parse_data") or {}}


def set_label(
    engine: Engine,
    sender_id: str,
    event_id: int,
    intent: str,
    example: str,
    text: str,
    predicted: str | None,
    author: str,
) -> None:
    with engine.begin() as conn:
        conn.execute(db.labels.delete().where(db.labels.c.event_id == event_id))
        conn.execute(
            db.labels.insert().values(
                event_id=event_id,
                sender_id=sender_id,
                text=text,
                example=example,
                predicted_intent=predicted,
                intent=intent,
                author=author,
                created_at=time.time(),
            )
        )


def remove_label(engine: Engine, sender_id: str, event_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            db.labels.delete().where(db.labels.c.event_id == event_id, db.labels.c.sender_id == sender_id)
        )


def all_labels(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(db.labels).order_by(db.labels.c.created_at.desc()))
        return [dict(r._mapping) for r in rows]


# --- insights ----------------------------------------------------------------------------


def insights(engine: Engine, days: int | None) -> dict[str, Any]:
    indexer.sync(engine)
    m = db.messages.c
    today = datetime.now(NOUMEA).date()
    with engine.connect() as conn:
        if days:
            first_day = today - timedelta(days=days - 1)
        else:
            oldest = conn.execute(sa.select(sa.func.min(m.day))).scalar()
            first_day = date.fromisoformat(oldest) if oldest else today
            first_day = max(first_day, today - timedelta(days=365))  # a chart of a year at most
        since = noumea_midnight(first_day)
        day_list = [(first_day + timedelta(days=i)).isoformat() for i in range((today - first_day).days + 1)]
        judged = feedback.stats(conn, since, day_list)
        per_day = conn.execute(
            sa.select(m.day, m.channel, sa.func.count()).where(m.ts >= since).group_by(m.day, m.channel)
        ).all()
        top = conn.execute(
            sa.select(m.intent, sa.func.count().label("n"))
            .where(m.ts >= since)
            .group_by(m.intent)
            .order_by(sa.desc("n"), m.intent)
            .limit(12)
        ).all()
        n_messages = sum(n for _, _, n in per_day)
        n_fallback_msgs = conn.execute(
            sa.select(sa.func.count())
            .where(m.ts >= since, m.intent == FALLBACK_INTENT)
            .select_from(db.messages)
        ).scalar()
        conv = conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.sum(sa.case((c.has_fallback == sa.true(), 1), else_=0)),
                sa.func.sum(sa.case((c.has_handoff == sa.true(), 1), else_=0)),
                sa.func.sum(sa.case((c.has_out_of_scope == sa.true(), 1), else_=0)),
            ).where(c.start_ts >= since, c.n_user > 0)
        ).one()
    channels = sorted({ch for _, ch, _ in per_day})
    series: dict[str, dict[str, int]] = {}
    for day, channel, n in per_day:
        series.setdefault(day, {})[channel] = n
    n_conv = conv[0] or 0

    def rate(part: int | None, whole: int) -> float | None:
        return (part or 0) / whole if whole else None

    return {
        "first_day": first_day,
        "today": today,
        "days": day_list,
        "channels": channels,
        "per_day": [(d, series.get(d, {})) for d in day_list],
        "per_channel": {ch: sum(v.get(ch, 0) for v in series.values()) for ch in channels},
        "top_intents": [(name or "(aucune)", n) for name, n in top],
        "n_messages": n_messages,
        "n_conversations": n_conv,
        "fallback_message_rate": rate(n_fallback_msgs, n_messages),
        "fallback_rate": rate(conv[1], n_conv),
        "handoff_rate": rate(conv[2], n_conv),
        "out_of_scope_rate": rate(conv[3], n_conv),
        "feedback": judged,
    }


# --- retention purge and erasure ----------------------------------------------------------
#
# Retention is by the age of each event: a customer who writes every month keeps only the
# last N days of the conversation, not everything since the first message. Conversations
# left without events go entirely, with all the console keeps on them; the others lose the
# relabels of deleted messages and the notes older than the cutoff, and their summaries
# are rebuilt from the events left.


def _senders_with_old_events(conn: Connection, cutoff: float) -> list[tuple[str, int, bool]]:
    """(sender, events older than cutoff, whether all its events are) per conversation."""
    e = db.events.c
    old = (
        sa.select(e.sender_id, sa.func.count().label("n"))
        .where(e.timestamp < cutoff)
        .group_by(e.sender_id)
        .subquery()
    )
    total = (
        sa.select(e.sender_id, sa.func.count().label("n"))
        .where(e.sender_id.in_(sa.select(old.c.sender_id)))
        .group_by(e.sender_id)
        .subquery()
    )
    rows = conn.execute(
        sa.select(old.c.sender_id, old.c.n, total.c.n).join(total, total.c.sender_id == old.c.sender_id)
    )
    return [(r[0], r[1], r[1] == r[2]) for r in rows]


def _check_cutoff(cutoff: float) -> None:
    # NaN compares false in Python but `timestamp < 'NaN'` is true on PostgreSQL
    if not math.isfinite(cutoff):
        raise ValueError(f"cutoff must be a finite timestamp, not {cutoff!r}")


def purge_preview(engine: Engine, cutoff: float) -> dict[str, int]:
    """How many events are older than `cutoff`, in how many conversations, and how many
    conversations have nothing newer (they go entirely)."""
    _check_cutoff(cutoff)
    with engine.connect() as conn:
        if not db.has_events_table(conn):
            return {"conversations": 0, "events": 0, "whole": 0}
        found = _senders_with_old_events(conn, cutoff)
    return {
        "conversations": len(found),
        "events": sum(n for _, n, _ in found),
        "whole": sum(1 for *_, whole in found if whole),
    }


def _delete_senders(conn: Connection, senders: list[str]) -> None:
    """Everything the console keeps on these conversations (not Rasa's events)."""
    for table in (*db.DERIVED_BY_SENDER, *db.STAFF_WORK_BY_SENDER):
        conn.execute(table.delete().where(table.c.sender_id.in_(senders)))


def purge(engine: Engine, cutoff: float) -> dict[str, int]:
    """Deletes every event older than `cutoff` and what depends on it (see above), 500
    conversations per transaction: the tracker store is never locked for long."""
    _check_cutoff(cutoff)
    done = {"conversations": 0, "events": 0, "whole": 0}
    e = db.events.c
    # no fold of a conversation while it changes
    with indexer._lock:
        with engine.connect() as conn:
            if not db.has_events_table(conn):
                return done
            senders = [s for s, _, _ in _senders_with_old_events(conn, cutoff)]
        for i in range(0, len(senders), 500):
            chunk = senders[i : i + 500]
            with engine.begin() as conn:
                done["events"] += conn.execute(
                    db.events.delete().where(e.sender_id.in_(chunk), e.timestamp < cutoff)
                ).rowcount
                done["conversations"] += len(chunk)
                left = set(
                    conn.execute(sa.select(e.sender_id).distinct().where(e.sender_id.in_(chunk))).scalars()
                )
                gone = [s for s in chunk if s not in left]
                kept = [s for s in chunk if s in left]
                done["whole"] += len(gone)
                if gone:
                    _delete_senders(conn, gone)
                if kept:
                    conn.execute(
                        db.labels.delete().where(
                            db.labels.c.sender_id.in_(kept),
                            db.labels.c.event_id.not_in(sa.select(e.id).where(e.sender_id.in_(kept))),
                        )
                    )
                    conn.execute(
                        db.notes.delete().where(
                            db.notes.c.sender_id.in_(kept), db.notes.c.created_at < cutoff
                        )
                    )
                    # a callback request goes with its event; a handoff with its age
                    conn.execute(
                        db.callbacks.delete().where(
                            db.callbacks.c.sender_id.in_(kept),
                            db.callbacks.c.event_id.not_in(sa.select(e.id).where(e.sender_id.in_(kept))),
                        )
                    )
                    conn.execute(
                        db.handoffs.delete().where(
                            db.handoffs.c.sender_id.in_(kept), db.handoffs.c.taken_at < cutoff
                        )
                    )
                    indexer.refold(conn, kept)
        with engine.begin() as conn:
            indexer.after_purge(conn)
    return done


def cutoff_for_days(days: int, now: float | None = None) -> float:
    return (now or time.time()) - days * 86400


def erase_sender(engine: Engine, sender_id: str) -> dict[str, int]:
    """Erases one customer (a data-protection request): Rasa's events of this sender id and
    everything the console keeps on it. Returns how many rows went, per kind."""
    counts: dict[str, int] = {}
    with indexer._lock, engine.begin() as conn:
        if db.has_events_table(conn):
            counts["events"] = conn.execute(
                db.events.delete().where(db.events.c.sender_id == sender_id)
            ).rowcount
        for table in (*db.DERIVED_BY_SENDER, *db.STAFF_WORK_BY_SENDER):
            counts[table.name.removeprefix("console_")] = conn.execute(
                table.delete().where(table.c.sender_id == sender_id)
            ).rowcount
        if db.has_events_table(conn):
            indexer.after_purge(conn)
    return counts


def sender_summary(engine: Engine, sender_id: str) -> list[dict[str, Any]]:
    """The same row as senders_mentioning, for one conversation."""
    e = db.events.c
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(sa.func.count(), sa.func.min(e.timestamp), sa.func.max(e.timestamp)).where(
                e.sender_id == sender_id, e.type_name == "user"
            )
        ).one()
    return [{"sender_id": sender_id, "messages": row[0], "first_ts": row[1], "last_ts": row[2]}]


def senders_mentioning(engine: Engine, text: str, limit: int = 50) -> list[dict[str, Any]]:
    """Conversations whose customer messages contain `text` as written (the raw events, not
    the masked index: a customer asking for erasure gives their number or email)."""
    text = text_param(text, 200)
    if len(text) < 4:
        raise ValueError("search text too short (4 characters at least)")
    e = db.events.c
    with engine.connect() as conn:
        if not db.has_events_table(conn):
            return []
        rows = conn.execute(
            sa.select(e.sender_id, sa.func.count(), sa.func.min(e.timestamp), sa.func.max(e.timestamp))
            .where(
                e.type_name == "user",
                # as written, or as Rasa's json.dumps escapes it (accents, no-break spaces)
                sa.or_(*(e.data.like(_like(t), escape="\\") for t in {text, json.dumps(text)[1:-1]})),
            )
            .group_by(e.sender_id)
            .order_by(sa.func.max(e.timestamp).desc())
            .limit(limit)
        )
        return [{"sender_id": r[0], "messages": r[1], "first_ts": r[2], "last_ts": r[3]} for r in rows]


# Messenger's retry dedupe (channels/messenger.py, SeenMessages) keeps the ids of accepted
# events for a week in this SQLite table; a postback without a mid is keyed by its sender.
MESSENGER_DEDUPE_TABLE = "seen_mid"


def erase_messenger_dedupe(path: str, sender_id: str) -> int:
    """Deletes the Messenger dedupe keys that carry this sender's page-scoped id."""
    psid = sender_id.removeprefix("fb:")
    if not psid or not os.path.isfile(path):
        return 0
    with contextlib.closing(sqlite3.connect(path, timeout=10)) as conn, conn:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (MESSENGER_DEDUPE_TABLE,)
        ).fetchone()
        if not exists:
            return 0
        return conn.execute(
            f"DELETE FROM {MESSENGER_DEDUPE_TABLE} WHERE mid LIKE ? ESCAPE '\\'",
            ("postback:" + _like(psid)[1:-1] + ":%",),
        ).rowcount
