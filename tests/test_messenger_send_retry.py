"""Messenger sending (channels/messenger.py `GraphClient`): one aiohttp session per client,
retries of 429, 5xx and connection errors with backoff (never of other 4xx), and the typing
indicator only for a message the input guard accepted.

Against the Graph API stub over real HTTP (harness/graph_stub.py). The pauses between retries
are recorded instead of slept. The channel runs on a bare Sanic app through Starlette's
TestClient, with a fake Rasa. No model, no Rasa process.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import itertools
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from rasa.core.channels.channel import UserMessage, register
from sanic import Sanic
from starlette.testclient import TestClient

from actions import answers
from channels import dedupe, guard
from channels.messenger import MAX_RETRY_AFTER, RETRY_DELAYS, GraphClient, MessengerInput
from harness.graph_stub import GraphStub, Scripted

TOKEN, SECRET, VERIFY = "page-token-for-retry-tests", "app-secret-for-retry-tests", "verify-for-retry-tests"
PSID = "2400000000000001"
MESSAGE = {"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text": "Bonjour"}}

_app_names = itertools.count()


@pytest.fixture(scope="module")
def stub() -> Iterator[GraphStub]:
    with closing(GraphStub()) as graph:
        yield graph


@pytest.fixture
def graph(stub: GraphStub) -> GraphStub:
    """The module's stub, its record and scripts emptied."""
    with stub.changed:
        stub.calls.clear()
        stub.scripts.clear()
    return stub


class Recorded(GraphClient):
    """A GraphClient whose pauses between retries are recorded, not slept."""

    def __init__(self, base_url: str) -> None:
        super().__init__(TOKEN, SECRET, base_url)
        self.pauses: list[float] = []

    async def _pause(self, seconds: float) -> None:
        self.pauses.append(seconds)


def send_once(client: GraphClient, body: dict[str, Any] = MESSAGE) -> bool:
    async def send() -> bool:
        try:
            return await client.send(body)
        finally:
            await client.close()

    return asyncio.run(send())


def statuses(stub: GraphStub) -> list[int]:
    return [c["status"] for c in stub.edge_calls("messages")]


# --- retries --------------------------------------------------------------------------------


def test_429_then_200_is_retried_and_delivered_once(graph):
    graph.script("messages", 429)
    client = Recorded(graph.url)
    assert send_once(client)
    assert statuses(graph) == [429, 200]
    assert graph.messages(PSID) == [{"text": "Bonjour"}]  # delivered once
    assert client.pauses == [RETRY_DELAYS[0]] == [0.5]


