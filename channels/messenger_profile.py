"""The Messenger page's profile (`make messenger-profile`): the Get Started button, the greeting,
the persistent menu and the ice breakers, through the Graph API's `/me/messenger_profile`.

    python -m channels.messenger_profile            # set them (the same body every time)
    python -m channels.messenger_profile --show     # print what the page has now
    python -m channels.messenger_profile --delete   # remove the four fields

It reads the channel's variables: FB_PAGE_ACCESS_TOKEN (required), FB_SECRET (appsecret_proof,
when set) and FB_GRAPH_API_URL (https; plain http only to a loopback stub, the rule of
deploy/check_env.py). The texts are in actions/answers.py; every payload is one the input guard
keeps as an intent command (channels/guard.py `button_payloads()`), so a tap reaches Rasa as
our button would. Exit code 0 when done, 1 when the Graph API refused or could not be reached,
2 for a configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from actions import answers
from channels.messenger import (
    DEFAULT_GRAPH_URL,
    ENV_GRAPH_URL,
    ENV_SECRET,
    ENV_TOKEN,
    GraphClient,
    GraphReply,
)

EDGE = "messenger_profile"
FIELDS = ("get_started", "greeting", "persistent_menu", "ice_breakers")
# The payload of the Get Started button: what the widget sends to get the first message.
GET_STARTED = "/demarrer"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class ProfileError(Exception):
    """A configuration error, for the operator (exit code 2)."""


def profile_body() -> dict[str, Any]:
    """The body of `POST /me/messenger_profile`: the same on every run."""
    return {
        "get_started": {"payload": GET_STARTED},
        "greeting": [{"locale": "default", "text": answers.MESSENGER_GREETING}],
        "persistent_menu": [
            {
                "locale": "default",
                "composer_input_disabled": False,
                "call_to_actions": [
                    {"type": "postback", "title": title, "payload": payload}
                    for title, payload in answers.MESSENGER_MENU
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


def payloads(body: Mapping[str, Any]) -> list[str]:
    """Every payload a customer can send by tapping something of `body`."""
    found = [body["get_started"]["payload"]]
    for name in ("persistent_menu", "ice_breakers"):
        for locale in body[name]:
            found += [action["payload"] for action in locale["call_to_actions"]]
    return found


def client_from_env(env: Mapping[str, str]) -> GraphClient:
    token = env.get(ENV_TOKEN, "").strip()
    if not token:
        raise ProfileError(
            f"{ENV_TOKEN} is not set: export the page access token (the channel's variable, "
            "see docs/channels.md, Setting up the Facebook app)."
        )
    url = env.get(ENV_GRAPH_URL, "").strip() or DEFAULT_GRAPH_URL
    parts = urlsplit(url)
    if not (parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK)):
        raise ProfileError(
            f"{ENV_GRAPH_URL} must be an https:// URL (plain http only to a loopback test stub), "
            f"not {parts.scheme}://{parts.hostname}"
        )
    return GraphClient(token, env.get(ENV_SECRET, "").strip(), url)


def failure(reply: GraphReply, client: GraphClient) -> str:
    """Why the call failed, in English, without the token even if Facebook quoted it."""
    if reply.status:
        message = f"The Graph API refused the request (HTTP {reply.status}): {reply.error_message}"
    else:
        message = f"The Graph API at {client.base_url} could not be reached ({reply.text})"
    token = client.params["access_token"]
    return message.replace(token, "[FB_PAGE_ACCESS_TOKEN]")


async def run(client: GraphClient, action: str) -> GraphReply:
    try:
        if action == "show":
            return await client.request("GET", EDGE, params={"fields": ",".join(FIELDS)})
        if action == "delete":
            return await client.request("DELETE", EDGE, {"fields": list(FIELDS)})
        return await client.request("POST", EDGE, profile_body())
    finally:
        await client.close()


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make messenger-profile", description="Set the Messenger page's profile (Get Started, menu...)."
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--show", action="store_true", help="print what the page has now")
    what.add_argument("--delete", action="store_true", help="remove the four fields")
    args = parser.parse_args(argv)
    action = "show" if args.show else "delete" if args.delete else "set"
    try:
        client = client_from_env(os.environ if env is None else env)
    except ProfileError as error:
        print(f"messenger-profile: {error}", file=sys.stderr)
        return 2
    reply = asyncio.run(run(client, action))
    if not reply.ok:
        print(f"messenger-profile: {failure(reply, client)}", file=sys.stderr)
        return 1
    if action == "show":
        data = reply.data.get("data") if isinstance(reply.data, dict) else None
        current = data[0] if data else {}
        print(json.dumps(current, ensure_ascii=False, indent=2) if current else "No profile field is set.")
    elif action == "delete":
        print("Messenger profile: " + ", ".join(FIELDS) + " removed.")
    else:
        print(
            f"Messenger profile set: get_started ({GET_STARTED}), greeting, persistent_menu "
            f"({len(answers.MESSENGER_MENU)} entries), ice_breakers ({len(answers.MESSENGER_ICE_BREAKERS)} questions)."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
