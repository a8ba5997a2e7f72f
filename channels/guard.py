"""Input guard shared by every entry point (REST, socket.io, Messenger).

Each channel wraps the `on_new_message` callback Rasa gives it with `guarded(...)`, so that
every user message, whatever its channel, goes through the same checks before Rasa sees it:

1. the text is readable: a string, stripped of what has no business in a chat message and
   breaks later readers of the tracker store (control characters such as NUL, which
   PostgreSQL's jsonb refuses even escaped; lone UTF-16 surrogates, which are not UTF-8;
   bidi overrides and other invisible format characters, except the zero-width joiner
   that emoji sequences need); newlines and tabs stay;
2. it is not empty (after that cleaning);
3. it is at most `CHAT_CAGOU_MAX_MESSAGE_CHARS` characters (default 1000, what the widget
   lets one type);
4. the sender has not sent more than `CHAT_CAGOU_RATE_LIMIT` messages ("N/SECONDS",
   default 30 in 60 s) in the sliding window, nor has the connection it came through (a
   widget socket, which may hold two sessions). The window is kept in Redis when
   `CHAT_CAGOU_RATE_LIMIT_STORE=redis` (production: shared by every Rasa instance, same
   REDIS_* variables as the lock store), else in the process;
5. customer text never reaches Rasa as an intent command: Rasa reads a text starting with
   "/" as `/intent{entities}` (confidence 1, no NLU), so "/restart" typed by a customer
   would restart the conversation silently (a false outage alarm) and "/greet" would count
   as a sure prediction. Only the exact payloads of our own buttons (`button_payloads()`,
   from actions/answers.py) keep their slash; any other leading slash is removed.

Order matters for floods: every message is counted first (an empty, unreadable or too long
message uses the window like any other), and a text far beyond the length limit is refused
before it is cleaned (the cleaning walks every character).

A message that fails a check gets a polite French reply through its own channel, and is not
passed to Rasa: nothing is stored. Everything else (emojis only, English, HTML, SQL-looking
text...) is ordinary text for the NLU, which answers it (clarification or out of scope);
channels and readers must treat it as text, never as markup or code.

Action server down (or any failure inside Rasa): Rasa logs the error, loses the action's
events and sends nothing, so the customer would get silence. The hook is here, around the
turn, rather than in Rasa's processor: it is the one place every channel already goes
through, it needs no patch of Rasa internals, and it also covers failures that are not an
action's (tracker store or lock store unreachable). When a turn sent no bot message at
all, or raised, the customer gets `unavailable_text()`: the essential contacts from the
fiche (Service Clientèle 1000 and its hours, its email, the agency). Every turn of this
assistant answers something, so an empty turn always means a failure; when a person answers
the conversation (actions/handoff.py), the assistant's turn sends `handoff.HELD`, counted
here and never shown. Normal answers come
back by themselves with the action server. The contacts message is sent by the channel,
not by Rasa, so it is not in the tracker (the failed turn stays visible as such there).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import time
import unicodedata
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from rasa.core.channels.channel import OutputChannel, UserMessage

from actions import answers, handoff

logger = logging.getLogger(__name__)

ENV_MAX_CHARS = "CHAT_CAGOU_MAX_MESSAGE_CHARS"
ENV_RATE_LIMIT = "CHAT_CAGOU_RATE_LIMIT"
ENV_RATE_STORE = "CHAT_CAGOU_RATE_LIMIT_STORE"

DEFAULT_MAX_CHARS = 1000
# A raw text longer than this many times the limit is refused without being cleaned (the
# cleaning may shorten a text: "\r\n" becomes "\n", invisible characters go).
RAW_LENGTH_FACTOR = 4
DEFAULT_RATE_LIMIT = "30/60"
MAX_METADATA_BYTES = 4096
MAX_TRACKED_SENDERS = 100_000  # in-process limiter: least recently seen senders forgotten beyond this

# Sender ids become tracker keys (an SQL column of 255 characters, URLs of Rasa's API and of
# the review console): short plain tokens only. Socket.io session ids, Messenger PSIDs,
# UUIDs and e-mail-like ids all fit.
# A client's own id (REST `sender`) is at most 128 characters; the tracker's sender id adds its
# channel's prefix ("rest:", "fb:", "web:").
CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:@+=-]{1,128}$")
SENDER_ID = re.compile(r"^[A-Za-z0-9_.:@+=-]{1,140}$")


def unavailable_text() -> str:
    """The reply when Rasa could not answer (actions/answers.py), with the contacts of the
    fiche's published version (actions/live_fiche.py; the file without FICHE_DB_URL)."""
    from actions import live_fiche  # loaded on first failure, not when channels are imported

    return answers.unavailable(live_fiche.current())


