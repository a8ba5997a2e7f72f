"""Security of the production topology (deploy/prod.py, harness/topology.py): Rasa's HTTP API
behind its token and not routed by nginx, the rate limit shared by the instances through
Redis, bad input through nginx on REST and on the Messenger webhook, and what lands in the
PostgreSQL tracker store still readable (by Rasa, and as PostgreSQL jsonb).

Runs after tests/test_reliability.py when both run (that module ends with one instance killed):
it uses nginx and the instances still alive.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import pytest
import requests

from harness.servers import texts
from harness.waiting import wait_until

pytestmark = [pytest.mark.servers, pytest.mark.model, pytest.mark.postgres, pytest.mark.redis]


API = [
    ("GET", "/conversations/{s}/tracker"),
    ("GET", "/conversations/{s}/story"),
    ("GET", "/status"),
    ("GET", "/domain"),
    ("POST", "/model/parse"),
    ("PUT", "/model"),
    ("DELETE", "/model"),
    ("POST", "/conversations/{s}/messages"),
    ("POST", "/conversations/{s}/tracker/events"),
    ("POST", "/model/test/intents"),
]


def test_http_api_refuses_requests_without_the_token(prod):
    sender = f"sec-api-{uuid.uuid4().hex[:6]}"
    prod.say(sender, "bonjour")
    for base in prod.alive_rasa_urls():
        for method, path in API:
            url = base + path.format(s=sender)
            body = {"text": "bonjour"} if method != "GET" else None
            assert requests.request(method, url, json=body, timeout=10).status_code == 401, (method, url)
            wrong = requests.request(method, url, json=body, params={"token": "x" * 64}, timeout=10)
            assert wrong.status_code == 401, (method, url)
        tracker = requests.get(
            f"{base}/conversations/rest:{sender}/tracker", params={"token": prod.token}, timeout=10
        )
        assert tracker.status_code == 200 and tracker.json()["sender_id"] == "rest:" + sender


def test_nginx_routes_the_channels_only(prod):
    sender = f"sec-route-{uuid.uuid4().hex[:6]}"
    for method, path in API + [("GET", "/"), ("GET", "/version")]:
        response = requests.request(
            method, prod.url + path.format(s=sender), params={"token": prod.token}, timeout=10
        )
        assert response.status_code == 404, (method, path)
        assert "nginx/" not in response.text and "nginx/" not in response.headers.get("Server", "")
    assert requests.get(prod.url + "/healthz", timeout=10).text == "ok\n"
    assert requests.get(prod.url + "/webhooks/rest/", timeout=10).json() == {"status": "ok"}


def test_rate_limit_is_shared_by_the_instances(prod):
    """30 messages per 60 s per sender, counted in Redis: alternating instances gives no more."""
    sender = f"sec-flood-{uuid.uuid4().hex[:6]}"
    bases = prod.alive_rasa_urls() * 2
    answers = [texts(prod.say(sender, "bonjour", base=bases[i % len(bases)])) for i in range(30)]
    assert all("Chat Cagou" in a for a in answers)
    for base in prod.alive_rasa_urls() + [prod.url]:
        refused = texts(prod.say(sender, "bonjour", base=base))
        assert "patienter" in refused, refused
    assert len(prod.user_texts(sender)) == 30


BAD_BODIES: dict[str, bytes] = {
    "not-json": b"{nope",
    "array": b"[]",
    "sender-number": b'{"sender": 1, "message": "x"}',
    "message-list": b'{"sender": "a", "message": ["x"]}',
    "metadata-string": b'{"sender": "a", "message": "x", "metadata": "m"}',
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_rest_bad_requests_through_nginx_get_400(prod, name):
    response = requests.post(
        prod.url + "/webhooks/rest/webhook",
        data=BAD_BODIES[name],
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400 and response.json()["error"].startswith("invalid_")


def test_rest_body_over_nginx_limit_gets_413(prod):
    body = json.dumps({"sender": "a", "message": "x" * 400_000})
    response = requests.post(
        prod.url + "/webhooks/rest/webhook",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413


ODD = [
    "",
    "   ",
    "x" * 100_000,
    "code\x00 PUK\u202e ?\ud800",
    "😀😀😀",
    "Where is my SIM card?",
    "我的手机丢了",
    "<script>alert(1)</script>",
    "'); DELETE FROM events; --",
    "{{7*7}} ${jndi:ldap://127.0.0.1/a}",
]


def test_rest_odd_input_through_nginx_answered_and_stored_readable(prod):
    sender = f"sec-odd-{uuid.uuid4().hex[:6]}"
    for text in ODD:
        response = requests.post(
            prod.url + "/webhooks/rest/webhook", json={"sender": sender, "message": text}, timeout=60
        )
        assert response.status_code == 200, (text[:20], response.status_code)
        assert response.json() and all(m.get("text") for m in response.json()), text[:20]
    assert_tracker_readable(prod, sender)


def assert_tracker_readable(prod, sender: str, channel: str = "rest") -> None:
    """What a later reader needs: rows that PostgreSQL itself parses as jsonb (no \\u0000, no
    lone surrogate), and Rasa's own API giving the tracker back. The tracker's sender id is
    the channel's prefix and `sender` (channels/rest.py, channels/messenger.py)."""
    stored = f"{channel}:{sender}"
    with prod.database.connect() as db, db.cursor() as cur:
        cur.execute(
            "SELECT count(*), count((data::jsonb) ->> 'event') FROM events WHERE sender_id = %s", (stored,)
        )
        total, parsed = cur.fetchone()
    assert total > 0 and total == parsed
    base = prod.alive_rasa_urls()[0]
    tracker = requests.get(f"{base}/conversations/{stored}/tracker", params={"token": prod.token}, timeout=30)
    assert tracker.status_code == 200
    assert [e for e in tracker.json()["events"] if e["event"] == "user"]


