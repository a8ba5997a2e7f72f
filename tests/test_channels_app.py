"""The channels in-process: REST (channels/rest.py), Messenger (channels/messenger.py) and
socket.io (channels/socketio.py), each behind the input guard (channels/guard.py).

The channels are built from the project's credentials.yml and registered on a bare Sanic app
(Sanic 21.12, Rasa 3.6's) exactly as `rasa run` does (`rasa.core.channels.channel.register`,
route "/webhooks/"); the app is driven through its ASGI interface by Starlette's TestClient.
Rasa's agent is a fake that records each UserMessage and answers through the message's output
channel as Rasa's processor does (`output_channel.send_response(sender_id, bot_message)`).
The Messenger Send API client is replaced by a recorder. No model, no Rasa process, no network:
this runs in the fast tier. The same channels behind a real Rasa are in tests/test_e2e_rest.py,
tests/test_messenger.py and tests/test_socketio.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from rasa.core.channels.channel import InputChannel, UserMessage, register
from rasa.shared.utils.common import class_from_module_path
from rasa.shared.utils.io import read_yaml_file
from sanic import Sanic
from starlette.testclient import TestClient

from actions import answers, handoff
from channels import guard
from channels.messenger import GraphClient, MessengerConfigError, MessengerInput
from channels.socketio import SocketIOConfigError

ROOT = Path(__file__).resolve().parent.parent
FB_VERIFY, FB_SECRET, FB_TOKEN = "verify-token-de-test", "app-secret-de-test", "page-token-de-test"
GRAPH_URL = "https://graph.invalid/v21.0"  # never called: GraphClient.send is replaced
PSID = "6021458812345678"
WIDGET = "http://localhost:8080"  # an origin credentials.yml allows
WEBHOOK = "/webhooks/rest/webhook"
FB_WEBHOOK = "/webhooks/facebook/webhook"
BUTTONS = [{"title": "Code PUK", "payload": "/code_puk"}, {"title": "Horaires", "payload": "/horaires"}]

_app_names = itertools.count()


# --- the fake Rasa ----------------------------------------------------------------------


@dataclass
class FakeAgent:
    """What the channels see of Rasa's Agent (`app.ctx.agent.handle_message`)."""

    messages: list[UserMessage] = field(default_factory=list)
    buttons: list[dict[str, Any]] | None = None
    # "answer", "silent" (no bot message), "fail" (raises), "held" (the assistant's silence
    # while a person answers) or "staff" (a staff member's message, as the live desk sends it)
    mode: str = "answer"

    async def handle_message(self, message: UserMessage) -> None:
        self.messages.append(message)
        if self.mode == "fail":
            raise RuntimeError("action server unreachable")
        if self.mode == "silent":
            return
        if self.mode == "held":
            await message.output_channel.send_response(message.sender_id, {"custom": handoff.HELD})
            return
        bot: dict[str, Any] = {"text": f"Bien reçu : {message.text}"}
        if self.mode == "staff":
            bot["custom"] = {"agent": "Marie", "notice": "joined"}
        if self.buttons:
            bot["buttons"] = self.buttons
        await message.output_channel.send_response(message.sender_id, bot)

    def seen(self) -> list[tuple[str, str, str]]:
        return [(m.sender_id, m.text, m.input_channel) for m in self.messages]


@dataclass
class Bot:
    client: TestClient
    agent: FakeAgent
    channels: dict[str, InputChannel]
    sent: list[tuple[GraphClient, dict[str, Any]]]  # Messenger Send API calls

    def rest(self, sender: str, message: Any, **extra: Any) -> Any:
        response = self.client.post(WEBHOOK, json={"sender": sender, "message": message, **extra})
        assert response.status_code == 200, response.text
        return response.json()

    def drain(self) -> None:
        """Waits for the Messenger channel's background work (it acknowledges webhooks at once)."""
        messenger = self.channels["facebook"]

        async def wait() -> None:
            await asyncio.gather(*list(messenger._tasks))

        assert self.client.portal is not None
        self.client.portal.call(wait)

    def sent_messages(self) -> list[dict[str, Any]]:
        return [body["message"] for _, body in self.sent if "message" in body]


