"""Messenger (Facebook page) input channel: Rasa's `facebook` channel, hardened.

What Rasa 3.6's channel gets wrong, and what this one does instead:
- it reads only `X-Hub-Signature`, compares with `==` and answers a bad signature with
  HTTP 200: here `X-Hub-Signature-256` (sha256) is preferred, `X-Hub-Signature` (sha1) is
  accepted, each header with its own algorithm only, compared in constant time, and a
  missing, forged or wrong-algorithm signature gets HTTP 403 before anything is parsed;
- it answers the webhook only after the bot has replied (Messenger retries slow webhooks)
  and would answer a retry again: here the webhook is acknowledged at once, the work runs in
  the background, each message id (`mid`) is handled once, and marked seen only once Rasa
  has the message; one queue per sender, and the messages being handled are drained at
  shutdown (channels/dedupe.py);
- it handles only the first event of a batch: here every event is handled, in order;
- it sends text longer than 2,000 characters and drops buttons beyond 3: here replies are
  split at line boundaries, up to 3 buttons become a button template and more become quick
  replies (at most 10, titles of at most 20 characters);
- it calls the Graph API with blocking requests inside the event loop: here `GraphClient`
  posts with aiohttp, to `FB_GRAPH_API_URL` (tests point it to a local stub server), through
  one session per channel (closed at shutdown), and retries what Facebook asks to retry
  (429, 5xx, connection errors: 0.5 s, 1 s, 2 s, or its Retry-After);
- it shows the typing indicator for every message: here only for a message the input guard
  accepted (a refused one gets the guard's reply alone).

Handover protocol (Meta's, with the page's inbox as secondary receiver; docs/channels.md):
- the custom message `{"handover": "page_inbox"}` of an action is not sent to the customer: it
  passes the thread to the page inbox (`/me/pass_thread_control`, FB_PAGE_INBOX_APP_ID);
- while the inbox owns the thread, the customer's messages arrive as `standby` events: never
  answered, only recorded (text messages reach Rasa with metadata `{"standby": true}` and an
  output channel that drops everything);
- when the thread comes back (`pass_thread_control` to us), Rasa gets `/retour_assistant`
  (metadata `{"handover": "returned"}`) and the customer its answer;
- a standby message after FB_HANDOVER_IDLE_MINUTES without standby activity (customer
  message or page echo) makes the bot take the thread back (`/me/take_thread_control`) and
  answer it. Idleness is judged in this process, from what it saw (`Handover`).

Sender ids are namespaced per channel: a conversation's tracker sender id is "fb:" + the
page-scoped id (PSID), so that REST ("rest:...") or the widget ("web:...") cannot write into it;
`MessengerOutput` strips the prefix and sends to the raw PSID.

Secrets come from the environment (FB_VERIFY, FB_SECRET, FB_PAGE_ACCESS_TOKEN), never from
the repository: see docs/channels.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import hashlib
import hmac
import json
import logging
import math
import os
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, OutputChannel, UserMessage
from rasa.shared.exceptions import RasaException
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from actions import markdown
from channels.dedupe import DEFAULT_DB as DEFAULT_DEDUPE_DB
from channels.dedupe import ENV_DB as ENV_DEDUPE_DB
from channels.dedupe import (
    SeenStore,
    SenderQueues,
    handed_over,
    shutdown_timeout,
    store_from_env,
)
from channels.guard import guarded

logger = logging.getLogger(__name__)

# Environment variables (names documented in docs/channels.md).
ENV_VERIFY = "FB_VERIFY"
ENV_SECRET = "FB_SECRET"
ENV_TOKEN = "FB_PAGE_ACCESS_TOKEN"
ENV_GRAPH_URL = "FB_GRAPH_API_URL"
ENV_REQUIRED = "FB_MESSENGER_REQUIRED"
ENV_INBOX_APP_ID = "FB_PAGE_INBOX_APP_ID"
ENV_IDLE_MINUTES = "FB_HANDOVER_IDLE_MINUTES"

DEFAULT_GRAPH_URL = "https://graph.facebook.com/v21.0"
DEFAULT_INBOX_APP_ID = "263902037430900"  # Meta's documented app id of every page's inbox
DEFAULT_IDLE_MINUTES = 30.0
MAX_STANDBY_SENDERS = 10_000  # senders whose standby activity is remembered (least recent dropped)

# What an action sends to hand the conversation to the page inbox (actions/handoff.py).
HANDOVER_TO_INBOX = "page_inbox"
# The intent command that tells Rasa the bot holds the thread again (action_retour_assistant).
RETURN_COMMAND = "/retour_assistant"
# Thread-control metadata, read by the other app (machine tokens, not shown to customers).
META_HANDOVER = "chat_cagou:customer_asked_for_a_person"
META_IDLE = "chat_cagou:inbox_idle_take_back"
META_REQUEST = "chat_cagou:inbox_request_granted"

# Messenger Platform limits.
MAX_TEXT = 2000  # characters of a text message
MAX_TEMPLATE_TEXT = 640  # characters of a button template's text
MAX_TEMPLATE_BUTTONS = 3
MAX_QUICK_REPLIES = 10  # the platform allows 13; Rasa's client and the brief cap at 10
MAX_TITLE = 20  # button and quick reply titles
MAX_PAYLOAD = 1000

SENDER_PREFIX = "fb:"

# Graph API retries: the pause before each retry (so at most 3), and the longest Retry-After
# honoured (a sender's queue waits for its sends).
RETRY_DELAYS = (0.5, 1.0, 2.0)
MAX_RETRY_AFTER = 5.0

# Signature header -> the only algorithm accepted in it.
SIGNATURE_HEADERS = (("X-Hub-Signature-256", "sha256"), ("X-Hub-Signature", "sha1"))


class MessengerConfigError(RasaException):
    """Raised at start-up when the channel is configured but its secrets are missing.

    (Not an ImportError/AttributeError: Rasa would mask those as "unknown channel".)
    """


# --- signatures -------------------------------------------------------------------------


def signature_problem(secret: str, body: bytes, headers: Mapping[str, str]) -> str | None:
    """None if the body is signed with the app secret, else why not.

    When `X-Hub-Signature-256` is present it alone decides: a valid sha1 signature beside a
    forged sha256 one is still a forgery.
    """
    for header, algorithm in SIGNATURE_HEADERS:
        value = headers.get(header)
        if value is None:
            continue
        prefix, _, given = value.strip().partition("=")
        if prefix.lower() != algorithm:
            return f"{header}: algorithm {prefix!r}, expected {algorithm}"
        expected = hmac.new(secret.encode("utf-8"), body, algorithm).hexdigest()
        if not hmac.compare_digest(
            expected.encode("ascii"), given.strip().lower().encode("utf-8", "replace")
        ):
            return f"{header}: signature does not match"
        return None
    return "no X-Hub-Signature-256 or X-Hub-Signature header"


def token_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(
        expected.encode("utf-8"), given.encode("utf-8", "replace")
    )


# --- message ids seen (retries): channels/dedupe.py --------------------------------------


# --- incoming events --------------------------------------------------------------------


def event_key(event: dict[str, Any]) -> str | None:
    """The id Messenger keeps across retries of one event."""
    message = event.get("message") or {}
    postback = event.get("postback") or {}
    if message.get("mid"):
        return "mid:" + str(message["mid"])
    if postback.get("mid"):
        return "mid:" + str(postback["mid"])
    if postback:
        # Older postbacks carry no mid: sender, time and payload identify a retry.
        sender = (event.get("sender") or {}).get("id")
        return f"postback:{sender}:{event.get('timestamp')}:{postback.get('payload')}"
    return None


def event_text(event: dict[str, Any]) -> str | None:
    """What the user said, typed, tapped (quick reply, postback) or sent (attachment URL)."""
    message = event.get("message")
    if message is not None:
        if message.get("is_echo"):
            return None  # the page's own messages, including ours
        quick_reply = message.get("quick_reply") or {}
        if quick_reply.get("payload"):
            return str(quick_reply["payload"])
        if message.get("text"):
            return str(message["text"])
        attachments = message.get("attachments") or []
        if attachments:
            # As Rasa does: the attachment's URL reaches the NLU, which asks to rephrase.
            return str((attachments[0].get("payload") or {}).get("url") or attachments[0].get("type") or "")
        return None
    postback = event.get("postback")
    if postback is not None:
        return str(postback.get("payload") or postback.get("title") or "")
    return None  # delivery, read, reaction... events


# Kinds of `Event`.
MESSAGE = "message"  # the customer wrote to the bot: answered
STANDBY = "standby"  # the customer wrote while the inbox owns the thread: recorded (or taken back)
STANDBY_ACTIVITY = "standby_activity"  # a page echo or non-text message in standby: clock only
HANDED = "handed"  # the thread went to the inbox (our pass, or taken from us): clock starts
RETURNED = "returned"  # the thread came back to us: /retour_assistant
REQUESTED = "requested"  # another app asks for the thread

HANDOVER_FIELDS = ("pass_thread_control", "take_thread_control", "request_thread_control", "app_roles")


@dataclass(frozen=True)
class Event:
    """One webhook event this channel acts on. `sender` is the customer's PSID; `key` the
    dedupe key (None: not claimed, nothing to answer); `at` Meta's timestamp in ms."""

    kind: str
    sender: str
    text: str = ""
    key: str | None = None
    at: float = 0.0
    app_id: str = ""