# --- cleaning -----------------------------------------------------------------------------

_KEEP_CONTROLS = {"\n", "\t"}
_ZWJ = "\u200d"


def clean_text(text: str) -> str:
    """`text` without what breaks storage or display, NFC-normalised and stripped.

    Removed: control characters (Cc) but newline and tab, format characters (Cf: bidi
    overrides, zero-width spaces, BOM...) but the zero-width joiner, lone surrogates (Cs),
    noncharacters. "\\r\\n" and "\\r" become "\\n".
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category == "Cc" and char not in _KEEP_CONTROLS:
            continue
        if category == "Cf" and char != _ZWJ:
            continue
        if category == "Cs":
            continue
        code = ord(char)
        if 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE:
            continue
        kept.append(char)
    return unicodedata.normalize("NFC", "".join(kept)).strip()


def _clean_json(value: Any, depth: int = 0) -> Any:
    if depth > 10:
        raise ValueError("metadata nested too deeply")
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): _clean_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_json(v, depth + 1) for v in value]
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):  # NaN/Infinity: not JSON
            raise ValueError("metadata holds a non-finite number")
        return value
    raise ValueError(f"metadata holds a {type(value).__name__}")


def metadata_problem(metadata: Any) -> str | None:
    """None if `metadata` may be stored with the message (None or a small JSON object)."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        return "metadata must be a JSON object"
    try:
        size = len(json.dumps(_clean_json(metadata), ensure_ascii=False).encode("utf-8"))
    except (ValueError, TypeError, RecursionError) as error:
        return f"metadata is not plain JSON ({error})"
    if size > MAX_METADATA_BYTES:
        return f"metadata larger than {MAX_METADATA_BYTES} bytes"
    return None


def clean_metadata(metadata: Any) -> dict[str, Any] | None:
    """The metadata to store: cleaned like texts, or None when it is not small plain JSON."""
    if metadata is None or metadata_problem(metadata):
        return None
    return _clean_json(metadata)


def valid_sender(sender_id: Any) -> bool:
    return isinstance(sender_id, str) and bool(SENDER_ID.match(sender_id))


# --- intent commands ----------------------------------------------------------------------


@lru_cache(maxsize=1)
def button_payloads() -> frozenset[str]:
    """Every payload our answers put on a button (actions/answers.py): the only texts that
    may reach Rasa as an intent command."""
    from actions.fiche import PROCEDURES
    from actions.understanding import FACT_TOPICS, PAYLOAD_INTENTS

    payloads = {
        answers.button(title, f"/{topic}")["payload"] for topic, title in answers.TOPIC_TITLES.items()
    }
    payloads |= {"/affirm", "/deny"}  # answers.py's scope question
    payloads |= {f"/{intent}" for intent in PAYLOAD_INTENTS}  # e.g. the widget's first open
    payloads |= {
        answers.channel_button(procedure, channel)["payload"]
        for procedure in PROCEDURES
        for channel in answers.CHANNEL_BUTTONS
    }
    payloads |= {b["payload"] for topic in FACT_TOPICS for b in answers.feedback_buttons(topic)}  # 👍 / 👎
    return frozenset(payloads)


