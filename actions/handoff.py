"""Live handoff: who answers a conversation, the assistant or a person.

The state is the slot `handoff` of the conversation's tracker, so it survives restarts and
is the same for every Rasa instance (they share the tracker store):
- None: the assistant answers (default);
- "waiting": the customer asked for a person on the website widget, the service was open and
  someone was present on the console's live desk (/direct); the conversation is in its queue;
- "human": a staff member took it from the desk (set by the console through Rasa's HTTP API);
- "inbox": a Messenger conversation passed to the page's inbox (Meta's handover protocol).
While it is not None, every action of the assistant stays silent: the customer's messages are
stored (the transcript stays complete) and only the person answers. The customer returns to
the assistant with the `/retour_assistant` button, the desk's "Rendre la main", or the
Messenger inbox giving the thread back. REST (integrations, monitoring) never hands over.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import requests

logger = logging.getLogger(__name__)

SLOT = "handoff"
WAITING, HUMAN, INBOX = "waiting", "human", "inbox"
# The actions' "I stay silent" message: the input guard (channels/guard.py) counts it as the
# turn's answer (a silent turn otherwise means a failure and gets the contacts) and never
# sends it to the customer.
HELD = {"handoff": "held"}
# Where a person can answer: the widget (console desk) and Messenger (page inbox).
DESK_CHANNEL, MESSENGER_CHANNEL = "socketio", "facebook"
# Messenger's custom message asking the channel to pass the thread to the page inbox.
PASS_TO_INBOX = {"handover": "page_inbox"}

# A handoff nobody acts on ends by itself, so that a customer who comes back later (slots
# carry over to a new session) is never left without an answer: waiting with no staff member
# taking it, or a person's conversation with no staff message, for this long.
MAX_WAIT_SECONDS = 20 * 60
MAX_IDLE_SECONDS = 60 * 60

ENV_CONSOLE_URL = "CHAT_CAGOU_CONSOLE_URL"
DESK_TIMEOUT = 1.5  # seconds: past that, nobody is considered present (today's contacts)


def state(tracker: Any) -> str | None:
    value = tracker.get_slot(SLOT)
    return value if value in (WAITING, HUMAN, INBOX) else None


def last_activity(tracker: Any) -> float | None:
    """When the handoff last moved: the slot set, or a staff message (metadata "agent")."""
    for event in reversed(tracker.events):
        if event.get("event") == "slot" and event.get("name") == SLOT:
            return event.get("timestamp")
        if event.get("event") == "bot" and (event.get("metadata") or {}).get("agent"):
            return event.get("timestamp")
    return None


def expired(tracker: Any, now: float) -> bool:
    """The handoff is stale (see MAX_WAIT_SECONDS): the assistant takes the conversation back."""
    current = state(tracker)
    since = last_activity(tracker)
    if current is None or since is None:
        return False
    limit = MAX_WAIT_SECONDS if current == WAITING else MAX_IDLE_SECONDS
    return now - since > limit


def desk_url() -> str | None:
    base = os.environ.get(ENV_CONSOLE_URL, "").strip().rstrip("/")
    return base + "/desk/available" if base else None


def _ask_desk(url: str) -> bool:
    try:
        reply = requests.get(url, timeout=DESK_TIMEOUT)
        return reply.status_code == 200 and reply.json().get("available") is True
    except (requests.RequestException, ValueError, AttributeError) as error:
        logger.warning(
            "handoff: the console's desk did not answer (%s): no live handoff", type(error).__name__
        )
        return False


async def desk_available() -> bool:
    """Someone is present on the console's live desk (CHAT_CAGOU_CONSOLE_URL unset: nobody)."""
    url = desk_url()
    if url is None:
        return False
    return await asyncio.to_thread(_ask_desk, url)
