"""Messenger channel (channels/messenger.py).

Unit tests of the pure parts (signatures, message shaping, dedupe), then the real `rasa run`
with credentials.yml and FB_* variables, its Graph API base URL pointed at a stub HTTP
server (harness/graph_stub.py): what would have been sent to Facebook is what the stub received.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import closing

import pytest
import requests

from channels.dedupe import SqliteSeen
from channels.messenger import (
    MAX_QUICK_REPLIES,
    MAX_TEMPLATE_TEXT,
    MAX_TEXT,
    MAX_TITLE,
    MessengerConfigError,
    MessengerInput,
    messages_for,
    signature_problem,
    split_text,
    text_length,
    user_events,
)
from harness.graph_stub import GraphStub, message_text
from harness.project import MODEL, RASA, ROOT
from harness.servers import Servers

SECRET = "app-secret-for-tests"
VERIFY = "verify-token-for-tests"
TOKEN = "page-token-for-tests"
LONG_REPLY = "\n".join(f"• Ligne {i} : " + " ".join(["réponse détaillée"] * 6) for i in range(40))


def sign(body: bytes, secret: str = SECRET, algorithm: str = "sha256") -> str:
    return f"{algorithm}=" + hmac.new(secret.encode(), body, algorithm).hexdigest()


# --- unit tests -------------------------------------------------------------------------


class TestSignature:
    body = b'{"object":"page"}'

    def test_sha256_and_sha1_accepted(self):
        assert signature_problem(SECRET, self.body, {"X-Hub-Signature-256": sign(self.body)}) is None
        assert (
            signature_problem(SECRET, self.body, {"X-Hub-Signature": sign(self.body, algorithm="sha1")})
            is None
        )

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"X-Hub-Signature-256": "sha256=" + "0" * 64},
            {"X-Hub-Signature-256": sign(b'{"object":"page"}', secret="other")},
            {"X-Hub-Signature-256": "sha256=é"},
            {"X-Hub-Signature-256": sign(b'{"object":"page"}', algorithm="sha1")},  # wrong algorithm
            {"X-Hub-Signature": sign(b'{"object":"page"}', algorithm="md5")},  # wrong algorithm
            {"X-Hub-Signature": sign(b'{"object":"page"}')},  # sha256 in the sha1 header
            # a forged sha256 is not rescued by a valid sha1
            {
                "X-Hub-Signature-256": "sha256=" + "0" * 64,
                "X-Hub-Signature": sign(b'{"object":"page"}', algorithm="sha1"),
            },
        ],
    )
    def test_refused(self, headers):
        assert signature_problem(SECRET, self.body, headers) is not None


class TestShaping:
    def test_long_text_split_at_line_boundaries(self):
        parts = split_text(LONG_REPLY)
        assert len(parts) > 1
        assert all(text_length(p) <= MAX_TEXT for p in parts)
        assert "\n".join(parts) == LONG_REPLY  # cut between lines: nothing lost, no line cut
        assert all(p.startswith("• ") for p in parts)

    def test_text_without_line_breaks_cut_at_spaces(self):
        text = "mot " * 1200
        parts = split_text(text)
        assert all(text_length(p) <= MAX_TEXT for p in parts)
        assert " ".join(parts).split() == text.split()

    def test_emoji_count_double(self):
        parts = split_text("😀" * 1500)
        assert [text_length(p) for p in parts] == [2000, 1000]

    def test_button_template_up_to_three_buttons(self):
        buttons = [
            {"title": "Par mail / internet", "payload": '/preciser_canal{"canal":"courrier"}'},
            {"title": "Un titre beaucoup trop long pour Messenger", "payload": "/x"},
        ]
        messages = messages_for(LONG_REPLY[:900], buttons)
        template = messages[-1]["attachment"]["payload"]
        assert template["template_type"] == "button"
        assert text_length(template["text"]) <= MAX_TEMPLATE_TEXT
        assert [b["type"] for b in template["buttons"]] == ["postback", "postback"]
        assert template["buttons"][0]["payload"] == '/preciser_canal{"canal":"courrier"}'
        assert all(len(b["title"]) <= MAX_TITLE for b in template["buttons"])
        assert template["buttons"][1]["title"].endswith("…")
        assert "\n".join([m["text"] for m in messages[:-1]] + [template["text"]]) == LONG_REPLY[:900].strip()

    def test_the_markdown_of_an_answer_becomes_plain_lines(self):
        """Messenger renders no Markdown: no "**", no "[text](url)", "• " bullets, no blank lines."""
        answer = (
            "**Non, pas par téléphone : en agence.**\n\n- En agence : [1000@opt.nc](mailto:1000@opt.nc)"
            "\n- Au [1000](tel:1000)\n\nSource : fiche."
        )
        for buttons in (None, [{"title": "En agence", "payload": "/x"}]):
            messages = messages_for(answer, buttons)
            shown = messages[-1].get("text") or messages[-1]["attachment"]["payload"]["text"]
            assert (
                shown
                == "Non, pas par téléphone : en agence.\n• En agence : 1000@opt.nc\n• Au 1000\nSource : fiche."
            )

    def test_quick_replies_beyond_three_buttons(self):
        buttons = [{"title": f"Choix numéro {i} un peu long", "payload": f"/p{i}"} for i in range(12)]
        messages = messages_for(LONG_REPLY, buttons)
        assert all("attachment" not in m and text_length(m["text"]) <= MAX_TEXT for m in messages)
        replies = messages[-1]["quick_replies"]
        assert len(replies) == MAX_QUICK_REPLIES
        assert all(r["content_type"] == "text" and len(r["title"]) <= MAX_TITLE for r in replies)
        assert [r["payload"] for r in replies] == [f"/p{i}" for i in range(MAX_QUICK_REPLIES)]
        assert all("quick_replies" not in m for m in messages[:-1])


def test_events_of_a_batch_in_order_echoes_and_receipts_ignored():
    payload = {
        "object": "page",
        "entry": [
            {
                "messaging": [
                    {"sender": {"id": "1"}, "timestamp": 1, "message": {"mid": "m.1", "text": "bonjour"}},
                    {
                        "sender": {"id": "1"},
                        "timestamp": 2,
                        "message": {"mid": "m.2", "text": "x", "quick_reply": {"payload": "/code_puk"}},
                    },
                    {
                        "sender": {"id": "page"},
                        "timestamp": 3,
                        "message": {"mid": "m.3", "text": "écho", "is_echo": True},
                    },
                    {"sender": {"id": "1"}, "timestamp": 4, "delivery": {"mids": ["m.1"]}},
                ]
            },
            {
                "messaging": [
                    {
                        "sender": {"id": "2"},
                        "timestamp": 5,
                        "postback": {"mid": "m.5", "title": "En agence", "payload": "/resiliation"},
                    }
                ]
            },
        ],
    }
    assert user_events(payload) == [
        ("mid:m.1", "1", "bonjour"),
        ("mid:m.2", "1", "/code_puk"),
        ("mid:m.5", "2", "/resiliation"),
    ]


def test_seen_messages_survive_a_restart(tmp_path):
    path = str(tmp_path / "mids.db")
    first = SqliteSeen(path)
    assert first.claim_now("mid:a")
    first.confirm_now("mid:a")
    again = SqliteSeen(path)  # a new process would open the same file
    assert not again.claim_now("mid:a")
    assert again.claim_now("mid:b")


def test_missing_secrets(monkeypatch):
    for name in ("FB_VERIFY", "FB_SECRET", "FB_PAGE_ACCESS_TOKEN", "FB_MESSENGER_REQUIRED"):
        monkeypatch.delenv(name, raising=False)
    assert MessengerInput.from_credentials(None).enabled is False  # development: webhook off
    monkeypatch.setenv("FB_MESSENGER_REQUIRED", "true")
    with pytest.raises(MessengerConfigError, match="FB_VERIFY, FB_SECRET, FB_PAGE_ACCESS_TOKEN"):
        MessengerInput.from_credentials(None)
    monkeypatch.delenv("FB_MESSENGER_REQUIRED")
    monkeypatch.setenv("FB_VERIFY", "v")
    with pytest.raises(MessengerConfigError, match="FB_SECRET, FB_PAGE_ACCESS_TOKEN"):
        MessengerInput.from_credentials(None)


def reply_containing(needle: str) -> Callable[[list[dict]], bool]:
    return lambda messages: any(needle in message_text(m) for m in messages)


def assert_within_limits(messages: list[dict]) -> None:
    for message in messages:
        if "attachment" in message:
            payload = message["attachment"]["payload"]
            assert payload["template_type"] == "button"
            assert 1 <= len(payload["buttons"]) <= 3
            assert text_length(payload["text"]) <= MAX_TEMPLATE_TEXT
            assert all(len(b["title"]) <= MAX_TITLE for b in payload["buttons"])
        else:
            assert 0 < text_length(message["text"]) <= MAX_TEXT
            replies = message.get("quick_replies", [])
            assert len(replies) <= MAX_QUICK_REPLIES
            assert all(len(r["title"]) <= MAX_TITLE for r in replies)


# --- against the running server -----------------------------------------------------------


@pytest.fixture(scope="module")
def messenger(tmp_path_factory):
    stub = GraphStub()
    workdir = tmp_path_factory.mktemp("messenger")
    servers = Servers(
        workdir,
        credentials=ROOT / "credentials.yml",
        extra_env={
            "FB_VERIFY": VERIFY,
            "FB_SECRET": SECRET,
            "FB_PAGE_ACCESS_TOKEN": TOKEN,
            "FB_GRAPH_API_URL": stub.url,
            "FB_DEDUPE_DB": str(workdir / "mids.db"),
        },
    )
    with closing(stub):
        servers.start()
        try:
            yield servers, stub
        finally:
            servers.stop()


class Facebook:
    """What Facebook's servers do: POST signed events to the webhook."""

    def __init__(self, servers: Servers) -> None:
        self.url = f"{servers.rasa_url}/webhooks/facebook/webhook"

    @staticmethod
    def body(*events: dict) -> bytes:
        return json.dumps(
            {
                "object": "page",
                "entry": [{"id": "page-1", "time": int(time.time() * 1000), "messaging": list(events)}],
            }
        ).encode()

    @staticmethod
    def event(sender: str, message: dict | None = None, postback: dict | None = None) -> dict:
        event = {
            "sender": {"id": sender},
            "recipient": {"id": "page-1"},
            "timestamp": int(time.time() * 1000),
        }
        if message is not None:
            event["message"] = {"mid": "m_" + uuid.uuid4().hex, **message}
        if postback is not None:
            event["postback"] = {"mid": "m_" + uuid.uuid4().hex, **postback}
        return event

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> requests.Response:
        if headers is None:  # as Meta sends today: both headers
            headers = {"X-Hub-Signature-256": sign(body), "X-Hub-Signature": sign(body, algorithm="sha1")}
        return requests.post(
            self.url, data=body, headers={"Content-Type": "application/json", **headers}, timeout=10
        )

    def send(self, *events: dict) -> requests.Response:
        response = self.post(self.body(*events))
        assert response.status_code == 200, response.text
        return response


