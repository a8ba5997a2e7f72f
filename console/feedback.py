"""The customers' answer to "Cette réponse vous a-t-elle aidé ?" (issue 12, item 4).

The data contract with the assistant (actions/): the 👍 / 👎 button sends the payload
`/avis_utile` or `/avis_inutile` (a user event with that text and intent), and the action
that records it sets the slot `avis` to {"sujet": <the topic intent answered>, "note":
"utile" | "inutile"}. The slot event is what counts: it names the topic. The indexer folds
each one into console_feedback; the insights and the transcript read them here.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from actions.answers import TOPIC_TITLES
from console import db

SLOT = "avis"
USEFUL, USELESS = "utile", "inutile"
NOTES = (USEFUL, USELESS)
# the buttons' payloads, as Rasa stores the text of the user event (entities may follow)
CLICK = re.compile(r"/avis_(utile|inutile)(\{.*\})?", re.DOTALL)
NO_TOPIC = "(sans sujet)"


def parse(value: Any) -> tuple[str, str | None] | None:
    """(note, sujet) of an `avis` slot value; None for anything else (the slot cleared)."""
    if not isinstance(value, dict) or value.get("note") not in NOTES:
        return None
    sujet = value.get("sujet")
    return value["note"], sujet[:255] if isinstance(sujet, str) and sujet else None


def click_note(text: str) -> str | None:
    """The note of a 👍 / 👎 button's payload; None for a message the customer typed."""
    found = CLICK.fullmatch(text.strip())
    return found.group(1) if found else None


def topic_title(sujet: str | None) -> str:
    """'resiliation' -> 'résiliation' (the assistant's button title, lower case first)."""
    if not sujet:
        return NO_TOPIC
    title = TOPIC_TITLES.get(sujet)
    return title[0].lower() + title[1:] if title else sujet


def describe(note: str, sujet: str | None) -> str:
    """What the transcript shows: '👎 réponse jugée inutile (résiliation)'."""
    text = "👍 réponse jugée utile" if note == USEFUL else "👎 réponse jugée inutile"
    return f"{text} ({topic_title(sujet)})" if sujet else text


def _rate(useful: int, useless: int) -> float | None:
    return useful / (useful + useless) if useful + useless else None


DAY, SUJET, CHANNEL = 0, 1, 2  # the columns of stats()'s groups, then note and count


def _tally(groups: list[tuple[Any, ...]], column: int) -> list[dict[str, Any]]:
    """The counts per value of one column (DAY, SUJET or CHANNEL), most judged first."""
    found: dict[str, dict[str, Any]] = {}
    for g in groups:
        key = g[column]
        item = found.setdefault(key or "", {"key": key, USEFUL: 0, USELESS: 0})
        item[g[3]] += g[4]
    out = []
    for item in found.values():
        item["total"] = item[USEFUL] + item[USELESS]
        item["rate"] = _rate(item[USEFUL], item[USELESS])
        out.append(item)
    return sorted(out, key=lambda i: (-i["total"], i["key"] or ""))


def stats(conn: Connection, since: float, days: list[str]) -> dict[str, Any]:
    """Satisfaction (utile / (utile + inutile), from the feedback given since `since`) overall,
    per topic and per channel, and containment (conversations started since `since` with no
    handoff and no 👎), each per day of `days` too (None on a day without any)."""
    f, c = db.feedback.c, db.conversations.c
    # one pass over the period's feedback; its groups (a few hundred) are summed up here per
    # day, topic and channel
    groups = [
        tuple(g)  # SQLAlchemy's rows are slow to index in a loop
        for g in conn.execute(
            sa.select(f.day, f.sujet, f.channel, f.note, sa.func.count())
            .where(f.ts >= since, f.note.in_(NOTES))
            .group_by(f.day, f.sujet, f.channel, f.note)
        )
    ]
    contained = sa.and_(c.has_handoff == sa.false(), c.n_inutile == 0)
    conversations = conn.execute(
        sa.select(c.start_day, sa.func.count(), sa.func.sum(sa.case((contained, 1), else_=0)))
        .where(c.start_ts >= since, c.n_user > 0)
        .group_by(c.start_day)
    ).all()
    feedback_days = {d["key"]: d for d in _tally(groups, DAY)}
    useful = sum(d[USEFUL] for d in feedback_days.values())
    useless = sum(d[USELESS] for d in feedback_days.values())
    containment_days = {day: (int(kept or 0), n) for day, n, kept in conversations}
    n_conversations = sum(n for _, n in containment_days.values())
    n_contained = sum(kept for kept, _ in containment_days.values())
    per_day = []
    for day in days:
        judged_day = feedback_days.get(day)
        kept, n = containment_days.get(day, (0, 0))
        per_day.append(
            {
                "day": day,
                USEFUL: judged_day[USEFUL] if judged_day else 0,
                USELESS: judged_day[USELESS] if judged_day else 0,
                "satisfaction": judged_day["rate"] if judged_day else None,
                "conversations": n,
                "contained": kept,
                "containment": kept / n if n else None,
            }
        )
    topics, channels = _tally(groups, SUJET), _tally(groups, CHANNEL)
    for item in topics:
        item["title"] = topic_title(item["key"])
    for item in channels:
        item["title"] = item["key"]
    return {
        USEFUL: useful,
        USELESS: useless,
        "total": useful + useless,
        "satisfaction": _rate(useful, useless),
        "by_topic": topics,
        "by_channel": channels,
        "conversations": n_conversations,
        "contained": n_contained,
        "containment": n_contained / n_conversations if n_conversations else None,
        "per_day": per_day,
    }