def rasa_channels() -> list[InputChannel]:
    """What `rasa run` builds from credentials.yml (rasa.core.run.create_http_input_channels;
    that module imports TensorFlow, so its few lines are repeated here). The file is read with
    Rasa's YAML reader (${VAR} expanded), without its schema check (pykwalify, slow)."""
    credentials = read_yaml_file(ROOT / "credentials.yml")
    return [class_from_module_path(name).from_credentials(value) for name, value in credentials.items()]


def launch(
    patch: pytest.MonkeyPatch, stack: ExitStack, workdir: Path, messenger: bool = True, **env: str
) -> Bot:
    """The channels of credentials.yml on a new Sanic app, built in this environment."""
    for name in (
        guard.ENV_MAX_CHARS,
        guard.ENV_RATE_LIMIT,
        "CHAT_CAGOU_WEB_ORIGINS",
        "FB_MESSENGER_REQUIRED",
        "FB_VERIFY",
        "FB_SECRET",
        "FB_PAGE_ACCESS_TOKEN",
    ):
        patch.delenv(name, raising=False)
    patch.setenv(guard.ENV_RATE_STORE, "memory")
    patch.setenv("FB_DEDUPE_DB", str(workdir / "messenger_mids.db"))
    patch.setenv("FB_GRAPH_API_URL", GRAPH_URL)
    if messenger:
        env = {"FB_VERIFY": FB_VERIFY, "FB_SECRET": FB_SECRET, "FB_PAGE_ACCESS_TOKEN": FB_TOKEN, **env}
    for name, value in env.items():
        patch.setenv(name, value)
    patch.setattr(guard, "_guard", None)  # the process's guard, rebuilt from this environment
    sent: list[tuple[GraphClient, dict[str, Any]]] = []

    async def send(self: GraphClient, body: dict[str, Any]) -> bool:
        sent.append((self, body))
        return True

    patch.setattr(GraphClient, "send", send)
    # Sanic 21.12 rewrites some of its own methods when an app starts ("touchup"); a second app
    # started in one process fails unless test mode keeps the originals (as sanic-testing does)
    patch.setattr(Sanic, "test_mode", True)
    channels = rasa_channels()
    app = Sanic(f"chat_cagou_channels_{next(_app_names)}", configure_logging=False)
    agent = FakeAgent()
    register(channels, app, route="/webhooks/")
    app.ctx.agent = agent
    client = stack.enter_context(TestClient(app, base_url="http://rasa.test"))
    return Bot(client, agent, {c.name(): c for c in channels}, sent)


@pytest.fixture
def start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., Bot]]:
    """start(messenger=True, **env) -> a Bot of its own, for tests of settings or of state."""
    with ExitStack() as stack:
        yield lambda messenger=True, **env: launch(monkeypatch, stack, tmp_path, messenger, **env)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    with pytest.MonkeyPatch.context() as patch, ExitStack() as stack:
        yield launch(patch, stack, tmp_path_factory.mktemp("channels"))


@pytest.fixture
def bot(shared: Bot, monkeypatch: pytest.MonkeyPatch) -> Bot:
    """The default-settings Bot, shared by the tests that leave no state behind: a fresh
    agent, Send API record and guard (rate limit windows) for each."""
    shared.agent.messages.clear()
    shared.agent.mode, shared.agent.buttons = "answer", None
    shared.sent.clear()
    monkeypatch.setattr(guard, "_guard", None)
    return shared


# --- REST -------------------------------------------------------------------------------


