"""The website widget's channel: Rasa's socketio channel with three fixes.

1. Allowed origins. Rasa creates its socket.io server with `cors_allowed_origins=[]`, which
   turns origin checks off: any site could open a WebSocket to the bot (browsers apply no
   CORS to WebSockets). Here the engine.io server checks the `Origin` header of every
   request, polling and WebSocket alike, against `cors_allowed_origins` (credentials.yml) or
   the comma-separated CHAT_CAGOU_WEB_ORIGINS environment variable, which wins. Requests
   without an Origin header (non-browser clients) are not affected, as in engine.io.
2. `session_request` awaits `enter_room` when it is a coroutine (python-socketio >= 5.10),
   which Rasa 3.6 does not: with `session_persistence: true` the client would get
   `session_confirm` and then never a bot message.
3. Long-polling only. Sanic 21.12 (Rasa 3.6's) passes a bare coroutine to `asyncio.wait`
   in its WebSocket `recv`, which Python 3.11 forbids: the WebSocket transport opens, then
   never receives a frame ("coroutine 'WebsocketFrameAssembler.get' was never awaited").
   The server therefore offers polling only (no failed upgrade attempts) and the widget
   asks for polling only.
4. Sessions belong to whoever was given them. The session id is issued by the server and
   signed (HMAC-SHA256 with CHAT_CAGOU_SESSION_SECRET; without it, a random secret of this
   process, logged): the widget keeps the signed id it was given and sends it back after a
   reload. An unsigned, forged or malformed id gets a new signed one, so nobody joins (and
   reads the replies of) a conversation by guessing or copying a tracker id. The tracker's
   sender id is "web:" + the random part (channels are namespaced: REST and Messenger
   cannot write into a widget conversation), never the signature.
5. Flood bounds. A socket holds at most MAX_SESSIONS_PER_SOCKET sessions (asking for one
   more leaves the oldest), a long-polling POST carries at most MAX_PACKETS_PER_REQUEST
   packets, MAX_HTTP_BUFFER bytes and MAX_BRACKETS_PER_REQUEST brackets (else 400), and the guard counts each message for its
   socket as well as for its session.
6. Several Rasa instances. With CHAT_CAGOU_SOCKETIO_STORE=redis (production), the socket.io
   server publishes its emits through Redis (python-socketio's AsyncRedisManager, the REDIS_*
   variables of the lock store): a message Rasa sends to a conversation from any instance
   (the console's live desk writes through one instance's HTTP API) reaches the widget
   connected to another. Each socket still lives on one instance (nginx is sticky).
Every message goes through the input guard (channels/guard.py): empty, unreadable, too long
or rate-limited messages get a polite reply, and a turn Rasa could not answer gets the
contacts. A `user_uttered` for a session this socket was not given is dropped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import inspect
import json
import logging
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.core.channels.socketio import SocketIOInput as RasaSocketIOInput
from rasa.core.channels.socketio import SocketIOOutput
from rasa.shared.exceptions import RasaException
from sanic import Blueprint, response

from channels.guard import guarded

logger = logging.getLogger(__name__)

ENV_ORIGINS = "CHAT_CAGOU_WEB_ORIGINS"
ENV_SESSION_SECRET = "CHAT_CAGOU_SESSION_SECRET"
ENV_STORE = "CHAT_CAGOU_SOCKETIO_STORE"
DEFAULT_ORIGINS = ["http://localhost:8080", "http://127.0.0.1:8080"]
SENDER_PREFIX = "web:"
SESSION_TOKEN = re.compile(r"^([0-9a-f]{32})\.([A-Za-z0-9_-]{43})$")  # id.signature
MAX_SESSIONS_PER_SOCKET = 2  # the conversation and a new one (the widget's reset button)
MAX_PACKETS_PER_REQUEST = 16  # the widget sends one or two at a time
MAX_HTTP_BUFFER = 64 * 1024  # bytes of one POST: a 1000-character message, escaped, and its metadata
# Opening brackets in one POST: python-socketio parses packets with the json module, which
# raises RecursionError (uncaught: a 500 and a stuck socket) on deep nesting. The widget's
# packets have three; a customer typing hundreds of brackets gets a 400.
MAX_BRACKETS_PER_REQUEST = 512


class SocketIOConfigError(RasaException):
    """A setting that would open the widget's socket to every site (raised at start-up)."""


