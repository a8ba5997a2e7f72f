"""The website widget's channel, at the socket.io protocol level (channels/socketio.py).

Runs against the shared servers (conftest `servers`: credentials.yml, real model) with a
python-socketio client, long-polling like the widget (harness/socketio_client.py).
"""

from __future__ import annotations

import re
from contextlib import closing

import pytest
import requests
import socketio

from harness.socketio_client import Widget

pytestmark = [pytest.mark.servers, pytest.mark.model]

ALLOWED_ORIGIN = "http://localhost:8080"  # credentials.yml


def test_session_request_confirm_and_messages(servers):
    with closing(Widget(servers.rasa_url, origin=ALLOWED_ORIGIN)) as widget:
        session_id = widget.session()
        assert isinstance(session_id, str) and re.fullmatch(r"[0-9a-f]{32}\.[A-Za-z0-9_-]{43}", session_id)
        widget.say("code PUK ?", session_id)
        message = widget.answer("Code PUK")
    assert "\n- " in message["text"]  # one message: the answer and its Markdown list
    titles = [q["title"] for q in message["quick_replies"]]
    assert "En agence" in titles
    assert all(q["payload"].startswith('/code_puk{"canal"') for q in message["quick_replies"])
    expected = ["code PUK ?"]
    assert servers.wait_user_texts(session_id, expected) == expected


def test_reconnect_with_the_same_session_continues_the_conversation(servers):
    with closing(Widget(servers.rasa_url)) as first:
        session_id = first.session()
        first.say("je veux résilier", session_id)
        first.answer("Résiliation")

    # A page reload: a new socket asks for the same session.
    with closing(Widget(servers.rasa_url)) as second:
        assert second.session(session_id) == session_id
        second.say("et par mail ?", session_id)  # names only a channel: the procedure is remembered
        message = second.answer("Démarche : Résiliation.")
    assert "1000@opt.nc" in message["text"]
    expected = ["je veux résilier", "et par mail ?"]
    assert servers.wait_user_texts(session_id, expected) == expected


def test_message_for_a_session_not_requested_is_dropped(servers):
    with closing(Widget(servers.rasa_url)) as victim, closing(Widget(servers.rasa_url)) as intruder:
        session_id = victim.session()
        intruder.say("message glissé dans la conversation d'un autre", session_id)
        # Packets of one socket are handled in order: once this is confirmed, the server
        # has handled the intruder's message (and would have started answering it).
        intruder.session()
        victim.say("code PUK ?", session_id)
        victim.answer("Code PUK")
    expected = ["code PUK ?"]
    assert servers.wait_user_texts(session_id, expected) == expected


def test_invalid_session_id_replaced(servers):
    with closing(Widget(servers.rasa_url)) as widget:
        session_id = widget.session("../../etc <b>")
    assert re.fullmatch(r"[0-9a-f]{32}\.[A-Za-z0-9_-]{43}", session_id)  # issued and signed by the server


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