def test_rest_message_gets_the_reply(bot):
    assert bot.client.get("/webhooks/rest/").json() == {"status": "ok"}
    reply = bot.rest("client-42", "code PUK svp", metadata={"page": "/contact"})
    assert reply == [{"recipient_id": "client-42", "text": "Bien reçu : code PUK svp"}]
    (message,) = bot.agent.messages
    # the tracker's sender id is namespaced per channel; the answer names the client's sender
    assert (message.sender_id, message.text, message.input_channel) == (
        "rest:client-42",
        "code PUK svp",
        "rest",
    )
    assert message.metadata == {"page": "/contact"}

    bot.agent.buttons = BUTTONS
    assert bot.rest("client-42", "bonjour") == [
        {"recipient_id": "client-42", "text": "Bien reçu : bonjour", "buttons": BUTTONS}
    ]


def test_rest_stream_goes_through_the_guard_too(bot):
    streamed = bot.client.post(WEBHOOK + "?stream=true", json={"sender": "client-7", "message": "allo"})
    assert streamed.headers["content-type"] == "text/event-stream"
    assert [json.loads(line) for line in streamed.text.splitlines()] == [
        {"recipient_id": "client-7", "text": "Bien reçu : allo"}
    ]
    empty = bot.client.post(WEBHOOK + "?stream=true", json={"sender": "client-7", "message": " \u200b "})
    assert [json.loads(line)["text"] for line in empty.text.splitlines()] == [answers.EMPTY_TEXT]
    assert bot.agent.seen() == [("rest:client-7", "allo", "rest")]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{pas du json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"", "invalid_json"),
        (b'["bonjour"]', "invalid_payload"),
        (b'{"message": "bonjour"}', "invalid_sender"),
        (b'{"sender": "a b", "message": "bonjour"}', "invalid_sender"),
        (b'{"sender": "../../admin", "message": "bonjour"}', "invalid_sender"),
        (json.dumps({"sender": "x" * 129, "message": "bonjour"}).encode(), "invalid_sender"),
        (b'{"sender": 42, "message": "bonjour"}', "invalid_sender"),
        (b'{"sender": "client-1"}', "invalid_message"),
        (b'{"sender": "client-1", "message": 5}', "invalid_message"),
        (b'{"sender": "client-1", "message": "bonjour", "metadata": "x"}', "invalid_metadata"),
        (
            json.dumps({"sender": "c", "message": "b", "metadata": {"x": "y" * 5000}}).encode(),
            "invalid_metadata",
        ),
    ],
)
def test_rest_refuses_malformed_requests_with_400(bot, body, error):
    response = bot.client.post(WEBHOOK, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert response.json()["usage"] == 'POST {"sender": "<id>", "message": "<texte>"}'
    assert bot.agent.messages == []


@pytest.mark.parametrize(
    ("message", "reply"),
    [
        ("", answers.EMPTY_TEXT),
        ("   \n\t ", answers.EMPTY_TEXT),
        ("\x00\x07\u202e\ufeff", answers.EMPTY_TEXT),  # nothing left once cleaned
        ("a" * 1001, answers.too_long(1000)),
    ],
)
def test_rest_empty_or_too_long_gets_the_polite_reply_and_never_reaches_rasa(bot, message, reply):
    assert bot.rest("client-1", message) == [{"recipient_id": "client-1", "text": reply}]
    assert bot.agent.messages == []


def test_rest_length_limit_comes_from_the_environment(start):
    bot = start(CHAT_CAGOU_MAX_MESSAGE_CHARS="20")
    assert bot.rest("client-1", "x" * 20)[0]["text"] == "Bien reçu : " + "x" * 20
    assert bot.rest("client-1", "x" * 21) == [{"recipient_id": "client-1", "text": answers.too_long(20)}]
    assert len(bot.agent.messages) == 1


def test_rest_rate_limit_per_sender(start):
    bot = start(CHAT_CAGOU_RATE_LIMIT="3/60", CHAT_CAGOU_RATE_LIMIT_STORE="memory")
    for i in range(3):
        assert bot.rest("presse-1", f"message {i}")[0]["text"] == f"Bien reçu : message {i}"
    (refused,) = bot.rest("presse-1", "encore un")
    # the wait is the window's rest: 60 s, or 59 if a second went by
    assert refused["text"] in (answers.rate_limited(60), answers.rate_limited(59))
    assert bot.rest("patient", "bonjour")[0]["text"] == "Bien reçu : bonjour"  # one window per sender
    assert [text for _, text, _ in bot.agent.seen()] == ["message 0", "message 1", "message 2", "bonjour"]


def test_rest_strips_control_characters_before_rasa(bot):
    bot.rest(
        "client-1", "\ufeffbon\x00jour\u202e !\r\nça\tva ?\x1b[31m 👩\u200d💻 ", metadata={"k\x00": "v\x07"}
    )
    (message,) = bot.agent.messages
    assert message.text == "bonjour !\nça\tva ?[31m 👩\u200d💻"
    assert message.metadata == {"k": "v"}


def test_rest_input_channel_cannot_be_spoofed(bot):
    bot.rest("client-1", "bonjour", input_channel="facebook")
    assert bot.agent.messages[0].input_channel == "rest"


@pytest.mark.parametrize("mode", ["fail", "silent"])
def test_rest_turn_without_answer_gets_the_contacts(bot, mode):
    bot.agent.mode = mode
    reply = bot.rest("client-1", "code PUK svp")
    assert reply == [{"recipient_id": "client-1", "text": guard.unavailable_text()}]
    assert "1000" in reply[0]["text"]  # the Service Clientèle's number, from the fiche
    assert len(bot.agent.messages) == 1


# --- Messenger --------------------------------------------------------------------------


def messenger_body(text: str, mid: str | None = None, psid: str = PSID) -> bytes:
    """A webhook call as Messenger sends it for one typed message (`mid`: its id, new by default)."""
    mid = mid or "m_" + uuid.uuid4().hex
    event = {
        "sender": {"id": psid},
        "recipient": {"id": "104000000000001"},
        "timestamp": 1733200000000,
        "message": {"mid": mid, "text": text},
    }
    return json.dumps(
        {"object": "page", "entry": [{"id": "104000000000001", "time": 1733200000001, "messaging": [event]}]}
    ).encode()


def signature(body: bytes, secret: str = FB_SECRET, algorithm: str = "sha256") -> str:
    return f"{algorithm}=" + hmac.new(secret.encode(), body, algorithm).hexdigest()


def post_signed(bot: Bot, body: bytes, headers: dict[str, str] | None = None):
    headers = {"X-Hub-Signature-256": signature(body)} if headers is None else headers
    return bot.client.post(FB_WEBHOOK, content=body, headers={"content-type": "application/json", **headers})


def test_messenger_verification_handshake(bot):
    params = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}
    accepted = bot.client.get(FB_WEBHOOK, params={**params, "hub.verify_token": FB_VERIFY})
    assert accepted.status_code == 200 and accepted.text == "1158201444"
    for wrong in ({**params, "hub.verify_token": "devine"}, params, {"hub.verify_token": FB_VERIFY}):
        refused = bot.client.get(FB_WEBHOOK, params=wrong)
        assert refused.status_code == 403 and "1158201444" not in refused.text


