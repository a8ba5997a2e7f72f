"""Security of the channels, in-process (issue 13): flood bounds, conversations that belong to
their channel and their owner, and no 500 or intent command from customer input.

The channels of credentials.yml on a bare Sanic app with a fake Rasa, as in
tests/test_channels_app.py (whose helpers this module uses): fast tier, no model, no server.
The same properties through nginx and real Rasa instances are in tests/test_security_prod.py.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml

from actions import answers
from channels import guard
from channels.messenger import MessengerOutput, psid_of
from channels.socketio import (
    MAX_PACKETS_PER_REQUEST,
    MAX_SESSIONS_PER_SOCKET,
    SessionSigner,
    SocketIOConfigError,
)
from deploy.check_env import problems
from tests.test_channels_app import (
    PSID,
    WEBHOOK,
    Bot,
    Widget,
    launch,
    messenger_body,
    post_signed,
)

ROOT = Path(__file__).resolve().parent.parent
TOKEN = re.compile(r"^[0-9a-f]{32}\.[A-Za-z0-9_-]{43}$")


@pytest.fixture
def start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., Bot]]:
    """start(**env) -> the channels on a Sanic app of their own, built in this environment."""
    monkeypatch.delenv("CHAT_CAGOU_SESSION_SECRET", raising=False)
    with ExitStack() as stack:
        yield lambda messenger=True, **env: launch(monkeypatch, stack, tmp_path, messenger, **env)


@pytest.fixture
def bot(start: Callable[..., Bot]) -> Bot:
    return start()


def texts_seen(bot: Bot) -> list[str]:
    return [text for _, text, _ in bot.agent.seen()]


# --- 1. flooding --------------------------------------------------------------------------


def test_socketio_polling_post_with_too_many_packets_is_refused(bot):
    widget = Widget(bot.client).connect()
    token = widget.session(None)
    packet = "42" + json.dumps(["user_uttered", {"session_id": token, "message": "bonjour"}])
    flood = "\x1e".join([packet] * (MAX_PACKETS_PER_REQUEST + 1))
    refused = bot.client.post(widget._url(), content=flood.encode(), headers=widget.headers)
    assert refused.status_code == 400
    assert bot.agent.messages == []
    # the widget's own requests (a packet or two) still pass
    widget._post("\x1e".join([packet] * 2))
    assert widget.receive("bot_uttered") == {"text": "Bien reçu : bonjour"}


def test_socketio_long_polling_post_size_is_bounded(bot):
    assert bot.channels["socketio"].sio.eio.max_http_buffer_size <= 64 * 1024


def test_socketio_socket_holds_at_most_two_sessions(bot):
    widget = Widget(bot.client).connect()
    tokens = [widget.session(None) for _ in range(MAX_SESSIONS_PER_SOCKET + 3)]
    assert len(set(tokens)) == len(tokens)
    rooms = bot.channels["socketio"].sio.manager.rooms["/"]
    joined = [room for room, members in rooms.items() if str(room).startswith("web:") and members]
    assert len(joined) == MAX_SESSIONS_PER_SOCKET
    # the oldest sessions were left: their messages are dropped, the newest are answered
    widget.emit("user_uttered", {"session_id": tokens[0], "message": "ancienne"})
    widget.emit("user_uttered", {"session_id": tokens[-1], "message": "récente"})
    assert widget.receive("bot_uttered") == {"text": "Bien reçu : récente"}
    assert texts_seen(bot) == ["récente"]


def test_rate_limit_counts_refused_messages_too(start):
    bot = start(CHAT_CAGOU_RATE_LIMIT="3/60")
    for message in ("a" * 1001, "", "x" * 5000):
        assert bot.rest("presse", message)[0]["text"] != answers.rate_limited(60)
    (refused,) = bot.rest("presse", "bonjour")
    assert refused["text"] in (answers.rate_limited(60), answers.rate_limited(59))
    assert bot.agent.messages == []


def test_rate_limit_per_connection_across_its_sessions(start):
    bot = start(CHAT_CAGOU_RATE_LIMIT="3/60")
    widget = Widget(bot.client).connect()
    first, second = widget.session(None), widget.session(None)
    for token, text in ((first, "un"), (second, "deux"), (first, "trois"), (second, "quatre")):
        widget.emit("user_uttered", {"session_id": token, "message": text})
    received = [widget.receive("bot_uttered")["text"] for _ in range(4)]
    assert sorted(texts_seen(bot)) == ["deux", "trois", "un"]
    assert sum(text.startswith("Bien reçu") for text in received) == 3
    assert any("patienter" in text for text in received)


def test_far_too_long_text_is_refused_before_it_is_cleaned(bot, monkeypatch):
    cleaned: list[int] = []
    real = guard.clean_text
    monkeypatch.setattr(guard, "clean_text", lambda text: cleaned.append(len(text)) or real(text))
    assert bot.rest("client-1", "é" * 200_000) == [
        {"recipient_id": "client-1", "text": answers.too_long(1000)}
    ]
    assert cleaned == []
    assert bot.agent.messages == []


# --- 2. conversations belong to their channel and their owner ----------------------------


def test_sender_ids_are_namespaced_per_channel(bot):
    bot.rest("fb:" + PSID, "je me fais passer pour Messenger")
    assert post_signed(bot, messenger_body("bonjour")).status_code == 200
    bot.drain()
    widget = Widget(bot.client).connect()
    token = widget.session(None)
    widget.emit("user_uttered", {"session_id": token, "message": "depuis le site"})
    widget.receive("bot_uttered")
    assert bot.agent.seen() == [
        ("rest:fb:" + PSID, "je me fais passer pour Messenger", "rest"),
        ("fb:" + PSID, "bonjour", "facebook"),
        ("web:" + token.split(".")[0], "depuis le site", "socketio"),
    ]
    # Messenger's replies still go to the raw page-scoped id
    assert {body["recipient"]["id"] for _, body in bot.sent} == {PSID}


def test_rest_longest_sender_still_answered_with_its_prefix(bot):
    sender = "x" * 128
    assert bot.rest(sender, "bonjour") == [{"recipient_id": sender, "text": "Bien reçu : bonjour"}]
    assert bot.agent.seen() == [("rest:" + sender, "bonjour", "rest")]


def test_messenger_output_strips_the_prefix():
    sent: list[dict[str, Any]] = []

    class Client:
        async def send(self, body: dict[str, Any]) -> bool:
            sent.append(body)
            return True

    async def reply() -> None:
        output = MessengerOutput(Client())  # type: ignore[arg-type]
        await output.send_text_message("fb:" + PSID, "Bonjour")
        await output.send_action("fb:" + PSID, "typing_on")

    asyncio.run(reply())
    assert [body["recipient"]["id"] for body in sent] == [PSID, PSID]
    assert psid_of(PSID) == PSID


@pytest.mark.parametrize(
    "asked",
    [
        pytest.param("FORGED", id="forged-signature"),
        pytest.param("OTHER-SECRET", id="signed-with-another-secret"),
        pytest.param("ID-ONLY", id="the-id-without-signature"),
        pytest.param("SENDER", id="the-tracker-sender-id"),
        pytest.param("0123456789abcdef0123456789abcdef", id="guessed"),
    ],
)
def test_socketio_unsigned_or_forged_session_id_gets_a_new_one(bot, asked):
    victim = Widget(bot.client).connect()
    victim_token = victim.session(None)
    victim_id, signature = victim_token.split(".")
    forged = {
        "FORGED": victim_id + "." + ("A" if signature[0] != "A" else "B") + signature[1:],
        "OTHER-SECRET": victim_id + "." + SessionSigner("un-autre-secret-" * 4)._signature(victim_id),
        "ID-ONLY": victim_id,
        "SENDER": "web:" + victim_id,
    }.get(asked, asked)
    intruder = Widget(bot.client).connect()
    given = intruder.session(forged)
    assert TOKEN.match(given) and given.split(".")[0] != victim_id
    # the victim's replies never reach the intruder; its forged messages are dropped
    intruder.emit("user_uttered", {"session_id": forged, "message": "lu ?"})
    victim.emit("user_uttered", {"session_id": victim_token, "message": "mon code PUK"})
    assert victim.receive("bot_uttered") == {"text": "Bien reçu : mon code PUK"}
    assert texts_seen(bot) == ["mon code PUK"]
    # the victim's room (where its replies go) holds the victim's socket only
    rooms = bot.channels["socketio"].sio.manager.rooms["/"]
    assert set(rooms["web:" + victim_id]) == {victim_sid(bot, victim)}


def victim_sid(bot: Bot, widget: Widget) -> str:
    """The socket.io id of `widget`'s connection (engine.io sid -> socket.io sid)."""
    manager = bot.channels["socketio"].sio.manager
    return next(sid for sid, eio_sid in manager.rooms["/"][None].items() if eio_sid == widget.sid)