def tracker_becomes(servers: Servers, sender: str, expected: list[str]) -> None:
    """Rasa saves the tracker after sending the replies: wait for it."""
    assert servers.wait_user_texts(sender, expected) == expected


def psid() -> str:
    return str(uuid.uuid4().int)[:16]


@pytest.mark.servers
@pytest.mark.model
def test_verification_handshake(messenger):
    servers, _ = messenger
    url = f"{servers.rasa_url}/webhooks/facebook/webhook"
    ok = requests.get(
        url, params={"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}
    )
    assert (ok.status_code, ok.text) == (200, "1158201444")
    wrong = requests.get(
        url, params={"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "42"}
    )
    assert wrong.status_code == 403 and "42" not in wrong.text


@pytest.mark.servers
@pytest.mark.model
def test_signed_text_message_answered_after_a_quick_ack(messenger):
    servers, stub = messenger
    user = psid()
    stub.delay = 2.0  # a Graph call takes 2 s: a webhook that waited for the reply would take more
    try:
        started = time.monotonic()
        Facebook(servers).send(Facebook.event(user, message={"text": "code PUK ?"}))
        assert time.monotonic() - started < stub.delay
        assert stub.messages(user) == []  # acknowledged before the reply was sent
    finally:
        stub.delay = 0.0
    messages = stub.wait_for(user, reply_containing("Code PUK"))
    assert_within_limits(messages)
    call = next(c for c in stub.calls if c["body"]["recipient"]["id"] == user and "message" in c["body"])
    assert call["path"] == "/v21.0/me/messages"
    assert call["query"]["access_token"] == [TOKEN]
    assert call["query"]["appsecret_proof"] == [
        hmac.new(SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
    ]
    assert call["body"]["messaging_type"] == "RESPONSE"
    actions = [
        c["body"]["sender_action"]
        for c in stub.calls
        if c["body"]["recipient"]["id"] == user and "sender_action" in c["body"]
    ]
    assert actions[:2] == ["mark_seen", "typing_on"]


@pytest.mark.servers
@pytest.mark.model
def test_button_template_then_postback(messenger):
    servers, stub = messenger
    user, facebook = psid(), Facebook(servers)
    facebook.send(facebook.event(user, message={"text": "je veux résilier"}))
    messages = stub.wait_for(user, lambda ms: any("attachment" in m for m in ms))
    assert_within_limits(messages)
    template = messages[-1]["attachment"]["payload"]
    assert "Résiliation" in "\n".join(message_text(m) for m in messages)
    by_title = {b["title"]: b["payload"] for b in template["buttons"]}
    assert by_title["En agence"] == '/resiliation{"canal":"agence"}'

    # The customer taps "En agence": a postback with the button's payload.
    facebook.send(facebook.event(user, postback={"title": "En agence", "payload": by_title["En agence"]}))
    messages = stub.wait_for(user, reply_containing("Oui, en agence"))
    assert_within_limits(messages)
    tracker_becomes(servers, user, ["je veux résilier", '/resiliation{"canal":"agence"}'])


@pytest.mark.servers
@pytest.mark.model
def test_quick_reply(messenger):
    servers, stub = messenger
    user, facebook = psid(), Facebook(servers)
    # Tapping a quick reply (the "Code PUK" one of answers.which_procedure(), more than 3 buttons
    # become quick replies: the unit tests above) sends a message whose text is the title and
    # payload the intent. A customer can no longer type "/preciser_canal" to get that question:
    # the guard keeps intent commands for our own buttons' payloads (channels/guard.py).
    facebook.send(facebook.event(user, message={"text": "Code PUK", "quick_reply": {"payload": "/code_puk"}}))
    messages = stub.wait_for(user, reply_containing("Code PUK"))
    assert_within_limits(messages)
    tracker_becomes(servers, user, ["/code_puk"])


@pytest.mark.servers
@pytest.mark.model
def test_batched_events_all_answered_in_order(messenger):
    servers, stub = messenger
    user, facebook = psid(), Facebook(servers)
    facebook.send(
        facebook.event(user, message={"text": "/code_puk"}),
        facebook.event(user, message={"text": "/resiliation"}),
    )
    messages = stub.wait_for(
        user, lambda ms: reply_containing("Code PUK")(ms) and reply_containing("Résiliation")(ms)
    )
    texts = [message_text(m) for m in messages]
    first = {
        needle: next(i for i, t in enumerate(texts) if needle in t) for needle in ("Code PUK", "Résiliation")
    }
    assert first["Code PUK"] < first["Résiliation"]


@pytest.mark.servers
@pytest.mark.model
def test_bad_signatures_refused_and_nothing_reaches_the_tracker(messenger):
    servers, stub = messenger
    facebook = Facebook(servers)
    refused = {}
    for case in (
        "missing",
        "forged",
        "other secret",
        "sha1 in the 256 header",
        "md5",
        "forged 256 valid sha1",
    ):
        user = psid()
        body = facebook.body(facebook.event(user, message={"text": "code PUK ?"}))
        headers = {
            "missing": {},
            "forged": {"X-Hub-Signature-256": "sha256=" + "0" * 64},
            "other secret": {"X-Hub-Signature-256": sign(body, secret="not-the-secret")},
            "sha1 in the 256 header": {"X-Hub-Signature-256": sign(body, algorithm="sha1")},
            "md5": {"X-Hub-Signature": sign(body, algorithm="md5")},
            "forged 256 valid sha1": {
                "X-Hub-Signature-256": "sha256=" + "0" * 64,
                "X-Hub-Signature": sign(body, algorithm="sha1"),
            },
        }[case]
        response = facebook.post(body, headers)
        assert response.status_code == 403, case
        refused[case] = user
    # A signed message sent after them is answered: had they been accepted, they would be too.
    control = psid()
    facebook.send(facebook.event(control, message={"text": "code PUK ?"}))
    stub.wait_for(control, reply_containing("Code PUK"))
    tracker_becomes(servers, control, ["code PUK ?"])
    for case, user in refused.items():
        assert servers.user_texts(user) == [], case
        assert stub.messages(user) == [], case


@pytest.mark.servers
@pytest.mark.model
def test_retried_message_answered_once(messenger):
    servers, stub = messenger
    user, facebook = psid(), Facebook(servers)
    body = facebook.body(facebook.event(user, message={"text": "code PUK ?"}))
    # Messenger retries with the very same body (same mid); once concurrently, once later.
    threads = [threading.Thread(target=facebook.post, args=(body,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stub.wait_for(user, reply_containing("Code PUK"))
    assert facebook.post(body).status_code == 200
    # A new message after the retries: once it is answered, any duplicate would have been too.
    facebook.send(facebook.event(user, message={"text": "/resiliation"}))
    messages = stub.wait_for(user, reply_containing("Résiliation"))
    assert sum("Code PUK" in message_text(m) for m in messages) == 1
    tracker_becomes(servers, user, ["code PUK ?", "/resiliation"])


# --- start-up configuration -----------------------------------------------------------------


@pytest.mark.servers
@pytest.mark.model
def test_rasa_refuses_to_start_with_some_secrets_missing(tmp_path):
    """The channel's error reaches the operator (Rasa would mask an ImportError as "unknown channel")."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FB_")}
    env.update({"FB_VERIFY": VERIFY, "RASA_TELEMETRY_ENABLED": "false"})
    (tmp_path / "endpoints.yml").write_text("")
    run = subprocess.run(
        [
            str(RASA),
            "run",
            "--model",
            str(MODEL),
            "--port",
            "1",
            "--credentials",
            str(ROOT / "credentials.yml"),
            "--endpoints",
            str(tmp_path / "endpoints.yml"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode != 0
    assert "missing environment variable(s) FB_SECRET, FB_PAGE_ACCESS_TOKEN" in run.stdout + run.stderr


@pytest.mark.servers
@pytest.mark.model
def test_webhook_off_without_secrets(servers):
    """The shared servers (conftest) run without FB_* variables: a development machine."""
    if any(os.environ.get(name) for name in ("FB_VERIFY", "FB_SECRET", "FB_PAGE_ACCESS_TOKEN")):
        pytest.skip("FB_* variables set in this environment")
    url = f"{servers.rasa_url}/webhooks/facebook/webhook"
    body = Facebook.body(Facebook.event(psid(), message={"text": "code PUK ?"}))
    assert (
        requests.post(url, data=body, headers={"X-Hub-Signature-256": sign(body)}, timeout=10).status_code
        == 503
    )
    assert (
        requests.get(
            url,
            params={"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1"},
            timeout=10,
        ).status_code
        == 503
    )


@pytest.mark.servers
@pytest.mark.model
def test_stopping_rasa_finishes_the_messages_being_handled(messenger):
    """SIGTERM while a Messenger message is being handled (each Graph call takes 1 s): Rasa
    waits for it (before_server_stop, FB_SHUTDOWN_TIMEOUT) and the customer gets the answer.
    Rasa's channel, and this one before, let the message die with the process. Last test of the
    module: it stops the shared Rasa."""
    servers, stub = messenger
    user = psid()
    stub.delay = 1.0
    try:
        Facebook(servers).send(Facebook.event(user, message={"text": "code PUK ?"}))
        assert servers.rasa is not None
        servers.rasa.send_signal(signal.SIGTERM)
        servers.rasa.wait(timeout=30)
    finally:
        stub.delay = 0.0
    assert any("Code PUK" in message_text(m) for m in stub.messages(user))
