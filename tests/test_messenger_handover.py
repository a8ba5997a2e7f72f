"""Messenger handover protocol (channels/messenger.py): the page inbox answers, the bot steps
aside and comes back.

The Messenger channel, built from the environment as `rasa run` builds it, on a bare Sanic
app driven through Starlette's TestClient; Rasa's agent is a fake that answers through the
message's output channel, as Rasa's processor does. The Graph API is the local stub over real
HTTP (harness/graph_stub.py): what would have reached Facebook is what it recorded. No model,
no Rasa process: this runs in `make test-fast`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage, register
from sanic import Sanic
from starlette.testclient import TestClient

from channels import dedupe, guard
from channels.messenger import (
    DEFAULT_INBOX_APP_ID,
    MAX_STANDBY_SENDERS,
    META_HANDOVER,
    META_IDLE,
    META_REQUEST,
    Handover,
    MessengerConfigError,
    MessengerInput,
    MessengerOutput,
)
from harness.graph_stub import GraphStub

VERIFY, SECRET, TOKEN = "verify-token-de-test", "app-secret-de-test", "page-token-de-test"
PAGE = "104000000000001"
OUR_APP = "1122334455667788"  # the bot's app id, as Meta names it in handover events
OTHER_APP = "9988776655"
WEBHOOK = "/webhooks/facebook/webhook"
ASK_PERSON = "je veux parler à un conseiller"
HANDOVER_TEXT = "Je transmets la conversation à un conseiller."
BACK_TEXT = "C'est de nouveau l'assistant automatique qui vous répond."
MINUTE = 60_000  # ms

_app_names = itertools.count()


def psid() -> str:
    return str(uuid.uuid4().int)[:16]


def now_ms() -> int:
    return int(time.time() * 1000)


# --- the fake Rasa ------------------------------------------------------------------------


@dataclass
class FakeAgent:
    """What the channel sees of Rasa's Agent. It answers every message, standby ones included:
    whatever Rasa says to a standby message must not reach the customer."""

    messages: list[UserMessage] = field(default_factory=list)

    async def handle_message(self, message: UserMessage) -> None:
        self.messages.append(message)
        out, sender = message.output_channel, message.sender_id
        if message.text == ASK_PERSON:  # as actions/actions.py hands over during opening hours
            await out.send_response(sender, {"text": HANDOVER_TEXT})
            await out.send_response(sender, {"custom": {"handover": "page_inbox"}})
        elif message.text == "/retour_assistant":
            await out.send_response(sender, {"text": BACK_TEXT})
        elif message.text == "brut":
            await out.send_response(sender, {"custom": {"text": "message brut"}})
        else:
            await out.send_response(sender, {"text": f"Bien reçu : {message.text}"})

    def seen(self) -> list[tuple[str, str | None, str | None]]:
        return [(m.sender_id, m.text, m.input_channel) for m in self.messages]


# --- the page: the channel on a Sanic app, the Graph API stub behind it --------------------


@dataclass
class Page:
    client: TestClient
    agent: FakeAgent
    channel: MessengerInput
    stub: GraphStub

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> Any:
        headers = {"X-Hub-Signature-256": signature(body)} if headers is None else headers
        return self.client.post(
            WEBHOOK, content=body, headers={"content-type": "application/json", **headers}
        )

    def deliver(self, field_name: str, *events: dict[str, Any]) -> None:
        """Facebook's call with `events` under `field_name` of one entry, then the work it started."""
        response = self.post(webhook_body(field_name, *events))
        assert (response.status_code, response.text) == (200, "EVENT_RECEIVED")
        self.drain()

    def drain(self) -> None:
        async def wait() -> None:
            await asyncio.gather(*list(self.channel.queues.tasks))

        assert self.client.portal is not None
        self.client.portal.call(wait)

    def sent(self, user: str) -> list[dict[str, Any]]:
        """The Send API bodies for `user` (messages and sender actions)."""
        return self.stub.bodies(user)

    def texts(self, user: str) -> list[str]:
        return self.stub.texts(user)

    def calls(self, user: str) -> list[str]:
        """Every Graph call for `user`, in order: the edge, or the sender action."""
        return [
            c["body"].get("sender_action") or c["path"].rsplit("/", 1)[-1]
            for c in self.stub.calls
            if (c["body"].get("recipient") or {}).get("id") == user
        ]


