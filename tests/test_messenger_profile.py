"""The Messenger page's profile (`make messenger-profile`, channels/messenger_profile.py) against
the Graph API stub over real HTTP (harness/graph_stub.py), and the Get Started postback through
the channel to Rasa. No model, no Rasa process."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest
from rasa.core.channels.channel import UserMessage

from actions import answers
from actions.understanding import PAYLOAD_INTENTS
from channels import dedupe
from channels.dedupe import handed_over
from channels.guard import Guard, button_payloads, guarded
from channels.messenger import GraphClient, MessengerInput, webhook_events
from channels.messenger_profile import FIELDS, main, payloads, profile_body
from harness.graph_stub import GraphStub, Scripted
from harness.project import ROOT

TOKEN = "page-token-for-profile-tests"
SECRET = "app-secret-for-profile-tests"
PROOF = hmac.new(SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()

EXPECTED_BODY = {
    "get_started": {"payload": "/demarrer"},
    "greeting": [{"locale": "default", "text": answers.MESSENGER_GREETING}],
    "persistent_menu": [
        {
            "locale": "default",
            "composer_input_disabled": False,
            "call_to_actions": [
                {"type": "postback", "title": "Horaires", "payload": "/horaires"},
                {"type": "postback", "title": "Perte ou vol", "payload": "/perte_vol"},
                {"type": "postback", "title": "Code PUK", "payload": "/code_puk"},
                {"type": "postback", "title": "Parler à un conseiller", "payload": "/demander_humain"},
            ],
        }
    ],
    "ice_breakers": [
        {
            "locale": "default",
            "call_to_actions": [
                {"question": question, "payload": payload}
                for question, payload in answers.MESSENGER_ICE_BREAKERS
            ],
        }
    ],
}


@pytest.fixture
def stub() -> Iterator[GraphStub]:
    with closing(GraphStub()) as graph:
        yield graph


def env_for(stub: GraphStub, **extra: str) -> dict[str, str]:
    return {"FB_PAGE_ACCESS_TOKEN": TOKEN, "FB_SECRET": SECRET, "FB_GRAPH_API_URL": stub.url, **extra}


def requests_made(stub: GraphStub) -> list[tuple[str, str, dict[str, list[str]], Any]]:
    return [(c["method"], c["path"], c["query"], c["body"]) for c in stub.calls]


AUTH = {"access_token": [TOKEN], "appsecret_proof": [PROOF]}


# --- the command against the stub ---------------------------------------------------------


def test_set_posts_the_profile_and_twice_sends_the_same_body(stub, capsys):
    assert main([], env_for(stub)) == 0
    assert "Messenger profile set" in capsys.readouterr().out
    assert main([], env_for(stub)) == 0
    assert requests_made(stub) == [("POST", "/v21.0/me/messenger_profile", AUTH, EXPECTED_BODY)] * 2
    assert stub.profile == EXPECTED_BODY


def test_show_asks_the_four_fields_and_prints_what_the_page_has(stub, capsys):
    assert main(["--show"], env_for(stub)) == 0
    assert capsys.readouterr().out.strip() == "No profile field is set."
    assert main([], env_for(stub)) == 0
    capsys.readouterr()
    assert main(["--show"], env_for(stub)) == 0
    assert json.loads(capsys.readouterr().out) == EXPECTED_BODY
    shown = {**AUTH, "fields": ["get_started,greeting,persistent_menu,ice_breakers"]}
    get = ("GET", "/v21.0/me/messenger_profile", shown, {})
    assert requests_made(stub)[0] == get
    assert requests_made(stub)[2] == get


def test_delete_removes_the_four_fields(stub, capsys):
    stub.profile["whitelisted_domains"] = ["https://www.opt.nc"]  # not ours: kept
    assert main([], env_for(stub)) == 0
    assert main(["--delete"], env_for(stub)) == 0
    assert requests_made(stub)[1] == (
        "DELETE",
        "/v21.0/me/messenger_profile",
        AUTH,
        {"fields": ["get_started", "greeting", "persistent_menu", "ice_breakers"]},
    )
    assert stub.profile == {"whitelisted_domains": ["https://www.opt.nc"]}
    capsys.readouterr()
    assert main(["--show"], env_for(stub)) == 0
    assert capsys.readouterr().out.strip() == "No profile field is set."


def test_show_and_delete_together_are_refused(stub):
    with pytest.raises(SystemExit) as exit_:
        main(["--show", "--delete"], env_for(stub))
    assert exit_.value.code == 2
    assert stub.calls == []


def test_without_fb_secret_no_appsecret_proof(stub):
    env = env_for(stub)
    del env["FB_SECRET"]
    assert main([], env) == 0
    assert stub.calls[0]["query"] == {"access_token": [TOKEN]}


# --- errors ---------------------------------------------------------------------------------


def test_missing_token_exit_2_with_a_message(stub):
    """The module as `make messenger-profile` runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FB_")}
    env["FB_GRAPH_API_URL"] = stub.url
    run = subprocess.run(
        [sys.executable, "-m", "channels.messenger_profile"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "FB_PAGE_ACCESS_TOKEN is not set" in run.stderr
    assert stub.calls == []


@pytest.mark.parametrize(
    "url", ["http://graph.facebook.com/v21.0", "ftp://127.0.0.1/v21.0", "http://127.0.0.1.example.com/v21.0"]
)
def test_non_https_graph_url_exit_2(stub, capsys, url):
    assert main([], env_for(stub, FB_GRAPH_API_URL=url)) == 2
    error = capsys.readouterr().err
    assert "FB_GRAPH_API_URL must be an https:// URL" in error and TOKEN not in error


def test_http_to_localhost_is_accepted(stub, capsys):
    assert main([], env_for(stub, FB_GRAPH_API_URL=stub.url.replace("127.0.0.1", "localhost"))) == 0
    assert len(stub.calls) == 1


def test_graph_error_is_shown_without_the_token(stub, capsys):
    error = {
        "error": {
            "message": f"(#190) Invalid OAuth access token {TOKEN}",
            "type": "OAuthException",
            "code": 190,
        }
    }
    stub.script("messenger_profile", Scripted(400, error))
    assert main([], env_for(stub)) == 1
    output = capsys.readouterr()
    assert "HTTP 400" in output.err and "(#190) Invalid OAuth access token" in output.err
    assert TOKEN not in output.err + output.out
    assert len(stub.calls) == 1  # a 4xx is not retried
    assert stub.profile == {}


# --- the payloads ---------------------------------------------------------------------------


def test_every_payload_passes_the_guard_as_an_intent_command():
    body = profile_body()
    assert body == EXPECTED_BODY
    found = payloads(body)
    assert found[0] == "/demarrer" and "demarrer" in PAYLOAD_INTENTS
    assert len(found) == 1 + 4 + len(answers.MESSENGER_ICE_BREAKERS)
    assert set(found) <= button_payloads()


def test_texts_within_messenger_limits():
    assert len(answers.MESSENGER_GREETING) <= 160
    assert "automatique" in answers.MESSENGER_GREETING and "Mobilis Pro" in answers.MESSENGER_GREETING
    assert all(len(title) <= 30 for title, _ in answers.MESSENGER_MENU)
    assert 3 <= len(answers.MESSENGER_ICE_BREAKERS) <= 4
    assert all(len(question) <= 80 for question, _ in answers.MESSENGER_ICE_BREAKERS)
    assert set(FIELDS) == set(EXPECTED_BODY)


# --- the Get Started postback reaches Rasa as its payload -------------------------------------


def postback(psid: str, payload: str, title: str) -> dict[str, Any]:
    event = {
        "sender": {"id": psid},
        "recipient": {"id": "104000000000001"},
        "timestamp": 1733200000000,
        "postback": {"mid": "m_" + uuid.uuid4().hex, "title": title, "payload": payload},
    }
    return {
        "object": "page",
        "entry": [{"id": "104000000000001", "time": 1733200000001, "messaging": [event]}],
    }


def test_postbacks_reach_rasa_as_their_payload_through_the_guard(tmp_path, monkeypatch):
    monkeypatch.delenv(dedupe.ENV_STORE, raising=False)
    sent: list[dict[str, Any]] = []

    async def send(self: GraphClient, body: dict[str, Any]) -> bool:
        sent.append(body)
        return True

    monkeypatch.setattr(GraphClient, "send", send)
    channel = MessengerInput("verify", "secret", "token", dedupe_db=str(tmp_path / "mids.db"))
    seen: list[UserMessage] = []

    async def rasa(message: UserMessage) -> None:
        seen.append(message)
        await message.output_channel.send_text_message(message.sender_id, "réponse")

    events = webhook_events(postback("111", "/demarrer", "Démarrer"))
    events += webhook_events(postback("222", "/restart", "Recommencer"))  # not one of our payloads

    async def scenario() -> None:
        assert await channel.accept(events, guarded(handed_over(rasa), guard=Guard()), None)
        await asyncio.gather(*list(channel.queues.tasks))

    asyncio.run(scenario())
    assert [(m.sender_id, m.text, m.input_channel) for m in seen] == [
        ("fb:111", "/demarrer", "facebook"),
        ("fb:222", "restart", "facebook"),  # the guard removed the slash: no intent command
    ]
