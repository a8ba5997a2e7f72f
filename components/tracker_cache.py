"""The conversation kept in memory between two turns, checked against the tracker store.

Rasa's SQL tracker store rebuilds the whole conversation at every message: it reads every
event of the session, parses its JSON and replays it (`DialogueStateTracker.from_dict`). A
customer's 150th message cost 8-11 ms of reading where the first cost 1 (`make profile`,
bench/turn_profile.md): with 50 customers writing every 4 s, the single process's p95 tripled
in 3 minutes (issue 15). Here the tracker a turn saved stays in memory; the next turn of that
conversation gets it back after one indexed query (count and highest id of the conversation's
rows) proves the database holds exactly what it held then. Anything else (another Rasa
instance answered meanwhile, the console erased or purged the conversation, a turn failed
after changing the tracker without saving it, a new session started) reads the database as
Rasa does. Each turn still writes its events to the database before answering: a restart
or another instance loses nothing.

Only trackers equal to what Rasa's `retrieve` would rebuild are kept: those whose events
hold no session start after the first event (the turn that starts a session is read back
from the database once). At most MAX_EVENTS events are kept in all, the least recently used
conversations dropped first.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

MAX_EVENTS = 60_000  # about 100 MB of events: a few thousand ordinary conversations


@dataclass
class _Kept:
    tracker: Any  # DialogueStateTracker
    length: int  # len(tracker.events) when kept: more means a turn changed it without saving
    rows: tuple[int, int | None]  # (count, highest id) of the conversation's rows then


class TrackerCache:
    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        self.max_events = max_events
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        self._events = 0
        # sender -> events already in the database, for the save under way (see install's save)
        self.stored: dict[str, int] = {}
        self.hits = 0
        self.misses = 0

    def get(self, sender_id: str, rows: tuple[int, int | None]) -> Any:
        kept = self._kept.get(sender_id)
        if kept is None or kept.rows != rows or len(kept.tracker.events) != kept.length:
            self.misses += 1
            self.drop(sender_id)
            return None
        self.hits += 1
        self._kept.move_to_end(sender_id)
        return kept.tracker

    def keep(self, tracker: Any, rows: tuple[int, int | None]) -> None:
        self.drop(tracker.sender_id)
        if not rebuilt_alike(tracker):
            return
        length = len(tracker.events)
        self._kept[tracker.sender_id] = _Kept(tracker, length, rows)
        self._events += length
        while self._events > self.max_events and self._kept:
            _, oldest = self._kept.popitem(last=False)
            self._events -= oldest.length

    def drop(self, sender_id: str) -> _Kept | None:
        kept = self._kept.pop(sender_id, None)
        if kept is not None:
            self._events -= kept.length
        return kept

    def __len__(self) -> int:
        return len(self._kept)


def rebuilt_alike(tracker: Any) -> bool:
    """What Rasa's SQL store would rebuild: no session start but, maybe, the first event."""
    from rasa.shared.core.events import SessionStarted

    return not any(isinstance(event, SessionStarted) for i, event in enumerate(tracker.events) if i)


def _rows(store: Any, sender_id: str) -> tuple[int, int | None]:
    """(count, highest id) of the conversation's rows: one indexed query (0.2 ms)."""
    statement = getattr(store, "_chat_cagou_rows", None)
    if statement is None:
        import sqlalchemy as sa

        event = store.SQLEvent
        statement = store._chat_cagou_rows = sa.select(sa.func.count(event.id), sa.func.max(event.id)).where(
            event.sender_id == sa.bindparam("sender_id")
        )
    with store.engine.connect() as connection:
        count, highest = connection.execute(statement, {"sender_id": sender_id}).one()
    return int(count), highest


def install() -> None:
    """Wrap SQLTrackerStore.retrieve and .save (the store `make run` and production use)."""
    from rasa.core.tracker_store import SQLTrackerStore

    rasa_retrieve = SQLTrackerStore.retrieve
    rasa_save = SQLTrackerStore.save
    rasa_additional_events = SQLTrackerStore._additional_events

    def cache_of(store: SQLTrackerStore) -> TrackerCache:
        if not hasattr(store, "_chat_cagou_cache"):
            store._chat_cagou_cache = TrackerCache()
        return store._chat_cagou_cache

    async def retrieve(self: SQLTrackerStore, sender_id: str) -> Any:
        cache = cache_of(self)
        # read before the events: a row added in between makes the next check fail, not pass
        rows = _rows(self, sender_id)
        tracker = cache.get(sender_id, rows)
        if tracker is not None:
            return tracker
        tracker = await rasa_retrieve(self, sender_id)
        if tracker is not None:
            cache.keep(tracker, rows)
        return tracker

    async def save(self: SQLTrackerStore, tracker: Any) -> None:
        cache = cache_of(self)
        kept = cache.drop(tracker.sender_id)  # if saving fails, the next turn reads the database
        if kept is not None and kept.tracker is tracker:
            # the turn began from the kept tracker, checked then: its first `length` events
            # are the session's rows, no need to count them again
            cache.stored[tracker.sender_id] = kept.length
        try:
            await rasa_save(self, tracker)
        finally:
            cache.stored.pop(tracker.sender_id, None)
        cache.keep(tracker, _rows(self, tracker.sender_id))

    def additional_events(self: SQLTrackerStore, session: Any, tracker: Any) -> Any:
        length = cache_of(self).stored.get(tracker.sender_id)
        if length is None:
            return rasa_additional_events(self, session, tracker)
        return itertools.islice(tracker.events, length, len(tracker.events))

    SQLTrackerStore.retrieve = retrieve
    SQLTrackerStore.save = save
    SQLTrackerStore._additional_events = additional_events
