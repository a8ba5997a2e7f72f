"""A socket.io client speaking the website widget's protocol (long-polling, like the widget):
session_request / session_confirm, user_uttered / bot_uttered."""

from __future__ import annotations

import queue
from contextlib import closing
from typing import Any

import socketio


class Widget:
    """One socket.io connection to Rasa (or nginx) at `url`, its events queued as they come."""

    def __init__(self, url: str, origin: str | None = None) -> None:
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.client = socketio.Client(reconnection=False)
        self.client.on("session_confirm", lambda data: self.events.put(("session_confirm", data)))
        self.client.on("bot_uttered", lambda data: self.events.put(("bot_uttered", data)))
        headers = {"Origin": origin} if origin else {}
        self.client.connect(url, transports=["polling"], headers=headers, wait_timeout=10)

    def next(self, name: str, timeout: float = 30) -> Any:
        """The data of the next `name` event (others before it are skipped); queue.Empty after
        `timeout` seconds."""
        while True:
            event, data = self.events.get(timeout=timeout)
            if event == name:
                return data

    def session(self, session_id: str | None = None, timeout: float = 30) -> str:
        """Asks for a session (a new one, or `session_id` again); returns the confirmed id."""
        self.client.emit("session_request", {"session_id": session_id})
        confirmed: str = self.next("session_confirm", timeout)
        return confirmed

    def say(self, message: Any, session_id: str) -> None:
        self.client.emit("user_uttered", {"message": message, "session_id": session_id})

    def ask(self, message: Any, session_id: str, timeout: float = 30) -> dict[str, Any]:
        """Sends `message`; returns the next bot message."""
        self.say(message, session_id)
        answer: dict[str, Any] = self.next("bot_uttered", timeout)
        return answer

    def answer(self, needle: str, timeout: float = 30) -> dict[str, Any]:
        """The first bot message containing `needle` (bot messages before it are skipped)."""
        while True:
            message: dict[str, Any] = self.next("bot_uttered", timeout)
            if needle in message.get("text", ""):
                return message

    def close(self) -> None:
        """Disconnects (`with contextlib.closing(Widget(url)) as widget:`)."""
        self.client.disconnect()


def say_socketio(
    rasa_url: str, session_id: str, texts: list[str], timeout: float = 30
) -> list[dict[str, Any]]:
    """Customer messages over Rasa's socket.io channel (as the website widget sends them), one
    after the other's answer; returns the answers."""
    with closing(Widget(rasa_url)) as widget:
        session = widget.session(session_id, timeout)
        return [widget.ask(text, session, timeout) for text in texts]