def test_socketio_signed_session_is_kept_across_sockets_and_instances(start):
    secret = "s3cr3t-de-session-" + "0123456789abcdef" * 2
    first = start(CHAT_CAGOU_SESSION_SECRET=secret)
    token = Widget(first.client).connect().session(None)
    assert TOKEN.match(token)
    second = start(CHAT_CAGOU_SESSION_SECRET=secret)  # another Rasa instance, same secret
    assert Widget(second.client).connect().session(token) == token
    third = start(CHAT_CAGOU_SESSION_SECRET="")  # no secret: a random one, which refuses the others' ids
    assert Widget(third.client).connect().session(token) != token


def test_socketio_without_secret_logs_its_random_one(caplog):
    with caplog.at_level("WARNING", logger="channels.socketio"):
        signer = SessionSigner(None)
    assert "CHAT_CAGOU_SESSION_SECRET is not set" in caplog.text
    assert signer.session_of(signer.issue()) is not None


# --- 8. never a 500, never an intent command from a customer ----------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 100_000, id="nested-lists"),
        pytest.param(b'{"a":' * 100_000, id="nested-objects"),
        pytest.param(
            b'{"sender": "c", "message": "m", "metadata": ' + b'{"a":' * 50_000 + b"1" + b"}" * 50_001,
            id="nested-metadata",
        ),
        pytest.param(
            b'{"sender": "c", "message": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", id="nested-message"
        ),
    ],
)
def test_rest_deeply_nested_json_is_a_400(bot, body):
    response = bot.client.post(WEBHOOK, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert bot.agent.messages == []


def test_socketio_deeply_nested_packet_is_not_a_500(bot):
    widget = Widget(bot.client).connect()
    token = widget.session(None)
    deep = "42" + '["user_uttered",' + "[" * 100_000 + "]" * 100_000 + "]"
    response = bot.client.post(widget._url(), content=deep.encode(), headers=widget.headers)
    assert response.status_code < 500
    assert bot.agent.messages == []
    # the socket (or a new one) still works
    widget = Widget(bot.client).connect()
    assert widget.session(token) == token


def test_messenger_deeply_nested_signed_body_is_a_400(bot):
    assert post_signed(bot, b"[" * 100_000).status_code == 400


@pytest.mark.parametrize("value", ["", " ", ",", " , "])
def test_empty_web_origins_refuse_to_start(start, value):
    with pytest.raises(SocketIOConfigError, match="CHAT_CAGOU_WEB_ORIGINS"):
        start(CHAT_CAGOU_WEB_ORIGINS=value)
    assert any("CHAT_CAGOU_WEB_ORIGINS" in p for p in problems({"CHAT_CAGOU_WEB_ORIGINS": value}))


COMMANDS = [
    ("/restart", "restart"),
    ("/intent@0.0{...}", "intent@0.0{...}"),
    ("/greet", "greet"),
    ("//restart", "restart"),
    ("/ /session_start", "session_start"),
    ('/horaires{"canal":"agence"}', 'horaires{"canal":"agence"}'),  # not a button of ours
    ('/perte_vol{"canal":"agence"} et aussi', 'perte_vol{"canal":"agence"} et aussi'),
    ("/perte_vol ", "/perte_vol"),  # stripped first: then exactly a payload of ours
]


@pytest.mark.parametrize(("typed", "passed"), COMMANDS)
def test_customer_text_never_reaches_rasa_as_an_intent_command(bot, typed, passed):
    # REST
    assert bot.rest("client-1", typed)[0]["text"] == f"Bien reçu : {passed}"
    # Messenger (typed text)
    assert post_signed(bot, messenger_body(typed)).status_code == 200
    bot.drain()
    # the widget
    widget = Widget(bot.client).connect()
    token = widget.session(None)
    widget.emit("user_uttered", {"session_id": token, "message": typed})
    assert widget.receive("bot_uttered") == {"text": f"Bien reçu : {passed}"}
    assert texts_seen(bot) == [passed] * 3


def test_only_slashes_is_an_empty_message(bot):
    assert bot.rest("client-1", " // ") == [{"recipient_id": "client-1", "text": answers.EMPTY_TEXT}]
    assert bot.agent.messages == []


def test_our_button_payloads_reach_rasa_unchanged(start):
    bot = start(CHAT_CAGOU_RATE_LIMIT="0/60")
    payloads = sorted(guard.button_payloads())
    assert '/perte_vol{"canal":"agence"}' in payloads and "/code_puk" in payloads and "/affirm" in payloads
    for payload in payloads:
        assert bot.rest("client-2", payload)[0]["text"] == f"Bien reçu : {payload}"
    assert texts_seen(bot) == payloads


def test_button_payloads_cover_every_payload_answers_writes():
    """Every payload written in actions/answers.py (a literal, or the f-strings of `button`
    and `channel_button`) is in the guard's list."""
    source = (ROOT / "actions" / "answers.py").read_text()
    literals = set(re.findall(r'"(/[a-z_]+)"', source))
    assert literals <= guard.button_payloads()
    assert {f"/{topic}" for topic in answers.TOPIC_TITLES} <= guard.button_payloads()


def test_the_widgets_start_payload_is_one_of_ours_and_an_intent_of_the_domain():
    """The widget asks for the first message with a payload the guard lets through as an
    intent command, and the domain knows that intent."""
    widget = (ROOT / "web" / "chat-cagou.js").read_text()
    payload = re.search(r'START_PAYLOAD = "(/[a-z_]+)"', widget).group(1)
    assert payload in guard.button_payloads()
    domain = yaml.safe_load((ROOT / "domain.yml").read_text())
    assert payload[1:] in domain["intents"]


def test_check_env_refuses_a_graph_api_that_is_not_https():
    def graph_problems(url: str) -> list[str]:
        return [p for p in problems({"FB_GRAPH_API_URL": url}) if "FB_GRAPH_API_URL" in p]

    assert graph_problems("http://graph.facebook.com/v21.0")
    assert graph_problems("ftp://graph.facebook.com")
    assert graph_problems("graph.facebook.com")
    assert not graph_problems("https://graph.facebook.com/v21.0")
    assert not graph_problems("http://127.0.0.1:8123/v21.0")  # the tests' local stub


def test_check_env_requires_the_session_secret():
    def secret_problems(env: dict[str, str]) -> list[str]:
        return [p for p in problems(env) if "CHAT_CAGOU_SESSION_SECRET" in p]

    assert secret_problems({})
    assert secret_problems({"CHAT_CAGOU_SESSION_SECRET": "CHANGE_ME"})
    assert secret_problems({"CHAT_CAGOU_SESSION_SECRET": "a1b2c3d4"})
    assert not secret_problems({"CHAT_CAGOU_SESSION_SECRET": "0123456789abcdef" * 4})


def test_check_env_checks_the_nginx_limits_and_trusted_proxies():
    valid = {"NGINX_REAL_IP_FROM": "10.0.0.0/8, 192.168.1.7", "NGINX_SOCKET_RATE_PER_IP": "10r/s"}
    assert all("NGINX" not in p for p in problems(valid))
    assert any("NGINX_REAL_IP_FROM" in p for p in problems({"NGINX_REAL_IP_FROM": "0.0.0.0/0; evil"}))
    assert any("NGINX_SOCKET_RATE_PER_IP" in p for p in problems({"NGINX_SOCKET_RATE_PER_IP": "lots"}))