def _timestamp(event: dict[str, Any]) -> float:
    """The event's time (ms) as Meta stamped it; arrival time when absent or malformed."""
    value = event.get("timestamp")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return time.time() * 1000


def _handover_event(event: dict[str, Any], inbox_app_id: str) -> Event | None:
    """A `messaging_handovers` event. Assumes the page's receivers are our app and the inbox
    (docs/channels.md): a pass to any other app id than the inbox's is a pass to us."""
    sender = str((event.get("sender") or {}).get("id") or "")
    if not sender:
        return None
    at = _timestamp(event)
    passed = event.get("pass_thread_control")
    if passed is not None:
        if str(passed.get("new_owner_app_id") or "") == inbox_app_id:
            return Event(HANDED, sender, at=at)  # our own pass, notified to every app
        return Event(RETURNED, sender, key=f"pass_thread_control:{sender}:{at:.0f}", at=at)
    taken = event.get("take_thread_control")
    if taken is not None:
        if str(taken.get("previous_owner_app_id") or "") == inbox_app_id:
            return None  # taken from the inbox: our idle take-back, answered with its message
        return Event(HANDED, sender, at=at)  # taken from us
    requested = event.get("request_thread_control")
    if requested is not None:
        app_id = str(requested.get("requested_owner_app_id") or "")
        return Event(REQUESTED, sender, key=f"request_thread_control:{sender}:{at:.0f}", at=at, app_id=app_id)
    return None  # app_roles: a page setting changed, nothing to do per conversation