_LEADING_SLASHES = re.compile(r"^[\s/]+")


def neutralise_command(text: str) -> str:
    """`text` unless it would be read by Rasa as an intent command that is not one of our
    buttons' payloads: then without its leading slashes ("/restart" -> "restart")."""
    if not text.startswith("/") or text in button_payloads():
        return text
    return _LEADING_SLASHES.sub("", text)


# --- rate limit ---------------------------------------------------------------------------


def parse_rate(value: str | None) -> tuple[int, float]:
    """ "N/SECONDS" -> (N, SECONDS). N = 0 turns the limit off."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*", value or DEFAULT_RATE_LIMIT)
    if not match or float(match.group(2)) <= 0:
        raise ValueError(f"{ENV_RATE_LIMIT} must look like '30/60' (messages/seconds), not {value!r}")
    return int(match.group(1)), float(match.group(2))


class MemoryRateLimiter:
    """Sliding window per sender, in this process (bounded number of senders)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    async def hit(self, key: str) -> float:
        """0 if the message is accepted (and counted), else the seconds to wait."""
        now = time.monotonic()
        hits = self._hits.pop(key, None) or deque()
        self._hits[key] = hits  # most recently seen last
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return max(hits[0] + self.window - now, 0.001)
        hits.append(now)
        while len(self._hits) > MAX_TRACKED_SENDERS:
            self._hits.popitem(last=False)
        return 0.0


# Atomic sliding window in a sorted set; the time is Redis's own, so that every Rasa host
# counts on the same clock.
_REDIS_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
  return '0'
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + window - now)
"""


class RedisRateLimiter:
    """The same window in Redis, shared by every Rasa instance. If Redis cannot be reached,
    the process's own window is used meanwhile (logged): the guard never blocks a turn."""

    def __init__(self, limit: int, window: float, prefix: str, **redis_kwargs: Any) -> None:
        import redis.asyncio

        self.limit = limit
        self.window = window
        self.prefix = prefix
        self.redis = redis.asyncio.Redis(socket_timeout=1, socket_connect_timeout=1, **redis_kwargs)
        self.script = self.redis.register_script(_REDIS_SCRIPT)
        self.fallback = MemoryRateLimiter(limit, window)
        self._warned_at = 0.0

    async def hit(self, key: str) -> float:
        try:
            wait = await self.script(
                keys=[self.prefix + key], args=[self.window, self.limit, uuid.uuid4().hex]
            )
            return max(float(wait), 0.0)
        except Exception as error:  # noqa: BLE001 - any Redis failure: degrade, never fail the turn
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                logger.warning(
                    "guard: Redis rate limit unavailable (%s), counting in-process", type(error).__name__
                )
            return await self.fallback.hit(key)


class NoRateLimit:
    async def hit(self, key: str) -> float:
        return 0.0


# --- the guard ----------------------------------------------------------------------------


@dataclass
class Verdict:
    text: str | None  # the cleaned text to pass to Rasa, or None
    reply: str | None  # the polite reply instead, or None
    reason: str = "ok"


class _ReplyCounter:
    """Counts the bot messages sent through an output channel during one turn."""

    def __init__(self, channel: OutputChannel) -> None:
        self.count = 0
        original = channel.send_response

        async def send_response(recipient_id: str, message: dict[str, Any]) -> None:
            self.count += 1
            if message.get("custom") == handoff.HELD:
                return  # a person answers this conversation: the assistant's silence, on purpose
            await original(recipient_id, message)

        channel.send_response = send_response