def signature(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_body(field_name: str, *events: dict[str, Any]) -> bytes:
    entry = {"id": PAGE, "time": now_ms(), field_name: list(events)}
    return json.dumps({"object": "page", "entry": [entry]}).encode()


def customer(user: str, text: str | None = None, at: int | None = None, **message: Any) -> dict[str, Any]:
    """A message of the customer (`text`, or other `message` fields such as attachments)."""
    body = {"mid": "m_" + uuid.uuid4().hex, **({"text": text} if text is not None else {}), **message}
    return {"sender": {"id": user}, "recipient": {"id": PAGE}, "timestamp": at or now_ms(), "message": body}


def echo(user: str, text: str, at: int | None = None) -> dict[str, Any]:
    """What a person of the page wrote to the customer from the inbox."""
    message = {
        "mid": "m_" + uuid.uuid4().hex,
        "is_echo": True,
        "app_id": int(DEFAULT_INBOX_APP_ID),
        "text": text,
    }
    return {
        "sender": {"id": PAGE},
        "recipient": {"id": user},
        "timestamp": at or now_ms(),
        "message": message,
    }


def handover(user: str, kind: str, at: int | None = None, **fields: Any) -> dict[str, Any]:
    """A `messaging_handovers` event (`kind`: pass_thread_control, take_thread_control...)."""
    return {"sender": {"id": user}, "recipient": {"id": PAGE}, "timestamp": at or now_ms(), kind: fields}


def returned(user: str, at: int | None = None) -> dict[str, Any]:
    """The inbox gives the thread back to the bot ("Mark as done")."""
    return handover(
        user,
        "pass_thread_control",
        at,
        previous_owner_app_id=DEFAULT_INBOX_APP_ID,
        new_owner_app_id=OUR_APP,
        metadata="",
    )


@pytest.fixture(scope="module")
def stub() -> Iterator[GraphStub]:
    with closing(GraphStub()) as graph:
        yield graph


@pytest.fixture
def start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, stub: GraphStub) -> Iterator[Callable[..., Page]]:
    """start(**env) -> the channel of `rasa run` in this environment, on a new app."""

    def launch(**env: str) -> Page:
        for name in (
            "FB_MESSENGER_REQUIRED",
            "FB_PAGE_INBOX_APP_ID",
            "FB_HANDOVER_IDLE_MINUTES",
            dedupe.ENV_STORE,
            guard.ENV_RATE_LIMIT,
            guard.ENV_MAX_CHARS,
        ):
            monkeypatch.delenv(name, raising=False)
        settings = {
            "FB_VERIFY": VERIFY,
            "FB_SECRET": SECRET,
            "FB_PAGE_ACCESS_TOKEN": TOKEN,
            "FB_GRAPH_API_URL": stub.url,
            "FB_DEDUPE_DB": str(tmp_path / f"mids-{uuid.uuid4().hex}.db"),
            guard.ENV_RATE_STORE: "memory",
            **env,
        }
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(guard, "_guard", None)  # the process's guard, from this environment
        # Sanic 21.12 rewrites some of its methods when an app starts; test mode keeps the
        # originals, so that several apps can start in one process (tests/test_channels_app.py)
        monkeypatch.setattr(Sanic, "test_mode", True)
        stub.refused.clear()
        channel = MessengerInput.from_credentials(None)
        assert isinstance(channel, MessengerInput) and channel.enabled
        app = Sanic(f"messenger_handover_{next(_app_names)}", configure_logging=False)
        register([channel], app, route="/webhooks/")
        agent = FakeAgent()
        app.ctx.agent = agent
        client = stack.enter_context(TestClient(app, base_url="http://rasa.test"))
        return Page(client, agent, channel, stub)

    with ExitStack() as stack:
        yield launch


def hand_over(page: Page, user: str) -> None:
    """The customer asks for a person: the action's text, then the custom handover message."""
    page.deliver("messaging", customer(user, ASK_PERSON))
    assert page.stub.thread_control(user) == [
        (
            "pass_thread_control",
            {
                "recipient": {"id": user},
                "target_app_id": int(DEFAULT_INBOX_APP_ID),
                "metadata": META_HANDOVER,
            },
        )
    ]


# --- the handover to the page inbox ---------------------------------------------------------


