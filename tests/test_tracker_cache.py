"""components/tracker_cache.py: the conversation kept in memory between turns gives, at every
turn, the tracker Rasa's SQL store would rebuild from the database, and the database holds
every event once.

Played with Rasa's own `MessageProcessor` session code and its SQL tracker store (SQLite in a
temporary directory), as tests/test_sessions.py does: each turn adds the events a real turn
adds. "Rasa's rebuild" is the store's own `_retrieve`, which the cache does not change.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel
from rasa.core.processor import MessageProcessor
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import ActionExecuted, SessionStarted, UserUttered

import components  # noqa: F401  (installs the cache, as loading the model does)
from channels.sessions import SessionBounds
from components.tracker_cache import TrackerCache
from tests.conftest import answer_events, bare_processor

ROOT = Path(__file__).resolve().parent.parent


def store_at(domain: Any, db: Path) -> SQLTrackerStore:
    return SQLTrackerStore(domain, dialect="sqlite", db=str(db))


async def turn(proc: MessageProcessor, sender: str, n: int) -> None:
    tracker = await proc.fetch_tracker_and_update_session(sender, CollectingOutputChannel())
    tracker.update(UserUttered(f"question {n}", {"name": "code_puk", "confidence": 0.99}))
    tracker.update_with_events(answer_events(n), proc.domain)
    await proc.tracker_store.save(tracker)


async def rebuilt(store: SQLTrackerStore, sender: str):
    """What Rasa's SQL store rebuilds from the database (its own code, no cache)."""
    return await store._retrieve(sender, fetch_events_from_all_sessions=False)


def events_of(tracker) -> list[dict]:
    return [e.as_dict() for e in tracker.events] if tracker is not None else []


def rows(db: Path, sender: str) -> list[str]:
    with sqlite3.connect(db) as connection:
        return [
            r[0]
            for r in connection.execute(
                "SELECT type_name FROM events WHERE sender_id = ? ORDER BY id", (sender,)
            )
        ]


def test_the_cache_is_installed_on_rasas_sql_store():
    for method in (SQLTrackerStore.retrieve, SQLTrackerStore.save, SQLTrackerStore._additional_events):
        assert method.__module__ == "components.tracker_cache"


def test_every_turn_gets_the_tracker_rasa_would_rebuild(domain, tmp_path, bounded):
    """40 turns with a session bound of 30 events (a new session every 5 turns): the tracker
    each turn starts from is the database's, event for event, slot for slot; the database
    holds every event once; most turns were served from memory."""
    bounded(SessionBounds(max_events=30, max_hours=24))
    store = store_at(domain, tmp_path / "tracker.db")
    proc = bare_processor(domain, store)

    async def conversation() -> None:
        for n in range(40):
            await turn(proc, "client", n)
            served = await store.retrieve("client")
            expected = await rebuilt(store, "client")
            assert events_of(served) == events_of(expected), n
            assert served.current_slot_values() == expected.current_slot_values()

    asyncio.run(conversation())
    cache = store._chat_cagou_cache
    assert cache.hits >= 30 and cache.misses >= 5  # each new session is read back once
    full = asyncio.run(store.retrieve_full_tracker("client"))
    assert full is not None and rows(tmp_path / "tracker.db", "client") == [e.type_name for e in full.events]
    assert sum(isinstance(e, UserUttered) for e in full.events) == 40  # no event saved twice
    assert sum(isinstance(e, SessionStarted) for e in full.events) >= 5