class Guard:
    def __init__(self, max_chars: int = DEFAULT_MAX_CHARS, limiter: Any = None) -> None:
        self.max_chars = max_chars
        self.limiter = limiter or NoRateLimit()

    @classmethod
    def from_env(cls) -> Guard:
        max_chars = int(os.environ.get(ENV_MAX_CHARS) or DEFAULT_MAX_CHARS)
        limit, window = parse_rate(os.environ.get(ENV_RATE_LIMIT))
        store = (os.environ.get(ENV_RATE_STORE) or "memory").lower()
        if limit <= 0:
            limiter: Any = NoRateLimit()
        elif store == "redis":
            prefix = (os.environ.get("REDIS_KEY_PREFIX") or "chatcagou") + ":ratelimit:"
            limiter = RedisRateLimiter(
                limit,
                window,
                prefix,
                host=os.environ.get("REDIS_HOST") or "127.0.0.1",
                port=int(os.environ.get("REDIS_PORT") or 6379),
                db=int(os.environ.get("REDIS_DB") or 0),
                password=os.environ.get("REDIS_PASSWORD") or None,
            )
        elif store == "memory":
            limiter = MemoryRateLimiter(limit, window)
        else:
            raise ValueError(f"{ENV_RATE_STORE} must be 'memory' or 'redis', not {store!r}")
        logger.info(
            "guard: at most %d characters, %d messages per %gs per sender (%s)",
            max_chars,
            limit,
            window,
            store if limit > 0 else "no limit",
        )
        return cls(max_chars, limiter)

    async def check(self, sender_id: Any, text: Any, connection: str | None = None) -> Verdict:
        """The verdict on one message. Every message is counted, for its sender and for its
        `connection` (a widget socket) if any, before anything else is done with it."""
        waits = [await self.limiter.hit(str(sender_id))]
        if connection is not None:
            waits.append(await self.limiter.hit("connection:" + connection))
        wait = max(waits)
        if wait > 0:
            return Verdict(None, answers.rate_limited(max(1, math.ceil(wait))), "rate_limited")
        if not isinstance(text, str):
            return Verdict(None, answers.UNREADABLE_TEXT, "unreadable")
        if len(text) > RAW_LENGTH_FACTOR * self.max_chars:
            return Verdict(None, answers.too_long(self.max_chars), "too_long")
        cleaned = clean_text(text)
        if len(cleaned) > self.max_chars:
            return Verdict(None, answers.too_long(self.max_chars), "too_long")
        cleaned = neutralise_command(cleaned)
        if not cleaned:
            return Verdict(None, answers.EMPTY_TEXT, "empty")
        return Verdict(cleaned, None)

    async def handle(
        self,
        message: UserMessage,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
        connection: str | None = None,
    ) -> None:
        """Check `message`; pass it to Rasa or answer it here; answer a silent turn.
        `connection`: the id of the connection it came through, rate-limited too."""
        output = message.output_channel
        if not valid_sender(message.sender_id):
            # No conversation to answer in: REST refuses these with 400 before this point,
            # socket.io and Messenger ids are checked by their channels.
            logger.warning("guard: message with an invalid sender id dropped")
            return
        verdict = await self.check(message.sender_id, message.text, connection)
        if verdict.reply is not None:
            logger.info("guard: message refused (%s)", verdict.reason)
            await output.send_text_message(message.sender_id, verdict.reply)
            return
        message.text = verdict.text
        message.metadata = clean_metadata(message.metadata)
        counter = _ReplyCounter(output)
        try:
            await on_new_message(message)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("guard: the turn failed")
        if counter.count == 0:
            logger.warning("guard: no answer from Rasa (action server down?): contacts sent instead")
            await output.send_text_message(message.sender_id, unavailable_text())


_guard: Guard | None = None


def default_guard() -> Guard:
    """The process's guard, built from the environment on first use."""
    global _guard
    if _guard is None:
        _guard = Guard.from_env()
    return _guard


class GuardedHandler(Protocol):
    async def __call__(self, message: UserMessage, connection: str | None = None) -> None: ...


def guarded(
    on_new_message: Callable[[UserMessage], Awaitable[Any]], guard: Guard | None = None
) -> GuardedHandler:
    """`on_new_message` behind the guard: what every channel passes its messages to."""

    async def handler(message: UserMessage, connection: str | None = None) -> None:
        await (guard or default_guard()).handle(message, on_new_message, connection)

    return handler
