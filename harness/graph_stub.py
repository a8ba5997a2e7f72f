"""A local Graph API for the Messenger channel: a real HTTP server on a free loopback port that
records every POST (the Send API, .../me/messages, and thread control, .../me/pass_thread_control
and .../me/take_thread_control) and answers as Facebook does.

Point the channel at it with FB_GRAPH_API_URL=stub.url: what would have been sent to Facebook
is what the stub recorded."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Message = dict[str, Any]

SEND_API = "messages"
THREAD_CONTROL = ("pass_thread_control", "take_thread_control")


class GraphStub:
    """Records each POST (`calls`: path, query, body); `delay` slows its answers; the edges
    named in `refused` ("take_thread_control"...) answer an error, as Facebook does when the
    page's settings do not allow the call."""

    def __init__(self, version: str = "v21.0") -> None:
        self.calls: list[dict[str, Any]] = []
        self.delay = 0.0
        self.refused: set[str] = set()
        self.changed = threading.Condition()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw or b"{}")
                url = urlsplit(self.path)
                time.sleep(stub.delay)  # a slow Graph API, to show the webhook does not wait
                with stub.changed:
                    stub.calls.append({"path": url.path, "query": parse_qs(url.query), "body": body})
                    stub.changed.notify_all()
                recipient = (body.get("recipient") or {}).get("id", "")
                edge = edge_of(url.path)
                status = 200
                if edge in stub.refused:
                    status = 400
                    answer: dict[str, Any] = {
                        "error": {"message": "(#10) stub refusal", "type": "OAuthException", "code": 10}
                    }
                elif edge in THREAD_CONTROL:
                    answer = {"success": True}
                else:
                    answer = {"recipient_id": recipient, "message_id": "m_" + uuid.uuid4().hex}
                reply = json.dumps(answer)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(reply.encode())

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/{version}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self, recipient: str) -> list[dict[str, Any]]:
        """The bodies of the Send API calls for `recipient` (messages and sender actions), in order."""
        with self.changed:
            return [
                c["body"]
                for c in self.calls
                if edge_of(c["path"]) == SEND_API
                and (c["body"].get("recipient") or {}).get("id") == recipient
            ]

    def thread_control(self, recipient: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """(edge, body) of the pass_thread_control and take_thread_control calls, for
        `recipient` or for all, in order."""
        with self.changed:
            return [
                (edge_of(c["path"]), c["body"])
                for c in self.calls
                if edge_of(c["path"]) in THREAD_CONTROL
                and (recipient is None or (c["body"].get("recipient") or {}).get("id") == recipient)
            ]

    def messages(self, recipient: str) -> list[Message]:
        """The `message` objects sent to `recipient` (sender actions left out)."""
        return [body["message"] for body in self.bodies(recipient) if "message" in body]

    def texts(self, recipient: str) -> list[str]:
        """The texts sent to `recipient`: plain messages and button templates alike."""
        return [text for text in map(message_text, self.messages(recipient)) if text]

    def wait_for(
        self, recipient: str, predicate: Callable[[list[Message]], bool], timeout: float = 30
    ) -> list[Message]:
        """The messages sent to `recipient` once `predicate` holds for them; TimeoutError after
        `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate(self.messages(recipient)):
                left = deadline - time.monotonic()
                if left <= 0:
                    sent = json.dumps(self.messages(recipient), ensure_ascii=False)[:3000]
                    raise TimeoutError(f"the Graph API stub got for {recipient}: {sent}")
                self.changed.wait(left)
            return self.messages(recipient)

    def close(self) -> None:
        """Stops the server (`with contextlib.closing(GraphStub()) as stub:`)."""
        self.server.shutdown()
        self.server.server_close()


def edge_of(path: str) -> str:
    """The Graph edge of a call's path: "/v21.0/me/messages" -> "messages"."""
    return path.rstrip("/").rsplit("/", 1)[-1]


def message_text(message: Message) -> str:
    """The text of a Send API message: a plain text or a button template's."""
    if "attachment" in message:
        text: str = (message["attachment"].get("payload") or {}).get("text", "")
        return text
    return str(message.get("text", ""))
