"""The console's live desk (/direct) in-process, on a scratch SQLite tracker store, against a
stand-in for Rasa's HTTP API over real HTTP (it records what the desk appends and writes the
events into the store as Rasa would). The whole path with the real Rasa, the widget and a
browser is tests/test_handoff_browser.py."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from rasa.shared.core.events import Event, SlotSet
from starlette.testclient import TestClient

from console import desk
from console.db import handoffs
from tests.test_console_app import (  # fixtures too
    ADMIN,
    BASE_URL,
    PHONE,
    VIEWER,
    console_app,
    csrf_of,
    db_path,
    engine,
    login,
    store,
    template_db,
    user,
)

WEB = "web:0123456789abcdef0123456789abcdef"
TOKEN = "jeton-de-test-rasa"


class FakeRasaAPI:
    """POST /conversations/<id>/tracker/events: recorded, then stored like Rasa's tracker store."""

    def __init__(self, engine: sa.engine.Engine, status: int = 200) -> None:
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                sender = parts.path.split("/")[2]  # as Rasa's route reads it: not decoded
                fake.requests.append({"sender": sender, "query": parse_qs(parts.query), "events": body})
                if status == 200:
                    store(
                        engine, sender, [Event.from_parameters({**e, "timestamp": time.time()}) for e in body]
                    )
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def rasa(engine) -> Iterator[FakeRasaAPI]:
    fake = FakeRasaAPI(engine)
    yield fake
    fake.close()


def make_client(db_path, rasa_url: str | None) -> Iterator[TestClient]:
    app = console_app(db_path, rasa_url=rasa_url, rasa_token=TOKEN)
    with TestClient(app, base_url=BASE_URL, follow_redirects=False) as client:
        yield client
    app.state.engine.dispose()


@pytest.fixture
def staff(db_path, rasa) -> Iterator[TestClient]:
    yield from make_client(db_path, rasa.url)


def waiting(engine, sender_id: str = WEB, ago: float = 30) -> None:
    now = time.time()
    store(
        engine,
        sender_id,
        [
            user(
                f"je veux parler à quelqu'un, rappelez-moi au {PHONE}",
                "demander_humain",
                0.97,
                "socketio",
                now - ago - 1,
            ),
            SlotSet("handoff", "waiting", timestamp=now - ago),
        ],
    )


def post(client: TestClient, path: str, json_reply: bool = False, **fields: str):
    token = csrf_of(client.get("/direct").text)
    headers = {"Accept": "application/json"} if json_reply else {}
    return client.post(path, data={"csrf_token": token, **fields}, headers=headers)


def ref_in(page: str) -> str:
    marker = 'name="conversation" value="'
    assert marker in page, "no conversation on the desk"
    return page.split(marker, 1)[1].split('"', 1)[0]


def test_presence_is_what_the_assistant_asks(staff, engine):
    assert staff.get("/desk/available").json() == {"available": False}  # public, nobody present
    assert login(staff, ADMIN).status_code == 303
    assert "Vous êtes absent(e)." in staff.get("/direct").text
    assert post(staff, "/direct/presence", present="1").status_code == 303
    assert staff.get("/desk/available").json() == {"available": True}
    assert "Vous êtes présent(e)" in staff.get("/direct").text
    # a closed tab: no poll for longer than the TTL, nobody present any more
    assert not desk.available(engine, time.time() + desk.PRESENCE_TTL + 1)
    post(staff, "/direct/presence", present="0")
    assert staff.get("/desk/available").json() == {"available": False}


