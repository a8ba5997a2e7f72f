"""The REST channel: Rasa's, behind the input guard (channels/guard.py), strict on its input.

Same name ("rest") and URL (POST /webhooks/rest/webhook, {"sender": "...", "message": "..."})
and same answer (the list of bot messages) as Rasa's RestInput. Differences:
- a body that is not a JSON object, a `sender` that is not a short plain token, a `message`
  that is not a string, or `metadata` that is not a small JSON object get **400** with a
  JSON `{"error": ..., "detail": ...}` (Rasa's answers 500, or files the message under the
  shared sender "default" when `sender` is missing);
- the client cannot choose the `input_channel` stored in the tracker (Rasa's takes it from
  the body: a REST client could pass itself off as Messenger): it is always "rest";
- nor can it write into another channel's conversation: the tracker's sender id is
  "rest:" + `sender` (widget conversations are "web:...", Messenger's "fb:..."). The
  answer's `recipient_id` is the client's `sender`, as with Rasa's channel;
- deeply nested JSON is a 400 like any other malformed body (Python's parser raises
  RecursionError, which Rasa answers with a 500);
- every message goes through the guard: empty, too long or rate-limited messages get a polite
  French reply (HTTP 200, like any answer) and are not stored; a turn that produced no
  answer (action server down) gets the contacts message.
"""

from __future__ import annotations

import asyncio
import json
from asyncio import Queue
from collections.abc import Awaitable, Callable
from typing import Any

import rasa.utils.endpoints
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import QueueOutputChannel
from rasa.core.channels.rest import RestInput as RasaRestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse, ResponseStream

from channels.guard import CLIENT_ID, guarded, metadata_problem

USAGE = 'POST {"sender": "<id>", "message": "<texte>"}'
SENDER_PREFIX = "rest:"


class WholeAnswers:
    """An answer is one message. Rasa's output channels cut a text at each blank line into
    several messages; our answers put blank lines between their Markdown blocks
    (actions/markdown.py), which a Markdown client renders as paragraphs of one message."""

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self._persist_message(self._message(recipient_id, text=text.strip()))  # type: ignore[attr-defined]


class AnswerCollector(WholeAnswers, CollectingOutputChannel):
    pass


class AnswerQueue(WholeAnswers, QueueOutputChannel):
    pass


def bad_request(error: str, detail: str) -> HTTPResponse:
    return response.json({"error": error, "detail": detail, "usage": USAGE}, status=400)


def parse_body(body: bytes) -> dict | HTTPResponse:
    """The request's JSON object, or the 400 answer saying what is wrong with it."""
    try:
        payload = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError, RecursionError):
        return bad_request("invalid_json", "Le corps de la requête n'est pas du JSON valide.")
    if not isinstance(payload, dict):
        return bad_request("invalid_payload", "Le corps de la requête doit être un objet JSON.")
    sender = payload.get("sender")
    if not isinstance(sender, str) or not CLIENT_ID.match(sender):
        return bad_request(
            "invalid_sender",
            "'sender' doit être un identifiant de 1 à 128 caractères (lettres, chiffres, _ . : @ + = -).",
        )
    if "message" not in payload or not isinstance(payload["message"], str):
        return bad_request("invalid_message", "'message' doit être un texte.")
    problem = metadata_problem(payload.get("metadata"))
    if problem:
        return bad_request("invalid_metadata", f"'metadata' : {problem}.")
    return payload


class RestInput(RasaRestInput):
    @classmethod
    def name(cls) -> str:
        return "rest"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        handle = guarded(on_new_message)
        webhook = Blueprint("custom_webhook_RestInput", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> ResponseStream | HTTPResponse:
            payload = parse_body(request.body)
            if isinstance(payload, HTTPResponse):
                return payload
            sender, text = payload["sender"], payload["message"]
            metadata: dict | None = payload.get("metadata")
            if rasa.utils.endpoints.bool_arg(request, "stream", default=False):
                return response.stream(
                    self._stream(handle, text, sender, metadata), content_type="text/event-stream"
                )
            collector = AnswerCollector()
            await handle(
                UserMessage(
                    text, collector, SENDER_PREFIX + sender, input_channel=self.name(), metadata=metadata
                )
            )
            return response.json([{**m, "recipient_id": sender} for m in collector.messages])

        return webhook

    def _stream(
        self,
        handle: Callable[[UserMessage], Awaitable[Any]],
        text: str,
        sender: str,
        metadata: dict | None,
    ) -> Callable[[Any], Awaitable[None]]:
        """Rasa's stream_response, with the client's `sender` as each message's recipient_id."""

        async def stream(resp: Any) -> None:
            queue: Queue = Queue()
            task = asyncio.ensure_future(self._answer(handle, text, queue, SENDER_PREFIX + sender, metadata))
            while (result := await queue.get()) != "DONE":
                await resp.write(json.dumps({**result, "recipient_id": sender}) + "\n")
            await task

        return stream

    async def _answer(
        self,
        handle: Callable[[UserMessage], Awaitable[Any]],
        text: str,
        queue: Queue,
        sender_id: str,
        metadata: dict | None,
    ) -> None:
        """Rasa's on_message_wrapper, with answers kept whole."""
        await handle(
            UserMessage(text, AnswerQueue(queue), sender_id, input_channel=self.name(), metadata=metadata)
        )
        await queue.put("DONE")