def test_500_twice_then_200_is_delivered_after_backoff(graph):
    graph.script("messages", 500, 500)
    client = Recorded(graph.url)
    assert send_once(client)
    assert statuses(graph) == [500, 500, 200]
    assert graph.messages(PSID) == [{"text": "Bonjour"}]
    assert client.pauses == [0.5, 1.0]
    # every attempt is the same call: same body, token and appsecret_proof
    calls = graph.edge_calls("messages")
    assert all(c["body"] == MESSAGE for c in calls)
    proof = hmac.new(SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
    assert all(c["query"] == {"access_token": [TOKEN], "appsecret_proof": [proof]} for c in calls)


def test_at_most_three_retries(graph):
    graph.script("messages", 503, 502, 500, 500, 500)
    client = Recorded(graph.url)
    assert not send_once(client)
    assert statuses(graph) == [503, 502, 500, 500]
    assert client.pauses == [0.5, 1.0, 2.0]
    assert graph.messages(PSID) == []


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_other_4xx_is_not_retried(graph, status):
    graph.script("messages", status)
    client = Recorded(graph.url)
    assert not send_once(client)
    assert statuses(graph) == [status]
    assert client.pauses == []


@pytest.mark.parametrize(
    ("retry_after", "pause"),
    [
        pytest.param("0", 0.0, id="zero"),
        pytest.param("3", 3.0, id="seconds"),
        pytest.param("3600", MAX_RETRY_AFTER, id="capped"),
        pytest.param("soon", 0.5, id="unreadable-backoff"),
    ],
)
def test_retry_after_is_honoured_and_capped(graph, retry_after, pause):
    graph.script("messages", Scripted(429, headers={"Retry-After": retry_after}))
    client = Recorded(graph.url)
    assert send_once(client)
    assert statuses(graph) == [429, 200]
    assert client.pauses == [pause]


def test_retry_after_as_an_http_date(graph):
    later = email.utils.formatdate(time.time() + 2, usegmt=True)
    graph.script("messages", Scripted(503, headers={"Retry-After": later}))
    client = Recorded(graph.url)
    assert send_once(client)
    (pause,) = client.pauses
    assert 0.5 < pause <= 2.0


def test_connection_errors_are_retried(graph):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    client = Recorded(f"http://127.0.0.1:{closed_port}/v21.0")
    assert not send_once(client)
    assert client.pauses == [0.5, 1.0, 2.0]


def test_real_pauses_are_slept(graph):
    """Without the recorder: the client really waits before it retries."""
    graph.script("messages", Scripted(429, headers={"Retry-After": "0.3"}))
    client = GraphClient(TOKEN, SECRET, graph.url)
    started = time.monotonic()
    assert send_once(client)
    assert time.monotonic() - started >= 0.3
    assert statuses(graph) == [429, 200]


# --- one session ----------------------------------------------------------------------------


def test_one_session_for_every_send_then_closed(graph, monkeypatch):
    opened: list[aiohttp.ClientSession] = []
    real = aiohttp.ClientSession

    def counting(*args: Any, **kwargs: Any) -> aiohttp.ClientSession:
        session = real(*args, **kwargs)
        opened.append(session)
        return session

    monkeypatch.setattr(aiohttp, "ClientSession", counting)
    client = GraphClient(TOKEN, SECRET, graph.url)
    assert client._session is None  # nothing opened outside the running loop

    async def scenario() -> None:
        graph.script("messages", 500)
        results = [await client.send(MESSAGE) for _ in range(3)]
        results += await asyncio.gather(*(client.send(MESSAGE) for _ in range(3)))
        assert results == [True] * 6
        await client.take_thread_control(PSID, "m")
        assert len(opened) == 1 and not opened[0].closed
        await client.close()
        assert opened[0].closed

    client.retry_delays = (0.0,)
    asyncio.run(scenario())
    assert len(graph.edge_calls("messages")) == 7  # 6 sends, one of them retried


# --- the channel: typing only once the guard accepted ------------------------------------------


@dataclass
class FakeRasa:
    """What the channel sees of Rasa's Agent: answers every message through its output."""

    messages: list[UserMessage] = field(default_factory=list)

    async def handle_message(self, message: UserMessage) -> None:
        self.messages.append(message)
        await message.output_channel.send_response(message.sender_id, {"text": f"Bien reçu : {message.text}"})


@dataclass
class Page:
    client: TestClient
    rasa: FakeRasa
    channel: MessengerInput
    stub: GraphStub

    def deliver(self, *events: dict[str, Any]) -> None:
        entry = {"id": "104000000000001", "time": int(time.time() * 1000), "messaging": list(events)}
        body = json.dumps({"object": "page", "entry": [entry]}).encode()
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        response = self.client.post(
            "/webhooks/facebook/webhook",
            content=body,
            headers={"content-type": "application/json", "X-Hub-Signature-256": signature},
        )
        assert (response.status_code, response.text) == (200, "EVENT_RECEIVED")

        async def wait() -> None:
            await asyncio.gather(*list(self.channel.queues.tasks))

        assert self.client.portal is not None
        self.client.portal.call(wait)

    def calls(self, user: str) -> list[str]:
        """The Graph calls for `user`: the sender action, or "message"."""
        return [
            c["body"].get("sender_action") or "message"
            for c in self.stub.calls
            if (c["body"].get("recipient") or {}).get("id") == user
        ]


def typed(user: str, text: str, mid: str | None = None) -> dict[str, Any]:
    return {
        "sender": {"id": user},
        "recipient": {"id": "104000000000001"},
        "timestamp": int(time.time() * 1000),
        "message": {"mid": mid or "m_" + uuid.uuid4().hex, "text": text},
    }


def psid() -> str:
    return str(uuid.uuid4().int)[:16]


@pytest.fixture
def start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, graph: GraphStub) -> Iterator[Callable[..., Page]]:
    """start(**env) -> the channel as `rasa run` builds it, on a new Sanic app."""
    with ExitStack() as stack:

        def launch(**env: str) -> Page:
            for name in (
                "FB_MESSENGER_REQUIRED",
                dedupe.ENV_STORE,
                guard.ENV_RATE_LIMIT,
                guard.ENV_MAX_CHARS,
            ):
                monkeypatch.delenv(name, raising=False)
            settings = {
                "FB_VERIFY": VERIFY,
                "FB_SECRET": SECRET,
                "FB_PAGE_ACCESS_TOKEN": TOKEN,
                "FB_GRAPH_API_URL": graph.url,
                "FB_DEDUPE_DB": str(tmp_path / f"mids-{uuid.uuid4().hex}.db"),
                guard.ENV_RATE_STORE: "memory",
                **env,
            }
            for name, value in settings.items():
                monkeypatch.setenv(name, value)
            monkeypatch.setattr(guard, "_guard", None)  # the process's guard, from this environment
            monkeypatch.setattr(Sanic, "test_mode", True)  # several apps in one process
            channel = MessengerInput.from_credentials(None)
            assert isinstance(channel, MessengerInput) and channel.enabled
            app = Sanic(f"messenger_send_retry_{next(_app_names)}", configure_logging=False)
            register([channel], app, route="/webhooks/")
            rasa = FakeRasa()
            app.ctx.agent = rasa
            client = stack.enter_context(TestClient(app, base_url="http://rasa.test"))
            return Page(client, rasa, channel, graph)

        yield launch


