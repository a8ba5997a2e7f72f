"""Bounded conversation sessions (channels/sessions.py).

A customer who keeps writing gets a new session after `CHAT_CAGOU_SESSION_MAX_EVENTS` events
(or `CHAT_CAGOU_SESSION_MAX_HOURS` hours), so that the tracker Rasa loads and posts to the
action server stays bounded. Played here with Rasa's own `MessageProcessor` session code and
its SQL tracker store (SQLite in a temporary directory); no model is needed: each turn adds
the events a real turn adds (the message, `action_repondre` and its slots, the answer).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from rasa.core.actions.action import RemoteAction
from rasa.core.channels.channel import CollectingOutputChannel
from rasa.core.processor import MessageProcessor
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered
from rasa.utils.endpoints import EndpointConfig

from channels import sessions
from channels.sessions import SessionBounds, current_session
from tests.conftest import answer_events, bare_processor

ROOT = Path(__file__).resolve().parent.parent
EVENTS_PER_TURN = 6  # user, action_repondre, its two slots, the answer, action_listen


async def turn(proc: MessageProcessor, sender: str, n: int) -> dict:
    """One customer message as Rasa handles it; returns what Rasa posts to the action server."""
    tracker = await proc.fetch_tracker_and_update_session(sender, CollectingOutputChannel())
    tracker.update(UserUttered(f"question {n}", {"name": "code_puk", "confidence": 0.99}))
    posted = RemoteAction("action_repondre", EndpointConfig("http://actions"))._action_call_format(
        tracker, proc.domain
    )
    tracker.update_with_events(answer_events(n), proc.domain)
    await proc.tracker_store.save(tracker)
    return posted


def play(
    domain: Domain, tmp_path: Path, turns: int, sender: str = "client"
) -> tuple[list[dict], SQLTrackerStore]:
    store = SQLTrackerStore(domain, dialect="sqlite", db=str(tmp_path / "tracker.db"))
    proc = bare_processor(domain, store)

    async def conversation() -> list[dict]:
        return [await turn(proc, sender, n) for n in range(turns)]

    return asyncio.run(conversation()), store


def test_bounds_from_the_environment(monkeypatch):
    monkeypatch.delenv(sessions.ENV_MAX_EVENTS, raising=False)
    monkeypatch.delenv(sessions.ENV_MAX_HOURS, raising=False)
    assert SessionBounds.from_env() == SessionBounds(400, 24.0)
    monkeypatch.setenv(sessions.ENV_MAX_EVENTS, "50")
    monkeypatch.setenv(sessions.ENV_MAX_HOURS, "0.5")
    assert SessionBounds.from_env() == SessionBounds(50, 0.5)
    for bad in ("-1", "beaucoup"):
        monkeypatch.setenv(sessions.ENV_MAX_EVENTS, bad)
        with pytest.raises(ValueError, match=sessions.ENV_MAX_EVENTS):
            SessionBounds.from_env()


def test_current_session_counts_the_events_after_the_last_session_start():
    old = [UserUttered("a", timestamp=100), BotUttered("b", timestamp=101)]
    new = [ActionExecuted("action_listen", timestamp=201), UserUttered("c", timestamp=202)]
    assert current_session([*old, SessionStarted(timestamp=200), *new]) == (2, 200)
    assert current_session(old) == (2, 100)
    assert current_session([]) == (0, None)
    bounds = SessionBounds(max_events=2, max_hours=1)
    assert bounds.exceeded_by([SessionStarted(timestamp=200), *new], now=300) is None
    assert "events" in (bounds.exceeded_by([SessionStarted(timestamp=200), *new, *new], now=300) or "")
    assert "h ago" in (bounds.exceeded_by([SessionStarted(timestamp=200), *new], now=200 + 3601) or "")
    assert SessionBounds(0, 0).exceeded_by([*old * 1000], now=10**9) is None


def test_a_long_conversation_gets_new_sessions_and_a_bounded_tracker(domain, tmp_path, bounded):
    bounded(SessionBounds(max_events=30, max_hours=24))
    posted, store = play(domain, tmp_path, turns=40)
    sizes = [len(p["tracker"]["events"]) for p in posted]
    # Rasa posts the tracker it loaded: the latest session only (plus, in the turn that
    # starts a session, the one that just ended).
    assert max(sizes) <= 2 * 30 + 2 * EVENTS_PER_TURN
    assert sizes[-1] <= 30 + 2 * EVENTS_PER_TURN
    full = asyncio.run(store.retrieve_full_tracker("client"))
    assert full is not None
    starts = [e for e in full.events if isinstance(e, SessionStarted)]
    assert len(starts) >= 40 * EVENTS_PER_TURN // 30 - 1
    # Slots are carried over (domain.yml): the context of a follow-up survives the new session.
    latest = asyncio.run(store.retrieve("client"))
    assert latest is not None
    assert isinstance(latest.events[0], SessionStarted)  # what Rasa loads: the latest session
    assert latest.get_slot("procedure") == "code_puk"
    assert latest.get_slot("sujet") == "sujet 39"
    # One event per slot carried over, not every slot event of the session that ended.
    carried = [e for e in latest.events if isinstance(e, SlotSet)]
    assert len(carried) <= 2 * (30 // EVENTS_PER_TURN + 2)
    assert len(json.dumps(posted[-1])) < 64_000  # far below nginx's 16m for the action server


def test_without_bounds_the_session_grows_with_the_conversation(domain, tmp_path, bounded):
    """What Rasa does alone (messages less than session_expiration_time apart)."""
    bounded(SessionBounds(max_events=0, max_hours=0))
    posted, _ = play(domain, tmp_path, turns=40)
    assert len(posted[-1]["tracker"]["events"]) > 39 * EVENTS_PER_TURN


@pytest.mark.parametrize("max_hours, sessions_expected", [(1, 3), (0, 1)])
def test_a_session_older_than_the_hours_bound_ends(
    domain, tmp_path, bounded, monkeypatch, max_hours, sessions_expected
):
    """A message every 40 minutes (less than session_expiration_time) for 3 h 20."""
    bounded(SessionBounds(max_events=0, max_hours=max_hours))
    clock = {"offset": 0.0}
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + clock["offset"])
    store = SQLTrackerStore(domain, dialect="sqlite", db=str(tmp_path / "tracker.db"))
    proc = bare_processor(domain, store)

    async def conversation() -> None:
        for n in range(6):
            clock["offset"] = n * 2400.0
            await turn(proc, "client", n)

    asyncio.run(conversation())
    full = asyncio.run(store.retrieve_full_tracker("client"))
    assert full is not None
    assert sum(isinstance(e, SessionStarted) for e in full.events) == sessions_expected


@pytest.mark.servers
@pytest.mark.model
def test_rasa_starts_a_new_session_when_a_conversation_gets_long(tmp_path):
    """The real `rasa run` (channels of credentials.yml, SQLite tracker store) with a bound of
    20 events: a customer asking 8 questions in a row gets new sessions, each of at most about
    20 events, and the answers keep coming."""
    import sqlite3
    import uuid

    import requests

    from harness.servers import running_servers

    sender = "long-" + uuid.uuid4().hex[:8]
    questions = ["code PUK ?", "et par mail ?", "vous êtes ouverts quand ?", "je veux résilier"] * 2
    with running_servers(tmp_path, extra_env={sessions.ENV_MAX_EVENTS: "20"}) as servers:
        for question in questions:
            reply = requests.post(
                servers.rasa_url + "/webhooks/rest/webhook",
                json={"sender": sender, "message": question},
                timeout=60,
            )
            assert reply.status_code == 200 and reply.json(), question
        with sqlite3.connect(servers.tracker_db) as db:
            types = [
                row[0]
                for row in db.execute(
                    "SELECT type_name FROM events WHERE sender_id LIKE ? ORDER BY id", ("%" + sender,)
                )
            ]
    assert types.count("user") == len(questions)
    assert types.count("session_started") >= 3
    lengths, current = [], 0
    for kind in types:
        if kind == "session_started":
            lengths.append(current)
            current = 0
        current += 1
    lengths.append(current)
    assert max(lengths) <= 20 + 15, lengths  # the bound, plus the turn that crossed it
