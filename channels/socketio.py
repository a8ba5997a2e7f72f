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
Every message goes through the input guard (channels/guard.py): empty, unreadable, too long
or rate-limited messages get a polite reply, and a turn Rasa could not answer gets the contacts.
It also refuses client-chosen session ids that are not short plain tokens (a new one is
issued instead), since they become tracker sender ids, and drops a `user_uttered` whose
session_id is not one this socket asked for (Rasa would file it under any sender id).
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.core.channels.socketio import SocketIOInput as RasaSocketIOInput
from rasa.core.channels.socketio import SocketIOOutput
from sanic import Blueprint

from channels.guard import guarded

logger = logging.getLogger(__name__)

ENV_ORIGINS = "CHAT_CAGOU_WEB_ORIGINS"
DEFAULT_ORIGINS = ["http://localhost:8080", "http://127.0.0.1:8080"]
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
MAX_MESSAGE = 2000  # characters of a user message: the widget's input allows 1000


def parse_origins(value: Any) -> list[str]:
    """A list, or a comma/space separated string, of origins (scheme://host[:port])."""
    items = value if isinstance(value, (list, tuple)) else re.split(r"[,\s]+", str(value or ""))
    return [str(item).strip().rstrip("/") for item in items if str(item).strip()]


class SocketIOInput(RasaSocketIOInput):
    allowed_origins: list[str] = DEFAULT_ORIGINS

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        channel = super().from_credentials(credentials)
        configured = os.environ.get(ENV_ORIGINS) or (credentials or {}).get("cors_allowed_origins")
        channel.allowed_origins = parse_origins(configured) if configured else list(DEFAULT_ORIGINS)
        logger.info("socketio: allowed origins %s", channel.allowed_origins)
        return channel

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        on_new_message = guarded(
            on_new_message
        )  # length, rate limit, answer when Rasa cannot (channels/guard.py)
        socketio_webhook = super().blueprint(on_new_message)
        sio = self.sio
        # "*" keeps engine.io's meaning: every origin.
        sio.eio.cors_allowed_origins = "*" if "*" in self.allowed_origins else list(self.allowed_origins)
        sio.eio.cors_credentials = False  # the widget sends no cookies
        sio.eio.transports = ["polling"]  # see 3. above
        sio.eio.allow_upgrades = False  # else the handshake still offers "websocket" to clients

        # Replaces Rasa's handler (one handler per event and namespace).
        @sio.on("session_request", namespace=self.namespace)
        async def session_request(sid: str, data: dict | None) -> None:
            data = data if isinstance(data, dict) else {}
            session_id = data.get("session_id")
            if not isinstance(session_id, str) or not SESSION_ID.match(session_id):
                session_id = uuid.uuid4().hex
            if self.session_persistence:
                entered = sio.enter_room(sid, session_id, namespace=self.namespace)
                if inspect.isawaitable(entered):
                    await entered
            await sio.emit("session_confirm", session_id, room=sid, namespace=self.namespace)
            logger.debug(f"User {sid} joined session {session_id}.")

        @sio.on(self.user_message_evt, namespace=self.namespace)
        async def handle_message(sid: str, data: Any) -> None:
            if not isinstance(data, dict):
                return
            if self.session_persistence:
                session_id = data.get("session_id")
                if not session_id or session_id not in sio.rooms(sid, namespace=self.namespace):
                    logger.warning("socketio: message for a session this socket did not request, ignored")
                    return
                sender_id = session_id
            else:
                sender_id = sid
            metadata = data.get(self.metadata_key) or {}
            if isinstance(metadata, str):
                try:
                    metadata = json.loads(metadata)
                except ValueError:
                    metadata = {}
            text = data.get("message", "")
            await on_new_message(
                UserMessage(
                    # not a string: None, which the guard answers with "could not read your message"
                    text[:MAX_MESSAGE] if isinstance(text, str) else None,
                    SocketIOOutput(sio, self.bot_message_evt),
                    sender_id,
                    input_channel=self.name(),
                    metadata=metadata if isinstance(metadata, dict) else {},
                )
            )

        return socketio_webhook