def _standby_event(event: dict[str, Any]) -> Event | None:
    """A `standby` event: the customer or the page wrote while the inbox owns the thread."""
    message = event.get("message")
    if message is None:
        return None  # delivery, read... receipts are no activity
    at = _timestamp(event)
    if message.get("is_echo"):  # the page (a person in the inbox) wrote to the customer
        customer = str((event.get("recipient") or {}).get("id") or "")
        return Event(STANDBY_ACTIVITY, customer, at=at) if customer else None
    sender = str((event.get("sender") or {}).get("id") or "")
    if not sender:
        return None
    quick_reply = message.get("quick_reply") or {}
    text = str(quick_reply.get("payload") or message.get("text") or "")
    key = event_key(event)
    if text and key:
        return Event(STANDBY, sender, text, key, at)
    return Event(STANDBY_ACTIVITY, sender, at=at)  # a sticker, a photo...: not forwarded


def webhook_events(payload: dict[str, Any], inbox_app_id: str = DEFAULT_INBOX_APP_ID) -> list[Event]:
    """Every event of a webhook call the channel acts on, in order: per entry its `messaging`
    events (customer messages and handovers), then `messaging_handovers`, then `standby`."""
    found: list[Event] = []
    for entry in payload.get("entry") or []:
        for event in entry.get("messaging") or []:
            if any(name in event for name in HANDOVER_FIELDS):
                handover = _handover_event(event, inbox_app_id)
                if handover is not None:
                    found.append(handover)
                continue
            sender = str((event.get("sender") or {}).get("id") or "")
            text = event_text(event)
            key = event_key(event)
            if sender and text and key:
                found.append(Event(MESSAGE, sender, text, key, _timestamp(event)))
        for event in entry.get("messaging_handovers") or []:
            handover = _handover_event(event, inbox_app_id)
            if handover is not None:
                found.append(handover)
        for event in entry.get("standby") or []:
            standby = _standby_event(event)
            if standby is not None:
                found.append(standby)
    return found