def test_messenger_signed_message_reaches_rasa_and_the_reply_goes_to_the_send_api(bot):
    bot.agent.buttons = BUTTONS
    response = post_signed(bot, messenger_body("code PUK svp"))
    assert response.status_code == 200 and response.text == "EVENT_RECEIVED"
    bot.drain()
    assert bot.agent.seen() == [("fb:" + PSID, "code PUK svp", "facebook")]
    assert [body.get("sender_action") or "message" for _, body in bot.sent] == [
        "mark_seen",
        "typing_on",
        "message",
        "typing_off",
    ]
    client, reply = bot.sent[2]
    assert reply["recipient"] == {"id": PSID} and reply["messaging_type"] == "RESPONSE"
    # up to 3 buttons: a button template, with postbacks
    assert reply["message"]["attachment"]["payload"] == {
        "template_type": "button",
        "text": "Bien reçu : code PUK svp",
        "buttons": [
            {"type": "postback", "title": "Code PUK", "payload": "/code_puk"},
            {"type": "postback", "title": "Horaires", "payload": "/horaires"},
        ],
    }
    # the Send API client: the configured Graph URL, the token and its appsecret_proof
    assert client.base_url == GRAPH_URL
    assert client.params == {
        "access_token": FB_TOKEN,
        "appsecret_proof": hmac.new(FB_SECRET.encode(), FB_TOKEN.encode(), hashlib.sha256).hexdigest(),
    }


