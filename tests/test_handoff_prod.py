"""Live handoff in the production topology (conftest `prod`: two Rasa instances behind nginx,
PostgreSQL, Redis): a widget customer (socket.io through nginx, sticky to one instance) is
taken by a staff member on the console's desk, whose messages go through the HTTP API of an
instance; socket.io's emits go through Redis (CHAT_CAGOU_SOCKETIO_STORE=redis), so the
customer gets them whichever instance holds the socket. Both instances are used, so one of
them is not the socket's. The handoff state is the tracker's, shared by both instances."""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
from contextlib import closing

import pytest

from harness.console import StaffClient, running_console, staff_user
from harness.socketio_client import Widget

pytestmark = [pytest.mark.servers, pytest.mark.model, pytest.mark.postgres, pytest.mark.redis]

MONDAY_10H = "2026-11-30T10:00:00+11:00"


def agent_messages(widget: Widget, count: int) -> list[dict]:
    return [widget.next("bot_uttered") for _ in range(count)]


def append_staff_message(rasa_url: str, token: str, sender_id: str, text: str) -> None:
    """What the desk does (console/desk.py), through the other instance's HTTP API."""
    body = json.dumps(
        [
            {
                "event": "bot",
                "text": text,
                "data": {"custom": {"agent": "Marie"}},
                "metadata": {"agent": "marie.dupont"},
            }
        ]
    ).encode()
    url = f"{rasa_url}/conversations/{sender_id}/tracker/events?output_channel=latest&execute_side_effects=true&token={token}"
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.status == 200


def test_handoff_across_the_two_instances(prod, tmp_path):
    prod.clock.set(MONDAY_10H)
    staff = ("marie.dupont", secrets.token_urlsafe(12))
    assert staff_user(prod.database.url, staff[0], "viewer", staff[1]).returncode == 0
    with running_console(
        prod.database.url,
        tmp_path / "console.log",
        port=prod.console_port,
        CONSOLE_RASA_URL=prod.rasa_url(1),
        RASA_AUTH_TOKEN=prod.token,
    ) as console:
        desk = StaffClient(console.url)
        assert desk.login(*staff).status_code == 303
        desk.get("/direct")
        assert desk.submit("/direct/presence", {"present": "1"}).status_code == 303

        with closing(Widget(prod.url)) as widget:
            token = widget.session()
            sender_id = "web:" + token.split(".")[0]
            waiting = widget.ask("je voudrais parler à un conseiller", token)
            assert "je transmets la conversation à un conseiller" in waiting["text"]

            page = desk.get("/direct").text
            assert "Prendre en charge" in page
            ref = page.split('name="conversation" value="', 1)[1].split('"', 1)[0]
            assert desk.submit("/direct/take", {"conversation": ref}).status_code == 303
            assert agent_messages(widget, 1) == [
                {
                    "text": "Un conseiller a rejoint la conversation : Marie.",
                    "agent": "Marie",
                    "notice": "joined",
                }
            ]
            desk.get("/direct")
            desk.submit("/direct/reply", {"conversation": ref, "text": "Bonjour, ici Marie (instance 2)."})
            append_staff_message(prod.rasa_url(0), prod.token, sender_id, "Et ici Marie (instance 1).")
            texts = sorted(m["text"] for m in agent_messages(widget, 2))
            assert texts == ["Bonjour, ici Marie (instance 2).", "Et ici Marie (instance 1)."]

            # the customer's answer is stored, not answered, and reaches the desk
            widget.say("merci, ma ligne 78 12 34 ne marche plus", token)
            deadline = time.monotonic() + 20
            while "ma ligne 78 12 34 ne marche plus" not in desk.get("/direct/live").text:
                assert time.monotonic() < deadline, "the customer's message never reached the desk"
                time.sleep(0.5)

            desk.get("/direct")
            assert desk.submit("/direct/release", {"conversation": ref}).status_code == 303
            left = agent_messages(widget, 1)[0]
            assert left["notice"] == "left" and "de nouveau l'assistant automatique" in left["text"]
            assert "Code PUK" in widget.ask("code PUK ?", token)["text"]
    prod.clock.clear()
    texts = [e.get("text") for e in prod.events(sender_id) if e.get("event") == "user"]
    assert "merci, ma ligne 78 12 34 ne marche plus" in texts