def user_events(payload: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(dedupe key, sender id, text) of every message to the bot of a webhook call, in order."""
    return [(e.key or "", e.sender, e.text) for e in webhook_events(payload) if e.kind == MESSAGE]


# --- outgoing messages: Messenger's limits ----------------------------------------------


def text_length(text: str) -> int:
    """Length as Messenger counts it (UTF-16 code units: an emoji counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def _wrap(line: str, limit: int) -> list[str]:
    """A line cut at spaces into pieces of at most `limit` (a word too long is cut)."""
    pieces: list[str] = []
    rest = line
    while text_length(rest) > limit:
        cut = limit
        while text_length(rest[:cut]) > limit:
            cut -= 1
        space = rest.rfind(" ", 0, cut + 1)
        if space > 0:
            pieces.append(rest[:space].rstrip())
            rest = rest[space + 1 :].lstrip()
        else:
            pieces.append(rest[:cut])
            rest = rest[cut:]
    pieces.append(rest)
    return pieces


def _pack(lines: list[str], limit: int) -> list[str]:
    chunks: list[str] = []
    current: str | None = None
    for line in lines:
        candidate = line if current is None else current + "\n" + line
        if text_length(candidate) <= limit:
            current = candidate
        else:
            if current is not None:
                chunks.append(current)
            current = line
    if current is not None:
        chunks.append(current)
    return [c.strip() for c in chunks if c.strip()]


def split_text(text: str, limit: int = MAX_TEXT, last_limit: int | None = None) -> list[str]:
    """Messages of at most `limit` characters, cut between lines, the last of at most
    `last_limit` (a button template's text is limited to 640).

    Lines are kept whole when they fit: a "• " bullet is never cut from its answer.
    """
    last_limit = min(last_limit or limit, limit)
    lines: list[str] = []
    for line in text.strip().split("\n"):
        lines.extend(_wrap(line.rstrip(), limit))
    chunks = _pack(lines, limit)
    if not chunks or text_length(chunks[-1]) <= last_limit:
        return chunks
    # The last message is too long for its limit: it keeps as many whole lines from the
    # end as fit, the lines before it become a message of their own.
    lines = chunks.pop().split("\n")
    tail: list[str] = []
    while lines:
        candidate = "\n".join([lines[-1], *tail]).strip()
        if text_length(candidate) <= last_limit:
            tail.insert(0, lines.pop())
        elif not tail and not lines[-1].strip():
            lines.pop()  # a blank line at the end
        elif not tail:
            # The last line alone is too long for the tail: cut it.
            lines[-1:] = _wrap(lines[-1], last_limit)
        else:
            break
    return chunks + _pack(lines, limit) + ["\n".join(tail).strip()]


def short_title(title: str, limit: int = MAX_TITLE) -> str:
    title = " ".join(str(title).split())
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"


def template_button(button: dict[str, Any]) -> dict[str, Any]:
    if button.get("url"):
        return {"type": "web_url", "url": button["url"], "title": short_title(button.get("title", ""))}
    return {
        "type": "postback",
        "title": short_title(button.get("title", "")),
        "payload": str(button.get("payload", button.get("title", "")))[:MAX_PAYLOAD],
    }


def quick_reply(button: dict[str, Any]) -> dict[str, Any]:
    return {
        "content_type": "text",
        "title": short_title(button.get("title", "")),
        "payload": str(button.get("payload", button.get("title", "")))[:MAX_PAYLOAD],
    }


def messages_for(text: str, buttons: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The Send API `message` objects for one bot reply, within Messenger's limits.

    Up to 3 buttons: a button template (buttons stay on screen), its text being the last
    part of the reply. More: quick replies on the last message (at most 10; the rest is
    dropped with a warning: the user can still type).
    """
    text = markdown.plain(text)  # Messenger shows no Markdown: the same answer as plain lines
    buttons = [b for b in (buttons or []) if b.get("title")]
    if not buttons:
        return [{"text": part} for part in split_text(text)]
    if len(buttons) <= MAX_TEMPLATE_BUTTONS:
        parts = split_text(text, MAX_TEXT, MAX_TEMPLATE_TEXT) or ["Que souhaitez-vous faire ?"]
        template = {
            "attachment": {
                "type": "template",
                "payload": {
                    "template_type": "button",
                    "text": parts[-1],
                    "buttons": [template_button(b) for b in buttons],
                },
            }
        }
        return [{"text": part} for part in parts[:-1]] + [template]
    if len(buttons) > MAX_QUICK_REPLIES:
        logger.warning(
            "Messenger: %d buttons, only the first %d sent as quick replies", len(buttons), MAX_QUICK_REPLIES
        )
    parts = split_text(text) or ["Que souhaitez-vous faire ?"]
    # Quick replies carry postback payloads only: a URL button cannot be one.
    replies = [quick_reply(b) for b in buttons if not b.get("url")][:MAX_QUICK_REPLIES]
    messages: list[dict[str, Any]] = [{"text": part} for part in parts]
    messages[-1]["quick_replies"] = replies
    return messages


def psid_of(recipient_id: str) -> str:
    """The page-scoped id to send to: the tracker sender id without its "fb:" prefix."""
    return recipient_id.removeprefix(SENDER_PREFIX)


# --- the Graph API edge -----------------------------------------------------------------


@dataclass(frozen=True)
class GraphReply:
    """What the Graph API answered: `status` 0 when it could not be reached (`text` then names
    the error); `data` the JSON answer, if any."""

    status: int
    data: Any = None
    text: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error_message(self) -> str:
        """Facebook's `error.message`, else the start of the answer."""
        error = self.data.get("error") if isinstance(self.data, dict) else None
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        return self.text[:300]


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header in seconds (a number of seconds or an HTTP date), None if absent or
    unreadable."""
    if not value:
        return None
    with contextlib.suppress(ValueError):
        seconds = float(value)
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


class GraphClient:
    """Calls the Graph API (`{base_url}/me/...`): the Send API, thread control and the page's
    Messenger profile. The only code that talks to Facebook.

    One aiohttp session per client, opened on the first call inside the running loop (a
    session belongs to its loop) and closed by `close()` (the channel does it at shutdown).
    HTTP 429, 5xx and connection errors are retried after `retry_delays` (or the answer's
    Retry-After, at most `max_retry_after`); other 4xx are not: the same call would fail again.
    A timeout is not retried either: Facebook may have the call, and it already took `timeout`.

    `post` logs failures and swallows them: a reply that cannot be delivered must not stop the
    conversation. The URL carries the access token, so it is never logged.
    """

    def __init__(
        self,
        page_access_token: str,
        app_secret: str,
        base_url: str = DEFAULT_GRAPH_URL,
        timeout: float = 10,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        max_retry_after: float = MAX_RETRY_AFTER,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.params = {"access_token": page_access_token}
        if app_secret:
            # Proves the call comes from the app's server ("Require App Secret" setting).
            self.params["appsecret_proof"] = hmac.new(
                app_secret.encode(), page_access_token.encode(), hashlib.sha256
            ).hexdigest()
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.retry_delays = tuple(retry_delays)
        self.max_retry_after = max_retry_after
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None

    async def session(self) -> aiohttp.ClientSession:
        """The client's session, opened in the running loop on first use."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            # (A session of another loop, finished since, cannot be used or closed from here.)
            self._session = aiohttp.ClientSession(timeout=self.timeout)
            self._session_loop = loop
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed and self._session_loop is asyncio.get_running_loop():
            await session.close()

    async def _pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def _delay(self, retry: int, retry_after: str | None) -> float:
        wanted = retry_after_seconds(retry_after)
        return self.retry_delays[retry] if wanted is None else min(wanted, self.max_retry_after)

    async def request(
        self,
        method: str,
        edge: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> GraphReply:
        """`method` `{base_url}/me/{edge}` with the JSON `body`, retried as the class says."""
        url = f"{self.base_url}/me/{edge}"
        query = {**self.params, **(params or {})}
        retry = 0
        while True:
            retry_after = None
            try:
                session = await self.session()
                async with session.request(method, url, params=query, json=body) as reply:
                    text = await reply.text()
                    answer = GraphReply(reply.status, _json(text), text[:500])
                    retry_after = reply.headers.get("Retry-After")
            except TimeoutError:
                return GraphReply(0, None, "TimeoutError")
            except aiohttp.ClientConnectionError as error:
                answer = GraphReply(0, None, type(error).__name__)
            except aiohttp.ClientError as error:  # a malformed answer...: the same again
                return GraphReply(0, None, type(error).__name__)
            retryable = answer.status in (0, 429) or answer.status >= 500
            if not retryable or retry >= len(self.retry_delays):
                return answer
            delay = self._delay(retry, retry_after)
            retry += 1
            logger.warning(
                "Messenger Graph API %s /me/%s: %s, retry %d/%d in %.1f s",
                method,
                edge,
                answer.status or answer.text,
                retry,
                len(self.retry_delays),
                delay,
            )
            await self._pause(delay)

    async def post(self, edge: str, body: dict[str, Any]) -> bool:
        """POST `body` to `{base_url}/me/{edge}`; True if Facebook accepted it."""
        reply = await self.request("POST", edge, body)
        if reply.ok:
            return True
        if reply.status:
            logger.error("Messenger Graph API /me/%s answered %s: %s", edge, reply.status, reply.text)
        else:
            logger.error("Messenger Graph API /me/%s unreachable (%s)", edge, reply.text)
        return False

    async def send(self, body: dict[str, Any]) -> bool:
        """The Send API: a message or a sender action."""
        return await self.post("messages", body)

    async def pass_thread_control(self, psid: str, target_app_id: str, metadata: str) -> bool:
        body = {"recipient": {"id": psid}, "target_app_id": int(target_app_id), "metadata": metadata}
        return await self.post("pass_thread_control", body)

    async def take_thread_control(self, psid: str, metadata: str) -> bool:
        return await self.post("take_thread_control", {"recipient": {"id": psid}, "metadata": metadata})


class Handover:
    """The handover settings, and when each conversation in standby last moved.

    `last` maps a PSID to the time (ms) of its latest standby activity: our pass to the inbox,
    a customer message or a page echo in standby. It lives in this process, bounded to
    `max_senders` (least recently moved dropped): with several Rasa instances each judges
    idleness from the events it received. A sender it knows nothing of (dropped, restart,
    another instance's handover) starts its clock at its first standby event, so the bot never
    takes a thread back on a guess.
    """

    def __init__(
        self,
        inbox_app_id: str = DEFAULT_INBOX_APP_ID,
        idle_minutes: float = DEFAULT_IDLE_MINUTES,
        max_senders: int = MAX_STANDBY_SENDERS,
    ) -> None:
        self.inbox_app_id = inbox_app_id
        self.idle_ms = idle_minutes * 60_000
        self.max_senders = max_senders
        self.last: OrderedDict[str, float] = OrderedDict()

    def touch(self, psid: str, at: float | None = None) -> None:
        at = time.time() * 1000 if at is None else at
        # Meta may deliver out of order: the latest activity wins.
        self.last[psid] = max(at, self.last.pop(psid, at))
        while len(self.last) > self.max_senders:
            self.last.popitem(last=False)

    def forget(self, psid: str) -> None:
        self.last.pop(psid, None)

    def idle(self, psid: str, at: float) -> bool:
        """The standby thread of `psid` has not moved for longer than the idle time (0: never)."""
        since = self.last.get(psid)
        return self.idle_ms > 0 and since is not None and at - since > self.idle_ms

    async def pass_to_inbox(self, client: GraphClient, psid: str, metadata: str) -> bool:
        passed = await client.pass_thread_control(psid, self.inbox_app_id, metadata)
        if passed:
            self.touch(psid)
            logger.info("Messenger: thread passed to the page inbox")
        else:
            logger.error("Messenger: the thread could not be passed to the page inbox; the bot keeps it")
        return passed


class MessengerOutput(OutputChannel):
    """Replies through the Send API, shaped by `messages_for`; the custom message
    `{"handover": "page_inbox"}` passes the thread to the page inbox instead."""

    @classmethod
    def name(cls) -> str:
        return "facebook"

    def __init__(self, client: GraphClient, handover: Handover | None = None, typing: bool = False) -> None:
        super().__init__()
        self.client = client
        self.handover = handover or Handover()
        self.typing = typing  # show the typing indicator while Rasa answers (`with_typing`)

    async def _send_message(self, recipient_id: str, message: dict[str, Any]) -> None:
        await self.client.send(
            {"recipient": {"id": psid_of(recipient_id)}, "messaging_type": "RESPONSE", "message": message}
        )

    async def send_action(self, recipient_id: str, sender_action: str) -> None:
        await self.client.send({"recipient": {"id": psid_of(recipient_id)}, "sender_action": sender_action})

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        for message in messages_for(text):
            await self._send_message(recipient_id, message)

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        for message in messages_for(text, buttons):
            await self._send_message(recipient_id, message)

    async def send_quick_replies(
        self, recipient_id: str, text: str, quick_replies: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        parts = split_text(markdown.plain(text)) or ["Que souhaitez-vous faire ?"]
        messages: list[dict[str, Any]] = [{"text": part} for part in parts]
        messages[-1]["quick_replies"] = [quick_reply(q) for q in quick_replies][:MAX_QUICK_REPLIES]
        for message in messages:
            await self._send_message(recipient_id, message)

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        await self._send_message(recipient_id, {"attachment": {"type": "image", "payload": {"url": image}}})

    async def send_elements(
        self, recipient_id: str, elements: Iterable[dict[str, Any]], **kwargs: Any
    ) -> None:
        elements = list(elements)
        for element in elements:
            element["buttons"] = [template_button(b) for b in element.get("buttons", [])][
                :MAX_TEMPLATE_BUTTONS
            ]
        await self._send_message(
            recipient_id,
            {
                "attachment": {
                    "type": "template",
                    "payload": {"template_type": "generic", "elements": elements},
                }
            },
        )

    async def send_custom_json(self, recipient_id: str, json_message: dict[str, Any], **kwargs: Any) -> None:
        if isinstance(json_message, dict) and json_message.get("handover") == HANDOVER_TO_INBOX:
            # An instruction to the channel, not a message: the customer already got the
            # action's text, a person of the page answers from now on.
            await self.handover.pass_to_inbox(self.client, psid_of(recipient_id), META_HANDOVER)
            return
        await self._send_message(recipient_id, json_message)


def with_typing(
    on_new_message: Callable[[UserMessage], Awaitable[Any]],
) -> Callable[[UserMessage], Awaitable[Any]]:
    """Rasa's `on_new_message` with the typing indicator around the turn, for a message whose
    output asks for it. Wrapped inside the guard, it runs only for an accepted message: a
    refused one (too long, rate limited...) gets the guard's reply without typing."""

    async def handler(message: UserMessage) -> Any:
        output = message.output_channel
        if not (isinstance(output, MessengerOutput) and output.typing):
            return await on_new_message(message)
        await output.send_action(message.sender_id, "typing_on")
        try:
            return await on_new_message(message)
        finally:
            await output.send_action(message.sender_id, "typing_off")

    return handler


# --- the input channel ------------------------------------------------------------------


def _setting(credentials: dict[str, Any], key: str, env: str, default: str = "") -> str:
    """A value from credentials.yml (where `${VAR}` was substituted) or the environment."""
    value = credentials.get(key)
    return str(value) if value not in (None, "") else os.environ.get(env, default)


def handover_settings(credentials: dict[str, Any]) -> tuple[str, float]:
    """(page inbox app id, idle minutes), checked: a wrong value stops Rasa at start-up rather
    than failing the first handover."""
    app_id = _setting(credentials, "page_inbox_app_id", ENV_INBOX_APP_ID).strip() or DEFAULT_INBOX_APP_ID
    if not re.fullmatch(r"[0-9]{1,20}", app_id):
        raise MessengerConfigError(
            f"Messenger channel: {ENV_INBOX_APP_ID} must be a numeric Facebook app id, not {app_id!r} "
            f"(default {DEFAULT_INBOX_APP_ID}, the page inbox): see docs/channels.md."
        )
    raw = _setting(credentials, "handover_idle_minutes", ENV_IDLE_MINUTES).strip()
    try:
        minutes = float(raw) if raw else DEFAULT_IDLE_MINUTES
    except ValueError:
        minutes = math.nan
    if not math.isfinite(minutes) or minutes < 0:
        raise MessengerConfigError(
            f"Messenger channel: {ENV_IDLE_MINUTES} must be a number of minutes, 0 or more "
            f"(0 turns the idle take-back off), not {raw!r}: see docs/channels.md."
        )
    return app_id, minutes


class MessengerInput(InputChannel):
    """The Messenger webhook at /webhooks/facebook/webhook."""

    @classmethod
    def name(cls) -> str:
        return "facebook"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        credentials = credentials or {}
        inbox_app_id, idle_minutes = handover_settings(credentials)
        values = {
            ENV_VERIFY: _setting(credentials, "verify", ENV_VERIFY),
            ENV_SECRET: _setting(credentials, "secret", ENV_SECRET),
            ENV_TOKEN: _setting(credentials, "page-access-token", ENV_TOKEN),
        }
        missing = [name for name, value in values.items() if not value]
        required = os.environ.get(ENV_REQUIRED, "").lower() in ("1", "true", "yes")
        if missing and (required or len(missing) < len(values)):
            raise MessengerConfigError(
                "Messenger channel: missing environment variable(s) "
                + ", ".join(missing)
                + ". Set FB_VERIFY (the verify token chosen for the webhook), FB_SECRET (the app secret) "
                "and FB_PAGE_ACCESS_TOKEN (the page access token): see docs/channels.md."
            )
        if missing:
            # None of the three set: a development machine. The webhook answers 503 and the
            # log says why; FB_MESSENGER_REQUIRED=true makes this an error (production).
            logger.warning(
                "Messenger channel disabled: FB_VERIFY, FB_SECRET and FB_PAGE_ACCESS_TOKEN are not set"
            )
            return cls(None, None, None)
        return cls(
            values[ENV_VERIFY],
            values[ENV_SECRET],
            values[ENV_TOKEN],
            graph_api_url=_setting(credentials, "graph_api_url", ENV_GRAPH_URL, DEFAULT_GRAPH_URL),
            dedupe_db=_setting(credentials, "dedupe_db", ENV_DEDUPE_DB, DEFAULT_DEDUPE_DB),
            page_inbox_app_id=inbox_app_id,
            handover_idle_minutes=idle_minutes,
        )

    def __init__(
        self,
        fb_verify: str | None,
        fb_secret: str | None,
        fb_access_token: str | None,
        graph_api_url: str = DEFAULT_GRAPH_URL,
        dedupe_db: str = DEFAULT_DEDUPE_DB,
        page_inbox_app_id: str = DEFAULT_INBOX_APP_ID,
        handover_idle_minutes: float = DEFAULT_IDLE_MINUTES,
    ) -> None:
        self.fb_verify = fb_verify
        self.fb_secret = fb_secret
        self.fb_access_token = fb_access_token
        self.enabled = bool(fb_verify and fb_secret and fb_access_token)
        self.graph_api_url = graph_api_url
        self.dedupe_db = dedupe_db
        self.handover = Handover(page_inbox_app_id, handover_idle_minutes)
        self._seen: SeenStore | None = None
        self._queues: SenderQueues | None = None
        self._client: GraphClient | None = None

    @property
    def seen(self) -> SeenStore:
        """The message ids claimed and handled (FB_DEDUPE_STORE: SQLite or Redis)."""
        if self._seen is None:
            self._seen = store_from_env(self.dedupe_db)
        return self._seen

    @property
    def queues(self) -> SenderQueues:
        """The messages being handled, one queue per sender."""
        if self._queues is None:
            self._queues = SenderQueues(self.seen)
        return self._queues

    @property
    def _tasks(self) -> set[asyncio.Task[None]]:
        """The tasks handling messages (tests wait for them)."""
        return self.queues.tasks

    async def accept(
        self,
        found: Sequence[Event | tuple[str, str, str]],
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
        metadata: dict[str, Any] | None,
    ) -> bool:
        """Claim the events not seen yet and start handling them, each in its sender's queue
        (a (key, sender, text) tuple is a message to the bot). False (nothing started) when the
        message-id store is unavailable."""
        events = [e if isinstance(e, Event) else Event(MESSAGE, e[1], e[2], e[0]) for e in found]
        claimed: list[Event] = []
        try:
            for event in events:
                if event.key is None or await self.seen.claim(event.key):
                    claimed.append(event)
        except Exception as error:  # noqa: BLE001 - Messenger retries the call: nothing is lost
            logger.error("Messenger: message-id store unavailable (%s)", type(error).__name__)
            for event in claimed:
                if event.key is not None:
                    with contextlib.suppress(Exception):  # the claim expires by itself
                        await self.seen.release(event.key)
            return False
        for event in claimed:
            # Judged here, in arrival order, so that the clock sees every event of the call.
            work = self._work(event, on_new_message, metadata)
            if work is not None and event.key is not None:
                self.queues.start(event.key, event.sender, work)
        return True

    def _work(
        self,
        event: Event,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
        metadata: dict[str, Any] | None,
    ) -> Callable[[], Awaitable[None]] | None:
        """What to do for `event` in its sender's queue (None: nothing), the standby clock
        updated."""
        handover = self.handover
        if event.kind in (STANDBY_ACTIVITY, HANDED):
            handover.touch(event.sender, event.at)
            return None
        if event.kind == STANDBY:
            if handover.idle(event.sender, event.at):
                handover.forget(event.sender)
                return functools.partial(self._take_back, event, on_new_message, metadata)
            handover.touch(event.sender, event.at)
            return functools.partial(self._record_standby, event, on_new_message, metadata)
        if event.kind == RETURNED:
            handover.forget(event.sender)
            return functools.partial(self._returned, event, on_new_message)
        if event.kind == REQUESTED:
            return functools.partial(self._requested, event)
        handover.forget(event.sender)  # a message to the bot: the thread is ours
        return functools.partial(self._handle, [(event.sender, event.text)], on_new_message, metadata)

    def graph_client(self) -> GraphClient:
        """The channel's one Graph API client (one aiohttp session for every call)."""
        if self._client is None:
            self._client = GraphClient(self.fb_access_token or "", self.fb_secret or "", self.graph_api_url)
        return self._client

    def output(self, typing: bool = False) -> MessengerOutput:
        return MessengerOutput(self.graph_client(), self.handover, typing)

    def get_output_channel(self) -> OutputChannel | None:
        return self.output() if self.enabled else None

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        # length, rate limit, answer when Rasa cannot (channels/guard.py); typing only once the
        # guard accepted; `handed_over` sees whether Rasa took the message, which the guard
        # hides (channels/dedupe.py)
        on_new_message = guarded(with_typing(handed_over(on_new_message)))
        fb_webhook = Blueprint("messenger_webhook", __name__)

        @fb_webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok" if self.enabled else "disabled"})

        if not self.enabled:

            @fb_webhook.route("/webhook", methods=["GET", "POST"])
            async def disabled(request: Request) -> HTTPResponse:
                return response.text("Messenger channel not configured", status=503)

            return fb_webhook

        @fb_webhook.route("/webhook", methods=["GET"])
        async def token_verification(request: Request) -> HTTPResponse:
            if request.args.get("hub.mode") == "subscribe" and token_matches(
                self.fb_verify or "", request.args.get("hub.verify_token")
            ):
                return response.text(request.args.get("hub.challenge", ""))
            logger.warning("Messenger webhook verification refused: wrong hub.verify_token (FB_VERIFY)")
            return response.text("forbidden", status=403)

        @fb_webhook.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            problem = signature_problem(self.fb_secret or "", request.body or b"", request.headers)
            if problem:
                logger.warning("Messenger webhook refused (%s): check FB_SECRET", problem)
                return response.text("forbidden", status=403)
            try:
                payload = json.loads(request.body)
            except (ValueError, RecursionError):
                return response.text("invalid JSON", status=400)
            if not isinstance(payload, dict):
                return response.text("invalid payload", status=400)

            try:
                found = webhook_events(payload, self.handover.inbox_app_id)
            except (AttributeError, TypeError, ValueError):  # fields of the wrong JSON types
                return response.text("invalid payload", status=400)
            # Claimed before the work starts, so a retry arriving meanwhile is dropped too.
            if not await self.accept(found, on_new_message, self.get_metadata(request)):
                return response.text("unavailable", status=503)  # Messenger retries later
            # Acknowledged at once: Messenger retries webhooks that answer slowly.
            return response.text("EVENT_RECEIVED")

        @fb_webhook.listener("before_server_stop")
        async def drain(app: Any, loop: Any) -> None:
            # Rasa still runs: the messages being handled get their answer (FB_SHUTDOWN_TIMEOUT).
            await self.queues.drain(shutdown_timeout())
            if self._client is not None:  # nothing of ours sends any more
                await self._client.close()

        return fb_webhook

    async def _handle(
        self,
        events: list[tuple[str, str]],
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
        metadata: dict[str, Any] | None,
    ) -> None:
        for sender_id, text in events:
            out_channel = self.output(typing=True)  # typing_on once the guard accepts (`with_typing`)
            await out_channel.send_action(sender_id, "mark_seen")
            try:
                await on_new_message(
                    UserMessage(
                        text,
                        out_channel,
                        SENDER_PREFIX + sender_id,
                        input_channel=self.name(),
                        metadata=metadata,
                    )
                )
            except Exception:  # one failed message must not stop the others
                logger.exception("Messenger: could not handle a message")

    async def _record_standby(
        self,
        event: Event,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
        metadata: dict[str, Any] | None,
    ) -> None:
        """A customer message the inbox answers: into the transcript, every reply dropped (the
        bot may not write while another app owns the thread)."""
        await on_new_message(
            UserMessage(
                event.text,
                CollectingOutputChannel(),
                SENDER_PREFIX + event.sender,
                input_channel=self.name(),
                metadata={**(metadata or {}), "standby": True},
            )
        )

    async def _take_back(
        self,
        event: Event,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
        metadata: dict[str, Any] | None,
    ) -> None:
        """Nobody in the inbox moved for the idle time: the bot takes the thread and answers."""
        if not await self.graph_client().take_thread_control(event.sender, META_IDLE):
            # Still the inbox's thread: record the message as standby, the clock restarts.
            self.handover.touch(event.sender, event.at)
            await self._record_standby(event, on_new_message, metadata)
            return
        logger.info("Messenger: thread taken back from an idle page inbox")
        await self._handle(
            [(event.sender, event.text)], on_new_message, {**(metadata or {}), "handover": "taken_back"}
        )

    async def _returned(self, event: Event, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> None:
        """The inbox gave the thread back ("Mark as done"): Rasa learns it, the customer gets
        its answer."""
        await on_new_message(
            UserMessage(
                RETURN_COMMAND,
                self.output(),
                SENDER_PREFIX + event.sender,
                input_channel=self.name(),
                metadata={"handover": "returned"},
            )
        )

    async def _requested(self, event: Event) -> None:
        """Another app asks for the thread: granted to the page inbox (a person wants to
        answer), ignored for any other app."""
        if event.app_id != self.handover.inbox_app_id:
            logger.warning(
                "Messenger: thread control requested by app %s, not the page inbox: ignored", event.app_id
            )
            return
        await self.handover.pass_to_inbox(self.graph_client(), event.sender, META_REQUEST)