def test_queue_take_reply_release(staff, rasa, engine, db_path):
    waiting(engine)
    login(staff, ADMIN)
    page = staff.get("/direct").text
    assert "Prendre en charge" in page and "attend depuis 30 s" in page
    assert PHONE not in page  # masked in the queue
    ref = ref_in(page)
    assert WEB not in page and ref in page  # the sender id never shows, only its reference
    live = staff.get("/direct/live").json()
    assert "Prendre en charge" in live["parts"]["queue"] and live["mine"] == []

    taken = post(staff, "/direct/take", conversation=ref)
    assert taken.status_code == 303
    (request,) = rasa.requests
    assert request["sender"] == WEB
    assert request["query"] == {
        "output_channel": ["latest"],
        "execute_side_effects": ["true"],
        "token": [TOKEN],
    }
    slot, joined = request["events"]
    assert slot == {"event": "slot", "name": "handoff", "value": "human"}
    assert joined["text"] == "Un conseiller a rejoint la conversation : Alice."
    assert joined["data"]["custom"] == {"agent": "Alice", "notice": "joined"}
    assert joined["metadata"] == {"agent": "alice"}

    page = staff.get("/direct").text
    assert "Personne n'attend." in page and "Votre réponse au client" in page
    assert PHONE in page  # the staff member handling it reads the customer's number
    live = staff.get("/direct/live").json()
    assert live["mine"] == [ref] and "Conseiller (Alice)" in live["parts"][ref]

    sent = post(
        staff, "/direct/reply", json_reply=True, conversation=ref, text="Bonjour, je regarde votre ligne."
    )
    assert sent.json() == {"ok": True, "error": None}
    assert rasa.requests[-1]["events"] == [
        {
            "event": "bot",
            "text": "Bonjour, je regarde votre ligne.",
            "data": {"custom": {"agent": "Alice"}},
            "metadata": {"agent": "alice"},
        }
    ]
    # the customer's answer, stored by Rasa while a person answers, reaches the desk
    store(engine, WEB, [user("merci, c'est le 06 du mois", "thanks", 0.6, "socketio", time.time())])
    assert "c&#39;est le 06 du mois" in staff.get("/direct/live").json()["parts"][ref]

    # another staff member can neither take nor answer it
    with TestClient(console_app(db_path, rasa_url=rasa.url, rasa_token=TOKEN), base_url=BASE_URL) as other:
        login(other, VIEWER)
        refused = post(other, "/direct/reply", json_reply=True, conversation=ref, text="moi aussi")
        assert refused.status_code == 409 and "prise en charge par alice" in refused.json()["error"]
        again = post(other, "/direct/take", json_reply=True, conversation=ref)
        assert again.status_code == 409

    released = post(staff, "/direct/release", conversation=ref)
    assert released.status_code == 303
    left, slot = rasa.requests[-1]["events"]
    assert "C'est de nouveau l'assistant automatique" in left["text"]
    assert slot == {"event": "slot", "name": "handoff", "value": None}
    with engine.connect() as conn:
        row = conn.execute(sa.select(handoffs)).one()
    assert row.agent == "alice" and row.closed_by == "agent" and row.channel == "web"
    stats = desk.handoff_stats(engine, time.time() - 3600, time.time() + 1)
    assert stats["asked"] == 1 and stats["taken"] == 1 and stats["closed_by_agent"] == 1
    assert 25 <= stats["mean_wait"] <= 120


def test_a_customer_back_with_the_assistant_leaves_the_desk(staff, rasa, engine):
    waiting(engine)
    login(staff, ADMIN)
    ref = ref_in(staff.get("/direct").text)
    post(staff, "/direct/take", conversation=ref)
    store(engine, WEB, [SlotSet("handoff", None, timestamp=time.time())])  # "Revenir à l'assistant"
    assert "Aucune conversation en cours." in staff.get("/direct").text
    with engine.connect() as conn:
        assert conn.execute(sa.select(handoffs.c.closed_by)).scalar_one() == "customer"
    refused = post(staff, "/direct/reply", json_reply=True, conversation=ref, text="allô ?")
    assert refused.status_code == 409 and "revenu à l'assistant" in refused.json()["error"]


def test_a_stale_wait_is_not_in_the_queue(staff, engine):
    from actions.handoff import MAX_WAIT_SECONDS

    waiting(engine, ago=MAX_WAIT_SECONDS + 60)
    login(staff, ADMIN)
    assert "Personne n'attend." in staff.get("/direct").text