def test_typing_for_an_accepted_message(start):
    page = start()
    user = psid()
    page.deliver(typed(user, "code PUK ?"))
    assert [m.text for m in page.rasa.messages] == ["code PUK ?"]
    assert page.calls(user) == ["mark_seen", "typing_on", "message", "typing_off"]


def test_no_typing_for_a_message_too_long(start):
    page = start(**{guard.ENV_MAX_CHARS: "50"})
    user = psid()
    event = typed(user, "mon téléphone " * 10)
    page.deliver(event)
    page.deliver(event)  # Messenger's retry of the refused message: nothing more
    assert page.rasa.messages == []
    assert page.calls(user) == ["mark_seen", "message"]
    assert page.stub.texts(user) == [answers.too_long(50)]


def test_no_typing_for_a_rate_limited_message(start):
    page = start(**{guard.ENV_RATE_LIMIT: "2/60"})
    user = psid()
    page.deliver(typed(user, "bonjour"), typed(user, "code PUK ?"), typed(user, "et la résiliation ?"))
    assert [m.text for m in page.rasa.messages] == ["bonjour", "code PUK ?"]
    accepted = ["mark_seen", "typing_on", "message", "typing_off"]
    assert page.calls(user) == accepted + accepted + ["mark_seen", "message"]
    assert page.stub.texts(user)[-1].startswith("Vous m'avez envoyé beaucoup de messages")


def test_the_channel_shares_one_session_and_closes_it_at_shutdown(start, monkeypatch):
    opened: list[aiohttp.ClientSession] = []
    real = aiohttp.ClientSession

    def counting(*args: Any, **kwargs: Any) -> aiohttp.ClientSession:
        session = real(*args, **kwargs)
        opened.append(session)
        return session

    monkeypatch.setattr(aiohttp, "ClientSession", counting)
    page = start()
    users = [psid(), psid()]
    page.deliver(*(typed(user, f"message {i}") for i in range(2) for user in users))
    assert all(len(page.calls(user)) == 2 * 4 for user in users)
    assert page.channel.output().client is page.channel.graph_client()
    assert len(opened) == 1 and not opened[0].closed
    page.client.__exit__(None, None, None)  # Sanic stops: before_server_stop
    assert opened[0].closed
