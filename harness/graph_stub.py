"""A local Graph API for the Messenger channel: a real HTTP server on a free loopback port that
records every call (the Send API, .../me/messages; thread control, .../me/pass_thread_control
and .../me/take_thread_control; the page's profile, GET, POST and DELETE
.../me/messenger_profile) and answers as Facebook does.

Point the channel (or `make messenger-profile`) at it with FB_GRAPH_API_URL=stub.url: what would
have been sent to Facebook is what the stub recorded. `script()` makes an edge answer chosen
statuses first (429, 500, 400...), to test retries."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Message = dict[str, Any]

SEND_API = "messages"
THREAD_CONTROL = ("pass_thread_control", "take_thread_control")
PROFILE = "messenger_profile"


@dataclass(frozen=True)
class Scripted:
    """An answer chosen by a test: `status`, `body` (a Facebook-like error for 4xx/5xx when
    None, the usual answer for 2xx) and `headers` (e.g. Retry-After)."""

    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def stub_error(status: int) -> dict[str, Any]:
    return {
        "error": {
            "message": f"stub error {status}",
            "type": "OAuthException",
            "code": 2,
            "is_transient": status >= 500,
        }
    }


class GraphStub:
    """Records each call (`calls`: method, path, query, body, and the status answered); `delay`
    slows its answers; the edges named in `refused` ("take_thread_control"...) answer an error,
    as Facebook does when the page's settings do not allow the call; `script()` queues answers
    per edge. `profile` is the page's Messenger profile: POST sets fields, DELETE removes them,
    GET returns those asked (`fields=`)."""

    def __init__(self, version: str = "v21.0") -> None:
        self.calls: list[dict[str, Any]] = []
        self.delay = 0.0
        self.refused: set[str] = set()
        self.profile: dict[str, Any] = {}
        self.scripts: dict[str, deque[Scripted]] = {}
        self.changed = threading.Condition()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.answer("POST")

            def do_GET(self) -> None:
                self.answer("GET")

            def do_DELETE(self) -> None:
                self.answer("DELETE")

            def answer(self, method: str) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw or b"{}")
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                time.sleep(stub.delay)  # a slow Graph API, to show the webhook does not wait
                edge = edge_of(url.path)
                headers: dict[str, str] = {}
                with stub.changed:
                    scripted = stub.scripts.get(edge)
                    if scripted:
                        chosen = scripted.popleft()
                        status, answer, headers = chosen.status, chosen.body, chosen.headers
                    else:
                        status, answer = (400, None) if edge in stub.refused else (200, None)
                    if answer is None:
                        answer = (
                            stub.default_answer(method, edge, query, body)
                            if status < 300
                            else stub_error(status)
                        )
                    stub.calls.append(
                        {"method": method, "path": url.path, "query": query, "body": body, "status": status}
                    )
                    stub.changed.notify_all()
                reply = json.dumps(answer)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.encode())

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/{version}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def default_answer(
        self, method: str, edge: str, query: dict[str, list[str]], body: dict[str, Any]
    ) -> Any:
        """Facebook's answer to a successful call (the profile updated; called with the lock held)."""
        if edge == PROFILE:
            if method == "GET":
                asked = ",".join(query.get("fields", [])).split(",")
                found = {name: self.profile[name] for name in asked if name in self.profile}
                return {"data": [found] if found else []}
            if method == "DELETE":
                for name in body.get("fields") or []:
                    self.profile.pop(name, None)
            else:
                self.profile.update(body)
            return {"result": "success"}
        if edge in THREAD_CONTROL:
            return {"success": True}
        recipient = (body.get("recipient") or {}).get("id", "")
        return {"recipient_id": recipient, "message_id": "m_" + uuid.uuid4().hex}

    def script(self, edge: str, *answers: int | Scripted) -> None:
        """The next calls to `edge` ("messages", "messenger_profile"...) get these answers, in
        order (a bare status: the usual answer or a Facebook-like error); then as usual."""
        with self.changed:
            queue = self.scripts.setdefault(edge, deque())
            queue.extend(a if isinstance(a, Scripted) else Scripted(a) for a in answers)

    def edge_calls(self, edge: str) -> list[dict[str, Any]]:
        """The calls to `edge`, in order."""
        with self.changed:
            return [c for c in self.calls if edge_of(c["path"]) == edge]

    def bodies(self, recipient: str) -> list[dict[str, Any]]:
        """The bodies of the Send API calls for `recipient` that the stub accepted (messages and
        sender actions delivered; a scripted failure is not), in order."""
        with self.changed:
            return [
                c["body"]
                for c in self.calls
                if edge_of(c["path"]) == SEND_API
                and c["status"] < 300
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