@pytest.mark.parametrize("inbox_app_id", [None, "555000111222333"], ids=["default", "overridden"])
def test_handover_message_passes_the_thread_and_is_never_sent_to_the_customer(start, inbox_app_id):
    page = start(**({"FB_PAGE_INBOX_APP_ID": inbox_app_id} if inbox_app_id else {}))
    user = psid()
    page.deliver("messaging", customer(user, ASK_PERSON))

    expected_app = int(inbox_app_id or "263902037430900")  # Meta's page inbox by default
    assert page.stub.thread_control(user) == [
        (
            "pass_thread_control",
            {"recipient": {"id": user}, "target_app_id": expected_app, "metadata": META_HANDOVER},
        )
    ]
    (call,) = [
        c
        for c in page.stub.calls
        if c["path"].endswith("/me/pass_thread_control") and c["body"]["recipient"]["id"] == user
    ]
    assert call["path"] == "/v21.0/me/pass_thread_control"  # FB_GRAPH_API_URL's version
    assert call["query"]["access_token"] == [TOKEN]
    assert call["query"]["appsecret_proof"] == [
        hmac.new(SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
    ]
    # the customer got the action's text and nothing of the custom message
    assert page.stub.messages(user) == [{"text": HANDOVER_TEXT}]
    assert page.calls(user) == ["mark_seen", "typing_on", "messages", "pass_thread_control", "typing_off"]


def test_other_custom_messages_are_still_sent_as_they_are(start):
    page = start()
    user = psid()
    page.deliver("messaging", customer(user, "brut"))
    assert page.stub.messages(user) == [{"text": "message brut"}]
    assert page.stub.thread_control(user) == []


# --- standby: the inbox owns the thread ------------------------------------------------------


def test_standby_message_reaches_rasa_once_and_is_never_answered(start):
    page = start()
    user = psid()
    message = customer(user, "vous êtes là ?")
    page.deliver("standby", message)
    page.deliver("standby", message)  # Messenger's retry of the same mid

    assert page.agent.seen() == [("fb:" + user, "vous êtes là ?", "facebook")]
    (seen,) = page.agent.messages
    assert seen.metadata == {"standby": True}
    assert isinstance(seen.output_channel, CollectingOutputChannel)
    # Rasa answered (the fake always does): nothing reached the Graph API, not even mark_seen
    assert seen.output_channel.messages == [
        {"recipient_id": "fb:" + user, "text": "Bien reçu : vous êtes là ?"}
    ]
    assert page.calls(user) == []


def test_standby_quick_reply_is_forwarded_with_its_payload(start):
    page = start()
    user = psid()
    page.deliver("standby", customer(user, "Code PUK", quick_reply={"payload": "/code_puk"}))
    assert page.agent.seen() == [("fb:" + user, "/code_puk", "facebook")]
    assert page.agent.messages[0].metadata == {"standby": True}
    assert page.calls(user) == []


def test_standby_echoes_and_non_text_events_are_not_forwarded(start):
    page = start()
    user = psid()
    page.deliver(
        "standby",
        echo(user, "Bonjour, je regarde votre dossier."),
        customer(user, attachments=[{"type": "image", "payload": {"url": "https://cdn.test/photo.jpg"}}]),
        {"sender": {"id": user}, "recipient": {"id": PAGE}, "timestamp": now_ms(), "read": {"watermark": 1}},
    )
    assert page.agent.messages == []
    assert page.calls(user) == []
    # they still count as activity of the standby thread (see the idle tests)
    assert user in page.channel.handover.last


# --- the thread comes back --------------------------------------------------------------------


@pytest.mark.parametrize("field_name", ["messaging", "messaging_handovers"])
def test_thread_passed_back_injects_retour_assistant_and_its_reply_is_sent(start, field_name):
    page = start()
    user = psid()
    event = returned(user)
    page.deliver(field_name, event)
    page.deliver(field_name, event)  # Messenger's retry: handled once

    assert page.agent.seen() == [("fb:" + user, "/retour_assistant", "facebook")]
    (seen,) = page.agent.messages
    assert seen.metadata == {"handover": "returned"}
    assert isinstance(seen.output_channel, MessengerOutput)
    assert page.stub.messages(user) == [{"text": BACK_TEXT}]
    assert page.stub.thread_control(user) == []


def test_thread_going_to_the_inbox_or_taken_from_us_injects_nothing(start):
    page = start()
    user = psid()
    page.deliver(
        "messaging",
        # the notification of our own pass to the inbox
        handover(user, "pass_thread_control", new_owner_app_id=DEFAULT_INBOX_APP_ID, metadata=META_HANDOVER),
        # a person took the thread from the bot
        handover(
            user, "take_thread_control", previous_owner_app_id=OUR_APP, new_owner_app_id=DEFAULT_INBOX_APP_ID
        ),
        handover(user, "app_roles", **{OUR_APP: ["primary_receiver"]}),
    )
    assert page.agent.messages == []
    assert page.calls(user) == []
    assert user in page.channel.handover.last  # the standby clock started


def test_thread_request_from_the_inbox_is_granted_and_from_another_app_ignored(start):
    page = start()
    user, other = psid(), psid()
    page.deliver(
        "messaging_handovers",
        handover(
            user, "request_thread_control", requested_owner_app_id=int(DEFAULT_INBOX_APP_ID), metadata=""
        ),
        handover(other, "request_thread_control", requested_owner_app_id=int(OTHER_APP), metadata=""),
    )
    assert page.stub.thread_control(user) == [
        (
            "pass_thread_control",
            {"recipient": {"id": user}, "target_app_id": int(DEFAULT_INBOX_APP_ID), "metadata": META_REQUEST},
        )
    ]
    assert page.calls(other) == []
    assert page.agent.messages == []


# --- idle take-back -----------------------------------------------------------------------------


def test_idle_inbox_thread_is_taken_back_then_the_message_answered(start):
    page = start()  # FB_HANDOVER_IDLE_MINUTES: 30 by default
    user = psid()
    hand_over(page, user)  # the clock starts at the pass
    handed_at = now_ms()
    calls_before = len(page.calls(user))

    page.deliver("standby", customer(user, "toujours là ?", at=handed_at + 5 * MINUTE))
    assert page.calls(user)[calls_before:] == []  # within the idle time: recorded only
    assert page.agent.messages[-1].metadata == {"standby": True}

    page.deliver("standby", customer(user, "code PUK ?", at=handed_at + 36 * MINUTE))
    assert page.calls(user)[calls_before:] == [
        "take_thread_control",
        "mark_seen",
        "typing_on",
        "messages",
        "typing_off",
    ]
    assert page.stub.thread_control(user)[-1] == (
        "take_thread_control",
        {"recipient": {"id": user}, "metadata": META_IDLE},
    )
    taken = page.agent.messages[-1]
    assert (taken.text, taken.metadata) == ("code PUK ?", {"handover": "taken_back"})
    assert isinstance(taken.output_channel, MessengerOutput)
    assert page.texts(user)[-1] == "Bien reçu : code PUK ?"
    assert user not in page.channel.handover.last  # the thread is the bot's again


def test_the_idle_clock_starts_at_the_handover(start):
    page = start()
    user = psid()
    hand_over(page, user)
    # the customer's first standby message, 31 minutes after the pass, nobody in the inbox moved
    page.deliver("standby", customer(user, "personne ?", at=now_ms() + 31 * MINUTE))
    assert [edge for edge, _ in page.stub.thread_control(user)] == [
        "pass_thread_control",
        "take_thread_control",
    ]
    assert page.texts(user) == [HANDOVER_TEXT, "Bien reçu : personne ?"]


def test_standby_within_the_idle_time_of_the_last_activity_is_not_taken_back(start):
    page = start(FB_HANDOVER_IDLE_MINUTES="30")
    user = psid()
    start_at = now_ms()
    page.deliver("standby", customer(user, "bonjour", at=start_at))
    # a person of the page answered 20 minutes later: the thread moved
    page.deliver("standby", echo(user, "Bonjour, que puis-je pour vous ?", at=start_at + 20 * MINUTE))
    page.deliver("standby", customer(user, "merci", at=start_at + 45 * MINUTE))  # 25 min after the echo

    assert page.stub.thread_control(user) == []
    assert page.calls(user) == []
    assert [(m.text, m.metadata) for m in page.agent.messages] == [
        ("bonjour", {"standby": True}),
        ("merci", {"standby": True}),
    ]


def test_idle_take_back_off_with_zero_minutes(start):
    page = start(FB_HANDOVER_IDLE_MINUTES="0")
    user = psid()
    start_at = now_ms()
    page.deliver("standby", customer(user, "bonjour", at=start_at))
    page.deliver("standby", customer(user, "il y a quelqu'un ?", at=start_at + 3 * 24 * 60 * MINUTE))
    assert page.calls(user) == []
    assert [m.metadata for m in page.agent.messages] == [{"standby": True}, {"standby": True}]


def test_idle_minutes_from_the_environment(start):
    page = start(FB_HANDOVER_IDLE_MINUTES="2.5")
    user = psid()
    start_at = now_ms()
    page.deliver("standby", customer(user, "bonjour", at=start_at))
    page.deliver("standby", customer(user, "allô ?", at=start_at + 2 * MINUTE))  # within 2.5 min
    assert page.stub.thread_control(user) == []
    page.deliver("standby", customer(user, "allô ??", at=start_at + 5 * MINUTE))  # 3 min later
    assert [edge for edge, _ in page.stub.thread_control(user)] == ["take_thread_control"]
    assert page.texts(user) == ["Bien reçu : allô ??"]


def test_refused_take_back_keeps_the_message_in_standby(start):
    page = start()
    user = psid()
    start_at = now_ms()
    page.deliver("standby", customer(user, "bonjour", at=start_at))
    page.stub.refused.add("take_thread_control")  # e.g. the app is not the primary receiver
    page.deliver("standby", customer(user, "allô ?", at=start_at + 40 * MINUTE))

    assert [edge for edge, _ in page.stub.thread_control(user)] == ["take_thread_control"]
    assert page.stub.bodies(user) == []  # nothing sent: the inbox still owns the thread
    assert [(m.text, m.metadata) for m in page.agent.messages] == [
        ("bonjour", {"standby": True}),
        ("allô ?", {"standby": True}),
    ]
    assert isinstance(page.agent.messages[-1].output_channel, CollectingOutputChannel)


def test_standby_clock_is_bounded():
    clock = Handover(max_senders=3)
    for i in range(5):
        clock.touch(f"user-{i}", at=1000.0 * i)
    clock.touch("user-2", at=9000.0)  # moved again: now the most recent
    assert list(clock.last) == ["user-3", "user-4", "user-2"]
    assert not clock.idle("user-0", at=10**12)  # forgotten: its clock restarts, no take-back
    assert clock.idle("user-3", at=3000.0 + 31 * MINUTE)
    assert not clock.idle("user-3", at=3000.0 + 29 * MINUTE)
    assert isinstance(Handover().last, OrderedDict)
    assert Handover().max_senders == MAX_STANDBY_SENDERS == 10_000


# --- settings and signatures ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FB_HANDOVER_IDLE_MINUTES", "trente"),
        ("FB_HANDOVER_IDLE_MINUTES", "-5"),
        ("FB_HANDOVER_IDLE_MINUTES", "nan"),
        ("FB_HANDOVER_IDLE_MINUTES", "inf"),
        ("FB_PAGE_INBOX_APP_ID", "page-inbox"),
        ("FB_PAGE_INBOX_APP_ID", "-263902037430900"),
    ],
)
def test_bad_handover_settings_refuse_to_start(monkeypatch, name, value):
    for variable, setting in (("FB_VERIFY", VERIFY), ("FB_SECRET", SECRET), ("FB_PAGE_ACCESS_TOKEN", TOKEN)):
        monkeypatch.setenv(variable, setting)
    monkeypatch.delenv("FB_HANDOVER_IDLE_MINUTES", raising=False)
    monkeypatch.delenv("FB_PAGE_INBOX_APP_ID", raising=False)
    monkeypatch.setenv(name, value)
    with pytest.raises(MessengerConfigError, match=name):
        MessengerInput.from_credentials(None)