class SessionSigner:
    """Issues session ids and checks them: "<32 hex>.<HMAC-SHA256 of it, base64url>"."""

    def __init__(self, secret: str | None = None) -> None:
        if not secret:
            secret = secrets.token_hex(32)
            logger.warning(
                "socketio: %s is not set: widget sessions are signed with a random secret of this "
                "process (they end with it, and other instances refuse them)",
                ENV_SESSION_SECRET,
            )
        self._key = secret.encode("utf-8")

    def _signature(self, session: str) -> str:
        digest = hmac.new(self._key, b"web-session:" + session.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    def issue(self) -> str:
        session = secrets.token_hex(16)
        return f"{session}.{self._signature(session)}"

    def session_of(self, token: Any) -> str | None:
        """The session id `token` was issued for, or None if it is not one of ours."""
        match = SESSION_TOKEN.match(token) if isinstance(token, str) else None
        if not match or not hmac.compare_digest(match.group(2), self._signature(match.group(1))):
            return None
        return match.group(1)


def sender_of(session: str) -> str:
    """The tracker sender id (and socket.io room) of a widget session."""
    return SENDER_PREFIX + session


class WidgetOutput(SocketIOOutput):
    """Rasa's socket.io output, plus the messages of a staff member (console live desk): a
    bot message whose `custom` names an `agent` goes out as one `bot_uttered` carrying
    {"text", "agent", "notice"}, so that the widget shows it apart from the assistant's.
    An answer is one message: Rasa's would cut it at each blank line, where our answers
    separate their Markdown blocks (actions/markdown.py)."""

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self._send_message(recipient_id, {"text": text.strip()})

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        replies = [{"content_type": "text", "title": b["title"], "payload": b["payload"]} for b in buttons]
        await self._send_message(recipient_id, {"text": text.strip(), "quick_replies": replies})

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        custom = message.get("custom")
        if isinstance(custom, dict) and isinstance(custom.get("agent"), str):
            packet = {"text": message.get("text") or "", "agent": custom["agent"]}
            if isinstance(custom.get("notice"), str):
                packet["notice"] = custom["notice"]  # "joined" / "left": shown as a notice
            await self._send_message(recipient_id, packet)
            return
        await super().send_response(recipient_id, message)


def redis_url_from_env() -> str:
    """redis://[:password@]host:port/db from the lock store's REDIS_* variables."""
    password = os.environ.get("REDIS_PASSWORD") or ""
    auth = f":{quote(password, safe='')}@" if password else ""
    host = os.environ.get("REDIS_HOST") or "127.0.0.1"
    port = int(os.environ.get("REDIS_PORT") or 6379)
    db = int(os.environ.get("REDIS_DB") or 0)
    return f"redis://{auth}{host}:{port}/{db}"


def use_store_from_env(sio: Any) -> None:
    """CHAT_CAGOU_SOCKETIO_STORE: "memory" (default, one process) or "redis" (several)."""
    store = (os.environ.get(ENV_STORE) or "memory").strip().lower()
    if store == "memory":
        return
    if store != "redis":
        raise SocketIOConfigError(f"{ENV_STORE} must be 'memory' or 'redis', not {store!r}")
    from socketio import AsyncRedisManager

    channel = (os.environ.get("REDIS_KEY_PREFIX") or "chatcagou") + ":socketio"
    # No read timeout: the listener waits on Redis for as long as nobody emits.
    manager = AsyncRedisManager(
        redis_url_from_env(), channel=channel, redis_options={"socket_connect_timeout": 2}
    )
    if sio.manager_initialized:
        raise SocketIOConfigError("socket.io already has clients: its store can no longer change")
    sio.manager = manager
    manager.set_server(sio)
    logger.info("socketio: emits shared by every instance through Redis (channel %s)", channel)


def parse_origins(value: Any) -> list[str]:
    """A list, or a comma/space separated string, of origins (scheme://host[:port])."""
    items = value if isinstance(value, (list, tuple)) else re.split(r"[,\s]+", str(value or ""))
    return [str(item).strip().rstrip("/") for item in items if str(item).strip()]


class SocketIOInput(RasaSocketIOInput):
    allowed_origins: list[str] = DEFAULT_ORIGINS

    signer: SessionSigner

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        channel = super().from_credentials(credentials)
        if ENV_ORIGINS in os.environ:
            # Set, even empty: it is the list (an empty list would turn origin checks off).
            channel.allowed_origins = parse_origins(os.environ[ENV_ORIGINS])
            if not channel.allowed_origins:
                raise SocketIOConfigError(
                    f"{ENV_ORIGINS} is set but lists no origin: name the pages allowed to open the "
                    "widget's socket (https://www.opt.nc,...), or unset it to use credentials.yml"
                )
        else:
            configured = (credentials or {}).get("cors_allowed_origins")
            channel.allowed_origins = parse_origins(configured) if configured else list(DEFAULT_ORIGINS)
        logger.info("socketio: allowed origins %s", channel.allowed_origins)
        channel.signer = SessionSigner(os.environ.get(ENV_SESSION_SECRET))
        return channel

    def get_output_channel(self) -> OutputChannel | None:
        """The output Rasa's HTTP API uses (`output_channel=latest`): the console's live desk
        sends staff messages through it."""
        if self.sio is None:
            return None
        return WidgetOutput(self.sio, self.bot_message_evt)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        handle = guarded(on_new_message)  # length, rate limit, answer when Rasa cannot (channels/guard.py)
        socketio_webhook = super().blueprint(on_new_message)
        sio = self.sio
        use_store_from_env(sio)
        if not hasattr(self, "signer"):  # built without from_credentials
            self.signer = SessionSigner(os.environ.get(ENV_SESSION_SECRET))
        # "*" keeps engine.io's meaning: every origin.
        sio.eio.cors_allowed_origins = "*" if "*" in self.allowed_origins else list(self.allowed_origins)
        sio.eio.cors_credentials = False  # the widget sends no cookies
        sio.eio.transports = ["polling"]  # see 3. above
        sio.eio.allow_upgrades = False  # else the handshake still offers "websocket" to clients
        sio.eio.max_http_buffer_size = MAX_HTTP_BUFFER
        sessions: dict[str, list[str]] = {}  # socket id -> the rooms (sender ids) it joined, oldest first

        # The engine.io route is added when the blueprint is registered (SocketBlueprint.register),
        # from this attribute: a POST of too many packets is refused before any is handled.
        handle_request = sio.eio.handle_request

        async def capped_request(request: Any, *args: Any, **kwargs: Any) -> Any:
            body = (request.body or b"") if request.method == "POST" else b""
            if body.count(b"\x1e") >= MAX_PACKETS_PER_REQUEST:
                logger.warning("socketio: a polling request with too many packets refused")
                return response.text("too many packets", status=400)
            if body.count(b"[") + body.count(b"{") > MAX_BRACKETS_PER_REQUEST:
                logger.warning("socketio: a polling request nested too deeply refused")
                return response.text("too deeply nested", status=400)
            return await handle_request(request, *args, **kwargs)

        sio.eio.handle_request = capped_request

        async def join(sid: str, room: str) -> None:
            joined = sessions.setdefault(sid, [])
            if room in joined:
                return
            while len(joined) >= MAX_SESSIONS_PER_SOCKET:
                left = sio.leave_room(sid, joined.pop(0), namespace=self.namespace)
                if inspect.isawaitable(left):
                    await left
            entered = sio.enter_room(sid, room, namespace=self.namespace)
            if inspect.isawaitable(entered):
                await entered
            joined.append(room)

        # These replace Rasa's handlers (one handler per event and namespace).
        @sio.on("disconnect", namespace=self.namespace)
        async def disconnect(sid: str) -> None:
            sessions.pop(sid, None)  # socket.io leaves the rooms itself

        @sio.on("session_request", namespace=self.namespace)
        async def session_request(sid: str, data: Any) -> None:
            data = data if isinstance(data, dict) else {}
            token = data.get("session_id")
            session = self.signer.session_of(token)
            if session is None:
                token = self.signer.issue()
                session = self.signer.session_of(token)
                assert session is not None
            await join(sid, sender_of(session) if self.session_persistence else sender_of(sid))
            await sio.emit("session_confirm", token, room=sid, namespace=self.namespace)
            logger.debug("socketio: socket %s joined a session", sid)

        @sio.on(self.user_message_evt, namespace=self.namespace)
        async def handle_message(sid: str, data: Any) -> None:
            if not isinstance(data, dict):
                return
            if self.session_persistence:
                session = self.signer.session_of(data.get("session_id"))
                sender_id = sender_of(session) if session else None
            else:
                sender_id = sender_of(sid)
            if sender_id is None or sender_id not in sessions.get(sid, []):
                logger.warning("socketio: message for a session this socket was not given, ignored")
                return
            metadata = data.get(self.metadata_key) or {}
            if isinstance(metadata, str):
                try:
                    metadata = json.loads(metadata)
                except (ValueError, RecursionError):
                    metadata = {}
            text = data.get("message", "")
            await handle(
                UserMessage(
                    # not a string: None, which the guard answers with "could not read your message"
                    text if isinstance(text, str) else None,
                    WidgetOutput(sio, self.bot_message_evt),
                    sender_id,
                    input_channel=self.name(),
                    metadata=metadata if isinstance(metadata, dict) else {},
                ),
                connection=sid,
            )

        return socketio_webhook
