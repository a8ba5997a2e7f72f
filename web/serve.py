"""Serve the Chat Cagou page and widget (http://localhost:8080/ by default), stdlib only.

Only the files listed in FILES are served (no directory listing, no path traversal);
socket.io-client comes from web/node_modules (`npm ci` in web/), never from a CDN.
The page gets a Content-Security-Policy allowing scripts from here only and connections
to this server and the Rasa server.

    python web/serve.py [--host 127.0.0.1] [--port 8080] [--rasa-url http://localhost:5005]
"""

from __future__ import annotations

import argparse
import html
import os
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

WEB = Path(__file__).resolve().parent
SOCKET_IO = WEB / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"

# URL path -> (file, content type)
FILES: dict[str, tuple[Path, str]] = {
    "/": (WEB / "index.html", "text/html; charset=utf-8"),
    "/index.html": (WEB / "index.html", "text/html; charset=utf-8"),
    "/page.css": (WEB / "page.css", "text/css; charset=utf-8"),
    "/chat-cagou.js": (WEB / "chat-cagou.js", "text/javascript; charset=utf-8"),
    "/chat-cagou.css": (WEB / "chat-cagou.css", "text/css; charset=utf-8"),
    "/vendor/socket.io.min.js": (SOCKET_IO, "text/javascript; charset=utf-8"),
    "/confidentialite": (WEB / "confidentialite.html", "text/html; charset=utf-8"),
}


def retention_text(value: str | None) -> str:
    """The privacy page's retention sentence, from CHAT_CAGOU_RETENTION_DAYS: the setting the
    console applies and the assistant's first message states (the console validates it)."""
    days = (value or "").strip()
    if days.isdigit() and int(days) > 0:
        return (
            f"Les messages sont conservés {int(days)} jours, puis effacés automatiquement "
            "(conversation, notes de l'équipe et demandes de rappel comprises)."
        )
    return "Les messages sont conservés jusqu'à leur effacement par l'équipe du service client."


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(rasa_url: str) -> str:
    rasa = origin_of(rasa_url)
    ws = rasa.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: https:",
            f"connect-src 'self' {rasa} {ws}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def make_handler(rasa_url: str, retention_days: str | None = None) -> type:
    csp = content_security_policy(rasa_url)
    if retention_days is None:
        retention_days = os.environ.get("CHAT_CAGOU_RETENTION_DAYS")
    retention = html.escape(retention_text(retention_days)).encode()

    class Handler(BaseHTTPRequestHandler):
        server_version = "ChatCagouWeb"
        sys_version = ""

        def _body(self) -> tuple[bytes, str] | None:
            path = urlsplit(self.path).path
            if path not in FILES:
                return None
            file, content_type = FILES[path]
            if not file.is_file():
                if file == SOCKET_IO:
                    self.send_error(
                        HTTPStatus.INTERNAL_SERVER_ERROR, "socket.io-client missing: run `npm ci` in web/"
                    )
                    return b"", ""
                return None
            body = file.read_bytes()
            if file.name == "index.html":
                # html.escape: the address lands in an HTML attribute.
                body = body.replace(b"{{RASA_URL}}", html.escape(rasa_url, quote=True).encode())
            elif file.name == "confidentialite.html":
                body = body.replace(b"{{RETENTION}}", retention)
            return body, content_type

        def _serve(self, with_body: bool) -> None:
            if urlsplit(self.path).path == "/favicon.ico":
                self.send_response(HTTPStatus.NO_CONTENT)  # no icon, and no 404 in the console
                self.end_headers()
                return
            found = self._body()
            if found is None:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            body, content_type = found
            if not content_type:
                return  # an error was sent
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-cache")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            if content_type.startswith("text/html"):
                self.send_header("Content-Security-Policy", csp)
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def do_GET(self) -> None:
            self._serve(True)

        def do_HEAD(self) -> None:
            self._serve(False)

        def log_message(self, format: str, *args) -> None:
            if os.environ.get("WEB_QUIET") != "1":
                super().log_message(format, *args)

    return Handler


def make_server(
    host: str, port: int, rasa_url: str, retention_days: str | None = None
) -> ThreadingHTTPServer:
    """`retention_days`: CHAT_CAGOU_RETENTION_DAYS's value, read from the environment if None."""
    server = ThreadingHTTPServer((host, port), make_handler(rasa_url, retention_days))
    server.daemon_threads = True
    return server


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("WEB_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("WEB_PORT", "8080")))
    parser.add_argument("--rasa-url", default=os.environ.get("RASA_URL", "http://localhost:5005"))
    args = parser.parse_args(argv)
    if not SOCKET_IO.is_file():
        print("web/node_modules missing: run `npm ci` in web/ (make install does it)", file=sys.stderr)
        return 1
    server = make_server(args.host, args.port, args.rasa_url)
    shown_host = "localhost" if args.host in ("127.0.0.1", "0.0.0.0", "::") else args.host
    print(
        f"Chat Cagou (page web) : http://{shown_host}:{server.server_address[1]}/  -> Rasa {args.rasa_url}",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