def test_a_turn_answered_by_another_instance_is_seen(domain, tmp_path, bounded):
    """Two Rasa instances on one database (the production topology) take turns on one
    conversation: each turn starts from the other instance's last turn, as Rasa would rebuild
    it, event for event and slot for slot; the kept tracker catches up with the rows the other
    instance added, except when they start a new session (bound: a new session every 5 turns)."""
    bounded(SessionBounds(max_events=30, max_hours=24))
    db = tmp_path / "tracker.db"
    first, second = bare_processor(domain, store_at(domain, db)), bare_processor(domain, store_at(domain, db))

    async def conversation() -> None:
        for n in range(24):
            proc = (first, second)[n % 2]
            await turn(proc, "client", n)
            other = (second, first)[n % 2]
            tracker = await other.tracker_store.retrieve("client")
            assert tracker.get_slot("sujet") == f"sujet {n}"
            expected = await rebuilt(other.tracker_store, "client")
            assert events_of(tracker) == events_of(expected), n
            assert tracker.current_slot_values() == expected.current_slot_values()

    asyncio.run(conversation())
    assert rows(db, "client").count("user") == 24
    caches = [proc.tracker_store._chat_cagou_cache for proc in (first, second)]
    # the other instance's rows applied, not the session re-read: each turn but those near a
    # session start (measured: 14 of 24, 11 reads of the database in 48 retrievals)
    assert sum(c.caught_up for c in caches) >= 12
    assert sum(c.misses for c in caches) >= 4  # a new session is read back from the database


def test_an_erased_conversation_is_not_served_from_memory(domain, tmp_path):
    """The console erases a conversation in the database (issue 10): the next message starts
    a new conversation, and no erased event comes back into the database."""
    db = tmp_path / "tracker.db"
    store = store_at(domain, db)
    proc = bare_processor(domain, store)
    asyncio.run(turn(proc, "client", 0))
    assert asyncio.run(store.retrieve("client")) is not None  # kept in memory
    with sqlite3.connect(db) as connection:
        connection.execute("DELETE FROM events WHERE sender_id = ?", ("client",))
    assert asyncio.run(store.retrieve("client")) is None
    asyncio.run(turn(proc, "client", 1))
    tracker = asyncio.run(store.retrieve("client"))
    texts = [e.text for e in tracker.events if isinstance(e, UserUttered)]
    assert texts == ["question 1"]
    assert rows(db, "client").count("user") == 1


def test_an_erased_conversation_then_answered_elsewhere_is_read_again(domain, tmp_path):
    """The console erases a conversation, then another instance answers the customer's next
    messages: the instance that kept the erased conversation must not add the new rows to it."""
    db = tmp_path / "tracker.db"
    first, second = bare_processor(domain, store_at(domain, db)), bare_processor(domain, store_at(domain, db))
    asyncio.run(turn(first, "client", 0))
    assert asyncio.run(first.tracker_store.retrieve("client")) is not None  # kept in memory
    with sqlite3.connect(db) as connection:
        connection.execute("DELETE FROM events WHERE sender_id = ?", ("client",))
    # two turns: SQLite gives the first turn's rows the ids of the erased ones
    asyncio.run(turn(second, "client", 1))
    asyncio.run(turn(second, "client", 2))
    tracker = asyncio.run(first.tracker_store.retrieve("client"))
    assert [e.text for e in tracker.events if isinstance(e, UserUttered)] == ["question 1", "question 2"]
    assert events_of(tracker) == events_of(asyncio.run(rebuilt(first.tracker_store, "client")))


def test_a_turn_that_failed_before_saving_leaves_no_trace(domain, tmp_path):
    """A turn changed the tracker then failed before saving it: the next turn starts from
    the database, without the failed turn's events."""
    store = store_at(domain, tmp_path / "tracker.db")
    proc = bare_processor(domain, store)
    asyncio.run(turn(proc, "client", 0))
    tracker = asyncio.run(store.retrieve("client"))
    tracker.update(UserUttered("jamais enregistré"))
    again = asyncio.run(store.retrieve("client"))
    assert "jamais enregistré" not in [e.text for e in again.events if isinstance(e, UserUttered)]
    assert events_of(again) == events_of(asyncio.run(rebuilt(store, "client")))


def test_the_cache_holds_a_bounded_number_of_events():
    class Tracker(SimpleNamespace):
        pass

    cache = TrackerCache(max_events=10)
    for n in range(4):
        cache.keep(Tracker(sender_id=f"c{n}", events=[ActionExecuted("action_listen")] * 4), (4, n, 1.0))
    assert len(cache) == 2  # 8 events: the two least recently used conversations dropped
    assert cache.get("c0", (4, 0, 1.0)) is None
    assert cache.get("c3", (4, 3, 1.0)) is not None
    assert cache.get("c3", (5, 9, 2.0)) is None  # the database changed: dropped
    assert len(cache) == 1