def test_messenger_retry_of_a_message_is_handled_once(bot):
    body = messenger_body("bonjour")
    for _ in range(2):
        assert post_signed(bot, body).status_code == 200
        bot.drain()
    assert bot.agent.seen() == [("fb:" + PSID, "bonjour", "facebook")]
    assert bot.sent_messages() == [{"text": "Bien reçu : bonjour"}]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="unsigned"),
        pytest.param({"X-Hub-Signature-256": "sha256=" + "0" * 64}, id="forged"),
        pytest.param({"X-Hub-Signature-256": "SIGN"}, id="wrong-secret"),
        pytest.param({"X-Hub-Signature-256": "SIGN-OTHER-BODY"}, id="other-body"),
        pytest.param({"X-Hub-Signature-256": "SHA1"}, id="sha1-in-the-sha256-header"),
        pytest.param(
            {"X-Hub-Signature-256": "sha256=bad", "X-Hub-Signature": "SHA1"}, id="forged-beside-valid-sha1"
        ),
    ],
)
def test_messenger_refuses_missing_or_forged_signatures(bot, headers):
    body = messenger_body("bonjour")
    real = {
        "SIGN": signature(body, secret="pas-le-secret"),
        "SIGN-OTHER-BODY": signature(messenger_body("autre chose")),
        "SHA1": signature(body, algorithm="sha1"),
    }
    refused = post_signed(bot, body, {name: real.get(value, value) for name, value in headers.items()})
    assert refused.status_code == 403 and refused.text == "forbidden"
    bot.drain()
    assert bot.agent.messages == [] and bot.sent == []
    # a refused call does not use up the message id: Messenger's genuine delivery still counts
    assert post_signed(bot, body).status_code == 200
    bot.drain()
    assert bot.agent.seen() == [("fb:" + PSID, "bonjour", "facebook")]


def test_messenger_accepts_the_sha1_header_alone(bot):
    body = messenger_body("horaires ?")
    assert post_signed(bot, body, {"X-Hub-Signature": signature(body, algorithm="sha1")}).status_code == 200
    bot.drain()
    assert bot.agent.seen() == [("fb:" + PSID, "horaires ?", "facebook")]


def test_messenger_signed_but_malformed_body_is_400(bot):
    for body in (b"{pas du json", b'["liste"]', b'{"entry": [{"messaging": "texte"}]}'):
        response = post_signed(bot, body)
        assert response.status_code == 400, body
    assert bot.agent.messages == []


def test_messenger_guard_answers_through_the_send_api(bot):
    assert post_signed(bot, messenger_body("a" * 1001)).status_code == 200
    bot.drain()
    assert bot.agent.messages == []
    assert bot.sent_messages() == [{"text": answers.too_long(1000)}]


def test_messenger_without_its_secrets_is_disabled(start):
    bot = start(messenger=False)
    assert bot.client.get("/webhooks/facebook/").json() == {"status": "disabled"}
    body = messenger_body("bonjour")
    assert post_signed(bot, body).status_code == 503
    assert bot.client.get(FB_WEBHOOK, params={"hub.verify_token": FB_VERIFY}).status_code == 503
    assert bot.agent.messages == [] and bot.sent == []


