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

When another instance answered meanwhile (the production topology spreads a customer's
messages over its Rasa instances), the kept tracker catches up instead: the rows added since
are read and applied to it, provided the database still holds the rows it was built from
(their count below the highest id kept) and the new rows start no session. Rasa's rebuild
re-read the whole session: in a 10-minute run of 200 customers on two instances, the p95 grew
from 117 ms in the first minute to 501 ms in the last (issue 15).

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

# (count, highest id, latest timestamp) of a conversation's rows. The timestamp tells rows
# apart when SQLite reuses the ids of deleted rows (an erased conversation written again).
Rows = tuple[int, int | None, float | None]

MAX_EVENTS = 60_000  # about 100 MB of events: a few thousand ordinary conversations


@dataclass
class _Kept:
    tracker: Any  # DialogueStateTracker
    length: int  # len(tracker.events) when kept: more means a turn changed it without saving
    rows: Rows  # the conversation's rows then


class TrackerCache:
    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        self.max_events = max_events
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        self._events = 0
        # sender -> events already in the database, for the save under way (see install's save)
        self.stored: dict[str, int] = {}
        self.hits = 0
        self.misses = 0
        self.caught_up = 0

    def get(self, sender_id: str, rows: Rows) -> Any:
        kept = self._kept.get(sender_id)
        if kept is None or kept.rows != rows or len(kept.tracker.events) != kept.length:
            self.misses += 1
            self.drop(sender_id)
            return None
        self.hits += 1
        self._kept.move_to_end(sender_id)
        return kept.tracker

    def behind(self, sender_id: str, rows: Rows) -> _Kept | None:
        """The kept conversation, unchanged since kept, if the database now holds more rows."""
        kept = self._kept.get(sender_id)
        if (
            kept is None
            or len(kept.tracker.events) != kept.length
            or kept.rows[1] is None
            or rows[1] is None
            or rows[0] <= kept.rows[0]
            or rows[1] <= kept.rows[1]
        ):
            return None
        return kept

    def keep(self, tracker: Any, rows: Rows) -> None:
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


def _rows(store: Any, sender_id: str) -> Rows:
    """(count, highest id, latest timestamp) of the conversation's rows: one indexed query (0.2 ms)."""
    statement = getattr(store, "_chat_cagou_rows", None)
    if statement is None:
        import sqlalchemy as sa

        event = store.SQLEvent
        statement = store._chat_cagou_rows = sa.select(
            sa.func.count(event.id), sa.func.max(event.id), sa.func.max(event.timestamp)
        ).where(event.sender_id == sa.bindparam("sender_id"))
    with store.engine.connect() as connection:
        count, highest, latest = connection.execute(statement, {"sender_id": sender_id}).one()
    return int(count), highest, latest


def _rows_after(
    store: Any, sender_id: str, highest: int
) -> tuple[tuple[int, float | None], list[tuple[int, str]]]:
    """((count, latest timestamp) of the rows up to `highest`, [(id, data)] of the rows after
    it, in order)."""
    import sqlalchemy as sa

    event = store.SQLEvent
    with store.engine.connect() as connection:
        count, latest = connection.execute(
            sa.select(sa.func.count(event.id), sa.func.max(event.timestamp)).where(
                event.sender_id == sender_id, event.id <= highest
            )
        ).one()
        after = connection.execute(
            sa.select(event.id, event.data)
            .where(event.sender_id == sender_id, event.id > highest)
            .order_by(event.id)
        ).all()
    return (int(count), latest), [(row_id, data) for row_id, data in after]


def catch_up(store: Any, kept: _Kept, rows: Rows) -> Any:
    """The kept tracker with the rows another instance added since, or None when Rasa's
    rebuild could differ (a row removed or changed, a new session among the new rows)."""
    import json

    from rasa.shared.core.events import SessionStarted, deserialise_events

    assert kept.rows[1] is not None
    before, after = _rows_after(store, kept.tracker.sender_id, kept.rows[1])
    if (
        before != (kept.rows[0], kept.rows[2])
        or before[0] + len(after) != rows[0]
        or not after
        or after[-1][0] != rows[1]
    ):
        return None
    events = deserialise_events([json.loads(data) for _, data in after])
    # Rasa's query keeps the events from the latest session start on, by timestamp
    start = kept.tracker.events[0].timestamp if isinstance(kept.tracker.events[0], SessionStarted) else None
    if len(events) != len(after) or any(
        isinstance(event, SessionStarted) or (start is not None and event.timestamp < start)
        for event in events
    ):
        return None
    for event in events:
        kept.tracker.update(event)
    return kept.tracker


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
        behind = cache.behind(sender_id, rows)
        if behind is not None:
            tracker = catch_up(self, behind, rows)
            if tracker is not None:
                cache.caught_up += 1
                cache.keep(tracker, rows)
                return tracker
        tracker = cache.get(sender_id, rows)  # a kept tracker that could not catch up is dropped
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