def test_rasa_unreachable_takes_nothing(db_path, engine):
    waiting(engine)
    for client in make_client(db_path, "http://127.0.0.1:9"):
        login(client, ADMIN)
        ref = ref_in(client.get("/direct").text)
        refused = post(client, "/direct/take", json_reply=True, conversation=ref)
        assert refused.status_code == 409 and "Rasa ne répond pas" in refused.json()["error"]
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(handoffs)).scalar_one() == 0
        assert "Prendre en charge" in client.get("/direct").text  # still waiting


def test_desk_without_rasa_says_so(db_path):
    for client in make_client(db_path, None):
        login(client, VIEWER)
        assert "n'est pas relié à Rasa" in client.get("/direct").text


def test_desk_forms_need_their_csrf_token(staff, engine):
    waiting(engine)
    login(staff, ADMIN)
    ref = ref_in(staff.get("/direct").text)
    refused = staff.post("/direct/take", data={"conversation": ref})
    assert refused.status_code == 403
    assert "Prendre en charge" in staff.get("/direct").text


# --- callback requests (/rappels) --------------------------------------------------------------

REQUEST = {
    "nom": "Jean Dupont",
    "contact": PHONE,
    "sujet": "Ma ligne est coupée",
    "demande_le": "2026-11-28T10:00:00+11:00",
}


def callback_request(engine, sender_id: str = WEB, ago: float = 60) -> None:
    now = time.time()
    store(
        engine,
        sender_id,
        [
            user("je veux parler à quelqu'un", "demander_humain", 0.97, "socketio", now - ago - 5),
            SlotSet("rappel_demande", REQUEST, timestamp=now - ago),
        ],
    )


def test_callback_requests_listed_marked_done_and_back(staff, engine):
    callback_request(engine)
    login(staff, VIEWER)
    page = staff.get("/rappels").text
    assert (
        "Jean Dupont" in page and PHONE in page and "Ma ligne est coupée" in page
    )  # to call back: not masked
    assert "à rappeler" in page and WEB not in page
    event_id = page.split('name="event_id" value="', 1)[1].split('"', 1)[0]
    token = csrf_of(page)
    done = staff.post("/rappels", data={"csrf_token": token, "event_id": event_id, "done": "1"})
    assert done.status_code == 303
    assert "Aucune demande à rappeler." in staff.get("/rappels").text
    page = staff.get("/rappels", params={"statut": "fait"}).text
    assert "fait par victor le" in page and "Jean Dupont" in page
    again = staff.post("/rappels", data={"csrf_token": csrf_of(page), "event_id": event_id, "done": "0"})
    assert again.status_code == 303 and "Jean Dupont" in staff.get("/rappels").text
    for wrong in ("abc", "0", "999999", str(2**70)):
        refused = staff.post("/rappels", data={"csrf_token": token, "event_id": wrong, "done": "1"})
        assert refused.status_code == 400


def test_callback_requests_go_with_erasure_and_retention(staff, engine):
    from console import callbacks, queries

    callback_request(engine, WEB)
    other = "fb:4455667788"
    callback_request(engine, other, ago=400 * 86400)
    for request in callbacks.requests(engine):
        assert callbacks.mark(engine, request["event_id"], "victor", True)
    queries.erase_sender(engine, WEB)
    assert [r["sender_id"] for r in callbacks.requests(engine, "done")] == [other]
    queries.purge(engine, queries.cutoff_for_days(365))
    assert callbacks.requests(engine, "done") == []
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM console_callbacks")).scalar_one() == 0


def test_insights_count_the_live_desk(staff, rasa, engine):
    waiting(engine, ago=90)
    login(staff, ADMIN)
    ref = ref_in(staff.get("/direct").text)
    post(staff, "/direct/take", conversation=ref)
    post(staff, "/direct/release", conversation=ref)
    page = staff.get("/insights", params={"days": "7"}).text
    assert "<strong>1</strong><span>conversations mises en file d'attente</span>" in page
    assert "<strong>1</strong><span>prises en charge</span>" in page
    assert "<strong>1</strong><span>conversations terminées par un conseiller</span>" in page
    assert re.search(r"<strong>1 min</strong><span>attente moyenne", page)