def test_messenger_with_some_secrets_missing_refuses_to_start(monkeypatch):
    monkeypatch.setenv("FB_VERIFY", FB_VERIFY)
    monkeypatch.delenv("FB_SECRET", raising=False)
    monkeypatch.delenv("FB_PAGE_ACCESS_TOKEN", raising=False)
    with pytest.raises(MessengerConfigError, match="FB_SECRET, FB_PAGE_ACCESS_TOKEN"):
        MessengerInput.from_credentials(None)


# --- socket.io (the website widget), over engine.io long-polling ------------------------


class Widget:
    """The widget's side of socket.io over long-polling (engine.io 4 protocol), as raw HTTP."""

    def __init__(self, client: TestClient, origin: str | None = WIDGET):
        self.client = client
        self.headers = {"Origin": origin} if origin else {}
        self.sid = ""
        self.pending: list[tuple[str, Any]] = []

    def handshake(self):
        return self.client.get(
            "/socket.io/", params={"EIO": "4", "transport": "polling"}, headers=self.headers
        )

    def connect(self) -> Widget:
        opened = self.handshake()
        assert opened.status_code == 200, opened.text
        assert opened.text.startswith("0")
        self.sid = json.loads(opened.text[1:])["sid"]
        self._post("40")
        packets = self._poll()
        assert packets and packets[0].startswith("40{"), packets
        return self

    def _url(self) -> str:
        return f"/socket.io/?EIO=4&transport=polling&sid={self.sid}"

    def _post(self, packet: str) -> None:
        response = self.client.post(self._url(), content=packet.encode(), headers=self.headers)
        assert response.status_code == 200 and response.text == "OK", response.text

    def _poll(self) -> list[str]:
        response = self.client.get(self._url(), headers=self.headers)
        assert response.status_code == 200, response.text
        return response.text.split("\x1e")

    def emit(self, event: str, data: Any) -> None:
        self._post("42" + json.dumps([event, data]))

    def receive(self, event: str) -> Any:
        """The next `event` from the server. A poll returns as soon as the server has a packet
        queued (else at its next ping, 25 s): a few polls are plenty."""
        for _ in range(5):
            for i, (name, data) in enumerate(self.pending):
                if name == event:
                    del self.pending[i]
                    return data
            for packet in self._poll():
                if packet.startswith("42"):
                    name, data = json.loads(packet[2:])
                    self.pending.append((name, data))
        raise AssertionError(f"no {event!r} from the server; got {self.pending}")

    def session(self, session_id: Any) -> str:
        self.emit("session_request", {"session_id": session_id})
        return self.receive("session_confirm")


def test_socketio_checks_the_origin_and_offers_polling_only(bot):
    evil = Widget(bot.client, origin="https://evil.example").handshake()
    assert evil.status_code == 400 and "not an accepted origin" in evil.text
    opened = Widget(bot.client).handshake()
    assert opened.status_code == 200
    assert opened.headers["access-control-allow-origin"] == WIDGET
    assert "access-control-allow-credentials" not in opened.headers
    # the WebSocket transport does not work under Sanic 21.12 on Python 3.11: never offered
    assert json.loads(opened.text[1:])["upgrades"] == []
    websocket = bot.client.get(
        "/socket.io/", params={"EIO": "4", "transport": "websocket"}, headers={"Origin": WIDGET}
    )
    assert websocket.status_code == 400
    # no Origin header: not a browser, nothing to check (as in engine.io)
    assert Widget(bot.client, origin=None).handshake().status_code == 200


def test_socketio_origins_from_the_environment_replace_credentials(start):
    bot = start(CHAT_CAGOU_WEB_ORIGINS="https://www.opt.nc, https://chat.opt.nc/")
    assert bot.channels["socketio"].allowed_origins == ["https://www.opt.nc", "https://chat.opt.nc"]
    assert Widget(bot.client, origin=WIDGET).handshake().status_code == 400
    assert Widget(bot.client, origin="https://chat.opt.nc").handshake().status_code == 200


