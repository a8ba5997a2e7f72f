"""Bounded conversation sessions: a new session after N events or M hours, even for a
customer who keeps writing.

Rasa 3.6 starts a new session only after `session_expiration_time` minutes of inactivity
(domain.yml). A customer, or a script, writing every few minutes keeps one session open for
ever, and that session's tracker grows without limit: Rasa loads it from the tracker store
at each message (only the latest session is loaded), and posts all of it to the action
server at each turn (`tracker.current_state(EventVerbosity.ALL)`), through nginx's internal
listener (`client_max_body_size` in deploy/nginx/chat-cagou.conf.template).

The hook is Rasa's own session test. At each message, `MessageProcessor._update_tracker_session`
runs `action_session_start` when `_has_session_expired(tracker)` is true; `install()` makes
that test also true when the current session (the events after its last `session_started`)
holds more than `CHAT_CAGOU_SESSION_MAX_EVENTS` events (default 400) or started more than
`CHAT_CAGOU_SESSION_MAX_HOURS` hours ago (default 24). Rasa then starts the session as it does
after inactivity: `action_session_start`, `session_started`, the slots carried over
(`carry_over_slots_to_new_session: true` in domain.yml, so `sujet` and `procedure` keep the
context of a follow-up question), then the message. From the next message on, the tracker
loaded and sent to the action server is the new session only. 0 turns a bound off.

One change to what Rasa carries over: Rasa's `ActionSessionStart` copies every `slot` event
of the session that ended, not the slots' values, so each session starts with all the slot
events of the one before (which include those it carried itself): carried-over events pile
up from session to session, and with an event bound every message would end up starting a
new session. `install()` makes it carry one event per slot, with the slot's last value.

`channels/__init__.py` calls `install()` when the package is imported inside a Rasa process
(Rasa imports the channels of credentials.yml after its processor), so `make run`,
`make run-prod` and the tests' servers all get it.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

ENV_MAX_EVENTS = "CHAT_CAGOU_SESSION_MAX_EVENTS"
ENV_MAX_HOURS = "CHAT_CAGOU_SESSION_MAX_HOURS"
DEFAULT_MAX_EVENTS = 400
DEFAULT_MAX_HOURS = 24.0


@dataclass(frozen=True)
class SessionBounds:
    max_events: int = DEFAULT_MAX_EVENTS  # 0: no bound
    max_hours: float = DEFAULT_MAX_HOURS  # 0: no bound

    @classmethod
    def from_env(cls) -> SessionBounds:
        try:
            max_events = int(os.environ.get(ENV_MAX_EVENTS) or DEFAULT_MAX_EVENTS)
            max_hours = float(os.environ.get(ENV_MAX_HOURS) or DEFAULT_MAX_HOURS)
        except ValueError as error:
            raise ValueError(f"{ENV_MAX_EVENTS} must be an integer and {ENV_MAX_HOURS} a number") from error
        if max_events < 0 or not 0 <= max_hours < float("inf"):
            raise ValueError(f"{ENV_MAX_EVENTS} and {ENV_MAX_HOURS} must be 0 (no bound) or positive")
        return cls(max_events, max_hours)

    def exceeded_by(self, events: list[Any], now: float | None = None) -> str | None:
        """Why the current session of `events` (a tracker's events) must end, or None."""
        count, started = current_session(events)
        if self.max_events and count > self.max_events:
            return f"{count} events (more than {self.max_events})"
        if self.max_hours and started is not None:
            hours = ((now if now is not None else time.time()) - started) / 3600
            if hours > self.max_hours:
                return f"started {hours:.1f} h ago (more than {self.max_hours:g} h)"
        return None


def current_session(events: list[Any]) -> tuple[int, float | None]:
    """(number of events, start time) of the latest session: the events after the last
    `session_started`, or all of them when there is none."""
    from rasa.shared.core.events import SessionStarted

    count = 0
    for event in reversed(events):
        if isinstance(event, SessionStarted):
            return count, event.timestamp
        count += 1
    return count, (events[0].timestamp if events else None)


def carried_slots(tracker: Any) -> list[Any]:
    """One `slot` event per slot set in the session that ends, with its last value, in the
    order the slots were last set (what `ActionSessionStart` carries over)."""
    from rasa.shared.core.events import SlotSet

    last: dict[str, Any] = {}
    for event in tracker.applied_events():
        if isinstance(event, SlotSet):
            last.pop(event.key, None)
            last[event.key] = event
    return [SlotSet(key=e.key, value=e.value, metadata=e.metadata) for e in last.values()]


_ORIGINAL = "_chat_cagou_inactivity_test"


def install(bounds: SessionBounds | None = None) -> None:
    """Make Rasa's session test also end the sessions that exceed `bounds` (default: from the
    environment). Installing again replaces the bounds."""
    from rasa.core.actions.action import ActionSessionStart
    from rasa.core.processor import MessageProcessor

    installed = MessageProcessor._has_session_expired
    expired_by_inactivity = getattr(installed, _ORIGINAL, installed)
    bounds = bounds or SessionBounds.from_env()  # a wrong value stops the start-up, not a turn

    def _has_session_expired(self: MessageProcessor, tracker: Any) -> bool:
        if expired_by_inactivity(self, tracker):
            return True
        reason = bounds.exceeded_by(list(tracker.events))
        if reason:
            logger.info("New session for a conversation whose session has %s", reason)
        return reason is not None

    setattr(_has_session_expired, _ORIGINAL, expired_by_inactivity)
    MessageProcessor._has_session_expired = _has_session_expired
    ActionSessionStart._slot_set_events_from_tracker = staticmethod(carried_slots)
    logger.info(
        "Sessions bounded: a new session after %s events or %s hours",
        bounds.max_events or "unlimited",
        f"{bounds.max_hours:g}" if bounds.max_hours else "unlimited",
    )
