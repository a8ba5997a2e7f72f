"""Security of the entry points: the input guard (channels/guard.py), the strict REST channel
(channels/rest.py), the socket.io channel behind the guard, and the production start-up
check (deploy/check_env.py).

Unit tests first, then the shared single-process servers (conftest `servers`: credentials.yml,
SQLite tracker store, Rasa's HTTP API not enabled). The same checks against the production
topology (PostgreSQL, two instances, nginx, Messenger) are in tests/test_security_prod.py.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
import uuid
from contextlib import closing
from typing import Any

import pytest
import requests

from actions.answers import EMPTY_TEXT, UNREADABLE_TEXT
from channels.guard import (
    Guard,
    MemoryRateLimiter,
    clean_metadata,
    clean_text,
    metadata_problem,
    parse_rate,
    unavailable_text,
)
from deploy.check_env import problems
from harness.project import ROOT
from harness.socketio_client import Widget

GOOD_TOKEN = "4f0c9d2a8b7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a"
GOOD_SESSION_SECRET = "5e1c0a9f3b7d2e8c4a6f1b9d3e7c5a2f8b4d6e0c1a3f5b7d9e2c4a6f8b0d1e3c"

# Hostile or odd texts that must reach the NLU as plain text and get a French answer.
ODD_TEXTS = {
    "emojis": "😀😀😀🔥",
    "english": "Hello, can you help me with my phone bill?",
    "chinese": "我的手机丢了，怎么办？",
    "arabic": "فقدت هاتفي، ماذا أفعل؟",
    "script": "<script>alert(document.cookie)</script>",
    "img": '<img src=x onerror="alert(1)">',
    "sql": "'; DROP TABLE events; -- ",
    "sql-union": "1 UNION SELECT sender_id, data FROM events --",
    "template": "{{7*7}} ${jndi:ldap://127.0.0.1/a} %s%s%n",
    "path": "../../../../etc/passwd",
}
CONTROL_TEXT = "code\x00 PUK\x07 \u202e?\ud800\ufeff"  # NUL, BEL, bidi override, lone surrogate, BOM


def run(coro):
    return asyncio.run(coro)


# --- unit: cleaning, limits, replies --------------------------------------------------------


def test_clean_text_removes_what_breaks_storage_and_keeps_the_rest():
    assert clean_text(CONTROL_TEXT) == "code PUK ?"
    assert clean_text("ligne 1\r\nligne 2\tfin") == "ligne 1\nligne 2\tfin"
    family = "👨\u200d👩\u200d👧"  # emoji sequence: zero-width joiners kept
    assert clean_text(family) == family
    assert clean_text("e\u0301") == "é"  # NFC
    assert clean_text("\x00\u200b \ufeff") == ""
    cleaned = clean_text("a\ud800b\udfffc")
    cleaned.encode("utf-8")  # no lone surrogate left
    assert cleaned == "abc"


@pytest.mark.parametrize(
    "text, reply",
    [
        (None, UNREADABLE_TEXT),
        (42, UNREADABLE_TEXT),
        (["a"], UNREADABLE_TEXT),
        ("", EMPTY_TEXT),
        ("  \n\t ", EMPTY_TEXT),
        ("\x00\u200b", EMPTY_TEXT),
    ],
)
def test_unreadable_and_empty_messages_get_a_reply(text, reply):
    verdict = run(Guard(1000, MemoryRateLimiter(30, 60)).check("s", text))
    assert verdict.text is None and verdict.reply == reply


def test_maximum_length_and_rate_limit_replies_are_polite_french():
    guard = Guard(20, MemoryRateLimiter(3, 60))
    too_long = run(guard.check("s", "x" * 21))
    assert (
        too_long.reason == "too_long"
        and "20 caractères" in too_long.reply
        and "Pouvez-vous" in too_long.reply
    )
    assert run(guard.check("s", "x" * 20)).text == "x" * 20
    # the too long message counted too (channels/guard.py counts before it cleans)
    assert [run(guard.check("s", "ok")).reason for _ in range(2)] == ["ok", "rate_limited"]
    limited = run(guard.check("s", "ok"))
    assert "patienter" in limited.reply and "Merci" in limited.reply
    assert run(guard.check("other", "ok")).reason == "ok"  # per sender


def test_rate_limit_window_slides():
    limiter = MemoryRateLimiter(2, 0.3)
    assert [run(limiter.hit("a")) == 0 for _ in range(3)] == [True, True, False]
    time.sleep(0.35)
    assert run(limiter.hit("a")) == 0


def test_rate_limit_setting():
    assert parse_rate("30/60") == (30, 60.0)
    assert parse_rate(None) == (30, 60.0)
    for bad in ("30", "a/b", "5/0", "-1/60"):
        with pytest.raises(ValueError):
            parse_rate(bad)


def test_metadata_must_be_small_plain_json():
    assert metadata_problem(None) is None
    assert metadata_problem({"page": "/accueil", "n": [1, 2.5, None, True]}) is None
    assert metadata_problem("text") and metadata_problem([1]) and metadata_problem({"x": "a" * 5000})
    assert metadata_problem({"x": float("nan")})
    assert clean_metadata({"k\x00": "v\u202e"}) == {"k": "v"}


def test_unavailable_reply_carries_the_contacts_from_the_fiche(fiche):
    text = unavailable_text()
    service = fiche.phones["1000"]
    for fact in (
        service.number,
        service.hours_text,
        fiche.email_service_clientele,
        fiche.agency_name,
        fiche.agency_address,
    ):
        assert fact in text


def test_silent_or_failing_turn_gets_the_contacts():
    from rasa.core.channels.channel import UserMessage

    from channels.rest import AnswerCollector

    async def silent(message):  # what Rasa does when the action server is down
        return None

    async def failing(message):
        raise RuntimeError("tracker store unreachable")

    async def answering(message):
        await message.output_channel.send_response(message.sender_id, {"text": "réponse"})

    for handler, expected in (
        (silent, unavailable_text()),
        (failing, unavailable_text()),
        (answering, "réponse"),
    ):
        out = AnswerCollector()  # the REST channel's: one message per answer
        run(Guard().handle(UserMessage("code PUK ?", out, "s1"), handler))
        assert [m["text"] for m in out.messages] == [expected]


# --- unit: production start-up check --------------------------------------------------------


def test_startup_check_refuses_missing_or_default_secrets():
    assert problems({}) == ["RASA_AUTH_TOKEN is not set", "CHAT_CAGOU_SESSION_SECRET is not set"]
    for token in (
        "CHANGE_ME",
        "changeme",
        "secret",
        "a" * 40,
        "your-token-here-" * 3,
        "short-but-random-9f8",
    ):
        assert any("RASA_AUTH_TOKEN" in p for p in problems({"RASA_AUTH_TOKEN": token})), token
    good = {"RASA_AUTH_TOKEN": GOOD_TOKEN, "CHAT_CAGOU_SESSION_SECRET": GOOD_SESSION_SECRET}
    assert problems(good) == []  # loopback services, empty passwords: allowed
    remote = {**good, "DB_HOST": "db.internal", "REDIS_HOST": "cache.internal"}
    assert problems(remote) == [
        "DB_PASSWORD is not set (DB_HOST=db.internal is not a loopback address)",
        "REDIS_PASSWORD is not set (REDIS_HOST=cache.internal is not a loopback address)",
    ]
    assert any(
        "DB_PASSWORD" in p
        for p in problems({**remote, "DB_PASSWORD": "postgres", "REDIS_PASSWORD": "x9!Kq2#pLm"})
    )
    assert problems({**remote, "DB_PASSWORD": "q8#Lm2!vXz7p", "REDIS_PASSWORD": "x9!Kq2#pLm"}) == []


def test_startup_check_messenger_secrets():
    good = {"RASA_AUTH_TOKEN": GOOD_TOKEN, "CHAT_CAGOU_SESSION_SECRET": GOOD_SESSION_SECRET}
    base = {**good, "FB_MESSENGER_REQUIRED": "true"}
    assert sorted(p.split()[0] for p in problems(base)) == ["FB_PAGE_ACCESS_TOKEN", "FB_SECRET", "FB_VERIFY"]
    partial = {**good, "FB_SECRET": "9b1f2e3d4c5b6a7f8e9d"}
    assert sorted(p.split()[0] for p in problems(partial)) == ["FB_PAGE_ACCESS_TOKEN", "FB_VERIFY"]
    full = {
        **base,
        "FB_VERIFY": "v-3c9d8e7f6a5b4c3d",
        "FB_SECRET": "s-9b1f2e3d4c5b6a7f8e9d",
        "FB_PAGE_ACCESS_TOKEN": "EAAB-1f2e3d4c5b6a7f8e9d0c",
    }
    assert problems(full) == []
    assert any("FB_VERIFY" in p for p in problems({**full, "FB_VERIFY": "CHANGE_ME"}))


def test_startup_check_plain_names_and_numbers():
    base = {"RASA_AUTH_TOKEN": GOOD_TOKEN}
    assert problems({**base, "DB_NAME": "x; DROP DATABASE y"})
    assert problems({**base, "REDIS_KEY_PREFIX": "a:b"})
    assert problems({**base, "NGINX_PORT": "80; evil"})
    assert problems({**base, "NGINX_RATE_PER_IP": "50r/s; }"})


def test_run_prod_refuses_to_start_without_its_secrets(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        ["bash", str(ROOT / "deploy" / "run-prod.sh")], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "RASA_AUTH_TOKEN is not set" in result.stderr
    placeholder = subprocess.run(
        [sys.executable, "-m", "deploy.rasa_run", "--model", "x"],
        cwd=ROOT,
        env={**env, "RASA_AUTH_TOKEN": "CHANGE_ME"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert placeholder.returncode == 2 and "placeholder" in placeholder.stderr


# --- REST, single process -------------------------------------------------------------------


def post(servers, body: Any, raw: bool = False, **kwargs) -> requests.Response:
    url = f"{servers.rasa_url}/webhooks/rest/webhook"
    if raw:
        return requests.post(
            url, data=body, headers={"Content-Type": "application/json"}, timeout=60, **kwargs
        )
    return requests.post(url, json=body, timeout=60, **kwargs)


def answer_of(response: requests.Response) -> str:
    assert response.status_code == 200, response.text
    messages = response.json()
    assert messages, "every accepted message gets an answer"
    return "\n".join(m.get("text", "") for m in messages)


BAD_BODIES = {
    "not-json": b"{sender: x}",
    "truncated": b'{"sender": "a", "message": "b',
    "empty-body": b"",
    "array": b'[{"sender": "a", "message": "b"}]',
    "string": b'"bonjour"',
    "null": b"null",
    "number": b"42",
    "sender-missing": b'{"message": "bonjour"}',
    "sender-number": b'{"sender": 12, "message": "bonjour"}',
    "sender-object": b'{"sender": {"id": 1}, "message": "bonjour"}',
    "sender-too-long": json.dumps({"sender": "a" * 300, "message": "bonjour"}).encode(),
    "sender-with-slash": b'{"sender": "../admin", "message": "bonjour"}',
    "sender-with-nul": b'{"sender": "a\\u0000b", "message": "bonjour"}',
    "message-missing": b'{"sender": "a"}',
    "message-null": b'{"sender": "a", "message": null}',
    "message-number": b'{"sender": "a", "message": 3.14}',
    "message-list": b'{"sender": "a", "message": ["bonjour"]}',
    "message-object": b'{"sender": "a", "message": {"text": "bonjour"}}',
    "message-bool": b'{"sender": "a", "message": true}',
    "metadata-string": b'{"sender": "a", "message": "bonjour", "metadata": "x"}',
    "metadata-huge": json.dumps(
        {"sender": "a", "message": "bonjour", "metadata": {"x": "y" * 10000}}
    ).encode(),
    "not-utf8": b'{"sender": "a", "message": "\xff\xfe"}',
    "nan": b'{"sender": "a", "message": "b", "metadata": {"x": NaN}}',
}


@pytest.mark.servers
@pytest.mark.model
@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_rest_malformed_requests_get_400(servers, name):
    response = post(servers, BAD_BODIES[name], raw=True)
    assert response.status_code == 400, (name, response.status_code, response.text[:200])
    assert response.json()["error"].startswith("invalid_")


@pytest.mark.servers
@pytest.mark.model
def test_rest_refusals_are_not_stored(servers):
    for name in ("sender-missing", "message-number"):
        post(servers, BAD_BODIES[name], raw=True)
    assert servers.events("default") == []  # Rasa's RestInput would file them under "default"
    assert servers.events("a") == []


@pytest.mark.servers
@pytest.mark.model
@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "Votre message est vide"),
        ("   \n\t  ", "Votre message est vide"),
        ("\x00\x01\u200b", "Votre message est vide"),
        ("x" * 100_000, "Votre message est un peu long"),
        ("é" * 1001, "Votre message est un peu long"),
    ],
    ids=["empty", "whitespace", "controls-only", "100kB", "1001-chars"],
)
def test_rest_empty_or_too_long_gets_a_polite_reply_and_is_not_stored(servers, text, expected):
    sender = f"sec-{uuid.uuid4().hex[:8]}"
    answer = answer_of(post(servers, {"sender": sender, "message": text}))
    assert answer.startswith(expected)
    assert servers.events(sender) == []


@pytest.mark.servers
@pytest.mark.model
@pytest.mark.parametrize("name", list(ODD_TEXTS))
def test_rest_odd_texts_are_plain_text_for_the_nlu(servers, name):
    sender = f"sec-{name}-{uuid.uuid4().hex[:6]}"
    answer = answer_of(post(servers, {"sender": sender, "message": ODD_TEXTS[name]}))
    # An answer of the assistant's (which one is the NLU's business: tests/test_e2e_rest.py),
    # not a failure. The text is never interpreted: it reaches the NLU and the store as text.
    assert answer != unavailable_text() and answer.strip()
    users = [e for e in servers.events(sender) if e["event"] == "user"]
    assert [u["text"] for u in users] == [ODD_TEXTS[name].strip()]  # stored as typed, as text


@pytest.mark.servers
@pytest.mark.model
def test_rest_control_characters_are_removed_before_storage(servers):
    sender = f"sec-controls-{uuid.uuid4().hex[:6]}"
    answer = answer_of(
        post(servers, {"sender": sender, "message": CONTROL_TEXT, "metadata": {"page\x00": "accueil\u202e"}})
    )
    assert answer.startswith("**Code PUK :")
    with sqlite3.connect(servers.tracker_db) as db:
        raw = [
            data for (data,) in db.execute("SELECT data FROM events WHERE sender_id = ?", ("rest:" + sender,))
        ]
    assert raw and all("\\u0000" not in d and "\\ud800" not in d and "\\u202e" not in d for d in raw)
    user = next(e for e in map(json.loads, raw) if e["event"] == "user")
    assert user["text"] == "code PUK ?" and user["metadata"]["page"] == "accueil"
    assert "page\x00" not in user["metadata"]


@pytest.mark.servers
@pytest.mark.model
def test_rest_input_channel_cannot_be_spoofed(servers):
    sender = f"sec-spoof-{uuid.uuid4().hex[:6]}"
    answer_of(post(servers, {"sender": sender, "message": "bonjour", "input_channel": "facebook"}))
    user = next(e for e in servers.events(sender) if e["event"] == "user")
    assert user["input_channel"] == "rest"


@pytest.mark.servers
@pytest.mark.model
def test_rest_rate_limit_per_sender(servers):
    """Default limit: 30 messages per 60 s per sender (CHAT_CAGOU_RATE_LIMIT)."""
    sender = f"sec-flood-{uuid.uuid4().hex[:6]}"
    answers = [answer_of(post(servers, {"sender": sender, "message": "bonjour"})) for _ in range(31)]
    assert all("Chat Cagou" in a for a in answers[:30])
    assert "patienter" in answers[30] and "Merci" in answers[30]
    assert "Chat Cagou" in answer_of(post(servers, {"sender": sender + "b", "message": "bonjour"}))
    users = [e for e in servers.events(sender) if e["event"] == "user"]
    assert len(users) == 30  # the refused one is not stored


@pytest.mark.servers
@pytest.mark.model
def test_rest_stream_mode_is_guarded_too(servers):
    response = requests.post(
        f"{servers.rasa_url}/webhooks/rest/webhook?stream=true",
        json={"sender": f"sec-stream-{uuid.uuid4().hex[:6]}", "message": ""},
        timeout=60,
    )
    assert response.status_code == 200 and "Votre message est vide" in response.text


@pytest.mark.servers
@pytest.mark.model
def test_http_api_not_enabled_in_the_default_setup(servers):
    for method, path in (
        ("GET", "/conversations/x/tracker"),
        ("GET", "/status"),
        ("POST", "/model/parse"),
        ("PUT", "/model"),
        ("GET", "/domain"),
    ):
        assert requests.request(method, servers.rasa_url + path, timeout=10).status_code in (404, 405), path


@pytest.mark.servers
@pytest.mark.model
def test_server_still_healthy_and_tracker_readable_after_bad_input(servers):
    """A later reader: every stored event is valid JSON, and Rasa reads every tracker back."""
    assert requests.get(servers.rasa_url + "/", timeout=10).status_code == 200
    sender = f"sec-after-{uuid.uuid4().hex[:6]}"
    assert answer_of(post(servers, {"sender": sender, "message": "code PUK ?"})).startswith("**Code PUK :")
    with sqlite3.connect(servers.tracker_db) as db:
        for (data,) in db.execute("SELECT data FROM events WHERE sender_id LIKE 'rest:sec-%'"):
            event = json.loads(data)
            json.dumps(event, ensure_ascii=False).encode("utf-8")  # no lone surrogate


# --- socket.io, single process ----------------------------------------------------------------


@pytest.mark.servers
@pytest.mark.model
def test_socketio_bad_input_gets_a_reply(servers):
    with closing(Widget(servers.rasa_url, origin="http://localhost:8080")) as widget:
        session_id = widget.session()

        def ask(message: Any) -> str:
            return widget.ask(message, session_id).get("text", "")

        assert ask("").startswith("Votre message est vide")
        assert ask("  \n ").startswith("Votre message est vide")
        # (a polling POST over 64 kB is refused by engine.io itself: channels/socketio.py)
        assert ask("x" * 10_000).startswith("Votre message est un peu long")
        for wrong in (12, ["code puk"], {"text": "code puk"}, None, True):
            assert ask(wrong) == UNREADABLE_TEXT, wrong
        # not even an object: ignored (no session to answer in), the socket keeps working
        widget.client.emit("user_uttered", "code PUK ?")
        widget.client.emit("user_uttered", ["code PUK ?"])
        assert ask(CONTROL_TEXT).startswith("**Code PUK :")
        answer = ask(ODD_TEXTS["script"])  # plain text for the NLU, answered like any text
        assert answer.strip() and answer != unavailable_text()
    users = [e["text"] for e in servers.events(session_id) if e["event"] == "user"]
    assert users == ["code PUK ?", ODD_TEXTS["script"]]