def test_handover_settings_defaults_and_overrides(monkeypatch):
    for variable, setting in (("FB_VERIFY", VERIFY), ("FB_SECRET", SECRET), ("FB_PAGE_ACCESS_TOKEN", TOKEN)):
        monkeypatch.setenv(variable, setting)
    monkeypatch.delenv("FB_HANDOVER_IDLE_MINUTES", raising=False)
    monkeypatch.delenv("FB_PAGE_INBOX_APP_ID", raising=False)
    channel = MessengerInput.from_credentials(None)
    assert isinstance(channel, MessengerInput)
    assert (channel.handover.inbox_app_id, channel.handover.idle_ms) == ("263902037430900", 30 * MINUTE)
    monkeypatch.setenv("FB_HANDOVER_IDLE_MINUTES", " 0 ")
    monkeypatch.setenv("FB_PAGE_INBOX_APP_ID", "555000111222333")
    channel = MessengerInput.from_credentials(None)
    assert isinstance(channel, MessengerInput)
    assert (channel.handover.inbox_app_id, channel.handover.idle_ms) == ("555000111222333", 0)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="unsigned"),
        pytest.param({"X-Hub-Signature-256": "sha256=" + "0" * 64}, id="forged"),
        pytest.param({"X-Hub-Signature-256": "WRONG-SECRET"}, id="wrong-secret"),
    ],
)
@pytest.mark.parametrize("field_name", ["standby", "messaging", "messaging_handovers"])
def test_handover_events_need_a_valid_signature(start, headers, field_name):
    page = start()
    user = psid()
    event = customer(user, "bonjour") if field_name == "standby" else returned(user)
    body = webhook_body(field_name, event)
    headers = {
        k: signature(body, secret="pas-le-secret") if v == "WRONG-SECRET" else v for k, v in headers.items()
    }
    refused = page.post(body, headers)
    assert (refused.status_code, refused.text) == (403, "forbidden")
    page.drain()
    assert page.agent.messages == [] and page.calls(user) == []
    # the refused call used up nothing: Facebook's genuine delivery is handled
    assert page.post(body).status_code == 200
    page.drain()
    assert len(page.agent.messages) == 1
