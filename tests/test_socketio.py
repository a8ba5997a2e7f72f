"""The website widget's channel, at the socket.io protocol level (channels/socketio.py).

Runs against the shared servers (conftest `servers`: credentials.yml, real model) with a
python-socketio client, long-polling like the widget.
"""

from __future__ import annotations

import queue

import pytest
import requests
import socketio

pytestmark = pytest.mark.slow

ALLOWED_ORIGIN = "http://localhost:8080"  # credentials.yml


class Widget:
    """A socket.io client speaking the widget's protocol."""

    def __init__(self, url: str, origin: str | None = None) -> None:
        self.events: queue.Queue[tuple] = queue.Queue()
        self.client = socketio.Client(reconnection=False)
        self.client.on("session_confirm", lambda data: self.events.put(("session_confirm", data)))
        self.client.on("bot_uttered", lambda data: self.events.put(("bot_uttered", data)))
        headers = {"Origin": origin} if origin else {}
        self.client.connect(url, transports=["polling"], headers=headers, wait_timeout=10)

    def next(self, name: str, timeout: float = 30):
        while True:
            event, data = self.events.get(timeout=timeout)  # queue.Empty fails the test
            if event == name:
                return data

    def session(self, session_id: str | None = None) -> str:
        self.client.emit("session_request", {"session_id": session_id})
        return self.next("session_confirm")

    def say(self, text: str, session_id: str) -> None:
        self.client.emit("user_uttered", {"message": text, "session_id": session_id})

    def answer(self, needle: str) -> dict:
        """The first bot message containing `needle` (bot messages before it are skipped)."""
        while True:
            message = self.next("bot_uttered")
            if needle in message.get("text", ""):
                return message

    def close(self) -> None:
        self.client.disconnect()


def test_session_request_confirm_and_messages(servers):
    widget = Widget(servers.rasa_url, origin=ALLOWED_ORIGIN)
    try:
        session_id = widget.session()
        assert isinstance(session_id, str) and len(session_id) == 32
        widget.say("code PUK ?", session_id)
        message = widget.answer("Code PUK")
        assert "• " in message["text"]
        titles = [q["title"] for q in message["quick_replies"]]
        assert "En agence" in titles
        assert all(q["payload"].startswith('/code_puk{"canal"') for q in message["quick_replies"])
    finally:
        widget.close()
    expected = ["code PUK ?"]
    assert servers.wait_user_texts(session_id, expected) == expected


def test_reconnect_with_the_same_session_continues_the_conversation(servers):
    first = Widget(servers.rasa_url)
    try:
        session_id = first.session()
        first.say("je veux résilier", session_id)
        first.answer("Résiliation")
    finally:
        first.close()

    # A page reload: a new socket asks for the same session.
    second = Widget(servers.rasa_url)
    try:
        assert second.session(session_id) == session_id
        second.say("et par mail ?", session_id)  # names only a channel: the procedure is remembered
        message = second.answer("Résiliation — Par courrier")
    finally:
        second.close()
    assert "1000@opt.nc" in message["text"]
    expected = ["je veux résilier", "et par mail ?"]
    assert servers.wait_user_texts(session_id, expected) == expected


def test_message_for_a_session_not_requested_is_dropped(servers):
    victim = Widget(servers.rasa_url)
    intruder = Widget(servers.rasa_url)
    try:
        session_id = victim.session()
        intruder.say("message glissé dans la conversation d'un autre", session_id)
        # Packets of one socket are handled in order: once this is confirmed, the server
        # has handled the intruder's message (and would have started answering it).
        intruder.session()
        victim.say("code PUK ?", session_id)
        victim.answer("Code PUK")
    finally:
        victim.close()
        intruder.close()
    expected = ["code PUK ?"]
    assert servers.wait_user_texts(session_id, expected) == expected


def test_invalid_session_id_replaced(servers):
    widget = Widget(servers.rasa_url)
    try:
        session_id = widget.session("../../etc <b>")
    finally:
        widget.close()
    assert len(session_id) == 32 and session_id.isalnum()


def test_only_configured_origins(servers):
    url = f"{servers.rasa_url}/socket.io/?EIO=4&transport=polling"
    allowed = requests.get(url, headers={"Origin": ALLOWED_ORIGIN}, timeout=10)
    assert allowed.status_code == 200
    assert allowed.headers.get("Access-Control-Allow-Origin") == ALLOWED_ORIGIN
    other = requests.get(url, headers={"Origin": "http://evil.example"}, timeout=10)
    assert other.status_code == 400
    assert "Access-Control-Allow-Origin" not in other.headers
    with pytest.raises(socketio.exceptions.ConnectionError):
        Widget(servers.rasa_url, origin="http://evil.example")
    # WebSocket is not offered (Sanic 21.12 cannot receive frames on Python 3.11).
    websocket = requests.get(
        f"{servers.rasa_url}/socket.io/?EIO=4&transport=websocket",
        headers={"Origin": ALLOWED_ORIGIN},
        timeout=10,
    )
    assert websocket.status_code == 400