def test_socketio_store_setting_is_checked(start):
    with pytest.raises(SocketIOConfigError, match="CHAT_CAGOU_SOCKETIO_STORE"):
        start(CHAT_CAGOU_SOCKETIO_STORE="postgres")


def test_a_staff_message_reaches_the_widget_marked_as_such(bot):
    widget = Widget(bot.client).connect()
    token = widget.session(None)
    bot.agent.mode = "staff"
    widget.emit("user_uttered", {"session_id": token, "message": "allô"})
    assert widget.receive("bot_uttered") == {"text": "Bien reçu : allô", "agent": "Marie", "notice": "joined"}


def test_the_assistants_silence_while_a_person_answers_is_not_an_outage(bot):
    """The HELD marker counts as the turn's answer (no contacts sent) and is never shown."""
    bot.agent.mode = "held"
    assert bot.rest("client-held", "je suis toujours là") == []
    assert bot.agent.seen() == [("rest:client-held", "je suis toujours là", "rest")]


def test_socketio_session_and_message(bot):
    widget = Widget(bot.client).connect()
    token = widget.session(None)  # a new conversation: the server issues a signed id
    session = token.split(".")[0]
    widget.emit("user_uttered", {"session_id": token, "message": "bon\x00jour\u202e"})
    assert widget.receive("bot_uttered") == {"text": "Bien reçu : bonjour"}
    bot.agent.buttons = BUTTONS
    widget.emit("user_uttered", {"session_id": token, "message": "et ensuite ?"})
    # Rasa's socket.io output: buttons become quick replies
    assert widget.receive("bot_uttered") == {
        "text": "Bien reçu : et ensuite ?",
        "quick_replies": [
            {"content_type": "text", "title": "Code PUK", "payload": "/code_puk"},
            {"content_type": "text", "title": "Horaires", "payload": "/horaires"},
        ],
    }
    # the tracker's sender id: "web:" and the id, never the signature
    assert bot.agent.seen() == [
        ("web:" + session, "bonjour", "socketio"),
        ("web:" + session, "et ensuite ?", "socketio"),
    ]
    # a reload: a new socket sends the signed id back and continues the conversation
    again = Widget(bot.client).connect()
    assert again.session(token) == token


@pytest.mark.parametrize("asked", ["../../etc/passwd", "court", "x" * 65, 12345678, None])
def test_socketio_replaces_an_unfit_session_id(bot, asked):
    widget = Widget(bot.client).connect()
    given = widget.session(asked)
    assert given != asked and re.fullmatch(r"[0-9a-f]{32}\.[A-Za-z0-9_-]{43}", given)


def test_socketio_drops_a_message_for_a_session_the_socket_did_not_ask_for(bot):
    victim = Widget(bot.client).connect()
    victim_token = victim.session(None)
    intruder = Widget(bot.client).connect()
    intruder_token = intruder.session(None)
    intruder.emit("user_uttered", {"session_id": victim_token, "message": "je suis la victime"})
    intruder.emit("user_uttered", {"message": "sans session"})
    # handlers run in order: once this one is answered, the ones before it have run
    intruder.emit("user_uttered", {"session_id": intruder_token, "message": "témoin"})
    assert intruder.receive("bot_uttered") == {"text": "Bien reçu : témoin"}
    assert bot.agent.seen() == [("web:" + intruder_token.split(".")[0], "témoin", "socketio")]


def test_socketio_guard_answers_empty_and_unreadable_messages(bot):
    widget = Widget(bot.client).connect()
    token = widget.session(None)
    widget.emit("user_uttered", {"session_id": token, "message": "  "})
    assert widget.receive("bot_uttered") == {"text": answers.EMPTY_TEXT}
    widget.emit("user_uttered", {"session_id": token, "message": {"text": "objet"}})
    assert widget.receive("bot_uttered") == {"text": answers.UNREADABLE_TEXT}
    assert bot.agent.messages == []