# --- Messenger webhook ------------------------------------------------------------------------


def signed_post(prod, body: bytes) -> requests.Response:
    signature = "sha256=" + hmac.new(prod.fb["FB_SECRET"].encode(), body, hashlib.sha256).hexdigest()
    return requests.post(
        prod.url + "/webhooks/facebook/webhook",
        data=body,
        timeout=30,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature},
    )


def message_event(sender: str, message: Any) -> dict:
    return {
        "sender": {"id": sender},
        "recipient": {"id": "page"},
        "timestamp": int(time.time() * 1000),
        "message": message,
    }


def page(*events: dict) -> bytes:
    return json.dumps(
        {"object": "page", "entry": [{"id": "page", "time": 1, "messaging": list(events)}]}
    ).encode()


MALFORMED = {
    "invalid-json": b"{not json",
    "array": b"[1, 2]",
    "entry-string": b'{"object": "page", "entry": "x"}',
    "entry-number": b'{"object": "page", "entry": 5}',
    "messaging-object": b'{"object": "page", "entry": [{"messaging": {"a": 1}}]}',
    "sender-string": b'{"object": "page", "entry": [{"messaging": [{"sender": "abc", "message": {"mid": "m", "text": "x"}}]}]}',
    "message-list": b'{"object": "page", "entry": [{"messaging": [{"sender": {"id": "1"}, "message": ["x"]}]}]}',
    "attachments-string": b'{"object": "page", "entry": [{"messaging": [{"sender": {"id": "1"}, "message": {"mid": "m2", "attachments": "x"}}]}]}',
    "quick-reply-string": b'{"object": "page", "entry": [{"messaging": [{"sender": {"id": "1"}, "message": {"mid": "m3", "quick_reply": "x", "text": "y"}}]}]}',
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_messenger_malformed_payloads_get_a_4xx_never_a_500(prod, name):
    response = signed_post(prod, MALFORMED[name])
    assert 400 <= response.status_code < 500 or response.text == "EVENT_RECEIVED", (
        name,
        response.status_code,
    )
    assert response.status_code != 500


def test_messenger_unsigned_or_forged_refused(prod):
    body = page(message_event("77001", {"mid": f"m-{uuid.uuid4().hex}", "text": "code PUK ?"}))
    assert requests.post(prod.url + "/webhooks/facebook/webhook", data=body, timeout=30).status_code == 403
    forged = requests.post(
        prod.url + "/webhooks/facebook/webhook",
        data=body,
        timeout=30,
        headers={"X-Hub-Signature-256": "sha256=" + "0" * 64},
    )
    assert forged.status_code == 403


def test_messenger_odd_messages_get_a_reply(prod):
    """Signed messages with odd content, one at a time: each is answered through the Send API."""
    sender = str(9_000_000_000 + uuid.uuid4().int % 1_000_000_000)
    cases = [
        ("x" * 100_000, "Votre message est un peu long"),
        ("\x00\u200b\u202e", "Votre message est vide"),
        ("code\x00 PUK\u202e ?", "Code PUK"),
        ("😀😀😀", None),
        ("<script>alert(1)</script>", None),
        ("'; DROP TABLE events; --", None),
        ({"nested": "object"}, None),
    ]
    for text, expected in cases:
        before = len(prod.graph.texts(sender))
        response = signed_post(
            prod, page(message_event(sender, {"mid": f"m-{uuid.uuid4().hex}", "text": text}))
        )
        assert response.status_code == 200 and response.text == "EVENT_RECEIVED"
        wait_until(lambda n=before: len(prod.graph.texts(sender)) > n, timeout=60, interval=0.2)
        time.sleep(0.5)  # the other parts of a long answer
        replies = prod.graph.texts(sender)[before:]
        assert replies, f"no answer to {str(text)[:20]!r}"
        if expected:
            assert replies[0].startswith(expected), replies[0]
    assert_tracker_readable(prod, sender, "fb")


# --- flooding: one address with many sender ids, a customer from another address ---------


class _FromAddress(requests.adapters.HTTPAdapter):
    """Connections from a given local address (127.0.0.2: another client, as nginx sees it)."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def test_flood_from_one_address_is_throttled_while_another_address_keeps_its_pace(prod):
    """The issue's "1,000 session ids x 30 messages" from one address, scaled down to what runs
    in a few seconds: many REST sender ids and many widget handshakes from 127.0.0.1, with
    nginx's production limits (deploy/prod.py DEFAULTS). The flood is throttled (429), and a
    customer from 127.0.0.2 keeps a p95 under 500 ms."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Event

    from deploy.prod import DEFAULTS
    from harness.topology import TEST_NGINX_LIMITS

    # Measured on the whole topology: with one instance down, the other carries it all.
    assert all(prod.topology.rasa_alive(i) for i in range(len(prod.topology.rasa))), "an instance is down"
    run = uuid.uuid4().hex[:6]
    stop = Event()
    statuses: list[int] = []

    def flood_rest(worker: int) -> None:
        with requests.Session() as session:
            i = 0
            while not stop.is_set():
                sender = f"flood-{run}-{worker}-{i % 50}"  # many sender ids, from one address
                try:
                    reply = session.post(
                        prod.url + "/webhooks/rest/webhook",
                        json={"sender": sender, "message": "code PUK ?"},
                        timeout=30,
                    )
                    statuses.append(reply.status_code)
                except requests.RequestException:
                    statuses.append(0)
                i += 1

    def flood_socket() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                opened = session.get(prod.url + "/socket.io/", params={"EIO": "4", "transport": "polling"})
                statuses.append(opened.status_code)

    customer = requests.Session()
    customer.mount("http://", _FromAddress("127.0.0.2"))
    me = f"customer-{run}"

    def ask(text: str) -> float:
        started = time.monotonic()
        reply = customer.post(
            prod.url + "/webhooks/rest/webhook", json={"sender": me, "message": text}, timeout=30
        )
        assert reply.status_code == 200, reply.status_code
        assert texts(reply.json()), reply.json()
        return time.monotonic() - started

    limits = {name: DEFAULTS[name] for name in TEST_NGINX_LIMITS}
    with prod.nginx_settings(limits), ThreadPoolExecutor(9) as pool:
        ask("bonjour")  # the conversation's start (session start) is not what is measured
        flooders = [pool.submit(flood_rest, w) for w in range(8)] + [pool.submit(flood_socket)]
        time.sleep(2)  # the flood's burst is through
        try:
            questions = ["code PUK ?", "horaires de l'agence ?", "et par mail ?", "numéro du 1000 ?"] * 5
            latencies = sorted(ask(q) for q in questions)
        finally:
            stop.set()
            for future in flooders:
                future.result()
    p95 = latencies[int(0.95 * len(latencies)) - 1]
    refused, accepted = statuses.count(429), statuses.count(200)
    assert refused > 10 * accepted, (refused, accepted)
    assert 0 not in statuses and not [s for s in statuses if s >= 500], sorted(set(statuses))
    assert p95 < 0.5, f"p95 {p95 * 1000:.0f} ms with {refused} flood requests refused, {accepted} let through"
